/**
 * The scheduler service in the real daemon on a 2-host lab, with agents simulated
 * only through the HTTP API (register, heartbeat, instances): placement written into
 * the topology (instances become endpoints on their hosts, realized on the switches),
 * a lease that expires moves its host's instances to the other host within TTL + one
 * interval (measured; same IP and MAC), a re-registration within the TTL reuses the
 * lease and moves nothing, and bad input is a 400 with paths that changes nothing.
 * The real agents are in test/integration/e2e/units.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient, ApiError } from '../../../src/api/index.js';
import { labTopologyHosts, startLabController } from '../../../src/lab/index.js';
import type { UnitInfo } from '../../../src/scheduler/index.js';
import { withLab } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';

const TTL_S = 2;

const hostOf = (units: UnitInfo[], id: string) => units.flatMap((u) => u.instances).find((i) => i.id === id)?.host;

t.test('scheduler in the daemon: placement, lease expiry, re-registration, bad input', async (t) => {
  await withLab(t, { hosts: 2 }, async (lab) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tenet-sched-'));
    t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
    const ctl = await startLabController(lab.state, { stateDir, driftIntervalS: 0, args: ['--agent-ttl', String(TTL_S)] });
    t.teardown(() => ctl.stop());
    const api = new ApiClient({ url: ctl.url, ...(ctl.token ? { token: ctl.token } : {}) });

    const doc = {
      version: 1,
      hosts: labTopologyHosts(lab.state),
      tenants: [{ name: 'acme', networks: [{ name: 'web', subnet: '10.0.7.0/24' }] }],
      units: [
        { name: 'web@1..2', tenant: 'acme', network: 'web', command: ['sleep', 'infinity'], constraints: { conflicts: ['web@*'] }, services: [{ name: 'web', port: 8080 }] },
        { name: 'cache', tenant: 'acme', network: 'web', command: ['sleep', 'infinity'], resources: { memory: '256Mi' } },
      ],
    };
    // Before any unit: host1's agent is live (1Gi), no placement stored yet.
    await api.apply({ ...doc, units: [] });
    await api.registerAgent('host1', { version: 'sim', resources: { memory: 2 ** 30 } });
    const early = await api.submitUnits([{ name: 'huge', tenant: 'acme', network: 'web', command: 'x', resources: { memory: '64Gi' } }]).then(() => undefined, (e: ApiError) => e);
    t.match(early, { status: 400, issues: [{ path: '/units/0/resources/memory', message: /asks 64Gi; the largest host offers 1Gi/ }] }, 'the first submit is checked against the live agents (r3#3)');
    // A registration whose host entry would break the document: 400 naming the field (r3#2).
    const dupIp = await api.registerAgent('host9', { version: 'sim', underlayIp: doc.hosts[0]!.underlayIp, ovsdb: 'tcp:127.0.0.1:6640' }).then(() => undefined, (e: ApiError) => e);
    t.match(dupIp, { status: 400, message: /\/underlayIp: underlay IP .* is host host1's in the document/ });
    const badIp = await api.registerAgent('host9', { version: 'sim', underlayIp: '999.1.1.1', ovsdb: 'tcp:127.0.0.1:6640' }).then(() => undefined, (e: ApiError) => e);
    t.match(badIp, { status: 400, message: /\/underlayIp/ });
    // That early agent's lease (no heartbeats) lapses before the units come.
    await until('the early agent expired', async () => (await api.agents()).every((a) => !a.alive), (TTL_S + 5) * 1000);
    const first = await api.apply(doc);
    t.equal(first.generation, 2);
    // No agent yet: nothing to place on, every instance explained.
    await until('unplaceable explained', async () => (await api.units()).every((u) => u.unplaceable !== undefined), 10_000);
    t.match((await api.units())[1], { name: 'cache', instances: [{ id: 'cache' }], unplaceable: /cache: / });

    // Two simulated agents, heartbeating every ttl/3.
    const leases = new Map<string, string>();
    const beating = new Set<string>();
    const register = async (host: string) => {
      const r = await api.registerAgent(host, { version: 'sim', resources: { memory: 2 ** 30 }, socket: `/tmp/${host}.sock` });
      leases.set(host, r.leaseId);
      beating.add(host);
      return r;
    };
    const timer = setInterval(() => {
      for (const h of beating) void api.heartbeat(h, leases.get(h)!).catch(() => undefined);
    }, (TTL_S * 1000) / 3);
    t.teardown(() => clearInterval(timer));
    const r1 = await register('host1');
    t.equal(r1.ttlS, TTL_S);
    await register('host2');

    await until('every instance placed', async () => (await api.units()).every((u) => !u.unplaceable && u.instances.every((i) => i.host && i.ip)), 15_000);
    const placed = await api.units();
    t.not(hostOf(placed, 'web@1'), hostOf(placed, 'web@2'), 'conflicts: the web instances on different hosts');
    const eps = await api.endpoints({ tenant: 'acme' });
    t.same(eps.map((e) => e.name).sort(), ['cache', 'web-1', 'web-2'], 'one endpoint per instance');
    t.same(eps.find((e) => e.name === 'web-1')!.labels, { unit: 'web-1', service: 'web' });
    for (const e of eps) t.equal(e.host, hostOf(placed, e.name === 'cache' ? 'cache' : e.name.replace('-', '@')), `${e.name} on its assigned host`);
    const gen = (await api.status()).generation;
    const realized = await api.wait(gen, 60);
    t.ok(realized.realized, `generation ${gen} (with the placement) realized on both switches`);

    // Assignments: what each agent would run, with the controller's addresses.
    const h1 = await api.assignments('host1', 0, 1);
    const onHost1 = placed.flatMap((u) => u.instances).filter((i) => i.host === 'host1').map((i) => i.id).sort();
    t.same(h1.assignments.map((a) => a.id), onHost1);
    const a0 = h1.assignments[0]!;
    t.match(a0, { tenant: 'acme', network: 'web', desiredState: 'launched', restart: 'always', endpoint: { id: /^acme\//, ip: /^10\.0\.7\.\d+\/24$/, mac: /^0a:/, gateway: '10.0.7.1' } });
    // A long poll with the current index waits; a stop of a unit on host1 answers it.
    const poll = api.assignments('host1', h1.index, 20);
    const unitOnHost1 = placed.find((u) => u.instances.some((i) => i.host === 'host1'))!.name;
    await api.stopUnit(unitOnHost1);
    const changed = await poll;
    t.not(changed.index, h1.index, 'the long poll answers when the host\'s assignments change');
    t.ok(changed.assignments.some((a) => a.desiredState === 'loaded'), 'stopped: loaded, not launched');
    await api.startUnit(unitOnHost1);

    // A restart of host1's agent within the TTL: the same lease, nothing moves.
    const genBefore = (await api.status()).generation;
    const again = await api.registerAgent('host1', { version: 'sim', resources: { memory: 2 ** 30 }, socket: '/tmp/host1.sock' });
    t.equal(again.leaseId, leases.get('host1'), 're-registration within the TTL reuses the live lease');
    await new Promise((r) => setTimeout(r, 500));
    t.equal((await api.status()).generation, genBefore, 'no new placement');

    // host2's agent stops heartbeating: within TTL + one interval its instances run on host1.
    await api.reportInstances('host2', leases.get('host2')!, []);
    const moving = placed.flatMap((u) => u.instances).filter((i) => i.host === 'host2');
    t.ok(moving.length > 0, 'host2 has instances to lose');
    const ipBefore = new Map(eps.map((e) => [e.name, e.ip]));
    beating.delete('host2');
    const stoppedAt = Date.now();
    let movedAt = 0;
    await until(
      'host2\'s instances re-placed',
      async () => {
        const u = await api.units();
        const ok = moving.every((m) => {
          const now = u.flatMap((x) => x.instances).find((i) => i.id === m.id);
          // web@N conflicts with the web instance on host1: unplaceable, with a reason; the rest move.
          return now?.host === 'host1' || (now && !now.host);
        });
        if (ok && !movedAt) movedAt = Date.now();
        return ok;
      },
      (TTL_S + 10) * 1000,
      50,
    );
    const seconds = (movedAt - stoppedAt) / 1000;
    t.comment(`host2's instances re-placed ${seconds.toFixed(2)} s after its last heartbeat (TTL ${TTL_S} s)`);
    const after = await api.units();
    const cache = after.flatMap((u) => u.instances).find((i) => i.id === 'cache')!;
    if (moving.some((m) => m.id === 'cache')) {
      t.equal(cache.host, 'host1', 'cache moved to host1');
      t.equal(cache.ip, ipBefore.get('cache'), 'same IP after the move');
    }
    const webLost = moving.find((m) => m.id.startsWith('web@'));
    if (webLost) t.match(after.find((u) => u.name === 'web@1..2')!.unplaceable, new RegExp(`${webLost.id.replace('.', '\\.')}: .*conflict`), 'a web instance that cannot move says why');
    t.match((await api.agents()).filter((a) => a.host !== 'host9'), [{ host: 'host1', alive: true }, { host: 'host2', alive: false }]);
    const hb = await api.heartbeat('host2', leases.get('host2')!).catch((e: ApiError) => e);
    t.ok(hb instanceof ApiError && hb.status === 404 && hb.error === 'lease-expired', 'the old lease: 404 lease-expired');
    const log = readFileSync(ctl.logFile, 'utf8');
    const m = /"host":"host2","ms":(\d+)[^\n]*rescheduled after lease expiry/.exec(log);
    t.ok(m, 'the daemon logs the time from expiry to the new placement');
    if (m) t.comment(`daemon: lease expiry -> placement stored in ${m[1]} ms`);

    // Bad input: 400 with paths, nothing stored.
    const g = (await api.status()).generation;
    const bad = async (units: unknown[]) => api.submitUnits(units).then(() => undefined, (e: ApiError) => e);
    const big = await bad([{ name: 'huge', tenant: 'acme', network: 'web', command: 'x', resources: { memory: '64Gi' } }]);
    t.match(big, { status: 400, issues: [{ path: '/units/2/resources/memory', message: /asks 64Gi; the largest host offers 1Gi/ }] });
    const cycle = await bad([
      { name: 'a', tenant: 'acme', network: 'web', command: 'x', constraints: { machineOf: 'b' } },
      { name: 'b', tenant: 'acme', network: 'web', command: 'x', constraints: { machineOf: 'a' } },
    ]);
    t.match(cycle, { status: 400, issues: [{ path: /^\/units\/[23]\/constraints\/machineOf$/, message: /machineOf cycle/ }] });
    const net = await bad([{ name: 'n', tenant: 'acme', network: 'nope', command: 'x' }]);
    t.match(net, { status: 400, issues: [{ path: '/units/2/network', message: /unknown network "nope"/ }] });
    t.equal((await api.status()).generation, g, 'nothing stored');
    t.same((await api.units()).map((u) => u.name), ['web@1..2', 'cache']);

    // A daemon restart keeps the placement: same generation, same hosts and addresses.
    const unitsBefore = await api.units();
    await ctl.stop();
    const ctl2 = await startLabController(lab.state, { stateDir, driftIntervalS: 0, args: ['--agent-ttl', String(TTL_S)] });
    t.teardown(() => ctl2.stop());
    const api2 = new ApiClient({ url: ctl2.url, ...(ctl2.token ? { token: ctl2.token } : {}) });
    t.equal((await api2.status()).generation, g, 'restart: same generation');
    t.same((await api2.units()).map((u) => u.instances.map((i) => [i.id, i.host, i.ip])), unitsBefore.map((u) => u.instances.map((i) => [i.id, i.host, i.ip])), 'restart: same placement and addresses');
    const realizedAgain = await api2.wait(g, 60);
    t.ok(realizedAgain.realized, 'restart: every switch holds the generation');
    await new Promise((r) => setTimeout(r, 1000));
    t.equal((await api2.status()).generation, g, 'restart: the new leader finds nothing to change (host1 still heartbeating)');
  });
});
