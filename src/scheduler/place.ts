/**
 * The placement function: pure and deterministic (same input, same output, whatever
 * the input order). See docs/SCHEDULER.md for the algorithm; in short:
 *
 * 1. Current placements stay where they are (their resources count) unless their host
 *    is gone or their pin/labels no longer allow it; those become moves.
 * 2. Global units go to every host their labels/pin allow, where they fit.
 * 3. The rest, as machineOf groups (a unit and everything co-located with it, placed as
 *    one: summed resources, combined constraints), pinned first, then label-constrained,
 *    then the others, each by name: candidates are the hosts the labels/pin allow
 *    (computed once per distinct constraint signature from a label index), kept in a
 *    load heap; the least loaded candidate with room and no conflict wins.
 * 4. Whatever cannot be placed comes back with an explanation computed by running the
 *    filters one by one over the hosts and naming what each excluded.
 */
import { cycleText, formatCpu, formatMemory } from '../model/index.js';
import { GlobCache, type NameMatcher } from './glob.js';
import { LoadHeap, type LoadedHost } from './heap.js';
import type { Assignment, CurrentPlacement, Exclusion, Move, PlacementHost, PlacementResult, PlacementUnit, Unplaceable } from './types.js';

interface HostState extends LoadedHost {
  name: string;
  labels: Readonly<Record<string, string>>;
  cpuCap: number;
  memCap: number;
  cpuUsed: number;
  memUsed: number;
  /** Unit name → its instances here (conflicts and replica spread). */
  units: Map<string, number>;
  /** Units here that declare conflicts (the other direction of the check). */
  conflicters: Map<UnitRec, number>;
}

interface UnitRec {
  spec: PlacementUnit;
  name: string;
  matchers: NameMatcher[];
  /** Its own conflicts match its own name: replicas must use distinct hosts. */
  selfConflict: boolean;
  /** Its machineOf group (a field, not a Map keyed by the record: that costs an identity hash per unit). */
  group: Group | undefined;
}

interface Group {
  root: UnitRec;
  /** Root first, then the others by name. */
  members: UnitRec[];
  cpu: number;
  memory: number;
  hostLabels: Record<string, string[]>;
  pin?: string;
  /** Why the group can never be placed, whatever the hosts (contradictory constraints). */
  broken?: string;
  sig: string;
  /** Placement order: 0 pinned, 1 label-constrained, 2 the rest. */
  klass: number;
}

const NO_MATCHERS: NameMatcher[] = [];
const NO_LABELS: Record<string, string[]> = Object.freeze({}) as Record<string, string[]>;

interface Candidates {
  hosts: HostState[];
  maxCpu: number;
  maxMem: number;
  heap?: LoadHeap<HostState>;
  /**
   * (cpu, memory) requests that found no host on resources alone, Pareto-minimal:
   * anything at least as big in both fails too (free room only shrinks during a run).
   */
  fails: Array<[number, number]>;
}

/** Hosts named in an explanation's text, and listed per exclusion. */
const MAX_NAMED = 5;
const MAX_LISTED = 20;
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function entries(current: CurrentPlacement | undefined): Iterable<[string, string]> {
  if (!current) return [];
  return current instanceof Map ? (current as ReadonlyMap<string, string>) : Object.entries(current as Record<string, string>);
}

/** Instance ids of a non-global unit. */
export function instanceIds(u: Pick<PlacementUnit, 'name' | 'replicas'>): string[] {
  if (u.replicas <= 1) return [u.name];
  return Array.from({ length: u.replicas }, (_, i) => `${u.name}.${i + 1}`);
}

/** Instance id of a global unit on a host. */
export const globalId = (unit: string, host: string) => `${unit}:${host}`;

/** Places `units` on `hosts`, keeping `current` placements (instance id → host) where they still hold. */
export function place(units: readonly PlacementUnit[], hosts: readonly PlacementHost[], current?: CurrentPlacement): PlacementResult {
  return new Run(hosts).run(units, current);
}

class Run {
  private readonly hosts: HostState[];
  private readonly byName = new Map<string, HostState>();
  private readonly labelIndex = new Map<string, Map<string, HostState[]>>();
  private readonly cands = new Map<string, Candidates>();
  private readonly where = new Map<string, { unit: UnitRec; host: HostState }>();
  private readonly placed: Assignment[] = [];
  private readonly unplaceable: Unplaceable[] = [];
  private readonly pending: Array<() => void> = [];
  private readonly explained = new Map<string, { reason: string; excluded: Exclusion[]; settledByResources: boolean }>();
  /** Per run, so a long-lived caller does not accumulate patterns of units long gone. */
  private readonly globs = new GlobCache();

  constructor(hostList: readonly PlacementHost[]) {
    const sorted = [...hostList].sort((a, b) => cmp(a.name, b.name));
    this.hosts = [];
    for (const h of sorted) {
      if (this.byName.has(h.name)) continue; // a duplicate host name: the first one counts
      const s: HostState = {
        name: h.name,
        labels: h.labels,
        rank: this.hosts.length,
        cpuCap: h.cpu ?? Infinity,
        memCap: h.memory ?? Infinity,
        cpuUsed: 0,
        memUsed: 0,
        share: 0,
        count: 0,
        version: 0,
        units: new Map(),
        conflicters: new Map(),
      };
      this.hosts.push(s);
      this.byName.set(h.name, s);
      for (const [k, v] of Object.entries(h.labels)) {
        let byValue = this.labelIndex.get(k);
        if (!byValue) this.labelIndex.set(k, (byValue = new Map()));
        let list = byValue.get(v);
        if (!list) byValue.set(v, (list = []));
        list.push(s);
      }
    }
  }

  run(units: readonly PlacementUnit[], current: CurrentPlacement | undefined): PlacementResult {
    // ---- unit records (inactive units are not scheduled; a repeated name counts once)
    // (A name given twice is invalid input; the first occurrence counts.)
    const recs = new Map<string, UnitRec>();
    const inactive = new Set<string>();
    const globals: UnitRec[] = [];
    for (const u of units) {
      if (recs.has(u.name) || inactive.has(u.name)) continue;
      if (u.desiredState === 'inactive') {
        inactive.add(u.name);
        continue;
      }
      const matchers = u.conflicts.length ? u.conflicts.map((g) => this.globs.get(g)) : NO_MATCHERS;
      const rec: UnitRec = { spec: u, name: u.name, matchers, selfConflict: matchers.length > 0 && matchers.some((m) => m(u.name)), group: undefined };
      recs.set(u.name, rec);
      if (u.global) globals.push(rec);
    }
    globals.sort((a, b) => cmp(a.name, b.name));

    // ---- machineOf groups
    const groups: Group[] = [];
    // Each unit's group root (or why it has none), memoized: one walk per chain, so a
    // long machineOf chain costs O(length), not O(length²).
    const rootMemo = new Map<UnitRec, UnitRec | string>();
    const rootOf = (r: UnitRec): UnitRec | string => {
      const path: UnitRec[] = [];
      const onPath = new Map<UnitRec, number>();
      let cur = r;
      let end: UnitRec | string | undefined;
      let cycleAt = -1;
      for (;;) {
        const known = rootMemo.get(cur);
        if (known !== undefined) {
          end = known;
          break;
        }
        if (cur.spec.machineOf === undefined) {
          end = cur;
          break;
        }
        onPath.set(cur, path.length);
        path.push(cur);
        const next = recs.get(cur.spec.machineOf);
        if (!next) {
          end = inactive.has(cur.spec.machineOf) ? `machineOf "${cur.spec.machineOf}": that unit is inactive` : `machineOf "${cur.spec.machineOf}": no such unit`;
          break;
        }
        const at = onPath.get(next);
        if (at !== undefined) {
          cycleAt = at;
          break;
        }
        if (cur.spec.replicas > 1 || next.spec.global || next.spec.replicas > 1) {
          end = `machineOf needs single-instance units (no replicas, not global): "${cur.name}" → "${next.name}"`;
          break;
        }
        cur = next;
      }
      if (cycleAt >= 0) {
        // Units on the cycle name it from themselves; units leading into it, from where they enter.
        const cycle = path.slice(cycleAt).map((x) => x.name);
        cycle.forEach((_, i) => rootMemo.set(path[cycleAt + i]!, `machineOf cycle: ${cycleText(cycle, i)}`));
        const entry = rootMemo.get(path[cycleAt]!)!;
        for (let i = 0; i < cycleAt; i++) rootMemo.set(path[i]!, entry);
      } else for (const x of path) rootMemo.set(x, end!);
      return rootMemo.get(r) ?? end!;
    };
    const orphans: Array<[UnitRec, string]> = [];
    for (const r of recs.values()) {
      if (r.spec.global) continue;
      const root = rootOf(r);
      if (typeof root === 'string') {
        orphans.push([r, root]);
        continue;
      }
      let g = root.group;
      if (!g) groups.push((root.group = g = { root, members: [root], cpu: 0, memory: 0, hostLabels: NO_LABELS, sig: '', klass: 2 }));
      if (r !== root) {
        g.members.push(r);
        r.group = g;
      }
    }
    for (const g of groups) this.combine(g);
    // Reported by name, so the order of the input does not show.
    for (const [r, why] of orphans.sort((a, b) => cmp(a[0].name, b[0].name))) for (const id of instanceIds(r.spec)) this.fail(id, r.name, why, []);

    // ---- current placements
    const moves = new Map<string, { unit: string; from: string; reason: string }>();
    const removed: Assignment[] = [];
    const wasOn = new Map<string, string>();
    for (const [id0, hostName] of entries(current)) {
      // A unit name cannot hold ':', '.' only as `name.N`: the plain id is the common case.
      const plain = recs.get(id0);
      if (plain && !plain.spec.global && plain.spec.replicas === 1 && !this.where.has(id0)) {
        const g = plain.group;
        const host = this.byName.get(hostName);
        if (g && host && this.allows(host, g.hostLabels, g.pin)) {
          this.assign(id0, plain, host);
          if (g.members.length > 1) wasOn.set(id0, hostName);
          continue;
        }
      }
      const ref = this.lookup(id0, recs);
      if (!ref || (!ref.unit.spec.global && ref.unit.group === undefined)) {
        removed.push({ id: id0, unit: ref?.unit.name ?? unitOfId(id0), host: hostName });
        continue;
      }
      const { id, unit } = ref;
      if (this.where.has(id)) {
        // Another entry already stands for this instance (`web` and `web.1`): this one is extra.
        removed.push({ id: id0, unit: unit.name, host: hostName });
        continue;
      }
      const host = this.byName.get(hostName);
      if (unit.spec.global) {
        if (ref.globalHost !== hostName) removed.push({ id: id0, unit: unit.name, host: hostName });
        else if (!host || !this.allows(host, unit.spec.hostLabels, undefined)) removed.push({ id, unit: unit.name, host: hostName });
        else this.assign(id, unit, host);
        continue;
      }
      const g = unit.group!;
      if (!host) moves.set(id, { unit: unit.name, from: hostName, reason: `host ${hostName} is gone` });
      else if (!this.allows(host, g.hostLabels, g.pin)) moves.set(id, { unit: unit.name, from: hostName, reason: `constraints no longer allow ${hostName}` });
      else {
        this.assign(id, unit, host);
        wasOn.set(id, hostName);
      }
    }

    // ---- global units
    for (const r of globals) this.placeGlobal(r);

    // ---- groups: pinned, then label-constrained, then the rest; each by root name
    const order = groups.sort((a, b) => a.klass - b.klass || cmp(a.root.name, b.root.name));
    for (const g of order) {
      if (g.members.length === 1) this.placeSingle(g);
      else this.placeGroup(g, wasOn, moves);
    }

    // ---- result
    for (const explain of this.pending) explain();
    const moved: Move[] = [];
    for (const [id, m] of [...moves].sort((a, b) => cmp(a[0], b[0]))) {
      const to = this.where.get(id)?.host.name;
      moved.push(to === undefined ? { id, ...m } : { id, ...m, to });
    }
    const assignments: Assignment[] = [];
    for (const [id, w] of this.where) assignments.push({ id, unit: w.unit.name, host: w.host.name });
    removed.sort((a, b) => cmp(a.id, b.id));
    return { assignments, placed: this.placed, moved, removed, unplaceable: this.unplaceable };
  }

  /** Which instance a current id stands for, following replica count changes (`web` ↔ `web.1`). */
  private lookup(id: string, recs: Map<string, UnitRec>): { id: string; unit: UnitRec; globalHost?: string } | undefined {
    const colon = id.lastIndexOf(':');
    if (colon > 0) {
      const r = recs.get(id.slice(0, colon));
      return r?.spec.global ? { id, unit: r, globalHost: id.slice(colon + 1) } : undefined;
    }
    const r = recs.get(id);
    if (r) return r.spec.global ? undefined : { id: r.spec.replicas > 1 ? `${id}.1` : id, unit: r };
    const m = /^(.*)\.(\d+)$/.exec(id);
    if (!m) return undefined;
    const base = recs.get(m[1]!);
    const i = Number(m[2]);
    if (!base || base.spec.global || i < 1 || i > base.spec.replicas) return undefined;
    return { id: base.spec.replicas > 1 ? id : base.name, unit: base };
  }

  /** Sums resources and merges labels and pins of a machineOf group. */
  private combine(g: Group): void {
    const only = g.root.spec;
    if (g.members.length === 1 && only.host === undefined && isEmpty(only.hostLabels)) {
      g.cpu = only.cpu;
      g.memory = only.memory;
      g.sig = '|';
      return;
    }
    if (g.members.length > 1) g.members = [g.root, ...g.members.slice(1).sort((a, b) => cmp(a.name, b.name))];
    const labels: Record<string, string[]> = {};
    for (const m of g.members) {
      g.cpu += m.spec.cpu;
      g.memory += m.spec.memory;
      for (const [k, vs] of Object.entries(m.spec.hostLabels)) {
        const prev = labels[k];
        labels[k] = prev ? prev.filter((v) => vs.includes(v)) : [...vs].sort();
        if (!labels[k]!.length && !g.broken)
          g.broken = g.members.length > 1 ? `hostLabels ${k}: the machineOf group ${g.members.map((x) => x.name).join(', ')} asks for disjoint values` : `hostLabels ${k}: no value given`;
      }
      if (m.spec.host !== undefined) {
        if (g.pin !== undefined && g.pin !== m.spec.host && !g.broken) g.broken = `host pin: the machineOf group ${g.members.map((x) => x.name).join(', ')} is pinned to both ${g.pin} and ${m.spec.host}`;
        g.pin ??= m.spec.host;
      }
    }
    if (g.members.length > 1) {
      for (const a of g.members)
        for (const b of g.members)
          if (a !== b && a.matchers.some((m) => m(b.name)) && !g.broken) g.broken = `conflicts: ${a.name} conflicts with ${b.name}, which is machineOf the same group`;
    }
    g.hostLabels = labels;
    const keys = Object.keys(labels).sort();
    g.sig = `${g.pin ?? ''}|${keys.map((k) => `${k}=${labels[k]!.join(',')}`).join('|')}`;
    g.klass = g.pin !== undefined ? 0 : keys.length ? 1 : 2;
  }

  private allows(h: HostState, labels: Readonly<Record<string, readonly string[]>>, pin: string | undefined): boolean {
    if (pin !== undefined && h.name !== pin) return false;
    for (const k in labels) {
      const v = h.labels[k];
      if (v === undefined || !labels[k]!.includes(v)) return false;
    }
    return true;
  }

  /** Hosts the labels and pin allow, sorted by name, computed once per signature. */
  private candidates(sig: string, labels: Readonly<Record<string, readonly string[]>>, pin: string | undefined): Candidates {
    let c = this.cands.get(sig);
    if (c) return c;
    let list: HostState[];
    const keys = Object.keys(labels);
    if (pin !== undefined) {
      const h = this.byName.get(pin);
      list = h && this.allows(h, labels, undefined) ? [h] : [];
    } else if (!keys.length) list = this.hosts;
    else {
      // Start from the key with the fewest hosts; check the other keys host by host.
      let best: HostState[] | undefined;
      for (const k of keys) {
        const byValue = this.labelIndex.get(k);
        const union: HostState[] = [];
        for (const v of labels[k]!) union.push(...(byValue?.get(v) ?? []));
        if (!best || union.length < best.length) best = union;
      }
      list = best!.filter((h) => this.allows(h, labels, undefined)).sort((a, b) => a.rank - b.rank);
    }
    let maxCpu = 0;
    let maxMem = 0;
    for (const h of list) {
      if (h.cpuCap > maxCpu) maxCpu = h.cpuCap;
      if (h.memCap > maxMem) maxMem = h.memCap;
    }
    c = { hosts: list, maxCpu, maxMem, fails: [] };
    this.cands.set(sig, c);
    return c;
  }

  private fits(h: HostState, cpu: number, mem: number): boolean {
    return h.cpuUsed + cpu <= h.cpuCap && h.memUsed + mem <= h.memCap;
  }

  /** The unit on `h` that conflicts with any of `members` (in either direction), if any. */
  private conflictOn(h: HostState, members: readonly UnitRec[]): string | undefined {
    for (const m of members) {
      if (m.matchers.length) {
        for (const name of h.units.keys()) {
          if (name === m.name && !m.selfConflict) continue;
          for (const match of m.matchers) if (match(name)) return name;
        }
      }
      for (const c of h.conflicters.keys()) {
        if (c !== m && c.matchers.some((match) => match(m.name))) return c.name;
      }
    }
    return undefined;
  }

  private assign(id: string, unit: UnitRec, h: HostState): void {
    this.where.set(id, { unit, host: h });
    h.cpuUsed += unit.spec.cpu;
    h.memUsed += unit.spec.memory;
    h.count++;
    h.share = Math.max(h.cpuCap === Infinity ? 0 : h.cpuUsed / h.cpuCap, h.memCap === Infinity ? 0 : h.memUsed / h.memCap);
    h.version++;
    h.units.set(unit.name, (h.units.get(unit.name) ?? 0) + 1);
    if (unit.matchers.length) h.conflicters.set(unit, (h.conflicters.get(unit) ?? 0) + 1);
  }

  /** Undoes assign() (a machineOf member that must follow its group). Loads drop: heaps are rebuilt. */
  private unassign(id: string): void {
    const w = this.where.get(id);
    if (!w) return;
    const { unit, host: h } = w;
    this.where.delete(id);
    h.cpuUsed -= unit.spec.cpu;
    h.memUsed -= unit.spec.memory;
    h.count--;
    h.share = Math.max(h.cpuCap === Infinity ? 0 : h.cpuUsed / h.cpuCap, h.memCap === Infinity ? 0 : h.memUsed / h.memCap);
    h.version++;
    const n = h.units.get(unit.name)! - 1;
    if (n) h.units.set(unit.name, n);
    else h.units.delete(unit.name);
    const k = h.conflicters.get(unit);
    if (k !== undefined) {
      if (k > 1) h.conflicters.set(unit, k - 1);
      else h.conflicters.delete(unit);
    }
    for (const c of this.cands.values()) {
      c.heap = undefined;
      c.fails = [];
    }
  }

  private record(id: string, unit: UnitRec, h: HostState): void {
    this.assign(id, unit, h);
    this.placed.push({ id, unit: unit.name, host: h.name });
  }

  private fail(id: string, unit: string, reason: string, excluded: Exclusion[]): void {
    this.unplaceable.push({ id, unit, reason, excluded });
  }

  /**
   * Records unplaceable instances now and explains them at the end of the run, against
   * the final state: room and conflicts only shrink during a run, so every exclusion
   * that made the placement fail still holds then. Explanations that resources alone
   * settle (no host left before the conflicts filter) are shared by every request of
   * the same size and constraints: an overfull cluster explains each size once.
   */
  private failExplained(ids: readonly string[], unit: string, prefix: string, members: readonly UnitRec[], cpu: number, mem: number, labels: Readonly<Record<string, readonly string[]>>, pin: string | undefined, sig: string, scope: readonly HostState[]): void {
    const entries = ids.map((id) => {
      const u: Unplaceable = { id, unit, reason: '', excluded: [] };
      this.unplaceable.push(u);
      return u;
    });
    this.pending.push(() => {
      const key = scope === this.hosts ? `${sig}#${cpu}#${mem}` : undefined;
      let e = key === undefined ? undefined : this.explained.get(key);
      if (!e) {
        e = this.explain(members, cpu, mem, labels, pin, scope);
        if (key !== undefined && e.settledByResources) this.explained.set(key, e);
      }
      for (const u of entries) {
        u.reason = prefix + e.reason;
        u.excluded = e.excluded;
      }
    });
  }

  private placeGlobal(r: UnitRec): void {
    const u = r.spec;
    const sig = `|${Object.keys(u.hostLabels)
      .sort()
      .map((k) => `${k}=${[...u.hostLabels[k]!].sort().join(',')}`)
      .join('|')}`;
    const c = this.candidates(sig, u.hostLabels, undefined);
    if (!c.hosts.length) {
      this.failExplained([r.name], r.name, '', [r], u.cpu, u.memory, u.hostLabels, undefined, sig, this.hosts);
      return;
    }
    for (const h of c.hosts) {
      const id = globalId(r.name, h.name);
      if (this.where.has(id)) continue;
      if (this.fits(h, u.cpu, u.memory) && this.conflictOn(h, [r]) === undefined) this.record(id, r, h);
      else {
        this.failExplained([id], r.name, '', [r], u.cpu, u.memory, u.hostLabels, undefined, sig, [h]);
      }
    }
  }

  private heapOf(c: Candidates): LoadHeap<HostState> {
    if (c.heap) return c.heap;
    const heap = new LoadHeap<HostState>();
    for (const h of c.hosts) heap.push(h);
    return (c.heap = heap);
  }

  /**
   * The least loaded candidate with room and no conflict; with `spread`, one without an
   * instance of that unit if there is any. Undefined if none; `resourcesOnly` then says
   * whether only resources stood in the way (worth remembering for bigger requests).
   */
  private choose(c: Candidates, members: readonly UnitRec[], cpu: number, mem: number, spread: string | undefined): { host?: HostState; resourcesOnly: boolean; fellBack?: true } {
    const heap = this.heapOf(c);
    const popped: HostState[] = [];
    let fallback: HostState | undefined;
    let chosen: HostState | undefined;
    let resourcesOnly = true;
    for (let h = heap.pop(); h; h = heap.pop()) {
      popped.push(h);
      if (!this.fits(h, cpu, mem)) continue;
      if (this.conflictOn(h, members) !== undefined) {
        resourcesOnly = false;
        continue;
      }
      if (spread !== undefined && h.units.has(spread)) {
        fallback ??= h;
        continue;
      }
      chosen = h;
      break;
    }
    for (const h of popped) heap.push(h);
    if (chosen) return { host: chosen, resourcesOnly };
    return fallback ? { host: fallback, resourcesOnly, fellBack: true } : { resourcesOnly };
  }

  private placeSingle(g: Group): void {
    const r = g.root;
    if (r.spec.replicas <= 1 && this.where.has(r.name)) return;
    const ids = instanceIds(r.spec).filter((id) => !this.where.has(id));
    if (!ids.length) return;
    if (g.broken) {
      for (const id of ids) this.fail(id, r.name, g.broken, []);
      return;
    }
    const c = this.candidates(g.sig, g.hostLabels, g.pin);
    let spread = r.spec.replicas > 1 && !r.selfConflict ? r.name : undefined;
    for (const id of ids) {
      const { host, fellBack } = this.pick(c, g, [r], spread);
      // Every candidate with room already has a replica, and that only grows: stop looking.
      if (fellBack) spread = undefined;
      if (host) this.record(id, r, host);
      else {
        this.failExplained([id], r.name, '', [r], g.cpu, g.memory, g.hostLabels, g.pin, g.sig, this.hosts);
      }
    }
  }

  private pick(c: Candidates, g: Group, members: readonly UnitRec[], spread: string | undefined): { host?: HostState; fellBack?: true } {
    const cpu = members === g.members ? g.cpu : members.reduce((s, m) => s + m.spec.cpu, 0);
    const mem = members === g.members ? g.memory : members.reduce((s, m) => s + m.spec.memory, 0);
    if (!c.hosts.length || cpu > c.maxCpu || mem > c.maxMem) return {};
    for (const [fc, fm] of c.fails) if (cpu >= fc && mem >= fm) return {};
    const { host, resourcesOnly, fellBack } = this.choose(c, members, cpu, mem, spread);
    if (!host && resourcesOnly) {
      // Keep the frontier minimal: drop the entries the new failure dominates.
      c.fails = c.fails.filter(([fc, fm]) => !(fc >= cpu && fm >= mem));
      c.fails.push([cpu, mem]);
    }
    return fellBack ? { host: host!, fellBack } : host ? { host } : {};
  }

  private placeGroup(g: Group, wasOn: Map<string, string>, moves: Map<string, { unit: string; from: string; reason: string }>): void {
    if (g.broken) {
      for (const m of g.members) if (!this.where.has(m.name)) this.fail(m.name, m.name, g.broken, []);
      return;
    }
    const rootAt = this.where.get(g.root.name)?.host;
    if (rootAt) {
      // Members kept on another host than their target follow it.
      for (const m of g.members) {
        const from = this.where.get(m.name)?.host;
        if (from === undefined || from === rootAt) continue;
        this.unassign(m.name);
        if (!moves.has(m.name)) moves.set(m.name, { unit: m.name, from: from.name, reason: `follows its machineOf target ${g.root.name}` });
      }
    }
    const missing = g.members.filter((m) => !this.where.has(m.name));
    if (!missing.length) return;
    if (rootAt) {
      // The target stays put; the rest joins it there or not at all.
      const cpu = missing.reduce((s, m) => s + m.spec.cpu, 0);
      const mem = missing.reduce((s, m) => s + m.spec.memory, 0);
      if (this.allows(rootAt, g.hostLabels, g.pin) && this.fits(rootAt, cpu, mem) && this.conflictOn(rootAt, missing) === undefined) {
        for (const m of missing) this.record(m.name, m, rootAt);
      } else {
        const prefix = `machineOf ${g.root.name} (on ${rootAt.name}): `;
        for (const m of missing) this.failExplained([m.name], m.name, prefix, missing, cpu, mem, g.hostLabels, g.pin, g.sig, [rootAt]);
      }
      return;
    }
    // The target is not placed: members kept elsewhere move with the group.
    for (const m of g.members) {
      const from = this.where.get(m.name)?.host.name;
      if (from === undefined) continue;
      this.unassign(m.name);
      if (!moves.has(m.name)) moves.set(m.name, { unit: m.name, from, reason: `follows its machineOf target ${g.root.name}` });
    }
    const c = this.candidates(g.sig, g.hostLabels, g.pin);
    const { host } = this.pick(c, g, g.members, undefined);
    if (host) {
      for (const m of g.members) {
        // A member that lands back where it was is kept, not newly placed.
        if (wasOn.get(m.name) === host.name) this.assign(m.name, m, host);
        else this.record(m.name, m, host);
        const mv = moves.get(m.name);
        if (mv && wasOn.get(m.name) === host.name && mv.reason.startsWith('follows')) moves.delete(m.name);
      }
    } else {
      const prefix = `machineOf group ${g.members.map((m) => m.name).join(', ')}: `;
      for (const m of g.members) this.failExplained([m.name], m.name, prefix, g.members, g.cpu, g.memory, g.hostLabels, g.pin, g.sig, this.hosts);
    }
  }

  /**
   * Runs the filters one by one over `scope` (pin, each host label key, cpu, memory,
   * conflicts) and names the hosts each one excluded.
   */
  private explain(members: readonly UnitRec[], cpu: number, mem: number, labels: Readonly<Record<string, readonly string[]>>, pin: string | undefined, scope: readonly HostState[]): { reason: string; excluded: Exclusion[]; settledByResources: boolean } {
    const excluded: Exclusion[] = [];
    const parts: string[] = [];
    let left = scope;
    const names = (hs: readonly HostState[], detail?: (h: HostState) => string, total = hs.length) =>
      hs.slice(0, MAX_NAMED).map((h) => (detail ? `${h.name} ${detail(h)}` : h.name)).join(', ') + (total > MAX_NAMED ? `, … (${total - MAX_NAMED} more)` : '');
    const stage = (constraint: string, keep: (h: HostState) => boolean, say: (out: HostState[], all: boolean, count: number) => string, order?: (hs: HostState[]) => HostState[]) => {
      if (!left.length) return;
      let out: HostState[] = [];
      const kept: HostState[] = [];
      for (const h of left) (keep(h) ? kept : out).push(h);
      if (!out.length) return;
      const count = out.length;
      if (order) out = order(out);
      excluded.push({ constraint, count, hosts: out.slice(0, MAX_LISTED).map((h) => h.name) });
      parts.push(`${constraint}: ${say(out, !kept.length, count)}`);
      left = kept;
    };
    if (!scope.length) return { reason: 'no hosts', excluded, settledByResources: true };
    if (pin !== undefined) {
      if (!this.byName.has(pin)) {
        excluded.push({ constraint: `host ${pin}`, count: left.length, hosts: left.slice(0, MAX_LISTED).map((h) => h.name) });
        return { reason: `host ${pin}: no such host`, excluded, settledByResources: true };
      }
      stage(`host ${pin}`, (h) => h.name === pin, (out) => `excludes ${out.length === 1 ? out[0]!.name : `the other ${out.length} hosts`}`);
    }
    for (const k of Object.keys(labels).sort()) {
      const vs = labels[k]!;
      stage(`hostLabels ${k}=${vs.join('|')}`, (h) => h.labels[k] !== undefined && vs.includes(h.labels[k]!), (out, all) => `${all && out.length > 1 ? 'excludes every host: ' : 'excludes '}${names(out, (h) => `(${h.labels[k] === undefined ? 'no label' : `${k}=${h.labels[k]}`})`)}`);
    }
    // The hosts with the most room first (only the first MAX_LISTED are named: no full sort).
    const byFree = (free: (h: HostState) => number) => (hs: HostState[]) => {
      const better = (a: HostState, b: HostState) => free(a) > free(b) || (free(a) === free(b) && a.rank < b.rank);
      const top: HostState[] = [];
      for (const h of hs) {
        if (top.length === MAX_LISTED && !better(h, top[MAX_LISTED - 1]!)) continue;
        let i = Math.min(top.length, MAX_LISTED - 1);
        top[i] = h;
        while (i > 0 && better(h, top[i - 1]!)) {
          top[i] = top[i - 1]!;
          top[--i] = h;
        }
      }
      return top;
    };
    const cpuFree = (h: HostState) => h.cpuCap - h.cpuUsed;
    const memFree = (h: HostState) => h.memCap - h.memUsed;
    if (cpu > 0)
      stage(
        `cpu ${formatCpu(cpu)}`,
        (h) => h.cpuUsed + cpu <= h.cpuCap,
        (top, all, count) => {
          if (all) return `no host has that much free (${names(top, (h) => `has ${freeText(cpuFree(h), formatCpu)}`, count)})`;
          return `not enough free on ${names(top, (h) => `(${freeText(cpuFree(h), formatCpu)})`, count)}`;
        },
        byFree(cpuFree),
      );
    if (mem > 0)
      stage(
        `memory ${formatMemory(mem)}`,
        (h) => h.memUsed + mem <= h.memCap,
        (top, all, count) => {
          if (all) return `no host has that much free (${names(top, (h) => `has ${freeText(memFree(h), formatMemory)}`, count)})`;
          return `not enough free on ${names(top, (h) => `(${freeText(memFree(h), formatMemory)})`, count)}`;
        },
        byFree(memFree),
      );
    const settledByResources = !left.length;
    const globs = [...new Set(members.flatMap((m) => m.spec.conflicts))];
    const label = globs.length ? `conflicts ${globs.join(',')}` : 'conflicts';
    const culprit = new Map<HostState, string>();
    stage(
      label,
      (h) => {
        const c = this.conflictOn(h, members);
        if (c !== undefined) culprit.set(h, c);
        return c === undefined;
      },
      (out) => `excludes ${names(out, (h) => `(runs ${culprit.get(h)})`)}`,
    );
    if (left.length) {
      // Every filter passes somewhere: only the order of placements stood in the way.
      parts.push(`no host chosen although ${names(left)} pass every filter`);
    }
    return { reason: parts.join('; '), excluded, settledByResources };
  }
}

/** "2Gi free", or for a host that kept instances beyond its capacity "nothing free, 1Gi over". */
function freeText(free: number, format: (n: number) => string): string {
  return free >= 0 ? `${format(free)} free` : `nothing free, ${format(-free)} over`;
}

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

function unitOfId(id: string): string {
  const colon = id.lastIndexOf(':');
  if (colon > 0) return id.slice(0, colon);
  const m = /^(.*)\.(\d+)$/.exec(id);
  return m ? m[1]! : id;
}
