/**
 * Health checks of declared services, run by the agent inside the instance's network
 * namespace (the controller cannot reach tenant addresses). Needs only bash and
 * coreutils' `timeout` in the host: a TCP connect through bash's /dev/tcp, and for
 * http a GET whose status line must be 2xx or 3xx.
 */
import { run } from '../util/exec.js';
import type { UnitCheckSpec } from './types.js';

/** argv of one check run (pure). */
export function checkArgv(netns: string, address: string, port: number, check: UnitCheckSpec): string[] {
  const timeoutS = ((check.timeoutMs ?? 2000) / 1000).toFixed(3);
  const host = address.includes(':') ? address : address; // bash /dev/tcp takes IPv6 literals as is
  let script = `exec 3<>/dev/tcp/${host}/${port}`;
  if (check.type === 'http') {
    const path = (check.path ?? '/').replace(/[^A-Za-z0-9/._~%?&=+-]/g, '');
    script +=
      ` && printf 'GET ${path} HTTP/1.0\\r\\nHost: ${host}\\r\\nConnection: close\\r\\n\\r\\n' >&3` +
      ` && read -r status <&3 && case "$status" in "HTTP/"*" "[23]*) exit 0;; *) echo "$status"; exit 1;; esac`;
  }
  return ['ip', 'netns', 'exec', netns, 'timeout', timeoutS, 'bash', '-c', script];
}

export interface CheckResult {
  ok: boolean;
  output: string;
}

/** Runs a tcp/http check; a `ttl` check (or none) passes while the process runs, decided by the caller. */
export async function runCheck(netns: string, address: string, port: number, check: UnitCheckSpec): Promise<CheckResult> {
  const r = await run(checkArgv(netns, address, port, check), { allowFailure: true, timeoutMs: (check.timeoutMs ?? 2000) + 3000 });
  if (r.code === 0) return { ok: true, output: `${check.type} ${address}:${port} ok` };
  const why = r.code === 124 ? 'timed out' : (r.stdout + r.stderr).trim().split('\n').at(-1) || `exit ${r.code}`;
  return { ok: false, output: `${check.type} ${address}:${port}: ${why}` };
}
