import { readFileSync } from 'node:fs';
import t from 'tap';
import { fnv32 } from '../../../src/ipam/index.js';
import { loadTopology } from '../../../src/model/index.js';
import { compile, defaultPlacement } from '../../../src/pipeline/index.js';
import { findEndpoint, formatTrace, headersBetween, traceBetween, Tracer, verdicts, type TraceResult } from '../../../src/trace/index.js';

const load = (f: string) => JSON.parse(readFileSync(new URL(`../../../topologies/${f}`, import.meta.url), 'utf8'));
const lab = compile(loadTopology(load('lab-two-hosts.json')));
const three = compile(loadTopology(load('two-tenants.json')));
const delivered = (r: TraceResult) => r.outcomes.filter((o) => o.kind === 'delivered').map((o) => (o.kind === 'delivered' ? o.endpoint : ''));
const cookieHi = (key: string) => `cookie=0x${fnv32(key).toString(16)}`;

t.test('two tenants with identical subnets never reach each other', async (t) => {
  const red = ['red/r1', 'red/r2'];
  const blue = ['blue/f1', 'blue/f2'];
  let n = 0;
  for (const from of red)
    for (const to of blue)
      for (const spec of [{ protocol: 'icmp' as const }, { protocol: 'tcp' as const, dport: 80 }, { protocol: 'udp' as const, dport: 53 }, { protocol: 'arp' as const }]) {
        for (const [a, b] of [
          [from, to],
          [to, from],
        ] as const) {
          const r = traceBetween(lab, a, b, spec);
          const other = a.startsWith('red') ? 'blue/' : 'red/';
          t.notOk(delivered(r).some((d) => d?.startsWith(other)), `${a} -> ${b} ${spec.protocol}: ${verdicts(r).join('; ')}`);
          n++;
        }
      }
  // same addresses, so the control case matters: inside red it works
  t.same(delivered(traceBetween(lab, 'red/r1', 'red/r2', { protocol: 'tcp', dport: 80 })), ['red/r2']);
  t.ok(n >= 32);
});

t.test('a deny policy drops at the ingress ACL, by that policy\'s flow', async (t) => {
  const r = traceBetween(lab, 'blue/f1', 'blue/b2', { protocol: 'udp', dport: 53 });
  t.same(delivered(r), []);
  const drop = r.outcomes[0]!;
  t.equal(drop.kind, 'dropped');
  if (drop.kind === 'dropped') {
    t.equal(drop.table, 10);
    t.equal(drop.host, 'host1');
    t.ok(drop.flow!.startsWith(cookieHi('policy:blue/no-udp-to-back')), drop.flow ?? '');
  }
  // tenant default deny: back -> front on tcp/80 matches no policy
  const d = traceBetween(lab, 'blue/b1', 'blue/f1', { protocol: 'tcp', dport: 80 });
  t.same(delivered(d), []);
  t.match(verdicts(d)[0], /table 10 .*tcp|table 10/);
  t.ok(d.outcomes[0]!.kind === 'dropped' && d.outcomes[0]!.flow!.startsWith(cookieHi('tenant:blue')));
  // and red's deny on telnet
  t.same(delivered(traceBetween(lab, 'red/r1', 'red/r2', { protocol: 'tcp', dport: 23 })), []);
});

t.test('routed traffic arrives with TTL-1 and rewritten MACs', async (t) => {
  const m = lab.model;
  const f1 = findEndpoint(m, 'blue/f1');
  const b2 = findEndpoint(m, 'blue/b2');
  const r = traceBetween(lab, 'blue/f1', 'blue/b2', { protocol: 'tcp', dport: 8085, ttl: 64 });
  t.same(delivered(r), ['blue/b2'], formatTrace(r));
  const o = r.outcomes[0]!;
  if (o.kind === 'delivered') {
    t.equal(o.host, 'host2');
    t.equal(o.fields.get('nw_ttl'), 63n);
    t.equal(o.fields.get('dl_src'), BigInt('0x' + b2.network.gwMac.replace(/:/g, '')), 'eth_src = gateway MAC of the destination network');
    t.equal(o.fields.get('dl_dst'), BigInt('0x' + b2.mac.replace(/:/g, '')), 'eth_dst = destination MAC');
    t.equal(o.fields.get('nw_src'), BigInt(f1.ip!));
  }
  t.ok(r.steps.some((s) => s.table === 30 && s.flow?.includes('dec_ttl')));
  // TTL 1 is dropped when routed
  const r1 = traceBetween(lab, 'blue/f1', 'blue/b2', { protocol: 'tcp', dport: 80, ttl: 1 });
  t.same(delivered(r1), []);
  t.match(verdicts(r1)[0], /TTL exceeded/);
  // same network: not routed, TTL kept
  const s = traceBetween(lab, 'blue/f1', 'blue/f2', { protocol: 'tcp', dport: 22 });
  t.same(delivered(s), ['blue/f2']);
  t.equal(s.outcomes[0]!.kind === 'delivered' && s.outcomes[0]!.fields.get('nw_ttl'), 64n);
});

t.test('a spoofed source is dropped at port security', async (t) => {
  const m = lab.model;
  const f2 = findEndpoint(m, 'blue/f2');
  for (const [what, set] of [
    ['IP', { nw_src: BigInt(f2.ip!) }],
    ['MAC', { dl_src: BigInt('0x' + f2.mac.replace(/:/g, '')) }],
  ] as const) {
    const r = traceBetween(lab, 'blue/f1', 'blue/b2', { protocol: 'tcp', dport: 80, set });
    t.same(delivered(r), [], `spoofed ${what}`);
    t.match(verdicts(r)[0], /host1 at table 5 \(port_security\): dropped by flow .*priority=0 actions=drop/);
  }
  const arp = traceBetween(lab, 'blue/f1', 'blue/f2', { protocol: 'arp', set: { arp_spa: BigInt(f2.ip!) } });
  t.same(delivered(arp), []);
  t.match(verdicts(arp)[0], /table 5/);
});

t.test('broadcast reaches exactly the hosts that have the network', async (t) => {
  const m = three.model;
  const web1 = findEndpoint(m, 'acme/web-1');
  const tracer = new Tracer(three);
  const port = three.ctx.placement.hosts.host1!.ports['acme/web-1']!;
  // ARP for an address nobody has: flooded
  const h = headersBetween(web1, findEndpoint(m, 'acme/web-2'), { protocol: 'arp', set: { arp_tpa: BigInt(web1.ip! + 100) } });
  const r = tracer.trace('host1', port, h);
  t.same(delivered(r), ['acme/web-2'], formatTrace(r));
  t.same([...new Set(r.steps.map((s) => s.host))].sort(), ['host1', 'host2'], 'host3 (no acme/web endpoint) never sees it');
  // globex/web lives on host1 and host3
  const g1 = findEndpoint(m, 'globex/web-1');
  const gp = three.ctx.placement.hosts.host1!.ports['globex/web-1']!;
  const gb = tracer.trace('host1', gp, headersBetween(g1, findEndpoint(m, 'globex/web-2'), { protocol: 'arp', set: { arp_tpa: BigInt(g1.ip! + 100) } }));
  t.same(delivered(gb), ['globex/web-2']);
  t.same([...new Set(gb.steps.map((s) => s.host))].sort(), ['host1', 'host3']);
  // an IP broadcast too
  const ipb = tracer.trace('host1', port, headersBetween(web1, findEndpoint(m, 'acme/web-2'), { protocol: 'icmp', set: { dl_dst: 0xffffffffffffn, nw_dst: 0x0a0001ffn } }));
  t.same(delivered(ipb), ['acme/web-2']);
});

t.test('ARP for a known address is answered by the switch', async (t) => {
  const r = traceBetween(lab, 'blue/f1', 'blue/f2', { protocol: 'arp' });
  t.same(delivered(r), ['blue/f1'], 'reply goes back out of the in_port');
  const o = r.outcomes[0]!;
  const f2 = findEndpoint(lab.model, 'blue/f2');
  if (o.kind === 'delivered') {
    t.equal(o.fields.get('arp_op'), 2n);
    t.equal(o.fields.get('arp_spa'), BigInt(f2.ip!));
    t.equal(o.fields.get('arp_sha'), BigInt('0x' + f2.mac.replace(/:/g, '')));
  }
  // and the gateway
  const f1 = findEndpoint(lab.model, 'blue/f1');
  const gw = new Tracer(lab).trace('host1', lab.ctx.placement.hosts.host1!.ports['blue/f1']!, headersBetween(f1, f1, { protocol: 'arp', set: { arp_tpa: BigInt(f1.network.v4!.gateway) } }));
  t.equal(gw.outcomes[0]!.kind === 'delivered' && gw.outcomes[0]!.fields.get('dl_src'), BigInt('0x' + f1.network.gwMac.replace(/:/g, '')));
});

t.test('allow-related: replies pass, new connections the other way do not', async (t) => {
  const tracer = new Tracer(lab);
  t.same(delivered(traceBetween(lab, 'blue/f2', 'blue/b1', { protocol: 'tcp', sport: 40001, dport: 80 }, tracer)), ['blue/b1']);
  const reply = traceBetween(lab, 'blue/b1', 'blue/f2', { protocol: 'tcp', sport: 80, dport: 40001 }, tracer);
  t.same(delivered(reply), ['blue/f2'], formatTrace(reply));
  t.ok(reply.steps.some((s) => s.note?.includes('est|rpl|trk')), 'reply is +est+rpl');
  const fresh = traceBetween(lab, 'blue/b1', 'blue/f2', { protocol: 'tcp', sport: 80, dport: 40001 });
  t.same(delivered(fresh), [], 'without the forward connection it is new, and denied');
});

t.test('trace output and errors', async (t) => {
  const r = traceBetween(lab, 'blue/f1', 'blue/b2', { protocol: 'tcp', dport: 80 });
  const s = formatTrace(r);
  t.match(s, /== host1/);
  t.match(s, /== host2/);
  t.match(s, /30 l3_route: /);
  t.match(s, /verdict:\n  delivered to blue\/b2 on host2/);
  t.throws(() => traceBetween(lab, 'blue/nope', 'blue/b2'), /unknown endpoint/);
  t.throws(() => new Tracer(lab).trace('host9', 1, new Map()), /unknown host/);
  const p = defaultPlacement(lab.model);
  delete p.hosts.host1!.ports['blue/f1'];
  t.throws(() => traceBetween(compile(lab.model, p), 'blue/f1', 'blue/b2'), /no port/);
  // a packet from an unknown port misses table 0
  const miss = new Tracer(lab).trace('host1', 4242, new Map([['dl_type', 0x800n]]));
  t.match(verdicts(miss)[0], /table 0 \(classify\): dropped by flow .*priority=0 actions=drop/);
});
