import t from 'tap';
import { validate, type ValidationIssue } from '../../../src/model/index.js';

const hosts = [
  { name: 'h1', underlayIp: '192.0.2.1', ovsdb: 'unix:/x' },
  { name: 'h2', underlayIp: '192.0.2.2', ovsdb: 'unix:/x' },
];
function doc(chains: unknown[], extra: Record<string, unknown> = {}, endpoints?: unknown[]): unknown {
  return {
    hosts,
    tenants: [
      {
        name: 'acme',
        networks: [
          { name: 'net', subnet: '10.1.0.0/24' },
          { name: 'other', subnet: '10.2.0.0/24' },
        ],
        endpoints: endpoints ?? [
          { name: 'client', network: 'net', host: 'h1' },
          { name: 'server', network: 'net', host: 'h1' },
          { name: 'fw', network: 'net', host: 'h2' },
          { name: 'fw-b', network: 'net', host: 'h2' },
          { name: 'ids', network: 'net', host: 'h2', labels: { service: 'ids' } },
          { name: 'far', network: 'other', host: 'h2' },
        ],
        chains,
        ...extra,
      },
      { name: 'beta', networks: [{ name: 'net', subnet: '10.1.0.0/24' }], endpoints: [{ name: 'vpn', network: 'net', host: 'h1', labels: { service: 'vpn' } }] },
    ],
  };
}
const base = { name: 'web', from: { endpoints: ['client'] }, to: { endpoints: ['server'] }, protocol: 'tcp', ports: [80], hops: [{ instances: ['fw'] }, { service: 'ids' }] };
const errs = (d: unknown): ValidationIssue[] => {
  const r = validate(d);
  return r.ok ? [] : r.errors;
};

t.test('a valid chain resolves: instances, service hop, defaults', async (t) => {
  const r = validate(doc([{ ...base, hops: [{ instances: ['fw', { endpoint: 'fw-b', weight: 3 }] }, { service: 'ids' }] }]));
  t.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  if (!r.ok) return;
  const c = r.model.tenants[0]!.chains[0]!;
  t.equal(c.id, 'acme/web');
  t.equal(c.network.name, 'net');
  t.same(c.hops[0]!.instances.map((i) => [i.ingress.name, i.egress.name, i.weight]), [['fw', 'fw', 1], ['fw-b', 'fw-b', 3]]);
  t.same(c.hops[1]!.instances.map((i) => i.ingress.name), ['ids']);
  t.equal(c.hops[1]!.service, 'ids');
  t.equal(c.symmetric, false);
  t.equal(c.failMode, 'closed');
  t.same(c.ports, [[80, 80]]);
  const pair = validate(doc([{ ...base, hops: [{ instances: [{ ingress: 'fw', egress: 'fw-b' }] }] }]));
  t.ok(pair.ok, 'an ingress/egress pair');
  if (pair.ok) t.same(pair.model.tenants[0]!.chains[0]!.hops[0]!.instances.map((i) => [i.ingress.name, i.egress.name]), [['fw', 'fw-b']]);
});

t.test('unknown hops and instances, with their paths', async (t) => {
  t.same(errs(doc([{ ...base, hops: [{ instances: ['nope'] }] }])), [{ path: '/tenants/0/chains/0/hops/0/instances/0', message: 'unknown endpoint "nope" in tenant "acme"' }]);
  // A service nobody labelled is valid: its instances may register in the registry later (the hop is empty until then).
  const dpi = validate(doc([{ ...base, hops: [{ service: 'dpi' }] }]));
  t.ok(dpi.ok, 'a service hop without a labelled endpoint is valid');
  if (dpi.ok) t.same(dpi.model.tenants[0]!.chains[0]!.hops.map((h) => [h.service, h.instances.length]), [['dpi', 0]], 'an empty hop, named by its service');
  if (dpi.ok) t.equal(dpi.model.tenants[0]!.chains[0]!.network.name, 'net', 'the network of its destinations');
  t.same(errs(doc([{ ...base, to: {}, hops: [{ service: 'dpi' }] }])), [
    { path: '/tenants/0/chains/0/to', message: "no hop has an instance yet (services nobody labelled) and /to selects every endpoint: name the destinations so the chain's network is known" },
  ]);
  t.same(errs(doc([{ ...base, hops: [{}] }])), [{ path: '/tenants/0/chains/0/hops/0', message: 'a hop needs either "instances" or "service"' }]);
  t.same(errs(doc([{ ...base, hops: [{ instances: ['fw'], service: 'ids' }] }])), [{ path: '/tenants/0/chains/0/hops/0', message: 'a hop needs either "instances" or "service"' }]);
  t.same(errs(doc([{ ...base, hops: [{ instances: [{ ingress: 'fw' }] }] }])), [{ path: '/tenants/0/chains/0/hops/0/instances/0', message: 'an instance needs "endpoint", or both "ingress" and "egress"' }]);
  t.same(errs(doc([{ ...base, hops: [{ instances: [{ endpoint: 'fw', egress: 'fw-b' }] }] }])), [{ path: '/tenants/0/chains/0/hops/0/instances/0', message: 'give "endpoint" or an "ingress"/"egress" pair, not both' }]);
  t.same(errs(doc([{ ...base, to: { endpoints: ['ghost'] } }])).map((e) => e.path), ['/tenants/0/chains/0/to/endpoints/0']);
  t.same(errs(doc([{ ...base, hops: [] }])).map((e) => e.path), ['/tenants/0/chains/0/hops'], 'structural: at least one hop');
  t.same(errs(doc([{ ...base, failMode: 'ajar' }])).map((e) => e.path), ['/tenants/0/chains/0/failMode']);
});

t.test('loops: an instance that is the destination, or appears twice', async (t) => {
  t.same(errs(doc([{ ...base, to: { endpoints: ['server', 'fw'] } }])), [{ path: '/tenants/0/chains/0/hops/0/instances/0', message: 'instance "fw" is also a destination of the chain (/to): a loop' }]);
  t.same(errs(doc([{ ...base, hops: [{ instances: ['fw'] }, { instances: ['fw-b', 'fw'] }] }])), [
    { path: '/tenants/0/chains/0/hops/1/instances/1', message: 'endpoint "fw" appears twice in the chain (first at /tenants/0/chains/0/hops/0/instances/0): a loop' },
  ]);
  t.same(errs(doc([{ ...base, hops: [{ instances: ['ids'] }, { service: 'ids' }] }])).map((e) => e.path), ['/tenants/0/chains/0/hops/1/service'], 'a service hop resolving to an instance used before');
  t.same(errs(doc([{ ...base, to: {} }])).map((e) => e.message), ['instance "fw" is also a destination of the chain (/to): a loop', 'instance "ids" is also a destination of the chain (/to): a loop'], 'to: {} includes the instances');
});

t.test('classifiers that overlap in a tenant: both chains named', async (t) => {
  const other = { ...base, name: 'web2', ports: [{ from: 70, to: 90 }], hops: [{ instances: ['fw-b'] }] };
  t.same(errs(doc([base, other])), [
    { path: '/tenants/0/chains/1', message: 'classifier overlaps chain "web" (/tenants/0/chains/0): tcp port 80 from "client" to "server" matches both chains' },
  ]);
  t.same(errs(doc([base, { ...other, protocol: 'any', ports: undefined }])).map((e) => e.path), ['/tenants/0/chains/1'], 'any protocol overlaps tcp');
  t.same(errs(doc([base, { ...other, ports: [443] }])), [
    { path: '/tenants/0/chains/1', message: 'classifier overlaps chain "web" (/tenants/0/chains/0): tcp fragments (OVS sees no ports in them) from "client" to "server" matches both chains' },
  ], 'different ports between the same endpoints: their fragments cannot be told apart');
  t.same(errs(doc([base, { ...other, ports: [443], to: { endpoints: ['fw-b'] }, hops: [{ instances: ['ids'] }] }])).map((e) => e.message), [], 'different ports and destinations do not overlap');
  t.same(errs(doc([base, { ...other, protocol: 'udp', ports: [80] }])), [], 'different protocols do not overlap');
  t.same(errs(doc([base, { ...other, from: { endpoints: ['fw-b'] }, hops: [{ instances: ['ids'] }] }])).map((e) => e.message), [
    'classifier overlaps chain "web" (/tenants/0/chains/0) at the port of "ids" (an instance of hop 0 of this chain, an instance of hop 1 of "web"): tcp to port 80 to "server" entering from "ids" matches both chains, which steer it differently',
  ], 'different sources, but both chains classify what leaves ids for server:80');
});

t.test('chains do not cross tenants or networks', async (t) => {
  t.same(errs(doc([{ ...base, hops: [{ instances: ['beta/vpn'] }] }])), [{ path: '/tenants/0/chains/0/hops/0/instances/0', message: 'chains cannot cross tenants: "beta/vpn" is in tenant "beta", the chain in "acme"' }]);
  t.same(errs(doc([{ ...base, hops: [{ instances: ['acme/fw'] }] }])), [], 'its own tenant spelt out is fine');
  t.same(errs(doc([{ ...base, hops: [{ service: 'vpn' }] }])), [], "a service labelled only in another tenant: this tenant's hop is empty (never that tenant's endpoints)");
  t.same(errs(doc([{ ...base, hops: [{ instances: ['fw', 'far'] }] }])).map((e) => e.path), ['/tenants/0/chains/0/hops/0/instances/1'], 'instances on two networks');
  t.same(errs(doc([{ ...base, to: { endpoints: ['far'] } }])).map((e) => e.path), ['/tenants/0/chains/0/to'], 'a destination on another network');
  t.same(errs(doc([{ ...base, from: { cidrs: ['10.0.0.0/8'] } }])).map((e) => e.path), ['/tenants/0/chains/0/from/cidrs']);
  t.same(errs(doc([{ ...base, protocol: 'icmp' }])).map((e) => e.path), ['/tenants/0/chains/0/ports']);
  t.same(errs(doc([base, base])).map((e) => e.path), ['/tenants/0/chains/1/name', '/tenants/0/chains/1'], 'duplicate name (and, being equal, overlapping)');
});

t.test('a symmetric chain\'s replies overlapping another chain\'s classifier', async (t) => {
  const back = { name: 'back', from: { endpoints: ['server'] }, to: { endpoints: ['client'] }, protocol: 'tcp', ports: [22], hops: [{ instances: ['fw-b'] }] };
  t.same(errs(doc([base, back])), [], 'not symmetric: server -> client is not classified by "web"');
  t.same(errs(doc([{ ...base, symmetric: true }, back])), [
    { path: '/tenants/0/chains/1', message: 'classifier overlaps the replies of symmetric chain "web" (/tenants/0/chains/0): tcp from "server" to "client" matches this chain and the replies of "web"' },
  ]);
  t.same(errs(doc([back, { ...base, symmetric: true }])).map((e) => e.message), ['classifier overlaps the replies of symmetric chain "web" (/tenants/0/chains/1): tcp from "server" to "client" matches chain "back" and the replies of "web"']);
  t.same(errs(doc([{ ...base, symmetric: true }, { ...back, protocol: 'udp' }])), [], 'other protocol');
});

t.test('classifiers that overlap at a port the chains share (instances, sources, destinations)', async (t) => {
  const eps = [
    { name: 'web', network: 'net', host: 'h1' },
    { name: 'app', network: 'net', host: 'h1' },
    { name: 'db', network: 'net', host: 'h1' },
    { name: 'fw', network: 'net', host: 'h2' },
    { name: 'ids', network: 'net', host: 'h2' },
  ];
  const a = { name: 'a', from: { endpoints: ['web'] }, to: { endpoints: ['db'] }, protocol: 'tcp', ports: [80], hops: [{ instances: ['fw'] }, { instances: ['ids'] }] };
  const b = { name: 'b', from: { endpoints: ['app'] }, to: { endpoints: ['db'] }, protocol: 'tcp', ports: [80], hops: [{ instances: ['fw'] }] };
  t.same(errs(doc([a, b], {}, eps)), [
    {
      path: '/tenants/0/chains/1',
      message: 'classifier overlaps chain "a" (/tenants/0/chains/0) at the port of "fw" (an instance of hop 0 of this chain, an instance of hop 0 of "a"): tcp to port 80 to "db" entering from "fw" matches both chains, which steer it differently',
    },
  ], 'an instance shared by two chains with the same destination and port (the reviewer\'s example)');
  t.same(errs(doc([a, { ...b, hops: [{ instances: ['ids'] }, { instances: ['fw'] }] }], {}, eps)).map((e) => e.path), ['/tenants/0/chains/1'], 'reversed hop orders (would bounce fw <-> ids)');
  t.same(errs(doc([a, { ...b, ports: [443] }], {}, eps)).map((e) => e.message), [
    'classifier overlaps chain "a" (/tenants/0/chains/0) at the port of "fw" (an instance of hop 0 of this chain, an instance of hop 0 of "a"): tcp fragments (OVS sees no ports in them) to "db" entering from "fw" matches both chains, which steer it differently',
  ], 'a shared instance, other ports, same destination: fragments leaving it cannot be told apart');
  t.same(errs(doc([a, { ...b, protocol: 'udp' }], {}, eps)), [], 'a shared instance, other protocol: told apart');
  t.same(errs(doc([a, { ...b, hops: [{ instances: ['fw2'] }] }], {}, [...eps, { name: 'fw2', network: 'net', host: 'h2' }])), [], 'same destination and port, other sources and instances: told apart');
  t.same(errs(doc([a, { ...b, to: { endpoints: ['web'] } }], {}, eps)), [], 'a shared instance, other destinations: told apart');
  t.same(errs(doc([a, { ...b, protocol: 'any', ports: undefined }], {}, eps)).map((e) => e.path), ['/tenants/0/chains/1'], 'a shared instance, any protocol');
  // fw is an instance of a and the source of c: a's "leaving fw to db tcp/80" and c's classifier at fw meet.
  const c = { name: 'c', from: { endpoints: ['fw'] }, to: { endpoints: ['db'] }, protocol: 'tcp', ports: [{ from: 1, to: 1024 }], hops: [{ instances: ['ids'] }] };
  t.same(errs(doc([a, c], {}, eps)).map((e) => e.message), [
    'classifier overlaps chain "a" (/tenants/0/chains/0) at the port of "fw" (a source of this chain, an instance of hop 0 of "a"): tcp to port 80 to "db" entering from "fw" matches both chains, which steer it differently',
  ], 'an instance that is another chain\'s source');
  t.same(errs(doc([a, { ...c, ports: [22], to: { endpoints: ['app'] } }], {}, eps)), [], 'an instance that is another chain\'s source, other destination');
  // Symmetric: a's replies db -> web enter from each instance's ingress (by source port 80);
  // d classifies fw -> web (tcp/8080) at fw: a reply from db:80 to web:8080 leaving fw matches both.
  const d = { name: 'd', from: { endpoints: ['fw'] }, to: { endpoints: ['web'] }, protocol: 'tcp', ports: [8080], hops: [{ instances: ['ids'] }] };
  t.same(errs(doc([a, d], {}, eps)), [], 'not symmetric: a classifies nothing to web at fw');
  t.same(errs(doc([{ ...a, symmetric: true }, d], {}, eps)).map((e) => e.message), [
    'classifier overlaps chain "a" (/tenants/0/chains/0) at the port of "fw" (a source of this chain, an instance of hop 0 (replies) of "a"): tcp from "db" to "web" entering from "fw" matches both chains, which steer it differently',
  ], 'symmetric: the replies at an instance\'s ingress meet another chain\'s source classifier');
  // Symmetric b's replies at its destination db's port vs a chain whose source is db.
  const e = { name: 'e', from: { endpoints: ['db'] }, to: { endpoints: ['app'] }, protocol: 'udp', hops: [{ instances: ['ids'] }] };
  t.same(errs(doc([{ ...b, symmetric: true }, e], {}, eps)), [], 'other protocol at the destination\'s port');
  t.same(errs(doc([{ ...b, symmetric: true }, { ...e, protocol: 'tcp' }], {}, eps)).map((x) => x.path), ['/tenants/0/chains/1'], 'the replies at the destination\'s port');
});

t.test('a chain\'s own port ranges must not overlap (the same flow twice)', async (t) => {
  t.same(errs(doc([{ ...base, ports: [80, { from: 70, to: 90 }] }])), [{ path: '/tenants/0/chains/0/ports/1', message: 'port range 70-90 overlaps /tenants/0/chains/0/ports/0' }]);
  t.same(errs(doc([{ ...base, ports: [80, 80] }])).map((e) => e.path), ['/tenants/0/chains/0/ports/1']);
  t.same(errs(doc([{ ...base, ports: [80, 443] }])), []);
});

t.test('no chain on a network with an IPv6 subnet (its classifiers are IPv4 only)', async (t) => {
  const d = doc([base]) as { tenants: { networks: Record<string, unknown>[] }[] };
  d.tenants[0]!.networks[0]!['subnet6'] = 'fd00:1::/64';
  t.same(errs(d), [
    {
      path: '/tenants/0/chains/0',
      message: 'network "net" has an IPv6 subnet (subnet6): chains steer IPv4 only, so IPv6 between the chained endpoints would pass no service function; put the chain on an IPv4-only network',
    },
  ]);
});

t.test('routed sources: another network the tenant router joins to the chain\'s, else an error with the path', async (t) => {
  const fromFar = { ...base, from: { endpoints: ['far'] } };
  const noRouter = errs(doc([fromFar]));
  t.same(noRouter.map((e) => e.path), ['/tenants/0/chains/0/from'], 'no router: rejected');
  t.match(noRouter[0]!.message, /source "far" is on network "other", which the tenant's router does not join to the chain's network "net"/);
  const r = validate(doc([fromFar], { router: {} }));
  t.ok(r.ok, 'with a router joining both networks: a routed source');
  if (r.ok) t.same(r.model.tenants[0]!.chains[0]!.network.name, 'net', 'the chain stays on its instances\' network');
  t.same(errs(doc([{ ...base, from: { networks: ['other'] } }], { router: { networks: ['net'] } })).map((e) => e.path), ['/tenants/0/chains/0/from'], 'a router that does not join the source\'s network: rejected');
  t.same(errs(doc([{ ...base, to: { endpoints: ['far'] } }], { router: {} })).map((e) => e.path), ['/tenants/0/chains/0/to'], 'destinations stay on the chain\'s network, router or not');
  // {} picks the chain's network only: a routed source must be named
  t.same(errs(doc([{ ...base, from: {} }], { router: {} })), [], 'from {} with a router: fine (the chain\'s network only)');
  // Overlap checks see routed sources: two chains taking "far" -> server tcp 80
  const two = errs(doc([fromFar, { ...fromFar, name: 'again', hops: [{ instances: ['fw-b'] }] }], { router: {} }));
  t.same(two.map((e) => e.path), ['/tenants/0/chains/1'], 'two chains classifying one routed source\'s traffic overlap');
  t.match(two[0]!.message, /from "far" to "server"/);
  // and the replies of a symmetric chain with a routed source against another chain's forward classifier
  const sym = errs(doc([{ ...fromFar, symmetric: true }, { ...base, name: 'back', from: { endpoints: ['server'] }, to: { endpoints: ['client'] }, hops: [{ instances: ['fw-b'] }] }], { router: {} }));
  t.same(sym, [], 'server -> client (same network) is not the routed chain\'s reply (server -> far)');
});
