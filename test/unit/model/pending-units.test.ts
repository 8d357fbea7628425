/**
 * Chains and policies may name unit instances the scheduler has not placed yet:
 * the reference selects nothing until the instance is an endpoint (no error), and
 * the chain compiles once it is. A name no unit can take stays an error.
 */
import t from 'tap';
import { pendingUnitEndpoints, validate, Topology } from '../../../src/model/index.js';
import { effectiveDoc, endpointName, globalId, instanceIds } from '../../../src/scheduler/index.js';

const hosts = [
  { name: 'host1', underlayIp: '192.0.2.1', ovsdb: 'tcp:198.51.100.1:6640' },
  { name: 'host2', underlayIp: '192.0.2.2', ovsdb: 'tcp:198.51.100.2:6640' },
];
const doc = (extra: { to?: string[]; policyTo?: string[] } = {}) => ({
  version: 1,
  hosts,
  tenants: [
    {
      name: 'acme',
      networks: [{ name: 'db', subnet: '10.0.1.0/24' }],
      endpoints: [{ name: 'client', network: 'db', host: 'host1' }],
      chains: [{ name: 'c', from: { endpoints: ['client'] }, to: { endpoints: extra.to ?? ['db'] }, protocol: 'tcp', ports: [5432], hops: [{ service: 'fw' }] }],
      policies: [{ name: 'p', from: { endpoints: ['client'] }, to: { endpoints: extra.policyTo ?? ['web-2'] }, action: 'allow' }],
    },
  ],
  units: [
    { name: 'db', tenant: 'acme', network: 'db', command: 'sleep infinity' },
    { name: 'fw', tenant: 'acme', network: 'db', command: 'sleep infinity', services: [{ name: 'fw', port: 9000 }] },
    { name: 'web@1..2', tenant: 'acme', network: 'db', command: 'sleep infinity' },
    { name: 'rep', tenant: 'acme', network: 'db', command: 'sleep infinity', replicas: 2 },
    { name: 'm', tenant: 'acme', network: 'db', command: 'sleep infinity', global: true },
  ],
});

t.test('names are the scheduler\'s endpoint names of every instance', async (t) => {
  const parsed = Topology.parse(doc());
  const names = pendingUnitEndpoints(parsed).get('acme')!;
  const expected = [
    ...instanceIds({ name: 'db', replicas: 1 }),
    ...instanceIds({ name: 'fw', replicas: 1 }),
    ...instanceIds({ name: 'web@1', replicas: 1 }),
    ...instanceIds({ name: 'web@2', replicas: 1 }),
    ...instanceIds({ name: 'rep', replicas: 2 }),
    ...hosts.map((h) => globalId('m', h.name)),
  ].map(endpointName);
  t.same([...names].sort(), expected.sort());
});

t.test('before placement: references to unplaced instances validate, the chain waits', async (t) => {
  const v = validate(doc());
  t.ok(v.ok, v.ok ? 'valid' : JSON.stringify(v.errors));
  if (v.ok) {
    t.same(v.model.tenants[0]!.chains, [], 'no chain compiled while its destination is not placed');
    t.same(v.model.tenants[0]!.waitingChains, [{ name: 'c', path: '/tenants/0/chains/0', waitingFor: ['db'] }], 'reported as waiting for db');
  }
});

t.test('a hop naming an unplaced instance: the whole chain waits, even with its destination placed', async (t) => {
  const d = doc();
  d.tenants[0]!.chains[0]!.hops = [{ instances: ['fw'] }] as never;
  const eff = effectiveDoc(d, { assignments: [{ id: 'db', unit: 'db', host: 'host2' }] });
  const v = validate(eff.doc);
  t.ok(v.ok, v.ok ? 'valid' : JSON.stringify(v.errors));
  if (!v.ok) return;
  t.same(v.model.tenants[0]!.chains, [], 'no partly steered chain (its only hop would be empty)');
  t.same(v.model.tenants[0]!.waitingChains?.[0]?.waitingFor, ['fw']);
});

t.test('a name no unit takes is still an unknown endpoint', async (t) => {
  const v = validate(doc({ to: ['dbx'], policyTo: ['web-3'] }));
  t.notOk(v.ok);
  if (!v.ok) {
    t.ok(v.errors.some((e) => e.path === '/tenants/0/chains/0/to/endpoints/0' && /unknown endpoint "dbx"/.test(e.message)), 'chain');
    t.ok(v.errors.some((e) => e.path === '/tenants/0/policies/0/to/endpoints/0' && /unknown endpoint "web-3"/.test(e.message)), 'policy');
  }
});

t.test('once placed, the chain compiles with the registered-or-labelled service hop', async (t) => {
  const eff = effectiveDoc(doc(), { assignments: [{ id: 'db', unit: 'db', host: 'host2' }, { id: 'fw', unit: 'fw', host: 'host2' }] });
  t.same(eff.issues, []);
  const v = validate(eff.doc);
  t.ok(v.ok, v.ok ? 'valid' : JSON.stringify(v.errors));
  if (!v.ok) return;
  t.equal(v.model.tenants[0]!.chains.length, 1);
  const c = v.model.tenants[0]!.chains[0]!;
  t.same(c.hops[0]!.instances.map((i) => i.ingress.name), ['fw'], 'the fw unit (label service=fw) is the hop');
});
