/**
 * Offline packet tracer over compiled flows: evaluates matches (with masks) by
 * priority, follows goto_table / resubmit / ct(table=) recirculation, registers and
 * metadata, groups (`all`: every bucket; `select`: one bucket chosen by a symmetric
 * 5-tuple hash over a 64-slot weighted table, as OVS's default dp_hash method does
 * — the same instance both ways, though not necessarily the one OVS picks), and
 * tunnels (continues on the peer host at table 0 with tun_id set). A packet
 * delivered to a service-function instance of a chain is forwarded the way Linux
 * IP forwarding does (TTL-1, eth_src := its port, eth_dst := the next hop's MAC)
 * and traced on from its egress port, so a trace shows every hop of the chain. Conntrack is modelled per host and zone: a ct()
 * lookup gives +trk+new unless an earlier traced packet committed the connection
 * (then +est, +rpl for the reverse direction). `ofproto/trace` gives +trk+new to
 * every ct() by default, which matches a fresh Tracer.
 */
import { formatIp4 } from '../ipam/index.js';
import type { Endpoint, Model } from '../model/index.js';
import { formatFlow, OFPGT, OFPP, type Action, type FlowMod, type GroupMod, type Instruction, type Subfield } from '../openflow/index.js';
import { TABLE_BY_ID, type CompileResult } from '../pipeline/index.js';
import { TenetError } from '../util/errors.js';

export type Fields = Map<string, bigint>;

export interface TraceStep {
  host: string;
  table: number;
  /** The flow that matched, in ovs-ofctl syntax; undefined when nothing matched. */
  flow?: string;
  note?: string;
  depth: number;
}

export type Outcome =
  | { kind: 'delivered'; host: string; port: number; endpoint?: string; fields: Fields }
  | { kind: 'dropped'; host: string; table: number; flow?: string; reason: string }
  | { kind: 'controller'; host: string; table: number }
  /** Only with { followTunnels: false }: the packet left `host` on a tunnel. */
  | { kind: 'tunneled'; host: string; port: number; peer: string; tunId: bigint; fields: Fields };

export interface TraceResult {
  steps: TraceStep[];
  outcomes: Outcome[];
  /** Service-function instances the packet went through, in order ("tenant/endpoint@host"). */
  passes: string[];
}

export class TraceError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('ETRACE', message, context);
  }
}

interface CFlow {
  flow: FlowMod;
  m: { name: string; value: bigint; mask: bigint }[];
  text?: string;
}

const CT = { new: 1n, est: 2n, rel: 4n, rpl: 8n, inv: 16n, trk: 32n };
const MAX_STEPS = 512;

function big(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = 0; i < b.length; i++) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

export class Tracer {
  private readonly tables = new Map<string, Map<number, CFlow[]>>();
  private readonly groups = new Map<string, Map<number, GroupMod>>();
  /** service-function port -> the port it forwards out of (itself, or the other one of an ingress/egress pair) */
  private readonly sfExit = new Map<Endpoint, Endpoint>();
  /** host -> committed connection keys */
  private readonly conntrack = new Map<string, Set<string>>();
  private readonly portOwner = new Map<string, Map<number, Endpoint>>();
  private readonly tunnelPeer = new Map<string, Map<number, string>>();

  constructor(
    readonly result: CompileResult,
    /**
     * followTunnels false: stop at the tunnel (what one switch does, as ofproto/trace sees it).
     * forwardServices false: a packet delivered to a service function stops there.
     */
    readonly opts: { followTunnels?: boolean; forwardServices?: boolean } = {},
  ) {
    const model = result.model;
    for (const t of model.tenants)
      for (const c of t.chains ?? [])
        for (const h of c.hops)
          for (const i of h.instances) {
            this.sfExit.set(i.ingress, i.egress);
            this.sfExit.set(i.egress, i.ingress);
          }
    const placement = result.ctx.placement;
    for (const h of model.hosts) {
      const flows = result.host(h.name).flows;
      const byTable = new Map<number, CFlow[]>();
      for (const f of flows) {
        let l = byTable.get(f.tableId);
        if (!l) byTable.set(f.tableId, (l = []));
        l.push({ flow: f, m: f.match.map((t) => ({ name: t.field.name, value: big(t.value), mask: t.mask ? big(t.mask) : (1n << BigInt(t.field.bytes * 8)) - 1n })) });
      }
      for (const l of byTable.values()) l.sort((a, b) => b.flow.priority - a.flow.priority);
      this.tables.set(h.name, byTable);
      this.groups.set(h.name, new Map(result.host(h.name).groups.map((g) => [g.groupId, g])));
      const owners = new Map<number, Endpoint>();
      for (const t of model.tenants) for (const e of t.endpoints) if (e.host === h.name) {
        const p = placement.hosts[h.name]?.ports[e.id];
        if (p !== undefined) owners.set(p, e);
      }
      this.portOwner.set(h.name, owners);
      const peers = new Map<number, string>();
      for (const [peer, port] of Object.entries(placement.hosts[h.name]?.tunnels ?? {})) peers.set(port, peer);
      this.tunnelPeer.set(h.name, peers);
    }
  }

  /** Forgets every committed connection (each trace then starts like ofproto/trace: +trk+new). */
  resetConntrack(): void {
    this.conntrack.clear();
  }

  /** Traces a packet entering `host` on `inPort` with the given header fields. */
  trace(host: string, inPort: number, headers: Fields): TraceResult {
    if (!this.tables.has(host)) throw new TraceError(`unknown host "${host}"`, { host });
    const res: TraceResult = { steps: [], outcomes: [], passes: [] };
    const pkt: Fields = new Map(headers);
    pkt.set('in_port', BigInt(inPort));
    this.run(res, host, pkt, 0, 0);
    return res;
  }

  private lookup(host: string, table: number, pkt: Fields): CFlow | undefined {
    const l = this.tables.get(host)!.get(table);
    if (!l) return undefined;
    outer: for (const c of l) {
      for (const t of c.m) if (((pkt.get(t.name) ?? 0n) & t.mask) !== t.value) continue outer;
      return c;
    }
    return undefined;
  }

  private run(res: TraceResult, host: string, pkt: Fields, table: number, depth: number): void {
    if (res.steps.length > MAX_STEPS) {
      res.outcomes.push({ kind: 'dropped', host, table, reason: 'trace too long (loop?)' });
      return;
    }
    const c = this.lookup(host, table, pkt);
    if (!c) {
      res.steps.push({ host, table, depth, note: 'no flow matched (table miss)' });
      res.outcomes.push({ kind: 'dropped', host, table, reason: 'table miss' });
      return;
    }
    c.text ??= formatFlow(c.flow);
    res.steps.push({ host, table, flow: c.text, depth });
    const ins = c.flow.instructions;
    let next: number | undefined;
    let acted = false;
    for (const i of ins) {
      if (i.type === 'apply_actions') {
        const stop = this.actions(res, host, pkt, i.actions, table, depth, c.text);
        acted ||= i.actions.length > 0;
        if (stop) return;
      } else if (i.type === 'write_metadata') {
        const cur = pkt.get('metadata') ?? 0n;
        pkt.set('metadata', (cur & ~i.mask) | (i.metadata & i.mask));
      } else if (i.type === 'goto_table') next = i.table;
      else unsupported(i);
    }
    if (next !== undefined) this.run(res, host, pkt, next, depth);
    else if (!acted || !hasTerminal(ins)) res.outcomes.push({ kind: 'dropped', host, table, flow: c.text, reason: 'dropped by flow' });
  }

  /** Runs an action list; returns true when the packet's processing ended inside (recirculation took over). */
  private actions(res: TraceResult, host: string, pkt: Fields, actions: Action[], table: number, depth: number, text: string): boolean {
    for (const a of actions) {
      switch (a.type) {
        case 'set_field':
          pkt.set(a.field.name, big(a.value));
          break;
        case 'load':
          writeSub(pkt, a.dst, a.value);
          break;
        case 'move':
          writeSub(pkt, a.dst, readSub(pkt, a.src));
          break;
        case 'dec_ttl': {
          const ttl = pkt.get('nw_ttl') ?? 0n;
          if (ttl <= 1n) {
            res.outcomes.push({ kind: 'dropped', host, table, flow: text, reason: 'TTL exceeded' });
            return true;
          }
          pkt.set('nw_ttl', ttl - 1n);
          break;
        }
        case 'ct_clear':
          pkt.set('ct_state', 0n);
          pkt.set('ct_zone', 0n);
          break;
        case 'ct': {
          const zone = a.zoneSrc ? readSub(pkt, a.zoneSrc) : BigInt(a.zoneImm);
          const ct = this.conntrack.get(host) ?? new Set<string>();
          this.conntrack.set(host, ct);
          const [fwd, rev] = connKeys(pkt, zone);
          if (a.flags & 1) ct.add(fwd);
          if (a.table !== 255) {
            const state = ct.has(fwd) ? CT.trk | CT.est : ct.has(rev) ? CT.trk | CT.est | CT.rpl : CT.trk | CT.new;
            const copy = new Map(pkt);
            copy.set('ct_state', state);
            copy.set('ct_zone', zone);
            res.steps.push({ host, table, depth: depth + 1, note: `conntrack zone ${zone}: recirculate to table ${a.table} with ct_state=${ctText(state)}` });
            this.run(res, host, copy, a.table, depth + 1);
            return true;
          }
          break;
        }
        case 'resubmit':
          this.run(res, host, new Map(pkt), a.table, depth + 1);
          break;
        case 'group': {
          const g = this.groups.get(host)!.get(a.groupId);
          if (!g) {
            res.outcomes.push({ kind: 'dropped', host, table, flow: text, reason: `group ${a.groupId} does not exist` });
            return true;
          }
          if (g.groupType === OFPGT.SELECT) {
            const i = selectBucket(g.buckets.map((b) => b.weight), pkt);
            if (i < 0) {
              res.outcomes.push({ kind: 'dropped', host, table, flow: text, reason: `select group ${a.groupId} has no bucket` });
              return true;
            }
            res.steps.push({ host, table, depth: depth + 1, note: `group ${a.groupId} (select) bucket ${i} of ${g.buckets.length}` });
            this.actions(res, host, new Map(pkt), g.buckets[i]!.actions, table, depth + 1, text);
            break;
          }
          g.buckets.forEach((bucket, i) => {
            res.steps.push({ host, table, depth: depth + 1, note: `group ${a.groupId} bucket ${i}` });
            this.actions(res, host, new Map(pkt), bucket.actions, table, depth + 1, text);
          });
          break;
        }
        case 'output':
          this.output(res, host, new Map(pkt), a.port, table, depth);
          break;
        case 'note':
          break;
        default:
          throw new TraceError(`tracer does not model action ${a.type}`, { action: a.type });
      }
    }
    return false;
  }

  private output(res: TraceResult, host: string, pkt: Fields, port: number, table: number, depth: number): void {
    if (port === OFPP.IN_PORT) port = Number(pkt.get('in_port') ?? 0n);
    else if (port === OFPP.CONTROLLER) {
      res.outcomes.push({ kind: 'controller', host, table });
      return;
    } else if (BigInt(port) === pkt.get('in_port')) {
      // OpenFlow never sends a frame back out of its in_port unless told IN_PORT.
      res.steps.push({ host, table, depth, note: `output:${port} skipped (in_port)` });
      return;
    }
    const ep = this.portOwner.get(host)!.get(port);
    const exit = ep && this.opts.forwardServices !== false ? this.sfExit.get(ep) : undefined;
    if (ep && exit && pkt.get('dl_type') === 0x800n && pkt.get('nw_dst') !== BigInt(ep.ip ?? -1)) {
      this.forward(res, host, pkt, ep, exit, table, depth);
      return;
    }
    if (ep) {
      res.steps.push({ host, table, depth, note: `output to port ${port} (${ep.id})` });
      res.outcomes.push({ kind: 'delivered', host, port, endpoint: ep.id, fields: pkt });
      return;
    }
    const peer = this.tunnelPeer.get(host)!.get(port);
    if (peer !== undefined) {
      const back = this.result.ctx.placement.hosts[peer]?.tunnels[host];
      res.steps.push({ host, table, depth, note: `tunnel to ${peer} with tun_id=0x${(pkt.get('tun_id') ?? 0n).toString(16)}` });
      if (this.opts.followTunnels === false) {
        res.outcomes.push({ kind: 'tunneled', host, port, peer, tunId: pkt.get('tun_id') ?? 0n, fields: pkt });
        return;
      }
      if (back === undefined || !this.tables.has(peer)) {
        res.outcomes.push({ kind: 'dropped', host: peer, table: 0, reason: `no tunnel back from ${peer} to ${host}` });
        return;
      }
      // A new pipeline on the peer: only the packet headers and tun_id travel.
      const np: Fields = new Map();
      for (const [k, v] of pkt) if (!/^(reg\d+|metadata|ct_state|ct_zone|in_port)$/.test(k)) np.set(k, v);
      np.set('in_port', BigInt(back));
      this.run(res, peer, np, 0, depth);
      return;
    }
    res.outcomes.push({ kind: 'dropped', host, table, reason: `output to port ${port}, which is nothing known` });
  }

  /** A service function forwards the packet as Linux IP forwarding would, out of `exit`. */
  private forward(res: TraceResult, host: string, pkt: Fields, sf: Endpoint, exit: Endpoint, table: number, depth: number): void {
    const port = this.portOwner.get(host)!;
    const inPort = [...port.entries()].find(([, e]) => e === exit)?.[0];
    res.passes.push(`${sf.id}@${host}`);
    const ttl = pkt.get('nw_ttl') ?? 64n;
    if (ttl <= 1n) {
      res.steps.push({ host, table, depth, note: `service function ${sf.id} drops it (TTL exceeded)` });
      res.outcomes.push({ kind: 'dropped', host, table, reason: `TTL exceeded in service function ${sf.id}` });
      return;
    }
    if (inPort === undefined) {
      res.outcomes.push({ kind: 'dropped', host, table, reason: `service function ${sf.id}: its egress ${exit.id} has no port on ${host}` });
      return;
    }
    const dst = Number(pkt.get('nw_dst') ?? 0n);
    const next = exit.network.endpoints.find((e) => e.ip === dst);
    const np: Fields = new Map();
    for (const [k, v] of pkt) if (!/^(reg\d+|metadata|ct_state|ct_zone|in_port|tun_id)$/.test(k)) np.set(k, v);
    np.set('nw_ttl', ttl - 1n);
    np.set('dl_src', macBig(exit.mac));
    np.set('dl_dst', macBig(next ? next.mac : exit.network.gwMac));
    np.set('in_port', BigInt(inPort));
    res.steps.push({ host, table, depth, note: `service function ${sf.id} forwards it (IP forwarding, TTL-1) out of ${exit.id} to ${next ? next.id : 'its gateway'}` });
    this.run(res, host, np, 0, depth);
  }
}

/**
 * The bucket a select group picks: a symmetric hash of the 5-tuple (so a reply picks
 * the bucket its request picked in a group with the same buckets) into a 64-slot
 * table filled by weight with Webster's method, as OVS's dp_hash selection does.
 * UDP ports are left out, as OVS leaves them out. Returns -1 for an empty group.
 */
export function selectBucket(weights: number[], pkt: Fields): number {
  if (!weights.length) return -1;
  const a = pkt.get('nw_src') ?? 0n;
  const b = pkt.get('nw_dst') ?? 0n;
  // Like OVS's symmetric L4 hash, TCP ports count and UDP ports do not (measured: 40 UDP
  // flows between one pair of endpoints all took one instance).
  const sp = pkt.get('tcp_src') ?? 0n;
  const dp = pkt.get('tcp_dst') ?? 0n;
  const key = `${a < b ? a : b}|${a < b ? b : a}|${pkt.get('nw_proto') ?? 0n}|${sp < dp ? sp : dp}|${sp < dp ? dp : sp}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  const slots: number[] = [];
  const div = weights.map(() => 1);
  for (let s = 0; s < 64; s++) {
    let win = 0;
    for (let i = 1; i < weights.length; i++) if (weights[i]! / div[i]! > weights[win]! / div[win]!) win = i;
    div[win]! += 2;
    slots.push(win);
  }
  return slots[h & 63]!;
}

function unsupported(i: Instruction): never {
  throw new TraceError(`tracer does not model instruction ${i.type}`, { instruction: i.type });
}

function hasTerminal(ins: Instruction[]): boolean {
  return ins.some((i) => i.type === 'apply_actions' && i.actions.some((a) => a.type === 'output' || a.type === 'group' || a.type === 'resubmit'));
}

function readSub(pkt: Fields, s: Subfield): bigint {
  return ((pkt.get(s.field.name) ?? 0n) >> BigInt(s.ofs)) & ((1n << BigInt(s.nBits)) - 1n);
}
function writeSub(pkt: Fields, s: Subfield, v: bigint): void {
  const mask = ((1n << BigInt(s.nBits)) - 1n) << BigInt(s.ofs);
  const cur = pkt.get(s.field.name) ?? 0n;
  pkt.set(s.field.name, (cur & ~mask) | ((v << BigInt(s.ofs)) & mask));
}

function connKeys(p: Fields, zone: bigint): [string, string] {
  const v6 = p.get('dl_type') === 0x86ddn;
  const src = p.get(v6 ? 'ipv6_src' : 'nw_src') ?? 0n;
  const dst = p.get(v6 ? 'ipv6_dst' : 'nw_dst') ?? 0n;
  const proto = p.get('nw_proto') ?? 0n;
  const sp = p.get('tcp_src') ?? p.get('udp_src') ?? 0n;
  const dp = p.get('tcp_dst') ?? p.get('udp_dst') ?? 0n;
  return [`${zone}|${proto}|${src}|${dst}|${sp}|${dp}`, `${zone}|${proto}|${dst}|${src}|${dp}|${sp}`];
}

export function ctText(v: bigint): string {
  return (['new', 'est', 'rel', 'rpl', 'inv', 'trk'] as const).filter((_, i) => (v >> BigInt(i)) & 1n).join('|') || '0';
}

// ---- packets between endpoints ----------------------------------------------------------------

export interface PacketSpec {
  protocol?: 'tcp' | 'udp' | 'icmp' | 'arp';
  dport?: number;
  sport?: number;
  ttl?: number;
  /** Override any header (for spoofing, broadcast, ...). Field names as in the codec (dl_src, nw_src, ...). */
  set?: Record<string, bigint>;
}

const macBig = (s: string) => BigInt('0x' + s.replace(/:/g, ''));

export function findEndpoint(model: Model, ref: string): Endpoint {
  const [tn, en] = ref.split('/');
  const t = model.tenants.find((x) => x.name === tn);
  const e = t?.endpoints.find((x) => x.name === en);
  if (!e) throw new TraceError(`unknown endpoint "${ref}" (want TENANT/ENDPOINT)`, { ref });
  return e;
}

/**
 * The headers `from` would send to `to`: to its MAC on the same network, to the
 * gateway MAC otherwise (the endpoint's default route).
 */
export function headersBetween(from: Endpoint, to: Endpoint, spec: PacketSpec = {}): Fields {
  const h: Fields = new Map();
  const sameNet = from.network === to.network;
  h.set('dl_src', macBig(from.mac));
  h.set('dl_dst', macBig(sameNet ? to.mac : from.network.gwMac));
  const proto = spec.protocol ?? 'icmp';
  if (proto === 'arp') {
    h.set('dl_dst', 0xffffffffffffn);
    h.set('dl_type', 0x0806n);
    h.set('arp_op', 1n);
    h.set('arp_spa', BigInt(from.ip ?? 0));
    h.set('arp_tpa', BigInt(to.ip ?? 0));
    h.set('arp_sha', macBig(from.mac));
  } else {
    if (from.ip === undefined || to.ip === undefined) throw new TraceError(`${from.id} and ${to.id} need IPv4 addresses`);
    h.set('dl_type', 0x0800n);
    h.set('nw_src', BigInt(from.ip));
    h.set('nw_dst', BigInt(to.ip));
    h.set('nw_ttl', BigInt(spec.ttl ?? 64));
    h.set('nw_proto', proto === 'tcp' ? 6n : proto === 'udp' ? 17n : 1n);
    if (proto === 'tcp' || proto === 'udp') {
      h.set(`${proto}_src`, BigInt(spec.sport ?? 40000));
      h.set(`${proto}_dst`, BigInt(spec.dport ?? 80));
    } else h.set('icmp_type', 8n);
  }
  for (const [k, v] of Object.entries(spec.set ?? {})) h.set(k, v);
  return h;
}

/** Traces `from` -> `to` (endpoint refs "tenant/name") through the compiled flows. */
export function traceBetween(result: CompileResult, fromRef: string, toRef: string, spec: PacketSpec = {}, tracer = new Tracer(result)): TraceResult {
  const from = findEndpoint(result.model, fromRef);
  const to = findEndpoint(result.model, toRef);
  const port = result.ctx.placement.hosts[from.host]?.ports[from.id];
  if (port === undefined) throw new TraceError(`${from.id} has no port on ${from.host} in the placement`);
  return tracer.trace(from.host, port, headersBetween(from, to, spec));
}

/** One line per verdict: "delivered to acme/db-1 on host2" / "dropped on host1 at table 10 (acl_ingress) by ...". */
export function verdicts(r: TraceResult): string[] {
  return r.outcomes.map((o) => {
    if (o.kind === 'delivered') return `delivered to ${o.endpoint ?? `port ${o.port}`} on ${o.host}`;
    if (o.kind === 'controller') return `sent to the controller from ${o.host} table ${o.table}`;
    if (o.kind === 'tunneled') return `tunneled from ${o.host} to ${o.peer} (port ${o.port}, tun_id=0x${o.tunId.toString(16)})`;
    const t = TABLE_BY_ID.get(o.table);
    return `dropped on ${o.host} at table ${o.table} (${t?.name ?? '?'}): ${o.reason}${o.flow ? ` [${o.flow}]` : ''}`;
  });
}

/** Human-readable trace: each table's matched flow, then the verdicts. */
export function formatTrace(r: TraceResult): string {
  const lines: string[] = [];
  let host = '';
  for (const s of r.steps) {
    if (s.host !== host) {
      host = s.host;
      lines.push(`== ${host}`);
    }
    const pad = '  '.repeat(s.depth + 1);
    const t = TABLE_BY_ID.get(s.table);
    if (s.flow) lines.push(`${pad}${s.table} ${t?.name ?? ''}: ${s.flow}`);
    if (s.note) lines.push(`${pad}-> ${s.note}`);
  }
  if (r.passes.length) lines.push(`service functions: ${r.passes.join(' -> ')}`);
  lines.push('verdict:');
  for (const v of verdicts(r)) lines.push(`  ${v}`);
  return lines.join('\n');
}

export { formatIp4 };
