/**
 * Drives prober.c (next to this file): one process that pings, from every
 * container namespace, each peer it should reach, and reports each pair's first
 * answer. Compiled with gcc at run time into a directory the caller owns.
 *
 *   const bin = buildProber(dir);
 *   const p = await startProber(bin, [{ namespace, peers: ['10.0.0.2', …] }, …]);
 *   const t0 = p.go();              // sockets are open; probing starts now
 *   const r = await p.result;       // each pair's first answer, in ns since go
 */
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'prober.c');

export interface ProbeTarget {
  /** Network namespace name under /run/netns. */
  namespace: string;
  /** IPv4 addresses to ping from it. */
  peers: string[];
}

export interface ProbeAnswer {
  /** Index into the targets given to startProber. */
  from: number;
  /** Index into that target's peers. */
  peer: number;
  /** First answer, in seconds since go(). */
  atS: number;
}

export interface ProbeResult {
  answers: ProbeAnswer[];
  missing: Array<{ from: number; peer: number }>;
  pairs: number;
  sent: number;
  /** The prober's own CPU time (user + system), seconds. */
  cpuS: number;
  /** CLOCK_MONOTONIC (process.hrtime) of the prober's t0, ns. */
  goNs: bigint;
}

export interface Prober {
  pid: number;
  /** Starts the probing; returns the process.hrtime (ns) just before the signal was written. */
  go(): bigint;
  result: Promise<ProbeResult>;
  /** Stops the prober early (by its pid). */
  kill(): void;
}

/** Compiles prober.c into `dir`; throws with gcc's message when it cannot. */
export function buildProber(dir: string): string {
  const bin = join(dir, 'prober');
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', bin, SOURCE], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc could not build the prober: ${(r.stderr || String(r.error)).trim()}`);
  return bin;
}

/** Starts the prober and resolves once it has a socket in every namespace and waits for go(). */
export async function startProber(bin: string, targets: ProbeTarget[], opts: { intervalMs?: number; timeoutMs?: number } = {}): Promise<Prober> {
  const child = spawn(bin, [String(opts.intervalMs ?? 10), String(opts.timeoutMs ?? 60_000)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const answers: ProbeAnswer[] = [];
  const missing: Array<{ from: number; peer: number }> = [];
  let goNs = 0n;
  let done: Omit<ProbeResult, 'answers' | 'missing' | 'goNs'> | undefined;
  let onReady: (() => void) | undefined;
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const f = buf.slice(0, nl).split(' ');
      buf = buf.slice(nl + 1);
      if (f[0] === 'a') answers.push({ from: Number(f[1]), peer: Number(f[2]), atS: Number(f[3]) / 1e9 });
      else if (f[0] === 'miss') missing.push({ from: Number(f[1]), peer: Number(f[2]) });
      else if (f[0] === 'go') goNs = BigInt(f[1]!);
      else if (f[0] === 'ready') onReady?.();
      else if (f[0] === 'done') {
        const kv = Object.fromEntries(f.slice(1).map((s) => s.split('=') as [string, string]));
        done = { pairs: Number(kv.pairs), sent: Number(kv.sent), cpuS: (Number(kv.user_ms) + Number(kv.sys_ms)) / 1000 };
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    void exited.then((code) => reject(new Error(`prober exited (${code}) before it was ready: ${stderr.trim()}`)));
  });
  child.stdin.write(targets.map((t) => `${t.namespace} ${t.peers.join(' ')}\n`).join('') + 'end\n');
  await ready;
  const result = exited.then((code) => {
    if (!done) throw new Error(`prober ended without a summary (exit ${code}): ${stderr.trim()}`);
    return { ...done, answers, missing, goNs };
  });
  result.catch(() => {}); // the caller awaits it; no unhandled rejection if it stops early
  return {
    pid: child.pid!,
    go() {
      const t = process.hrtime.bigint();
      child.stdin.write('go\n');
      return t;
    },
    result,
    kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
