/**
 * Unit instances as endpoints (issue-9 contract §2), pure: the document the
 * controller validates and compiles is the user's document plus one endpoint per
 * placed instance, on the host the scheduler chose, and plus the hosts that only
 * agents know. IPAM keys on the endpoint id ("tenant/name"), which does not change
 * when an instance moves host: a moved instance keeps its IP and MAC.
 */
import { expandUnits, formatCpu, formatMemory, HostSchema, Topology, type TopologyDoc, type UnitSpec, type ValidationIssue } from '../model/index.js';
import { hostsOf } from './hosts.js';
import { globalId, instanceIds } from './place.js';
import type { AgentRegistration, PlacementRecord } from './records.js';
import type { Assignment, PlacementHost } from './types.js';

/** `web@1` → `web-1`, `web.2` → `web-2`, `metrics:host1` → `metrics-host1`. */
export function endpointName(instanceId: string): string {
  return instanceId.replace(/[@.:]/g, '-');
}

/** One placed instance as the endpoint it becomes. */
export interface InstanceEndpoint {
  /** Instance id (`web@1`, `web.2`, `metrics:host1`). */
  id: string;
  unit: UnitSpec;
  host: string;
  tenant: string;
  network: string;
  /** Endpoint name (endpointName(id)); the endpoint id is `tenant/name`. */
  name: string;
}

export interface EffectiveDoc {
  /** The document to validate and compile (the input itself when it has nothing to add). */
  doc: unknown;
  /** Clashes between instance endpoints and the document's own endpoints, with paths. */
  issues: ValidationIssue[];
  instances: InstanceEndpoint[];
}

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The document parsed (defaults applied), or undefined when it does not parse (validation will say why). */
export function parseDoc(doc: unknown): TopologyDoc | undefined {
  const r = Topology.safeParse(doc);
  return r.success ? r.data : undefined;
}

/** A host entry for an agent-only host; undefined when the agent did not say how to reach its switch. */
function agentHost(name: string, reg: AgentRegistration): Raw | undefined {
  if (!reg.underlayIp || !reg.ovsdb) return undefined;
  const h: Raw = { name, underlayIp: reg.underlayIp, ovsdb: reg.ovsdb, labels: { ...(reg.labels ?? {}) } };
  if (reg.datapathType) h.datapathType = reg.datapathType;
  const res = resourcesOf(reg);
  if (res) h.resources = res;
  return h;
}

/**
 * Why an agent's registration would make the effective document invalid, with paths into
 * the registration (`/underlayIp`, …): its host entry against the model's Host schema and
 * its underlay IP against the document's other hosts and the other agents' own hosts.
 * Empty for a host the document lists (only labels and resources are taken from the agent,
 * checked when registering) or one that is not offered (no underlayIp/ovsdb).
 */
export function agentHostIssues(name: string, reg: AgentRegistration, rawDocHosts: unknown, others: Readonly<Record<string, AgentRegistration>>): ValidationIssue[] {
  const docHosts = Array.isArray(rawDocHosts) ? rawDocHosts.filter(isObj) : [];
  const listed = new Set(docHosts.map((h) => h.name));
  const h = agentHost(name, reg);
  if (listed.has(name) || !h) return [];
  const r = HostSchema.safeParse(h);
  if (!r.success) return r.error.issues.map((i) => ({ path: `/${i.path.join('/')}`, message: i.message }));
  const clash = docHosts.find((d) => d.name !== name && d.underlayIp === reg.underlayIp);
  if (clash) return [{ path: '/underlayIp', message: `underlay IP ${reg.underlayIp} is host ${String(clash.name)}'s in the document` }];
  for (const [other, o] of Object.entries(others).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (other !== name && !listed.has(other) && o.ovsdb && o.underlayIp === reg.underlayIp) return [{ path: '/underlayIp', message: `underlay IP ${reg.underlayIp} is registered by the agent of host ${other}` }];
  }
  return [];
}

/** Resources in document form: cpu as "<n>m" (a bare number would mean cores), memory in bytes. */
function resourcesOf(reg: AgentRegistration): Raw | undefined {
  const r = reg.resources;
  if (!r || (r.cpu === undefined && r.memory === undefined)) return undefined;
  const out: Raw = {};
  if (r.cpu !== undefined) out.cpu = `${Math.round(r.cpu)}m`;
  if (r.memory !== undefined) out.memory = Math.round(r.memory);
  return out;
}

/**
 * The hosts of the effective document: the document's own (an agent's labels and
 * resources fill in what the document leaves out), then agent-only hosts by name.
 */
function effectiveHosts(rawHosts: unknown[], agents: Readonly<Record<string, AgentRegistration>>): unknown[] {
  const listed = new Set<string>();
  const hosts = rawHosts.map((h) => {
    if (!isObj(h) || typeof h.name !== 'string') return h;
    listed.add(h.name);
    const reg = agents[h.name];
    if (!reg) return h;
    const out: Raw = { ...h };
    if (reg.labels && Object.keys(reg.labels).length) out.labels = { ...reg.labels, ...(isObj(h.labels) ? h.labels : {}) };
    const res = resourcesOf(reg);
    if (res) out.resources = { ...res, ...(isObj(h.resources) ? h.resources : {}) };
    return out;
  });
  for (const name of Object.keys(agents).sort()) {
    if (listed.has(name)) continue;
    const h = agentHost(name, agents[name]!);
    if (h) hosts.push(h);
  }
  return hosts;
}

/**
 * The document the controller validates and compiles: `doc` with every placed
 * instance as an endpoint of its unit's tenant/network on its assigned host, labels
 * `{unit, service}`, and the agents' hosts. Assignments whose unit is gone or whose
 * host is not in the effective document are left out (the scheduler moves them).
 */
export function effectiveDoc(doc: unknown, placement: Pick<PlacementRecord, 'assignments'> | undefined, agents: Readonly<Record<string, AgentRegistration>> = {}): EffectiveDoc {
  const parsed = parseDoc(doc);
  if (!parsed || !isObj(doc)) return { doc, issues: [], instances: [] };
  const hasAgents = Object.keys(agents).length > 0;
  if (!placement?.assignments.length && !hasAgents && !parsed.units.length) return { doc, issues: [], instances: [] };

  const out: Raw = { ...doc };
  const hosts = effectiveHosts(Array.isArray(doc.hosts) ? doc.hosts : [], agents);
  if (hasAgents) out.hosts = hosts;
  const hostNames = new Set(hosts.flatMap((h) => (isObj(h) && typeof h.name === 'string' ? [h.name] : [])));
  const units = new Map(expandUnits(parsed.units).map((u) => [u.name, u]));

  // Hand-written endpoints per tenant: name → path.
  const declared = new Map<string, string>();
  parsed.tenants.forEach((t, ti) => t.endpoints.forEach((e, ei) => declared.set(`${t.name}/${e.name}`, `/tenants/${ti}/endpoints/${ei}`)));
  const tenantIndex = new Map(parsed.tenants.map((t, i) => [t.name, i]));

  const issues = clashes(units.values(), declared, [...hostNames]);
  const instances: InstanceEndpoint[] = [];
  const taken = new Map<string, string>(); // endpoint id → instance id that took it
  const added = new Map<number, Raw[]>();
  for (const a of placement?.assignments ?? []) {
    const unit = units.get(a.unit);
    if (!unit || unit.desiredState === 'inactive' || !hostNames.has(a.host)) continue;
    const ti = tenantIndex.get(unit.tenant);
    if (ti === undefined) continue; // validation reports the unknown tenant at the unit
    const name = endpointName(a.id);
    const id = `${unit.tenant}/${name}`;
    if (declared.has(id) || taken.has(id)) continue; // reported by clashes()
    taken.set(id, a.id);
    const labels: Record<string, string> = { unit: endpointName(unit.name) };
    if (unit.services[0]) labels.service = unit.services[0].name;
    const list = added.get(ti) ?? [];
    list.push({ name, network: unit.network, host: a.host, labels });
    added.set(ti, list);
    instances.push({ id: a.id, unit, host: a.host, tenant: unit.tenant, network: unit.network, name });
  }
  if (added.size) {
    const rawTenants = Array.isArray(doc.tenants) ? doc.tenants : [];
    out.tenants = rawTenants.map((t, i) => {
      const more = added.get(i);
      if (!more || !isObj(t)) return t;
      return { ...t, endpoints: [...(Array.isArray(t.endpoints) ? t.endpoints : []), ...more] };
    });
  }
  return { doc: out, issues, instances };
}

/**
 * Every instance a unit can have (replicas, one per host for global units) against the
 * document's own endpoints and each other: a clash is an error at the unit whether or
 * not the instance is placed yet, so an apply fails rather than a later placement.
 */
function clashes(units: Iterable<UnitSpec>, declared: ReadonlyMap<string, string>, hosts: readonly string[]): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const taken = new Map<string, string>();
  const reported = new Set<number>();
  for (const u of units) {
    if (u.desiredState === 'inactive') continue;
    const ids = u.global ? hosts.map((h) => globalId(u.name, h)) : instanceIds(u);
    for (const iid of ids) {
      const id = `${u.tenant}/${endpointName(iid)}`;
      const hand = declared.get(id);
      const other = taken.get(id);
      let message: string | undefined;
      if (hand) message = `instance "${iid}" becomes endpoint "${id}", which the document already declares at ${hand}`;
      else if (other) message = `instances "${other}" and "${iid}" would both be endpoint "${id}"`;
      else taken.set(id, iid);
      if (message && !reported.has(u.source)) {
        reported.add(u.source);
        issues.push({ path: `/units/${u.source}/name`, message });
      }
    }
  }
  return issues;
}

/**
 * What place() gets: the document's units (templates expanded) and the hosts of the
 * effective document that have a live agent, with their labels and resources.
 */
export function schedulingInput(doc: unknown, live: Readonly<Record<string, AgentRegistration>>): { units: UnitSpec[]; hosts: PlacementHost[] } | undefined {
  const parsed = parseDoc(doc);
  if (!parsed) return undefined;
  const eff = parseDoc({ ...(doc as Raw), hosts: effectiveHosts(Array.isArray((doc as Raw).hosts) ? ((doc as Raw).hosts as unknown[]) : [], live) });
  const hosts = hostsOf(eff ?? parsed).filter((h) => live[h.name] !== undefined);
  return { units: expandUnits(parsed.units), hosts };
}

/** Instance id → host of a placement (place()'s `current`). */
export function currentOf(placement: Pick<PlacementRecord, 'assignments'> | undefined): Map<string, string> {
  return new Map((placement?.assignments ?? []).map((a: Assignment) => [a.id, a.host]));
}

/** Two placements assign the same instances to the same hosts and explain the same unplaceable ones. */
export function samePlacement(a: Pick<PlacementRecord, 'assignments' | 'unplaceable'> | undefined, b: Pick<PlacementRecord, 'assignments' | 'unplaceable'>): boolean {
  const key = (p: Pick<PlacementRecord, 'assignments' | 'unplaceable'>) =>
    JSON.stringify([[...p.assignments].map((x) => `${x.id}=${x.host}`).sort(), [...p.unplaceable].map((u) => `${u.id}:${u.reason}`).sort()]);
  return a !== undefined && key(a) === key(b);
}

/**
 * Units that ask more cpu or memory than any host offers (the hosts with an agent,
 * their resources as the document or else the agent gives them; without agents, the
 * document's hosts; a host without a figure is not limited): an error
 * at the unit's resources, so a submit fails at once rather than stays unplaceable.
 */
export function oversizedUnits(doc: unknown, agents: Readonly<Record<string, AgentRegistration>>): ValidationIssue[] {
  const parsed = parseDoc(doc);
  if (!parsed || !parsed.units.length) return [];
  const eff = parseDoc({ ...(doc as Raw), hosts: effectiveHosts(Array.isArray((doc as Raw).hosts) ? ((doc as Raw).hosts as unknown[]) : [], agents) });
  // With agents, only their hosts can run anything; without, the document's hosts as declared.
  const withAgents = Object.keys(agents).length > 0;
  const hosts = hostsOf(eff ?? parsed).filter((h) => !withAgents || agents[h.name] !== undefined);
  if (!hosts.length) return [];
  const maxCpu = Math.max(...hosts.map((h) => h.cpu ?? Infinity));
  const maxMem = Math.max(...hosts.map((h) => h.memory ?? Infinity));
  const issues: ValidationIssue[] = [];
  parsed.units.forEach((u, i) => {
    if (u.desiredState === 'inactive') return;
    if (u.resources.memory > maxMem) issues.push({ path: `/units/${i}/resources/memory`, message: `asks ${formatMemory(u.resources.memory)}; the largest host offers ${formatMemory(maxMem)}` });
    if (u.resources.cpu > maxCpu) issues.push({ path: `/units/${i}/resources/cpu`, message: `asks ${formatCpu(u.resources.cpu)}; the largest host offers ${formatCpu(maxCpu)}` });
  });
  return issues;
}
