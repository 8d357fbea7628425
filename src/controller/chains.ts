/**
 * Health of service-chain instances, and chains as the API shows them (pure).
 *
 * An instance is out of its hop's select group when one of its ports (ingress,
 * egress) is missing on its host, when ovs-vswitchd reports that port's link down,
 * or when its registry health check is critical. The compiler already leaves out
 * instances without a port (it sees the placement); the other two reach it as
 * `compile(..., { unhealthy })`, built here. Every input is a snapshot the
 * controller passes in, so this file does no I/O.
 */
import type { Endpoint, Model } from '../model/index.js';
import { resolveServices, type RegisteredInstance, type SkippedRegistration, type UnitInstance } from './services.js';
import type { ChainHopInfo, ChainInfo, ChainInstanceInfo, HopState, InstanceHealth } from './types.js';

/** What the controller knows about one endpoint's port and checks. */
export interface HealthView {
  /** The ofport of endpoint `id` on `host`, if it is bound there. */
  ofport(host: string, id: string): number | undefined;
  /** true when the port of endpoint `id` on `host` exists and its link is down. */
  linkDown(host: string, id: string): boolean;
  /** Endpoint ids whose registry health check is critical. */
  checkFailing: ReadonlySet<string>;
}

/** Worst first: the order a two-port instance reports. */
const SEVERITY: readonly InstanceHealth[] = ['port missing', 'link down', 'check failing', 'healthy'];

export function endpointHealth(e: Endpoint, v: HealthView): InstanceHealth {
  if (v.ofport(e.host, e.id) === undefined) return 'port missing';
  if (v.linkDown(e.host, e.id)) return 'link down';
  if (v.checkFailing.has(e.id)) return 'check failing';
  return 'healthy';
}

function worst(a: InstanceHealth, b: InstanceHealth): InstanceHealth {
  return SEVERITY.indexOf(a) <= SEVERITY.indexOf(b) ? a : b;
}

/**
 * Endpoint ids of chain instances that have a port but must leave their group
 * (link down, check failing): the compiler's `unhealthy` option. Instances without
 * a port are not listed (the compiler drops them on its own).
 */
export function unhealthyEndpoints(model: Model | null, v: HealthView): Set<string> {
  const out = new Set<string>();
  for (const t of model?.tenants ?? [])
    for (const c of t.chains)
      for (const hop of c.hops)
        for (const i of hop.instances)
          for (const e of [i.ingress, i.egress]) {
            const h = endpointHealth(e, v);
            if (h === 'link down' || h === 'check failing') out.add(e.id);
          }
  return out;
}

const portRange = ([lo, hi]: [number, number]): string => (lo === hi ? String(lo) : `${lo}-${hi}`);

function hopState(healthy: number, total: number, failMode: 'open' | 'closed'): HopState {
  if (healthy === total && total > 0) return 'ok';
  if (healthy > 0) return 'degraded';
  return failMode === 'open' ? 'bypassed' : 'dropping';
}

/**
 * Every chain of every tenant (document order within a tenant), with each instance's
 * health and, per service hop, the registrations that could not be members.
 */
export function chainInfos(model: Model | null, v: HealthView, skipped: readonly SkippedRegistration[] = []): ChainInfo[] {
  const out: ChainInfo[] = [];
  for (const t of model?.tenants ?? []) {
    for (const c of t.chains) {
      const hops: ChainHopInfo[] = c.hops.map((hop, k) => {
        const instances: ChainInstanceInfo[] = hop.instances.map((i) => {
          const two = i.egress !== i.ingress;
          const ofport = v.ofport(i.ingress.host, i.ingress.id);
          const egressOfport = two ? v.ofport(i.egress.host, i.egress.id) : undefined;
          const health = two ? worst(endpointHealth(i.ingress, v), endpointHealth(i.egress, v)) : endpointHealth(i.ingress, v);
          return {
            endpoint: i.ingress.id,
            ...(two ? { egress: i.egress.id } : {}),
            host: i.ingress.host,
            weight: i.weight,
            ...(ofport !== undefined ? { ofport } : {}),
            ...(egressOfport !== undefined ? { egressOfport } : {}),
            health,
          };
        });
        const healthy = instances.filter((i) => i.health === 'healthy').length;
        const off = skipped.filter((s) => s.chain === c.id && s.hop === k).map((s) => ({ id: s.id, reason: s.reason }));
        return { ...(hop.service !== undefined ? { service: hop.service } : {}), state: hopState(healthy, instances.length, c.failMode), instances, ...(off.length ? { skipped: off } : {}) };
      });
      out.push({
        id: c.id,
        tenant: c.tenant,
        name: c.name,
        network: c.network.name,
        from: c.from,
        to: c.to,
        protocol: c.protocol,
        ports: c.ports.map(portRange),
        symmetric: c.symmetric,
        failMode: c.failMode,
        hops,
      });
    }
  }
  return out;
}

/**
 * Endpoint ids of chain instances whose registry health check is critical (see
 * services.ts for how registrations map to endpoints and hops).
 */
export function registryCheckFailing(model: Model | null, registered: readonly RegisteredInstance[], units: readonly UnitInstance[] = []): Set<string> {
  return model ? resolveServices(model, registered, units).checkFailing : new Set();
}
