import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { loadTopology, pointer, TopologyError, validate } from '../../../src/model/index.js';
import { schemaText, SCHEMA_PATH } from '../../../scripts/gen-schema.js';

const topoDir = new URL('../../../topologies/', import.meta.url);
const corpusDir = new URL('../../fixtures/invalid-topologies/', import.meta.url);
const examples = readdirSync(topoDir).filter((f) => f.endsWith('.json') && f !== 'schema.json');

t.test('every example topology validates', async (t) => {
  t.ok(examples.length >= 2, 'there are examples');
  for (const f of examples) {
    const r = validate(JSON.parse(readFileSync(new URL(f, topoDir), 'utf8')));
    t.ok(r.ok, f);
    if (!r.ok) t.comment(JSON.stringify(r.errors));
  }
});

t.test('topologies/schema.json equals the schema generated from zod', async (t) => {
  t.equal(readFileSync(SCHEMA_PATH, 'utf8'), schemaText());
});

t.test('invalid-topology corpus: exact errors for each document', async (t) => {
  const files = readdirSync(corpusDir).filter((f) => f.endsWith('.json')).sort();
  t.ok(files.length >= 40, `${files.length} documents`);
  for (const f of files) {
    const c = JSON.parse(readFileSync(new URL(f, corpusDir), 'utf8')) as { description: string; document: unknown; errors: unknown[] };
    const r = validate(c.document);
    t.notOk(r.ok, `${f} is rejected`);
    if (!r.ok) t.same(r.errors, c.errors, `${f}: ${c.description}`);
  }
});

t.test('overlapping subnets across tenants are legal', async (t) => {
  const doc = {
    hosts: [{ name: 'h1', underlayIp: '198.51.100.1', ovsdb: 'tcp:192.0.2.1:6640' }],
    tenants: ['a', 'b'].map((name) => ({ name, networks: [{ name: 'n', subnet: '10.0.0.0/24' }], endpoints: [{ name: 'e', network: 'n', host: 'h1', ip: '10.0.0.5' }] })),
  };
  const r = validate(doc);
  t.ok(r.ok);
  if (r.ok) t.not(r.model.tenants[0]!.networks[0]!.vni, r.model.tenants[1]!.networks[0]!.vni, 'distinct VNIs');
});

t.test('loadTopology throws a typed error listing every issue; pointers escape ~ and /', async (t) => {
  t.throws(() => loadTopology({ hosts: [{ name: 'X' }] }), TopologyError);
  // (was a try/catch that passed when nothing was thrown)
  let caught: unknown;
  try {
    loadTopology({ tenants: [{ name: 'a', networks: [{ name: 'n' }] }] });
  } catch (e) {
    caught = e;
  }
  t.ok(caught instanceof TopologyError, 'throws a TopologyError');
  t.equal((caught as TopologyError).code, 'ETOPOLOGY');
  t.same((caught as TopologyError).issues, [{ path: '/tenants/0/networks/0', message: 'network needs a subnet or subnet6' }]);
  t.match((caught as TopologyError).message, /\/tenants\/0\/networks\/0: network needs/);
  t.equal(pointer(['a/b', 'c~d', 0]), '/a~1b/c~0d/0');
  t.same(validate(null), { ok: false, errors: [{ path: '', message: 'must be an object' }] });
});

t.test('resolved model: sorted, defaults, gateway MAC from VNI, IPv6', async (t) => {
  const m = loadTopology(JSON.parse(readFileSync(new URL('two-tenants.json', topoDir), 'utf8')));
  t.same(m.hosts.map((h) => h.name), ['host1', 'host2', 'host3']);
  const acme = m.tenants.find((x) => x.name === 'acme')!;
  t.same(acme.networks.map((n) => n.name), ['db', 'web']);
  const web = acme.networks.find((n) => n.name === 'web')!;
  t.equal(web.vni, 1001);
  t.equal(web.gwMac, '0e:00:00:00:03:e9');
  t.equal(acme.networks.find((n) => n.name === 'db')!.v4!.gateway, (10 << 24) + (2 << 8) + 254);
  t.ok(web.routed);
  t.equal(m.alloc.ip['acme/web-1'], '10.0.1.10');
  t.equal(m.alloc.mac['acme/db-1'], '02:00:00:00:02:10');
  t.ok(m.alloc.ip6['acme/web-2']!.startsWith('fd00:1::'));
});
