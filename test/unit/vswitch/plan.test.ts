/** The pure planners over a hand-built view (shaped like the replica's rows). */
import t from 'tap';
import type { Row } from '../../../src/ovsdb/index.js';
import { PEER_KEY, type SwitchView, VswitchError, planBridge, planTunnels, tunnelPortName } from '../../../src/vswitch/index.js';

const u = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function view(tables: Record<string, Record<string, Row>>): SwitchView {
  return { rows: (name) => new Map(Object.entries(tables[name] ?? {})) };
}

const ROOT = { [u(1)]: { bridges: [u(10)] } };
const BR = (extra: Partial<Row> = {}): Record<string, Row> => ({
  [u(10)]: {
    name: 'br-int',
    datapath_type: 'netdev',
    fail_mode: 'secure',
    other_config: { 'disable-in-band': 'true' },
    protocols: ['OpenFlow13'],
    controller: [u(20)],
    ports: [u(30)],
    external_ids: {},
    ...extra,
  },
});
const base = () => ({
  Open_vSwitch: ROOT,
  Bridge: BR(),
  Controller: { [u(20)]: { target: 'tcp:192.0.2.1:6653' } },
  Port: { [u(30)]: { name: 'br-int', interfaces: [u(40)], external_ids: {} } },
  Interface: { [u(40)]: { name: 'br-int', type: 'internal', options: {}, external_ids: {}, ofport: 65534 } },
});
const spec = { name: 'br-int', datapathType: 'netdev', controllers: ['tcp:192.0.2.1:6653'] };

t.test('port names', async (t) => {
  t.equal(tunnelPortName('host2'), 'vx-host2');
  const long = tunnelPortName('a-very-long-host-name.example.org');
  t.match(long, /^vx-[0-9a-f]{12}$/);
  t.ok(long.length <= 15);
  t.equal(tunnelPortName('a-very-long-host-name.example.org'), long, 'stable');
  t.not(tunnelPortName('bad name'), 'vx-bad name');
});

t.test('planBridge', async (t) => {
  t.equal(planBridge(view(base()), spec), null, 'matching bridge: nothing to do');
  const created = planBridge(view({ ...base(), Bridge: {} }), spec)!;
  t.same(created.map((o) => o.op), ['wait', 'insert', 'insert', 'insert', 'insert', 'mutate']);
  const drift = planBridge(view({ ...base(), Bridge: BR({ fail_mode: null, datapath_type: 'system', protocols: ['OpenFlow10'], other_config: { x: '1' } }) }), spec)!;
  const upd = drift.find((o) => o.op === 'update') as { row: Record<string, unknown> };
  t.same(upd.row, { datapath_type: 'netdev', fail_mode: 'secure', other_config: { x: '1', 'disable-in-band': 'true' }, protocols: ['OpenFlow13'] });
  t.equal(drift[0]!.op, 'wait');
  const detached = planBridge(view({ ...base(), Open_vSwitch: { [u(1)]: { bridges: [] } }, Port: {} }), spec)!;
  t.same(detached.map((o) => o.op), ['wait', 'insert', 'insert', 'mutate', 'mutate'], 'local port re-created, bridge re-attached');
  const ctl = planBridge(view(base()), { ...spec, controllers: ['tcp:192.0.2.1:6653', 'unix:/x'] })!;
  t.same(ctl.map((o) => o.op), ['wait', 'insert', 'update']);
  t.throws(() => planBridge(view({ ...base(), Open_vSwitch: {} }), spec), VswitchError);
  t.throws(() => planBridge(view(base()), { ...spec, protocols: ['OpenFlow10'] }), VswitchError);
});

t.test('planTunnels', async (t) => {
  const peers = [{ name: 'host2', remoteIp: '203.0.113.2' }];
  const tspec = { bridge: 'br-int', localIp: '203.0.113.1', peers };
  const p1 = planTunnels(view(base()), tspec);
  t.same(p1.summary, { added: ['vx-host2'], removed: [], updated: [] });
  t.same(p1.ops!.map((o) => o.op), ['wait', 'insert', 'insert', 'mutate']);
  // A port of ours that lost its interface row is replaced; a stale one removed; a foreign one kept.
  const v = base();
  v.Bridge = BR({ ports: [u(30), u(31), u(32), u(33)] });
  Object.assign(v.Port, {
    [u(31)]: { name: 'vx-host2', interfaces: [u(41)], external_ids: { [PEER_KEY]: 'host2' } },
    [u(32)]: { name: 'vx-host9', interfaces: [u(42)], external_ids: { [PEER_KEY]: 'host9' } },
    [u(33)]: { name: 'manual', interfaces: [u(43)], external_ids: {} },
  });
  Object.assign(v.Interface, {
    [u(42)]: { name: 'vx-host9', type: 'vxlan', options: {}, external_ids: {}, ofport: 3 },
    [u(43)]: { name: 'manual', type: 'vxlan', options: {}, external_ids: {}, ofport: 4 },
  });
  const p2 = planTunnels(view(v), tspec);
  t.same(p2.summary, { added: ['vx-host2'], removed: ['vx-host9', 'vx-host2'], updated: [] });
  const mut = p2.ops!.at(-1) as unknown as { mutations: [string, string, unknown[]][] };
  t.same(mut.mutations.map((m) => [m[1], m[2].length]), [['delete', 2], ['insert', 1]]);
  t.throws(() => planTunnels(view(base()), { ...tspec, bridge: 'nope' }), VswitchError);
  t.throws(() => planTunnels(view(base()), { ...tspec, peers: [...peers, ...peers] }), VswitchError);
});
