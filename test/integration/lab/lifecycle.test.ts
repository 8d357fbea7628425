/**
 * The lab through its CLI: up, containers, status, exec, down — and what must
 * not happen: residue after down, half-made things after bad input or a crash.
 */
import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { isAlive, labDown, listNamespaces, naming, readState, stateFile, type LabState } from '../../../src/lab/index.js';
import { runSync } from '../../../src/util/exec.js';
import { uniqueLabName } from '../../helpers/lab.js';
import { TENET_BIN, tenet } from '../../helpers/cli.js';
import { spawn } from 'node:child_process';

/** Everything of one lab visible in the kernel and on disk. */
function footprint(name: string) {
  const links = runSync(['ip', '-o', 'link', 'show']).stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter((l) => l === naming.mgmtBridge(name) || l.startsWith(`${name}-m`));
  return {
    namespaces: listNamespaces().filter((n) => n.startsWith(`${name}-`)).sort(),
    links: links.sort(),
    dir: existsSync(`/run/tenet/lab/${name}`),
  };
}
const EMPTY = { namespaces: [], links: [], dir: false };

function daemonPids(state: LabState): number[] {
  return state.hosts.flatMap((h) =>
    [h.pidfiles.ovsdbServer, h.pidfiles.ovsVswitchd].flatMap((f) => {
      try {
        return [Number(readFileSync(f, 'utf8').trim())];
      } catch {
        return [];
      }
    }),
  );
}

t.test('up, containers, exec, status, down: and nothing left behind', async (t) => {
  const name = uniqueLabName();
  t.teardown(() => labDown(name));
  t.same(footprint(name), EMPTY, 'nothing of the lab exists before');

  const up = await tenet(['lab', 'up', '--hosts', '2', '--name', name]);
  t.equal(up.code, 0, `lab up exits 0 ${up.stderr}`);
  t.match(up.stdout, /\[lab\] host host2: namespace/, 'progress lines name each host');
  const state = readState(name)!;
  t.equal(state.status, 'ready');
  t.equal(state.hosts.length, 2);
  const pids = daemonPids(state);
  t.equal(pids.length, 4, 'an ovsdb-server and an ovs-vswitchd per host');
  t.ok(pids.every(isAlive), 'all daemons alive');

  const add = await tenet(['lab', 'container', 'add', 'host1', 'web', '--ip', '10.1.0.5/24', '--iface-id', 'lp-web', '--name', name]);
  t.equal(add.code, 0, add.stderr);
  t.match(add.stdout, /container web on host1: 10\.1\.0\.5\/24/);
  const iface = await tenet(['lab', 'exec', '--name', name, 'host1', 'ovs-vsctl', 'get', 'Interface', 'c-web', 'external_ids:iface-id']);
  t.equal(iface.stdout.trim().replace(/"/g, ''), 'lp-web', 'exec on a host reaches that host\'s OVSDB; port tagged with iface-id');
  const offload = await tenet(['lab', 'exec', '--name', name, 'web', 'ethtool', '-k', 'eth0']);
  t.match(offload.stdout, /tx-checksumming: off/, 'TX checksum offload is off inside the container');
  const exitCode = await tenet(['lab', 'exec', '--name', name, 'web', 'sh', '-c', 'exit 7']);
  t.equal(exitCode.code, 7, 'exec passes the command\'s exit status through');

  const status = await tenet(['lab', 'status', '--name', name, '-o', 'json']);
  const parsed = JSON.parse(status.stdout) as LabState & { health: Array<{ ovsVswitchd?: number }> };
  t.equal(parsed.containers[0]?.ifaceId, 'lp-web');
  t.ok(parsed.health.every((h) => typeof h.ovsVswitchd === 'number'), 'status reports live daemon pids');
  const table = await tenet(['lab', 'status', '--name', name]);
  t.match(table.stdout, /host1\s+\S+-host1\s+198\.18\.\d+\.11/, 'table status');

  const del = await tenet(['lab', 'container', 'del', 'web', '--name', name]);
  t.equal(del.code, 0);
  t.notOk(listNamespaces().includes(naming.containerNamespace(name, 'web')), 'container namespace gone');
  await tenet(['lab', 'container', 'add', 'host2', 'db', '--ip', '10.1.0.6/24', '--iface-id', 'lp-db', '--name', name]);

  const down = await tenet(['lab', 'down', '--name', name]);
  t.equal(down.code, 0);
  t.match(down.stdout, /removed 4 process\(es\)/);
  t.same(footprint(name), EMPTY, 'no namespace, link or directory left');
  t.ok(pids.every((p) => !isAlive(p)), 'every daemon stopped');
  const again = await tenet(['lab', 'down', '--name', name]);
  t.equal(again.code, 0, 'down is idempotent');
  t.match(again.stdout, /nothing to remove/);
});

t.test('bad input: one-line error, non-zero exit, nothing half-made', async (t) => {
  const name = uniqueLabName();
  t.teardown(() => labDown(name));
  t.equal((await tenet(['lab', 'up', '--hosts', '1', '--name', name])).code, 0);
  const before = footprint(name);
  const stateBefore = readFileSync(stateFile(name), 'utf8');

  const cases: Array<[string, string[], RegExp]> = [
    ['existing prefix', ['lab', 'up', '--hosts', '1', '--name', name], /already exists/],
    ['unknown host', ['lab', 'container', 'add', 'host9', 'x', '--ip', '10.0.0.1/24', '--iface-id', 'x', '--name', name], /unknown host 'host9'.*hosts: host1/],
    ['bad address', ['lab', 'container', 'add', 'host1', 'x', '--ip', '10.0.0.1', '--iface-id', 'x', '--name', name], /prefix length/],
    ['bad host count', ['lab', 'up', '--hosts', '0', '--name', 'other'], /--hosts must be an integer from 1/],
    ['bad prefix', ['lab', 'up', '--name', 'Has-Dash'], /invalid lab name/],
    ['unknown lab', ['lab', 'container', 'add', 'host1', 'x', '--ip', '10.0.0.1/24', '--iface-id', 'x', '--name', 'nolab'], /no lab named 'nolab'/],
  ];
  for (const [what, args, re] of cases) {
    const r = await tenet(args);
    t.not(r.code, 0, `${what}: non-zero exit`);
    t.match(r.stderr, re, `${what}: says why`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
  }
  t.same(footprint(name), before, 'the lab is unchanged');
  t.equal(readFileSync(stateFile(name), 'utf8'), stateBefore, 'state file unchanged');

  t.equal((await tenet(['lab', 'container', 'add', 'host1', 'a', '--ip', '10.0.0.1/24', '--iface-id', 'a', '--name', name])).code, 0);
  const withA = footprint(name);
  const dup = await tenet(['lab', 'container', 'add', 'host1', 'a', '--ip', '10.0.0.2/24', '--iface-id', 'a2', '--name', name]);
  t.not(dup.code, 0);
  t.match(dup.stderr, /container 'a' already exists/);
  const dupId = await tenet(['lab', 'container', 'add', 'host1', 'b', '--ip', '10.0.0.2/24', '--iface-id', 'a', '--name', name]);
  t.match(dupId.stderr, /iface-id 'a' is already used by container 'a'/);
  t.same(footprint(name), withA, 'duplicates leave nothing behind');
  const ports = (await tenet(['lab', 'exec', '--name', name, 'host1', 'ovs-vsctl', 'list-ports', 'br-int'])).stdout.trim();
  t.equal(ports, 'c-a', 'br-int holds only the one real container port');
});

t.test('not root: refused with a clear message before touching anything', async (t) => {
  const name = uniqueLabName();
  t.teardown(() => labDown(name));
  const r = await tenet(['lab', 'up', '--hosts', '1', '--name', name], { uid: 65534, gid: 65534, env: { ...process.env, HOME: '/tmp' } });
  t.not(r.code, 0);
  t.match(r.stderr, /must run as root/);
  t.same(footprint(name), EMPTY);
});

t.test('down after a crash half-way through up removes everything', async (t) => {
  const name = uniqueLabName();
  t.teardown(() => labDown(name));
  // Kill `lab up` (SIGKILL: no cleanup of its own) once the second host is being built.
  const child = spawn(process.execPath, [TENET_BIN, 'lab', 'up', '--hosts', '3', '--name', name], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdout.on('data', (d: Buffer) => {
    if (String(d).includes('host host2:')) child.kill('SIGKILL');
  });
  await exited;
  const half = readState(name)!;
  t.equal(half.status, 'creating', 'the state file shows the lab was not finished');
  const pids = daemonPids(half);
  t.ok(pids.length >= 2, 'host1 daemons were running when up died');
  t.ok(footprint(name).namespaces.length >= 2, 'namespaces were left by the crash');

  const down = await tenet(['lab', 'down', '--name', name]);
  t.equal(down.code, 0);
  t.same(footprint(name), EMPTY, 'nothing left');
  t.ok(pids.every((p) => !isAlive(p)), 'the orphaned daemons were stopped by pid');
  const up = await tenet(['lab', 'up', '--hosts', '1', '--name', name]);
  t.equal(up.code, 0, 'the name can be used again');
  t.equal((await tenet(['lab', 'down', '--name', name])).code, 0);
});
