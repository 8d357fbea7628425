/**
 * Service-chain steering (table 20). See docs/PIPELINE.md "Service chains".
 *
 * No chain header: where a packet stands in its chain is implied by the port it
 * enters the switch from.
 * - From a source endpoint of the chain (its logical inport, reg14): the packet is
 *   classified and sent to hop 0.
 * - From hop k's instance (its egress port): it was classified before and has been
 *   through hop k, so it goes to hop k+1; after the last hop, on to its real
 *   destination (the instance addressed it there itself: it routed the packet).
 * - Over a tunnel: never here (table 0 sends tunnel traffic straight to L2); the
 *   sending host already steered it.
 * - From a routed source (on another network the tenant's router joins to the
 *   chain's): routed first (table 30), then classified in table 35 on its host
 *   as if it had entered on the chain's network, and sent to hop 0 the same way.
 *   Its replies leave the destination for the gateway MAC: classified at the
 *   destination's port as any reply, each instance forwards them to its gateway
 *   (the router MAC), and after the reverse path's last hop table 20 passes them
 *   on to table 30, which routes them to the source's network.
 * Steering rewrites eth_dst to the instance's MAC in a select-group bucket, which
 * resubmits to L2: local instances are output directly, remote ones through the
 * overlay like any endpoint. Symmetric chains also classify the replies at the
 * destination's port and walk the hops backwards through groups with the same
 * buckets, so OVS's symmetric 5-tuple hash picks the same instance both ways.
 */
import { chainDestinations, chainSources, isRoutedSource, type Chain, type ChainInstance, type Endpoint } from '../model/index.js';
import { OFPG_ANY, OFPGC, OFPGT, OFPP, type Action, type FlowMod, type GroupMod, type Instruction, type OxmTlv } from '../openflow/index.js';
import { TenetError } from '../util/errors.js';
import { apply, FLD, flow, goto, M, mac, portMasks, setField, tlv, u32 } from './build.js';
import type { Contribution, Ctx } from './compile.js';
import { chainGroup, PRIO, T } from './tables.js';

const NONE: Contribution = { flows: [], groups: [] };
const DROP: Instruction[] = [];
const PASS: Instruction[] = [goto(T.ARP)];

/** Instances of a hop that can take traffic: bound to a port and not marked unhealthy. */
export function liveInstances(ctx: Ctx, hop: { instances: ChainInstance[] }): ChainInstance[] {
  return hop.instances.filter((i) => ctx.ofport(i.ingress) !== undefined && ctx.ofport(i.egress) !== undefined && !ctx.unhealthy.has(i.ingress.id) && !ctx.unhealthy.has(i.egress.id));
}

/**
 * Instructions that send a packet to hop `k` walking in `dir` (+1 forward, -1 for
 * replies): the first hop on the way with a live instance; a hop without one is
 * skipped (failMode open) or drops the packet (closed); past the end, the packet
 * goes on as addressed.
 */
function steer(ctx: Ctx, c: Chain, k: number, dir: 1 | -1): Instruction[] {
  for (let j = k; j >= 0 && j < c.hops.length; j += dir) {
    if (liveInstances(ctx, c.hops[j]!).length) return [apply([{ type: 'group', groupId: chainGroup(c.key, j, dir < 0) }])];
    if (c.failMode === 'closed') return DROP;
  }
  return PASS;
}

type L4 = OxmTlv[];

/** Protocol and port matches; `reply` matches the source port (the classifier's port on the way back). */
function l4(c: Chain, reply: boolean): L4[] {
  if (c.protocol === 'any') return [[M.ip]];
  if (c.protocol === 'icmp') return [[M.ip, M.icmp]];
  const proto = c.protocol === 'tcp' ? M.tcp : M.udp;
  if (!c.ports.length) return [[M.ip, proto]];
  const fld = reply ? (c.protocol === 'tcp' ? FLD.tcp_src : FLD.udp_src) : c.protocol === 'tcp' ? FLD.tcp_dst : FLD.udp_dst;
  // Port 0: IP fragments. OVS (frag handling "normal", the default) looks fragments up with
  // their ports zeroed, first ones included, so without this a fragmented datagram of the
  // chain's traffic would go around it (and out of a service function be dropped).
  return [[0, 0] as [number, number], ...c.ports].flatMap(([lo, hi]) => portMasks(lo, hi).map(([v, m]) => [M.ip, proto, tlv(fld, Uint8Array.of(v >> 8, v & 255), Uint8Array.of(m >> 8, m & 255))]));
}

const nwSrc = (e: Endpoint) => tlv(FLD.nw_src, u32(e.ip!));
const nwDst = (e: Endpoint) => tlv(FLD.nw_dst, u32(e.ip!));

/** The select group of hop k: one bucket per live instance, eth_dst := its port's MAC, then L2. */
function hopGroup(ctx: Ctx, c: Chain, k: number, reply: boolean): GroupMod | undefined {
  const live = liveInstances(ctx, c.hops[k]!);
  if (!live.length) return undefined;
  return {
    command: OFPGC.ADD,
    groupType: OFPGT.SELECT,
    groupId: chainGroup(c.key, k, reply),
    buckets: live.map((i) => ({
      weight: i.weight,
      watchPort: OFPP.ANY,
      watchGroup: OFPG_ANY,
      actions: [setField(FLD.dl_dst, mac((reply ? i.egress : i.ingress).mac)), RESUBMIT_L2] as Action[],
    })),
  };
}
// 0xfff8: OFPP_IN_PORT in the 16-bit form NXAST_RESUBMIT_TABLE carries ("resubmit(,40)")
const RESUBMIT_L2: Action = { type: 'resubmit', inPort: 0xfff8, table: T.L2 };

/**
 * Two chains (or one, twice) put the same table-20 flow on a host: the packet's
 * position would be ambiguous and the switch state cannot hold both. Validation
 * rejects the models that do this (model/chains.ts); reaching it is a bug there.
 */
export class ChainConflictError extends TenetError {
  constructor(host: string, flowText: string, chains: string[]) {
    super('ECHAINCONFLICT', `chains ${chains.map((c) => `"${c}"`).join(' and ')} both classify ${flowText} on host ${host}`, { host, flow: flowText, chains });
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const hex = (b: Uint8Array) => {
  let s = '';
  for (const x of b) s += HEX[x];
  return s;
};
/** A flow's identity as OpenFlow sees it (table, priority, match; the match is in canonical order). */
function flowIdentity(f: FlowMod): string {
  let k = `table=${f.tableId},priority=${f.priority}`;
  for (const m of f.match) k += `,${m.field.name}=${hex(m.value)}${m.mask ? `/${hex(m.mask)}` : ''}`;
  return k;
}

/** Per compile context and host: the chain flows' identities and which chain put each (kept up to date as chains are regenerated). */
const claims = new WeakMap<Ctx, Map<string, { byFlow: Map<string, string>; byChain: Map<string, string[]> }>>();

function claim(ctx: Ctx, host: string, c: Chain, flows: FlowMod[]): void {
  let hosts = claims.get(ctx);
  if (!hosts) claims.set(ctx, (hosts = new Map()));
  let h = hosts.get(host);
  if (!h) hosts.set(host, (h = { byFlow: new Map(), byChain: new Map() }));
  for (const k of h.byChain.get(c.id) ?? []) h.byFlow.delete(k);
  const mine: string[] = [];
  for (const f of flows) {
    const k = flowIdentity(f);
    const owner = h.byFlow.get(k);
    if (owner !== undefined) {
      for (const x of mine) h.byFlow.delete(x);
      h.byChain.delete(c.id);
      throw new ChainConflictError(host, k, owner === c.id ? [c.id] : [owner, c.id]);
    }
    h.byFlow.set(k, c.id);
    mine.push(k);
  }
  h.byChain.set(c.id, mine);
}

/**
 * Table-20 flows of a local service-function port (an endpoint that is an instance
 * of some chain), below its chain flows: its own source address goes on like any
 * endpoint's traffic (it came through port security and policy); other IPv4 from
 * it, which port security sent here directly, is dropped unless one of its chain
 * positions (the flows above) took it.
 */
export function sfFlows(cookie: bigint, reg14: OxmTlv, meta: OxmTlv, nwSrc: OxmTlv | undefined): FlowMod[] {
  const out: FlowMod[] = [];
  if (nwSrc) out.push(flow(T.CHAIN, PRIO.SF_FOREIGN, cookie, [M.ip, nwSrc, reg14, meta], PASS));
  out.push(flow(T.CHAIN, PRIO.SF_FOREIGN_DROP, cookie, [M.ip, reg14, meta], DROP));
  return out;
}

/** A chain's flows and groups on `host`. Throws ChainConflictError if another chain put one of its flows on the host already. */
export function genChain(ctx: Ctx, host: string, c: Chain): Contribution {
  const t = ctx.tenants.get(c.tenant)!;
  const sources = chainSources(t, c).filter((e) => e.ip !== undefined);
  const dests = chainDestinations(t, c).filter((e) => e.ip !== undefined);
  if (!sources.length || !dests.length) return claim(ctx, host, c, []), NONE;
  const cookie = ctx.cookie(`chain:${c.id}`);
  const meta = ctx.net(c.network).meta;
  const local = (e: Endpoint) => e.host === host && ctx.ofport(e) !== undefined;
  const reg14 = (e: Endpoint) => ctx.ep(e).reg14;
  const fwd = l4(c, false);
  const rev = c.symmetric ? l4(c, true) : [];
  const flows: FlowMod[] = [];
  const prio = PRIO.NORMAL;

  // Forward: classify at the source's port, then from each hop's egress port to the next hop.
  // A routed source (another network the tenant's router joins to the chain's) is classified
  // after the router stage, in table 35 on its host: metadata is the chain's network by then,
  // its reg14 and address still the source's. With no hop to go to (failMode open, all
  // empty) it is routed on as usual; closed drops it.
  const fwd0 = steer(ctx, c, 0, 1);
  for (const s of sources) {
    if (!local(s)) continue;
    if (isRoutedSource(c, s)) {
      if (fwd0 === PASS) continue;
      for (const d of dests) for (const m of fwd) flows.push(flow(T.L3_RESOLVE, PRIO.CHAIN_ROUTED, cookie, [meta, reg14(s), ...m, nwSrc(s), nwDst(d)], fwd0));
      continue;
    }
    for (const d of dests) for (const m of fwd) flows.push(flow(T.CHAIN, prio, cookie, [meta, reg14(s), ...m, nwDst(d)], fwd0));
  }
  const seen = new Set<Endpoint>();
  c.hops.forEach((hop, k) => {
    const next = steer(ctx, c, k + 1, 1);
    for (const i of hop.instances) {
      if (!local(i.egress) || seen.has(i.egress)) continue;
      seen.add(i.egress);
      for (const d of dests) for (const m of fwd) flows.push(flow(T.CHAIN, prio, cookie, [meta, reg14(i.egress), ...m, nwDst(d)], next));
    }
  });

  // Replies of a symmetric chain: classify at the destination's port, walk the hops backwards.
  if (c.symmetric) {
    const last = steer(ctx, c, c.hops.length - 1, -1);
    for (const d of dests) {
      if (!local(d)) continue;
      for (const s of sources) for (const m of rev) flows.push(flow(T.CHAIN, prio, cookie, [meta, reg14(d), ...m, nwDst(s)], last));
    }
    const seenRev = new Set<Endpoint>();
    c.hops.forEach((hop, k) => {
      const next = steer(ctx, c, k - 1, -1);
      for (const i of hop.instances) {
        if (!local(i.ingress) || seenRev.has(i.ingress)) continue;
        seenRev.add(i.ingress);
        for (const d of dests) for (const s of sources) for (const m of rev) flows.push(flow(T.CHAIN, prio, cookie, [meta, reg14(i.ingress), ...m, nwSrc(d), nwDst(s)], next));
      }
    });
  }
  claim(ctx, host, c, flows);
  if (!flows.length) return NONE;
  const groups: GroupMod[] = [];
  c.hops.forEach((_, k) => {
    const g = hopGroup(ctx, c, k, false);
    if (g) groups.push(g);
    const r = c.symmetric ? hopGroup(ctx, c, k, true) : undefined;
    if (r) groups.push(r);
  });
  return { flows, groups };
}
