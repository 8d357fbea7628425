/** Unit instances as endpoints: names, the effective document, clashes with paths, IPAM stability across hosts. */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { validate } from '../../../src/model/index.js';
import { agentHostIssues, currentOf, effectiveDoc, endpointName, oversizedUnits, place, samePlacement, schedulingInput, type AgentRegistration } from '../../../src/scheduler/index.js';

const sample = JSON.parse(readFileSync(new URL('../../../topologies/units-three-hosts.json', import.meta.url), 'utf8')) as Record<string, unknown>;
const reg = (labels: Record<string, string> = {}): AgentRegistration => ({ version: 'test', labels });
const live3 = { host1: reg(), host2: reg(), host3: reg() };

t.test('endpointName replaces @ . : with -', async (t) => {
  t.equal(endpointName('web@1'), 'web-1');
  t.equal(endpointName('web.2'), 'web-2');
  t.equal(endpointName('metrics:host1'), 'metrics-host1');
  t.equal(endpointName('db'), 'db');
  t.equal(endpointName('w@a.3'), 'w-a-3');
});

t.test('every placed instance becomes an endpoint on its host; the result validates', async (t) => {
  const input = schedulingInput(sample, live3)!;
  t.equal(input.hosts.length, 3);
  const p = place(input.units, input.hosts);
  const eff = effectiveDoc(sample, { assignments: p.assignments }, live3);
  t.same(eff.issues, []);
  const v = validate(eff.doc);
  t.ok(v.ok, v.ok ? 'valid' : JSON.stringify(v.errors));
  if (!v.ok) return;
  const acme = v.model.tenants.find((x) => x.name === 'acme')!;
  t.equal(acme.endpoints.length, p.assignments.length, 'one endpoint per assignment');
  for (const a of p.assignments) {
    const e = acme.endpoints.find((x) => x.name === endpointName(a.id));
    t.ok(e, `endpoint for ${a.id}`);
    t.equal(e?.host, a.host, `${a.id} on ${a.host}`);
  }
  const web1 = acme.endpoints.find((x) => x.name === 'web-1')!;
  t.same(web1.labels, { unit: 'web-1', service: 'web' }, 'labels: unit (@ → -) and first service');
  t.equal(web1.network.name, 'web');
  t.same(acme.endpoints.find((x) => x.name === 'log-1')!.labels, { unit: 'log-1' }, 'no service label without services');
  t.equal(acme.endpoints.find((x) => x.name === 'db')!.network.name, 'db');
  t.ok(acme.endpoints.find((x) => x.name === 'metrics-host3'), 'global instance');
  // The input document is not modified.
  t.notOk((sample.tenants as Array<{ endpoints?: unknown }>)[0]!.endpoints, 'input untouched');
});

t.test('IPAM: an instance that moves host keeps its IP and MAC', async (t) => {
  const input = schedulingInput(sample, live3)!;
  const p1 = place(input.units, input.hosts);
  const v1 = validate(effectiveDoc(sample, { assignments: p1.assignments }, live3).doc);
  t.ok(v1.ok);
  if (!v1.ok) return;
  // host1's agent goes: batch.1 (eu or us, no conflicts) moves to another host.
  const live2 = { host2: reg(), host3: reg() };
  t.equal(p1.assignments.find((a) => a.id === 'batch.1')?.host, 'host1', 'batch.1 starts on host1');
  const input2 = schedulingInput(sample, live2)!;
  const p2 = place(input2.units, input2.hosts, currentOf({ assignments: p1.assignments }));
  t.ok(p2.moved.some((m) => m.id === 'batch.1' && m.to), 'batch.1 moved');
  const v2 = validate(effectiveDoc(sample, { assignments: p2.assignments }, live2).doc, { previous: v1.model.alloc });
  t.ok(v2.ok, v2.ok ? 'valid' : JSON.stringify(v2.errors));
  if (!v2.ok) return;
  const before = v1.model.tenants[0]!.endpoints.find((e) => e.name === 'batch-1')!;
  const after = v2.model.tenants[0]!.endpoints.find((e) => e.name === 'batch-1');
  t.not(after?.host, before.host, 'on another host');
  t.equal(after?.ip, before.ip, 'same IP');
  t.equal(after?.mac, before.mac, 'same MAC');
  t.equal(after?.port, before.port, 'same logical port key');
  const web2 = (v: typeof v1) => v.model.tenants[0]!.endpoints.find((e) => e.name === 'web-2')!;
  t.equal(web2(v2).ip, web2(v1).ip, 'an instance that stayed keeps its IP');
});

t.test('a clash with a hand-written endpoint is reported at the unit, with the endpoint path', async (t) => {
  const doc = structuredClone(sample) as { tenants: Array<Record<string, unknown>> };
  doc.tenants[0]!.endpoints = [{ name: 'db', network: 'db', host: 'host1' }];
  const eff = effectiveDoc(doc, { assignments: [{ id: 'db', unit: 'db', host: 'host1' }] }, live3);
  t.same(eff.issues, [{ path: '/units/2/name', message: 'instance "db" becomes endpoint "acme/db", which the document already declares at /tenants/0/endpoints/0' }]);
  t.equal(eff.instances.length, 0);
});

t.test('two instances with one endpoint name clash', async (t) => {
  const doc = {
    hosts: [{ name: 'h1', underlayIp: '192.0.2.1', ovsdb: 'tcp:127.0.0.1:1' }],
    tenants: [{ name: 'a', networks: [{ name: 'n', subnet: '10.0.0.0/24' }] }],
    units: [
      { name: 'web', tenant: 'a', network: 'n', command: 'x', replicas: 2 },
      { name: 'web@1', tenant: 'a', network: 'n', command: 'x' },
    ],
  };
  const eff = effectiveDoc(doc, { assignments: [{ id: 'web.1', unit: 'web', host: 'h1' }, { id: 'web@1', unit: 'web@1', host: 'h1' }] });
  t.same(eff.issues, [{ path: '/units/1/name', message: 'instances "web.1" and "web@1" would both be endpoint "a/web-1"' }]);
});

t.test('agent hosts: unlisted ones are added, listed ones get only what the document leaves out', async (t) => {
  const doc = {
    hosts: [{ name: 'h1', underlayIp: '192.0.2.1', ovsdb: 'tcp:127.0.0.1:1', labels: { zone: 'a' } }],
    tenants: [{ name: 'a', networks: [{ name: 'n', subnet: '10.0.0.0/24' }] }],
    units: [{ name: 'u', tenant: 'a', network: 'n', command: 'x', resources: { cpu: 1, memory: '1Gi' } }],
  };
  const agents: Record<string, AgentRegistration> = {
    h1: { version: 't', labels: { zone: 'b', disk: 'ssd' }, resources: { cpu: 2000, memory: 2 ** 31 } },
    h2: { version: 't', underlayIp: '192.0.2.2', ovsdb: 'tcp:127.0.0.1:2', datapathType: 'netdev', labels: { zone: 'c' }, resources: { cpu: 500 } },
    h3: { version: 't' }, // no underlay/OVSDB: cannot be a host
  };
  const input = schedulingInput(doc, agents)!;
  t.same(
    input.hosts.map((h) => [h.name, h.labels, h.cpu, h.memory]),
    [
      ['h1', { zone: 'a', disk: 'ssd' }, 2000, 2 ** 31],
      ['h2', { zone: 'c' }, 500, undefined],
    ],
  );
  const eff = effectiveDoc(doc, { assignments: [{ id: 'u', unit: 'u', host: 'h2' }] }, agents);
  const v = validate(eff.doc);
  t.ok(v.ok);
  if (!v.ok) return;
  t.same(v.model.hosts.map((h) => h.name), ['h1', 'h2']);
  t.equal(v.model.hosts[1]!.datapathType, 'netdev');
  t.equal(v.model.tenants[0]!.endpoints[0]!.host, 'h2');
  // An assignment to a host that is not in the effective document is left out.
  t.equal(effectiveDoc(doc, { assignments: [{ id: 'u', unit: 'u', host: 'h9' }] }, agents).instances.length, 0);
});

t.test('only hosts with a live agent are offered to place()', async (t) => {
  const input = schedulingInput(sample, { host2: reg() })!;
  t.same(input.hosts.map((h) => h.name), ['host2']);
  const p = place(input.units, input.hosts);
  t.ok(p.assignments.every((a) => a.host === 'host2'));
  t.ok(p.unplaceable.some((u) => u.id === 'db'), 'db needs eu+ssd: unplaceable');
});

t.test('samePlacement ignores order and time', async (t) => {
  const a = { assignments: [{ id: 'x', unit: 'x', host: 'h1' }, { id: 'y', unit: 'y', host: 'h2' }], unplaceable: [] };
  t.ok(samePlacement(a, { assignments: [...a.assignments].reverse(), unplaceable: [] }));
  t.notOk(samePlacement(a, { assignments: [{ id: 'x', unit: 'x', host: 'h2' }, { id: 'y', unit: 'y', host: 'h2' }], unplaceable: [] }));
  t.notOk(samePlacement(undefined, a));
});

t.test('a document that does not parse is passed through for validation to report', async (t) => {
  const eff = effectiveDoc({ hosts: 3 }, { assignments: [{ id: 'x', unit: 'x', host: 'h' }] });
  t.same(eff.doc, { hosts: 3 });
  t.equal(schedulingInput({ hosts: 3 }, {}), undefined);
});

t.test('a clash is reported before the instance is placed (apply fails, not a later placement)', async (t) => {
  const doc = structuredClone(sample) as { tenants: Array<Record<string, unknown>> };
  doc.tenants[0]!.endpoints = [{ name: 'web-2', network: 'web', host: 'host1' }, { name: 'metrics-host3', network: 'web', host: 'host3' }];
  const eff = effectiveDoc(doc, undefined, live3);
  t.same(eff.issues, [
    { path: '/units/0/name', message: 'instance "web@2" becomes endpoint "acme/web-2", which the document already declares at /tenants/0/endpoints/0' },
    { path: '/units/3/name', message: 'instance "metrics:host3" becomes endpoint "acme/metrics-host3", which the document already declares at /tenants/0/endpoints/1' },
  ]);
});

t.test('oversizedUnits: more than any host offers, with the unit path', async (t) => {
  const doc = structuredClone(sample) as { units: Array<Record<string, unknown>> };
  doc.units[2]!.resources = { cpu: 8, memory: '16Gi' };
  t.same(oversizedUnits(doc, live3), [
    { path: '/units/2/resources/memory', message: 'asks 16Gi; the largest host offers 8Gi' },
    { path: '/units/2/resources/cpu', message: 'asks 8000m; the largest host offers 4000m' },
  ]);
  t.same(oversizedUnits(sample, live3), [], 'the sample fits');
  // A host without declared resources is not limited, even if an agent says nothing either.
  const open = { ...doc, hosts: [{ name: 'big', underlayIp: '192.0.2.9', ovsdb: 'tcp:127.0.0.1:1' }] };
  t.same(oversizedUnits(open, {}), []);
  // An agent's resources count for a host the document leaves open.
  t.match(oversizedUnits(open, { big: { version: 't', resources: { memory: 2 ** 30 } } }), [{ path: '/units/2/resources/memory', message: /largest host offers 1Gi/ }]);
});

t.test('oversizedUnits: with agents, only their hosts count', async (t) => {
  const doc = {
    hosts: [
      { name: 'a', underlayIp: '192.0.2.1', ovsdb: 'tcp:127.0.0.1:1' },
      { name: 'b', underlayIp: '192.0.2.2', ovsdb: 'tcp:127.0.0.1:2' },
    ],
    tenants: [{ name: 't', networks: [{ name: 'n', subnet: '10.0.0.0/24' }] }],
    units: [{ name: 'u', tenant: 't', network: 'n', command: 'x', resources: { memory: '2Gi' } }],
  };
  t.same(oversizedUnits(doc, {}), [], 'no agents: b and a are not limited');
  t.match(oversizedUnits(doc, { a: { version: 't', resources: { memory: 2 ** 30 } } }), [{ path: '/units/0/resources/memory' }], 'b has no agent: only a counts');
});

t.test('agentHostIssues: an agent-only host entry that would break the document, with the registration field (r3#2)', async (t) => {
  const docHosts = [{ name: 'host1', underlayIp: '192.0.2.1', ovsdb: 'tcp:192.0.2.1:6640' }];
  const reg = (ip: string): AgentRegistration => ({ version: '1', underlayIp: ip, ovsdb: 'tcp:127.0.0.1:6640' });
  t.same(agentHostIssues('host9', reg('192.0.2.9'), docHosts, {}), [], 'a fresh IP is fine');
  t.match(agentHostIssues('host9', reg('999.1.1.1'), docHosts, {}), [{ path: '/underlayIp', message: /IPv4/ }], 'not an IPv4 address');
  t.match(agentHostIssues('host9', reg('192.0.2.1'), docHosts, {}), [{ path: '/underlayIp', message: /host1's in the document/ }]);
  t.match(agentHostIssues('host9', reg('192.0.2.7'), docHosts, { host8: reg('192.0.2.7') }), [{ path: '/underlayIp', message: /agent of host host8/ }]);
  t.same(agentHostIssues('host1', reg('999.1.1.1'), docHosts, {}), [], 'a listed host takes only labels and resources from its agent');
  t.same(agentHostIssues('host9', { version: '1', underlayIp: '192.0.2.1' }, docHosts, {}), [], 'no ovsdb: not offered, nothing to break');
  // The effective document with such an agent does not validate: what the scheduler avoids by leaving it out.
  const doc = { version: 1, hosts: docHosts, tenants: [] };
  const eff = effectiveDoc(doc, undefined, { host9: reg('192.0.2.1') });
  t.notOk(validate(eff.doc).ok, 'the duplicate IP breaks the effective document');
});
