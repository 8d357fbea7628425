/**
 * Service chains and the service registry (pure): which endpoints a hop given as a
 * service has right now, and which chain instances fail their registry check.
 *
 * Registry writes need only the shared API token, so a registration proves nothing by
 * itself. A registration of service S in tenant T counts only when it is *verified*:
 * - it stands for one endpoint of T: the one `meta.endpoint` names ("T/name"), else
 *   the one whose IPv4 or IPv6 address is the registration's address;
 * - that endpoint's address is the registration's `address`;
 * - when `meta.host` is given, it is the endpoint's host;
 * - the endpoint provides S: it is labelled `service=S`, or it is a unit instance
 *   whose unit declares S (src/scheduler/endpoints.ts; the agent registers those).
 * Membership of a service hop of chain C (tenant T, service S):
 * - its labelled endpoints (`service=S`, resolved at validation; possibly none), always;
 * - plus the endpoints of T's verified registrations of S that are on C's network, are
 *   not a destination or (named by a `from` that is not `{}`) a source of C, and are not
 *   already an instance of C (a listed or labelled one, or another hop's registered one);
 * - whatever their health (a critical one stays a member and is only out of the
 *   group: "check failing"). Any other registration is *skipped*, with the reason, and
 *   changes nothing (it never displaces a labelled member).
 * Health: a chain instance is "check failing" when a verified registration standing for
 * it is critical: for a service hop, one of that service; for a hop listing its
 * instances, one of any service the instance provides. Warning counts as healthy (as DNS does).
 *
 * The registry's own HTTP/TCP checks run in the controller's network namespace,
 * which does not reach tenant addresses: tenant instances report TTL checks (the
 * agent, or the service itself, PUTs pass/fail).
 */
import { formatIp4, formatIp6 } from '../ipam/index.js';
import { chainDestinations, chainSources, isAnySelector, type Chain, type ChainHop, type Endpoint, type Model, type Tenant } from '../model/index.js';

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
 * that changes the instance's status, address, meta.endpoint or meta.host. Most registry events
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
  const now = `${ch.instance.status} ${ch.instance.address} ${ch.instance.meta?.['endpoint'] ?? ''} ${ch.instance.meta?.['host'] ?? ''}`;
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

/** A registration that made its endpoint a member of a hop. */
export interface JoinedRegistration {
  chain: string;
  hop: number;
  service: string;
  id: string;
  /** Endpoint id. */
  endpoint: string;
}

export interface ServiceView {
  /** The model with each service hop's verified registered members added to its labelled ones. */
  model: Model;
  /** Endpoint ids of chain instances whose registry check is critical. */
  checkFailing: Set<string>;
  skipped: SkippedRegistration[];
  /** The registrations that added a member to a hop (the members the validated model did not have). */
  joined: JoinedRegistration[];
  /** Equal keys: the same members and the same failing instances (nothing to recompile). */
  key: string;
}

/**
 * What the resolution reads of a unit instance (src/scheduler/endpoints.ts
 * InstanceEndpoint has these fields): the services its unit declares.
 */
export interface UnitInstance {
  tenant: string;
  /** Endpoint name; the endpoint id is `tenant/name`. */
  name: string;
  unit: { services: readonly { name: string }[] };
}

/** Endpoints of a tenant by address (IPv4 and IPv6 text) and by name, and what each provides. */
interface TenantIndex {
  byAddress: Map<string, Endpoint>;
  byName: Map<string, Endpoint>;
  /** Endpoint name -> services its unit declares (unit instances only). */
  declared: Map<string, Set<string>>;
}

function indexTenant(t: Tenant, units: readonly UnitInstance[] = []): TenantIndex {
  const byAddress = new Map<string, Endpoint>();
  for (const e of t.endpoints) {
    if (e.ip !== undefined) byAddress.set(formatIp4(e.ip), e);
    if (e.ip6 !== undefined) byAddress.set(formatIp6(e.ip6), e);
  }
  const declared = new Map<string, Set<string>>();
  for (const u of units) if (u.tenant === t.name) declared.set(u.name, new Set(u.unit.services.map((s) => s.name)));
  return { byAddress, byName: new Map(t.endpoints.map((e) => [e.name, e])), declared };
}

/** The endpoint a registration claims to stand for (not verified: see standsFor), or why none. */
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

/**
 * The endpoint a registration stands for once verified (see the file comment), or why
 * it does not count: the address, meta.host and service must all be the endpoint's.
 */
export function standsFor(t: Tenant, r: RegisteredInstance, units: readonly UnitInstance[] = [], idx: TenantIndex = indexTenant(t, units)): Endpoint | string {
  const e = endpointOf(t, r, idx);
  if (typeof e === 'string') return e;
  const a = canonical6(r.address);
  if (!(e.ip !== undefined && formatIp4(e.ip) === a) && !(e.ip6 !== undefined && formatIp6(e.ip6) === a)) {
    return `endpoint "${e.name}" does not have address ${r.address} (${[e.ip !== undefined ? formatIp4(e.ip) : undefined, e.ip6 !== undefined ? formatIp6(e.ip6) : undefined].filter(Boolean).join(', ') || 'none'})`;
  }
  const host = r.meta?.['host'];
  if (host !== undefined && host !== e.host) return `meta.host "${host}" is not endpoint "${e.name}"'s host "${e.host}"`;
  if (e.labels['service'] !== r.service && !idx.declared.get(e.name)?.has(r.service)) {
    return `endpoint "${e.name}" does not provide service "${r.service}" (not labelled service=${r.service}, not an instance of a unit declaring it)`;
  }
  return e;
}

function canonical6(a: string): string {
  if (!a.includes(':')) return a;
  try {
    return new URL(`http://[${a}]/`).hostname.slice(1, -1);
  } catch {
    return a;
  }
}

/**
 * Membership and health of every chain instance, from the registry's instances and
 * the unit instances of the model (what they declare; see the file comment).
 */
export function resolveServices(model: Model, registered: readonly RegisteredInstance[], units: readonly UnitInstance[] = []): ServiceView {
  const byTenant = new Map<string, RegisteredInstance[]>();
  for (const r of registered) {
    const l = byTenant.get(r.tenant);
    if (l) l.push(r);
    else byTenant.set(r.tenant, [r]);
  }
  const skipped: SkippedRegistration[] = [];
  const joined: JoinedRegistration[] = [];
  const checkFailing = new Set<string>();
  const keyParts: string[] = [];
  let changed = false;
  const tenants = model.tenants.map((t) => {
    const regs = byTenant.get(t.name) ?? [];
    if (!t.chains.length) return t;
    const idx = indexTenant(t, units);
    // registration -> its verified endpoint (or the reason it does not count), once per tenant
    const mapped = new Map<RegisteredInstance, Endpoint | string>(regs.map((r) => [r, standsFor(t, r, units, idx)]));
    let tenantChanged = false;
    const chains = t.chains.map((c) => {
      const dst = new Set(chainDestinations(t, c));
      // Sources a `from` names (by endpoint, label or CIDR); `{}` selects every endpoint, so only the verification guards it.
      const src = new Set(isAnySelector(c.from) ? [] : chainSources(t, c));
      // Every listed and labelled instance first: a registration never takes or displaces one.
      const used = new Set<Endpoint>();
      for (const h of c.hops) for (const i of h.instances) used.add(i.ingress).add(i.egress);
      let chainChanged = false;
      const hops = c.hops.map((h, k): ChainHop => {
        if (h.service === undefined) return h;
        const added: Endpoint[] = [];
        for (const r of regs) {
          if (r.service !== h.service) continue;
          const e = mapped.get(r)!;
          const skip = (reason: string) => skipped.push({ chain: c.id, hop: k, service: h.service!, id: r.id, reason });
          if (typeof e === 'string') skip(e);
          else if (h.instances.some((i) => i.ingress === e)) continue; // a labelled member registered itself (health only)
          else if (added.includes(e)) joined.push({ chain: c.id, hop: k, service: h.service, id: r.id, endpoint: e.id }); // two registrations of one endpoint: one member
          else if (e.network !== c.network) skip(`endpoint "${e.name}" is on network "${e.network.name}", the chain on "${c.network.name}"`);
          else if (dst.has(e)) skip(`endpoint "${e.name}" is a destination of the chain`);
          else if (src.has(e)) skip(`endpoint "${e.name}" is a source of the chain`);
          else if (used.has(e)) skip(`endpoint "${e.name}" is already an instance of the chain`);
          else {
            added.push(e);
            joined.push({ chain: c.id, hop: k, service: h.service, id: r.id, endpoint: e.id });
          }
        }
        if (!added.length) return h;
        for (const e of added) used.add(e);
        chainChanged = true;
        const instances = [...h.instances, ...added.map((e) => ({ ingress: e, egress: e, weight: 1 }))].sort((a, b) => (a.ingress.name < b.ingress.name ? -1 : 1));
        return { service: h.service, instances };
      });
      const out: Chain = chainChanged ? { ...c, hops } : c;
      if (chainChanged) tenantChanged = true;
      // health, over the members in force, from verified registrations only
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
  return { model: changed ? { ...model, tenants } : model, checkFailing, skipped, joined, key: keyParts.join(';') };
}

/** The tenant of a chain id ("tenant/chain"). */
const tenantOfChain = (chainId: string) => chainId.slice(0, chainId.indexOf('/'));

/**
 * `view` with the tenants named on their validated chains (`base`'s, labelled members
 * only): for when their registered members make the compile fail. Their registrations
 * that added members move to `skipped` with `reason`; other tenants keep theirs. The key
 * stays (the registry did not change). Returns `base` itself once no tenant differs.
 */
export function withoutRegistered(view: ServiceView, base: Model, tenants: ReadonlySet<string>, reason: string): ServiceView {
  const model = view.model.tenants.map((t, i) => (tenants.has(t.name) ? base.tenants[i]! : t));
  const differs = model.some((t, i) => t !== base.tenants[i]);
  const out = view.joined.filter((j) => tenants.has(tenantOfChain(j.chain)));
  return {
    model: differs ? { ...view.model, tenants: model } : base,
    checkFailing: view.checkFailing,
    skipped: [...view.skipped, ...out.map((j) => ({ chain: j.chain, hop: j.hop, service: j.service, id: j.id, reason }))],
    joined: view.joined.filter((j) => !tenants.has(tenantOfChain(j.chain))),
    key: view.key,
  };
}

/** Tenants whose chains differ from `base`'s in `view` (the ones with registered members). */
export function tenantsWithRegistered(view: ServiceView, base: Model): Set<string> {
  return new Set(view.model.tenants.filter((t, i) => t !== base.tenants[i]).map((t) => t.name));
}

/** The tenants a compile error blames (a ChainConflictError names its chains "tenant/chain"); empty when it names none. */
export function blamedTenants(err: unknown): Set<string> {
  const chains = (err as { context?: { chains?: unknown } }).context?.chains;
  return new Set(Array.isArray(chains) ? chains.filter((c): c is string => typeof c === 'string' && c.includes('/')).map(tenantOfChain) : []);
}
