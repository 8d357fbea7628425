/**
 * A long-lived TCP connection held by a small node process inside a container
 * namespace: each line written is sent, each echo read back. Chain tests use it to
 * show a connection pinned to one service-function instance survives a change.
 */
import { spawn } from 'node:child_process';
import type { Test } from 'tap';

const CLIENT = `
const s = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]) });
s.setNoDelay(true);
s.on('connect', () => console.log('port ' + s.localPort));
s.on('data', (d) => process.stdout.write('echo ' + d));
s.on('error', (e) => console.log('error ' + e.message));
process.stdin.on('data', (d) => s.write(d));
`;

export interface Persistent {
  /** The client's local port (identifies the connection in counters). */
  port: number;
  /** Sends a line and waits for its echo; false after the timeout. */
  say(line: string): Promise<boolean>;
}

/** Connects from `namespace` to host:port; waits up to `startMs` for node to start and connect. Killed in teardown. */
export async function persistentClient(t: Test, namespace: string, host: string, port: number, startMs: number): Promise<Persistent> {
  const p = spawn('ip', ['netns', 'exec', namespace, process.execPath, '-e', CLIENT, host, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (p.exitCode === null) p.kill('SIGKILL');
  });
  let buf = '';
  const waiters: ((line: string) => void)[] = [];
  p.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiters.shift()?.(line);
    }
  });
  const next = (ms: number) =>
    new Promise<string>((res) => {
      const tm = setTimeout(() => res('timeout'), ms);
      waiters.push((l) => (clearTimeout(tm), res(l)));
    });
  const first = await next(startMs);
  const m = /^port (\d+)$/.exec(first);
  if (!m) throw new Error(`persistent client: ${first}`);
  return {
    port: Number(m[1]),
    say: async (line) => {
      const w = next(3000);
      p.stdin!.write(line + '\n');
      return (await w) === `echo ${line}`;
    },
  };
}
