import t from 'tap';
import { OFPFC, OFPGC, parseFlow, parseGroup, type FlowMod, type FlowStats } from '../../../src/openflow/index.js';
import { diffMessages, diffState, flowIdentity, isEmpty, summarize } from '../../../src/reconcile/index.js';

const stats = (f: FlowMod): FlowStats => ({ ...f, durationSec: 5, durationNsec: 0, packetCount: 7n, byteCount: 700n });
const flow = (text: string) => parseFlow(text);
const group = (text: string) => parseGroup(text);

t.test('identity ignores match field order and content; content is cookie, timeouts, instructions', async (t) => {
  const a = flow('table=1,priority=10,ip,nw_dst=10.0.0.1,in_port=3 actions=output:1');
  const b = flow('table=1,priority=10,in_port=3,ip,nw_dst=10.0.0.1 actions=output:2');
  t.equal(flowIdentity(a), flowIdentity(b));
  t.not(flowIdentity(a), flowIdentity(flow('table=1,priority=11,ip,nw_dst=10.0.0.1,in_port=3 actions=output:1')), 'priority is identity');
  t.not(flowIdentity(a), flowIdentity(flow('table=1,priority=10,ip,nw_dst=10.0.0.0/24,in_port=3 actions=output:1')), 'mask is identity');
  const d = diffState({ flows: [b], groups: [] }, { flows: [stats(a)], groups: [] });
  t.equal(d.changeFlows.length, 1, 'same identity, other actions: a change');
  t.equal(d.changeFlows[0]!.desired, b);
  const cookie = diffState({ flows: [{ ...a, cookie: 9n }], groups: [] }, { flows: [stats(a)], groups: [] });
  t.equal(cookie.changeFlows.length, 1, 'a new cookie is a change');
  const same = diffState({ flows: [a], groups: [] }, { flows: [stats(a)], groups: [] });
  t.ok(isEmpty(same), 'stats (duration, counters) do not matter');
  t.equal(same.unchanged, 1);
  t.equal(summarize(same), 'no change');
});

t.test('adds, removes; foreign flows removed unless kept', async (t) => {
  const ours = (c: bigint) => c >> 48n === 0x7e7en;
  const keep = flow('cookie=0x7e7e000000000001,priority=5,ip actions=drop');
  const stale = flow('cookie=0x7e7e000000000002,priority=6,ip actions=drop');
  const foreign = flow('cookie=0x1,priority=7,ip actions=drop');
  const fresh = flow('cookie=0x7e7e000000000003,priority=8,ip actions=drop');
  const actual = { flows: [keep, stale, foreign].map(stats), groups: [] };
  const d = diffState({ flows: [keep, fresh], groups: [] }, actual, { isOurs: ours });
  t.same(d.addFlows, [fresh]);
  t.same(d.removeFlows.map((f) => f.cookie), [0x7e7e000000000002n, 0x1n], 'stale and foreign removed by default');
  const kept = diffState({ flows: [keep, fresh], groups: [] }, actual, { isOurs: ours, foreign: 'keep' });
  t.same(kept.removeFlows.map((f) => f.cookie), [0x7e7e000000000002n], 'foreign kept on request');
  t.equal(summarize(d), '+1 flows, -2 flows');
});

t.test('groups by id: add, change, remove; messages ordered for one bundle', async (t) => {
  const g1 = group('group_id=1,type=select,bucket=output:1,bucket=output:2');
  const g1b = group('group_id=1,type=select,bucket=weight:5,output:1,bucket=output:2');
  const g2 = group('group_id=2,type=all,bucket=output:3');
  const g3 = group('group_id=3,type=indirect,bucket=output:4');
  const f = flow('priority=1,ip actions=group:1');
  const old = flow('priority=2,arp actions=group:3');
  const d = diffState({ flows: [f], groups: [g1b, g2] }, { flows: [stats(old)], groups: [g1, g3] });
  t.same(d.addGroups.map((g) => g.groupId), [2]);
  t.same(d.changeGroups.map((g) => g.groupId), [1]);
  t.same(d.removeGroups.map((g) => g.groupId), [3]);
  const msgs = diffMessages(d);
  t.same(
    msgs.map((m) => `${m.type}:${m.command}`),
    [`group_mod:${OFPGC.ADD}`, `group_mod:${OFPGC.MODIFY}`, `flow_mod:${OFPFC.DELETE_STRICT}`, `flow_mod:${OFPFC.ADD}`, `group_mod:${OFPGC.DELETE}`],
    'groups flows use come first, groups nothing uses any more come last',
  );
  t.equal(summarize(d), '+1 flows, -1 flows, +1 groups, ~1 groups, -1 groups');
});

t.test('a desired state with two flows of one identity is a bug, not a diff', async (t) => {
  const a = flow('priority=1,ip actions=drop');
  t.throws(() => diffState({ flows: [a, { ...a }], groups: [] }, { flows: [], groups: [] }), /two flows with identity/);
});
