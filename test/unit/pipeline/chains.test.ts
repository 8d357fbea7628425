import { readFileSync } from 'node:fs';
import t from 'tap';
import { loadTopology } from '../../../src/model/index.js';
import { formatFlow, formatGroup, OFPGT } from '../../../src/openflow/index.js';
import { chainGroup, compile, cookieOf, flowProblems, groupProblems, IncrementalCompiler, T } from '../../../src/pipeline/index.js';
import { findEndpoint, headersBetween, traceBetween, Tracer, verdicts } from '../../../src/trace/index.js';
import type { Endpoint } from '../../../src/model/index.js';

const base = JSON.parse(readFileSync(new URL('../../../topologies/chain-three-hosts.json', import.meta.url), 'utf8'));
/** The example with the chain's fields overridden, plus an unrelated tenant. */
function doc(chain: Record<string, unknown> = {}): unknown {
  const d = structuredClone(base);
  Object.assign(d.tenants[0].chains[0], chain);
  d.tenants.push({ name: 'zeta', networks: [{ name: 'n', subnet: '10.9.0.0/24' }], endpoints: [{ name: 'a', network: 'n', host: 'host1' }, { name: 'b', network: 'n', host: 'host2' }] });
  return d;
}
const model = loadTopology(doc());
const chain = model.tenants[0]!.chains[0]!;
const cookie = cookieOf('chain:acme/web', 1);

t.test('compiled flows and groups: table 20 steering, select groups, service-function ports', async (t) => {
  const r = compile(model);
  const problems = model.hosts.flatMap((h) => [...r.host(h.name).flows.flatMap((f) => flowProblems(f)), ...r.host(h.name).groups.flatMap((g) => groupProblems(g))]);
  t.same(problems, [], 'every flow and group conforms to the table map');
  const h1 = r.host('host1');
  const ch = h1.flows.filter((f) => f.cookie === cookie).map(formatFlow);
  t.equal(ch.length, 4, 'host1: the client is classified, and (symmetric) the server\'s replies; each also as fragments (port 0)');
  t.match(ch.join('\n'), /tcp,reg14=0x[0-9a-f]+,metadata=0x[0-9a-f]+,nw_dst=10\.1\.0\.20,tp_dst=0 actions=group:\d+/, 'fragments (OVS zeroes their ports) are steered too');
  t.match(ch.join('\n'), /table=20, priority=100,tcp,reg14=0x[0-9a-f]+,metadata=0x[0-9a-f]+,nw_dst=10\.1\.0\.20,tp_dst=80 actions=group:\d+/);
  t.match(ch.join('\n'), /tcp,reg14=0x[0-9a-f]+,metadata=0x[0-9a-f]+,nw_dst=10\.1\.0\.10,tp_src=80 actions=group:\d+/);
  const g0 = h1.groups.find((g) => g.groupId === chainGroup(chain.key, 0, false))!;
  t.equal(g0.groupType, OFPGT.SELECT);
  t.same(g0.buckets.map((b) => b.weight), [1, 2], 'weights in document order');
  const fw1 = findEndpoint(model, 'acme/fw-1');
  const fw2 = findEndpoint(model, 'acme/fw-2');
  t.equal(formatGroup(g0), `group_id=${g0.groupId},type=select,bucket=actions=set_field:${fw1.mac}->eth_dst,resubmit(,40),bucket=weight:2,actions=set_field:${fw2.mac}->eth_dst,resubmit(,40)`);
  // host2 has the firewalls: re-entry from either goes to the IDS (forward) or back out (replies, last hop reversed)
  const h2 = r.host('host2').flows.map(formatFlow);
  const fwSec = h2.filter((f) => f.includes('table=5,') && f.includes(fw1.mac));
  t.same(fwSec.length, 3, 'a firewall port: its own IPv4 and ARP (normal path), others\' IPv4 (to the chain table)');
  t.match(fwSec.find((f) => f.includes('arp'))!, `arp_spa=${fw1.ip! >>> 24}.`, 'ARP only from its own address');
  t.match(fwSec.find((f) => f.includes('priority=90'))!, /^[^ ]+ table=5, priority=90,ip,reg14=0x[0-9a-f]+,metadata=0x[0-9a-f]+,dl_src=[0-9a-f:]+ actions=goto_table:20$/, 'others\' IPv4, below its own: straight to the chain table');
  t.ok(h2.some((f) => f.includes(`table=40, priority=100,`) && f.includes(`dl_dst=${fw1.mac}`) && f.endsWith('goto_table:60')), 'no conntrack for what a service function is sent to forward');
  t.ok(h2.some((f) => f.includes(`table=40, priority=105,ip,`) && f.includes(`dl_dst=${fw1.mac}`) && f.endsWith('goto_table:50')), 'conntrack for what is sent to its own address');
  t.equal(h2.filter((f) => f.includes('table=20,') && f.includes(`group:${chainGroup(chain.key, 1, false)}`)).length, 4, 'both firewalls -> the IDS (port 80 and fragments)');
  t.equal(h2.filter((f) => f.includes('table=20,') && f.includes('nw_src=10.1.0.20') && f.endsWith('goto_table:25')).length, 4, 'replies out of a firewall go on to the client');
  t.notOk(r.host('host3').flows.some((f) => f.tableId === T.CHAIN && f.cookie === cookie && formatFlow(f).includes('reg14=0x' + model.tenants[0]!.endpoints.find((e) => e.name === 'client')!.port.toString(16) + ',')), 'nothing classifies the client on host3');
});

t.test('trace: every hop in order, replies back through the same instances', async (t) => {
  const r = compile(model);
  const tracer = new Tracer(r);
  const seen = new Map<string, number>();
  for (let sport = 40000; sport < 40040; sport++) {
    const fwd = traceBetween(r, 'acme/client', 'acme/server', { protocol: 'tcp', dport: 80, sport }, tracer);
    t.same(verdicts(fwd), ['delivered to acme/server on host1']);
    t.equal(fwd.passes.length, 2);
    t.match(fwd.passes[0]!, /^acme\/fw-[12]@host2$/);
    t.equal(fwd.passes[1], 'acme/ids-1@host3');
    const server = findEndpoint(model, 'acme/server');
    const client = findEndpoint(model, 'acme/client');
    const rep = tracer.trace('host1', r.ctx.placement.hosts['host1']!.ports[server.id]!, headersBetween(server, client, { protocol: 'tcp', sport: 80, dport: sport }));
    t.same(verdicts(rep), ['delivered to acme/client on host1']);
    t.same(rep.passes, [fwd.passes[1], fwd.passes[0]], `reply of port ${sport}: the same instances in reverse`);
    seen.set(fwd.passes[0]!, (seen.get(fwd.passes[0]!) ?? 0) + 1);
  }
  t.equal(seen.size, 2, `connections spread over both firewalls (${[...seen].map(([k, v]) => `${k}: ${v}`).join(', ')})`);
  t.ok(seen.get('acme/fw-2@host2')! > seen.get('acme/fw-1@host2')!, 'fw-2 (weight 2) takes more');
  const ttl = traceBetween(r, 'acme/client', 'acme/server', { protocol: 'tcp', dport: 80 });
  const d = ttl.outcomes[0]!;
  t.equal(d.kind === 'delivered' && d.fields.get('nw_ttl'), 62n, 'two forwarding hops: TTL 62');
  t.match(ttl.steps.filter((s) => s.note?.startsWith('tunnel')).map((s) => `${s.host}:${s.note}`).join(' '), /host1:tunnel to host2.*host2:tunnel to host3.*host3:tunnel to host1/, 'host1 -> host2 -> host3 -> host1 over the overlay');
  // arriving over the tunnel, nothing is classified again
  const tunnelSteps = ttl.steps.filter((s, i) => i > 0 && s.host === 'host1' && ttl.steps.slice(0, i).some((x) => x.host === 'host3'));
  t.notOk(tunnelSteps.some((s) => s.table === T.CHAIN), 'back on host1 from the tunnel: table 20 is not visited');
});

t.test('fragments (looked up with ports 0) follow the chain, out of the service functions too', async (t) => {
  const r = compile(model);
  const fwd = traceBetween(r, 'acme/client', 'acme/server', { protocol: 'tcp', sport: 0, dport: 0 });
  t.same(verdicts(fwd), ['delivered to acme/server on host1']);
  t.equal(fwd.passes.length, 2, 'through a firewall and the IDS');
  const rep = traceBetween(r, 'acme/server', 'acme/client', { protocol: 'tcp', sport: 0, dport: 0 });
  t.same(verdicts(rep), ['delivered to acme/client on host1']);
  t.equal(rep.passes.length, 2, 'replies\' fragments back through both hops');
});

t.test('unclassified traffic is not steered; non-symmetric replies go straight back', async (t) => {
  const r = compile(model);
  t.same(traceBetween(r, 'acme/client', 'acme/server', { protocol: 'tcp', dport: 8080 }).passes, [], 'other port');
  t.same(traceBetween(r, 'acme/other', 'acme/server', { protocol: 'tcp', dport: 80 }).passes, [], 'other source');
  t.same(traceBetween(r, 'acme/client', 'acme/server', { protocol: 'udp', dport: 80 }).passes, [], 'other protocol');
  t.same(traceBetween(r, 'acme/client', 'acme/other', { protocol: 'tcp', dport: 80 }).passes, [], 'other destination');
  const oneWay = compile(loadTopology(doc({ symmetric: false })));
  t.same(traceBetween(oneWay, 'acme/server', 'acme/client', { protocol: 'tcp', sport: 80, dport: 40000 }).passes, [], 'not symmetric: replies are not steered');
  t.equal(traceBetween(oneWay, 'acme/client', 'acme/server', { protocol: 'tcp', dport: 80 }).passes.length, 2);
});

t.test('health: unhealthy instances leave the group; an empty hop follows failMode', async (t) => {
  const one = compile(model, undefined, { unhealthy: new Set(['acme/fw-1']) });
  const g = one.host('host1').groups.find((x) => x.groupId === chainGroup(chain.key, 0, false))!;
  t.equal(g.buckets.length, 1, 'one bucket left');
  for (let sport = 40000; sport < 40010; sport++) t.equal(traceBetween(one, 'acme/client', 'acme/server', { protocol: 'tcp', dport: 80, sport }).passes[0], 'acme/fw-2@host2');
  const none = new Set(['acme/fw-1', 'acme/fw-2']);
  const closed = compile(model, undefined, { unhealthy: none });
  const c = traceBetween(closed, 'acme/client', 'acme/server', { protocol: 'tcp', dport: 80 });
  t.match(verdicts(c)[0]!, /dropped on host1 at table 20 \(chain\)/, 'closed: dropped where it was classified');
  t.notOk(closed.host('host1').groups.some((x) => x.groupId === chainGroup(chain.key, 0, false)), 'no group for an empty hop');
  const open = compile(loadTopology(doc({ failMode: 'open' })), undefined, { unhealthy: none });
  const o = traceBetween(open, 'acme/client', 'acme/server', { protocol: 'tcp', dport: 80 });
  t.same(o.passes, ['acme/ids-1@host3'], 'open: the empty hop is skipped');
  t.same(verdicts(o), ['delivered to acme/server on host1']);
  const allOpen = compile(loadTopology(doc({ failMode: 'open' })), undefined, { unhealthy: new Set([...none, 'acme/ids-1']) });
  t.same(traceBetween(allOpen, 'acme/client', 'acme/server', { protocol: 'tcp', dport: 80 }).passes, [], 'open with every hop empty: straight to the server');
  const unbound = compile(model, { hosts: Object.fromEntries(Object.entries(compile(model).ctx.placement.hosts).map(([h, p]) => [h, { ...p, ports: Object.fromEntries(Object.entries(p.ports).filter(([id]) => id !== 'acme/fw-1')) }])) });
  t.equal(unbound.host('host1').groups.find((x) => x.groupId === chainGroup(chain.key, 0, false))!.buckets.length, 1, 'an instance without a port is left out too');
});

t.test('changing a chain changes only its own flows', async (t) => {
  const before = compile(model);
  const variants = [
    doc({ hops: [{ service: 'ids' }] }),
    doc({ hops: [{ service: 'ids' }, { instances: ['fw-1', { endpoint: 'fw-2', weight: 2 }] }] }),
    doc({ ports: [80, 443] }),
  ];
  const d0 = structuredClone(doc()) as { tenants: { chains: unknown[] }[] };
  d0.tenants[0]!.chains = [];
  variants.push(d0);
  for (const v of variants) {
    const after = compile(loadTopology(v));
    for (const h of model.hosts) {
      const keep = (fs: string[]) => fs.filter((f) => !f.startsWith(`cookie=0x${cookie.toString(16)}`));
      const a = after.host(h.name).flows.map(formatFlow);
      const b = before.host(h.name).flows.map(formatFlow);
      // service-function ports change with membership; every other object's flows are identical
      const sfCookies = ['fw-1', 'fw-2', 'ids-1'].map((n) => `cookie=0x${cookieOf(`endpoint:acme/${n}`, 1).toString(16)}`);
      const other = (fs: string[]) => keep(fs).filter((f) => !sfCookies.some((c) => f.startsWith(c)));
      t.same(other(a), other(b), `${h.name}: flows of other objects unchanged`);
    }
  }
});

t.test('incremental: adding an endpoint recomputes the chains of its tenant', async (t) => {
  const r = compile(loadTopology(doc())); // its own model: the incremental compiler changes it
  const inc = new IncrementalCompiler(r);
  inc.apply({ op: 'addEndpoint', tenant: 'acme', endpoint: { name: 'web-2', network: 'net', host: 'host2', labels: {} } });
  const d = structuredClone(doc()) as { tenants: { endpoints: unknown[]; chains: { to: unknown }[] }[] };
  d.tenants[0]!.endpoints.push({ name: 'web-2', network: 'net', host: 'host2' });
  const full = compile(loadTopology(d, { previous: r.model.alloc }), r.ctx.placement);
  for (const h of model.hosts) t.same(r.host(h.name).flows.filter((f) => f.cookie === cookie).map(formatFlow), full.host(h.name).flows.filter((f) => f.cookie === cookie).map(formatFlow), `${h.name}: chain flows equal a full compile`);
});

t.test('tenet trace: the hops, replies by --sport, failed instances by --unhealthy', async (t) => {
  const { traceText } = await import('../../../src/cli/topology.js');
  const file = new URL('../../../topologies/chain-three-hosts.json', import.meta.url).pathname;
  t.match(traceText(file, 'acme/client', 'acme/server', 'tcp', '80'), /service functions: acme\/fw-[12]@host2 -> acme\/ids-1@host3\nverdict:\n  delivered to acme\/server on host1/);
  t.match(traceText(file, 'acme/server', 'acme/client', 'tcp', '40000', { sport: '80', unhealthy: 'acme/fw-1' }), /service functions: acme\/ids-1@host3 -> acme\/fw-2@host2\n/);
  t.match(traceText(file, 'acme/client', 'acme/server', 'tcp', '80', { unhealthy: 'acme/fw-1,acme/fw-2' }), /dropped on host1 at table 20 \(chain\)/);
  t.throws(() => traceText(file, 'acme/client', 'acme/server', 'icmp', undefined, { sport: '80' }), /--sport needs tcp or udp/);
});

t.test('trace: TTL runs out in a service function; forwardServices false stops at the first instance', async (t) => {
  const r = compile(model);
  const two = traceBetween(r, 'acme/client', 'acme/server', { protocol: 'tcp', dport: 80, ttl: 2 });
  t.same(verdicts(two), ['dropped on host3 at table 60 (output): TTL exceeded in service function acme/ids-1']);
  t.equal(two.passes.length, 2, 'the firewall forwarded it, the IDS could not');
  const stop = traceBetween(r, 'acme/client', 'acme/server', { protocol: 'tcp', dport: 80 }, new Tracer(r, { forwardServices: false }));
  t.match(verdicts(stop)[0]!, /^delivered to acme\/fw-[12] on host2$/);
  t.same(stop.passes, []);
  const arp = traceBetween(r, 'acme/client', 'acme/fw-1', { protocol: 'arp' });
  t.same(verdicts(arp), ['delivered to acme/client on host1'], 'ARP for an instance is answered by the switch, not steered');
  const own = traceBetween(r, 'acme/client', 'acme/fw-1', { protocol: 'icmp' });
  t.same(verdicts(own), ['delivered to acme/fw-1 on host2'], 'a packet for the instance itself is delivered, not forwarded');
});

t.test('the reconciler\'s diff after a chain change: only the chain\'s flows and groups, never another tenant\'s', async (t) => {
  const { diffState } = await import('../../../src/reconcile/index.js');
  const asStats = (fs: import('../../../src/openflow/index.js').FlowMod[]) =>
    fs.map((f) => ({ tableId: f.tableId, durationSec: 0, durationNsec: 0, priority: f.priority, idleTimeout: f.idleTimeout, hardTimeout: f.hardTimeout, flags: f.flags, cookie: f.cookie, packetCount: 0n, byteCount: 0n, match: f.match, instructions: f.instructions }));
  const m0 = loadTopology(doc());
  const before = compile(m0);
  const zeta = new Set(['tenant:zeta', 'network:zeta/n', 'endpoint:zeta/a', 'endpoint:zeta/b'].map((k) => cookieOf(k, 1)));
  const sf = new Set(['fw-1', 'fw-2', 'ids-1'].map((n) => cookieOf(`endpoint:acme/${n}`, 1)));
  for (const [what, v] of [
    ['add a hop', doc({ hops: [{ instances: ['fw-1', { endpoint: 'fw-2', weight: 2 }] }, { service: 'ids' }, { instances: ['other'] }] })],
    ['reorder', doc({ hops: [{ service: 'ids' }, { instances: ['fw-1', { endpoint: 'fw-2', weight: 2 }] }] })],
    ['remove a hop', doc({ hops: [{ service: 'ids' }] })],
  ] as const) {
    const after = compile(loadTopology(v), before.ctx.placement);
    for (const h of m0.hosts) {
      const groupsBefore = before.host(h.name).groups.map((g) => ({ groupId: g.groupId, groupType: g.groupType, buckets: g.buckets }));
      const d = diffState({ flows: after.host(h.name).flows, groups: after.host(h.name).groups }, { flows: asStats(before.host(h.name).flows), groups: groupsBefore });
      const touched = [...d.addFlows, ...d.changeFlows.map((c) => c.desired), ...d.removeFlows];
      t.notOk(touched.some((f) => zeta.has(f.cookie)), `${what}, ${h.name}: no flow of tenant zeta touched (${d.unchanged} unchanged)`);
      const stray = touched.filter((f) => f.cookie !== cookie && !sf.has(f.cookie) && f.cookie !== cookieOf('endpoint:acme/other', 1));
      t.same(stray.map(formatFlow), [], `${what}, ${h.name}: only the chain's and its instances' flows change`);
      t.ok([...d.addGroups, ...d.changeGroups, ...d.removeGroups].every((g) => g.groupId >= 0x80000000), `${what}, ${h.name}: only chain groups change`);
    }
  }
});

t.test('service-function ports: no spoofing, no policy bypass', async (t) => {
  const r = compile(model);
  const tracer = new Tracer(r);
  const [fw1, client, server, other] = ['fw-1', 'client', 'server', 'other'].map((n) => findEndpoint(model, `acme/${n}`)) as [Endpoint, Endpoint, Endpoint, Endpoint];
  const port = r.ctx.placement.hosts['host2']!.ports[fw1.id]!;
  const from = (to: Endpoint, spec: Parameters<typeof headersBetween>[2]) => tracer.trace('host2', port, headersBetween(fw1, to, spec));
  const spoof = (src: Endpoint) => ({ nw_src: BigInt(src.ip!) });
  // At its chain position (leaving a firewall to server tcp/80, as the client): on to the IDS.
  t.same(from(server, { protocol: 'tcp', dport: 80, set: spoof(client) }).passes, ['acme/ids-1@host3'], 'a chain position: others\' packets go on to the next hop');
  // (Within a chain position the source address is not checked: docs/PIPELINE.md "Service-function ports".)
  // Foreign sources anywhere else: dropped in table 20.
  for (const [what, to, spec] of [
    ['tcp/22 to the server as the client', server, { protocol: 'tcp', dport: 22, set: spoof(client) }],
    ['icmp to the server as the client', server, { protocol: 'icmp', set: spoof(client) }],
    ['tcp/80 to another endpoint as the client', other, { protocol: 'tcp', dport: 80, set: spoof(client) }],
    ['udp/80 to the server as the client', server, { protocol: 'udp', dport: 80, set: spoof(client) }],
  ] as const) {
    const v = verdicts(from(to, spec));
    t.match(v, [/dropped on host2 at table 20 \(chain\)/], `foreign source, ${what}: dropped (${v.join('; ')})`);
  }
  const arp = verdicts(from(server, { protocol: 'arp', set: { arp_spa: BigInt(client.ip!) } }));
  t.match(arp, [/dropped on host2 at table 5 \(port_security\)/], `ARP claiming the client's address: dropped (${arp.join('; ')})`);
  const arpSha = verdicts(from(server, { protocol: 'arp', set: { arp_sha: 0x0a0000000001n } }));
  t.match(arpSha, [/dropped on host2 at table 5/], 'ARP with a foreign sha: dropped');
  const ip6 = verdicts(tracer.trace('host2', port, new Map([['dl_src', BigInt('0x' + fw1.mac.replace(/:/g, ''))], ['dl_dst', BigInt('0x' + server.mac.replace(/:/g, ''))], ['dl_type', 0x86ddn], ['ipv6_src', 0xfd00n << 112n], ['ipv6_dst', (0xfd00n << 112n) | 2n], ['nw_proto', 58n]])));
  t.match(ip6, [/dropped on host2 at table 5/], 'IPv6 from a service function (not its own address): dropped');
  // Its own address: port security, then the tenant's policy (table 10), like any endpoint.
  const own = from(server, { protocol: 'tcp', dport: 22 });
  t.ok(own.steps.some((s) => s.table === T.ACL_IN), 'its own traffic goes through the tenant policy (table 10)');
  t.same(verdicts(own), verdicts(traceBetween(r, 'acme/other', 'acme/server', { protocol: 'tcp', dport: 22 })), 'and gets the verdict any endpoint gets');
});

t.test('two chains that put the same flow on a host (validation bypassed): a typed error naming both', async (t) => {
  const m = loadTopology(doc());
  const c = m.tenants[0]!.chains[0]!;
  m.tenants[0]!.chains.push({ ...c, id: 'acme/web-copy', name: 'web-copy', key: c.key + 1 });
  t.throws(() => compile(m), { name: 'ChainConflictError', code: 'ECHAINCONFLICT', message: /chains "acme\/web" and "acme\/web-copy" both classify table=20,priority=100,/ });
  t.doesNotThrow(() => compile(model), 'each chain once: fine');
});
