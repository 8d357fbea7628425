/**
 * Randomized clusters (fixed seeds): whatever place() decides must respect every
 * constraint, account for every wanted instance exactly once, and not depend on the
 * order of its input. Also with current placements and hosts removed.
 */
import t, { type Test } from 'tap';
import { compileGlob, globalId, instanceIds, place, type PlacementHost, type PlacementResult, type PlacementUnit } from '../../../src/scheduler/index.js';

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function cluster(seed: number): { hosts: PlacementHost[]; units: PlacementUnit[] } {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const hosts: PlacementHost[] = Array.from({ length: 4 + Math.floor(r() * 12) }, (_, i) => {
    const h: PlacementHost = { name: `h${i}`, labels: { zone: pick(['a', 'b', 'c']), ...(r() < 0.4 ? { disk: 'ssd' } : {}) } };
    if (r() < 0.8) h.cpu = 1000 * (1 + Math.floor(r() * 4));
    if (r() < 0.8) h.memory = 2 ** 30 * (1 + Math.floor(r() * 4));
    return h;
  });
  const units: PlacementUnit[] = [];
  const n = 10 + Math.floor(r() * 50);
  for (let i = 0; i < n; i++) {
    const u: PlacementUnit = { name: `u${i}`, replicas: 1, global: false, cpu: 100 * Math.floor(r() * 8), memory: 2 ** 27 * Math.floor(r() * 8), hostLabels: {}, conflicts: [] };
    const x = r();
    if (x < 0.15) u.hostLabels = { zone: r() < 0.5 ? [pick(['a', 'b', 'c'])] : ['a', 'b'] };
    if (r() < 0.1) u.hostLabels = { ...u.hostLabels, disk: ['ssd'] };
    if (r() < 0.15) u.conflicts = [pick(['u1*', `u${Math.floor(r() * n)}`, 'u?', '*5'])];
    if (r() < 0.1 && i > 0) u.machineOf = `u${Math.floor(r() * i)}`;
    else if (r() < 0.1) u.replicas = 2 + Math.floor(r() * 3);
    else if (r() < 0.04) u.global = true;
    if (!u.global && r() < 0.05) u.host = pick(hosts).name;
    if (r() < 0.05) u.desiredState = 'inactive';
    units.push(u);
  }
  return { hosts, units };
}

function check(t: Test, units: PlacementUnit[], hosts: PlacementHost[], r: PlacementResult, kept: ReadonlySet<string>): void {
  const byName = new Map(units.map((u) => [u.name, u]));
  const hostBy = new Map(hosts.map((h) => [h.name, h]));
  const at = new Map(r.assignments.map((a) => [a.id, a.host]));
  t.equal(at.size, r.assignments.length, 'no instance assigned twice');
  // Every assignment satisfies pin and labels, on a host that exists.
  for (const a of r.assignments) {
    const u = byName.get(a.unit)!;
    const h = hostBy.get(a.host);
    if (!h) {
      t.fail(`${a.id} on unknown host ${a.host}`);
      continue;
    }
    if (u.host !== undefined && u.host !== h.name) t.fail(`${a.id} pinned to ${u.host} but on ${h.name}`);
    for (const [k, vs] of Object.entries(u.hostLabels)) if (!vs.includes(h.labels[k] ?? '\0')) t.fail(`${a.id} needs ${k} in ${vs} but ${h.name} has ${h.labels[k]}`);
    if (u.desiredState === 'inactive') t.fail(`${a.id} is inactive but placed`);
  }
  // Resources: new placements never overcommit (kept ones may, by design).
  const used = new Map<string, { cpu: number; mem: number; fresh: boolean }>();
  for (const a of r.assignments) {
    const u = byName.get(a.unit)!;
    const x = used.get(a.host) ?? { cpu: 0, mem: 0, fresh: false };
    x.cpu += u.cpu;
    x.mem += u.memory;
    if (!kept.has(a.id)) x.fresh = true;
    used.set(a.host, x);
  }
  for (const [h, x] of used) {
    if (!x.fresh) continue;
    const cap = hostBy.get(h)!;
    if (cap.cpu !== undefined && x.cpu > cap.cpu) t.fail(`${h}: cpu ${x.cpu} > ${cap.cpu}`);
    if (cap.memory !== undefined && x.mem > cap.memory) t.fail(`${h}: memory ${x.mem} > ${cap.memory}`);
  }
  // Conflicts, both ways, among instances on one host (at least one of them new).
  const onHost = new Map<string, Array<{ id: string; unit: PlacementUnit }>>();
  for (const a of r.assignments) {
    const list = onHost.get(a.host) ?? [];
    list.push({ id: a.id, unit: byName.get(a.unit)! });
    onHost.set(a.host, list);
  }
  for (const [h, list] of onHost)
    for (const x of list)
      for (const y of list) {
        if (x.id === y.id || (kept.has(x.id) && kept.has(y.id))) continue;
        // Same unit: only when its own globs match its name (self-conflicting replicas).
        const clash = (p: PlacementUnit, q: PlacementUnit) => p.conflicts.some((g) => compileGlob(g)(q.name));
        if (clash(x.unit, y.unit) || clash(y.unit, x.unit)) t.fail(`${x.id} and ${y.id} conflict on ${h}`);
      }
  // machineOf: placed together or neither.
  for (const u of units) {
    if (u.machineOf === undefined || at.get(u.name) === undefined) continue;
    t.equal(at.get(u.name), at.get(u.machineOf), `${u.name} runs with ${u.machineOf}`);
  }
  // Every wanted instance: exactly one of assigned / unplaceable.
  const unplaceable = new Map<string, number>();
  for (const u of r.unplaceable) unplaceable.set(u.id, (unplaceable.get(u.id) ?? 0) + 1);
  for (const u of units) {
    if (u.desiredState === 'inactive') continue;
    const ids = u.global ? hosts.filter((h) => Object.entries(u.hostLabels).every(([k, vs]) => vs.includes(h.labels[k] ?? '\0'))).map((h) => globalId(u.name, h.name)) : instanceIds(u);
    if (u.global && !ids.length) {
      if (unplaceable.get(u.name) !== 1) t.fail(`global ${u.name} with no eligible host is not reported`);
      continue;
    }
    for (const id of ids) {
      const n = (at.has(id) ? 1 : 0) + (unplaceable.get(id) ?? 0);
      if (n !== 1) t.fail(`${id}: assigned ${at.has(id)}, unplaceable ${unplaceable.get(id) ?? 0} times`);
    }
  }
  for (const u of r.unplaceable) if (!u.reason) t.fail(`${u.id} unplaceable without a reason`);
}


t.test('invariants over 150 random clusters', async (t) => {
  let placed = 0;
  let unplaceable = 0;
  let splits = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const { hosts, units } = cluster(seed);
    const r = place(units, hosts);
    check(t, units, hosts, r, new Set());
    placed += r.assignments.length;
    unplaceable += r.unplaceable.length;
    // Order of the input does not matter.
    const rev = place([...units].reverse(), [...hosts].reverse());
    const norm = (x: PlacementResult) => [...x.assignments].sort((a, b) => (a.id < b.id ? -1 : 1));
    t.same(norm(rev), norm(r), `seed ${seed}: same placement for reversed input`);
    t.same(rev.unplaceable, r.unplaceable, `seed ${seed}: same unplaceable list`);
    // Again with the result as current and a host gone: kept instances stay, the rest still holds.
    const current = Object.fromEntries(r.assignments.map((a) => [a.id, a.host]));
    const survivors = hosts.slice(1);
    const again = place(units, survivors, current);
    const kept = new Set(r.assignments.filter((a) => a.host !== hosts[0]!.name).map((a) => a.id));
    for (const id of kept) {
      const unit = units.find((u) => u.name === r.assignments.find((a) => a.id === id)!.unit)!;
      // A machineOf follower may move with its target; everything else stays.
      if (unit.machineOf === undefined && !units.some((u) => u.machineOf === unit.name)) t.equal(again.assignments.find((a) => a.id === id)?.host, current[id], `seed ${seed}: ${id} stays`);
    }
    check(t, units, survivors, again, kept);
    for (const m of again.moved) t.equal(m.from, hosts[0]!.name, `seed ${seed}: ${m.id} moved off the removed host only`);
    // Current placements that split machineOf members from their targets (R1 #4): the
    // members follow their targets again, as moves, and every invariant still holds.
    const split: Record<string, string> = { ...current };
    const wereSplit: string[] = [];
    for (const u of units) {
      const from = split[u.name];
      if (u.machineOf === undefined || from === undefined) continue;
      split[u.name] = hosts.find((h) => h.name !== from)!.name;
      wereSplit.push(u.name);
    }
    splits += wereSplit.length;
    const joined = place(units, hosts, split);
    check(t, units, hosts, joined, new Set(joined.assignments.filter((a) => split[a.id] === a.host).map((a) => a.id)));
    for (const id of wereSplit) {
      const m = joined.moved.find((x) => x.id === id);
      if (!m || m.from !== split[id]) t.fail(`seed ${seed}: ${id} split from its target but not moved`);
    }
  }
  t.ok(splits > 20, `${splits} machineOf members split from their targets`);
  t.ok(placed > 1000, `${placed} placed`);
  t.ok(unplaceable > 20, `${unplaceable} unplaceable: the clusters are tight enough to matter`);
});
