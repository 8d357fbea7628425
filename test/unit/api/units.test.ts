/**
 * The units and agents routes (src/api/units.ts) over real HTTP against the
 * FakeController, through the typed ApiClient where one exists: registration and its
 * validation, heartbeats and 404 lease-expired, instance reports, the assignments long
 * poll, unit submit/start/stop/destroy with 400 paths and 404 for unknown units.
 */
import t, { type Test } from 'tap';
import { ApiClient, ApiError, startApi } from '../../../src/api/index.js';
import type { AgentAssignment } from '../../../src/scheduler/index.js';
import { FakeController } from '../../helpers/fake-controller.js';

const TOKEN = 'units-token-0123456789';
const doc = {
  hosts: [{ name: 'host1', underlayIp: '192.0.2.1', ovsdb: 'tcp:127.0.0.1:1' }],
  tenants: [{ name: 'acme', networks: [{ name: 'web', subnet: '10.0.1.0/24' }] }],
};
const unit = { name: 'web@1..2', tenant: 'acme', network: 'web', command: ['sleep', 'infinity'] };

async function setup(t: Test) {
  const ctl = new FakeController();
  const api = await startApi(ctl, { listen: '127.0.0.1:0', token: TOKEN });
  t.teardown(() => api.close());
  const client = new ApiClient({ url: api.url, token: TOKEN });
  const raw = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(api.url + path, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  };
  return { ctl, api, client, raw };
}

const rejects = async (p: Promise<unknown>): Promise<ApiError> => {
  try {
    await p;
  } catch (err) {
    return err as ApiError;
  }
  throw new Error('expected a rejection');
};

t.test('agents: register, heartbeat, instances, 404 lease-expired, validation', async (t) => {
  const { ctl, client, raw } = await setup(t);
  const r = await client.registerAgent('host1', { version: '1', labels: { disk: 'ssd' }, resources: { cpu: 2000, memory: 1 << 30 }, socket: '/run/a.sock' });
  t.match(r, { host: 'host1', ttlS: 10 });
  t.same(await client.heartbeat('host1', r.leaseId), { ttlS: 10 });
  const again = await client.registerAgent('host1', { version: '1' });
  t.equal(again.leaseId, r.leaseId, 'a re-registration reuses the live lease');

  await client.reportInstances('host1', r.leaseId, [{ id: 'web@1', unit: 'web@1', endpoint: 'acme/web-1', state: 'running', pid: 42, restarts: 0, since: new Date().toISOString() }]);
  const agents = await client.agents();
  t.match(agents, [{ host: 'host1', alive: true, registration: { version: '1' }, instances: [{ id: 'web@1', pid: 42 }] }]);

  ctl.expire('host1');
  const hb = await raw('POST', '/v1/agents/host1/heartbeat', { leaseId: r.leaseId });
  t.equal(hb.status, 404);
  t.equal(hb.json?.error, 'lease-expired');
  const inst = await raw('PUT', '/v1/agents/host1/instances', { leaseId: r.leaseId, instances: [] });
  t.equal(inst.status, 404);
  t.equal(inst.json?.error, 'lease-expired');
  t.match(await client.agents(), [{ host: 'host1', alive: false }]);
  const fresh = await client.registerAgent('host1', { version: '2' });
  t.not(fresh.leaseId, r.leaseId, 'after expiry: a new lease');

  const bad = await raw('POST', '/v1/agents/host1', { version: '1', resources: { cpu: 'lots' }, extra: 1 });
  t.equal(bad.status, 400);
  t.match(bad.json?.message, /\/resources\/cpu/);
  t.match(bad.json?.message, /extra/);
  t.equal((await raw('POST', '/v1/agents/Bad_Host', { version: '1' })).status, 400, 'host name must be DNS-safe');
  t.equal((await raw('POST', '/v1/agents/host1/heartbeat', {})).status, 400, 'leaseId required');
  const badInst = await raw('PUT', '/v1/agents/host1/instances', { leaseId: fresh.leaseId, instances: [{ id: 'x' }] });
  t.equal(badInst.status, 400);
  t.match(badInst.json?.message, /\/0\/state/);
  const unauth = await fetch(`${(await setup(t)).api.url}/v1/agents`);
  t.equal(unauth.status, 401, 'bearer token required');
});

t.test('assignments: at once for index 0, long poll until the set changes, timeout', async (t) => {
  const { ctl, client, raw } = await setup(t);
  const first = await client.assignments('host1', 0, 5);
  t.same(first.assignments, []);
  t.ok(first.index > 0, 'an index, never 0');
  const a: AgentAssignment = {
    id: 'web@1',
    unit: 'web@1',
    tenant: 'acme',
    network: 'web',
    desiredState: 'launched',
    command: ['sleep', 'infinity'],
    env: {},
    restart: 'always',
    endpoint: { id: 'acme/web-1', name: 'web-1', ip: '10.0.1.5/24', mac: '0a:00:00:00:00:05', gateway: '10.0.1.1' },
    services: [],
  };
  const t0 = Date.now();
  const waiting = client.assignments('host1', first.index, 10);
  setTimeout(() => ctl.setAssignments('host1', [a]), 200);
  const next = await waiting;
  t.same(next.assignments, [a], 'answers with the new set');
  t.not(next.index, first.index);
  t.ok(Date.now() - t0 < 5000, 'before the wait ran out');
  const t1 = Date.now();
  const same = await client.assignments('host1', next.index, 1);
  t.equal(same.index, next.index, 'unchanged at timeout');
  t.ok(Date.now() - t1 >= 900, 'held for waitS');
  t.equal((await raw('GET', '/v1/agents/host1/assignments?index=x')).status, 400);
  t.equal((await raw('GET', '/v1/agents/host1/assignments?waitS=100000')).status, 400);
});

t.test('units: submit, list, start/stop, destroy; 400 with paths and nothing applied; 404', async (t) => {
  const { ctl, client, raw } = await setup(t);
  await ctl.apply(doc);
  const r = await client.submitUnits([unit]);
  t.equal(r.generation, 2);
  t.match(await client.units(), [{ name: 'web@1..2', tenant: 'acme', network: 'web', desiredState: 'launched', instances: [] }]);

  // Replace by name.
  await client.submitUnits([{ ...unit, command: 'sleep 1' }]);
  t.equal((ctl.doc as { units: unknown[] }).units.length, 1, 'replaced, not added');

  await client.stopUnit('web@1..2');
  t.match(await client.units(), [{ desiredState: 'loaded' }]);
  await client.startUnit('web@1..2');
  t.match(await client.units(), [{ desiredState: 'launched' }]);

  const generation = ctl.generation;
  const bad = await rejects(client.submitUnits([{ ...unit, name: 'db', network: 'nope', resources: { memory: 'lots' } }]));
  t.equal(bad.status, 400);
  t.match(bad.issues, [{ path: '/units/1/resources/memory' }], 'schema error with its path');
  const unknownNet = await rejects(client.submitUnits([{ ...unit, name: 'db', network: 'nope' }]));
  t.equal(unknownNet.status, 400);
  t.match(unknownNet.issues, [{ path: '/units/1/network', message: /unknown network "nope"/ }]);
  const cycle = await rejects(
    client.submitUnits([
      { ...unit, name: 'a', constraints: { machineOf: 'b' } },
      { ...unit, name: 'b', constraints: { machineOf: 'a' } },
    ]),
  );
  t.match(cycle.issues, [{ path: /\/units\/\d\/constraints\/machineOf/, message: /machineOf cycle/ }]);
  t.equal(ctl.generation, generation, 'nothing applied by the bad submits');

  t.equal((await raw('POST', '/v1/units', { units: [] })).status, 400, 'an empty list is a 400');
  t.equal((await raw('POST', '/v1/units/nope/start')).status, 404);
  t.equal((await raw('POST', '/v1/units/nope/stop')).status, 404);
  t.equal((await raw('DELETE', '/v1/units/nope')).status, 404);

  await client.destroyUnit('web@1..2');
  t.same(await client.units(), []);
});
