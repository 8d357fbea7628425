/** Health checks: pure aggregation plus the two network probes (HTTP, TCP). */
import { connect } from 'node:net';
import type { CheckState, HealthStatus } from './types.js';

const rank: Record<HealthStatus, number> = { passing: 0, warning: 1, critical: 2 };

/** The worst status wins; no checks means passing. */
export function aggregate(states: Iterable<CheckState>): HealthStatus {
  let worst: HealthStatus = 'passing';
  for (const s of states) if (rank[s.status] > rank[worst]) worst = s.status;
  return worst;
}

/** Consul's rule: 2xx passing, 429 warning, anything else (or no answer) critical. */
export function statusForHttp(code: number): HealthStatus {
  if (code >= 200 && code < 300) return 'passing';
  if (code === 429) return 'warning';
  return 'critical';
}

export async function runHttpCheck(url: string, timeoutMs: number): Promise<{ status: HealthStatus; output: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.body?.cancel().catch(() => undefined);
    return { status: statusForHttp(res.status), output: `HTTP GET ${url}: ${res.status}` };
  } catch (err) {
    const msg = err instanceof Error ? (err.name === 'TimeoutError' ? `timed out after ${timeoutMs} ms` : err.message) : String(err);
    return { status: 'critical', output: `HTTP GET ${url}: ${msg}` };
  }
}

export function runTcpCheck(target: string, timeoutMs: number): Promise<{ status: HealthStatus; output: string }> {
  const m = /^\[?(.+?)\]?:(\d+)$/.exec(target);
  if (!m) return Promise.resolve({ status: 'critical', output: `bad TCP target ${target}` });
  const host = m[1]!;
  const port = Number(m[2]);
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (status: HealthStatus, output: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ status, output });
    };
    const timer = setTimeout(() => done('critical', `TCP connect ${target}: timed out after ${timeoutMs} ms`), timeoutMs);
    sock.once('connect', () => done('passing', `TCP connect ${target}: success`));
    sock.on('error', (err) => done('critical', `TCP connect ${target}: ${err.message}`)); // on, not once: no error may go unhandled
  });
}
