/** The per-host setup's pure rules: addresses, the bridges' ovs-vsctl arguments, `ip -o addr` parsing. */
import t from 'tap';
import { bridgeArgs, linkHolding, managersWith, ovsPaths, ovsdbListen, parseCidr, parseIpAddrLines } from '../../../src/host/index.js';
import { UsageError } from '../../../src/util/errors.js';

t.test('parseCidr', async (t) => {
  t.same(parseCidr('192.168.57.11/24'), { ip: '192.168.57.11', prefixLen: 24, cidr: '192.168.57.11/24' });
  for (const bad of ['192.168.57.11', '192.168.57.300/24', '10.0.0.1/33', '10.0.0.1/0', 'eth0/24', '']) {
    t.throws(() => parseCidr(bad, 'underlay IP'), UsageError, `refuses '${bad}'`);
  }
  t.throws(() => parseCidr('x', 'underlay IP'), /underlay IP must be an IPv4 address with prefix length/);
});

t.test('ovsdbListen: ovsdb-server remote and the topology target', async (t) => {
  t.same(ovsdbListen('192.168.56.11'), { remote: 'ptcp:6640:192.168.56.11', target: 'tcp:192.168.56.11:6640' });
  t.same(ovsdbListen('127.0.0.1:16640'), { remote: 'ptcp:16640:127.0.0.1', target: 'tcp:127.0.0.1:16640' });
  for (const bad of ['host1', '1.2.3.4:0', '1.2.3.4:70000', 'tcp:1.2.3.4:6640']) t.throws(() => ovsdbListen(bad), UsageError, `refuses '${bad}'`);
});

t.test('parseIpAddrLines and linkHolding', async (t) => {
  const out = [
    '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
    '2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic eth0\\       valid_lft 86000sec',
    '4: eth2    inet 192.168.57.11/24 brd 192.168.57.255 scope global eth2\\       valid_lft forever',
    '7: br-phy    inet 203.0.113.11/24 scope global br-phy\\       valid_lft forever',
    '9: u0@if8    inet 192.0.2.5/24 scope global u0',
    'garbage',
  ].join('\n');
  const addrs = parseIpAddrLines(out);
  t.same(addrs.map((a) => a.link), ['lo', 'eth0', 'eth2', 'br-phy', 'u0']);
  t.same(linkHolding(addrs, '192.168.57.11'), { link: 'eth2', cidr: '192.168.57.11/24' });
  t.equal(linkHolding(addrs, '192.0.2.5')?.link, 'u0', 'a veth (name@peer) is named without its peer');
  t.equal(linkHolding(addrs, '192.168.57.1'), undefined, 'a prefix of an address is not the address');
});

t.test('bridgeArgs: idempotent, br-phy only with the userspace datapath', async (t) => {
  const netdev = bridgeArgs({ datapathType: 'netdev', underlayIface: 'eth2' });
  t.match(netdev.join(' '), /--may-exist add-br br-phy -- set Bridge br-phy datapath_type=netdev -- --may-exist add-port br-phy eth2/);
  t.match(netdev.join(' '), /--may-exist add-br br-int -- set Bridge br-int datapath_type=netdev fail_mode=secure other_config:disable-in-band=true protocols=OpenFlow10,OpenFlow13/);
  t.notOk(bridgeArgs({ datapathType: 'netdev' }).includes('add-port'), 'no NIC named: br-phy keeps the port it has');
  const system = bridgeArgs({ datapathType: 'system', underlayIface: 'eth2' });
  t.notOk(system.includes('br-phy'), 'kernel datapath: tunnels route through the kernel, no br-phy');
  t.ok(system.includes('datapath_type=system'));
});

t.test('managersWith keeps the managers there and adds ours once', async (t) => {
  t.same(managersWith('', 'ptcp:6640:1.2.3.4'), ['ptcp:6640:1.2.3.4']);
  t.same(managersWith('ptcp:6641\n', 'ptcp:6640:1.2.3.4'), ['ptcp:6641', 'ptcp:6640:1.2.3.4']);
  t.equal(managersWith('ptcp:6640:1.2.3.4\n', 'ptcp:6640:1.2.3.4'), undefined, 'already there: nothing to set');
});

t.test('ovsPaths: one run directory holds an instance', async (t) => {
  const p = ovsPaths('/run/x');
  t.same(p, {
    runDir: '/run/x',
    db: '/run/x/conf.db',
    ovsdbSocket: '/run/x/db.sock',
    pidfiles: { ovsdbServer: '/run/x/ovsdb-server.pid', ovsVswitchd: '/run/x/ovs-vswitchd.pid' },
    logs: { ovsdbServer: '/run/x/ovsdb-server.log', ovsVswitchd: '/run/x/ovs-vswitchd.log' },
    brIntMgmt: 'unix:/run/x/br-int.mgmt',
  });
});
