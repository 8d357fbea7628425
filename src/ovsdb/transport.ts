/**
 * OVSDB connection targets in OVS's own notation: `tcp:IP:PORT`,
 * `ssl:IP:PORT` (TLS) and `unix:PATH`. IPv6 addresses go in brackets.
 */
import net from 'node:net';
import tls from 'node:tls';
import { OvsdbClosedError } from './errors.js';
import { UsageError } from '../util/errors.js';

export type Target =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'ssl'; host: string; port: number }
  | { kind: 'unix'; path: string };

export function parseTarget(s: string): Target {
  const i = s.indexOf(':');
  const kind = i > 0 ? s.slice(0, i) : '';
  const rest = s.slice(i + 1);
  if (kind === 'unix') {
    if (!rest) throw new UsageError(`OVSDB target ${s}: empty socket path`, { target: s });
    return { kind, path: rest };
  }
  if (kind === 'tcp' || kind === 'ssl') {
    const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(rest);
    if (!m) throw new UsageError(`OVSDB target ${s}: expected ${kind}:HOST:PORT`, { target: s });
    const port = m[3] === undefined ? 6640 : Number(m[3]);
    if (!(port > 0 && port < 65536)) throw new UsageError(`OVSDB target ${s}: bad port`, { target: s });
    return { kind, host: (m[1] ?? m[2])!, port };
  }
  throw new UsageError(`OVSDB target ${s}: expected tcp:, ssl: or unix:`, { target: s });
}

export interface ConnectOptions {
  /** TLS options for ssl: targets (ca, cert, key, servername, rejectUnauthorized...). */
  tls?: tls.ConnectionOptions;
  connectTimeoutMs?: number;
}

/** Opens a socket to the target; resolves once connected (after the TLS handshake for ssl:). */
export function openSocket(target: string | Target, opts: ConnectOptions = {}): Promise<net.Socket> {
  const t = typeof target === 'string' ? parseTarget(target) : target;
  const timeoutMs = opts.connectTimeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let sock: net.Socket;
    const ready = t.kind === 'ssl' ? 'secureConnect' : 'connect';
    if (t.kind === 'unix') sock = net.createConnection({ path: t.path });
    else if (t.kind === 'tcp') sock = net.createConnection({ host: t.host, port: t.port });
    else sock = tls.connect({ ...opts.tls, host: t.host, port: t.port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new OvsdbClosedError(`connect to ${describe(t)} timed out after ${timeoutMs} ms`, { target: describe(t) }));
    }, timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(new OvsdbClosedError(`connect to ${describe(t)} failed: ${err.message}`, { target: describe(t) }, { cause: err }));
    };
    sock.once('error', onError);
    sock.once(ready, () => {
      clearTimeout(timer);
      sock.off('error', onError);
      sock.setNoDelay(true);
      resolve(sock);
    });
  });
}

export function describe(t: Target): string {
  return t.kind === 'unix' ? `unix:${t.path}` : `${t.kind}:${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}
