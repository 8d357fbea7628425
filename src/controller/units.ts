/**
 * Units as the API shows and edits them, pure: submit/start/stop/destroy as edits of
 * the user's document, the agents' assignments and the unit list from the model in
 * force (effectiveDoc's instances plus IPAM), the placement and the agents' reports.
 */
import { fnv32 } from '../ipam/index.js';
import { expandUnits, Topology, type DesiredState } from '../model/index.js';
import type { AgentAssignment, AgentInfo, InstanceEndpoint, PlacementRecord, UnitInfo } from '../scheduler/index.js';
import { UsageError } from '../util/errors.js';
import type { EndpointInfo } from './types.js';

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

function docUnits(doc: unknown): Raw[] {
  if (!isObj(doc) || !Array.isArray(doc.units)) return [];
  return doc.units.filter(isObj);
}

/** `doc` with `units` added, or replacing the document's units of the same name (in place). */
export function submitUnits(doc: unknown, units: unknown): Raw {
  if (!Array.isArray(units) || units.length === 0) throw new UsageError('send {"units": [ ... ]} with at least one unit');
  const base: Raw = isObj(doc) ? { ...doc } : {};
  const list = Array.isArray(base.units) ? [...(base.units as unknown[])] : [];
  for (const u of units) {
    const name = isObj(u) ? u.name : undefined;
    const at = typeof name === 'string' ? list.findIndex((x) => isObj(x) && x.name === name) : -1;
    if (at >= 0) list[at] = u;
    else list.push(u);
  }
  base.units = list;
  return base;
}

/** Whether the document has a unit of that name (as written: a template is named by its range, `web@1..3`). */
export function hasUnit(doc: unknown, name: string): boolean {
  return docUnits(doc).some((u) => u.name === name);
}

/** `doc` with the named unit's desiredState set. */
export function setUnitState(doc: unknown, name: string, state: DesiredState): Raw {
  if (!hasUnit(doc, name)) throw new UsageError(`no unit named '${name}'`, { unit: name });
  const d = doc as Raw;
  return { ...d, units: (d.units as unknown[]).map((u) => (isObj(u) && u.name === name ? { ...u, desiredState: state } : u)) };
}

/** `doc` without the named unit. */
export function destroyUnit(doc: unknown, name: string): Raw {
  if (!hasUnit(doc, name)) throw new UsageError(`no unit named '${name}'`, { unit: name });
  const d = doc as Raw;
  return { ...d, units: (d.units as unknown[]).filter((u) => !(isObj(u) && u.name === name)) };
}

/** What the agent of `host` runs: its placed instances with their endpoints' addresses. */
export function assignmentsFor(host: string, instances: readonly InstanceEndpoint[], endpoints: ReadonlyMap<string, EndpointInfo>): { index: number; assignments: AgentAssignment[] } {
  const assignments: AgentAssignment[] = [];
  for (const i of instances) {
    if (i.host !== host || i.unit.desiredState === 'inactive') continue;
    const id = `${i.tenant}/${i.name}`;
    const e = endpoints.get(id);
    if (!e) continue;
    const a: AgentAssignment = {
      id: i.id,
      unit: i.unit.name,
      tenant: i.tenant,
      network: i.network,
      desiredState: i.unit.desiredState,
      command: i.unit.command,
      env: i.unit.env,
      restart: i.unit.restart,
      endpoint: { id, name: i.name, mac: e.mac, ...(e.ip ? { ip: e.ip } : {}), ...(e.ip6 ? { ip6: e.ip6 } : {}), ...(e.gateway ? { gateway: e.gateway } : {}) },
      services: i.unit.services,
    };
    if (i.unit.image !== undefined) a.image = i.unit.image;
    assignments.push(a);
  }
  assignments.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { index: assignmentIndex(assignments), assignments };
}

/** A number that changes whenever the set changes (never 0, which asks for an answer at once). */
export function assignmentIndex(assignments: readonly AgentAssignment[]): number {
  return fnv32(JSON.stringify(assignments)) || 1;
}

/** Every document unit with its instances: host and address once placed, state as its agent reports it. */
export function unitInfos(doc: unknown, placement: PlacementRecord | undefined, instances: readonly InstanceEndpoint[], endpoints: ReadonlyMap<string, EndpointInfo>, agents: readonly AgentInfo[]): UnitInfo[] {
  const parsed = Topology.safeParse(doc);
  if (!parsed.success) return [];
  const specs = expandUnits(parsed.data.units);
  const hostOf = new Map((placement?.assignments ?? []).map((a) => [a.id, a.host]));
  const byInstance = new Map(instances.map((i) => [i.id, i]));
  const state = new Map(agents.flatMap((a) => a.instances.map((s) => [`${a.host}/${s.id}`, s.state] as const)));
  const unplaceable = new Map<string, string[]>();
  for (const u of placement?.unplaceable ?? []) unplaceable.set(u.unit, [...(unplaceable.get(u.unit) ?? []), `${u.id}: ${u.reason}`]);
  return parsed.data.units.map((u, source) => {
    const mine = specs.filter((s) => s.source === source);
    const ids = new Set(mine.map((s) => s.name));
    const list: UnitInfo['instances'] = [];
    for (const a of placement?.assignments ?? []) {
      if (!ids.has(a.unit)) continue;
      const ie = byInstance.get(a.id);
      const ep = ie ? endpoints.get(`${ie.tenant}/${ie.name}`) : undefined;
      const st = state.get(`${a.host}/${a.id}`);
      list.push({ id: a.id, host: hostOf.get(a.id), ...(ep ? { endpoint: ep.id, ...(ep.ip ? { ip: ep.ip } : {}) } : {}), ...(st ? { state: st } : {}) });
    }
    for (const s of mine) for (const x of placement?.unplaceable ?? []) if (x.unit === s.name) list.push({ id: x.id });
    const why = mine.flatMap((s) => unplaceable.get(s.name) ?? []);
    list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { name: u.name, tenant: u.tenant, network: u.network, desiredState: u.desiredState, instances: list, ...(why.length ? { unplaceable: why.join('; ') } : {}) };
  });
}
