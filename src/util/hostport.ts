/** "host:port" / "[v6]:port" listen addresses (API, OpenFlow): one parser, one message. */
import { UsageError } from './errors.js';

/** Splits `s`; an empty host is the wildcard 0.0.0.0. `what` names the option in the error. */
export function parseHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`${what} must be host:port, got '${s}'`, { option: what, value: s });
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
