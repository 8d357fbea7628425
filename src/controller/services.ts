/**
 * Service chains and the service registry (pure): which endpoints a hop given as a
 * service has right now, and which chain instances fail their registry check.
 *
 * Membership of a service hop of chain C (tenant T, service S), from the registry's
 * instances of T/S:
 * - each registration stands for one endpoint of T: the one `meta.endpoint` names
 *   ("T/name"), else the one whose IPv4 or IPv6 address is the registration's
 *   address; a registration that names no endpoint of T is skipped;
 * - that endpoint qualifies when it is on C's network, is not a destination of C,
 *   and is not already an instance of C (another hop, or this hop twice);
 * - registered members: the qualifying endpoints, whatever their health (a critical
 *   one stays a member and is only out of the group: "check failing");
 * - when no registration of T/S qualifies, the hop keeps its labelled endpoints
 *   (`service=S`, resolved at validation; possibly none).
 * Health: a chain instance is "check failing" when a registration standing for it is
 * critical: for a service hop, one of that service; for a hop listing its instances,
 * one of any service. Warning counts as healthy (as DNS does).
 *
 * The registry's own HTTP/TCP checks run in the controller's network namespace,
 * which does not reach tenant addresses: tenant instances report TTL checks (the
 * agent, or the service itself, PUTs pass/fail).
 */
import { formatIp4, formatIp6 } from '../ipam/index.js';
import { chainDestinations, type Chain, type ChainHop, type Endpoint, type Model, type Tenant } from '../model/index.js';

/** What the controller reads from a service registry instance (src/registry `Instance` has these fields). */
export interface RegisteredInstance {
  tenant: string;
  service: string;
  /** The instance id in the registry. */
  id: string;
  address: string;
  status: 'passing' | 'warning' | 'critical';
  meta?: Record<string, string>;
}

/** One registry change (src/registry's RegistryEvent has this shape). */
export interface ServiceChange {
  type: 'register' | 'update' | 'deregister';
  tenant: string;
  service: string;
  id: string;
  /** The instance after the change (absent for a deregistration). */
  instance?: RegisteredInstance;
}

/** A registry as the controller follows it (the daemon passes src/registry's Registry through). */
export interface ServiceSource {
  instances(): readonly RegisteredInstance[];
  /** Calls fn after each change; returns an unsubscribe function. */
  onChange(fn: (change: ServiceChange) => void): () => void;
}

/**
 * Whether a change can matter to chains: a registration or deregistration, or an update
 * that changes the instance's status, address or meta.endpoint. Most registry events
 * are TTL-check reports and renewals that change none of these (a passing check
 * reported again rewrites its timestamp); they are skipped without resolving anything.
 * `seen` (instance -> what chains read of it) is the caller's, updated here.
 */
export function relevantChange(seen: Map<string, string>, ch: ServiceChange): boolean {
  const k = `${ch.tenant}/${ch.service}/${ch.id}`;
  const before = seen.get(k);
  if (ch.type === 'deregister' || !ch.instance) {
    seen.delete(k);
    return true;
  }
  const now = `${ch.instance.status} ${ch.instance.address} ${ch.instance.meta?.['endpoint'] ?? ''}`;
  seen.set(k, now);
  return ch.type !== 'update' || before !== now;
}

/** A registration that does not count as a member of a hop, and why (shown by GET /v1/chains). */
export interface SkippedRegistration {
  chain: string;
  hop: number;
  service: string;
  /** Registry instance id. */
  id: string;
  reason: string;
}

export interface ServiceView {
  /** The model with each service hop's registered members in place of its labelled ones. */
  model: Model;
  /** Endpoint ids of chain instances whose registry check is critical. */
  checkFailing: Set<string>;
  skipped: SkippedRegistration[];
  /** Equal keys: the same members and the same failing instances (nothing to recompile). */
  key: string;
}

/** Endpoints of a tenant by address (IPv4 and IPv6 text) and by name. */
interface TenantIndex {
  byAddress: Map<string, Endpoint>;
  byName: Map<string, Endpoint>;
}

function indexTenant(t: Tenant): TenantIndex {
  const byAddress = new Map<string, Endpoint>();
  for (const e of t.endpoints) {
    if (e.ip !== undefined) byAddress.set(formatIp4(e.ip), e);
    if (e.ip6 !== undefined) byAddress.set(formatIp6(e.ip6), e);
  }
  return { byAddress, byName: new Map(t.endpoints.map((e) => [e.name, e])) };
}

/** The endpoint a registration stands for, or why none. */
export function endpointOf(t: Tenant, r: RegisteredInstance, idx: TenantIndex = indexTenant(t)): Endpoint | string {
  const named = r.meta?.['endpoint'];
  if (named !== undefined) {
    const slash = named.indexOf('/');
    const [tn, name] = slash >= 0 ? [named.slice(0, slash), named.slice(slash + 1)] : [t.name, named];
    if (tn !== t.name) return `meta.endpoint "${named}" is in another tenant than "${t.name}"`;
    return idx.byName.get(name) ?? `meta.endpoint "${named}": no such endpoint`;
  }
  // IPv6 text: the registry stores what the client sent; compare in canonical form.
  const e = idx.byAddress.get(r.address) ?? idx.byAddress.get(canonical6(r.address));
  return e ?? `no endpoint of tenant "${t.name}" has address ${r.address}`;
}

function canonical6(a: string): string {
  if (!a.includes(':')) return a;
  try {
    return new URL(`http://[${a}]/`).hostname.slice(1, -1);
  } catch {
    return a;
  }
}

/** Membership and health of every chain instance, from the registry's instances (see the file comment). */
export function resolveServices(model: Model, registered: readonly RegisteredInstance[]): ServiceView {
  const byTenant = new Map<string, RegisteredInstance[]>();
  for (const r of registered) {
    const l = byTenant.get(r.tenant);
    if (l) l.push(r);
    else byTenant.set(r.tenant, [r]);
  }
  const skipped: SkippedRegistration[] = [];
  const checkFailing = new Set<string>();
  const keyParts: string[] = [];
  let changed = false;
  const tenants = model.tenants.map((t) => {
    const regs = byTenant.get(t.name) ?? [];
    if (!t.chains.length) return t;
    const idx = indexTenant(t);
    // registration -> its endpoint (or the reason it has none), once per tenant
    const mapped = new Map<RegisteredInstance, Endpoint | string>(regs.map((r) => [r, endpointOf(t, r, idx)]));
    let tenantChanged = false;
    const chains = t.chains.map((c) => {
      const dst = new Set(chainDestinations(t, c));
      // Static instances of every hop first: a registered member never takes an endpoint another hop lists.
      const used = new Set<Endpoint>();
      for (const h of c.hops) if (h.service === undefined) for (const i of h.instances) used.add(i.ingress).add(i.egress);
      let chainChanged = false;
      const hops = c.hops.map((h, k): ChainHop => {
        if (h.service === undefined) return h;
        const members: Endpoint[] = [];
        for (const r of regs) {
          if (r.service !== h.service) continue;
          const e = mapped.get(r)!;
          const skip = (reason: string) => skipped.push({ chain: c.id, hop: k, service: h.service!, id: r.id, reason });
          if (typeof e === 'string') skip(e);
          else if (e.network !== c.network) skip(`endpoint "${e.name}" is on network "${e.network.name}", the chain on "${c.network.name}"`);
          else if (dst.has(e)) skip(`endpoint "${e.name}" is a destination of the chain`);
          else if (members.includes(e)) continue; // two registrations of one endpoint: one member
          else if (used.has(e)) skip(`endpoint "${e.name}" is already an instance of the chain`);
          else members.push(e);
        }
        if (!members.length) {
          // The labelled endpoints, less any an earlier hop's registrations took (never one endpoint twice in a chain).
          const kept = h.instances.filter((i) => !used.has(i.ingress) && !used.has(i.egress));
          for (const i of kept) used.add(i.ingress).add(i.egress);
          if (kept.length === h.instances.length) return h;
          chainChanged = true;
          return { service: h.service, instances: kept };
        }
        members.sort((a, b) => (a.name < b.name ? -1 : 1));
        for (const e of members) used.add(e);
        chainChanged = true;
        return { service: h.service, instances: members.map((e) => ({ ingress: e, egress: e, weight: 1 })) };
      });
      const out: Chain = chainChanged ? { ...c, hops } : c;
      if (chainChanged) tenantChanged = true;
      // health, over the members in force
      out.hops.forEach((h, k) => {
        keyParts.push(`${c.id}#${k}=${h.instances.map((i) => `${i.ingress.id}>${i.egress.id}`).join(',')}`);
        for (const r of regs) {
          if (r.status !== 'critical' || (h.service !== undefined && r.service !== h.service)) continue;
          const e = mapped.get(r)!;
          if (typeof e === 'string') continue;
          for (const i of h.instances) if (i.ingress === e || i.egress === e) checkFailing.add(e.id);
        }
      });
      return out;
    });
    if (!tenantChanged) return t;
    changed = true;
    return { ...t, chains };
  });
  keyParts.push(`failing=${[...checkFailing].sort().join(',')}`);
  return { model: changed ? { ...model, tenants } : model, checkFailing, skipped, key: keyParts.join(';') };
}
