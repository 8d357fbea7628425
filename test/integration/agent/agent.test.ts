/**
 * The agent loop on a real lab host against a stand-in of the controller's agent API
 * with the real registry (test/helpers/agent-api-stub.ts): registration, heartbeat,
 * assignments converge into running instances, status reports, declared services with
 * their check run inside the namespace, sidekick registrations from a container, logs
 * over the agent socket, a controller outage, an agent restart that adopts.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, readAgentLogs, instanceProcesses, instanceNetns, instanceHostIface, type Agent, type AgentAssignment, type AgentOptions } from '../../../src/agent/index.js';
import { hostEnv, namespacePids } from '../../../src/lab/index.js';
import { run } from '../../../src/util/exec.js';
import { withLab } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';
import { startAgentApiStub, STUB_TOKEN } from '../../helpers/agent-api-stub.js';
import { agentAssignment } from '../../helpers/agent-assignment.js';

const SERVER = "require('net').createServer((s)=>{s.on('error',()=>{});s.end('HTTP/1.0 200 OK\\r\\n\\r\\nhi\\n')}).listen(8080,()=>console.log('listening 8080'))";

const assignment = (id: string, n: number, over: Partial<AgentAssignment> = {}): AgentAssignment =>
  agentAssignment(
    id,
    n,
    {
      command: [process.execPath, '-e', SERVER],
      env: { GREETING: 'hello' },
      services: [
        { name: 'web', port: 8080, check: { type: 'tcp', intervalMs: 300, timeoutMs: 250 } },
        { name: 'api', port: 8080, check: { type: 'http', path: '/health', intervalMs: 300, timeoutMs: 250 } },
      ],
      ...over,
    },
    '02:00:00:00:01',
  );

t.test('agent loop on a lab host', async (t) => {
  await withLab(t, { hosts: 1 }, async (lab) => {
    const host = lab.host('host1');
    const stub = await startAgentApiStub(t, { ttlS: 3 });
    const stateDir = mkdtempSync(join(tmpdir(), 'tn-agent-'));
    t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
    const logs: string[] = [];
    const opts: AgentOptions = {
      host: 'host1',
      controller: stub.url,
      token: STUB_TOKEN,
      stateDir,
      ovsdb: `unix:${host.ovsdbSocket}`,
      ovsdbEnv: hostEnv(host),
      hostNetns: host.namespace,
      netnsPrefix: `${lab.name}-u-host1`,
      labels: { zone: 'a' },
      resources: { cpu: 2000, memory: 2 ** 30 },
      underlayIp: host.underlayIp,
      waitS: 5,
      log: (level, msg) => logs.push(`${level} ${msg}`),
    };
    let agent: Agent = await startAgent(opts);
    t.teardown(() => { if (process.env.AGENT_TEST_LOG) t.comment(logs.join('\n')); });
    t.teardown(() => agent.close({ stopInstances: true }));

    await until('registered', () => stub.registrations.has('host1'), 10_000, 50);
    const reg = stub.registrations.get('host1')!;
    t.same(reg.labels, { zone: 'a' }, 'labels registered');
    t.same(reg.resources, { cpu: 2000, memory: 2 ** 30 }, 'resources registered');
    t.equal(reg.socket, join(stateDir, 'agent.sock'), 'the socket path is registered');

    // bad@1 cannot be plumbed (no such address): retried, and it does not hold web@1 back.
    const bad = assignment('bad@1', 6, { endpoint: { id: 'acme/bad-1', name: 'bad-1', ip: '10.0.0.300/24', mac: '02:00:00:00:01:06' } });
    stub.setAssignments('host1', [assignment('web@1', 5), bad]);
    await until('web@1 reported running', () => stub.instances.get('host1')?.some((i) => i.id === 'web@1' && i.state === 'running') ?? false, 20_000, 50);
    await until('bad@1 retried', () => logs.filter((l) => l.includes('could not create bad@1')).length >= 2, 10_000, 50);
    t.pass('an instance that cannot be created is tried again with backoff; the others run');
    t.notOk(logs.some((l) => l.includes('bad@1') && l.startsWith('info instance bad@1: port')), 'and it never got a port');
    stub.setAssignments('host1', [assignment('web@1', 5)]);
    const pid = agent.instances().find((i) => i.id === 'web@1')!.pid!;
    const ns = instanceNetns(`${lab.name}-u-host1`, 'web@1');
    t.ok(namespacePids(ns).includes(pid), 'the process runs in the instance namespace');
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    t.ok(env.includes(`TENET_AGENT_SOCKET=${agent.socketPath}`), 'the unit environment names the agent socket');
    t.ok(env.includes('GREETING=hello') && env.includes('TENET_INSTANCE_ID=web@1'), 'unit env and instance id');

    // Declared service: registered, its tcp check run inside the namespace passes.
    await until('web passing in the registry', () => stub.registry.list({ tenant: 'acme', service: 'web', passing: true }).instances.length === 1, 15_000, 50);
    const inst = stub.registry.get('acme', 'web', 'web-1')!;
    t.equal(inst.address, '10.0.0.5');
    t.equal(inst.port, 8080);
    t.same(inst.meta, { unit: 'web', instance: 'web@1', host: 'host1', endpoint: 'acme/web-1' }, 'meta names unit, instance, host, endpoint');
    await until('api (http check) passing', () => stub.registry.list({ tenant: 'acme', service: 'api', passing: true }).instances.length === 1, 15_000, 50);
    t.pass('an http check (GET /health inside the namespace, 200) passes');

    // Sidekick: the container registers a service of its own through the socket.
    const script = join(stateDir, 'sidekick.cjs');
    writeFileSync(
      script,
      `const http = require('http');
       const body = JSON.stringify({ port: 9100, check: { type: 'tcp', intervalMs: 300, timeoutMs: 250 } });
       const req = http.request({ socketPath: process.env.TENET_AGENT_SOCKET, method: 'PUT', path: '/v1/services/metrics',
         headers: { 'content-type': 'application/json', 'x-tenet-instance': process.env.TENET_INSTANCE_ID } },
         (res) => { let b = ''; res.on('data', (c) => b += c); res.on('end', () => { console.log(res.statusCode, b); }); });
       req.end(body);`,
    );
    const envArgs = env.filter((e) => e.startsWith('TENET_'));
    const side = await run(['ip', 'netns', 'exec', ns, 'env', ...envArgs, process.execPath, script]);
    t.match(side.stdout, /^200 .*"address":"10\.0\.0\.5"/, `the agent answers the container (${side.stdout.trim()})`);
    await until('metrics registered', () => stub.registry.get('acme', 'metrics', 'web-1') !== undefined, 10_000, 50);
    t.pass('a container-registered service appears in the registry');
    await until('metrics failing (nothing listens on 9100)', () => stub.registry.get('acme', 'metrics', 'web-1')?.status === 'critical', 10_000, 50);
    t.pass('its check runs and fails: nothing listens on 9100');

    // Logs over the socket.
    await until('log line', async () => (await readAgentLogs(agent.socketPath, 'web@1', 10)).includes('listening 8080'), 5000, 50);
    t.pass('logs readable through the agent socket');

    // Controller away: instances keep running; back: the agent registers again.
    await stub.pause();
    stub.expireLeases();
    await new Promise((r) => setTimeout(r, 2500));
    t.equal(agent.instances().find((i) => i.id === 'web@1')!.pid, pid, 'the instance keeps running while the controller is away');
    t.ok(logs.some((l) => /failed: .*retrying/.test(l)), 'the outage is logged');
    const before = stub.registerCount.get('host1') ?? 0;
    await stub.resume();
    await until('registered again', () => (stub.registerCount.get('host1') ?? 0) > before, 20_000, 50);
    t.ok(logs.some((l) => /reachable again|expired at the controller/.test(l)), 'the recovery is logged');

    // Agent restart: the new agent adopts; no second process.
    const pidsBefore = instanceProcesses(ns, pid);
    t.ok(pidsBefore.includes(pid), 'the instance leads its own session');
    await agent.close();
    agent = await startAgent(opts);
    await until('new agent converged', () => agent.assignmentIndex() > 0, 15_000, 50);
    t.equal(agent.instances().find((i) => i.id === 'web@1')!.pid, pid, 'the restarted agent adopted the same pid');
    t.same(instanceProcesses(ns, pid), pidsBefore, 'nothing started twice');
    t.ok(agent.services().some((w) => w.service === 'metrics' && w.source === 'sidekick'), 'the restarted agent keeps the container-registered service');
    await until('reported after restart', () => stub.instances.get('host1')?.find((i) => i.id === 'web@1')?.pid === pid, 10_000, 50);

    // Assignment removed: process, namespace, port and services gone.
    stub.setAssignments('host1', []);
    await until('web@1 removed', () => agent.instances().length === 0, 15_000, 50);
    await until('services deregistered', () => stub.registry.list({ tenant: 'acme' }).instances.length === 0, 10_000, 50);
    t.notOk((await run(['ip', 'netns', 'list'])).stdout.includes(ns), 'namespace removed');
    t.notOk((await lab.vsctl('host1', 'list-ports', 'br-int')).stdout.includes(instanceHostIface('web@1')), 'port removed');
    t.same(stub.instances.get('host1'), [], 'the empty instance list is reported');
  });
});
