/**
 * Ports and polling for tests (shared by every area).
 *
 * freePort() never returns a port from the kernel's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range): a port that the kernel hands out to
 * someone's outgoing connection or `listen(0)` while our daemon is down (restart tests)
 * would make the restart fail with EADDRINUSE. Ports come from below (or above) that
 * range, starting at an offset derived from the pid so parallel test processes walk
 * different stretches, and each is probed free on TCP (and UDP when asked) first.
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

function portRange(): { lo: number; hi: number } {
  let eLo = 32768;
  let eHi = 60999;
  try {
    const [a, b] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (a && b && a <= b) [eLo, eHi] = [a, b];
  } catch {
    // not Linux: keep the default range
  }
  // The larger of the two stretches outside the ephemeral range, above the well-known ports.
  const below = { lo: 10_000, hi: eLo - 1 };
  const above = { lo: eHi + 1, hi: 65_535 };
  return below.hi - below.lo >= above.hi - above.lo ? below : above;
}

const range = portRange();
const span = range.hi - range.lo + 1;
let cursor = (process.pid * 7919) % span; // per-process start; advances on every call

function tcpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function udpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    sock.unref();
    sock.once('error', () => resolve(false));
    sock.bind(port, host, () => sock.close(() => resolve(true)));
  });
}

/** A port outside the ephemeral range that is free now on TCP (and UDP with `udp: true`). */
export async function freePort(opts: { udp?: boolean; host?: string } = {}): Promise<number> {
  const host = opts.host ?? '127.0.0.1';
  for (let tries = 0; tries < 500; tries++) {
    const port = range.lo + (cursor++ % span);
    if ((await tcpFree(port, host)) && (!opts.udp || (await udpFree(port, host)))) return port;
  }
  throw new Error(`no free port in ${range.lo}-${range.hi} after 500 tries`);
}

/** Polls `pred` every `everyMs` until it holds; throws naming `what` after `timeoutMs` (a hang guard, not a timing claim). */
export async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
