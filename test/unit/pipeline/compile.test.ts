import { readFileSync } from 'node:fs';
import type { Test } from 'tap';
import t from 'tap';
import { fnv32 } from '../../../src/ipam/index.js';
import { loadTopology, type Model } from '../../../src/model/index.js';
import { formatFlow, formatGroup, parseFlow } from '../../../src/openflow/index.js';
import { diffState } from '../../../src/reconcile/index.js';
import type { FlowMod, FlowStats } from '../../../src/openflow/index.js';
import {
  compile,
  CompileOptionsError,
  cookieGeneration,
  cookieObject,
  cookieOf,
  defaultPlacement,
  deltaFlowCount,
  flowProblems,
  floodGroup,
  groupProblems,
  IncrementalCompiler,
  type CompileResult,
  type Placement,
} from '../../../src/pipeline/index.js';

const load = (f: string) => JSON.parse(readFileSync(new URL(`../../../topologies/${f}`, import.meta.url), 'utf8'));
const text = (r: CompileResult, h: string) => [...r.host(h).flows.map(formatFlow), ...r.host(h).groups.map(formatGroup)];

t.test('every compiled flow and group conforms to the table map', async (t) => {
  for (const f of ['two-tenants.json', 'lab-two-hosts.json']) {
    const m = loadTopology(load(f));
    const r = compile(m);
    let n = 0;
    for (const h of m.hosts) {
      for (const fl of r.host(h.name).flows) {
        t.same(flowProblems(fl), [], formatFlow(fl));
        n++;
      }
      for (const g of r.host(h.name).groups) t.same(groupProblems(g), []);
    }
    t.ok(n > 50, `${f}: ${n} flows checked`);
  }
});

t.test('flows are the codec\'s own objects: print -> parse gives them back', async (t) => {
  const r = compile(loadTopology(load('two-tenants.json')));
  for (const fl of r.host('host1').flows) {
    const back = parseFlow(formatFlow(fl));
    t.same(back.match, fl.match, formatFlow(fl));
    t.same(back.instructions, fl.instructions);
    t.equal(back.cookie, fl.cookie);
    t.equal(back.priority, fl.priority);
    t.equal(back.tableId, fl.tableId);
  }
});

t.test('deterministic: same input -> identical flows, whatever the document order', async (t) => {
  const doc = load('two-tenants.json');
  const a = compile(loadTopology(doc));
  const b = compile(loadTopology(doc));
  const rev = structuredClone(doc);
  rev.hosts.reverse();
  rev.tenants.reverse();
  for (const x of rev.tenants) {
    x.endpoints.reverse();
    x.networks.reverse();
  }
  const c = compile(loadTopology(rev));
  for (const h of ['host1', 'host2', 'host3']) {
    t.same(text(b, h), text(a, h), `${h} twice`);
    t.same(text(c, h), text(a, h), `${h} reordered document`);
  }
  // canonical order: table ascending, priority descending
  const fl = a.host('host1').flows;
  for (let i = 1; i < fl.length; i++) t.ok(fl[i - 1]!.tableId < fl[i]!.tableId || (fl[i - 1]!.tableId === fl[i]!.tableId && fl[i - 1]!.priority >= fl[i]!.priority));
});

t.test('cookies: hash of the source object id above, generation below', async (t) => {
  const m = loadTopology(load('two-tenants.json'));
  const r = compile(m, defaultPlacement(m), { generation: 7 });
  const seen = new Set<bigint>();
  for (const fl of r.host('host2').flows) {
    t.equal(fl.cookie & 0xffffffffn, 7n);
    seen.add(fl.cookie >> 32n);
  }
  t.ok(seen.has(BigInt(fnv32('endpoint:acme/db-1'))), 'endpoint cookie');
  // host2 has acme endpoints (web-2, db-1): both of these policies put flows there; globex has none there
  t.ok(seen.has(BigInt(fnv32('policy:acme/web-to-db'))), 'policy web-to-db cookie');
  t.ok(seen.has(BigInt(fnv32('policy:acme/no-ssh-to-db'))), 'policy no-ssh-to-db cookie');
  t.notOk(seen.has(BigInt(fnv32('tenant:globex'))), 'no cookie of a tenant without endpoints on host2');
  t.ok(seen.has(BigInt(fnv32('pipeline'))));
  const c = cookieOf('endpoint:acme/db-1', 7);
  t.equal(cookieObject(c), fnv32('endpoint:acme/db-1'));
  t.equal(cookieGeneration(c), 7);
  t.equal(cookieGeneration(0n), 0, 'a cookie-0 flow is never ours');
  for (const g of [0, -1, 1.5, 2 ** 32, Number.NaN]) {
    t.throws(() => cookieOf('pipeline', g), CompileOptionsError, `generation ${g}`);
    t.throws(() => compile(m, defaultPlacement(m), { generation: g }), { code: 'ECOMPILEOPTS' });
  }
});

/** What a switch would report for flows it holds (counters are irrelevant to the diff). */
const asStats = (fs: FlowMod[]): FlowStats[] =>
  fs.map((f) => ({ tableId: f.tableId, durationSec: 0, durationNsec: 0, priority: f.priority, idleTimeout: f.idleTimeout, hardTimeout: f.hardTimeout, flags: f.flags, cookie: f.cookie, packetCount: 0n, byteCount: 0n, match: f.match, instructions: f.instructions }));

t.test('cookies are stable: the reconciler re-adds exactly the flows a change touches, and nothing after a restart', async (t) => {
  const doc = load('two-tenants.json');
  const m0 = loadTopology(doc);
  const p0 = defaultPlacement(m0);
  const installed = compile(m0, structuredClone(p0)); // what the switches hold
  const inc = new IncrementalCompiler(compile(loadTopology(doc), structuredClone(p0)));
  const ep = { name: 'web-9', network: 'web', host: 'host2' };
  const delta = inc.apply({ op: 'addEndpoint', tenant: 'acme', endpoint: ep });
  let untouched = 0;
  for (const h of m0.hosts) {
    const d = diffState({ flows: inc.result.host(h.name).flows, groups: [] }, { flows: asStats(installed.host(h.name).flows), groups: [] });
    const hd = delta.get(h.name);
    t.equal(d.addFlows.length, hd?.add.length ?? 0, `${h.name}: adds`);
    t.equal(d.changeFlows.length, hd?.modify.length ?? 0, `${h.name}: re-added (changed) flows are only the delta's modifies`);
    t.equal(d.removeFlows.length, hd?.delete.length ?? 0, `${h.name}: removes`);
    t.equal(d.unchanged, installed.host(h.name).flows.length - (hd?.modify.length ?? 0) - (hd?.delete.length ?? 0), `${h.name}: every other flow untouched`);
    untouched += d.unchanged;
  }
  t.ok(untouched > 100, `${untouched} flows keep their duration`);
  // a restarted controller compiles the same state from scratch: the switches need nothing
  const after = structuredClone(doc);
  after.tenants[0].endpoints.push(ep);
  const restarted = compile(loadTopology(after, { previous: inc.result.model.alloc }), structuredClone(inc.result.ctx.placement));
  for (const h of m0.hosts) {
    const d = diffState({ flows: restarted.host(h.name).flows, groups: [] }, { flows: asStats(inc.result.host(h.name).flows), groups: [] });
    t.same([d.addFlows.length, d.changeFlows.length, d.removeFlows.length], [0, 0, 0], `${h.name}: nothing to do after a restart`);
    t.equal(d.unchanged, inc.result.host(h.name).flows.length);
  }
});

t.test('flood groups reach local ports and exactly the remote hosts that have the network', async (t) => {
  const m = loadTopology(load('two-tenants.json'));
  const p = defaultPlacement(m);
  const r = compile(m, p);
  const web = m.tenants[0]!.networks.find((n) => n.name === 'web')!; // acme/web: host1, host2
  const g = r.host('host1').groups.find((x) => x.groupId === floodGroup(web.vni, false))!;
  const outs = g.buckets.map((b) => b.actions.map((a) => (a.type === 'output' ? a.port : -1)).filter((x) => x >= 0)[0]);
  t.same(outs.sort(), [p.hosts.host1!.ports['acme/web-1']!, p.hosts.host1!.tunnels.host2!].sort());
  t.notOk(outs.includes(p.hosts.host1!.tunnels.host3!), 'no bucket to host3, which has no web endpoint');
  t.notOk(r.host('host3').groups.some((x) => x.groupId === floodGroup(web.vni, false)), 'host3 has no group for acme/web');
  const gt = r.host('host1').groups.find((x) => x.groupId === floodGroup(web.vni, true))!;
  t.equal(gt.buckets.length, 1, 'from a tunnel: local ports only');
});

t.test('an endpoint without a port in the placement gets no local flows', async (t) => {
  const m = loadTopology(load('two-tenants.json'));
  const p = defaultPlacement(m);
  delete p.hosts.host1!.ports['acme/web-1'];
  const r = compile(m, p);
  t.notOk(r.host('host1').flows.some((f) => f.tableId === 0 && formatFlow(f).includes('in_port=1000')), 'no classify flow');
});

function clone(p: Placement): Placement {
  return structuredClone(p);
}

function sameAsFull(t: Test, inc: IncrementalCompiler, doc: unknown, what: string) {
  const m: Model = loadTopology(doc, { previous: inc.result.model.alloc });
  const full = compile(m, clone(inc.result.ctx.placement));
  for (const h of m.hosts) t.same(text(inc.result, h.name), text(full, h.name), `${what}: ${h.name} equals a full compile`);
}

t.test('incremental: adding and removing endpoints gives exactly the full compile, and the delta is the difference', async (t) => {
  const doc = load('two-tenants.json');
  const start = structuredClone(doc);
  // start without db-2 (host3's only acme endpoint) and web-2
  start.tenants[0].endpoints = start.tenants[0].endpoints.filter((e: { name: string }) => e.name !== 'db-2' && e.name !== 'web-2');
  const m0 = loadTopology(start);
  const inc = new IncrementalCompiler(compile(m0, defaultPlacement(m0)));
  const cur = structuredClone(start);
  for (const name of ['db-2', 'web-2']) {
    const before = new Map(m0.hosts.map((h) => [h.name, new Set(text(inc.result, h.name))]));
    const ep = doc.tenants[0].endpoints.find((e: { name: string }) => e.name === name);
    const delta = inc.apply({ op: 'addEndpoint', tenant: 'acme', endpoint: ep });
    cur.tenants[0].endpoints.push(ep);
    sameAsFull(t, inc, cur, `after adding ${name}`);
    t.ok(deltaFlowCount(delta) > 0);
    // applying the delta to the old flow set gives the new one
    for (const h of m0.hosts) {
      const s = new Set([...before.get(h.name)!].filter((x) => !x.startsWith('group_id')));
      const d = delta.get(h.name);
      const key = (x: string) => x.replace(/^cookie=0x[0-9a-f]+, /, '').replace(/ actions=.*/, '');
      if (d) {
        const gone = new Set([...d.delete, ...d.modify].map((f) => key(formatFlow(f))));
        for (const x of [...s]) if (gone.has(key(x))) s.delete(x);
        for (const f of [...d.add, ...d.modify]) s.add(formatFlow(f));
      }
      t.same([...s].sort(), text(inc.result, h.name).filter((x) => !x.startsWith('group_id')).sort(), `${name}: delta on ${h.name}`);
    }
  }
  t.equal(inc.result.host('host3').flows.some((f) => f.tableId === 0 && f.priority === 100), true, 'host3 now has acme flows');
  // remove again
  inc.apply({ op: 'removeEndpoint', tenant: 'acme', name: 'db-2' });
  cur.tenants[0].endpoints = cur.tenants[0].endpoints.filter((e: { name: string }) => e.name !== 'db-2');
  sameAsFull(t, inc, cur, 'after removing db-2');
  // a second endpoint on an existing network/host only touches a few flows
  const d = inc.apply({ op: 'addEndpoint', tenant: 'globex', endpoint: { name: 'web-3', network: 'web', host: 'host1' } });
  cur.tenants[1].endpoints.push({ name: 'web-3', network: 'web', host: 'host1' });
  sameAsFull(t, inc, cur, 'after adding globex/web-3');
  t.ok(deltaFlowCount(d) < 20, `${deltaFlowCount(d)} flows changed`);
  t.same([...d.keys()].sort(), ['host1', 'host3'], 'only hosts with globex/web');
});

t.test('incremental: bad changes are typed errors and change nothing', async (t) => {
  const m = loadTopology(load('two-tenants.json'));
  const inc = new IncrementalCompiler(compile(m));
  const before = text(inc.result, 'host1');
  const bad: [unknown, RegExp][] = [
    [{ op: 'addEndpoint', tenant: 'nope', endpoint: { name: 'x', network: 'web', host: 'host1' } }, /unknown tenant/],
    [{ op: 'addEndpoint', tenant: 'acme', endpoint: { name: 'X', network: 'web', host: 'host1' } }, /invalid topology/],
    [{ op: 'addEndpoint', tenant: 'acme', endpoint: { name: 'web-1', network: 'web', host: 'host1' } }, /duplicate endpoint/],
    [{ op: 'addEndpoint', tenant: 'acme', endpoint: { name: 'x', network: 'nope', host: 'host9' } }, /unknown network/],
    [{ op: 'addEndpoint', tenant: 'acme', endpoint: { name: 'x', network: 'web', host: 'host1', ip: '10.0.1.10' } }, /already in use/],
    [{ op: 'addEndpoint', tenant: 'acme', endpoint: { name: 'x', network: 'web', host: 'host1', ip: '10.9.1.10' } }, /not a usable address/],
    [{ op: 'addEndpoint', tenant: 'acme', endpoint: { name: 'x', network: 'db', host: 'host1', mac: '02:00:00:00:02:10' } }, /already in use/],
    [{ op: 'addEndpoint', tenant: 'acme', endpoint: { name: 'x', network: 'db', host: 'host1', ip6: 'fd00::1' } }, /no IPv6 subnet/],
    [{ op: 'removeEndpoint', tenant: 'acme', name: 'ghost' }, /unknown endpoint/],
    [{ op: 'renameEndpoint', tenant: 'acme', name: 'web-1' }, /unknown change "renameEndpoint"/],
  ];
  for (const [c, re] of bad) t.throws(() => inc.apply(c as never), re);
  t.same(text(inc.result, 'host1'), before);
});
