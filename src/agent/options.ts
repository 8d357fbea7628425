/** Parsing of the agent's command-line values (pure; errors are UsageError naming the option). */
import { isIP } from 'node:net';
import { UsageError } from '../util/errors.js';

const LABEL_KEY = /^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/;
const LABEL_VALUE = /^[A-Za-z0-9._-]{0,63}$/;

/** `zone=a,disk=ssd` → {zone: 'a', disk: 'ssd'}. */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new UsageError(`--labels: '${part}' is not key=value (give --labels zone=a,disk=ssd)`, { label: part });
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (!LABEL_KEY.test(key)) throw new UsageError(`--labels: key '${key}' must be lowercase letters, digits, '.', '_', '/', '-' (at most 63)`, { key });
    if (!LABEL_VALUE.test(value)) throw new UsageError(`--labels: value '${value}' of '${key}' must be letters, digits, '.', '_', '-' (at most 63)`, { key, value });
    if (key in out) throw new UsageError(`--labels: key '${key}' given twice`, { key });
    out[key] = value;
  }
  return out;
}

export function parseUnderlayIp(v: string): string {
  if (isIP(v) === 0) throw new UsageError(`--underlay-ip: '${v}' is not an IP address`);
  return v;
}

/** An http(s) URL without a trailing slash. */
export function parseControllerUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new UsageError(`--controller: '${v}' is not a URL (give http://HOST:PORT, e.g. http://127.0.0.1:6680)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--controller: '${v}' must be http:// or https://`);
  return v.replace(/\/+$/, '');
}

/** OVSDB addresses as ovs-vsctl takes them. */
export function parseOvsdb(v: string, option = '--ovsdb'): string {
  if (!/^(unix:\/.+|tcp:.+:\d+|ssl:.+:\d+)$/.test(v)) throw new UsageError(`${option}: '${v}' must be unix:/path, tcp:IP:PORT or ssl:IP:PORT`);
  return v;
}
