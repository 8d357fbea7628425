/**
 * `tenet host setup|teardown` on a machine of the test's own making: a network
 * namespace whose NIC `u0` holds the underlay address (as a VM's eth2 does after
 * Vagrant configured it), wired to a peer namespace. Setup must start its own
 * Open vSwitch, move the address onto br-phy (real packets still reach the peer,
 * now through the userspace datapath), make br-int, listen for the controller on
 * OVSDB TCP; a second run must change nothing; teardown must undo it all.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ovsPaths, parseIpAddrLines } from '../../../src/host/index.js';
import { runSync } from '../../../src/util/exec.js';
import { isAlive } from '../../../src/util/process.js';
import { tenet } from '../../helpers/cli.js';

const suffix = `${process.pid % 100000}`;
const NS = `vhs${suffix}`;
const PEER = `vhp${suffix}`;
const UNDERLAY = '192.0.2.5/24';
const PEER_IP = '192.0.2.6';

const ip = (...args: string[]) => runSync(['ip', ...args]);
const addrs = (ns: string) => parseIpAddrLines(runSync(['ip', '-n', ns, '-o', '-4', 'addr', 'show']).stdout);
const pidOf = (file: string): number | undefined => {
  try {
    return Number(readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
};

t.test('host setup on a fresh machine, again (no change), teardown', async (t) => {
  const runDir = mkdtempSync(join(tmpdir(), 'tenet-host-'));
  const paths = ovsPaths(runDir);
  t.teardown(() => {
    for (const f of [paths.pidfiles.ovsVswitchd, paths.pidfiles.ovsdbServer]) {
      const pid = pidOf(f);
      if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    for (const ns of [NS, PEER]) runSync(['ip', 'netns', 'delete', ns], { allowFailure: true });
    rmSync(runDir, { recursive: true, force: true });
  });

  ip('netns', 'add', NS);
  ip('netns', 'add', PEER);
  ip('-n', NS, 'link', 'set', 'lo', 'up');
  ip('-n', NS, 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'p0', 'netns', PEER);
  ip('-n', NS, 'addr', 'add', UNDERLAY, 'dev', 'u0');
  ip('-n', NS, 'link', 'set', 'u0', 'up');
  ip('-n', PEER, 'addr', 'add', `${PEER_IP}/24`, 'dev', 'p0');
  ip('-n', PEER, 'link', 'set', 'p0', 'up');
  // The userspace datapath sends and receives through AF_PACKET: no checksum offload on the peer.
  runSync(['ip', 'netns', 'exec', PEER, 'ethtool', '-K', 'p0', 'tx', 'off'], { allowFailure: true });

  const args = ['host', 'setup', '--name', 'host1', '--namespace', NS, '--ovs', 'own', '--run-dir', runDir, '--underlay-ip', UNDERLAY, '--ovsdb-listen', '127.0.0.1', '-o', 'json'];
  const first = await tenet(args);
  t.equal(first.code, 0, `setup exits 0 ${first.stderr}`);
  const out = JSON.parse(first.stdout) as { host: Record<string, string>; ovs: string; started: string[]; underlayIface: string };
  t.same(out.host, { name: 'host1', underlayIp: '192.0.2.5', ovsdb: 'tcp:127.0.0.1:6640', datapathType: 'netdev' }, 'prints the topology hosts entry');
  t.same(out.started, ['ovsdb-server', 'ovs-vswitchd'], 'started its own daemons');
  t.equal(out.underlayIface, 'u0', 'found the NIC holding the underlay address');

  const vsctl = (...a: string[]) => runSync(['ovs-vsctl', `--db=unix:${paths.ovsdbSocket}`, ...a]).stdout.trim();
  t.same(vsctl('list-br').split('\n'), ['br-int', 'br-phy'], 'br-int and br-phy exist');
  t.equal(vsctl('list-ports', 'br-phy'), 'u0', 'the NIC is br-phy’s port');
  t.equal(vsctl('get', 'Bridge', 'br-int', 'datapath_type', 'fail_mode'), 'netdev\nsecure', 'br-int: userspace datapath, fail_mode=secure');
  t.equal(vsctl('get', 'Open_vSwitch', '.', 'external_ids:hostname'), 'host1', 'hostname recorded');
  t.same(addrs(NS).filter((a) => a.cidr === UNDERLAY).map((a) => a.link), ['br-phy'], 'the underlay address moved from u0 to br-phy');
  const ping = runSync(['ip', 'netns', 'exec', NS, 'ping', '-c', '3', '-i', '0.2', '-W', '2', PEER_IP], { allowFailure: true });
  t.equal(ping.code, 0, `the underlay peer answers through br-phy: ${ping.stdout.split('\n').find((l) => l.includes('received')) ?? ping.stderr}`);
  const tcp = runSync(['ip', 'netns', 'exec', NS, 'ovs-vsctl', '--db=tcp:127.0.0.1:6640', '--timeout=10', 'br-exists', 'br-int'], { allowFailure: true });
  t.equal(tcp.code, 0, 'OVSDB answers on the TCP address the controller uses');

  const pids = [pidOf(paths.pidfiles.ovsdbServer), pidOf(paths.pidfiles.ovsVswitchd)];
  const again = await tenet(args);
  t.equal(again.code, 0, `second setup exits 0 ${again.stderr}`);
  t.same((JSON.parse(again.stdout) as { started: string[] }).started, [], 'second run starts nothing');
  t.same([pidOf(paths.pidfiles.ovsdbServer), pidOf(paths.pidfiles.ovsVswitchd)], pids, 'same daemons');
  t.equal(vsctl('list-ports', 'br-phy'), 'u0', 'ports unchanged');
  t.same(addrs(NS).filter((a) => a.cidr === UNDERLAY).map((a) => a.link), ['br-phy'], 'address still on br-phy only');

  const down = await tenet(['host', 'teardown', '--namespace', NS, '--ovs', 'own', '--run-dir', runDir]);
  t.equal(down.code, 0, `teardown exits 0 ${down.stderr}`);
  t.same(addrs(NS).filter((a) => a.cidr === UNDERLAY).map((a) => a.link), ['u0'], 'the address is back on u0');
  t.notOk(pids.some((p) => p !== undefined && isAlive(p)), 'its daemons stopped');
  const after = runSync(['ip', 'netns', 'exec', NS, 'ping', '-c', '1', '-W', '2', PEER_IP], { allowFailure: true });
  t.equal(after.code, 0, 'the peer answers through u0 again');
  const noSuch = await tenet(['host', 'setup', '--name', 'h', '--namespace', NS, '--ovs', 'own', '--run-dir', runDir, '--underlay-ip', '198.51.100.1/24']);
  t.not(noSuch.code, 0, 'an underlay address no interface holds, without --underlay-iface, is refused');
  t.match(noSuch.stderr, /no interface holds 198\.51\.100\.1/, noSuch.stderr.trim());
  t.notOk([paths.pidfiles.ovsdbServer, paths.pidfiles.ovsVswitchd].some((f) => {
    const pid = pidOf(f);
    return pid !== undefined && isAlive(pid);
  }), 'the refused setup started no daemon');
  t.equal((await tenet(['host', 'teardown', '--namespace', NS, '--ovs', 'own', '--run-dir', runDir])).code, 0, 'teardown with nothing set up exits 0 too');

  // A NIC that also carries the default route: moving its address would cut the machine off.
  ip('-n', NS, 'route', 'add', 'default', 'via', PEER_IP, 'dev', 'u0');
  const routed = await tenet(args);
  t.not(routed.code, 0, 'the underlay NIC carries the default route: refused');
  t.match(routed.stderr, /u0 carries routes besides its own subnet \(default via 192\.0\.2\.6/, routed.stderr.trim());
  t.same(addrs(NS).filter((a) => a.cidr === UNDERLAY).map((a) => a.link), ['u0'], 'the address stayed on u0');
  t.match(runSync(['ip', '-n', NS, 'route', 'show', 'default']).stdout, /via 192\.0\.2\.6 dev u0/, 'the default route is untouched');
  t.notOk([paths.pidfiles.ovsdbServer, paths.pidfiles.ovsVswitchd].some((f) => {
    const pid = pidOf(f);
    return pid !== undefined && isAlive(pid);
  }), 'the refused setup started no daemon');
});

/**
 * The path a VM runs: Open vSwitch already running as the distribution starts it
 * (here: daemons the test starts in a namespace of its own, with the distro's
 * `db:…manager_options` remote), and `--ovs system`: setup starts nothing, adds the
 * OVSDB TCP listener as a Manager row, makes the bridges; teardown leaves the daemons.
 */
t.test('host setup on a running ("system") Open vSwitch', async (t) => {
  const ns = `vhy${suffix}`;
  const runDir = mkdtempSync(join(tmpdir(), 'tenet-host-sys-'));
  const paths = ovsPaths(runDir);
  const env = { ...process.env, OVS_RUNDIR: runDir, OVS_DBDIR: runDir, OVS_LOGDIR: runDir };
  t.teardown(() => {
    for (const f of [paths.pidfiles.ovsVswitchd, paths.pidfiles.ovsdbServer]) {
      const pid = pidOf(f);
      if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    runSync(['ip', 'netns', 'delete', ns], { allowFailure: true });
    rmSync(runDir, { recursive: true, force: true });
  });
  ip('netns', 'add', ns);
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  ip('-n', ns, 'link', 'add', 'eth2', 'type', 'veth', 'peer', 'name', 'eth2p');
  ip('-n', ns, 'addr', 'add', '192.0.2.21/24', 'dev', 'eth2');
  ip('-n', ns, 'link', 'set', 'eth2', 'up');
  // As openvswitch-switch starts them.
  runSync(['ovsdb-tool', 'create', paths.db, '/usr/share/openvswitch/vswitch.ovsschema']);
  runSync(['ip', 'netns', 'exec', ns, 'ovsdb-server', paths.db, `--remote=punix:${paths.ovsdbSocket}`, '--remote=db:Open_vSwitch,Open_vSwitch,manager_options', `--pidfile=${paths.pidfiles.ovsdbServer}`, `--log-file=${paths.logs.ovsdbServer}`, '--detach'], { env });
  runSync(['ovs-vsctl', `--db=unix:${paths.ovsdbSocket}`, '--no-wait', 'init'], { env });
  runSync(['ip', 'netns', 'exec', ns, 'ovs-vswitchd', `unix:${paths.ovsdbSocket}`, `--pidfile=${paths.pidfiles.ovsVswitchd}`, `--log-file=${paths.logs.ovsVswitchd}`, '--detach'], { env });
  const daemons = [pidOf(paths.pidfiles.ovsdbServer), pidOf(paths.pidfiles.ovsVswitchd)];

  const args = ['host', 'setup', '--name', 'host2', '--namespace', ns, '--ovs', 'system', '--run-dir', runDir, '--underlay-ip', '192.0.2.21/24', '--ovsdb-listen', '127.0.0.1:6641', '-o', 'json'];
  const r = await tenet(args);
  t.equal(r.code, 0, `setup exits 0 ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { ovs: string; started: string[]; host: Record<string, string> };
  t.equal(out.ovs, 'system', 'used the running Open vSwitch');
  t.same(out.started, [], 'started no daemon');
  t.equal(out.host.ovsdb, 'tcp:127.0.0.1:6641');
  const vsctl = (...a: string[]) => runSync(['ovs-vsctl', `--db=unix:${paths.ovsdbSocket}`, ...a]).stdout.trim();
  t.equal(vsctl('get-manager'), 'ptcp:6641:127.0.0.1', 'OVSDB on TCP as a Manager row');
  t.same(vsctl('list-br').split('\n'), ['br-int', 'br-phy']);
  t.equal(vsctl('list-ports', 'br-phy'), 'eth2');
  let tcp = -1;
  for (let i = 0; i < 50 && tcp !== 0; i++) {
    // ovsdb-server opens Manager remotes on its next main-loop pass.
    tcp = runSync(['ip', 'netns', 'exec', ns, 'ovs-vsctl', '--db=tcp:127.0.0.1:6641', '--timeout=5', 'br-exists', 'br-int'], { allowFailure: true }).code;
    if (tcp !== 0) await new Promise((res) => setTimeout(res, 100));
  }
  t.equal(tcp, 0, 'OVSDB answers on tcp:127.0.0.1:6641');
  const again = await tenet(args);
  t.equal(again.code, 0, 'second run exits 0');
  t.equal(vsctl('get-manager'), 'ptcp:6641:127.0.0.1', 'the Manager row is not duplicated');

  const down = await tenet(['host', 'teardown', '--namespace', ns, '--ovs', 'system', '--run-dir', runDir]);
  t.equal(down.code, 0, `teardown exits 0 ${down.stderr}`);
  t.equal(vsctl('list-br'), '', 'bridges gone');
  t.same(addrs(ns).filter((a) => a.cidr === '192.0.2.21/24').map((a) => a.link), ['eth2'], 'the address is back on eth2');
  t.ok(daemons.every((p) => p !== undefined && isAlive(p)), 'the running daemons are left running');
});
