/**
 * Pure helpers of the controller: which hosts need tunnels to each other, the
 * datapath id a host's br-int gets, and turning a reconciler diff into a plan.
 */
import { formatFlow, formatGroup } from '../openflow/index.js';
import { fnv32, formatIp4, formatIp6 } from '../ipam/index.js';
import type { Diff } from '../reconcile/index.js';
import { chainDestinations, chainSources, TopologyError, type Endpoint, type Model } from '../model/index.js';
import { TenetError } from '../util/errors.js';
import type { EndpointInfo, HostPlan } from './types.js';

/** Prefix of every datapath id Tenet assigns; the low 32 bits are the pipeline's host key fnv32(`host:NAME`) (unique: validation rejects collisions). */
const DPID_PREFIX = '00007e7e';

/** The fixed datapath id of a host's integration bridge (16 hex digits). */
export function datapathIdOf(host: string): string {
  return DPID_PREFIX + fnv32(`host:${host}`).toString(16).padStart(8, '0');
}

/**
 * Per host, the peers it keeps a tunnel to: every other host of the topology
 * (a full mesh, as OVN keeps one to every chassis), whether or not they share a
 * network today. Tunnels follow the hosts, not the tenants: deleting the last
 * network two hosts share and applying it again must not delete and re-create
 * their tunnel ports. On OVS 3.1's userspace datapath that churn can leave a
 * datapath flow that hands the peer's VXLAN packets to the kernel instead of
 * decapsulating them (installed while the port was missing, not replaced when
 * it returns): the hosts stop reaching each other until the flow goes idle
 * (docs/PERFORMANCE.md, converge). It also keeps tunnel creation out of an
 * apply's critical path. Symmetric; sorted by name.
 */
export function tunnelPeers(model: Model): Map<string, string[]> {
  const names = model.hosts.map((h) => h.name).sort();
  return new Map(names.map((h) => [h, names.filter((p) => p !== h)]));
}

/** A diff as the plan of one host: flows in ovs-ofctl syntax; hitless unless something existing is removed or replaced. */
export function hostPlanOf(host: string, diff: Diff, summary: string, reachable: boolean): HostPlan {
  return {
    host,
    hitless: diff.removeFlows.length === 0 && diff.changeFlows.length === 0 && diff.changeGroups.length === 0 && diff.removeGroups.length === 0,
    add: diff.addFlows.map((f) => formatFlow(f)),
    modify: diff.changeFlows.map((c) => formatFlow(c.desired)),
    delete: diff.removeFlows.map((f) => formatFlow(f)),
    groups: {
      add: diff.addGroups.map((g) => formatGroup(g)),
      modify: diff.changeGroups.map((g) => formatGroup(g)),
      delete: diff.removeGroups.map((g) => formatGroup(g)),
    },
    summary,
    reachable,
  };
}

/** Lines for a drift event: `+ flow` restored (re-added or replaced), `- flow` removed, same for groups. */
export function driftLines(diff: Diff): string[] {
  return [
    ...diff.addFlows.map((f) => `+ ${formatFlow(f)}`),
    ...diff.changeFlows.map((c) => `+ ${formatFlow(c.desired)}`),
    ...diff.removeFlows.map((f) => `- ${formatFlow(f)}`),
    ...diff.addGroups.map((g) => `+ ${formatGroup(g)}`),
    ...diff.changeGroups.map((g) => `+ ${formatGroup(g)}`),
    ...diff.removeGroups.map((g) => `- ${formatGroup(g)}`),
  ];
}

/** An endpoint as the API shows it (the ofport comes from its host's bindings). */
export function endpointInfo(e: Endpoint, ofport: number | undefined): EndpointInfo {
  const n = e.network;
  return {
    id: e.id,
    tenant: e.tenant,
    name: e.name,
    network: n.name,
    host: e.host,
    ...(e.ip !== undefined && n.v4 ? { ip: `${formatIp4(e.ip)}/${n.v4.len}` } : {}),
    ...(e.ip6 !== undefined && n.v6 ? { ip6: `${formatIp6(e.ip6)}/${n.v6.len}` } : {}),
    mac: e.mac,
    ...(n.v4 ? { gateway: formatIp4(n.v4.gateway) } : {}),
    labels: { ...e.labels },
    ...(ofport !== undefined ? { ofport } : {}),
  };
}

/**
 * Per host, the other hosts whose placement its compile reads: hosts with an
 * instance of a chain that has a source, destination or instance on this host
 * (the chain's select groups there list every instance, live or not, by the
 * instance's own host's bindings).
 */
export function chainHostDeps(model: Model): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const t of model.tenants)
    for (const c of t.chains) {
      const instanceHosts = new Set(c.hops.flatMap((h) => h.instances.flatMap((i) => [i.ingress.host, i.egress.host])));
      const users = new Set([...chainSources(t, c), ...chainDestinations(t, c)].map((e) => e.host));
      for (const h of instanceHosts) users.add(h);
      for (const u of users)
        for (const h of instanceHosts)
          if (h !== u) {
            let s = out.get(u);
            if (!s) out.set(u, (s = new Set()));
            s.add(h);
          }
    }
  return out;
}

/**
 * A compile or diff failure of a validated document (a conflict validation let
 * through) as a TopologyError, so plan/apply answer 400, store nothing, and name
 * a path: the compiler's `context.path`, else the first chain it names
 * (`context.chains`, ids "tenant/chain"), else the document root.
 */
export function compileFailure(model: Model, err: unknown, host?: string): TopologyError {
  if (err instanceof TopologyError) return err;
  let path = '';
  if (err instanceof TenetError) {
    if (typeof err.context.path === 'string') path = err.context.path;
    else if (Array.isArray(err.context.chains)) {
      const id = err.context.chains[0];
      model.tenants.forEach((t, ti) => t.chains.forEach((c, ci) => {
        if (!path && c.id === id) path = `/tenants/${ti}/chains/${ci}`;
      }));
    }
  }
  const message = `cannot be compiled${host ? ` for host ${host}` : ''}: ${err instanceof Error ? err.message : String(err)}`;
  return new TopologyError([{ path, message }]);
}
