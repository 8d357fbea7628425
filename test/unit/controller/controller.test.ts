/**
 * The controller without switches: the pure helpers, and the stored-topology side
 * (generations, previous allocation, unchanged documents, compare-and-swap, tenant
 * deletion, invalid input, unreachable hosts) against a real embedded store and
 * OVSDB addresses nobody listens on.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { parseHostPort, startDaemon, storeConfig } from '../../../src/daemon/index.js';
import { Controller, TOPOLOGY_KEY, compileFailure, datapathIdOf, driftLines, hostPlanOf, tunnelPeers, type ControllerEvent } from '../../../src/controller/index.js';
import { loadTopology, TopologyError } from '../../../src/model/index.js';
import { ChainConflictError } from '../../../src/pipeline/index.js';
import { parseFlow, parseGroup } from '../../../src/openflow/index.js';
import { diffState } from '../../../src/reconcile/index.js';
import { EmbeddedStore } from '../../../src/store/index.js';
import { freePort } from '../../helpers/net.js';

const hosts = async () => {
  const out = [];
  for (const n of ['host1', 'host2', 'host3']) out.push({ name: n, underlayIp: `203.0.113.${out.length + 1}`, ovsdb: `tcp:127.0.0.1:${await freePort({ host: '127.0.0.1' })}`, datapathType: 'netdev' });
  return out;
};

const doc = (h: unknown[]) => ({
  hosts: h,
  tenants: [
    {
      name: 'acme',
      networks: [
        { name: 'web', subnet: '10.0.0.0/24' },
        { name: 'db', subnet: '10.0.1.0/24' },
      ],
      router: { networks: ['web', 'db'] },
      endpoints: [
        { name: 'w1', network: 'web', host: 'host1' },
        { name: 'd1', network: 'db', host: 'host3' },
      ],
    },
    {
      name: 'globex',
      networks: [{ name: 'n', subnet: '10.0.0.0/24' }],
      endpoints: [
        { name: 'a', network: 'n', host: 'host1' },
        { name: 'b', network: 'n', host: 'host2' },
      ],
    },
  ],
});

t.test('pure helpers', async (t) => {
  const m = loadTopology(doc(await hosts()));
  const mesh = { host1: ['host2', 'host3'], host2: ['host1', 'host3'], host3: ['host1', 'host2'] };
  t.same(Object.fromEntries(tunnelPeers(m)), mesh, 'tunnels: a full mesh of the hosts, symmetric (host2 and host3 share no network)');
  // Tunnels follow the hosts, not the tenants: removing every tenant keeps them (no port churn on re-apply).
  t.same(Object.fromEntries(tunnelPeers(loadTopology({ ...doc(await hosts()), tenants: [] }))), mesh, 'tunnels: the same without any tenant');
  t.match(datapathIdOf('host1'), /^00007e7e[0-9a-f]{8}$/);
  t.not(datapathIdOf('host1'), datapathIdOf('host2'));
  const keep = parseFlow('cookie=0x100000001,table=0,priority=10,in_port=1 actions=goto_table:5');
  const gone = parseFlow('cookie=0x100000001,table=0,priority=10,in_port=2 actions=goto_table:5');
  const stats = (f: typeof keep) => ({ ...f, durationSec: 1, durationNsec: 0, packetCount: 0n, byteCount: 0n });
  const add = parseFlow('cookie=0x100000001,table=0,priority=10,in_port=3 actions=goto_table:5');
  const g = parseGroup('group_id=1,type=all,bucket=output:1');
  const onlyAdd = diffState({ flows: [keep, add], groups: [g] }, { flows: [stats(keep)], groups: [] });
  t.equal(hostPlanOf('h', onlyAdd, 's', true).hitless, true, 'adding flows and groups is hitless');
  const withDelete = diffState({ flows: [keep], groups: [] }, { flows: [stats(keep), stats(gone)], groups: [] });
  const hp = hostPlanOf('h', withDelete, 's', true);
  t.equal(hp.hitless, false, 'removing a flow is disruptive');
  t.match(hp.delete[0], /in_port=2/);
  t.same(driftLines(withDelete), [hp.delete.map((f) => `- ${f}`)[0]]);
});

t.test('a compile failure is a TopologyError with a path', async (t) => {
  const d = doc(await hosts());
  const acme = d.tenants[0]! as { endpoints: unknown[]; chains?: unknown[] };
  acme.endpoints.push({ name: 'fw', network: 'db', host: 'host2' }, { name: 'd2', network: 'db', host: 'host2' });
  acme.chains = [
    { name: 'one', from: { endpoints: ['d2'] }, to: { endpoints: ['d1'] }, protocol: 'tcp', ports: [80], hops: [{ instances: ['fw'] }] },
    { name: 'two', from: { endpoints: ['d1'] }, to: { endpoints: ['d2'] }, protocol: 'tcp', ports: [443], hops: [{ instances: ['fw'] }] },
  ];
  const m = loadTopology(d);
  const conflict = compileFailure(m, new ChainConflictError('host1', 'table=20,...', ['acme/two', 'acme/one']), 'host1');
  t.ok(conflict instanceof TopologyError, 'a TopologyError (the API answers 400 with its issues)');
  t.match(conflict.issues, [{ path: '/tenants/0/chains/1', message: /cannot be compiled for host host1: chains "acme\/two" and "acme\/one"/ }], 'the path of the first chain named');
  t.match(compileFailure(m, new TypeError('desired state has two flows with identity x')).issues, [{ path: '', message: /cannot be compiled: desired state has two flows/ }], 'any other failure: the document root');
});

t.test('stored topology', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ctl-unit-'));
  const store = await EmbeddedStore.open({ dir });
  const c = await Controller.start({ store, advertise: ['tcp:127.0.0.1:1'], openflow: { host: '127.0.0.1', port: 0 }, driftIntervalMs: 0, retryMs: 100 });
  t.teardown(async () => {
    await c.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const events: ControllerEvent[] = [];
  c.on('event', (e) => events.push(e));
  t.same(c.topology(), { generation: 0, doc: null });
  t.equal(c.model(), null);
  t.same(c.endpoints(), []);

  const h = await hosts();
  const d1 = doc(h);
  const plan = await c.plan(d1);
  t.equal(plan.generation, 1);
  t.ok(plan.hosts.every((p) => !p.reachable && p.hitless && p.add.length > 0), 'planned against empty switches');
  const r1 = await c.apply(d1);
  t.match(r1, { generation: 1, changed: true });
  t.ok(events.some((e) => e.type === 'topology' && e.generation === 1));
  const s1 = await c.waitRealized(1, 10_000);
  t.ok(s1.hosts.every((x) => x.state === 'unreachable' && /ECONNREFUSED/.test(x.lastError ?? '')), 'dead OVSDB addresses: unreachable with the reason');
  t.equal(s1.realized, true, 'no reachable host is behind');

  const same = await c.apply(structuredClone(d1));
  t.match(same, { generation: 1, changed: false }, 'the same document stores nothing');

  const eps1 = c.endpoints();
  const d2 = structuredClone(d1);
  d2.tenants[0]!.endpoints.unshift({ name: 'a0', network: 'web', host: 'host2' });
  const r2 = await c.apply(d2);
  t.equal(r2.generation, 2);
  for (const e of eps1) t.equal(c.endpoints().find((x) => x.id === e.id)?.ip, e.ip, `${e.id} keeps its address (previous allocation)`);
  t.equal(c.endpoints().find((e) => e.id === 'acme/w1')?.gateway, '10.0.0.1');

  const bad = structuredClone(d2);
  bad.tenants[0]!.endpoints.push({ name: 'x', network: 'nope', host: 'host1' });
  await t.rejects(c.apply(bad), TopologyError);
  await t.rejects(c.plan(bad), { code: 'ETOPOLOGY', issues: [{ path: '/tenants/0/endpoints/3/network' }] });
  t.equal(c.topology().generation, 2, 'invalid: nothing stored');
  t.match(await c.metrics.metrics(), /tenet_apply_total\{result="invalid"\} 1\n/, 'an invalid plan is not counted as an apply');

  const r3 = await c.deleteTenant('globex');
  t.equal(r3.generation, 3);
  t.same(c.model()?.tenants.map((x) => x.name), ['acme']);
  await t.rejects(c.deleteTenant('nobody'), { code: 'EUSAGE' });
  const r4 = await c.deleteTenant();
  t.same(c.model()?.tenants, [], 'delete --all keeps hosts, drops tenants');
  t.equal(r4.generation, 4);

  // Another writer changed the key: the CAS fails instead of overwriting.
  await store.put(TOPOLOGY_KEY, JSON.stringify({ generation: 99, doc: d1, alloc: c.model()!.alloc }));
  await t.rejects(c.apply(d1), { code: 'ECONFLICT' });

  t.match(await c.metrics.metrics(), /tenet_apply_total\{result="changed"\} 4/);
  t.match(await c.metrics.metrics(), /tenet_host_state\{host="host1",state="unreachable"\} 1/);
});

t.test('a pending waitRealized ends on abort and on close', async (t) => {
  // An OVSDB address that accepts and never answers: the host stays "connecting", so waits stay pending.
  const sockets = new Set<Socket>();
  const mute = createServer((s) => sockets.add(s));
  const port = await freePort({ host: '127.0.0.1' });
  await new Promise<void>((r) => mute.listen(port, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ctl-unit-'));
  const store = await EmbeddedStore.open({ dir });
  const c = await Controller.start({ store, advertise: ['tcp:127.0.0.1:1'], openflow: { host: '127.0.0.1', port: 0 }, driftIntervalMs: 0 });
  t.teardown(async () => {
    await c.close();
    await store.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => mute.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  const d = doc(await hosts());
  for (const h of d.hosts as { ovsdb: string }[]) h.ovsdb = `tcp:127.0.0.1:${port}`;
  await c.apply(d);
  const tick = () => new Promise((r) => setImmediate(r));
  const ended = (p: Promise<unknown>) => {
    const e = { done: false };
    void p.then(() => (e.done = true));
    return e;
  };
  const ac = new AbortController();
  const aborted = c.waitRealized(1, 600_000, ac.signal);
  const a = ended(aborted);
  await tick();
  t.equal(a.done, false, 'pending while the hosts connect');
  ac.abort();
  await tick();
  t.equal(a.done, true, 'abort ends the wait');
  t.equal((await aborted).realized, false);
  const closing = c.waitRealized(1, 600_000);
  const b = ended(closing);
  await tick();
  t.equal(b.done, false);
  await c.close();
  await tick();
  t.equal(b.done, true, 'close ends every pending wait');
  t.equal((await closing).realized, false);
  t.equal((await c.waitRealized(1, 600_000)).realized, false, 'a wait after close answers at once');
});

t.test('a restarted controller loads the stored topology', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ctl-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const d = doc(await hosts());
  let store = await EmbeddedStore.open({ dir });
  let c = await Controller.start({ store, advertise: ['tcp:127.0.0.1:1'], openflow: { host: '127.0.0.1', port: 0 }, driftIntervalMs: 0 });
  await c.apply(d);
  const before = c.endpoints();
  await c.close();
  await store.close();
  store = await EmbeddedStore.open({ dir });
  c = await Controller.start({ store, advertise: ['tcp:127.0.0.1:1'], openflow: { host: '127.0.0.1', port: 0 }, driftIntervalMs: 100 });
  t.teardown(async () => {
    await c.close();
    await store.close();
  });
  t.equal(c.topology().generation, 1);
  t.same(c.endpoints(), before, 'same endpoints, same addresses');
  t.equal(c.status().hosts.length, 3, 'a runtime per stored host');
  await c.checkDrift(); // nothing ready: a no-op
  t.ok(await c.settled(5000));
});

t.test('a stored document that no longer validates: the controller starts, reports it and manages no switch', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ctl-unit-'));
  const store = await EmbeddedStore.open({ dir });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const d = doc(await hosts());
  let c = await Controller.start({ store, advertise: ['tcp:127.0.0.1:1'], openflow: { host: '127.0.0.1', port: 0 }, driftIntervalMs: 0 });
  await c.apply(d);
  const alloc = c.model()!.alloc;
  const ips = c.endpoints().map((e) => [e.id, e.ip]);
  await c.close();
  // As if a newer release validated more strictly: the stored document is now invalid.
  const stale = structuredClone(d);
  stale.tenants[0]!.endpoints.push({ name: 'x', network: 'nope', host: 'host1' });
  await store.put(TOPOLOGY_KEY, JSON.stringify({ generation: 7, doc: stale, alloc }));
  c = await Controller.start({ store, advertise: ['tcp:127.0.0.1:1'], openflow: { host: '127.0.0.1', port: 0 }, driftIntervalMs: 0 });
  t.teardown(() => c.close());
  const s = c.status();
  t.match(s, { generation: 7, hosts: [], topologyError: /invalid topology: 1 error.*\/tenants\/0\/endpoints\/2\/network/s }, 'started; no runtime, so no switch is touched; the reason is in the status');
  t.equal(c.model(), null);
  const r = await c.apply(d);
  t.equal(r.generation, 8, 'a valid apply takes over from the stored generation');
  t.equal(c.status().topologyError, undefined);
  t.equal(c.status().hosts.length, 3);
  t.same(c.endpoints().map((e) => [e.id, e.ip]), ips, 'with the stored allocation');
});

t.test('a host removed from the topology is reported', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ctl-unit-'));
  const store = await EmbeddedStore.open({ dir });
  const c = await Controller.start({ store, advertise: ['tcp:127.0.0.1:1'], openflow: { host: '127.0.0.1', port: 0 }, driftIntervalMs: 0 });
  t.teardown(async () => {
    await c.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const events: ControllerEvent[] = [];
  c.on('event', (e) => events.push(e));
  const d = doc(await hosts());
  await c.apply(d);
  t.equal(c.status().removedHosts, undefined);
  const without3 = structuredClone(d);
  without3.hosts = (d.hosts as { name: string }[]).filter((h) => h.name !== 'host3');
  without3.tenants[0]!.endpoints = without3.tenants[0]!.endpoints.filter((e) => e.host !== 'host3');
  await c.apply(without3);
  t.same(c.status().removedHosts, ['host3'], 'status names it');
  t.same(c.status().hosts.map((h) => h.name), ['host1', 'host2']);
  t.ok(events.some((e) => e.type === 'error' && e.host === 'host3' && /removed from the topology.*keeps its last flows/.test(e.message)), 'an event says its switch keeps its flows');
  await c.apply(d);
  t.equal(c.status().removedHosts, undefined, 'back in the topology: no longer reported');
});

t.test('daemon: options, token, API, clean stop', async (t) => {
  t.same(storeConfig('embedded', '/x'), { kind: 'embedded', dir: '/x/store' });
  t.same(storeConfig('etcd:http://127.0.0.1:2379,http://127.0.0.2:2379', '/x'), { kind: 'etcd', endpoints: ['http://127.0.0.1:2379', 'http://127.0.0.2:2379'] });
  t.throws(() => storeConfig('etcd:nope', '/x'), { code: 'EUSAGE' });
  t.throws(() => storeConfig('redis', '/x'), { code: 'EUSAGE' });
  t.same(parseHostPort('0.0.0.0:6653', 'x'), { host: '0.0.0.0', port: 6653 });
  t.same(parseHostPort(':6653', 'x'), { host: '0.0.0.0', port: 6653 });
  t.throws(() => parseHostPort('6653', '--openflow'), { code: 'EUSAGE', message: /--openflow must be host:port/ });

  const dir = mkdtempSync(join(tmpdir(), 'tenet-ctl-daemon-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const base = { stateDir: dir, api: '127.0.0.1:0', store: 'embedded', driftIntervalS: 0, auth: true, logger: pino({ level: 'silent' }) };
  await t.rejects(startDaemon({ ...base, openflow: '0.0.0.0:0' }), { code: 'EUSAGE', message: /--advertise/ }, 'a wildcard OpenFlow address needs --advertise');
  await t.rejects(startDaemon({ ...base, openflow: '127.0.0.1:0', advertise: 'http://x' }), { code: 'EUSAGE' });
  const d = await startDaemon({ ...base, openflow: '127.0.0.1:0', advertise: 'tcp:127.0.0.1:6653' });
  t.teardown(() => d.close());
  t.equal(statSync(join(dir, 'token')).mode & 0o777, 0o600, 'token file 0600');
  t.equal(d.token, readFileSync(join(dir, 'token'), 'utf8').trim());
  const health = (await (await fetch(`${d.api.url}/healthz`)).json()) as { ok: boolean; generation: number };
  t.same(health, { ok: true, generation: 0 });
  t.equal((await fetch(`${d.api.url}/v1/status`)).status, 401, 'auth on by default');
  const st = await fetch(`${d.api.url}/v1/status`, { headers: { authorization: `Bearer ${d.token}` } });
  t.equal(st.status, 200);
  await d.close();
  await d.close(); // idempotent
});

t.test('applyPlacement refuses a placement computed from an older record (ECONFLICT; r3#7)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ctl-unit-'));
  const store = await EmbeddedStore.open({ dir });
  const c = await Controller.start({ store, advertise: ['tcp:127.0.0.1:1'], openflow: { host: '127.0.0.1', port: 0 }, driftIntervalMs: 0 });
  t.teardown(async () => {
    await c.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const d = doc(await hosts());
  await c.apply(d);
  const seen = c.schedulingState().modRevision;
  // A user change lands between the scheduler's read and its write.
  await c.apply({ ...d, tenants: [...(d.tenants as unknown[]), { name: 'other', networks: [{ name: 'n', subnet: '10.9.0.0/24' }] }] });
  const p = { assignments: [], unplaceable: [], at: new Date().toISOString() };
  const err = await c.applyPlacement(p, undefined, seen).then(() => undefined, (e: Error & { code?: string }) => e);
  t.equal(err?.code, 'ECONFLICT', 'stale: refused');
  t.equal(c.topology().generation, 2, 'nothing stored');
  const ok = await c.applyPlacement(p, undefined, c.schedulingState().modRevision);
  t.equal(ok.generation, 3, 'computed from the current record: stored');
  t.equal(((c.topology().doc as { tenants: { name: string }[] }).tenants).map((x) => x.name).includes('other'), true, 'with the user change kept');
});
