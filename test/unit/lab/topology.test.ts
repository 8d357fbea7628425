import t from 'tap';
import { labAdvertise, labTopologyHosts, labTopologyInfo, withLabHosts, endpointContainerName } from '../../../src/lab/index.js';
import type { LabHost, LabState } from '../../../src/lab/index.js';
import { validate } from '../../../src/model/index.js';

const host = (i: number): LabHost => ({
  name: `host${i}`,
  index: i,
  namespace: `x-host${i}`,
  runDir: `/run/x/host${i}`,
  ovsdbSocket: `/run/x/host${i}/db.sock`,
  ovsdbTcp: `tcp:198.18.7.${10 + i}:6640`,
  mgmtIp: `198.18.7.${10 + i}`,
  underlayIp: `203.0.113.${10 + i}`,
  brIntMgmt: `unix:/run/x/host${i}/br-int.mgmt`,
  pidfiles: { ovsdbServer: '', ovsVswitchd: '' },
  logs: { ovsdbServer: '', ovsVswitchd: '' },
});
const state: LabState = {
  version: 1,
  name: 'x',
  index: 7,
  status: 'ready',
  createdAt: '',
  dir: '/run/x',
  mgmt: { bridge: 'x-mgmt', cidr: '198.18.7.0/24', gateway: '198.18.7.1' },
  fabric: { namespace: 'x-fabric', bridge: 'fabric', cidr: '203.0.113.0/24' },
  hosts: [host(1), host(2)],
  containers: [],
};

t.test('hosts section: underlay IP, OVSDB over the management network, netdev', async (t) => {
  t.same(labTopologyHosts(state), [
    { name: 'host1', underlayIp: '203.0.113.11', ovsdb: 'tcp:198.18.7.11:6640', datapathType: 'netdev' },
    { name: 'host2', underlayIp: '203.0.113.12', ovsdb: 'tcp:198.18.7.12:6640', datapathType: 'netdev' },
  ]);
  t.equal(labAdvertise(state), 'tcp:198.18.7.1:6653');
  t.equal(labTopologyInfo(state, 7000).advertise, 'tcp:198.18.7.1:7000');
});

t.test('a document with the lab hosts validates', async (t) => {
  const doc = withLabHosts({ tenants: [{ name: 'a', networks: [{ name: 'n', subnet: '10.0.0.0/24' }], endpoints: [{ name: 'e', network: 'n', host: 'host2' }] }] }, state);
  const r = validate(doc);
  t.ok(r.ok, r.ok ? 'valid' : JSON.stringify(r.errors));
  t.equal(endpointContainerName({ tenant: 'a', name: 'e' }), 'a-e');
});
