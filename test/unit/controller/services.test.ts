/**
 * Service hops and the registry (src/controller/services.ts, pure): which endpoints a
 * hop has for a set of registrations, which are skipped and why, which instances
 * fail their check, and when the result changes (the controller recompiles then only).
 */
import t from 'tap';
import { chainInfos } from '../../../src/controller/chains.js';
import { blamedTenants, endpointOf, relevantChange, resolveServices, standsFor, tenantsWithRegistered, withoutRegistered, type RegisteredInstance } from '../../../src/controller/services.js';
import { ChainConflictError, compile } from '../../../src/pipeline/index.js';
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

// ids-2 and ids-3 are unit instances whose unit declares ids (as effectiveDoc makes them; their
// first service is another one, so they carry no service=ids label); ids-1 is labelled.
const units = ['ids-2', 'ids-3'].map((name) => ({ tenant: 'acme', name, unit: { services: [{ name: 'metrics' }, { name: 'ids' }, { name: 'dpi' }] } }));
const resolve = (m: Model, regs: RegisteredInstance[]) => resolveServices(m, regs, units);

t.test('verified registrations join the labelled members', async (t) => {
  const one = resolve(model, [reg('a', '10.1.0.52')]);
  t.same(members(one.model), ['ids-1', 'ids-2'], 'by address: ids-2 (its unit declares ids) next to the labelled ids-1');
  t.same(members(model), ['ids-1'], 'the validated model is not modified');
  t.equal(one.model.tenants[0]!.chains[0]!.hops[0], model.tenants[0]!.chains[0]!.hops[0], 'a hop listing its instances is kept as is');
  const two = resolve(model, [reg('b', '10.1.0.53'), reg('a', '10.1.0.52')]);
  t.same(members(two.model), ['ids-1', 'ids-2', 'ids-3'], 'sorted by endpoint name (the bucket order does not follow registration order)');
  t.same(two.model.tenants[0]!.chains[0]!.hops[1]!.instances.map((i) => [i.egress.name, i.weight]), [['ids-1', 1], ['ids-2', 1], ['ids-3', 1]], 'one port, weight 1');
  t.same(members(resolve(model, [reg('c', '10.1.0.53', { meta: { endpoint: 'acme/ids-3', host: 'host1' } })]).model), ['ids-1', 'ids-3'], 'by meta.endpoint (as the agent registers)');
  t.same(members(resolve(model, [reg('c', '10.1.0.53', { meta: { endpoint: 'ids-3' } })]).model), ['ids-1', 'ids-3'], 'meta.endpoint without a tenant: the registration\'s tenant');
  t.same(members(resolve(model, [reg('a', '10.1.0.52'), reg('a2', '10.1.0.52')]).model), ['ids-1', 'ids-2'], 'two registrations of one endpoint: one member');
  t.equal(resolve(model, [reg('x', '10.1.0.51')]).model, model, 'the labelled member registering itself changes no membership');
  t.same(members(resolve(model, [reg('a', '10.1.0.52', { service: 'dpi' })]).model), ['ids-1'], 'another service: not a member');
  t.same(members(resolve(model, [reg('a', '10.1.0.52', { tenant: 'globex' })]).model), ['ids-1'], 'another tenant (same address): not a member');
  t.same(
    chainInfos(two.model, { ofport: () => 1, linkDown: () => false, checkFailing: two.checkFailing })[0]!.hops[1]!.instances.map((i) => `${i.endpoint} ${i.health}`),
    ['acme/ids-1 healthy', 'acme/ids-2 healthy', 'acme/ids-3 healthy'],
    'GET /v1/chains shows the registered members',
  );
});

t.test('registrations that cannot be members are skipped, with the reason', async (t) => {
  const v = resolve(model, [
    reg('nowhere', '10.1.0.99'),
    reg('foreign', '10.1.0.52', { meta: { endpoint: 'globex/g' } }),
    reg('ghost', '10.1.0.52', { meta: { endpoint: 'acme/ghost' } }),
    reg('other-net', '10.9.0.5', { meta: { endpoint: 'acme/far' } }),
    reg('dest', '10.1.0.20'),
    reg('twice', '10.1.0.41'),
  ]);
  t.same(
    v.skipped.map((s) => [s.id, s.chain, s.hop, s.reason]),
    [
      ['nowhere', 'acme/web', 1, 'no endpoint of tenant "acme" has address 10.1.0.99'],
      ['foreign', 'acme/web', 1, 'meta.endpoint "globex/g" is in another tenant than "acme"'],
      ['ghost', 'acme/web', 1, 'meta.endpoint "acme/ghost": no such endpoint'],
      ['other-net', 'acme/web', 1, 'endpoint "far" does not provide service "ids" (not labelled service=ids, not an instance of a unit declaring it)'],
      ['dest', 'acme/web', 1, 'endpoint "server" does not provide service "ids" (not labelled service=ids, not an instance of a unit declaring it)'],
      ['twice', 'acme/web', 1, 'endpoint "fw-1" does not provide service "ids" (not labelled service=ids, not an instance of a unit declaring it)'],
    ],
  );
  t.same(members(v.model), ['ids-1'], 'none qualifies: the labelled endpoints stay');
  const info = chainInfos(v.model, { ofport: () => 1, linkDown: () => false, checkFailing: v.checkFailing }, v.skipped)[0]!;
  t.same(info.hops[1]!.skipped?.map((s) => s.id), ['nowhere', 'foreign', 'ghost', 'other-net', 'dest', 'twice'], 'GET /v1/chains lists them on their hop');
  t.equal(info.hops[0]!.skipped, undefined, 'and nothing on the other hop');
  t.equal(v.model, model, 'and the model is the validated one');
});

t.test('hijack: a registration must be the endpoint it names, and the endpoint must provide the service', async (t) => {
  const reason = (r: RegisteredInstance, m = model, u = units) => {
    const v = resolveServices(m, [r], u);
    t.same(members(v.model), members(m), `${r.id}: the members are unchanged`);
    return v.skipped.map((s) => s.reason);
  };
  t.same(reason(reg('spoof', '10.1.0.99', { meta: { endpoint: 'acme/ids-2' } })), ['endpoint "ids-2" does not have address 10.1.0.99 (10.1.0.52)'], 'meta.endpoint with another address');
  t.same(reason(reg('moved', '10.1.0.52', { meta: { endpoint: 'acme/ids-2', host: 'host1' } })), ['meta.host "host1" is not endpoint "ids-2"\'s host "host2"'], 'meta.host not the endpoint\'s host');
  t.same(
    reason(reg('plain', '10.1.0.52'), model, []),
    ['endpoint "ids-2" does not provide service "ids" (not labelled service=ids, not an instance of a unit declaring it)'],
    'neither labelled nor a unit instance: not a member',
  );
  t.same(
    reason(reg('undeclared', '10.1.0.52', { service: 'ids' }), model, [{ tenant: 'acme', name: 'ids-2', unit: { services: [{ name: 'web' }] } }]),
    ['endpoint "ids-2" does not provide service "ids" (not labelled service=ids, not an instance of a unit declaring it)'],
    'a unit instance whose unit does not declare the service',
  );
  t.same(
    reason(reg('other-tenant-unit', '10.1.0.52'), model, [{ tenant: 'globex', name: 'ids-2', unit: { services: [{ name: 'ids' }] } }]).length,
    1,
    'a unit of another tenant with the same endpoint name declares nothing here',
  );
  // A chain source: the client of a chain whose `from` names it (here the unit declares the service).
  const srcUnits = [...units, { tenant: 'acme', name: 'client', unit: { services: [{ name: 'ids' }] } }];
  t.same(reason(reg('source', '10.1.0.10'), model, srcUnits), ['endpoint "client" is a source of the chain'], 'a source of the chain');
  const dstUnits = [...units, { tenant: 'acme', name: 'server', unit: { services: [{ name: 'ids' }] } }];
  t.same(reason(reg('dest', '10.1.0.20'), model, dstUnits), ['endpoint "server" is a destination of the chain'], 'a destination of the chain');
  const farUnits = [...units, { tenant: 'acme', name: 'far', unit: { services: [{ name: 'ids' }] } }];
  t.same(reason(reg('far', '10.9.0.5'), model, farUnits), ['endpoint "far" is on network "mgmt", the chain on "net"'], 'another network');
  const fwUnits = [...units, { tenant: 'acme', name: 'fw-1', unit: { services: [{ name: 'ids' }] } }];
  t.same(reason(reg('fw', '10.1.0.41'), model, fwUnits), ['endpoint "fw-1" is already an instance of the chain'], 'an instance another hop lists');
  // Unverified registrations next to a verified one: only the verified one counts.
  const mixed = resolve(model, [reg('spoof', '10.1.0.99', { meta: { endpoint: 'acme/ids-3' } }), reg('a', '10.1.0.52')]);
  t.same(members(mixed.model), ['ids-1', 'ids-2'], 'the labelled member stays, the verified one joins, the spoofed one is skipped');
  t.same(mixed.skipped.map((s) => s.id), ['spoof']);
});

t.test('health: a critical verified registration takes its instance out', async (t) => {
  const pass = resolve(model, [reg('a', '10.1.0.52'), reg('b', '10.1.0.53')]);
  const crit = resolve(model, [reg('a', '10.1.0.52', { status: 'critical' }), reg('b', '10.1.0.53')]);
  t.same([...crit.checkFailing], ['acme/ids-2'], 'critical: check failing');
  t.same(members(crit.model), ['ids-1', 'ids-2', 'ids-3'], 'but still a member (it rejoins when it passes again)');
  t.same([...resolve(model, [reg('a', '10.1.0.52', { status: 'warning' })]).checkFailing], [], 'warning counts as healthy');
  t.not(crit.key, pass.key, 'a health change changes the key (recompile)');
  t.equal(resolve(model, [reg('b', '10.1.0.53'), reg('a', '10.1.0.52')]).key, pass.key, 'the same registrations in another order: the same key (no recompile)');
  t.not(resolve(model, [reg('a', '10.1.0.52')]).key, pass.key, 'a member gone: another key');
  t.same([...resolve(model, [reg('a', '10.1.0.52', { status: 'critical', service: 'dpi' }), reg('b', '10.1.0.52')]).checkFailing], [], "a service hop reads only its service's checks");
  t.same([...resolve(model, [reg('x', '10.1.0.51', { status: 'critical', service: 'other' })]).checkFailing], [], 'a labelled member and another service\'s check');
  t.same([...resolve(model, [reg('x', '10.1.0.51', { status: 'critical' })]).checkFailing], ['acme/ids-1'], 'its own service critical: the labelled member registered itself');
  t.same([...resolve(model, [reg('x', '10.1.0.99', { status: 'critical', meta: { endpoint: 'acme/ids-1' } })]).checkFailing], [], 'a spoofed registration (another address) cannot fail it');
  t.same([...resolve(model, [reg('x', '10.1.0.51', { status: 'critical', meta: { host: 'host1' } })]).checkFailing], [], 'nor one from another host');
  // A hop listing its instances: only a verified registration of a service the instance provides.
  const fwUnit = [{ tenant: 'acme', name: 'fw-1', unit: { services: [{ name: 'fw' }, { name: 'metrics' }] } }];
  const fail = (r: RegisteredInstance, u: readonly { tenant: string; name: string; unit: { services: { name: string }[] } }[] = fwUnit) => [...resolveServices(model, [r], u).checkFailing];
  t.same(fail(reg('x', '10.1.0.41', { service: 'fw', status: 'critical' })), ['acme/fw-1'], 'an instance hop: its unit\'s service critical');
  t.same(fail(reg('x', '10.1.0.41', { service: 'metrics', status: 'critical' })), ['acme/fw-1'], 'any service its unit declares');
  t.same(fail(reg('x', '10.1.0.41', { service: 'anything', status: 'critical' })), [], 'not a service the instance does not provide (a bogus or unrelated registration)');
  t.same(fail(reg('x', '10.1.0.41', { service: 'fw', status: 'critical' }), []), [], 'not when nothing says fw-1 provides it (no label, no unit)');
  t.same(fail(reg('x', '10.1.0.41', { service: 'fw', status: 'critical', tenant: 'globex' })), [], 'not another tenant\'s');
  t.same(fail(reg('x', '10.1.0.20', { status: 'critical' })), [], 'not an endpoint outside the chain (the server)');
});

t.test('a service hop nobody labelled: empty until verified instances register', async (t) => {
  const d = structuredClone(doc);
  d.tenants[0]!.chains![0]!.hops = [{ service: 'dpi' }];
  const m = modelOf(d);
  t.same(members(m, 0), [], 'validates with an empty hop');
  t.same(chainInfos(m, { ofport: () => 1, linkDown: () => false, checkFailing: new Set() })[0]!.hops[0]!.state, 'dropping', 'failMode closed: dropping');
  const v = resolve(m, [reg('a', '10.1.0.52', { service: 'dpi' }), reg('b', '10.1.0.53', { service: 'dpi' }), reg('c', '10.1.0.41', { service: 'dpi' })]);
  t.same(members(v.model, 0), ['ids-2', 'ids-3'], 'registered and declared: its members (fw-1 declares nothing: skipped)');
  t.same(v.skipped.map((s) => s.id), ['c']);
  const twoHops = structuredClone(doc);
  twoHops.tenants[0]!.chains![0]!.hops = [{ service: 'dpi' }, { service: 'ids' }];
  const m2 = modelOf(twoHops);
  const v2 = resolve(m2, [reg('a', '10.1.0.52', { service: 'dpi' }), reg('b', '10.1.0.52', { service: 'ids' })]);
  t.same([members(v2.model, 0), members(v2.model, 1)], [['ids-2'], ['ids-1']], 'an endpoint an earlier hop registered is not also a later hop\'s member (never twice in a chain)');
  t.same(v2.skipped.map((s) => [s.id, s.reason]), [['b', 'endpoint "ids-2" is already an instance of the chain']]);
  const v3 = resolve(m2, [reg('x', '10.1.0.51', { service: 'dpi', meta: { endpoint: 'acme/ids-1' } })]);
  t.same([members(v3.model, 0), members(v3.model, 1)], [[], ['ids-1']], 'a registration never takes a labelled member from its hop');
});

t.test('endpointOf and standsFor', async (t) => {
  const acme = model.tenants.find((x) => x.name === 'acme')!;
  const e = endpointOf(acme, reg('a', '10.1.0.41'));
  t.equal(typeof e === 'string' ? e : e.id, 'acme/fw-1');
  t.equal(endpointOf(acme, reg('a', '::1')), 'no endpoint of tenant "acme" has address ::1');
  const s = standsFor(acme, reg('a', '10.1.0.51'));
  t.equal(typeof s === 'string' ? s : s.id, 'acme/ids-1', 'verified: labelled service=ids, its address');
  t.match(standsFor(acme, reg('a', '10.1.0.41')), /does not provide service "ids"/);
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

t.test('fallback per tenant: withoutRegistered, tenantsWithRegistered, blamedTenants', async (t) => {
  // Two tenants with the same chain; each gets a registered member.
  const d = structuredClone(doc) as typeof doc & { tenants: Record<string, unknown>[] };
  const other = structuredClone(d.tenants[0]!) as { name: string };
  other.name = 'initech';
  d.tenants.push(other);
  const m = modelOf(d);
  const both = [...units, ...units.map((u) => ({ ...u, tenant: 'initech' }))];
  const v = resolveServices(m, [reg('a', '10.1.0.52'), reg('b', '10.1.0.53', { tenant: 'initech' })], both);
  t.same(v.joined.map((j) => [j.chain, j.id, j.endpoint]), [['acme/web', 'a', 'acme/ids-2'], ['initech/web', 'b', 'initech/ids-3']], 'joined: which registration made which member');
  t.same([...tenantsWithRegistered(v, m)], ['acme', 'initech']);
  t.same([...blamedTenants(new ChainConflictError('host1', 'table=35', ['initech/web', 'initech/other']))], ['initech'], 'a chain conflict names its tenant');
  t.same([...blamedTenants(new Error('x'))], [], 'another error names none');
  const w = withoutRegistered(v, m, new Set(['initech']), 'its member makes the chains fail to compile: boom');
  const hopOf = (x: Model, tn: string) => x.tenants.find((y) => y.name === tn)!.chains[0]!.hops[1]!.instances.map((i) => i.ingress.name);
  t.same(hopOf(w.model, 'acme'), ['ids-1', 'ids-2'], 'acme keeps its registered member');
  t.same(hopOf(w.model, 'initech'), ['ids-1'], 'initech runs on its labelled member');
  t.same(w.skipped.map((s) => [s.chain, s.id, s.reason]), [['initech/web', 'b', 'its member makes the chains fail to compile: boom']], 'the registration that caused it is skipped, with the reason');
  t.equal(w.key, v.key, 'the same key (the registry did not change)');
  t.equal(withoutRegistered(w, m, new Set(['acme']), 'x').model, m, 'no tenant left with registered members: the validated model itself');
});

t.test('a registered member that makes the chains conflict: its tenant falls back, the compile succeeds', async (t) => {
  // ids-2 is the source of chain b; as a member of web's ids hop its own port classifies for both chains.
  const d = structuredClone(doc) as typeof doc & { tenants: { chains?: unknown[] }[] };
  d.tenants[0]!.chains = [
    { name: 'web', from: { endpoints: ['client'] }, to: { endpoints: ['server'] }, protocol: 'tcp', ports: [80], hops: [{ service: 'ids' }] },
    { name: 'b', from: { endpoints: ['ids-2'] }, to: { endpoints: ['server'] }, protocol: 'tcp', ports: [80], hops: [{ instances: ['fw-1'] }] },
  ];
  const other = structuredClone(d.tenants[0]!) as { name: string; chains: unknown[] };
  other.name = 'initech';
  other.chains = [other.chains[0]];
  d.tenants.push(other as never);
  const m = modelOf(d);
  const v = resolveServices(m, [reg('a', '10.1.0.52'), reg('b', '10.1.0.52', { tenant: 'initech' })], [...units, ...units.map((u) => ({ ...u, tenant: 'initech' }))]);
  t.same(v.joined.map((j) => j.endpoint), ['acme/ids-2', 'initech/ids-2']);
  let err: unknown;
  try {
    compile(v.model);
  } catch (e) {
    err = e;
  }
  t.type(err, ChainConflictError, 'the registered member makes two chains classify the same flow');
  t.same([...blamedTenants(err)], ['acme'], 'the error names acme only');
  const w = withoutRegistered(v, m, blamedTenants(err), 'x');
  t.doesNotThrow(() => compile(w.model), 'acme on its labelled members: compiles');
  t.same(w.joined.map((j) => j.endpoint), ['initech/ids-2'], 'initech keeps its registered member');
  t.same(w.skipped.map((s) => [s.chain, s.id]), [['acme/web', 'a']]);
});
