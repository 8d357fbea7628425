/**
 * Lab agents: `tenet agent` child processes, one per lab host, recorded by pid in the
 * lab state; they register with what the lab host is, run their assignments, survive
 * a stop/start by adopting, and `lab down` stops them by pid.
 */
import t from 'tap';
import { endpointName, instanceNetns, type AgentAssignment } from '../../../src/agent/index.js';
import { labAgentNetnsPrefix, labAgents, labDown, loadLab, namespacePids, startLabAgents, stopLabAgents, labAgentAlive } from '../../../src/lab/index.js';
import { withLab } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';
import { tenet } from '../../helpers/cli.js';
import { startAgentApiStub, STUB_TOKEN } from '../../helpers/agent-api-stub.js';

const assignment = (id: string, n: number): AgentAssignment => ({
  id,
  unit: id.split('@')[0]!,
  tenant: 'acme',
  network: 'web',
  desiredState: 'launched',
  command: 'echo up; exec sleep 1000',
  env: {},
  restart: 'always',
  endpoint: { id: `acme/${endpointName(id)}`, name: endpointName(id), ip: `10.0.0.${n}/24`, mac: `02:00:00:00:02:${n.toString(16).padStart(2, '0')}` },
  services: [],
});

t.test('lab agents', async (t) => {
  await withLab(t, { hosts: 2 }, async (lab) => {
    const stub = await startAgentApiStub(t, { ttlS: 3 });
    const agents = await startLabAgents(lab.name, { controller: stub.url, token: STUB_TOKEN, labels: { host1: { zone: 'a' } }, resources: { host2: { cpu: '2', memory: '1Gi' } } });
    t.teardown(() => stopLabAgents(lab.name).then(() => undefined));
    t.same(agents.map((a) => a.host), ['host1', 'host2']);
    t.same(loadLab(lab.name).agents?.map((a) => a.pid), agents.map((a) => a.pid), 'recorded by pid in the lab state');
    await until('both registered', () => stub.registrations.size === 2, 20_000, 50);
    const r1 = stub.registrations.get('host1')!;
    t.equal(r1.ovsdb, lab.host('host1').ovsdbTcp, 'registers the OVSDB address the controller reaches');
    t.equal(r1.underlayIp, lab.host('host1').underlayIp);
    t.equal(r1.datapathType, 'netdev');
    t.same(r1.labels, { zone: 'a' });
    t.same(stub.registrations.get('host2')!.resources, { cpu: 2000, memory: 2 ** 30 });

    stub.setAssignments('host1', [assignment('web@1', 11)]);
    stub.setAssignments('host2', [assignment('web@2', 12)]);
    await until('both running', () => ['host1', 'host2'].every((h) => stub.instances.get(h)?.[0]?.state === 'running'), 20_000, 50);
    const pid1 = stub.instances.get('host1')![0]!.pid!;
    const ns1 = instanceNetns(labAgentNetnsPrefix(lab.name, 'host1'), 'web@1');
    t.ok(namespacePids(ns1).includes(pid1), 'host1 instance runs in its namespace');

    const status = await tenet(['lab', 'agents', 'status', '--name', lab.name]);
    t.match(status.stdout, /host1\s+pid \d+\s+running/, 'lab agents status lists them');
    t.match((await tenet(['lab', 'status', '--name', lab.name])).stdout, /AGENT[\s\S]*host2\s+\d+\s+running/, 'lab status too');

    // Stop and start again: the instance is adopted, not started twice.
    t.same(await stopLabAgents(lab.name), ['host1', 'host2']);
    t.notOk(agents.some((a) => labAgentAlive(a)), 'agents stopped by pid');
    t.ok(namespacePids(ns1).includes(pid1), 'their instances keep running');
    const before = namespacePids(ns1).sort();
    await startLabAgents(lab.name, { controller: stub.url, token: STUB_TOKEN });
    await until('reported again', () => (stub.registerCount.get('host1') ?? 0) >= 2 && stub.instances.get('host1')?.[0]?.pid === pid1, 20_000, 50);
    t.same(namespacePids(ns1).sort(), before, 'the restarted agent adopted: same processes');

    // lab down stops the agents first, by pid.
    const live = labAgents(lab.name);
    labDown(lab.name);
    t.notOk(live.some((a) => labAgentAlive(a)), 'lab down stopped every agent');
    t.same(namespacePids(ns1), [], 'and the instances');
  });
});
