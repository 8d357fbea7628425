/**
 * The netns driver on a real lab host: ports on br-int with the assigned address,
 * processes inside the namespace, logs, restart policy, adoption by a new driver
 * (no second process), removal of namespace and port.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsDriver, processInNetns, unshareAvailable, instanceNetns, instanceHostIface } from '../../../src/agent/index.js';
import { hostEnv, namespacePids } from '../../../src/lab/index.js';
import { run } from '../../../src/util/exec.js';
import { withLab } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';
import { agentAssignment } from '../../helpers/agent-assignment.js';

const assignment = agentAssignment;

t.test('netns driver on a lab host', async (t) => {
  await withLab(t, { hosts: 1 }, async (lab) => {
    const host = lab.host('host1');
    const stateDir = mkdtempSync(join(tmpdir(), 'tenet-agent-drv-'));
    t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
    const driverOpts = {
      host: 'host1',
      stateDir,
      ovsdb: `unix:${host.ovsdbSocket}`,
      ovsdbEnv: hostEnv(host),
      hostNetns: host.namespace,
      netnsPrefix: `${lab.name}-u-host1`,
      pollMs: 100,
      stopGraceMs: 2000,
    };
    let driver = new NetnsDriver(driverOpts);
    t.teardown(() => driver.close({ stopInstances: true }));

    const web = assignment('web@1', 5, { command: 'echo hello from $TENET_INSTANCE_ID; exec sleep 1000' });
    const t0 = Date.now();
    const inst = await driver.start(web);
    t.comment(`netns driver: port plumbed and process started in ${Date.now() - t0} ms`);
    const ns = inst.netns;
    t.equal(ns, instanceNetns(`${lab.name}-u-host1`, 'web@1'));
    t.equal(inst.status.state, 'running');
    const pid = inst.status.pid!;
    t.ok(processInNetns(pid, ns), 'the process runs inside the instance namespace');
    if (unshareAvailable()) {
      // The recorded pid is unshare; its child is the instance's init in new PID/UTS namespaces.
      const childOf = () => Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0] || 0);
      await until('unshare forked', () => childOf() > 0, 5000, 20);
      const child = childOf();
      t.not(readlinkSync(`/proc/${child}/ns/pid`), readlinkSync('/proc/self/ns/pid'), 'own PID namespace');
      // The instance's shell sets the hostname right after the fork: wait for it (bounded), then assert.
      const hostnameOf = async () => (await run(['nsenter', '-t', String(child), '-u', 'hostname'])).stdout.trim();
      await until('hostname set in the instance UTS namespace', async () => (await hostnameOf()) === 'web-1', 5000, 50).catch(() => undefined);
      t.equal(await hostnameOf(), 'web-1', 'own UTS namespace, hostname = endpoint name');
    }

    const addr = (await run(['ip', '-n', ns, '-br', 'addr', 'show', 'eth0'])).stdout;
    t.match(addr, /10\.0\.0\.5\/24/, 'eth0 has the assigned address');
    const link = (await run(['ip', '-n', ns, '-br', 'link', 'show', 'eth0'])).stdout;
    t.match(link, /02:00:00:00:00:05/, 'eth0 has the assigned MAC');
    t.match((await run(['ip', '-n', ns, 'route'])).stdout, /default via 10\.0\.0\.1/, 'default route via the gateway');
    const ifaceId = (await lab.vsctl('host1', 'get', 'Interface', instanceHostIface('web@1'), 'external_ids:iface-id')).stdout.trim();
    t.equal(ifaceId, '"acme/web-1"', 'the br-int port carries the endpoint id as iface-id');

    // Real packets: a lab container on the same host, br-int switching NORMAL.
    await lab.addContainer('host1', 'peer', { ip: '10.0.0.9/24', ifaceId: 'peer' });
    await lab.ofctl('host1', 'add-flow', 'br-int', 'actions=NORMAL');
    const p = await lab.ping('peer', '10.0.0.5', { count: 3, timeoutS: 5 });
    t.ok(p.received > 0, `the instance answers ping through br-int (${p.received}/${p.sent})`);

    await until('log line', async () => (await driver.logs('web@1')).includes('hello from web@1'), 5000, 50);
    t.match(await driver.logs('web@1', 5), /hello from web@1/, 'logs are readable, with the instance environment');

    // Restart policy.
    const crash = assignment('crash@1', 6, { command: 'echo boom; exit 3', restart: 'on-failure' });
    await driver.start(crash);
    await until('crash restarted twice', () => (driver.list().find((i) => i.assignment.id === 'crash@1')?.status.restarts ?? 0) >= 2, 10_000, 50);
    t.pass('on-failure restarts a command that exits 3');
    const once = assignment('once@1', 7, { command: 'exit 4', restart: 'never' });
    await driver.start(once);
    await until('once failed', () => driver.list().find((i) => i.assignment.id === 'once@1')?.status.state === 'failed', 5000, 50);
    const onceSt = driver.list().find((i) => i.assignment.id === 'once@1')!.status;
    t.equal(onceSt.exitCode, 4, 'the exit status is recorded');
    t.equal(onceSt.restarts, 0, 'never: not restarted');
    const loaded = assignment('idle@1', 8, { desiredState: 'loaded' });
    const idle = await driver.start(loaded);
    t.equal(idle.status.pid, undefined, 'loaded: port only, no process');
    t.same(namespacePids(idle.netns), [], 'nothing runs in a loaded instance');

    // Adoption: a new driver on the same state dir finds the same process, starts none.
    const late = assignment('late@1', 9, { command: 'sleep 1; exit 7', restart: 'never' });
    await driver.start(late);
    const pidsBefore = namespacePids(ns).sort();
    await driver.close();
    await until('late@1 exits while no driver watches', () => namespacePids(instanceNetns(`${lab.name}-u-host1`, 'late@1')).length === 0, 10_000, 50);
    driver = new NetnsDriver(driverOpts);
    const adopted = await driver.recover();
    const again = adopted.find((i) => i.assignment.id === 'web@1')!;
    t.equal(again.status.pid, pid, 'the new driver adopted the same pid');
    await until('late@1 seen as failed', () => driver.list().find((i) => i.assignment.id === 'late@1')?.status.state === 'failed', 5000, 50);
    t.equal(driver.list().find((i) => i.assignment.id === 'late@1')!.status.exitCode, 7, 'the exit status of a process that ended while no driver watched (exit file)');
    await driver.converge([web, crash, once, loaded]);
    t.equal(driver.list().find((i) => i.assignment.id === 'web@1')!.status.pid, pid, 'converge with the same assignment keeps it');
    t.same(namespacePids(ns).sort(), pidsBefore, 'no second process in the namespace');
    await new Promise((r) => setTimeout(r, 600)); // room for a wrong restart to show
    t.match(driver.list().find((i) => i.assignment.id === 'once@1')!.status, { state: 'failed', restarts: 0, exitCode: 4 }, 'a failed instance (policy never) stays failed after adoption');
    t.same(namespacePids(idle.netns), [], 'a loaded instance stays without a process after adoption');

    // An adopted process that dies is restarted by policy.
    process.kill(-pid, 'SIGKILL');
    await until('web@1 restarted', () => {
      const s = driver.list().find((i) => i.assignment.id === 'web@1')!.status;
      return s.state === 'running' && s.pid !== undefined && s.pid !== pid;
    }, 10_000, 50);
    t.pass('an adopted process killed is restarted (policy always)');

    // Removal: namespace and port gone.
    await driver.converge([crash, once, loaded]);
    t.notOk(driver.list().some((i) => i.assignment.id === 'web@1'));
    t.notOk((await run(['ip', 'netns', 'list'])).stdout.includes(ns), 'the namespace is gone');
    const ports = (await lab.vsctl('host1', 'list-ports', 'br-int')).stdout;
    t.notMatch(ports, new RegExp(instanceHostIface('web@1')), 'the br-int port is gone');
  });
});
