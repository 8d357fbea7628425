/** planBridge's controller-facing options: a fixed datapath id and the controller's max_backoff. */
import t from 'tap';
import type { Row } from '../../../src/ovsdb/index.js';
import { type SwitchView, VswitchError, planBridge } from '../../../src/vswitch/index.js';

const u = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const view = (tables: Record<string, Record<string, Row>>): SwitchView => ({ rows: (name) => new Map(Object.entries(tables[name] ?? {})) });
const tables = (otherConfig: Record<string, string>, ctl: Row) => ({
  Open_vSwitch: { [u(1)]: { bridges: [u(10)] } },
  Bridge: {
    [u(10)]: { name: 'br-int', datapath_type: 'netdev', fail_mode: 'secure', other_config: otherConfig, protocols: ['OpenFlow13'], controller: [u(20)], ports: [u(30)], external_ids: {} },
  },
  Controller: { [u(20)]: ctl },
  Port: { [u(30)]: { name: 'br-int', interfaces: [u(40)], external_ids: {} } },
  Interface: { [u(40)]: { name: 'br-int', type: 'internal', options: {}, external_ids: {}, ofport: 65534 } },
});
const spec = { name: 'br-int', datapathType: 'netdev', controllers: ['tcp:192.0.2.1:6653'], datapathId: '00007e7e00000001', controllerMaxBackoffMs: 1000 };

t.test('datapath id and max_backoff', async (t) => {
  const done = tables({ 'disable-in-band': 'true', 'datapath-id': '00007e7e00000001' }, { target: 'tcp:192.0.2.1:6653', max_backoff: 1000 });
  t.equal(planBridge(view(done), spec), null, 'already set: nothing to send');

  const fresh = tables({ 'disable-in-band': 'true', keep: 'x' }, { target: 'tcp:192.0.2.1:6653', max_backoff: null });
  const ops = planBridge(view(fresh), spec)!;
  const ctlUpdate = ops.find((o) => o.op === 'update' && o.table === 'Controller') as { row: Row } | undefined;
  t.same(ctlUpdate?.row, { max_backoff: 1000 }, 'kept controller row updated in place');
  const brUpdate = ops.find((o) => o.op === 'update' && o.table === 'Bridge') as { row: Row };
  t.same(brUpdate.row, { other_config: { 'disable-in-band': 'true', keep: 'x', 'datapath-id': '00007e7e00000001' } }, 'datapath id set, other keys kept');
  t.notOk(ops.some((o) => o.op === 'insert'), 'no new controller row');

  const created = planBridge(view({ ...fresh, Bridge: {} }), spec)!;
  const ins = created.filter((o) => o.op === 'insert') as { table: string; row: Row }[];
  t.same(ins.find((o) => o.table === 'Controller')?.row, { target: 'tcp:192.0.2.1:6653', max_backoff: 1000 });
  t.match(ins.find((o) => o.table === 'Bridge')?.row, { other_config: { 'disable-in-band': 'true', 'datapath-id': '00007e7e00000001' } });

  t.throws(() => planBridge(view(done), { ...spec, datapathId: 'xyz' }), VswitchError);
  t.throws(() => planBridge(view(done), { ...spec, controllerMaxBackoffMs: 10 }), VswitchError);
});
