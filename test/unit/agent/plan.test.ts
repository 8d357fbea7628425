import t from 'tap';
import {
  adoptionDecision,
  backoffMs,
  convergePlan,
  endpointName,
  instanceFileName,
  instanceHostIface,
  instanceNetns,
  launchArgv,
  nextQuickExits,
  portKey,
  processKey,
  restartDecision,
  type AgentAssignment,
} from '../../../src/agent/index.js';
import { agentAssignment } from '../../helpers/agent-assignment.js';

const assignment = (id: string, over: Partial<AgentAssignment> = {}): AgentAssignment => agentAssignment(id, 5, over);

t.test('names: endpoint names, namespaces, host-side veths', async (t) => {
  t.equal(endpointName('web@1'), 'web-1');
  t.equal(endpointName('web.2'), 'web-2');
  t.equal(endpointName('metrics:host1'), 'metrics-host1');
  t.match(instanceNetns('tn-host1', 'web@1'), /^tn-host1-web-1-[0-9a-f]{6}$/, 'recognisable: prefix, endpoint name, hash');
  const long = instanceNetns('tn-host1', `${'x'.repeat(70)}@1`);
  t.ok(long.length <= 64, 'long namespace names are truncated');
  t.not(long, instanceNetns('tn-host1', `${'x'.repeat(70)}@2`), 'a hash keeps truncated names apart');
  t.match(instanceHostIface('web@1'), /^u-web-1[0-9a-f]{8}$/);
  // Two tenants' instances with the same endpoint name (acme web@1, other web-1) on one host
  // get distinct namespaces, ports and files (r3 finding 1).
  t.not(instanceNetns('tn-host1', 'web@1'), instanceNetns('tn-host1', 'web-1'));
  t.not(instanceHostIface('web@1'), instanceHostIface('web-1'));
  t.not(instanceFileName('web@1'), instanceFileName('web-1'));
  t.equal(endpointName('web@1'), endpointName('web-1'), 'the endpoint names do clash');
  const a = instanceHostIface('a-very-long-unit@1');
  const b = instanceHostIface('a-very-long-unit@2');
  t.ok(a.length <= 15 && b.length <= 15, 'veth names fit IFNAMSIZ');
  t.not(a, b);
});

t.test('launch argv: inside the namespace, exit status recorded, optional unshare', async (t) => {
  const plain = launchArgv({ netns: 'ns1', command: ['sleep', '5'], exitFile: '/x/e', isolate: false });
  t.same(plain.slice(0, 4), ['ip', 'netns', 'exec', 'ns1']);
  t.same(plain.slice(-4), ['tenet-unit', '/x/e', 'sleep', '5'], 'argv passed through untouched (no shell quoting)');
  t.match(plain[6], /"\$@"; echo \$\? > "\$f"/);
  const shell = launchArgv({ netns: 'ns1', command: 'echo hi; exit 3', exitFile: '/x/e', isolate: true, hostname: 'web-1' });
  t.same(shell.slice(4, 10), ['unshare', '--pid', '--fork', '--kill-child', '--mount-proc', '--uts']);
  t.same(shell.slice(-3), ['/bin/sh', '-c', 'echo hi; exit 3'], 'a string command runs through sh -c');
  t.match(shell.join(' '), /hostname 'web-1'/);
});

t.test('restart policy and backoff', async (t) => {
  t.same(restartDecision('never', 0, 1), { restart: false, state: 'exited' });
  t.same(restartDecision('never', 2, 1), { restart: false, state: 'failed' });
  t.same(restartDecision('on-failure', 0, 1), { restart: false, state: 'exited' });
  t.same(restartDecision('on-failure', 1, 1), { restart: true, delayMs: 250 });
  t.same(restartDecision('on-failure', undefined, 1), { restart: true, delayMs: 250 }, 'killed by a signal is a failure');
  t.same(restartDecision('always', 0, 3), { restart: true, delayMs: 1000 });
  t.same([1, 2, 3, 4, 5, 6, 7, 50].map(backoffMs), [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000], 'doubles, capped at 10 s');
  t.equal(nextQuickExits(4, 500), 5);
  t.equal(nextQuickExits(4, 60_000), 0, 'a run that lasted resets the backoff');
});

t.test('adoption', async (t) => {
  t.equal(adoptionDecision(true, { netnsExists: true, processAlive: true, processInNetns: true }), 'adopt');
  t.equal(adoptionDecision(true, { netnsExists: true, processAlive: false, processInNetns: false }), 'adopt-exited');
  t.equal(adoptionDecision(true, { netnsExists: true, processAlive: true, processInNetns: false }), 'discard', 'a pid living elsewhere is not ours');
  t.equal(adoptionDecision(true, { netnsExists: false, processAlive: true, processInNetns: false }), 'discard');
  t.equal(adoptionDecision(false, { netnsExists: true, processAlive: false, processInNetns: false }), 'adopt', 'loaded: port only');
});

t.test('converge plan', async (t) => {
  const a1 = assignment('web@1');
  const a2 = assignment('web@2');
  const cur = new Map([
    ['web@1', { portKey: portKey(a1), processKey: processKey(a1), launched: true }],
    ['old@1', { portKey: 'x', processKey: 'y', launched: true }],
  ]);
  t.same(convergePlan(cur, [a1, a2]), [{ op: 'remove', id: 'old@1' }, { op: 'update', id: 'web@1' }, { op: 'create', id: 'web@2' }]);
  t.same(convergePlan(cur, [{ ...a1, command: ['sleep', '2'] }]).at(-1), { op: 'restart-process', id: 'web@1' });
  t.same(convergePlan(cur, [{ ...a1, endpoint: { ...a1.endpoint, ip: '10.0.0.9/24' } }]).at(-1), { op: 'recreate', id: 'web@1' });
  t.same(convergePlan(cur, [{ ...a1, desiredState: 'loaded' }]).at(-1), { op: 'stop-process', id: 'web@1' });
  const loaded = new Map([['web@1', { portKey: portKey(a1), processKey: processKey(a1), launched: false }]]);
  t.same(convergePlan(loaded, [a1]), [{ op: 'start-process', id: 'web@1' }]);
  t.same(convergePlan(cur, [{ ...a1, restart: 'never', services: [{ name: 'http', port: 80 }] }]).at(-1), { op: 'update', id: 'web@1' }, 'policy and services change in place');
  t.equal(portKey({ ...a1, env: { A: '1' } }), portKey(a1), 'env is not part of the port');
});
