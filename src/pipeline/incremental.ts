/**
 * Incremental compile: apply one change to a compiled state and get, per host,
 * the flows and groups to add, modify and delete — recomputing only the
 * contributions (object x host) the change can touch, never the world.
 *
 * A contribution is regenerated when the changed endpoint appears in it: its own
 * flows wherever its network is reachable; its network's flows (flood groups list
 * local ports); and, when it is the first or last endpoint of its network on its
 * host, everything that depends on "network present on host" (remote flood
 * buckets, tenant defaults, policies, router, the other endpoints' flows there).
 * Policies that select endpoints by name or label are recomputed on the tenant's
 * hosts.
 */
import { Endpoint as EndpointSchema } from '../model/schema.js';
import { TopologyError, pointer } from '../model/validate.js';
import type { Endpoint, Network, Tenant, ValidationIssue } from '../model/types.js';
import {
  allocate,
  allocateBig,
  ENDPOINT_MAC_PREFIX,
  formatCidr4,
  formatIp4,
  formatIp6,
  formatMac,
  GATEWAY_MAC_PREFIX,
  in4,
  in6,
  parseIp4,
  parseIp6,
  parseMac,
  PORT_KEY_MAX,
  PORT_KEY_MIN,
  usable4,
  usable6,
} from '../ipam/index.js';
import { formatGroup, formatInstructions, type FlowMod, type GroupMod } from '../openflow/index.js';
import { genChain } from './chains.js';
import { CompileResult, genEndpoint, genNetwork, genPolicy, genRouter, genTenant, type Contribution, type Ctx } from './compile.js';

export type Change =
  | {
      op: 'addEndpoint';
      tenant: string;
      /** As in the document: name, network, host, optional ip/ip6/mac/labels. */
      endpoint: unknown;
      /** ofport of its port on its host; default: one above the host's highest. */
      ofport?: number;
    }
  | { op: 'removeEndpoint'; tenant: string; name: string };

export interface HostDelta {
  add: FlowMod[];
  modify: FlowMod[];
  delete: FlowMod[];
  groups: { add: GroupMod[]; modify: GroupMod[]; delete: GroupMod[] };
}
export type Delta = Map<string, HostDelta>;

export function deltaFlowCount(d: Delta): number {
  let n = 0;
  for (const h of d.values()) n += h.add.length + h.modify.length + h.delete.length;
  return n;
}

const flowId = (f: FlowMod) => {
  let s = `${f.tableId}/${f.priority}`;
  for (const t of f.match) s += `|${t.field.name}=${t.value.join('.')}${t.mask ? '/' + t.mask.join('.') : ''}`;
  return s;
};
const flowBody = (f: FlowMod) => `${f.cookie}|${formatInstructions(f.instructions)}`;

function emptyDelta(): HostDelta {
  return { add: [], modify: [], delete: [], groups: { add: [], modify: [], delete: [] } };
}

/**
 * Owns a CompileResult and keeps it current under changes (the result is updated in
 * place). New flows get the result's cookie epoch (never a new one), so flows a
 * change does not touch keep their cookies and the reconciler leaves them alone.
 */
export class IncrementalCompiler {
  private readonly usedMac = new Set<number>();
  private readonly usedIp = new Map<Network, Set<number>>();
  private readonly usedIp6 = new Map<Network, Set<bigint>>();
  private readonly usedPort = new Map<Network, Set<number>>();
  private readonly maxPort = new Map<string, number>();

  constructor(readonly result: CompileResult) {
    const ctx = result.ctx;
    for (const t of ctx.model.tenants)
      for (const n of t.networks) {
        const ips = new Set<number>(n.v4 ? [n.v4.gateway] : []);
        const ip6s = new Set<bigint>(n.v6 ? [n.v6.gateway] : []);
        const ports = new Set<number>();
        for (const e of n.endpoints) {
          if (e.ip !== undefined) ips.add(e.ip);
          if (e.ip6 !== undefined) ip6s.add(e.ip6);
          ports.add(e.port);
          this.usedMac.add(parseMac(e.mac));
        }
        this.usedIp.set(n, ips);
        this.usedIp6.set(n, ip6s);
        this.usedPort.set(n, ports);
      }
    for (const [h, hp] of Object.entries(ctx.placement.hosts)) {
      let m = 0;
      for (const p of Object.values(hp.ports)) m = Math.max(m, p);
      this.maxPort.set(h, m);
    }
  }

  private get ctx(): Ctx {
    return this.result.ctx;
  }

  apply(change: Change): Delta {
    if (change.op === 'addEndpoint') {
      const e = this.prepareAdd(change.tenant, change.endpoint);
      const port = change.ofport ?? Math.max(999, this.maxPort.get(e.host) ?? 0) + 1;
      this.insert(e, port);
      return this.regenerate(this.affected(e));
    }
    // changes may come from JSON: an unknown op is a typed error, not a removal attempt
    if ((change as { op: unknown }).op !== 'removeEndpoint') throw new TopologyError([{ path: '/op', message: `unknown change "${String((change as { op: unknown }).op)}" (want addEndpoint or removeEndpoint)` }]);
    const t = this.tenant(change.tenant);
    const e = t.endpoints.find((x) => x.name === change.name);
    if (!e) throw new TopologyError([{ path: '/name', message: `unknown endpoint "${change.name}" in tenant "${t.name}"` }]);
    const dirty = this.affected(e);
    this.remove(e);
    return this.regenerate(dirty);
  }

  private tenant(name: string): Tenant {
    const t = this.ctx.tenants.get(name);
    if (!t) throw new TopologyError([{ path: '/tenant', message: `unknown tenant "${name}"` }]);
    return t;
  }

  /** Validates the new endpoint against the current state and allocates its addresses. Changes nothing. */
  private prepareAdd(tenantName: string, input: unknown): Endpoint {
    const t = this.tenant(tenantName);
    const parsed = EndpointSchema.safeParse(input);
    if (!parsed.success) throw new TopologyError(parsed.error.issues.map((i) => ({ path: pointer(['endpoint', ...i.path]), message: i.message })));
    const d = parsed.data;
    const errs: ValidationIssue[] = [];
    const err = (p: string, message: string) => errs.push({ path: `/endpoint/${p}`, message });
    if (t.endpoints.some((x) => x.name === d.name)) err('name', `duplicate endpoint name "${d.name}" in tenant "${t.name}"`);
    const net = t.networks.find((n) => n.name === d.network);
    if (!net) err('network', `unknown network "${d.network}" in tenant "${t.name}"`);
    if (!this.ctx.model.hosts.some((h) => h.name === d.host)) err('host', `unknown host "${d.host}"`);
    if (!net || errs.length) throw new TopologyError(errs);
    const id = `${t.name}/${d.name}`;
    const e: Endpoint = { id, tenant: t.name, name: d.name, network: net, host: d.host, mac: '', port: 0, labels: d.labels };
    const ips = this.usedIp.get(net)!;
    if (net.v4) {
      const [lo, hi] = usable4(net.v4);
      if (d.ip !== undefined) {
        const ip = parseIp4(d.ip)!;
        if (!in4(net.v4, ip) || ip < lo || ip > hi) err('ip', `${d.ip} is not a usable address of ${formatCidr4(net.v4)}`);
        else if (ips.has(ip)) err('ip', `${d.ip} is already in use in network "${net.name}"`);
        e.ip = ip;
      } else {
        const v = allocate(id, lo, hi - lo + 1, (x) => !ips.has(x));
        if (v === undefined) err('network', `subnet ${formatCidr4(net.v4)} is full`);
        e.ip = v;
      }
    } else if (d.ip !== undefined) err('ip', `network "${net.name}" has no IPv4 subnet`);
    if (net.v6) {
      const ip6s = this.usedIp6.get(net)!;
      const [lo, hi] = usable6(net.v6);
      if (d.ip6 !== undefined) {
        const ip = parseIp6(d.ip6);
        if (ip === undefined || !in6(net.v6, ip) || ip < lo) err('ip6', `${d.ip6} is not a usable address of the network's subnet6`);
        else if (ip6s.has(ip)) err('ip6', `${d.ip6} is already in use in network "${net.name}"`);
        e.ip6 = ip;
      } else e.ip6 = allocateBig(id, lo, hi - lo + 1n, (x) => !ip6s.has(x));
    } else if (d.ip6 !== undefined) err('ip6', `network "${net.name}" has no IPv6 subnet`);
    if (d.mac !== undefined) {
      const m = parseMac(d.mac);
      if (parseInt(d.mac.slice(0, 2), 16) & 1 || d.mac.startsWith(GATEWAY_MAC_PREFIX)) err('mac', `${d.mac} is not usable for an endpoint`);
      else if (this.usedMac.has(m)) err('mac', `MAC ${d.mac} is already in use`);
      e.mac = d.mac;
    } else e.mac = formatMac(allocate(id, ENDPOINT_MAC_PREFIX * 2 ** 40, 2 ** 40, (x) => !this.usedMac.has(x))!);
    const ports = this.usedPort.get(net)!;
    const pk = allocate(id, PORT_KEY_MIN, PORT_KEY_MAX - PORT_KEY_MIN + 1, (x) => !ports.has(x));
    if (pk === undefined) err('network', `network "${net.name}" has no logical port key left`);
    if (errs.length) throw new TopologyError(errs);
    e.port = pk!;
    return e;
  }

  private insert(e: Endpoint, ofport: number): void {
    const t = this.ctx.tenants.get(e.tenant)!;
    insertSorted(t.endpoints, e);
    insertSorted(e.network.endpoints, e);
    if (e.ip !== undefined) this.usedIp.get(e.network)!.add(e.ip);
    if (e.ip6 !== undefined) this.usedIp6.get(e.network)!.add(e.ip6);
    this.usedPort.get(e.network)!.add(e.port);
    this.usedMac.add(parseMac(e.mac));
    const a = this.ctx.model.alloc;
    if (e.ip !== undefined) a.ip[e.id] = formatIp4(e.ip);
    if (e.ip6 !== undefined) a.ip6[e.id] = formatIp6(e.ip6);
    a.mac[e.id] = e.mac;
    a.port[e.id] = e.port;
    const hp = (this.ctx.placement.hosts[e.host] ??= { ports: {}, tunnels: {} });
    hp.ports[e.id] = ofport;
    this.maxPort.set(e.host, Math.max(this.maxPort.get(e.host) ?? 0, ofport));
    this.ctx.addEndpointIndex(e);
  }

  private remove(e: Endpoint): void {
    const t = this.ctx.tenants.get(e.tenant)!;
    t.endpoints.splice(t.endpoints.indexOf(e), 1);
    e.network.endpoints.splice(e.network.endpoints.indexOf(e), 1);
    if (e.ip !== undefined) this.usedIp.get(e.network)!.delete(e.ip);
    if (e.ip6 !== undefined) this.usedIp6.get(e.network)!.delete(e.ip6);
    this.usedPort.get(e.network)!.delete(e.port);
    this.usedMac.delete(parseMac(e.mac));
    const a = this.ctx.model.alloc;
    delete a.ip[e.id];
    delete a.ip6[e.id];
    delete a.mac[e.id];
    delete a.port[e.id];
    delete this.ctx.placement.hosts[e.host]?.ports[e.id];
    this.ctx.removeEndpointIndex(e);
  }

  /** (host -> contribution keys) the endpoint's presence influences, computed while it is present. */
  private affected(e: Endpoint): Map<string, Set<string>> {
    const ctx = this.ctx;
    const out = new Map<string, Set<string>>();
    const mark = (h: string, k: string) => {
      let s = out.get(h);
      if (!s) out.set(h, (s = new Set()));
      s.add(k);
    };
    const n = e.network;
    const t = ctx.tenants.get(e.tenant)!;
    const tenantHosts = new Set<string>();
    for (const x of t.networks) for (const h of ctx.hostsOf(x)) tenantHosts.add(h);
    const reachHosts = new Set<string>(ctx.hostsOf(n));
    if (n.routed) for (const h of tenantHosts) if (ctx.routesOn(h, t)) reachHosts.add(h);
    for (const h of reachHosts) mark(h, `endpoint:${e.id}`);
    mark(e.host, `network:${n.id}`);
    if (ctx.netHosts.get(n)?.get(e.host) === 1) {
      // first/last endpoint of its network on its host: flood buckets and tunnel outputs elsewhere change
      for (const h of reachHosts) mark(h, `network:${n.id}`);
      mark(e.host, `tenant:${t.name}`);
      for (const p of t.policies) mark(e.host, `policy:${p.id}`);
      for (const x of n.endpoints) mark(e.host, `endpoint:${x.id}`);
      if (n.routed) {
        mark(e.host, `router:${t.name}`);
        for (const rn of t.router!.networks) {
          mark(e.host, `network:${rn.id}`);
          for (const x of rn.endpoints) mark(e.host, `endpoint:${x.id}`);
        }
      }
    }
    // Chains pick sources and destinations by selector: any endpoint of the tenant may change them.
    for (const c of t.chains ?? []) for (const h of tenantHosts) mark(h, `chain:${c.id}`);
    for (const p of t.policies) {
      const byEndpoint = !!(p.from.endpoints?.length || p.to.endpoints?.length || Object.keys(p.from.labels ?? {}).length || Object.keys(p.to.labels ?? {}).length);
      if (byEndpoint) for (const h of tenantHosts) mark(h, `policy:${p.id}`);
    }
    return out;
  }

  private generate(host: string, key: string): Contribution | undefined {
    const ctx = this.ctx;
    const colon = key.indexOf(':');
    const kind = key.slice(0, colon);
    const id = key.slice(colon + 1);
    const [tn, on] = id.split('/') as [string, string | undefined];
    const t = ctx.tenants.get(tn);
    if (!t) return undefined;
    switch (kind) {
      case 'tenant':
        return genTenant(ctx, host, t);
      case 'router':
        return genRouter(ctx, host, t);
      case 'policy': {
        const p = t.policies.find((x) => x.name === on);
        return p && genPolicy(ctx, host, p);
      }
      case 'chain': {
        const c = t.chains.find((x) => x.name === on);
        return c && genChain(ctx, host, c);
      }
      case 'network': {
        const n = t.networks.find((x) => x.name === on);
        return n && genNetwork(ctx, host, n);
      }
      case 'endpoint': {
        const e = t.endpoints.find((x) => x.name === on);
        if (!e || !ctx.reaches(host, e.network)) return undefined;
        return genEndpoint(ctx, host, e);
      }
    }
    return undefined;
  }

  private regenerate(dirty: Map<string, Set<string>>): Delta {
    const delta: Delta = new Map();
    for (const [host, keys] of dirty) {
      let contribs = this.result.hosts.get(host);
      if (!contribs) this.result.hosts.set(host, (contribs = new Map()));
      const hd = emptyDelta();
      for (const key of keys) {
        const old = contribs.get(key);
        const neu = this.generate(host, key);
        diffInto(hd, old, neu);
        if (neu && (neu.flows.length || neu.groups.length)) contribs.set(key, neu);
        else contribs.delete(key);
      }
      this.result.markDirty(host);
      if (hd.add.length || hd.modify.length || hd.delete.length || hd.groups.add.length || hd.groups.modify.length || hd.groups.delete.length) delta.set(host, hd);
    }
    return delta;
  }
}

function insertSorted(list: Endpoint[], e: Endpoint): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.name < e.name) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, e);
}

function diffInto(hd: HostDelta, old: Contribution | undefined, neu: Contribution | undefined): void {
  const before = new Map<string, FlowMod>();
  for (const f of old?.flows ?? []) before.set(flowId(f), f);
  for (const f of neu?.flows ?? []) {
    const id = flowId(f);
    const o = before.get(id);
    if (!o) hd.add.push(f);
    else {
      if (o !== f && flowBody(o) !== flowBody(f)) hd.modify.push(f);
      before.delete(id);
    }
  }
  hd.delete.push(...before.values());
  const gb = new Map<number, GroupMod>();
  for (const g of old?.groups ?? []) gb.set(g.groupId, g);
  for (const g of neu?.groups ?? []) {
    const o = gb.get(g.groupId);
    if (!o) hd.groups.add.push(g);
    else {
      if (formatGroup(o) !== formatGroup(g)) hd.groups.modify.push(g);
      gb.delete(g.groupId);
    }
  }
  hd.groups.delete.push(...gb.values());
}

export { CompileResult };
