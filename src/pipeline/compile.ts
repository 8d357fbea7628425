/**
 * The compiler: validated model + placement -> per host, the exact flows and
 * groups of br-int. Pure and deterministic. Flows are produced per
 * "contribution" (the flows one model object puts on one host), which is what the
 * incremental compiler recomputes and diffs, and what the cookie names.
 *
 * Canonical order of a host's flows: table ascending, priority descending, then
 * generation order (objects sorted by id; fixed order inside each object).
 */
import { fnv32, formatIp4 } from '../ipam/index.js';
import { TenetError } from '../util/errors.js';
import type { Endpoint, Model, Network, Policy, SelectorDoc, Tenant } from '../model/index.js';
import type { FlowMod, GroupMod, OxmTlv, Action, Bucket, Instruction } from '../openflow/index.js';
import {
  allGroup,
  apply,
  bucket,
  ARP_SWAP,
  CT_CLEAR,
  CT_COMMIT,
  DEC_TTL,
  FLD,
  flow,
  goto,
  group,
  IN_PORT,
  ip6bytes,
  M,
  mac,
  output,
  parsedFlows,
  portMasks,
  setField,
  tlv,
  u32,
  u32s,
  u64,
  writeMeta,
} from './build.js';
import { FLAG_FROM_TUNNEL, floodGroup, PRIO, T } from './tables.js';
import { genChain, sfFlows } from './chains.js';

/** reg11 value naming a host (see tables.ts); validation rejects two hosts with the same key. */
export function hostKey(host: string): number {
  return fnv32(`host:${host}`);
}
const NO_GROUPS: GroupMod[] = [];

/** Objects that depend only on an ofport (shared by every host and flow that uses that number). */
interface PortCache {
  inPort: OxmTlv;
  /** [in_port=ofport]: the whole match of an endpoint's table-0 flow */
  inPortMatch: OxmTlv[];
  setReg13: Action;
  outActs: Action[];
  outIns: Instruction[];
  /** flood-group bucket: output to this port */
  outBucket: Bucket;
}
// Preallocated: assigning index 30000 of an empty array turns it into a dictionary (hash) array.
const PORTS = new Array<PortCache | undefined>(0x10000);
// (the builders are not closures in the getters: that was one closure per call, 100k+ per compile)
function portObjs(ofport: number): PortCache {
  return ofport >= 0 && ofport < 0x10000 ? (PORTS[ofport] ??= makePortObjs(ofport)) : makePortObjs(ofport);
}
function makePortObjs(ofport: number): PortCache {
  const b = u32s(ofport);
  const outActs = [output(ofport)];
  const inPort = tlv(FLD.in_port, b);
  return { inPort, inPortMatch: [inPort], setReg13: setField(FLD.reg13, b), outActs, outIns: [apply(outActs)], outBucket: bucket(outActs) };
}
/** Objects that depend only on a logical port key (1..0x7fff, so they are shared across networks). */
interface KeyCache {
  reg14: OxmTlv;
  reg15: OxmTlv;
  setReg14: Action;
  setReg15: Action;
}
const KEYS = new Array<KeyCache | undefined>(0x10000); // preallocated, see PORTS
function keyObjs(port: number): KeyCache {
  return port >= 0 && port < 0x10000 ? (KEYS[port] ??= makeKeyObjs(port)) : makeKeyObjs(port);
}
function makeKeyObjs(port: number): KeyCache {
  const b = u32s(port);
  return { reg14: tlv(FLD.reg14, b), reg15: tlv(FLD.reg15, b), setReg14: setField(FLD.reg14, b), setReg15: setField(FLD.reg15, b) };
}
// No cache per (logical port key, ofport) or (key, host): keys are hashed over 1..0x7fff, so
// such pairs hardly repeat (99,850 distinct pairs for the benchmark's 100k endpoints); a
// cache only added a Map entry and an object per endpoint. An endpoint's own objects are
// built once per compile anyway (its local flows once, its remote ones cached in EpCache).
/** Objects that depend only on a host (reg11 = its key), per Ctx. */
interface HostCache {
  reg11: OxmTlv;
  setReg11: Action;
}

/** Where things are on each host: endpoint ofports (from iface-id bindings) and tunnel ofports per peer. */
export interface HostPlacement {
  /** endpoint id ("tenant/endpoint") -> ofport on this host */
  ports: Record<string, number>;
  /** peer host name -> ofport of the tunnel to it */
  tunnels: Record<string, number>;
}
export interface Placement {
  hosts: Record<string, HostPlacement>;
}

export interface CompileOptions {
  /**
   * Pipeline epoch: the lower 32 bits of every cookie, 1..2^32-1, default 1.
   * Keep it CONSTANT across applies and restarts; see cookieOf. Changing it
   * re-adds every flow on every switch (counters and durations reset).
   */
  generation?: number;
  /**
   * Endpoint ids ("tenant/name") of service-function instances that failed (health
   * check, port down): they leave their hop's select group; a hop left with none
   * follows its chain's failMode.
   */
  unhealthy?: ReadonlySet<string>;
}

/** Bad compile options (a programming error of the caller, reported with the value). */
export class CompileOptionsError extends TenetError {
  constructor(message: string, context: Record<string, unknown>) {
    super('ECOMPILEOPTS', message, context);
  }
}

export interface Contribution {
  flows: FlowMod[];
  groups: GroupMod[];
}

/** Flows one object puts on one host. Keys: "pipeline", "tenant:T", "policy:T/P", "router:T", "chain:T/C", "network:T/N", "endpoint:T/E". */
export type HostContribs = Map<string, Contribution>;

export const COOKIE_GENERATION_BITS = 32n;
const LOW32 = 0xffffffffn;

/**
 * Cookie = 32-bit hash of the source object key (upper half) | generation (lower half).
 *
 * The generation is a pipeline EPOCH, not an apply counter. The reconciler treats a
 * flow whose cookie differs as changed and re-adds it, which resets its duration
 * and counters; so a cookie must be a pure function of what the flow is. With a
 * constant epoch it is: an untouched flow keeps its cookie across applies,
 * incremental changes and controller restarts (a restarted controller compiles the
 * same cookies and the reconciler leaves the switch alone), while a changed flow is
 * replaced because its identity or instructions differ. Stale flows are found by
 * identity (not wanted any more), not by generation. Bump the epoch only to replace
 * every flow on purpose (e.g. a compiler upgrade that should not trust old state).
 * The epoch is never 0, so a cookie-0 flow (ovs-ofctl's default) is never ours.
 */
export function cookieOf(key: string, generation: number): bigint {
  return (BigInt(fnv32(key)) << COOKIE_GENERATION_BITS) | BigInt(checkGeneration(generation));
}

/** Upper half: fnv32 of the source object key ("endpoint:acme/web-1", ...). */
export function cookieObject(cookie: bigint): number {
  return Number((cookie >> COOKIE_GENERATION_BITS) & LOW32);
}
/** Lower half: the pipeline epoch the flow was compiled with (0 = not a Tenet flow). */
export function cookieGeneration(cookie: bigint): number {
  return Number(cookie & LOW32);
}

function checkGeneration(g: number): number {
  if (!Number.isInteger(g) || g < 1 || g > 0xffffffff) throw new CompileOptionsError(`generation must be an integer in 1..4294967295, got ${g}`, { generation: g });
  return g;
}

/** Offline placement: tunnels numbered 1.. by peer name, endpoint ports 1000.. by endpoint id. */
export function defaultPlacement(model: Model): Placement {
  const hosts: Record<string, HostPlacement> = {};
  const names = model.hosts.map((h) => h.name);
  for (const h of names) {
    const tunnels: Record<string, number> = {};
    names.filter((p) => p !== h).forEach((p, i) => (tunnels[p] = i + 1));
    hosts[h] = { ports: {}, tunnels };
  }
  const eps = model.tenants.flatMap((t) => t.endpoints).sort((a, b) => (a.id < b.id ? -1 : 1));
  const next = new Map<string, number>();
  for (const e of eps) {
    const hp = hosts[e.host];
    if (!hp) continue;
    const n = next.get(e.host) ?? 1000;
    hp.ports[e.id] = n;
    next.set(e.host, n + 1);
  }
  return { hosts };
}

interface EpCache {
  nc: NetCache;
  meta: OxmTlv;
  reg14: OxmTlv;
  reg15: OxmTlv;
  dlSrc: OxmTlv;
  dlDst: OxmTlv;
  mac: Uint8Array;
  nwSrc?: OxmTlv;
  nwDst?: OxmTlv;
  arpSpa?: OxmTlv;
  arpTpa?: OxmTlv;
  arpSha: OxmTlv;
  ip6Src?: OxmTlv;
  setReg14: Action;
  setReg15: Action;
  /** [dl_dst, metadata]: the match of its table-40 flow, local or remote */
  l2Match?: OxmTlv[];
  // Flows that are identical on every host that has them, built once (flows are immutable).
  arp?: FlowMod;
  resolve?: FlowMod;
  l2Remote?: FlowMod;
  /** The endpoint's whole contribution on hosts it is not on: the same everywhere, by (has network, routes) */
  remote?: (Contribution | undefined)[];
  cookie: bigint;
  key: string;
}
interface NetCache {
  meta: OxmTlv;
  gwMac: Uint8Array;
  gwDlDst: OxmTlv;
  setTunId: Action;
  dst4?: OxmTlv;
  dst6?: OxmTlv;
  shared?: FlowMod[];
  defaults?: FlowMod[];
  routes?: Map<Network, FlowMod>;
  /** a route's instructions into this network (the same from every source network) */
  routeIns?: Instruction[];
  writeMeta: Instruction;
  key: string;
  cookie: bigint;
  /** table-60 flow to each remote host's tunnel, by remote host then tunnel ofport */
  outs?: Map<string, Map<number, FlowMod>>;
  /** flood-group bucket actions to each tunnel ofport */
  tunActs?: Map<number, Action[]>;
  /** flood-group bucket to each tunnel ofport */
  tunBuckets?: Map<number, Bucket>;
}

/**
 * Indexes over the model the generators need (which networks are on which host,
 * which hosts have a network). Kept up to date by the incremental compiler.
 */
export class Ctx {
  readonly tenants = new Map<string, Tenant>();
  /** network -> host -> number of its endpoints there */
  readonly netHosts = new Map<Network, Map<string, number>>();
  /** host -> networks with an endpoint there */
  readonly hostNets = new Map<string, Set<Network>>();
  private readonly cookies = new Map<string, bigint>();
  // A Map, not a WeakMap: 100k entries in an ephemeron table made every scavenge of the full
  // compile slower (~10 % of its CPU). Entries go with removeEndpointIndex.
  private readonly epCache = new Map<Endpoint, EpCache>();
  private readonly netCache = new Map<Network, NetCache>(); // a Map for the same reason as epCache; networks are never removed
  private readonly hostCache = new Map<string, HostCache>();
  readonly pipelineFlows: FlowMod[];
  /** Endpoints that are instances of some chain (service functions: also forward others' IPv4 at their chain positions; see chains.ts sfFlows). */
  readonly serviceFunctions = new Set<Endpoint>();

  constructor(
    readonly model: Model,
    readonly placement: Placement,
    readonly generation: number,
    readonly unhealthy: ReadonlySet<string> = new Set(),
  ) {
    for (const t of model.tenants) {
      this.tenants.set(t.name, t);
      for (const e of t.endpoints) this.addEndpointIndex(e);
      for (const c of t.chains ?? []) for (const h of c.hops) for (const i of h.instances) this.serviceFunctions.add(i.ingress).add(i.egress);
    }
    this.pipelineFlows = pipelineFlows(this.cookie('pipeline'));
  }

  addEndpointIndex(e: Endpoint): void {
    let hm = this.netHosts.get(e.network);
    if (!hm) this.netHosts.set(e.network, (hm = new Map()));
    const had = hm.get(e.host) ?? 0;
    hm.set(e.host, had + 1);
    if (!had) this.hostsMemo.delete(e.network);
    let hs = this.hostNets.get(e.host);
    if (!hs) this.hostNets.set(e.host, (hs = new Set()));
    hs.add(e.network);
    this.routesMemo.delete(e.host);
  }
  removeEndpointIndex(e: Endpoint): void {
    this.epCache.delete(e);
    const hm = this.netHosts.get(e.network)!;
    const n = hm.get(e.host)! - 1;
    if (n > 0) hm.set(e.host, n);
    else {
      hm.delete(e.host);
      this.hostsMemo.delete(e.network);
      this.hostNets.get(e.host)?.delete(e.network);
      this.routesMemo.delete(e.host);
    }
  }

  cookie(key: string): bigint {
    let c = this.cookies.get(key);
    if (c === undefined) this.cookies.set(key, (c = cookieOf(key, this.generation)));
    return c;
  }

  /** Hosts that have an endpoint of the network, sorted (memoised until the network's hosts change; callers must not mutate it). */
  hostsOf(n: Network): readonly string[] {
    let hs = this.hostsMemo.get(n);
    if (!hs) this.hostsMemo.set(n, (hs = [...(this.netHosts.get(n)?.keys() ?? [])].sort()));
    return hs;
  }
  private readonly hostsMemo = new Map<Network, string[]>();
  has(host: string, n: Network): boolean {
    return this.hostNets.get(host)?.has(n) ?? false;
  }
  /** The tenant's router has a network with a local endpoint on this host (so this host routes for it). */
  routesOn(host: string, t: Tenant): boolean {
    return !!t.router && t.router.networks.some((n) => this.has(host, n));
  }
  private readonly routesMemo = new Map<string, Map<string, boolean>>();
  /** routesOn() by tenant name, memoised per host (cleared when the host's networks change). */
  routesOnTenant(host: string, tenant: string): boolean {
    let m = this.routesMemo.get(host);
    if (!m) this.routesMemo.set(host, (m = new Map()));
    let v = m.get(tenant);
    if (v === undefined) m.set(tenant, (v = this.routesOn(host, this.tenants.get(tenant)!)));
    return v;
  }

  /** Tenants with an endpoint on the host, sorted. */
  tenantsOn(host: string): Tenant[] {
    const out = new Set<Tenant>();
    for (const n of this.hostNets.get(host) ?? []) out.add(this.tenants.get(n.tenant)!);
    return [...out].sort((a, b) => (a.name < b.name ? -1 : 1));
  }
  /** Networks whose endpoints this host must be able to reach: its own, plus all its routers' networks. */
  reach(host: string): Network[] {
    const out = new Set<Network>(this.hostNets.get(host) ?? []);
    for (const t of this.tenantsOn(host)) if (this.routesOn(host, t)) for (const n of t.router!.networks) out.add(n);
    return [...out].sort((a, b) => (a.id < b.id ? -1 : 1));
  }
  /** Whether the host needs flows to reach the network's endpoints (see reach()). */
  reaches(host: string, n: Network): boolean {
    if (this.has(host, n)) return true;
    const t = this.tenants.get(n.tenant)!;
    return n.routed && this.routesOn(host, t);
  }
  ofport(e: Endpoint): number | undefined {
    return this.placement.hosts[e.host]?.ports[e.id];
  }
  tunnel(from: string, to: string): number | undefined {
    return this.placement.hosts[from]?.tunnels[to];
  }

  /** reg11 match / load of a host's key (see hostKey). */
  hostObjs(host: string): HostCache {
    let c = this.hostCache.get(host);
    if (!c) {
      const b = u32(hostKey(host));
      this.hostCache.set(host, (c = { reg11: tlv(FLD.reg11, b), setReg11: setField(FLD.reg11, b) }));
    }
    return c;
  }

  ep(e: Endpoint): EpCache {
    let c = this.epCache.get(e);
    if (c) return c;
    const m = mac(e.mac);
    const k = keyObjs(e.port);
    const key = `endpoint:${e.id}`;
    const nc = this.net(e.network);
    // Every field is in the literal, so all EpCaches have one hidden class with in-object
    // fields (filled in later, not added: adding spills them into a separate array).
    c = {
      nc,
      meta: nc.meta,
      reg14: k.reg14,
      reg15: k.reg15,
      dlSrc: tlv(FLD.dl_src, m),
      dlDst: tlv(FLD.dl_dst, m),
      mac: m,
      arpSha: tlv(FLD.arp_sha, m),
      setReg14: k.setReg14,
      setReg15: k.setReg15,
      // not through cookie(): the EpCache is the cache, and 100k endpoint keys in that Map cost more than the hash
      cookie: cookieOf(key, this.generation),
      key,
      nwSrc: undefined,
      nwDst: undefined,
      arpSpa: undefined,
      arpTpa: undefined,
      ip6Src: undefined,
      l2Match: undefined,
      arp: undefined,
      resolve: undefined,
      l2Remote: undefined,
      remote: undefined,
    };
    if (e.ip !== undefined) {
      // one array for the four TLVs: flows never mutate their bytes
      const b = u32(e.ip);
      c.nwSrc = tlv(FLD.nw_src, b);
      c.nwDst = tlv(FLD.nw_dst, b);
      c.arpSpa = tlv(FLD.arp_spa, b);
      c.arpTpa = tlv(FLD.arp_tpa, b);
    }
    if (e.ip6 !== undefined) c.ip6Src = tlv(FLD.ipv6_src, ip6bytes(e.ip6));
    this.epCache.set(e, c);
    return c;
  }
  net(n: Network): NetCache {
    let c = this.netCache.get(n);
    if (c) return c;
    const gw = mac(n.gwMac);
    const key = `network:${n.id}`;
    const vni = u64(n.vni);
    c = {
      meta: tlv(FLD.metadata, vni),
      gwMac: gw,
      gwDlDst: tlv(FLD.dl_dst, gw),
      setTunId: setField(FLD.tun_id, vni),
      writeMeta: writeMeta(n.vni),
      key,
      cookie: this.cookie(key),
      dst4: undefined,
      dst6: undefined,
      shared: undefined,
      defaults: undefined,
      routes: undefined,
      routeIns: undefined,
      outs: undefined,
      tunActs: undefined,
      tunBuckets: undefined,
    };
    if (n.v4) c.dst4 = tlv(FLD.nw_dst, u32(n.v4.base), u32(mask32(n.v4.len)));
    if (n.v6) c.dst6 = tlv(FLD.ipv6_dst, ip6bytes(n.v6.base), ip6bytes(mask128(n.v6.len)));
    this.netCache.set(n, c);
    return c;
  }
}

const mask32 = (len: number) => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);
const mask128 = (len: number) => (len === 0 ? 0n : (((1n << BigInt(len)) - 1n) << BigInt(128 - len)));

// ---- generators: one per kind of object ------------------------------------------------------

const ZONE = 'NXM_NX_REG13[0..15]';

/** Table-miss and conntrack plumbing: identical on every host. */
function pipelineFlows(cookie: bigint): FlowMod[] {
  return parsedFlows(cookie, [
    `table=${T.CLASSIFY},priority=0 actions=drop`,
    `table=${T.PORT_SEC},priority=0 actions=drop`,
    `table=${T.ACL_IN},priority=${PRIO.CT_UNTRACKED},ct_state=-trk,ip actions=ct(table=${T.ACL_IN},zone=${ZONE})`,
    `table=${T.ACL_IN},priority=${PRIO.CT_UNTRACKED},ct_state=-trk,ipv6 actions=ct(table=${T.ACL_IN},zone=${ZONE})`,
    `table=${T.ACL_IN},priority=${PRIO.CT_INVALID},ct_state=+inv+trk actions=drop`,
    `table=${T.ACL_IN},priority=${PRIO.CT_ESTABLISHED},ct_state=+est+trk actions=goto_table:${T.CHAIN}`,
    `table=${T.ACL_IN},priority=${PRIO.CT_ESTABLISHED},ct_state=+rel+trk actions=goto_table:${T.CHAIN}`,
    `table=${T.ACL_IN},priority=${PRIO.ARP_PASS},arp actions=goto_table:${T.CHAIN}`,
    `table=${T.ACL_IN},priority=0 actions=drop`,
    `table=${T.CHAIN},priority=0 actions=goto_table:${T.ARP}`,
    `table=${T.ARP},priority=0 actions=goto_table:${T.L3}`,
    `table=${T.L3},priority=0 actions=goto_table:${T.L2}`,
    `table=${T.L3_RESOLVE},priority=0 actions=drop`,
    `table=${T.L2},priority=0 actions=drop`,
    `table=${T.ACL_OUT},priority=${PRIO.CT_UNTRACKED},ct_state=-trk,ip actions=ct(table=${T.ACL_OUT},zone=${ZONE})`,
    `table=${T.ACL_OUT},priority=${PRIO.CT_UNTRACKED},ct_state=-trk,ipv6 actions=ct(table=${T.ACL_OUT},zone=${ZONE})`,
    `table=${T.ACL_OUT},priority=${PRIO.CT_INVALID},ct_state=+inv+trk actions=drop`,
    `table=${T.ACL_OUT},priority=${PRIO.CT_ESTABLISHED},ct_state=+est+trk actions=goto_table:${T.OUTPUT}`,
    `table=${T.ACL_OUT},priority=${PRIO.CT_ESTABLISHED},ct_state=+rel+trk actions=goto_table:${T.OUTPUT}`,
    `table=${T.ACL_OUT},priority=${PRIO.CT_COMMIT},ct_state=+new+trk,ip actions=ct(commit,zone=${ZONE}),goto_table:${T.OUTPUT}`,
    `table=${T.ACL_OUT},priority=${PRIO.CT_COMMIT},ct_state=+new+trk,ipv6 actions=ct(commit,zone=${ZONE}),goto_table:${T.OUTPUT}`,
    `table=${T.ACL_OUT},priority=${PRIO.NORMAL},arp actions=goto_table:${T.OUTPUT}`,
    `table=${T.ACL_OUT},priority=0 actions=drop`,
    `table=${T.OUTPUT},priority=0 actions=drop`,
  ]);
}

const NONE: Contribution = { flows: [], groups: [] };

/** Flows an endpoint puts on `host`. */
export function genEndpoint(ctx: Ctx, host: string, e: Endpoint): Contribution {
  const c = ctx.ep(e);
  if (e.host !== host) {
    const variant = remoteVariant(ctx, host, e.network);
    // four slots, one per variant: `[]` assigned at index 3 would grow to 22
    const cache = (c.remote ??= [undefined, undefined, undefined, undefined]);
    return (cache[variant] ??= endpointFlows(ctx, host, e, c));
  }
  return endpointFlows(ctx, host, e, c);
}

/** Which of its remote contributions an endpoint of `n` has on `host` (it is not on `host`): by whether the host has the network and routes to it. */
function remoteVariant(ctx: Ctx, host: string, n: Network): number {
  return (ctx.has(host, n) ? 1 : 0) | (n.routed && ctx.routesOnTenant(host, n.tenant) ? 2 : 0);
}

// Match lists below are written in the codec's field order (flow() would otherwise sort each one).
// Flows are collected in one scratch array and copied out at their exact length: a fresh
// `[]` grown by push() keeps 17 slots for 7 flows, in 100k contributions.
// (Its length is not reset to 0: that drops the backing store, and every call grew a new one.)
const scratch: FlowMod[] = [];
let scratchLen = 0;
const add = (f: FlowMod): void => {
  scratch[scratchLen++] = f;
};
function endpointFlows(ctx: Ctx, host: string, e: Endpoint, c: EpCache): Contribution {
  scratchLen = 0;
  const n = e.network;
  const nc = c.nc;
  const cookie = c.cookie;
  const local = e.host === host;
  const ofport = local ? ctx.ofport(e) : undefined;
  const hasNet = ctx.has(host, n);
  const po = ofport !== undefined ? portObjs(ofport) : undefined;
  const sf = local && ctx.serviceFunctions.has(e);
  if (local && po) {
    add(flow(T.CLASSIFY, PRIO.NORMAL, cookie, po.inPortMatch, [apply([c.setReg14, po.setReg13]), nc.writeMeta, GOTO_PORT_SEC]));
    // Its own addresses: the normal path (anti-spoofing, then policy), service function or not.
    if (c.nwSrc) add(flow(T.PORT_SEC, PRIO.NORMAL, cookie, [c.dlSrc, M.ip, c.nwSrc, c.reg14, c.meta], TO_ACL_IN));
    // A service function also forwards others' IPv4 packets: straight to the chain table, which
    // passes only what matches one of its chain positions (see chains.ts sfFlows). No foreign IPv6.
    if (sf) add(flow(T.PORT_SEC, PRIO.SF_FOREIGN, cookie, [c.dlSrc, M.ip, c.reg14, c.meta], TO_CHAIN));
    if (c.arpSpa) add(flow(T.PORT_SEC, PRIO.NORMAL, cookie, [c.dlSrc, M.arp, c.arpSpa, c.arpSha, c.reg14, c.meta], TO_ACL_IN));
    if (c.ip6Src) {
      add(flow(T.PORT_SEC, PRIO.NORMAL, cookie, [c.dlSrc, M.ip6, c.ip6Src, c.reg14, c.meta], TO_ACL_IN));
      add(flow(T.PORT_SEC, PRIO.NORMAL, cookie, [c.dlSrc, M.ip6, LINK_LOCAL_SRC, c.reg14, c.meta], TO_ACL_IN));
    }
  }
  // ARP responder for its IPv4 address, on every host that has the network.
  if (hasNet && e.ip !== undefined) add((c.arp ??= arpReply(cookie, nc.meta, c.arpTpa!, c.mac, c.arpTpa!.value)));
  // Routed traffic to it: next hop resolution, on every host that routes for the tenant.
  if (n.routed && e.ip !== undefined && ctx.routesOnTenant(host, e.tenant)) {
    add((c.resolve ??= flow(T.L3_RESOLVE, PRIO.NORMAL, cookie, [M.ip, c.nwDst!, nc.meta], [apply([setField(FLD.dl_dst, c.mac)]), goto(T.L2)])));
  }
  // L2 lookup + output.
  const l2Match = (c.l2Match ??= [c.dlDst, nc.meta]);
  if (local) {
    // table 40, local port: reg15 := key, reg13 := zone, ct_clear, -> acl_egress
    if (po && sf) {
      // No conntrack for what a service function forwards (it sees one direction of many
      // connections); traffic to its own addresses is tracked like any endpoint's, so that its
      // replies (normal path, conntrack at the source) are +est.
      const ownIns = [apply([c.setReg15, po.setReg13, CT_CLEAR]), GOTO_ACL_OUT];
      if (c.nwDst) add(flow(T.L2, PRIO.SF_OWN, cookie, [c.dlDst, M.ip, c.nwDst, nc.meta], ownIns));
      if (c.ip6Src) add(flow(T.L2, PRIO.SF_OWN, cookie, [c.dlDst, M.ip6, nc.meta], ownIns));
      add(flow(T.L2, PRIO.NORMAL, cookie, l2Match, [apply([c.setReg15]), GOTO_OUTPUT]));
      add(flow(T.OUTPUT, PRIO.NORMAL, cookie, [c.reg15, nc.meta], po.outIns));
      for (const f of sfFlows(cookie, c.reg14, nc.meta, c.nwSrc)) add(f);
    } else if (po) {
      add(flow(T.L2, PRIO.NORMAL, cookie, l2Match, [apply([c.setReg15, po.setReg13, CT_CLEAR]), GOTO_ACL_OUT]));
      add(flow(T.OUTPUT, PRIO.NORMAL, cookie, [c.reg15, nc.meta], po.outIns));
    }
  } else if (!c.l2Remote) {
    // table 40 on other hosts: reg15 := key, reg11 := the endpoint's host, -> output
    add((c.l2Remote = flow(T.L2, PRIO.NORMAL, cookie, l2Match, [apply([c.setReg15, ctx.hostObjs(e.host).setReg11]), GOTO_OUTPUT])));
  } else add(c.l2Remote);
  if (!scratchLen) return NONE;
  // (slots past the end keep the previous endpoint's flows: a few references to flows of the result)
  return { flows: scratch.slice(0, scratchLen), groups: NO_GROUPS };
}

const LINK_LOCAL_SRC = tlv(FLD.ipv6_src, ip6bytes(0xfe80n << 112n), ip6bytes(((1n << 10n) - 1n) << 118n));

const TO_ACL_IN: Instruction[] = [goto(T.ACL_IN)];
const GOTO_PORT_SEC = goto(T.PORT_SEC);
const GOTO_ACL_OUT = goto(T.ACL_OUT);
const GOTO_OUTPUT = goto(T.OUTPUT);
const TO_CHAIN: Instruction[] = [goto(T.CHAIN)];

/** ARP reply for `ip` (its 4 bytes, as in `tpa`) from MAC `m`. */
function arpReply(cookie: bigint, meta: OxmTlv, tpa: OxmTlv, m: Uint8Array, ip: Uint8Array): FlowMod {
  return flow(T.ARP, PRIO.NORMAL, cookie, [M.arp, M.arpRequest, tpa, meta], [
    apply([
      ARP_SWAP.ethSrcToDst,
      setField(FLD.dl_src, m),
      ARP_SWAP.opReply,
      ARP_SWAP.shaToTha,
      setField(FLD.arp_sha, m),
      ARP_SWAP.spaToTpa,
      setField(FLD.arp_spa, ip),
      IN_PORT,
    ]),
  ]);
}

/** Flows and flood groups a network puts on a host that has one of its endpoints. */
export function genNetwork(ctx: Ctx, host: string, n: Network): Contribution {
  if (!ctx.reaches(host, n)) return NONE;
  const nc = ctx.net(n);
  // Output to each other host with the network: needed wherever its endpoints are reachable.
  const outs: FlowMod[] = [];
  const outCache = (nc.outs ??= new Map());
  const peers = ctx.hostsOf(n);
  for (const h of peers) {
    if (h === host) continue;
    const tun = ctx.tunnel(host, h);
    if (tun === undefined) continue;
    let byTun = outCache.get(h);
    if (!byTun) outCache.set(h, (byTun = new Map()));
    let o = byTun.get(tun);
    if (!o) byTun.set(tun, (o = flow(T.OUTPUT, PRIO.NORMAL, nc.cookie, [M.notFromTunnel, ctx.hostObjs(h).reg11, nc.meta], [apply(tunnelActs(nc, tun))])));
    outs.push(o);
  }
  if (!ctx.has(host, n)) return outs.length ? { flows: outs, groups: NO_GROUPS } : NONE;
  const flows = [...(nc.shared ??= networkFlows(ctx, n)), ...outs];
  const locals: number[] = [];
  for (const e of n.endpoints) if (e.host === host) {
    const p = ctx.ofport(e);
    if (p !== undefined) locals.push(p);
  }
  if (!ascending(locals)) locals.sort((a, b) => a - b);
  // Bucket objects are shared (per port, per network tunnel) and between the two groups.
  const localBuckets = locals.map((p) => portObjs(p).outBucket);
  const all = localBuckets.slice();
  for (const h of peers) {
    if (h === host) continue;
    const tun = ctx.tunnel(host, h);
    if (tun !== undefined) all.push(tunnelBucket(nc, tun));
  }
  return { flows, groups: [allGroup(floodGroup(n.vni, false), all), allGroup(floodGroup(n.vni, true), localBuckets)] };
}

function ascending(xs: number[]): boolean {
  for (let i = 1; i < xs.length; i++) if (xs[i - 1]! > xs[i]!) return false;
  return true;
}

function tunnelBucket(nc: NetCache, tun: number): Bucket {
  const m = (nc.tunBuckets ??= new Map());
  let b = m.get(tun);
  if (!b) m.set(tun, (b = bucket(tunnelActs(nc, tun))));
  return b;
}

/** [set tun_id, output to the tunnel]: shared by the network's flood buckets and output flows. */
function tunnelActs(nc: NetCache, tun: number): Action[] {
  const m = (nc.tunActs ??= new Map());
  let a = m.get(tun);
  if (!a) m.set(tun, (a = [nc.setTunId, output(tun)]));
  return a;
}

function networkFlows(ctx: Ctx, n: Network): FlowMod[] {
  const nc = ctx.net(n);
  const cookie = nc.cookie;
  const flows: FlowMod[] = [
    flow(T.CLASSIFY, PRIO.NORMAL, cookie, [tlv(FLD.tun_id, u64(n.vni))], [apply([setField(FLD.reg10, u32(FLAG_FROM_TUNNEL))]), writeMeta(n.vni), goto(T.L2)]),
  ];
  if (n.v4) {
    const gw = u32(n.v4.gateway);
    flows.push(arpReply(cookie, nc.meta, tlv(FLD.arp_tpa, gw), nc.gwMac, gw));
  }
  // Frames to the gateway MAC that no route takes are not switched.
  flows.push(flow(T.L3, PRIO.GATEWAY_DROP, cookie, [nc.gwDlDst, nc.meta], []));
  flows.push(flow(T.L2, PRIO.FLOOD_FROM_TUNNEL, cookie, [M.multicast, M.fromTunnel, nc.meta], [apply([{ type: 'group', groupId: floodGroup(n.vni, true) }])]));
  flows.push(flow(T.L2, PRIO.NORMAL, cookie, [M.multicast, nc.meta], [apply([{ type: 'group', groupId: floodGroup(n.vni, false) }])]));
  return flows;
}

/** The tenant router on a host: routes from each local routed network to every other one. */
export function genRouter(ctx: Ctx, host: string, t: Tenant): Contribution {
  if (!t.router || !ctx.routesOn(host, t)) return NONE;
  const cookie = ctx.cookie(`router:${t.name}`);
  const flows: FlowMod[] = [];
  for (const src of t.router.networks) {
    if (!ctx.has(host, src) || !src.v4) continue;
    const sc = ctx.net(src);
    for (const dst of t.router.networks) {
      if (dst === src || !dst.v4) continue;
      const routes = (sc.routes ??= new Map());
      let r = routes.get(dst);
      if (!r) {
        const dc = ctx.net(dst);
        r = flow(T.L3, PRIO.NORMAL + dst.v4.len, cookie, [sc.gwDlDst, M.ip, dc.dst4!, sc.meta], (dc.routeIns ??= [
          apply([DEC_TTL, setField(FLD.dl_src, dc.gwMac)]),
          dc.writeMeta,
          goto(T.L3_RESOLVE),
        ]));
        routes.set(dst, r);
      }
      flows.push(r);
    }
  }
  return flows.length ? { flows, groups: NO_GROUPS } : NONE;
}

/** The tenant's default verdict for new connections from its local networks. */
export function genTenant(ctx: Ctx, host: string, t: Tenant): Contribution {
  const cookie = ctx.cookie(`tenant:${t.name}`);
  const flows: FlowMod[] = [];
  const ins: Instruction[] = t.defaultPolicy === 'allow' ? [apply([CT_COMMIT]), goto(T.CHAIN)] : [];
  for (const n of t.networks) {
    if (!ctx.has(host, n)) continue;
    const nc = ctx.net(n);
    if (!nc.defaults) {
      nc.defaults = [];
      if (n.v4) nc.defaults.push(flow(T.ACL_IN, PRIO.TENANT_DEFAULT, cookie, [M.ip, M.ctNewTrk, nc.meta], ins));
      if (n.v6) nc.defaults.push(flow(T.ACL_IN, PRIO.TENANT_DEFAULT, cookie, [M.ip6, M.ctNewTrk, nc.meta], ins));
    }
    flows.push(...nc.defaults);
  }
  return flows.length ? { flows, groups: NO_GROUPS } : NONE;
}

function matchesSelector(sel: SelectorDoc, e: Endpoint): boolean {
  if (sel.networks?.includes(e.network.name)) return true;
  if (sel.endpoints?.includes(e.name)) return true;
  return !!sel.labels && hasAllLabels(sel.labels, e.labels);
}
/** Every label of a non-empty selector is on the endpoint (no arrays: called per endpoint per host). */
function hasAllLabels(want: Record<string, string>, have: Record<string, string>): boolean {
  let any = false;
  for (const k in want) {
    if (have[k] !== want[k]) return false;
    any = true;
  }
  return any;
}
function isAny(sel: SelectorDoc): boolean {
  return !sel.networks?.length && !sel.endpoints?.length && !(sel.labels && Object.keys(sel.labels).length) && !sel.cidrs?.length;
}

/** Destination side of a policy: [version, match fragments]. */
type Frag = { v: 4 | 6; m: OxmTlv[] };

const CT_NEW_TRK: OxmTlv[] = [M.ctNewTrk];

/** A policy's flows on a host: for each local source it selects x each destination x each port block. */
export function genPolicy(ctx: Ctx, host: string, p: Policy): Contribution {
  const t = ctx.tenants.get(p.tenant)!;
  const localNets = t.networks.filter((n) => ctx.has(host, n));
  if (!localNets.length) return NONE;
  const cookie = ctx.cookie(`policy:${p.id}`);
  // sources (local only): whole networks or single ports
  const from: Frag[] = [];
  const anyFrom = isAny(p.from);
  for (const n of localNets) {
    const nc = ctx.net(n);
    if (anyFrom || p.from.networks?.includes(n.name)) {
      if (n.v4) from.push({ v: 4, m: [nc.meta] });
      if (n.v6) from.push({ v: 6, m: [nc.meta] });
      continue;
    }
    for (const e of n.endpoints) {
      if (e.host !== host || !matchesSelector(p.from, e)) continue;
      const ec = ctx.ep(e);
      if (e.ip !== undefined) from.push({ v: 4, m: [nc.meta, ec.reg14] });
      if (e.ip6 !== undefined) from.push({ v: 6, m: [nc.meta, ec.reg14] });
    }
    for (const c of p.cidrs.from4) if (n.v4) from.push({ v: 4, m: [nc.meta, tlv(FLD.nw_src, u32(c.base), u32(mask32(c.len)))] });
    for (const c of p.cidrs.from6) if (n.v6) from.push({ v: 6, m: [nc.meta, tlv(FLD.ipv6_src, ip6bytes(c.base), ip6bytes(mask128(c.len)))] });
  }
  if (!from.length) return NONE;
  // destinations: anywhere in the tenant
  const to: Frag[] = [];
  if (isAny(p.to)) to.push({ v: 4, m: [] }, { v: 6, m: [] });
  else {
    for (const n of t.networks) {
      const nc = ctx.net(n);
      if (p.to.networks?.includes(n.name)) {
        if (nc.dst4) to.push({ v: 4, m: [nc.dst4] });
        if (nc.dst6) to.push({ v: 6, m: [nc.dst6] });
        continue;
      }
      for (const e of n.endpoints) {
        if (!matchesSelector(p.to, e)) continue;
        if (e.ip !== undefined) to.push({ v: 4, m: [ctx.ep(e).nwDst!] });
        if (e.ip6 !== undefined) to.push({ v: 6, m: [tlv(FLD.ipv6_dst, ip6bytes(e.ip6))] });
      }
    }
    for (const c of p.cidrs.to4) to.push({ v: 4, m: [tlv(FLD.nw_dst, u32(c.base), u32(mask32(c.len)))] });
    for (const c of p.cidrs.to6) to.push({ v: 6, m: [tlv(FLD.ipv6_dst, ip6bytes(c.base), ip6bytes(mask128(c.len)))] });
  }
  // protocol and ports
  const l4 = (v: 4 | 6): OxmTlv[][] => {
    const eth = v === 4 ? M.ip : M.ip6;
    if (p.protocol === 'any') return [[eth]];
    if (p.protocol === 'icmp') return [[eth, v === 4 ? M.icmp : M.icmp6]];
    const proto = p.protocol === 'tcp' ? M.tcp : M.udp;
    if (!p.ports.length) return [[eth, proto]];
    const fld = p.protocol === 'tcp' ? FLD.tcp_dst : FLD.udp_dst;
    return p.ports.flatMap(([lo, hi]) => portMasks(lo, hi).map(([v16, m16]) => [eth, proto, tlv(fld, Uint8Array.of(v16 >> 8, v16 & 255), Uint8Array.of(m16 >> 8, m16 & 255))]));
  };
  const l4by = { 4: l4(4), 6: l4(6) };
  const ins: Instruction[] = p.action === 'allow' ? [apply([CT_COMMIT]), goto(T.CHAIN)] : [];
  const prio = PRIO.POLICY_TOP - p.index;
  // Each network and endpoint is visited once per side, so the product has no duplicates.
  const flows: FlowMod[] = [];
  for (const f of from)
    for (const d of to) {
      if (d.v !== f.v) continue;
      // concat, not spread: no iterator objects; flow() puts the fields in codec order in place
      for (const l of l4by[f.v]) flows.push(flow(T.ACL_IN, prio, cookie, CT_NEW_TRK.concat(f.m, d.m, l), ins));
    }
  return { flows, groups: NO_GROUPS };
}

// ---- whole-host compile ------------------------------------------------------------------------

/** All contributions for one host, in generation order. */
export function compileHost(ctx: Ctx, host: string): HostContribs {
  const out: HostContribs = new Map();
  const put = (k: string, c: Contribution) => {
    if (c.flows.length || c.groups.length) out.set(k, c);
  };
  put('pipeline', { flows: ctx.pipelineFlows, groups: [] });
  for (const t of ctx.tenantsOn(host)) {
    put(`tenant:${t.name}`, genTenant(ctx, host, t));
    for (const p of t.policies) put(`policy:${p.id}`, genPolicy(ctx, host, p));
    put(`router:${t.name}`, genRouter(ctx, host, t));
    for (const c of t.chains ?? []) put(`chain:${c.id}`, genChain(ctx, host, c));
  }
  const reach = ctx.reach(host);
  for (const n of reach) put(ctx.net(n).key, genNetwork(ctx, host, n));
  // keys cached per object: 100 hosts x thousands of template strings add up
  for (const n of reach) {
    // genEndpoint's variant for the network's endpoints that are elsewhere, computed once per network
    const variant = remoteVariant(ctx, host, n);
    for (const e of n.endpoints) {
      const c = ctx.ep(e);
      put(c.key, (e.host !== host && c.remote?.[variant]) || genEndpoint(ctx, host, e));
    }
  }
  return out;
}

/** A host's contributions: its Map (iterated without iterator objects) or any iterable. */
type Contribs = ReadonlyMap<string, Contribution> | Iterable<Contribution>;
function eachContribution(contribs: Contribs, fn: (c: Contribution) => void): void {
  if (contribs instanceof Map) contribs.forEach(fn);
  else for (const c of contribs as Iterable<Contribution>) fn(c);
}

/** Canonical order: table asc, priority desc, then generation order (a stable bucket sort, O(n)). */
export function orderFlows(contribs: Contribs): FlowMod[] {
  const buckets = new Map<number, FlowMod[]>();
  // Per table, the bucket of its last flow: within a table, flows of consecutive contributions
  // mostly have one priority (every endpoint's table-40 flow, ...), so the Map is rarely needed.
  const lastKey: number[] = new Array<number>(256).fill(-1);
  const lastBucket: FlowMod[][] = new Array<FlowMod[]>(256);
  let total = 0;
  eachContribution(contribs, (c) => {
    const flows = c.flows;
    total += flows.length;
    for (let i = 0; i < flows.length; i++) {
      const f = flows[i]!;
      const t = f.tableId;
      const k = t * 0x10000 + (0xffff - f.priority);
      if (lastKey[t] === k) {
        lastBucket[t]!.push(f);
        continue;
      }
      let b = buckets.get(k);
      if (!b) buckets.set(k, (b = []));
      lastKey[t] = k;
      lastBucket[t] = b;
      b.push(f);
    }
  });
  const keys = [...buckets.keys()].sort((a, b) => a - b);
  // written by index into an array of the final length: push() would regrow it ~20 times per host
  const out = new Array<FlowMod>(total);
  let n = 0;
  for (const k of keys) {
    const b = buckets.get(k)!;
    for (let i = 0; i < b.length; i++) out[n++] = b[i]!;
  }
  return out;
}

export function orderGroups(contribs: Contribs): GroupMod[] {
  const out: GroupMod[] = [];
  eachContribution(contribs, (c) => {
    for (const g of c.groups) out.push(g);
  });
  return out.sort((a, b) => a.groupId - b.groupId);
}

export interface HostResult {
  host: string;
  flows: FlowMod[];
  groups: GroupMod[];
}

/** The compile result: per host its contributions, and the flat canonical lists on demand. */
export class CompileResult {
  private readonly flat = new Map<string, HostResult>();
  private readonly unsorted = new Set<string>();
  constructor(
    readonly ctx: Ctx,
    readonly hosts: Map<string, HostContribs>,
  ) {}
  get model(): Model {
    return this.ctx.model;
  }
  host(name: string): HostResult {
    let r = this.flat.get(name);
    if (!r) {
      if (this.unsorted.has(name)) this.sortHost(name);
      const c = this.hosts.get(name);
      r = { host: name, flows: c ? orderFlows(c) : [], groups: c ? orderGroups(c) : [] };
      this.flat.set(name, r);
    }
    return r;
  }
  /** After an incremental change: re-establish generation order of the host's contributions. */
  markDirty(host: string): void {
    this.flat.delete(host);
    this.unsorted.add(host);
  }
  private sortHost(host: string): void {
    this.unsorted.delete(host);
    const c = this.hosts.get(host);
    if (!c) return;
    const rank = (k: string): string => {
      const colon = k.indexOf(':');
      const kind = k.slice(0, colon);
      const id = k.slice(colon + 1);
      const [tn, on] = id.split('/') as [string, string | undefined];
      const t = this.ctx.tenants.get(tn);
      if (kind === 'pipeline') return '0';
      if (kind === 'tenant') return `1\0${tn}\0${0}`;
      if (kind === 'policy') return `1\0${tn}\0${1}\0${String(t?.policies.findIndex((p) => p.name === on) ?? 0).padStart(4, '0')}`;
      if (kind === 'router') return `1\0${tn}\0${2}`;
      if (kind === 'chain') return `1\0${tn}\0${3}\0${String(t?.chains.findIndex((x) => x.name === on) ?? 0).padStart(4, '0')}`;
      if (kind === 'network') return `2\0${id}`;
      const e = t?.endpoints.find((x) => x.name === on);
      return `3\0${e?.network.id ?? ''}\0${on}`;
    };
    const keys = [...c.keys()].map((k) => [rank(k), k] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const sorted: HostContribs = new Map(keys.map(([, k]) => [k, c.get(k)!]));
    this.hosts.set(host, sorted);
  }
  get flowCount(): number {
    let n = 0;
    for (const c of this.hosts.values()) for (const x of c.values()) n += x.flows.length;
    return n;
  }
}

/** Compiles every host of the model. */
export function compile(model: Model, placement: Placement = defaultPlacement(model), opts: CompileOptions = {}): CompileResult {
  const ctx = new Ctx(model, placement, checkGeneration(opts.generation ?? 1), opts.unhealthy);
  const hosts = new Map<string, HostContribs>();
  for (const h of model.hosts) hosts.set(h.name, compileHost(ctx, h.name));
  return new CompileResult(ctx, hosts);
}

/** For messages: "10.0.0.1" or "-". */
export function ipText(e: Endpoint): string {
  return e.ip !== undefined ? formatIp4(e.ip) : '-';
}
