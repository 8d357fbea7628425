/**
 * Golden output: the canonical flow and group text of two fixed generated topologies,
 * as sha256 digests. Performance work on the compiler (sharing objects, caching,
 * ordering) must not change a byte of what it emits; these digests were computed
 * with the compiler before such work (commit 4a9f339) and any change to them must
 * be a deliberate change of the pipeline, with the new digests explained in its commit.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { loadTopology, type TopologyInput } from '../../../src/model/index.js';
import { formatFlow, formatGroup } from '../../../src/openflow/index.js';
import { compile, defaultPlacement, IncrementalCompiler, type CompileResult } from '../../../src/pipeline/index.js';

/** The compile benchmark's topology (scripts/bench/compile.ts), scaled down: 40 tenants on 20 hosts. */
function benchLike(tenants: number, hostCount: number): TopologyInput {
  const hosts = Array.from({ length: hostCount }, (_, i) => ({ name: `h${i}`, underlayIp: `198.51.100.${i + 1}`, ovsdb: `tcp:192.0.2.${i + 1}:6640`, datapathType: 'netdev' as const }));
  return {
    hosts,
    tenants: Array.from({ length: tenants }, (_, ti) => ({
      name: `t${ti}`,
      networks: Array.from({ length: 10 }, (_, k) => ({ name: `n${k}`, subnet: `10.${k}.0.0/24` })),
      router: {},
      endpoints: Array.from({ length: 100 }, (_, j) => ({ name: `e${j}`, network: `n${j % 10}`, host: `h${(ti * 3 + (j % 3)) % hostCount}`, labels: { role: j % 2 ? 'web' : 'db' } })),
      policies: [
        { name: 'web-db', from: { labels: { role: 'web' } }, to: { networks: ['n1'] }, protocol: 'tcp' as const, ports: [5432], action: 'allow' as const },
        { name: 'icmp', protocol: 'icmp' as const, action: 'allow' as const },
      ],
      defaultPolicy: 'deny' as const,
    })),
  };
}

/** Everything else the compiler does: IPv6 (dual-stack and v6-only), partial routers, port ranges, endpoint/label/CIDR selectors, default allow, symmetric and fail-open chains. */
function mixed(tenants: number): TopologyInput {
  const hosts = Array.from({ length: 7 }, (_, i) => ({ name: `m${i}`, underlayIp: `198.51.100.${i + 1}`, ovsdb: `tcp:192.0.2.${i + 1}:6640`, datapathType: 'netdev' as const }));
  return {
    hosts,
    tenants: Array.from({ length: tenants }, (_, ti) => {
      const nets = [
        { name: 'a', subnet: '10.1.0.0/24', subnet6: `fd00:${ti.toString(16)}:1::/64` },
        { name: 'b', subnet: '10.2.0.0/24' },
        { name: 'c', subnet6: `fd00:${ti.toString(16)}:3::/64` },
        { name: 'd', subnet: '10.4.0.0/23' },
      ];
      return {
        name: `x${ti}`,
        networks: nets,
        router: ti % 2 ? { networks: ['a', 'b', 'd'] } : {},
        endpoints: Array.from({ length: 24 }, (_, j) => ({
          name: `e${j}`,
          network: nets[j % 4]!.name,
          host: `m${(ti + j) % 7}`,
          labels: { role: ['web', 'db', 'app'][j % 3]!, ...(j === 17 || j === 21 ? { service: 'fw' } : {}) },
        })),
        policies: [
          { name: 'p1', from: { labels: { role: 'web' } }, to: { networks: ['b'] }, protocol: 'tcp' as const, ports: [5432, { from: 8000, to: 8191 }, { from: 1000, to: 1025 }], action: 'allow' as const },
          { name: 'p2', from: { endpoints: ['e1', 'e5'] }, to: { labels: { role: 'db' } }, protocol: 'udp' as const, ports: [53], action: 'deny' as const },
          { name: 'p3', from: { networks: ['a'] }, to: { cidrs: ['192.0.2.0/24', 'fd99::/48'] }, protocol: 'any' as const, action: 'allow' as const },
          { name: 'p4', from: { cidrs: ['10.1.0.0/25'] }, to: { endpoints: ['e2'] }, protocol: 'icmp' as const, action: 'allow' as const },
          { name: 'p5', action: 'deny' as const },
        ],
        defaultPolicy: ti % 3 ? ('deny' as const) : ('allow' as const),
        chains:
          ti % 2
            ? []
            : [
                { name: 'c1', from: { endpoints: ['e1'] }, to: { endpoints: ['e9'] }, protocol: 'tcp' as const, ports: [80, { from: 443, to: 444 }], hops: [{ instances: ['e17', { endpoint: 'e21', weight: 2 }] }], symmetric: true },
                { name: 'c2', from: { endpoints: ['e5'] }, to: { endpoints: ['e13'] }, protocol: 'any' as const, hops: [{ service: 'fw' }], failMode: 'open' as const },
              ],
      };
    }),
  };
}

function digest(r: CompileResult, hosts: string[]): { flows: number; sha256: string } {
  const h = createHash('sha256');
  let flows = 0;
  for (const name of hosts) {
    const hr = r.host(name);
    h.update(`## ${name}\n`);
    for (const f of hr.flows) h.update(formatFlow(f) + '\n');
    for (const g of hr.groups) h.update(formatGroup(g) + '\n');
    flows += hr.flows.length;
  }
  return { flows, sha256: h.digest('hex') };
}

t.test('full compile of the generated topologies is byte-identical to the reference', async (t) => {
  for (const [name, doc, want] of [
    ['bench-like, 40 tenants on 20 hosts', benchLike(40, 20), { flows: 76080, sha256: 'cc0ddf76f56a7eb045a16abb5a731fb3ab66829fd667036d9b5be4feba19fd89' }],
    ['mixed, 12 tenants on 7 hosts', mixed(12), { flows: 11394, sha256: 'c69957850e02ebded1b2238a5b1a6e9fe7c63549d998e2ced2218bf578ea3010' }],
  ] as const) {
    const m = loadTopology(doc);
    const r = compile(m, defaultPlacement(m));
    t.same(digest(r, m.hosts.map((h) => h.name)), want, name);
  }
});

t.test('incremental changes land on the same bytes as before', async (t) => {
  const m = loadTopology(benchLike(12, 8));
  const r = compile(m, defaultPlacement(m));
  const inc = new IncrementalCompiler(r);
  for (let i = 0; i < 12; i++) inc.apply({ op: 'addEndpoint', tenant: `t${i % 12}`, endpoint: { name: `x${i}`, network: `n${(i * 7) % 10}`, host: `h${(i * 3 + (i % 3)) % 8}`, labels: { role: i % 2 ? 'web' : 'db' } } });
  inc.apply({ op: 'removeEndpoint', tenant: 't3', name: 'e4' });
  t.same(digest(r, m.hosts.map((h) => h.name)), { flows: 23021, sha256: '7963a07e53f471731ded14b0560210ac42fa8262ce2a10a1895087cc2b3248f0' });
});
