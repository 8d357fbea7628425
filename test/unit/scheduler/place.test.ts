import t from 'tap';
import { place, type PlacementHost, type PlacementResult, type PlacementUnit } from '../../../src/scheduler/index.js';

const Gi = 2 ** 30;
const H = (name: string, labels: Record<string, string> = {}, res: { cpu?: number; memory?: number } = {}): PlacementHost => ({ name, labels, ...res });
const U = (name: string, o: Partial<PlacementUnit> = {}): PlacementUnit => ({ name, replicas: 1, global: false, cpu: 0, memory: 0, hostLabels: {}, conflicts: [], ...o });
const hostOf = (r: PlacementResult) => Object.fromEntries(r.assignments.map((a) => [a.id, a.host]));
const reasons = (r: PlacementResult) => Object.fromEntries(r.unplaceable.map((u) => [u.id, u.reason]));

t.test('least loaded first, ties broken by host name', async (t) => {
  const hosts = [H('h3'), H('h1'), H('h2')];
  const r = place([U('c'), U('a'), U('b'), U('d')], hosts);
  // Units go in name order; with equal load the host name decides, then the instance count.
  t.same(hostOf(r), { a: 'h1', b: 'h2', c: 'h3', d: 'h1' });
  t.same(r.unplaceable, []);
  t.same(r.placed.map((p) => p.id), ['a', 'b', 'c', 'd']);
});

t.test('load is the dominant resource share, counting what already runs', async (t) => {
  const hosts = [H('h1', {}, { cpu: 4000, memory: 16 * Gi }), H('h2', {}, { cpu: 8000, memory: 16 * Gi })];
  // 2000m on each: h1 is 50% busy, h2 25%: the next unit goes to h2 although h1 sorts first.
  const r = place([U('x', { cpu: 2000 }), U('y', { cpu: 2000 }), U('new', { cpu: 100 })], hosts, { x: 'h1', y: 'h2' });
  t.equal(hostOf(r).new, 'h2');
  t.same(r.placed.map((p) => p.id), ['new'], 'kept placements are not placed again');
  // memory can dominate too
  const m = place([U('x', { memory: 12 * Gi }), U('new', { cpu: 100 })], hosts, { x: 'h2' });
  t.equal(hostOf(m).new, 'h1');
});

t.test('hostLabels: AND across keys, OR within a key', async (t) => {
  const hosts = [H('h1', { region: 'eu', disk: 'ssd' }), H('h2', { region: 'us', disk: 'ssd' }), H('h3', { region: 'eu', disk: 'hdd' }), H('h4', { region: 'ap', disk: 'ssd' })];
  const r = place(
    [
      U('eu-ssd', { hostLabels: { region: ['eu'], disk: ['ssd'] } }),
      U('euus-ssd', { replicas: 2, hostLabels: { region: ['eu', 'us'], disk: ['ssd'] } }),
      U('hdd', { hostLabels: { disk: ['hdd'] } }),
      U('eu-any', { replicas: 2, hostLabels: { region: ['eu'] } }),
    ],
    hosts,
  );
  const at = hostOf(r);
  t.equal(at['eu-ssd'], 'h1');
  t.same([at['euus-ssd.1'], at['euus-ssd.2']].sort(), ['h1', 'h2'], 'both ssd hosts in eu or us, spread');
  t.equal(at.hdd, 'h3');
  t.same([at['eu-any.1'], at['eu-any.2']].sort(), ['h1', 'h3']);
  for (const a of r.assignments) t.not(a.host, 'h4', `${a.id} never on the ap host`);
});

t.test('unplaceable: which constraint excluded which hosts', async (t) => {
  const hosts = [H('h1', { region: 'eu' }, { cpu: 4000, memory: 8 * Gi }), H('h2', { region: 'us' }, { cpu: 2000, memory: 7.5 * Gi }), H('h3', {}, { cpu: 8000, memory: 4 * Gi })];
  const r = place(
    [
      U('big', { memory: 64 * Gi }),
      U('apac', { hostLabels: { region: ['ap'] } }),
      U('eu-cpu', { hostLabels: { region: ['eu', 'us'] }, cpu: 6000 }),
      U('pinned', { host: 'h9' }),
      U('pin-labels', { host: 'h3', hostLabels: { region: ['eu'] } }),
    ],
    hosts,
  );
  const why = reasons(r);
  t.equal(why.big, 'memory 64Gi: no host has that much free (h1 has 8Gi free, h2 has 7.5Gi free, h3 has 4Gi free)');
  t.equal(why.apac, 'hostLabels region=ap: excludes every host: h1 (region=eu), h2 (region=us), h3 (no label)');
  t.equal(why['eu-cpu'], 'hostLabels region=eu|us: excludes h3 (no label); cpu 6000m: no host has that much free (h1 has 4000m free, h2 has 2000m free)');
  t.equal(why.pinned, 'host h9: no such host');
  t.equal(why['pin-labels'], 'host h3: excludes the other 2 hosts; hostLabels region=eu: excludes h3 (no label)');
  const big = r.unplaceable.find((u) => u.id === 'big')!;
  t.same(big.excluded, [{ constraint: 'memory 64Gi', count: 3, hosts: ['h1', 'h2', 'h3'] }]);
  const euCpu = r.unplaceable.find((u) => u.id === 'eu-cpu')!;
  t.same(euCpu.excluded, [
    { constraint: 'hostLabels region=eu|us', count: 1, hosts: ['h3'] },
    { constraint: 'cpu 6000m', count: 2, hosts: ['h1', 'h2'] },
  ]);
  t.same(r.assignments, [], 'nothing placed');
});

t.test('cpu and memory together: each names the hosts it took out', async (t) => {
  const r = place([U('x', { cpu: 2000, memory: 2 * Gi })], [H('h1', {}, { cpu: 1000, memory: 8 * Gi }), H('h2', {}, { cpu: 4000, memory: Gi }), H('h3', {}, { cpu: 500 })]);
  t.equal(reasons(r).x, 'cpu 2000m: not enough free on h1 (1000m free), h3 (500m free); memory 2Gi: no host has that much free (h2 has 1Gi free)');
  const m = place([U('y', { memory: 2 * Gi, hostLabels: { zone: ['a'] } })], [H('h1', { zone: 'a' }, { memory: Gi }), H('h2', { zone: 'a' }, { memory: 4 * Gi }), H('h3', { zone: 'a' }, { memory: 512 * 2 ** 20 })], { full: 'h2' });
  t.same(hostOf(m), { y: 'h2' }, 'fits where there is room');
  const n = place([U('z', { memory: 2 * Gi, conflicts: ['w'] }), U('w')], [H('h1', {}, { memory: Gi }), H('h2', {}, { memory: 4 * Gi })], { w: 'h2' });
  t.equal(reasons(n).z, 'memory 2Gi: not enough free on h1 (1Gi free); conflicts w: excludes h2 (runs w)');
  const e = place([U('nothing', { hostLabels: { disk: [] } })], [H('h1')]);
  t.equal(reasons(e).nothing, 'hostLabels disk: no value given');
});

t.test('free resources count placements made in the same call', async (t) => {
  const hosts = [H('h1', {}, { memory: 4 * Gi }), H('h2', {}, { memory: 4 * Gi })];
  const r = place(['a', 'b', 'c', 'd', 'e'].map((n) => U(n, { memory: 2 * Gi })), hosts);
  t.equal(r.assignments.length, 4);
  t.same(r.assignments.filter((a) => a.host === 'h1').length, 2);
  t.match(reasons(r).e, /^memory 2Gi: no host has that much free \(h1 has 0B free, h2 has 0B free\)$/);
});

t.test('a long list of excluded hosts is cut, the excluded field keeps them all', async (t) => {
  const hosts = Array.from({ length: 30 }, (_, i) => H(`h${String(i).padStart(2, '0')}`, {}, { memory: (i % 3) * Gi }));
  const r = place([U('big', { memory: 4 * Gi })], hosts);
  // Most free room first, then by name; the text names 5, the exclusion lists 20 and counts all.
  t.equal(reasons(r).big, 'memory 4Gi: no host has that much free (h02 has 2Gi free, h05 has 2Gi free, h08 has 2Gi free, h11 has 2Gi free, h14 has 2Gi free, … (25 more))');
  const ex = r.unplaceable[0]!.excluded[0]!;
  t.equal(ex.count, 30);
  t.same(ex.hosts, ['h02', 'h05', 'h08', 'h11', 'h14', 'h17', 'h20', 'h23', 'h26', 'h29', 'h01', 'h04', 'h07', 'h10', 'h13', 'h16', 'h19', 'h22', 'h25', 'h28']);
});

t.test('conflicts: globs, checked in both directions', async (t) => {
  const hosts = [H('h1'), H('h2'), H('h3')];
  const web = ['web@1', 'web@2', 'web@3', 'web@4'].map((n) => U(n, { conflicts: ['web@*'] }));
  const r = place(web, hosts);
  const at = hostOf(r);
  t.same([at['web@1'], at['web@2'], at['web@3']], ['h1', 'h2', 'h3']);
  t.equal(reasons(r)['web@4'], 'conflicts web@*: excludes h1 (runs web@1), h2 (runs web@2), h3 (runs web@3)');

  // "aa" declares the conflict, "zz" does not: zz still avoids aa's host.
  const s = place([U('aa', { conflicts: ['z?'] }), U('zz')], [H('h1'), H('h2')]);
  t.same(hostOf(s), { aa: 'h1', zz: 'h2' });
  // A current placement counts: db conflicts with cache, which runs on the least loaded host.
  const c = place([U('cache'), U('db', { conflicts: ['cache'] }), U('x'), U('y')], [H('h1'), H('h2')], { cache: 'h1', x: 'h2', y: 'h2' });
  t.equal(hostOf(c).db, 'h2');
  // A glob that matches nothing placed changes nothing; one unit alone never conflicts with itself.
  const n = place([U('solo', { conflicts: ['solo', 'other-*'] })], [H('h1')]);
  t.same(hostOf(n), { solo: 'h1' });
});

t.test('replicas spread over hosts, stack when they must; self-conflicting replicas never share', async (t) => {
  const r = place([U('web', { replicas: 4 })], [H('h1'), H('h2')]);
  t.same(hostOf(r), { 'web.1': 'h1', 'web.2': 'h2', 'web.3': 'h1', 'web.4': 'h2' });
  // Spread beats load: h2 is busier but has no replica yet.
  const s = place([U('web', { replicas: 2 }), U('other', { cpu: 500 })], [H('h1', {}, { cpu: 1000 }), H('h2', {}, { cpu: 1000 })], { other: 'h2' });
  t.same(hostOf(s), { other: 'h2', 'web.1': 'h1', 'web.2': 'h2' });
  // More replicas than hosts: once every host has one, least loaded decides (3/2/2 on three hosts).
  const many = place([U('w', { replicas: 7 })], [H('h1'), H('h2'), H('h3')]);
  const per = (r: PlacementResult, h: string) => r.assignments.filter((a) => a.host === h).length;
  t.same([per(many, 'h1'), per(many, 'h2'), per(many, 'h3')], [3, 2, 2]);
  // A large spread stays fast: 20,000 replicas on 2,000 hosts, ten each.
  const big = place([U('w', { replicas: 20_000 })], Array.from({ length: 2000 }, (_, i) => H(`h${i}`)));
  t.equal(big.assignments.length, 20_000);
  const counts = new Map<string, number>();
  for (const a of big.assignments) counts.set(a.host, (counts.get(a.host) ?? 0) + 1);
  t.equal(counts.size, 2000);
  t.same(new Set(counts.values()), new Set([10]));
  const hard = place([U('db', { replicas: 3, conflicts: ['db'] })], [H('h1'), H('h2')]);
  t.same(hostOf(hard), { 'db.1': 'h1', 'db.2': 'h2' });
  t.equal(reasons(hard)['db.3'], 'conflicts db: excludes h1 (runs db), h2 (runs db)');
});

t.test('machineOf: placed together or not at all', async (t) => {
  const hosts = [H('h1', {}, { memory: 1 * Gi }), H('h2', {}, { memory: 3 * Gi })];
  const r = place([U('app', { memory: Gi }), U('side', { memory: Gi, machineOf: 'app' }), U('log', { memory: Gi / 2, machineOf: 'side' })], hosts);
  t.same(hostOf(r), { app: 'h2', side: 'h2', log: 'h2' }, 'the whole chain goes where the summed memory fits');

  const none = place([U('app', { memory: 2 * Gi }), U('side', { memory: 2 * Gi, machineOf: 'app' })], hosts);
  t.same(none.assignments, []);
  t.equal(reasons(none).app, 'machineOf group app, side: memory 4Gi: no host has that much free (h2 has 3Gi free, h1 has 1Gi free)');
  t.equal(reasons(none).side, reasons(none).app);

  // Constraints of every member apply to the group.
  const lab = place([U('app'), U('side', { machineOf: 'app', hostLabels: { disk: ['ssd'] } })], [H('h1'), H('h2', { disk: 'ssd' })]);
  t.same(hostOf(lab), { app: 'h2', side: 'h2' });
  const pin = place([U('app', { host: 'h1' }), U('side', { machineOf: 'app', host: 'h2' })], [H('h1'), H('h2')]);
  t.match(reasons(pin).app, /pinned to both h1 and h2/);
  const conf = place([U('app', { conflicts: ['side'] }), U('side', { machineOf: 'app' })], [H('h1')]);
  t.match(reasons(conf).side, /app conflicts with side/);
});

t.test('machineOf: bad references never place anything', async (t) => {
  const r = place([U('a', { machineOf: 'b' }), U('b', { machineOf: 'c' }), U('c', { machineOf: 'a' }), U('d', { machineOf: 'nope' }), U('e', { machineOf: 'off' }), U('off', { desiredState: 'inactive' }), U('f', { machineOf: 'a' })], [H('h1')]);
  t.same(r.assignments, []);
  const why = reasons(r);
  t.equal(why.a, 'machineOf cycle: a → b → c → a');
  t.equal(why.d, 'machineOf "nope": no such unit');
  t.equal(why.e, 'machineOf "off": that unit is inactive');
  t.equal(why.f, 'machineOf cycle: a → b → c → a', 'a unit hanging off a cycle');
  t.notOk('off' in why, 'inactive units are simply not scheduled');
  // machineOf to or from something that is not a single instance: the follower is unplaceable, the target is placed.
  const multi = place([U('many', { replicas: 2 }), U('all', { global: true }), U('f1', { machineOf: 'many' }), U('f2', { machineOf: 'all' }), U('f3', { replicas: 2, machineOf: 'one' }), U('one')], [H('h1')]);
  t.same(reasons(multi), {
    f1: 'machineOf needs single-instance units (no replicas, not global): "f1" → "many"',
    f2: 'machineOf needs single-instance units (no replicas, not global): "f2" → "all"',
    'f3.1': 'machineOf needs single-instance units (no replicas, not global): "f3" → "one"',
    'f3.2': 'machineOf needs single-instance units (no replicas, not global): "f3" → "one"',
  });
  t.same(hostOf(multi), { 'all:h1': 'h1', 'many.1': 'h1', 'many.2': 'h1', one: 'h1' });
});

t.test('machineOf: a target already running takes its followers or explains', async (t) => {
  const hosts = [H('h1', {}, { memory: 2 * Gi }), H('h2', {}, { memory: 8 * Gi })];
  const r = place([U('app', { memory: Gi }), U('side', { memory: Gi / 2, machineOf: 'app' })], hosts, { app: 'h1' });
  t.same(hostOf(r), { app: 'h1', side: 'h1' });
  const full = place([U('app', { memory: Gi }), U('side', { memory: 2 * Gi, machineOf: 'app' })], hosts, { app: 'h1' });
  t.same(hostOf(full), { app: 'h1' });
  t.equal(reasons(full).side, 'machineOf app (on h1): memory 2Gi: no host has that much free (h1 has 1Gi free)');
  // The target is gone with its host: the follower moves with it.
  const moved = place([U('app', { memory: Gi }), U('side', { memory: Gi / 2, machineOf: 'app' })], [hosts[1]!, H('h3', {}, { memory: Gi })], { app: 'h1', side: 'h1' });
  t.same(hostOf(moved), { app: 'h2', side: 'h2' });
  t.same(moved.moved.map((m) => [m.id, m.from, m.to]), [['app', 'h1', 'h2'], ['side', 'h1', 'h2']]);
  // A follower already running on the host its new target lands on stays and is not placed again.
  const back = place([U('app', { memory: Gi }), U('side', { memory: Gi / 2, machineOf: 'app' })], [hosts[1]!], { app: 'h1', side: 'h2' });
  t.same(hostOf(back), { app: 'h2', side: 'h2' });
  t.same(back.placed.map((p) => p.id), ['app']);
  t.same(back.moved.map((m) => [m.id, m.from, m.to]), [['app', 'h1', 'h2']]);
  // A follower kept on a busy host follows its target (placed anew on the least loaded host), freeing its old place.
  const away = place(
    [U('app'), U('side', { machineOf: 'app', conflicts: ['nobody'] }), U('other', { replicas: 2 })],
    [H('h1'), H('h2')],
    { app: 'gone', side: 'h1', 'other.1': 'h1', 'other.2': 'h1' },
  );
  t.same(hostOf(away), { side: 'h2', app: 'h2', 'other.1': 'h1', 'other.2': 'h1' });
  t.same(away.moved.map((m) => [m.id, m.from, m.to, m.reason]), [
    ['app', 'gone', 'h2', 'host gone is gone'],
    ['side', 'h1', 'h2', 'follows its machineOf target app'],
  ]);
});

t.test('pin to a host', async (t) => {
  const r = place([U('a', { host: 'h2' }), U('b', { host: 'h2' }), U('c')], [H('h1'), H('h2')]);
  t.same(hostOf(r), { a: 'h2', b: 'h2', c: 'h1' });
  // Pinned units go before unconstrained ones, so a pin gets its host's room.
  const room = place([U('a-free', { memory: Gi }), U('z-pinned', { memory: Gi, host: 'h1' })], [H('h1', {}, { memory: Gi }), H('h2', {}, { memory: Gi })]);
  t.same(hostOf(room), { 'z-pinned': 'h1', 'a-free': 'h2' });
});

t.test('global units: every eligible host, with a reason for each host that cannot take one', async (t) => {
  const hosts = [H('h1', { disk: 'ssd' }, { memory: Gi }), H('h2', { disk: 'ssd' }, { memory: 4 * Gi }), H('h3', { disk: 'hdd' }), H('h4', { disk: 'ssd' })];
  const r = place([U('agent', { global: true, memory: 2 * Gi, hostLabels: { disk: ['ssd'] } }), U('mon', { global: true })], hosts);
  t.same(hostOf(r), { 'agent:h2': 'h2', 'agent:h4': 'h4', 'mon:h1': 'h1', 'mon:h2': 'h2', 'mon:h3': 'h3', 'mon:h4': 'h4' });
  t.same(reasons(r), { 'agent:h1': 'memory 2Gi: no host has that much free (h1 has 1Gi free)' });
  const none = place([U('gpu', { global: true, hostLabels: { gpu: ['yes'] } })], hosts);
  t.match(reasons(none).gpu, /^hostLabels gpu=yes: excludes every host: h1 \(no label\)/);
  // Global units and their placements stay put; a host that stops matching loses its instance.
  const again = place([U('agent', { global: true, hostLabels: { disk: ['ssd'] } })], [H('h1', { disk: 'hdd' }), H('h2', { disk: 'ssd' })], { 'agent:h1': 'h1', 'agent:h2': 'h2' });
  t.same(hostOf(again), { 'agent:h2': 'h2' });
  t.same(again.removed, [{ id: 'agent:h1', unit: 'agent', host: 'h1' }]);
  t.same(again.placed, []);
});

t.test('deterministic: the input order does not matter', async (t) => {
  const hosts = Array.from({ length: 20 }, (_, i) => H(`h${i}`, { zone: `z${i % 3}` }, { cpu: 4000 + (i % 4) * 1000, memory: (4 + (i % 5)) * Gi }));
  const units: PlacementUnit[] = [];
  for (let i = 0; i < 120; i++) {
    units.push(U(`u${i}`, { cpu: 100 * (i % 7), memory: (i % 9) * 2 ** 28, ...(i % 5 === 0 ? { hostLabels: { zone: [`z${i % 3}`] } } : {}), ...(i % 11 === 0 ? { conflicts: ['u1*'] } : {}), ...(i % 13 === 0 && i > 0 ? { machineOf: `u${i - 1}` } : {}) }));
  }
  units.push(U('g', { global: true, cpu: 100 }), U('r', { replicas: 5, cpu: 300 }));
  units.push(U('cyc-a', { machineOf: 'cyc-b' }), U('cyc-b', { machineOf: 'cyc-a' }), U('lost', { machineOf: 'nowhere' }), U('huge', { memory: 2 ** 50 }));
  units.push(U('grp-root', { hostLabels: { zone: ['z0', 'z1'] } }), U('grp-x', { machineOf: 'grp-root', hostLabels: { zone: ['z2'] } }), U('grp-y', { machineOf: 'grp-root', host: 'h1' }), U('grp-z', { machineOf: 'grp-root', host: 'h2' }));
  const sortById = (r: PlacementResult) => [...r.assignments].sort((a, b) => (a.id < b.id ? -1 : 1));
  const a = place(units, hosts);
  // A deterministic shuffle of units and hosts.
  const shuffle = <T>(xs: T[]) => xs.map((x, i) => [(i * 7919) % 101, x] as const).sort((p, q) => p[0] - q[0]).map((p) => p[1]);
  const b = place(shuffle(units), shuffle(hosts));
  t.same(sortById(b), sortById(a));
  t.same(b.unplaceable, a.unplaceable);
  t.same(a.unplaceable.map((u) => u.id).slice(0, 3), ['cyc-a', 'cyc-b', 'lost'], 'broken references first, by name');
  t.match(a.unplaceable.find((u) => u.id === 'grp-root')?.reason, /^hostLabels zone: the machineOf group grp-root, grp-x, grp-y, grp-z asks for disjoint values$/);
  t.same(place(units, hosts), a, 'and the same input gives the same output');
  t.ok(a.assignments.length > 100);
});

t.test('stability: current placements stay; only new instances are placed; moves when a host is gone', async (t) => {
  const hosts = [H('h1'), H('h2'), H('h3')];
  const units = [U('a'), U('b'), U('c')];
  const first = place(units, hosts);
  const current = Object.fromEntries(first.assignments.map((x) => [x.id, x.host]));
  // Load would now favour other hosts for the new units, but the old ones do not move.
  const second = place([...units, U('d'), U('e')], hosts, current);
  for (const [id, host] of Object.entries(current)) t.equal(hostOf(second)[id], host, `${id} stays`);
  t.same(second.placed.map((p) => p.id), ['d', 'e']);
  t.same(second.moved, []);

  const third = place(units, [H('h1'), H('h3')], current);
  t.same(third.moved, [{ id: 'b', unit: 'b', from: 'h2', reason: 'host h2 is gone', to: 'h1' }]);
  t.same(third.placed, [{ id: 'b', unit: 'b', host: 'h1' }]);
  t.equal(hostOf(third).a, 'h1');
  t.equal(hostOf(third).c, 'h3');

  // A pin that changes moves the instance; a host with nowhere to go is reported with no `to`.
  const pinned = place([U('a', { host: 'h3' }), U('b'), U('c')], hosts, current);
  t.same(pinned.moved, [{ id: 'a', unit: 'a', from: 'h1', reason: 'constraints no longer allow h1', to: 'h3' }]);
  const stuck = place([U('a', { host: 'h1' })], [H('h2')], { a: 'h1' });
  t.same(stuck.moved, [{ id: 'a', unit: 'a', from: 'h1', reason: 'host h1 is gone' }]);
  t.equal(reasons(stuck).a, 'host h1: no such host');
});

t.test('current placements of units that are gone, inactive or scaled down are removed', async (t) => {
  const hosts = [H('h1'), H('h2')];
  const r = place([U('web', { replicas: 2 }), U('db', { desiredState: 'inactive' }), U('cache', { desiredState: 'loaded' })], hosts, {
    'web.1': 'h1',
    'web.2': 'h2',
    'web.3': 'h1',
    db: 'h2',
    old: 'h1',
  });
  t.same(r.removed.map((x) => x.id), ['db', 'old', 'web.3']);
  t.same(hostOf(r), { 'web.1': 'h1', 'web.2': 'h2', cache: 'h1' }, 'loaded units are placed like launched ones');
  // Scaling 1 → 2 keeps the single instance as replica 1; 2 → 1 keeps replica 1.
  const up = place([U('web', { replicas: 2 })], hosts, { web: 'h2' });
  t.same(hostOf(up), { 'web.1': 'h2', 'web.2': 'h1' });
  const down = place([U('web')], hosts, { 'web.1': 'h2', 'web.2': 'h1' });
  t.same(hostOf(down), { web: 'h2' });
  t.same(down.removed, [{ id: 'web.2', unit: 'web', host: 'h1' }]);
});

t.test('kept placements count even when over capacity; new ones do not overcommit', async (t) => {
  const r = place([U('a', { memory: 3 * Gi }), U('b', { memory: Gi })], [H('h1', {}, { memory: 2 * Gi })], { a: 'h1' });
  t.same(hostOf(r), { a: 'h1' });
  t.equal(reasons(r).b, 'memory 1Gi: no host has that much free (h1 has nothing free, 1Gi over)');
  // cpu the same way, and the "not enough free on" form when another host passes.
  const c = place([U('a', { cpu: 3000 }), U('b', { cpu: 1000, hostLabels: { zone: ['a'] } })], [H('h1', { zone: 'a' }, { cpu: 1000 }), H('h2', { zone: 'b' }, { cpu: 8000 })], { a: 'h1' });
  t.equal(reasons(c).b, 'hostLabels zone=a: excludes h2 (zone=b); cpu 1000m: no host has that much free (h1 has nothing free, 2000m over)');
  const both = place([U('a', { memory: 3 * Gi }), U('b', { memory: 2 * Gi, replicas: 2, conflicts: ['b'] })], [H('h1', {}, { memory: 2 * Gi }), H('h2', {}, { memory: 4 * Gi })], { a: 'h1' });
  t.equal(reasons(both)['b.2'], 'memory 2Gi: not enough free on h1 (nothing free, 1Gi over); conflicts b: excludes h2 (runs b)');
});

t.test('a machineOf pair kept on two hosts is joined again (R1 #4)', async (t) => {
  const hosts = [H('h1'), H('h2')];
  const r = place([U('a'), U('b', { machineOf: 'a' })], hosts, { a: 'h1', b: 'h2' });
  t.same(hostOf(r), { a: 'h1', b: 'h1' });
  t.same(r.moved, [{ id: 'b', unit: 'b', from: 'h2', reason: 'follows its machineOf target a', to: 'h1' }]);
  t.same(r.placed.map((p) => p.id), ['b']);
  // A chain: c follows b, which follows a; the member already with a stays.
  const chain = place([U('a'), U('b', { machineOf: 'a' }), U('c', { machineOf: 'b' })], hosts, { a: 'h2', b: 'h2', c: 'h1' });
  t.same(hostOf(chain), { a: 'h2', b: 'h2', c: 'h2' });
  t.same(chain.moved.map((m) => [m.id, m.from, m.to]), [['c', 'h1', 'h2']]);
  // No room with the target: the member leaves its old host and is unplaceable there.
  const full = place([U('a', { memory: Gi }), U('b', { memory: Gi, machineOf: 'a' })], [H('h1', {}, { memory: Gi }), H('h2')], { a: 'h1', b: 'h2' });
  t.same(hostOf(full), { a: 'h1' });
  t.same(full.moved, [{ id: 'b', unit: 'b', from: 'h2', reason: 'follows its machineOf target a' }]);
  t.equal(reasons(full).b, 'machineOf a (on h1): memory 1Gi: no host has that much free (h1 has 0B free)');
});

t.test('two current entries for one instance: the extra one is removed (R1 #5)', async (t) => {
  const hosts = [H('h1'), H('h2')];
  const r = place([U('web')], hosts, { web: 'h1', 'web.1': 'h2' });
  t.same(hostOf(r), { web: 'h1' });
  t.same(r.removed, [{ id: 'web.1', unit: 'web', host: 'h2' }]);
  // Either order, and for replicas (`web` stands for `web.1`).
  const m = place([U('web')], hosts, new Map([['web.1', 'h2'], ['web', 'h1']]));
  t.same(hostOf(m), { web: 'h2' });
  t.same(m.removed, [{ id: 'web', unit: 'web', host: 'h1' }]);
  const rep = place([U('web', { replicas: 2 })], hosts, { 'web.1': 'h1', web: 'h2' });
  t.same(hostOf(rep), { 'web.1': 'h1', 'web.2': 'h2' });
  t.same(rep.removed, [{ id: 'web', unit: 'web', host: 'h2' }]);
  t.same(rep.placed.map((p) => p.id), ['web.2']);
});

t.test('a long machineOf chain is placed in one pass (R1 #6)', async (t) => {
  // 3,000 units, each machineOf the previous: walking each chain from every unit took seconds.
  const n = 3000;
  const units = Array.from({ length: n }, (_, i) => U(`c${i}`, i ? { machineOf: `c${i - 1}` } : {}));
  const r = place(units, [H('h1'), H('h2')]);
  t.equal(r.placed.length, n);
  t.same(new Set(r.assignments.map((a) => a.host)), new Set(['h1']));
  t.same(r.unplaceable, []);
  // The same chain closed into a cycle: every unit unplaceable, each message bounded.
  const cyc = place([U('c0', { machineOf: `c${n - 1}` }), ...units.slice(1)], [H('h1')]);
  t.equal(cyc.unplaceable.length, n);
  t.equal(reasons(cyc).c5, `machineOf cycle: c5 → c4 → c3 → c2 → c1 → c0 → c${n - 1} → c${n - 2} → c${n - 3} → c${n - 4} → … (${n - 10} more) → c5`);
  const short = place([U('a', { machineOf: 'b' }), U('b', { machineOf: 'a' }), U('x', { machineOf: 'a' })], [H('h1')]);
  t.same(reasons(short), { a: 'machineOf cycle: a → b → a', b: 'machineOf cycle: b → a → b', x: 'machineOf cycle: a → b → a' });
});
