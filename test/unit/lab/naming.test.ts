import t from 'tap';
import { naming, checkContainerSpec, overlayFlows, type LabState } from '../../../src/lab/index.js';
import { UsageError } from '../../../src/util/errors.js';

t.test('lab prefixes: short, lowercase, no dash', async (t) => {
  for (const ok of ['a', 'lab', 'tenet', 't1x3f0', 'abcdefgh']) t.equal(naming.checkPrefix(ok), ok);
  for (const bad of ['', 'A', '1lab', 'lab-x', 'abcdefghi', 'la b', 'lab_x']) {
    t.throws(() => naming.checkPrefix(bad), UsageError, `rejects '${bad}'`);
  }
});

t.test('container names and their host-side interface names', async (t) => {
  for (const ok of ['a', 'web-1', 'db0', 'x'.repeat(32)]) t.equal(naming.checkContainerName(ok), ok);
  for (const bad of ['', '-a', 'a-', 'Web', 'a_b', 'x'.repeat(33)]) t.throws(() => naming.checkContainerName(bad), UsageError);
  t.equal(naming.containerHostIface('web'), 'c-web');
  const long = naming.containerHostIface('a-very-long-container-name');
  t.ok(long.length <= 15, 'fits IFNAMSIZ');
  t.not(long, naming.containerHostIface('a-very-long-container-namf'), 'hash keeps long names apart');
});

t.test('addresses: one management /24 per lab, shared underlay per fabric', async (t) => {
  const s = naming.mgmtSubnet(7);
  t.same([s.cidr, s.gateway, s.host(1), s.host(3)], ['198.18.7.0/24', '198.18.7.1', '198.18.7.11', '198.18.7.13']);
  t.equal(naming.underlayIp(2), '203.0.113.12');
  t.equal(naming.hostNamespace('lab', 'host1'), 'lab-host1');
  t.equal(naming.containerNamespace('lab', 'web'), 'lab-c-web');
  t.equal(naming.mgmtVethRoot('abcdefgh', 200), 'abcdefgh-m200');
  t.ok(naming.mgmtVethRoot('abcdefgh', 200).length <= 15);
  t.equal(naming.tunnelPort('host12'), 'vx-host12');
});

t.test('container spec validation', async (t) => {
  t.same(checkContainerSpec({ ip: '10.0.0.1/24', ifaceId: 'a', mac: '02:AA:00:00:00:01' }), {
    ip: '10.0.0.1/24',
    ifaceId: 'a',
    mac: '02:aa:00:00:00:01',
  });
  t.ok(checkContainerSpec({ ip: 'fd00::1/64', ifaceId: 'a' }));
  const bad: Array<[string, Parameters<typeof checkContainerSpec>[0], RegExp]> = [
    ['no prefix length', { ip: '10.0.0.1', ifaceId: 'a' }, /prefix length/],
    ['not an address', { ip: '10.0.0.300/24', ifaceId: 'a' }, /invalid --ip/],
    ['bad mac', { ip: '10.0.0.1/24', ifaceId: 'a', mac: '02:00:00:00:00' }, /invalid --mac/],
    ['multicast mac', { ip: '10.0.0.1/24', ifaceId: 'a', mac: '01:00:5e:00:00:01' }, /multicast/],
    ['empty iface-id', { ip: '10.0.0.1/24', ifaceId: '' }, /iface-id/],
    ['iface-id with =', { ip: '10.0.0.1/24', ifaceId: 'a=b' }, /iface-id/],
    ['bad gateway', { ip: '10.0.0.1/24', ifaceId: 'a', gateway: 'x' }, /gateway/],
  ];
  for (const [what, spec, re] of bad) t.throws(() => checkContainerSpec(spec), re, what);
});

t.test('static overlay flows: local ports, tunnels, split-horizon flooding', async (t) => {
  const host = (i: number) => ({ name: `host${i}`, index: i }) as LabState['hosts'][number];
  const state = {
    hosts: [host(1), host(2), host(3)],
    containers: [
      { name: 'a', host: 'host1', mac: '02:00:00:00:00:0a', ofport: 1 },
      { name: 'b', host: 'host2', mac: '02:00:00:00:00:0b', ofport: 1 },
      { name: 'c', host: 'host3', mac: '02:00:00:00:00:0c', ofport: 1 },
    ],
  } as unknown as LabState;
  const ports: Record<string, number> = { 'vx-host2': 7, 'vx-host3': 8 };
  const flows = overlayFlows(state, 42, host(1), (n) => ports[n]!);
  t.same(flows, [
    'table=0,priority=100,in_port=1,actions=load:1->NXM_NX_REG0[],set_field:42->tun_id,resubmit(,1)',
    'table=0,priority=100,in_port=7,tun_id=42,actions=resubmit(,1)',
    'table=0,priority=100,in_port=8,tun_id=42,actions=resubmit(,1)',
    'table=1,priority=100,dl_dst=02:00:00:00:00:0a,actions=output:1',
    'table=1,priority=100,dl_dst=02:00:00:00:00:0b,actions=output:7',
    'table=1,priority=100,dl_dst=02:00:00:00:00:0c,actions=output:8',
    'table=1,priority=50,reg0=1,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=output:1,output:7,output:8',
    'table=1,priority=50,reg0=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=output:1',
  ]);
});
