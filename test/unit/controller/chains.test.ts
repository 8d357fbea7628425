/**
 * Chain health (src/controller/chains.ts) on the 3-host chain topology, its table
 * (`tenet get chains`), and GET /v1/chains through the API and CLI client.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { ApiClient, startApi } from '../../../src/api/index.js';
import { chainsTable, formatSelector, getCommand } from '../../../src/cli/client.js';
import { chainInfos, registryCheckFailing, unhealthyEndpoints, type HealthView } from '../../../src/controller/chains.js';
import { validate, type Model } from '../../../src/model/index.js';
import { FakeController } from '../../helpers/fake-controller.js';

const doc = JSON.parse(readFileSync(new URL('../../../topologies/chain-three-hosts.json', import.meta.url), 'utf8')) as {
  tenants: { chains: { failMode: string }[] }[];
};
const modelOf = (d: unknown): Model => {
  const v = validate(d);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.model;
};
const model = modelOf(doc);
const PORTS: Record<string, number> = { 'acme/fw-1': 3, 'acme/fw-2': 4, 'acme/ids-1': 2 };
const view = (o: { missing?: string[]; down?: string[]; failing?: string[] } = {}): HealthView => ({
  ofport: (_host, id) => (o.missing?.includes(id) ? undefined : PORTS[id] ?? 1),
  linkDown: (_host, id) => o.down?.includes(id) ?? false,
  checkFailing: new Set(o.failing ?? []),
});

t.test('instance health and hop state', async (t) => {
  const all = chainInfos(model, view());
  t.equal(all.length, 1);
  const c = all[0]!;
  t.match(c, { id: 'acme/web', tenant: 'acme', network: 'net', protocol: 'tcp', ports: ['80'], symmetric: true, failMode: 'closed', from: { endpoints: ['client'] }, to: { endpoints: ['server'] } });
  t.same(
    c.hops.map((h) => [h.service, h.state, h.instances.map((i) => [i.endpoint, i.host, i.weight, i.ofport, i.health])]),
    [
      [undefined, 'ok', [['acme/fw-1', 'host2', 1, 3, 'healthy'], ['acme/fw-2', 'host2', 2, 4, 'healthy']]],
      ['ids', 'ok', [['acme/ids-1', 'host3', 1, 2, 'healthy']]],
    ],
  );
  t.same([...unhealthyEndpoints(model, view())], [], 'nothing to leave out');

  const down = chainInfos(model, view({ down: ['acme/fw-1'] }))[0]!;
  t.same([down.hops[0]!.state, down.hops[0]!.instances.map((i) => i.health)], ['degraded', ['link down', 'healthy']]);
  t.same([...unhealthyEndpoints(model, view({ down: ['acme/fw-1'] }))], ['acme/fw-1'], 'a link-down instance goes to compile as unhealthy');

  const v = view({ missing: ['acme/fw-1'], failing: ['acme/fw-2'] });
  const none = chainInfos(model, v)[0]!;
  t.same(none.hops[0]!.instances.map((i) => [i.health, i.ofport]), [['port missing', undefined], ['check failing', 4]]);
  t.equal(none.hops[0]!.state, 'dropping', 'no healthy instance, failMode closed');
  t.same([...unhealthyEndpoints(model, v)], ['acme/fw-2'], 'a missing port is not listed (the compiler drops it itself)');
  t.same([...unhealthyEndpoints(null, v)], []);
  t.same(chainInfos(null, v), []);

  const open = structuredClone(doc);
  open.tenants[0]!.chains[0]!.failMode = 'open';
  t.equal(chainInfos(modelOf(open), v)[0]!.hops[0]!.state, 'bypassed', 'failMode open: the hop is skipped');

  // worst of both ports
  const link = chainInfos(model, view({ down: ['acme/ids-1'], failing: ['acme/ids-1'] }))[0]!;
  t.equal(link.hops[1]!.instances[0]!.health, 'link down');
});

t.test('registry checks mapped to chain instances by address', async (t) => {
  const reg = (service: string, address: string, status: 'passing' | 'warning' | 'critical', tenant = 'acme') => ({ tenant, service, id: `${service}-${address}`, address, status });
  t.same([...registryCheckFailing(model, [])], []);
  // fw-1 and fw-2 carry no service label: only as instances of a unit declaring fw do their registrations count.
  const fwUnits = ['fw-1', 'fw-2'].map((name) => ({ tenant: 'acme', name, unit: { services: [{ name: 'fw' }] } }));
  t.same([...registryCheckFailing(model, [reg('fw', '10.1.0.41', 'critical'), reg('fw', '10.1.0.42', 'passing')], fwUnits)], ['acme/fw-1'], 'an instance hop: a critical registration of a service it provides');
  t.same([...registryCheckFailing(model, [reg('fw', '10.1.0.41', 'critical')])], [], 'not when nothing says it provides the service');
  t.same([...registryCheckFailing(model, [reg('metrics', '10.1.0.41', 'critical')], fwUnits)], [], 'nor another service at its address');
  t.same([...registryCheckFailing(model, [reg('fw', '10.1.0.42', 'warning')])], [], 'warning is not failing');
  t.same([...registryCheckFailing(model, [reg('ids', '10.1.0.51', 'critical')])], ['acme/ids-1'], 'a service hop: its service critical there');
  t.same([...registryCheckFailing(model, [reg('other', '10.1.0.51', 'critical')])], [], 'a service hop ignores other services at the address');
  t.same([...registryCheckFailing(model, [reg('fw', '10.1.0.41', 'critical', 'globex')])], [], 'another tenant with the same address');
  t.same([...registryCheckFailing(model, [reg('fw', '10.1.0.20', 'critical')])], [], 'not a chain instance (the server)');
  const v = { ...view(), checkFailing: registryCheckFailing(model, [reg('fw', '10.1.0.41', 'critical')], fwUnits) };
  t.same(chainInfos(model, v)[0]!.hops[0]!.instances.map((i) => i.health), ['check failing', 'healthy']);
  t.same([...unhealthyEndpoints(model, v)], ['acme/fw-1']);
});

t.test('table', async (t) => {
  t.equal(formatSelector({}), '*');
  t.equal(formatSelector({ endpoints: ['a', 'b'], labels: { role: 'web' }, cidrs: ['10.0.0.0/8'] }), 'endpoints=a,b labels=role=web cidrs=10.0.0.0/8');
  const out = chainsTable(chainInfos(model, view({ down: ['acme/fw-1'] })));
  t.equal(
    out,
    [
      'acme/web: endpoints=client -> endpoints=server tcp/80 (network net, symmetric, failMode closed)',
      '  HOP      STATE     INSTANCE    HOST   WEIGHT  OFPORT  HEALTH',
      '  1        degraded  acme/fw-1   host2  1       3       link down',
      '                     acme/fw-2   host2  2       4       healthy',
      '  2 (ids)  ok        acme/ids-1  host3  1       2       healthy',
      '',
    ].join('\n'),
  );
  t.equal(chainsTable([]), 'no chains\n');
});

t.test('GET /v1/chains and tenet get chains', async (t) => {
  const ctl = new FakeController();
  const api = await startApi(ctl, { listen: '127.0.0.1:0', token: 'tok' });
  t.teardown(() => api.close());
  const client = new ApiClient({ url: api.url, token: 'tok' });
  t.same(await client.chains(), [], 'nothing applied yet');
  await client.apply(doc);
  ctl.reachable.add('host2');
  ctl.linkDown.add('acme/fw-2');
  const chains = await client.chains();
  t.same(chains.map((c) => c.hops.map((h) => h.state)), [['degraded', 'dropping']], 'host3 unbound: the IDS hop drops');
  t.same(await client.chains('other'), [], 'tenant filter');
  t.same((await client.chains('acme')).length, 1);
  let out = '';
  await getCommand(client, 'chains', { output: 'table' }, (s) => (out += s));
  t.match(out, /^acme\/web: .*\n {2}HOP .*\n {2}1 +degraded +acme\/fw-1 +host2 +1 +10 +healthy\n +acme\/fw-2 +host2 +2 +10 +link down\n {2}2 \(ids\) +dropping +acme\/ids-1 +host3 +1 +- +port missing\n$/);
  out = '';
  await getCommand(client, 'chain', { output: 'json' }, (s) => (out += s));
  t.same(JSON.parse(out), chains);
});
