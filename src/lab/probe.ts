/**
 * Reachability probes between lab containers, used by the demo's checks and by
 * tests: ICMP with the system's ping, TCP with a tiny Node echo server/client
 * run inside the container namespaces (no extra packages needed).
 */
import { spawn } from 'node:child_process';
import { execIn } from './container.js';
import type { LabState } from './state.js';

export interface PingResult {
  ok: boolean;
  received: number;
  sent: number;
  /** Average round-trip time in ms, when any reply came back. */
  rttMs?: number;
  output: string;
}

/** Pings `ip` from container `from`; ok when every echo got a reply. */
export async function ping(state: LabState, from: string, ip: string, opts: { count?: number; timeoutS?: number } = {}): Promise<PingResult> {
  const count = opts.count ?? 3;
  const argv = ['ping', ip.includes(':') ? '-6' : '-4', '-n', '-q', '-c', String(count), '-i', '0.2', '-W', String(opts.timeoutS ?? 2), ip];
  const r = await execIn(state, from, argv, { allowFailure: true, timeoutMs: (count * 0.2 + (opts.timeoutS ?? 2) + 5) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  // No statistics line means ping never transmitted (usage error, no route): nothing was sent.
  const sent = Number(m?.[1] ?? 0);
  const received = Number(m?.[2] ?? 0);
  return { ok: r.code === 0 && sent > 0 && received === sent, received, sent, ...(rtt ? { rttMs: Number(rtt[1]) } : {}), output: r.stdout + r.stderr };
}

// Server: echoes "pong:<data>" and exits after one exchange or 10 s.
const SERVER_JS = `
const net = require('net');
const srv = net.createServer((s) => s.on('data', (d) => { s.end('pong:' + d); srv.close(); }));
srv.listen(Number(process.argv[1]), process.argv[2], () => process.stdout.write('ready\\n'));
setTimeout(() => process.exit(3), 10000).unref();`;
// Client: sends a token, prints what came back, exits 0 on the expected echo.
const CLIENT_JS = `
const net = require('net');
const token = 'tenet-' + process.pid;
const s = net.connect(Number(process.argv[1]), process.argv[2], () => s.write(token));
let got = '';
s.on('data', (d) => { got += d; });
s.on('end', () => { process.stdout.write(got + '\\n'); process.exit(got === 'pong:' + token ? 0 : 1); });
s.on('error', (e) => { process.stdout.write(String(e.message) + '\\n'); process.exit(2); });
setTimeout(() => { process.stdout.write('timeout\\n'); process.exit(4); }, Number(process.argv[3])).unref();`;

export interface TcpResult {
  ok: boolean;
  detail: string;
}

/** One TCP exchange from container `from` to container `to` (at `toIp`:`port`): connect, send, read the echo. */
export async function tcpExchange(state: LabState, from: string, to: string, toIp: string, port: number, timeoutMs = 4000): Promise<TcpResult> {
  const toNs = state.containers.find((c) => c.name === to)?.namespace;
  if (!toNs) return { ok: false, detail: `no container ${to}` };
  const bind = toIp.replace(/\/\d+$/, '');
  const server = spawn('ip', ['netns', 'exec', toNs, process.execPath, '-e', SERVER_JS, String(port), bind], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 15_000); // node's start in a loaded 2-core machine can take seconds
      server.stdout.on('data', (d: Buffer) => {
        if (String(d).includes('ready')) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      server.on('exit', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!ready) return { ok: false, detail: `server in ${to} did not start` };
    const r = await execIn(state, from, [process.execPath, '-e', CLIENT_JS, String(port), bind, String(timeoutMs)], {
      allowFailure: true,
      timeoutMs: timeoutMs + 15_000, // node itself may take seconds to start on a loaded machine
    });
    return { ok: r.code === 0, detail: r.stdout.trim() || r.stderr.trim() };
  } finally {
    if (server.exitCode === null && server.pid) {
      // Stop the server by pid: `ip netns exec` execs node, so server.pid is node itself.
      server.kill('SIGKILL');
    }
  }
}
