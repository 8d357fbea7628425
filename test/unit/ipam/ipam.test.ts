import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  allocate,
  allocateBig,
  formatCidr6,
  formatIp6,
  formatMac,
  gatewayMac,
  in4,
  overlap4,
  overlap6,
  parseCidr4,
  parseCidr6,
  parseIp4,
  parseIp6,
  parseMac,
  probeSlot,
  usable4,
  usable6,
} from '../../../src/ipam/index.js';
import { loadTopology, type TopologyInput } from '../../../src/model/index.js';
import { bytesToMac, macToBytes, macToNumber, numberToMac } from '../../../src/util/mac.js';

const example = () => JSON.parse(readFileSync(new URL('../../../topologies/two-tenants.json', import.meta.url), 'utf8')) as TopologyInput & { tenants: { endpoints: unknown[]; networks: unknown[] }[] };

t.test('address helpers', async (t) => {
  t.equal(parseIp4('10.0.0.1'), 0x0a000001);
  t.equal(parseIp4('10.0.0.256'), undefined);
  t.equal(parseIp4('10.0.0.0/8'), undefined);
  t.same(parseCidr4('10.1.0.0/16'), { base: 0x0a010000, len: 16, hostBits: false });
  t.same(parseCidr4('10.1.0.1/16')!.hostBits, true);
  t.equal(parseCidr4('10.1.0.0'), undefined);
  t.equal(parseCidr4('10.1.0.0/40'), undefined);
  t.same(usable4({ base: 0, len: 24 }), [1, 254]);
  t.same(usable4({ base: 8, len: 31 }), [8, 9]);
  t.same(usable4({ base: 8, len: 32 }), [8, 8]);
  t.ok(in4({ base: 0x0a000000, len: 8 }, 0x0affffff));
  t.ok(overlap4({ base: 0x0a000000, len: 8 }, { base: 0x0a010000, len: 16 }));
  t.notOk(overlap4({ base: 0x0a000000, len: 16 }, { base: 0x0a010000, len: 16 }));
  const c6 = parseCidr6('fd00:1::/64')!;
  t.equal(formatCidr6(c6), 'fd00:1::/64');
  t.equal(parseCidr6('fd00:1::1/64')!.hostBits, true);
  t.equal(parseCidr6('zz::/64'), undefined);
  t.equal(parseIp6('nope'), undefined);
  t.equal(formatIp6(parseIp6('fd00::1')!), 'fd00::1');
  t.same(usable6(c6)[0], c6.base + 1n);
  t.ok(overlap6(c6, parseCidr6('fd00::/16')!));
  t.equal(formatMac(parseMac('0a:01:02:03:04:05')), '0a:01:02:03:04:05');
  t.equal(gatewayMac(0xabcdef), '0e:00:00:ab:cd:ef');
  t.equal(formatMac(0xffffffffffff), 'ff:ff:ff:ff:ff:ff');
  t.equal(formatMac(1), '00:00:00:00:00:01');
  t.ok(Number.isNaN(parseMac('nope')), 'not a MAC: NaN, which equals no allocated MAC');
});

t.test('one MAC helper for text, bytes and numbers (src/util/mac.ts)', async (t) => {
  t.same(macToBytes('0A:1:02:ff:00:9'), Uint8Array.of(0x0a, 1, 2, 0xff, 0, 9), 'any case, 1-2 digits (as ovs-ofctl accepts)');
  for (const bad of ['', '0a:01:02:03:04', '0a:01:02:03:04:05:06', '0a:01:02:03:04:0g', '0a-01-02-03-04-05', '100:01:02:03:04:05']) t.equal(macToBytes(bad), undefined, JSON.stringify(bad));
  t.equal(bytesToMac(Uint8Array.of(0x0a, 1, 2, 0xff, 0, 9)), '0a:01:02:ff:00:09');
  t.same(macToBytes('0A:01:02:fF:00:09'), Uint8Array.of(0x0a, 1, 2, 0xff, 0, 9), 'canonical length, mixed case');
  for (const bad of ['0a:01:02:03:04:0g', '0a:01:02:03:04-05', 'zz:01:02:03:04:05', '0a:01:02:03:04:/5', '0a:01:02:03:04:5:']) t.equal(macToBytes(bad), undefined, `17 chars, bad: ${bad}`);
  t.equal(macToNumber('0a:00:00:00:01:00'), 0x0a0000000100);
  t.equal(macToNumber('x'), undefined);
  t.equal(numberToMac(0x0a0000000100), '0a:00:00:00:01:00');
  for (const v of [0, 1, 0x0a0000000001, 0xffffffffffff, 2 ** 47 + 12345]) t.equal(macToNumber(numberToMac(v)), v, `round trip ${v}`);
});

t.test('probing is deterministic and uses the previous value first', async (t) => {
  t.equal(probeSlot('acme/web-1', 0, 254), probeSlot('acme/web-1', 0, 254));
  const taken = new Set<number>();
  const a = allocate('x', 10, 100, (v) => !taken.has(v))!;
  t.ok(a >= 10 && a < 110);
  taken.add(a);
  t.not(allocate('x', 10, 100, (v) => !taken.has(v)), a, 'probes past a taken slot');
  t.equal(allocate('y', 10, 100, () => true, 42), 42, 'previous kept');
  t.equal(allocate('y', 10, 100, (v) => v !== 42, 42, true), undefined, 'onlyPrevious: no probing');
  t.equal(allocate('z', 0, 4, (v) => v === 3), 3, 'dense range: linear scan finds the last slot');
  t.equal(allocate('z', 0, 4, () => false), undefined, 'full');
  t.equal(allocateBig('z', 0n, 4n, (v) => v === 2n), 2n);
  t.equal(allocateBig('z', 0n, 4n, () => false), undefined);
  t.equal(allocateBig('q', 0n, 1n << 64n, () => true, 7n), 7n);
  const big = probeSlot('k', 0, 2 ** 40);
  t.ok(Number.isInteger(big) && big < 2 ** 40);
});

t.test('adding an endpoint never renumbers another (with the previous allocation)', async (t) => {
  const doc = example();
  // a dense subnet makes collisions likely
  doc.tenants[0]!.networks = [{ name: 'web', subnet: '10.0.1.0/27' }, { name: 'db', subnet: '10.0.2.0/24' }];
  doc.tenants[0]!.endpoints = Array.from({ length: 20 }, (_, i) => ({ name: `e${i}`, network: 'web', host: 'host1' }));
  const before = loadTopology(doc);
  for (let k = 0; k < 8; k++) {
    const next = structuredClone(doc);
    next.tenants[0]!.endpoints.splice(k, 0, { name: `new${k}`, network: 'web', host: 'host2' });
    const after = loadTopology(next, { previous: before.alloc });
    for (const id of Object.keys(before.alloc.ip)) {
      t.equal(after.alloc.ip[id], before.alloc.ip[id], `${id} keeps its IP after adding new${k}`);
      t.equal(after.alloc.mac[id], before.alloc.mac[id]);
      t.equal(after.alloc.port[id], before.alloc.port[id]);
    }
    for (const id of Object.keys(before.alloc.vni)) t.equal(after.alloc.vni[id], before.alloc.vni[id]);
  }
  // removing one keeps the rest too
  const fewer = structuredClone(doc);
  fewer.tenants[0]!.endpoints.splice(3, 1);
  const after = loadTopology(fewer, { previous: before.alloc });
  for (const id of Object.keys(after.alloc.ip)) t.equal(after.alloc.ip[id], before.alloc.ip[id]);
});

t.test('allocation depends on ids, not on document order', async (t) => {
  const doc = example();
  const a = loadTopology(doc);
  const rev = structuredClone(doc);
  rev.tenants.reverse();
  for (const x of rev.tenants) x.endpoints.reverse();
  rev.hosts!.reverse();
  const b = loadTopology(rev);
  t.same(b.alloc, a.alloc);
  // every allocated IPv4 is inside its subnet and unique per network
  for (const tn of a.tenants)
    for (const n of tn.networks) {
      const ips = n.endpoints.map((e) => e.ip);
      t.equal(new Set(ips).size, ips.length);
      for (const ip of ips) if (n.v4) t.ok(ip !== undefined && in4(n.v4, ip) && ip !== n.v4.gateway);
    }
});
