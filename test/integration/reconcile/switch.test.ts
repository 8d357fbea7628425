/**
 * The reconciler against a real ovs-vswitchd: only the difference is applied
 * (untouched flows keep their duration), a fresh reconciler adopts what is
 * installed, hand-made changes are found and undone, and a rejected bundle
 * leaves the switch as it was.
 */
import t from 'tap';
import { BundleError, OpenFlowServer, formatFlow, parseFlow, parseGroup, type FlowMod } from '../../../src/openflow/index.js';
import { SwitchReconciler, type DesiredState, type ReconcileResult } from '../../../src/reconcile/index.js';
import { withLab } from '../../helpers/lab.js';

const COOKIE = 0x7e7e_0000_0000_0000n;
const ours = (c: bigint) => c >> 48n === 0x7e7en;

function flows(n: number, actions = (i: number) => `set_field:${1000 + i}->tun_id,output:${(i % 4) + 1}`): FlowMod[] {
  return Array.from({ length: n }, (_, i) =>
    parseFlow(`cookie=0x${(COOKIE + BigInt(i)).toString(16)},table=${i % 3},priority=${100 + i},ip,nw_dst=10.0.${i >> 8}.${i & 255} actions=${actions(i)}`),
  );
}

t.test('reconciler against ovs-vswitchd', async (t) => {
  await withLab(t, { hosts: 1 }, async (lab) => {
    const server = new OpenFlowServer({ echoIntervalMs: 1000, echoTimeoutMs: 10_000 });
    t.teardown(() => server.close());
    const { port } = await server.listen({ host: lab.state.mgmt.gateway, port: 0 });
    await lab.vsctl('host1', 'set-controller', 'br-int', `tcp:${lab.state.mgmt.gateway}:${port}`);
    const sw = await server.waitForSwitch(undefined, 20_000);

    /** flow text (no stats) -> duration in seconds, from ovs-ofctl itself */
    const dump = async () => {
      const out = (await lab.ofctl('host1', '--no-names', 'dump-flows', 'br-int')).stdout;
      const m = new Map<string, number>();
      for (const line of out.split('\n')) {
        const d = /duration=([\d.]+)s/.exec(line);
        if (!d) continue;
        // With stats shown ovs-ofctl prints table=0 too; formatFlow (like --no-stats) omits it.
        const text = line.replace(/ duration=[\d.]+s,| n_packets=\d+,| n_bytes=\d+,/g, '').replace(' table=0,', '').trim();
        m.set(text, Number(d[1]));
      }
      return m;
    };
    const printed = (s: DesiredState) => s.flows.map((f) => formatFlow(f)).sort();

    const group = parseGroup('group_id=7,type=select,bucket=output:1,bucket=output:2');
    const v1: DesiredState = { flows: [...flows(60), parseFlow(`cookie=0x${(COOKIE + 999n).toString(16)},priority=5,arp actions=group:7`)], groups: [group] };
    const rec = new SwitchReconciler(sw, { isOurs: ours });
    const applied: ReconcileResult[] = [];
    rec.on('applied', (r: ReconcileResult) => applied.push(r));
    const r1 = await rec.reconcile(v1);
    t.equal(r1.summary, '+61 flows, +1 groups');
    t.same([...(await dump()).keys()].sort(), printed(v1), 'the switch holds exactly the desired flows');
    t.match((await lab.ofctl('host1', 'dump-groups', 'br-int')).stdout, /group_id=7,type=select/);

    const again = await rec.reconcile(v1);
    t.equal(again.messages, 0, 'nothing to do the second time: no bundle sent');
    t.equal(applied.length, 1, 'one applied event');

    await new Promise((r) => setTimeout(r, 1200)); // let durations reach 1 s
    const v2: DesiredState = { flows: v1.flows.slice(), groups: v1.groups };
    v2.flows[3] = { ...v2.flows[3]!, instructions: parseFlow('priority=1 actions=drop').instructions }; // change
    v2.flows.splice(10, 1); // remove
    v2.flows.push(parseFlow(`cookie=0x${(COOKIE + 500n).toString(16)},table=2,priority=7,ipv6 actions=drop`)); // add
    const r2 = await rec.reconcile(v2);
    t.equal(r2.summary, '+1 flows, ~1 flows, -1 flows');
    t.equal(r2.messages, 3, 'three flow_mods in the bundle, nothing else');
    const after = await dump();
    t.same([...after.keys()].sort(), printed(v2));
    const changed = new Set([formatFlow(v2.flows[3]!), formatFlow(v2.flows.at(-1)!)]);
    const untouched = [...after].filter(([text]) => !changed.has(text));
    t.equal(untouched.length, v2.flows.length - 2);
    t.ok(untouched.every(([, d]) => d >= 1), 'untouched flows keep their duration (not re-added)');
    t.ok([...changed].every((text) => (after.get(text) ?? 9) < 1), 'changed and added flows are new');

    // A controller restart: a fresh reconciler on the connection adopts what is there.
    const adopted = await new SwitchReconciler(sw, { isOurs: ours }).reconcile(v2);
    t.equal(adopted.messages, 0, 'a fresh reconciler adopts the installed flows: nothing re-sent');

    // Drift: a flow deleted and a foreign one added by hand.
    const victim = formatFlow(v2.flows[0]!).replace(/^cookie=\S+ /, '').replace(/ actions=.*/, '');
    await lab.ofctl('host1', '--strict', 'del-flows', 'br-int', victim);
    await lab.ofctl('host1', 'add-flow', 'br-int', 'cookie=0x42,priority=9,udp actions=drop');
    const drifts: ReconcileResult[] = [];
    rec.on('drift', (r: ReconcileResult) => drifts.push(r));
    const d = await rec.checkDrift(v2);
    t.equal(d.summary, '+1 flows, -1 flows', 'drift found: one missing, one foreign');
    t.equal(drifts.length, 1, 'drift event emitted');
    t.same([...(await dump()).keys()].sort(), printed(v2), 'restored');
    t.equal((await rec.checkDrift(v2)).messages, 0, 'no drift left');

    // A bundle with one flow the switch rejects (unknown group) changes nothing.
    const bad: DesiredState = { flows: [...v2.flows.slice(5), parseFlow(`cookie=0x${(COOKIE + 777n).toString(16)},priority=3,ip actions=group:99`)], groups: v2.groups };
    const before = [...(await dump()).keys()].sort();
    await t.rejects(rec.reconcile(bad), BundleError, 'rejected');
    t.same([...(await dump()).keys()].sort(), before, 'switch unchanged after the rejected bundle');
    const recovered = await rec.reconcile(v2);
    t.equal(recovered.messages, 0, 'after a failure the reconciler re-reads the switch and finds it unchanged');

    // plan() on a reconciler that tracks nothing yet reads the switch but does not track that dump (it may run
    // alongside a reconcile): a change made after the plan is still seen by the first reconcile.
    const fresh = new SwitchReconciler(sw, { isOurs: ours });
    t.equal((await fresh.plan(v2)).addFlows.length, 0, 'plan of a fresh reconciler: nothing to add');
    await lab.ofctl('host1', '--strict', 'del-flows', 'br-int', victim);
    const first = await fresh.reconcile(v2);
    t.equal(first.summary, '+1 flows', 'the first reconcile after a plan reads the switch itself (finds the deleted flow)');
  });
});
