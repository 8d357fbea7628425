/**
 * A chain with a routed source, offline (topologies/chain-routed.json): client on
 * the web network (host1) -> fw (db, host2) -> ids (db, host3) -> server (db,
 * host1), tcp 5432, symmetric. The tracer simulates the compiled flows (and Linux
 * forwarding in the service functions), so these follow the packet hop by hop.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { loadTopology, TopologyError } from '../../../src/model/index.js';
import { formatFlow, type FlowMod } from '../../../src/openflow/index.js';
import { compile, cookieOf, flowProblems, groupProblems, IncrementalCompiler, T } from '../../../src/pipeline/index.js';
import { findEndpoint, formatTrace, headersBetween, traceBetween, Tracer, verdicts } from '../../../src/trace/index.js';

const doc = JSON.parse(readFileSync(new URL('../../../topologies/chain-routed.json', import.meta.url), 'utf8'));
const withChain = (chain: Record<string, unknown>) => {
  const d = structuredClone(doc);
  Object.assign(d.tenants[0].chains[0], chain);
  return d;
};
const model = loadTopology(doc);
const r = compile(model);
const cookie = cookieOf('chain:acme/web-to-db', 1);
const PG = { protocol: 'tcp' as const, dport: 5432 };

t.test('compiled: the routed source is classified in table 35 on its host, everything conforms', async (t) => {
  const problems = model.hosts.flatMap((h) => [...r.host(h.name).flows.flatMap((f) => flowProblems(f)), ...r.host(h.name).groups.flatMap((g) => groupProblems(g))]);
  t.same(problems, [], 'every flow and group conforms to the table map');
  const h1 = r.host('host1').flows.filter((f) => f.cookie === cookie);
  const t35 = h1.filter((f) => f.tableId === T.L3_RESOLVE).map(formatFlow);
  t.equal(t35.length, 2, 'port 5432 and fragments');
  t.match(t35.join('\n'), /table=35, priority=150,tcp,reg14=0x[0-9a-f]+,metadata=0x[0-9a-f]+,nw_src=10\.1\.0\.10,nw_dst=10\.2\.0\.20,tp_dst=5432 actions=group:\d+/);
  t.notOk(h1.some((f) => f.tableId === T.CHAIN && formatFlow(f).includes('tp_dst=')), 'no forward classifier at the client\'s port (table 20): it is on another network');
  t.notOk(['host2', 'host3'].some((h) => r.host(h).flows.some((f) => f.tableId === T.L3_RESOLVE && f.cookie === cookie)), 'only the source\'s host classifies it');
});

t.test('forward: routed, then fw -> ids -> server, hop by hop', async (t) => {
  const fwd = traceBetween(r, 'acme/client', 'acme/server', { ...PG, sport: 40000 });
  const text = formatTrace(fwd);
  t.same(verdicts(fwd), ['delivered to acme/server on host1'], text);
  t.same(fwd.passes, ['acme/fw@host2', 'acme/ids@host3']);
  const h1 = fwd.steps.filter((s) => s.host === 'host1');
  const i30 = h1.findIndex((s) => s.table === T.L3 && s.flow?.includes('dec_ttl'));
  const i35 = h1.findIndex((s) => s.table === T.L3_RESOLVE && s.flow?.includes('priority=150'));
  t.ok(i30 >= 0 && i35 > i30, 'routed (table 30), then classified (table 35)');
  t.match(text, /35 l3_resolve: .*priority=150.*actions=group:\d+\n\s+-> group \d+ \(select\)/);
  const d = fwd.outcomes[0]!;
  t.equal(d.kind === 'delivered' && d.fields.get('nw_ttl'), 61n, 'router + two forwarding hops: TTL 61');
  t.match(fwd.steps.filter((s) => s.note?.startsWith('tunnel')).map((s) => `${s.host}:${s.note}`).join(' '), /host1:tunnel to host2.*host2:tunnel to host3.*host3:tunnel to host1/);
});

t.test('replies: classified at the server, ids -> fw by dst-MAC rewrite, routed after fw', async (t) => {
  const tracer = new Tracer(r);
  const server = findEndpoint(model, 'acme/server');
  const client = findEndpoint(model, 'acme/client');
  for (let sport = 40000; sport < 40005; sport++) {
    t.same(verdicts(traceBetween(r, 'acme/client', 'acme/server', { ...PG, sport }, tracer)), ['delivered to acme/server on host1']);
    const rep = tracer.trace('host1', r.ctx.placement.hosts.host1!.ports[server.id]!, headersBetween(server, client, { protocol: 'tcp', sport: 5432, dport: sport }));
    const text = formatTrace(rep);
    t.same(verdicts(rep), ['delivered to acme/client on host1'], text);
    t.same(rep.passes, ['acme/ids@host3', 'acme/fw@host2'], 'the same instances in reverse');
    t.ok(rep.steps.some((s) => s.note?.includes('est|rpl|trk')), 'the reply is +est+rpl');
    t.match(text, /service function acme\/fw forwards it .* to its gateway/, 'fw sends it to its gateway (the router MAC)');
    t.ok(rep.steps.some((s) => s.host === 'host2' && s.table === T.L3 && s.flow?.includes('dec_ttl')), 'routed to the web network on fw\'s host, after the last reverse hop');
    const d = rep.outcomes[0]!;
    t.equal(d.kind === 'delivered' && d.fields.get('nw_ttl'), 61n, 'two forwarding hops + router: TTL 61');
  }
});

t.test('unclassified routed traffic is routed directly, both ways', async (t) => {
  for (const [from, to, spec] of [
    ['acme/client', 'acme/server', { protocol: 'icmp' }],
    ['acme/server', 'acme/client', { protocol: 'icmp' }],
    ['acme/client', 'acme/server', { protocol: 'tcp', dport: 80 }],
    ['acme/client', 'acme/server', { protocol: 'udp', dport: 5432 }],
    ['acme/client', 'acme/fw', { protocol: 'tcp', dport: 5432 }],
  ] as const) {
    const x = traceBetween(r, from, to, spec);
    t.same(verdicts(x), [`delivered to ${to} on ${findEndpoint(model, to).host}`], `${from} -> ${to} ${spec.protocol}`);
    t.same(x.passes, [], 'no service function');
    const d = x.outcomes[0]!;
    t.equal(d.kind === 'delivered' && d.fields.get('nw_ttl'), 63n, 'routed once');
  }
});

t.test('non-chained routed traffic: the same flows with and without the chain', async (t) => {
  const d = structuredClone(doc);
  d.tenants[0].chains = [];
  const bare = compile(loadTopology(d));
  const sfCookies = ['fw', 'ids'].map((n) => cookieOf(`endpoint:acme/${n}`, 1));
  for (const h of model.hosts) {
    const keep = (fs: FlowMod[]) =>
      fs.filter((f) => f.cookie !== cookie && !sfCookies.includes(f.cookie) && (f.tableId === T.L3 || f.tableId === T.L3_RESOLVE || f.tableId === T.CHAIN)).map(formatFlow);
    t.same(keep(r.host(h.name).flows), keep(bare.host(h.name).flows), `${h.name}: tables 20, 30, 35 apart from the chain's own flows`);
  }
});

t.test('failMode with no live instance: closed drops at table 35, open routes directly', async (t) => {
  const none = new Set(['acme/fw', 'acme/ids']);
  const closed = traceBetween(compile(model, undefined, { unhealthy: none }), 'acme/client', 'acme/server', PG);
  t.match(verdicts(closed)[0]!, /dropped on host1 at table 35 \(l3_resolve\)/);
  const openR = compile(loadTopology(withChain({ failMode: 'open' })), undefined, { unhealthy: none });
  t.notOk(openR.host('host1').flows.some((f) => f.tableId === T.L3_RESOLVE && f.cookie === cookie), 'open, every hop empty: no classifier');
  const open = traceBetween(openR, 'acme/client', 'acme/server', PG);
  t.same(verdicts(open), ['delivered to acme/server on host1']);
  t.same(open.passes, []);
});

t.test('a source on a network the router does not join is rejected, with the path', async (t) => {
  const d = structuredClone(doc);
  d.tenants[0].router = { networks: ['db'] };
  t.throws(() => loadTopology(d), TopologyError);
  try {
    loadTopology(d);
  } catch (e) {
    t.match(String((e as Error).message), /\/tenants\/0\/chains\/0\/from.*source "client" is on network "web", which the tenant's router does not join to the chain's network "db"/);
  }
});

t.test('incremental: a new endpoint on the routed source network is classified like a full compile does', async (t) => {
  const r2 = compile(loadTopology(doc)); // its own model: the incremental compiler changes it
  const inc = new IncrementalCompiler(r2);
  inc.apply({ op: 'addEndpoint', tenant: 'acme', endpoint: { name: 'client-2', network: 'web', host: 'host2', labels: {} } });
  const d = structuredClone(doc);
  d.tenants[0].endpoints.push({ name: 'client-2', network: 'web', host: 'host2' });
  const full = compile(loadTopology(d, { previous: r2.model.alloc }), r2.ctx.placement);
  const mine = (x: typeof full, h: string) => x.host(h).flows.filter((f) => f.cookie === cookie).map(formatFlow);
  for (const h of model.hosts) t.same(mine(r2, h.name), mine(full, h.name), `${h.name}: chain flows equal a full compile`);
  t.ok(mine(r2, 'host2').some((f) => f.includes('table=35') && f.includes('nw_src=10.1.0.')), 'host2 now classifies client-2 (routed)');
  t.same(traceBetween(r2, 'acme/client-2', 'acme/server', PG).passes, ['acme/fw@host2', 'acme/ids@host3']);
});

t.test('the source\'s host has no endpoint of the chain\'s network (server on host3 with the IDS)', async (t) => {
  const d = structuredClone(doc);
  d.tenants[0].endpoints.find((e: { name: string }) => e.name === 'server').host = 'host3';
  const r3 = compile(loadTopology(d));
  const tracer = new Tracer(r3);
  const fwd = traceBetween(r3, 'acme/client', 'acme/server', { ...PG, sport: 40000 }, tracer);
  t.same(verdicts(fwd), ['delivered to acme/server on host3'], formatTrace(fwd));
  t.same(fwd.passes, ['acme/fw@host2', 'acme/ids@host3']);
  const rep = traceBetween(r3, 'acme/server', 'acme/client', { protocol: 'tcp', sport: 5432, dport: 40000 }, tracer);
  t.same(verdicts(rep), ['delivered to acme/client on host1'], formatTrace(rep));
  t.same(rep.passes, ['acme/ids@host3', 'acme/fw@host2']);
});
