/**
 * DNS interface of the registry (dns2), authoritative for `tenet.`:
 *   <service>.<tenant>.tenet.          A / AAAA of healthy instances
 *   <id>.<service>.<tenant>.tenet.     A / AAAA of one healthy instance (SRV targets)
 *   _<service>._tcp.<tenant>.tenet.    SRV (port, target <id>.<service>.<tenant>.tenet.) + glue
 * Healthy = passing or warning (Consul's default). Answers are shuffled per query.
 * A name that does not exist is NXDOMAIN; a known service without records of the asked
 * type (AAAA of an IPv4-only service, or no healthy instance) is NOERROR with no answer.
 * Names outside `tenet.` are REFUSED: this server does not recurse. Over UDP an answer
 * that does not fit gets the TC bit (dns2); with `tcp` the same port serves DNS over TCP.
 */
import { isIP } from 'node:net';
import dns2 from 'dns2';
import type { Registry } from './registry.js';
import { RegistryError } from './validate.js';
import type { Instance } from './types.js';

const { Packet } = dns2;
type DnsPacket = InstanceType<typeof Packet>;
type Resource = DnsPacket['answers'][number];

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface DnsOptions {
  port?: number;
  host?: string;
  /** TTL of answers, seconds (default 5: instances come and go). */
  ttl?: number;
  domain?: string;
  /** Also serve DNS over TCP on the same port (needs a fixed port): for answers that do not fit UDP. */
  tcp?: boolean;
}

export interface DnsAnswer {
  rcode: number;
  answers: Array<Partial<Resource>>;
  additionals: Array<Partial<Resource>>;
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Pure-ish resolution against the registry's view (no sockets): used by the server and tests. */
export function resolveName(registry: Registry, qname: string, qtype: number, opts: { ttl?: number; domain?: string } = {}): DnsAnswer {
  const ttl = opts.ttl ?? 5;
  const domain = (opts.domain ?? 'tenet').toLowerCase();
  const name = qname.toLowerCase().replace(/\.$/, '');
  const labels = name.split('.');
  const empty = (rcode: number): DnsAnswer => ({ rcode, answers: [], additionals: [] });
  if (labels.at(-1) !== domain) return empty(RCODE.REFUSED);
  const rest = labels.slice(0, -1);
  const addr = (n: string, inst: Instance): Partial<Resource> | undefined => {
    const v = isIP(inst.address);
    if (v === 4 && (qtype === Packet.TYPE.A || qtype === Packet.TYPE.ANY)) return { name: n, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl, address: inst.address };
    if (v === 6 && (qtype === Packet.TYPE.AAAA || qtype === Packet.TYPE.ANY)) return { name: n, type: Packet.TYPE.AAAA, class: Packet.CLASS.IN, ttl, address: inst.address };
    return undefined;
  };
  // _<service>._tcp.<tenant>
  if (rest.length === 3 && rest[0]!.startsWith('_') && rest[1] === '_tcp') {
    const { known, healthy } = registry.lookup(rest[2]!, rest[0]!.slice(1));
    if (!known) return empty(RCODE.NXDOMAIN);
    if (qtype !== Packet.TYPE.SRV && qtype !== Packet.TYPE.ANY) return empty(RCODE.NOERROR);
    const answers: Array<Partial<Resource>> = [];
    const additionals: Array<Partial<Resource>> = [];
    for (const inst of shuffle(healthy)) {
      const target = `${inst.id}.${inst.service}.${inst.tenant}.${domain}`;
      answers.push({ name, type: Packet.TYPE.SRV, class: Packet.CLASS.IN, ttl, priority: 1, weight: 1, port: inst.port, target });
      const v = isIP(inst.address);
      additionals.push({ name: target, type: v === 6 ? Packet.TYPE.AAAA : Packet.TYPE.A, class: Packet.CLASS.IN, ttl, address: inst.address });
    }
    return { rcode: RCODE.NOERROR, answers, additionals };
  }
  // <service>.<tenant>
  if (rest.length === 2) {
    const { known, healthy } = registry.lookup(rest[1]!, rest[0]!);
    if (!known) return empty(RCODE.NXDOMAIN);
    const answers = shuffle(healthy).flatMap((i) => addr(name, i) ?? []);
    return { rcode: RCODE.NOERROR, answers, additionals: [] };
  }
  // <id>.<service>.<tenant>
  if (rest.length === 3) {
    const inst = registry.get(rest[2]!, rest[1]!, rest[0]!);
    if (!inst) return empty(RCODE.NXDOMAIN);
    const a = inst.status !== 'critical' ? addr(name, inst) : undefined;
    return { rcode: RCODE.NOERROR, answers: a ? [a] : [], additionals: [] };
  }
  return empty(RCODE.NXDOMAIN);
}

/** The DNS server cannot start: bad options or the address cannot be bound. */
export class DnsServerError extends RegistryError {
  constructor(message: string, context: Record<string, unknown> = {}, cause?: unknown) {
    super('EREGISTRY_DNS', message, context, { cause });
  }
}

export interface RegistryDnsServer {
  port: number;
  close(): Promise<void>;
}

export async function startRegistryDns(registry: Registry, opts: DnsOptions = {}): Promise<RegistryDnsServer> {
  if (opts.tcp && !opts.port) throw new DnsServerError('DNS over TCP needs a fixed port (port 0 would differ between UDP and TCP)', { option: 'port' });
  const server = dns2.createServer({
    udp: true,
    tcp: opts.tcp === true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      response.header.aa = 1;
      response.header.ra = 0;
      const q = request.questions[0];
      if (!q || request.questions.length !== 1) {
        response.header.rcode = RCODE.FORMERR;
      } else if (q.class !== Packet.CLASS.IN && q.class !== Packet.CLASS.ANY) {
        response.header.rcode = RCODE.REFUSED;
      } else {
        const ans = resolveName(registry, q.name, q.type, opts);
        response.header.rcode = ans.rcode;
        for (const a of ans.answers) response.answers.push(a as Resource);
        for (const a of ans.additionals) response.additionals.push(a as Resource);
      }
      send(response).catch(() => undefined);
    },
  });
  server.on('requestError', () => undefined); // malformed packets: drop, never crash
  // dns2's listen() never rejects: a bind failure (port in use) only arrives as 'error'.
  // While starting, that error fails the start; afterwards errors are dropped, never thrown.
  let failStart: ((err: Error) => void) | undefined;
  server.on('error', (err: Error) => failStart?.(err));
  const where = { port: opts.port ?? 0, address: opts.host ?? '127.0.0.1' };
  let addrs: Awaited<ReturnType<typeof server.listen>>;
  try {
    addrs = await new Promise<Awaited<ReturnType<typeof server.listen>>>((resolve, reject) => {
      failStart = reject;
      server.listen(opts.tcp ? { udp: where, tcp: where } : { udp: where }).then(resolve, reject);
    });
  } catch (err) {
    try {
      void server.close(); // the half that did bind; not awaited: the failed half never emits 'close'
    } catch {
      // already closed
    }
    throw new DnsServerError(`cannot serve DNS on ${where.address}:${where.port}: ${(err as Error).message}`, where, err);
  } finally {
    failStart = undefined;
  }
  return {
    port: addrs.udp?.port ?? 0,
    close: () => server.close(),
  };
}
