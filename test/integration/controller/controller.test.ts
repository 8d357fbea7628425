/**
 * The controller on a real 3-host lab, in-process: a topology is realized on every
 * host and carries real pings; a change touches only the affected flows; a flow
 * deleted by hand comes back through the drift check with a `drift` event; an
 * invalid document changes nothing anywhere; a host whose OVSDB is dead is
 * reported unreachable while the others realize.
 */
import t from 'tap';
import { TopologyError } from '../../../src/model/index.js';
import { addEndpointContainers, endpointContainerName } from '../../../src/lab/index.js';
import { TOPOLOGY_KEY, type ControllerEvent } from '../../../src/controller/index.js';
import { withLab } from '../../helpers/lab.js';
import { freePort, until } from '../../helpers/net.js';
import { dumpFlows, sleep, smallTopology, startController, waitBound } from './helpers.js';

const HOSTS = ['host1', 'host2', 'host3'];

t.test('controller on a 3-host lab', async (t) => {
  await withLab(t, { hosts: 3 }, async (lab) => {
    const { controller, store, events } = await startController(t, lab, { driftIntervalMs: 500 });
    const doc = smallTopology(lab.state);

    // ---- 1. basic realize
    const started = performance.now();
    const r1 = await controller.apply(doc);
    t.equal(r1.generation, 1, 'first apply is generation 1');
    t.ok(r1.changed);
    t.same(r1.plan.hosts.map((h) => h.host), HOSTS, 'a plan per host');
    const s1 = await controller.waitRealized(1, 30_000);
    const realizeMs = performance.now() - started;
    t.comment(`generation 1 realized on 3 hosts in ${realizeMs.toFixed(0)} ms (from apply, hosts connecting for the first time)`);
    t.ok(s1.realized, 'realized');
    t.same(s1.hosts.map((h) => [h.name, h.state, h.realizedGeneration]), HOSTS.map((h) => [h, 'ready', 1]), 'every host ready at generation 1');
    for (const h of s1.hosts) t.match(h.datapathId, /^00007e7e[0-9a-f]{8}$/, `${h.name}: Tenet's datapath id`);
    const stored = await store.get(TOPOLOGY_KEY);
    t.equal(JSON.parse(stored!.value).generation, 1, 'the store holds generation 1');

    const eps = controller.endpoints();
    t.equal(eps.length, 4);
    for (const e of eps) t.match(e, { ip: /^10\.0\.0\.\d+\/24$/, gateway: '10.0.0.1', mac: /^[0-9a-f:]{17}$/ }, `${e.id} has IPAM's address`);
    await addEndpointContainers(lab.name, lab.state, eps, { concurrency: 2 });
    await waitBound(controller, eps.map((e) => e.id));
    for (const h of controller.status().hosts) {
      const flows = await dumpFlows(lab, h.name);
      t.equal(flows.size, h.flows, `${h.name}: the switch holds the ${h.flows} flows the controller compiled`);
      t.ok(h.flows > 20, `${h.name}: ${h.flows} flows`);
    }
    t.equal(controller.status().hosts.find((h) => h.name === 'host1')?.bindings, 2, 'host1 has two bindings');
    const ip = (id: string) => eps.find((e) => e.id === id)!.ip!.split('/')[0]!;
    const name = (id: string) => endpointContainerName(eps.find((e) => e.id === id)!);
    // The userspace datapath drops the first packet into a tunnel while it resolves the underlay next hop: warm up.
    await lab.ping(name('acme/web-1'), ip('acme/web-2'), { count: 1 });
    await lab.ping(name('globex/a'), ip('globex/b'), { count: 1 });
    const p1 = await lab.ping(name('acme/web-1'), ip('acme/web-2'), { count: 3 });
    t.ok(p1.ok, `acme web-1 (host1) pings web-2 (host2): ${p1.received}/${p1.sent}`);
    const p2 = await lab.ping(name('globex/a'), ip('globex/b'), { count: 3 });
    t.ok(p2.ok, `globex a (host1) pings b (host3): ${p2.received}/${p2.sent}`);
    t.ok(
      events.some((e) => e.type === 'binding' && e.ifaceId === 'acme/web-1' && typeof e.ofport === 'number'),
      'a binding event for acme/web-1',
    );

    // ---- 2. only the affected flows change
    await sleep(1200); // durations reach >= 1 s
    const before = new Map(await Promise.all(HOSTS.map(async (h) => [h, await dumpFlows(lab, h)] as const)));
    const doc2 = structuredClone(doc);
    const acme = doc2.tenants[0] as { endpoints: unknown[]; policies: unknown[] };
    acme.endpoints.push({ name: 'web-3', network: 'web', host: 'host3' });
    acme.policies.push({ name: 'http', from: {}, to: {}, protocol: 'tcp', ports: [80], action: 'allow' });
    const plan2 = await controller.plan(doc2);
    t.equal(plan2.generation, 2);
    t.equal(controller.topology().generation, 1, 'plan stores nothing');
    const applyAt = performance.now();
    const r2 = await controller.apply(doc2);
    t.equal(r2.generation, 2);
    t.same(
      r2.plan.hosts.map((h) => h.summary),
      plan2.hosts.map((h) => h.summary),
      'apply did what plan said',
    );
    t.ok((await controller.waitRealized(2, 30_000)).realized, 'generation 2 realized');
    t.comment(`generation 2 (an endpoint on a new host pair: the hosts already have their tunnels, a full mesh; a policy) realized on 3 hosts ${(performance.now() - applyAt).toFixed(0)} ms after apply()`);
    t.ok(await controller.settled(10_000));
    const eps2 = controller.endpoints();
    t.equal(eps2.find((e) => e.id === 'acme/web-1')?.ip, eps.find((e) => e.id === 'acme/web-1')?.ip, 're-apply keeps existing addresses (previous allocation)');
    for (const h of HOSTS) {
      const hp = r2.plan.hosts.find((x) => x.host === h)!;
      t.comment(`${h}: ${hp.summary}${hp.hitless ? ' (hitless)' : ' (disruptive)'}`);
      const after = await dumpFlows(lab, h);
      const added = new Set([...hp.add, ...hp.modify]);
      const deleted = new Set(hp.delete);
      // A modified flow keeps its identity (table, priority, match) and changes its text: its old text goes too.
      const identity = (f: string) => f.replace(/^cookie=\S+ /, '').replace(/ actions=.*/, '');
      const modified = new Set(hp.modify.map(identity));
      const untouched = [...before.get(h)!].filter(([text]) => !deleted.has(text) && !modified.has(identity(text)) && !added.has(text));
      const vanished = untouched.filter(([text]) => !after.has(text)).map(([text]) => text);
      t.same(vanished, [], `${h}: every flow the plan neither deletes nor modifies is still there`);
      const reAdded = untouched.filter(([text]) => after.get(text)! < 1);
      t.same(reAdded, [], `${h}: every untouched flow keeps its duration`);
      t.ok(untouched.length > 0, `${h}: ${untouched.length} flows untouched`);
      // Output flows into a tunnel this change creates cannot be planned (its ofport does not exist yet): they come on top.
      const fresh = [...after].filter(([, d]) => d < 1).map(([text]) => text);
      const unplanned = fresh.filter((f) => !added.has(f));
      t.ok(unplanned.every((f) => /table=60, .*set_field:0x[0-9a-f]+->tun_id,output:\d+$/.test(f)), `${h}: new flows beyond the plan only output to the new tunnel (${unplanned.length})`);
      t.same(fresh.filter((f) => added.has(f)).sort(), [...added].sort(), `${h}: every planned add/modify is new`);
      for (const d of deleted) t.notOk(after.has(d), `${h}: deleted flow gone`);
    }
    t.ok(r2.plan.hosts.some((h) => h.add.length > 0), 'the change added flows somewhere');

    // ---- 5. drift: a flow deleted by hand is restored and reported
    const flows2 = await dumpFlows(lab, 'host2');
    const victim = [...flows2.keys()].find((f) => /in_port=/.test(f) && /table=0|^cookie=\S+ priority/.test(f)) ?? [...flows2.keys()][0]!;
    const match = victim.replace(/^cookie=\S+ /, '').replace(/ actions=.*/, '');
    const driftSeen = new Promise<ControllerEvent>((resolve) => {
      const on = (e: ControllerEvent) => {
        if (e.type === 'drift' && e.host === 'host2') {
          controller.off('event', on);
          resolve(e);
        }
      };
      controller.on('event', on);
    });
    await lab.ofctl('host2', '--strict', 'del-flows', 'br-int', match);
    // No check that it is gone: the next drift check (every 500 ms) may restore it before a dump could show it.
    const drift = await Promise.race([driftSeen, sleep(10_000).then(() => undefined)]);
    t.ok(drift, 'a drift event came');
    if (drift?.type === 'drift') {
      t.equal(drift.summary, '+1 flows');
      t.same(drift.flows, [`+ ${victim}`], 'the event names the restored flow in ovs-ofctl syntax');
    }
    t.ok((await dumpFlows(lab, 'host2')).has(victim), 'the flow is back on host2');
    // A tunnel port deleted by hand: recreated by the setup step, reported, traffic flows again.
    const portDrift = new Promise<ControllerEvent>((resolve) => {
      const on = (e: ControllerEvent) => {
        if (e.type === 'drift' && e.host === 'host2' && e.summary.startsWith('OVSDB')) {
          controller.off('event', on);
          resolve(e);
        }
      };
      controller.on('event', on);
    });
    await lab.vsctl('host2', 'del-port', 'br-int', 'vx-host1');
    const pd = await Promise.race([portDrift, sleep(10_000).then(() => undefined)]);
    t.match(pd, { type: 'drift', summary: 'OVSDB: + port vx-host1' }, 'the deleted tunnel port is recreated and reported');
    t.equal((await lab.vsctl('host2', 'port-to-br', 'vx-host1')).stdout.trim(), 'br-int', 'vx-host1 is back on br-int');
    await until('web-1 reaches web-2 again', async () => (await lab.ping(name('acme/web-1'), ip('acme/web-2'), { count: 1, timeoutS: 1 })).ok, 15_000, 50);
    t.ok(await controller.settled(10_000));

    const metricsText = await controller.metrics.metrics();
    t.match(metricsText, /tenet_drift_repairs_total\{host="host2"\} 2/, 'both drift repairs counted');
    t.match(metricsText, /tenet_topology_generation 2/);

    // ---- 7. an invalid document: every issue, nothing stored, switches unchanged
    const flowsBefore = await Promise.all(HOSTS.map((h) => dumpFlows(lab, h)));
    const bad = structuredClone(doc2);
    const badAcme = bad.tenants[0] as { networks: unknown[]; endpoints: unknown[] };
    badAcme.networks.push({ name: 'db', subnet: '10.0.0.128/25' }); // overlaps web
    badAcme.endpoints.push({ name: 'x', network: 'nope', host: 'host9' });
    for (const f of [(d: unknown) => controller.plan(d), (d: unknown) => controller.apply(d)]) {
      const err = await f(bad).then(
        () => undefined,
        (e: unknown) => e,
      );
      t.ok(err instanceof TopologyError, 'TopologyError');
      if (err instanceof TopologyError) {
        t.equal(err.code, 'ETOPOLOGY');
        t.ok(err.issues.length >= 3, `every issue reported (${err.issues.length}): ${err.issues.map((i) => i.path).join(', ')}`);
        t.ok(err.issues.some((i) => i.path.startsWith('/tenants/0/networks/1')), 'the overlap, by path');
        t.ok(err.issues.some((i) => i.path.startsWith('/tenants/0/endpoints/3')), 'the bad endpoint, by path');
      }
    }
    t.equal(controller.topology().generation, 2, 'generation unchanged');
    t.equal(JSON.parse((await store.get(TOPOLOGY_KEY))!.value).generation, 2, 'nothing stored');
    await sleep(300);
    const flowsAfter = await Promise.all(HOSTS.map((h) => dumpFlows(lab, h)));
    HOSTS.forEach((h, i) => {
      t.same([...flowsAfter[i]!.keys()].sort(), [...flowsBefore[i]!.keys()].sort(), `${h}: same flows`);
      t.ok([...flowsAfter[i]!].every(([f, d]) => d >= flowsBefore[i]!.get(f)!), `${h}: no flow re-added`);
    });

    // ---- 6. a host whose OVSDB is dead: reported unreachable, the others realize
    const doc3 = structuredClone(doc2);
    const deadPort = await freePort({ host: '127.0.0.1' });
    (doc3.hosts as unknown[]).push({ name: 'host4', underlayIp: '198.51.100.250', ovsdb: `tcp:127.0.0.1:${deadPort}`, datapathType: 'netdev' });
    (doc3.tenants[0] as { endpoints: unknown[] }).endpoints.push({ name: 'web-4', network: 'web', host: 'host4' });
    const r3 = await controller.apply(doc3);
    t.equal(r3.generation, 3);
    t.equal(r3.plan.hosts.find((h) => h.host === 'host4')?.reachable, false, 'host4 planned as unreachable');
    const s3 = await controller.waitRealized(3, 30_000);
    const h4 = s3.hosts.find((h) => h.name === 'host4')!;
    t.equal(h4.state, 'unreachable', 'host4 unreachable');
    t.match(h4.lastError, /OVSDB tcp:127\.0\.0\.1:\d+.*(ECONNREFUSED|refused)/i, `with the reason: ${h4.lastError}`);
    t.same(
      s3.hosts.filter((h) => h.name !== 'host4').map((h) => [h.name, h.state, h.realizedGeneration]),
      HOSTS.map((h) => [h, 'ready', 3]),
      'the three others realized generation 3',
    );
    t.ok(s3.realized, 'realized counts reachable hosts only');
    const p3 = await lab.ping(name('acme/web-1'), ip('acme/web-2'), { count: 2 });
    t.ok(p3.ok, 'traffic still flows');
  });
});
