/**
 * Service hops and the registry (src/controller/services.ts, pure): which endpoints a
 * hop has for a set of registrations, which are skipped and why, which instances
 * fail their check, and when the result changes (the controller recompiles then only).
 */
import t from 'tap';
import { chainInfos } from '../../../src/controller/chains.js';
import { endpointOf, relevantChange, resolveServices, type RegisteredInstance } from '../../../src/controller/services.js';
import { validate, type Model } from '../../../src/model/index.js';

const doc = {
  version: 1,
  hosts: [
    { name: 'host1', underlayIp: '192.0.2.1', ovsdb: 'tcp:127.0.0.1:1' },
    { name: 'host2', underlayIp: '192.0.2.2', ovsdb: 'tcp:127.0.0.1:1' },
  ],
  tenants: [
    {
      name: 'acme',
      networks: [
        { name: 'net', subnet: '10.1.0.0/24' },
        { name: 'mgmt', subnet: '10.9.0.0/24' },
      ],
      endpoints: [
        { name: 'client', network: 'net', host: 'host1', ip: '10.1.0.10' },
        { name: 'server', network: 'net', host: 'host1', ip: '10.1.0.20' },
        { name: 'fw-1', network: 'net', host: 'host2', ip: '10.1.0.41' },
        { name: 'ids-1', network: 'net', host: 'host2', ip: '10.1.0.51', labels: { service: 'ids' } },
        { name: 'ids-2', network: 'net', host: 'host2', ip: '10.1.0.52' },
        { name: 'ids-3', network: 'net', host: 'host1', ip: '10.1.0.53' },
        { name: 'far', network: 'mgmt', host: 'host1', ip: '10.9.0.5' },
      ],
      chains: [
        {
          name: 'web',
          from: { endpoints: ['client'] },
          to: { endpoints: ['server'] },
          protocol: 'tcp',
          ports: [80],
          hops: [{ instances: ['fw-1'] }, { service: 'ids' }],
        },
      ],
    },
    {
      name: 'globex',
      networks: [{ name: 'net', subnet: '10.1.0.0/24' }],
      endpoints: [{ name: 'g', network: 'net', host: 'host1', ip: '10.1.0.52' }],
    },
  ],
};

const modelOf = (d: unknown): Model => {
  const v = validate(d);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.model;
};
const model = modelOf(doc);
const reg = (id: string, address: string, o: Partial<RegisteredInstance> = {}): RegisteredInstance => ({ tenant: 'acme', service: 'ids', id, address, status: 'passing', ...o });
const members = (m: Model, hop = 1) => m.tenants[0]!.chains[0]!.hops[hop]!.instances.map((i) => i.ingress.name);

t.test('no registration: the labelled endpoints, the model untouched', async (t) => {
  const v = resolveServices(model, []);
  t.equal(v.model, model, 'the same model object (nothing to recompile)');
  t.same(members(v.model), ['ids-1']);
  t.same([...v.checkFailing], []);
  t.same(v.skipped, []);
});

t.test('registered instances replace the labelled ones', async (t) => {
  const one = resolveServices(model, [reg('a', '10.1.0.52')]);
  t.same(members(one.model), ['ids-2'], 'by address: ids-2 only (the label no longer counts once the registry has the service)');
  t.same(members(model), ['ids-1'], 'the validated model is not modified');
  t.equal(one.model.tenants[0]!.chains[0]!.hops[0], model.tenants[0]!.chains[0]!.hops[0], 'a hop listing its instances is kept as is');
  const two = resolveServices(model, [reg('b', '10.1.0.53'), reg('a', '10.1.0.52')]);
  t.same(members(two.model), ['ids-2', 'ids-3'], 'sorted by endpoint name (the bucket order does not follow registration order)');
  t.same(two.model.tenants[0]!.chains[0]!.hops[1]!.instances.map((i) => [i.egress.name, i.weight]), [['ids-2', 1], ['ids-3', 1]], 'one port, weight 1');
  const byMeta = resolveServices(model, [reg('c', '192.0.2.99', { meta: { endpoint: 'acme/ids-3' } })]);
  t.same(members(byMeta.model), ['ids-3'], 'meta.endpoint wins over the address');
  t.same(members(resolveServices(model, [reg('c', '10.1.0.52', { meta: { endpoint: 'ids-3' } })]).model), ['ids-3'], 'meta.endpoint without a tenant: the registration\'s tenant');
  t.same(members(resolveServices(model, [reg('a', '10.1.0.52'), reg('a2', '10.1.0.52')]).model), ['ids-2'], 'two registrations of one endpoint: one member');
  t.same(members(resolveServices(model, [reg('a', '10.1.0.52', { service: 'dpi' })]).model), ['ids-1'], 'another service: not a member');
  t.same(members(resolveServices(model, [reg('a', '10.1.0.52', { tenant: 'globex' })]).model), ['ids-1'], 'another tenant (same address): not a member');
  t.same(
    chainInfos(two.model, { ofport: () => 1, linkDown: () => false, checkFailing: two.checkFailing })[0]!.hops[1]!.instances.map((i) => `${i.endpoint} ${i.health}`),
    ['acme/ids-2 healthy', 'acme/ids-3 healthy'],
    'GET /v1/chains shows the registered members',
  );
});

t.test('registrations that cannot be members are skipped, with the reason', async (t) => {
  const v = resolveServices(model, [
    reg('nowhere', '10.1.0.99'),
    reg('foreign', '10.1.0.52', { meta: { endpoint: 'globex/g' } }),
    reg('ghost', '10.1.0.52', { meta: { endpoint: 'acme/ghost' } }),
    reg('other-net', '10.9.0.5'),
    reg('dest', '10.1.0.20'),
    reg('twice', '10.1.0.41'),
  ]);
  t.same(
    v.skipped.map((s) => [s.id, s.chain, s.hop, s.reason]),
    [
      ['nowhere', 'acme/web', 1, 'no endpoint of tenant "acme" has address 10.1.0.99'],
      ['foreign', 'acme/web', 1, 'meta.endpoint "globex/g" is in another tenant than "acme"'],
      ['ghost', 'acme/web', 1, 'meta.endpoint "acme/ghost": no such endpoint'],
      ['other-net', 'acme/web', 1, 'endpoint "far" is on network "mgmt", the chain on "net"'],
      ['dest', 'acme/web', 1, 'endpoint "server" is a destination of the chain'],
      ['twice', 'acme/web', 1, 'endpoint "fw-1" is already an instance of the chain'],
    ],
  );
  t.same(members(v.model), ['ids-1'], 'none qualifies: the labelled endpoints stay');
  const info = chainInfos(v.model, { ofport: () => 1, linkDown: () => false, checkFailing: v.checkFailing }, v.skipped)[0]!;
  t.same(info.hops[1]!.skipped?.map((s) => s.id), ['nowhere', 'foreign', 'ghost', 'other-net', 'dest', 'twice'], 'GET /v1/chains lists them on their hop');
  t.equal(info.hops[0]!.skipped, undefined, 'and nothing on the other hop');
  t.equal(v.model, model, 'and the model is the validated one');
});

t.test('health: a critical registration takes its instance out', async (t) => {
  const pass = resolveServices(model, [reg('a', '10.1.0.52'), reg('b', '10.1.0.53')]);
  const crit = resolveServices(model, [reg('a', '10.1.0.52', { status: 'critical' }), reg('b', '10.1.0.53')]);
  t.same([...crit.checkFailing], ['acme/ids-2'], 'critical: check failing');
  t.same(members(crit.model), ['ids-2', 'ids-3'], 'but still a member (it rejoins when it passes again)');
  t.same([...resolveServices(model, [reg('a', '10.1.0.52', { status: 'warning' })]).checkFailing], [], 'warning counts as healthy');
  t.not(crit.key, pass.key, 'a health change changes the key (recompile)');
  t.equal(resolveServices(model, [reg('b', '10.1.0.53'), reg('a', '10.1.0.52')]).key, pass.key, 'the same registrations in another order: the same key (no recompile)');
  t.not(resolveServices(model, [reg('a', '10.1.0.52')]).key, pass.key, 'a member gone: another key');
  t.same([...resolveServices(model, [reg('a', '10.1.0.52', { status: 'critical', service: 'dpi' }), reg('b', '10.1.0.52')]).checkFailing], [], "a service hop reads only its service's checks");
  // A hop listing its instances: any critical registration standing for the instance.
  t.same([...resolveServices(model, [reg('x', '10.1.0.41', { service: 'anything', status: 'critical' })]).checkFailing], ['acme/fw-1'], 'an instance hop: any service');
  t.same([...resolveServices(model, [reg('x', '10.1.0.41', { service: 'anything', status: 'critical', tenant: 'globex' })]).checkFailing], [], 'not another tenant\'s');
  t.same([...resolveServices(model, [reg('x', '10.1.0.20', { status: 'critical' })]).checkFailing], [], 'not an endpoint outside the chain (the server)');
  t.same([...resolveServices(model, [reg('x', '10.1.0.51', { status: 'critical', service: 'other' })]).checkFailing], [], 'a labelled member and another service\'s check');
  t.same([...resolveServices(model, [reg('x', '10.1.0.51', { status: 'critical' })]).checkFailing], ['acme/ids-1'], 'its own service critical: the labelled member registered itself');
});

t.test('a service hop nobody labelled: empty until instances register', async (t) => {
  const d = structuredClone(doc);
  d.tenants[0]!.chains![0]!.hops = [{ service: 'dpi' }];
  const m = modelOf(d);
  t.same(members(m, 0), [], 'validates with an empty hop');
  t.same(chainInfos(m, { ofport: () => 1, linkDown: () => false, checkFailing: new Set() })[0]!.hops[0]!.state, 'dropping', 'failMode closed: dropping');
  const v = resolveServices(m, [reg('a', '10.1.0.52', { service: 'dpi' }), reg('b', '10.1.0.41', { service: 'dpi' })]);
  t.same(members(v.model, 0), ['fw-1', 'ids-2'], 'registered: its members');
  const twoHops = structuredClone(doc);
  twoHops.tenants[0]!.chains![0]!.hops = [{ service: 'dpi' }, { service: 'ids' }];
  const m2 = modelOf(twoHops);
  const v2 = resolveServices(m2, [reg('a', '10.1.0.51', { service: 'dpi' })]);
  t.same([members(v2.model, 0), members(v2.model, 1)], [['ids-1'], []], 'an endpoint an earlier hop registered leaves the later hop\'s labelled members (never twice in a chain)');
});

t.test('endpointOf', async (t) => {
  const acme = model.tenants.find((x) => x.name === 'acme')!;
  const e = endpointOf(acme, reg('a', '10.1.0.41'));
  t.equal(typeof e === 'string' ? e : e.id, 'acme/fw-1');
  t.equal(endpointOf(acme, reg('a', '::1')), 'no endpoint of tenant "acme" has address ::1');
});

t.test('relevantChange: only what chains read wakes the controller', async (t) => {
  const seen = new Map<string, string>();
  const ch = (type: 'register' | 'update' | 'deregister', o: Partial<RegisteredInstance> = {}) => ({
    type,
    tenant: 'acme',
    service: 'ids',
    id: 'a',
    ...(type === 'deregister' ? {} : { instance: reg('a', '10.1.0.52', o) }),
  });
  t.equal(relevantChange(seen, ch('register', { status: 'critical' })), true, 'a registration');
  t.equal(relevantChange(seen, ch('update', { status: 'critical' })), false, 'a check report that changes nothing');
  t.equal(relevantChange(seen, ch('update')), true, 'critical -> passing');
  t.equal(relevantChange(seen, ch('update')), false, 'passing reported again (TTL pass, renewal)');
  t.equal(relevantChange(seen, ch('update', { status: 'warning' })), true, 'passing -> warning (read as healthy, but cheap to resolve)');
  t.equal(relevantChange(seen, ch('update', { status: 'warning', address: '10.1.0.53' })), true, 're-registered at another address');
  t.equal(relevantChange(seen, ch('update', { status: 'warning', address: '10.1.0.53', meta: { endpoint: 'acme/ids-3' } })), true, 'another meta.endpoint');
  t.equal(relevantChange(seen, ch('deregister')), true, 'a deregistration');
  t.equal(seen.size, 0, 'forgotten once deregistered');
  t.equal(relevantChange(new Map(), ch('update')), true, 'an instance not seen before (registered before the controller followed)');
});
