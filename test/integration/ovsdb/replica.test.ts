/**
 * The replica against a real ovsdb-server: sees ovs-vsctl's changes in one
 * update, and after kill -9 + restart of the server ends equal to it (as
 * `ovsdb-client dump` shows), emitting exactly the changes made meanwhile.
 */
import t, { type Test } from 'tap';
import { type ChangeEvent, type Row, Replica, rowsEqual } from '../../../src/ovsdb/index.js';
import { tableOf } from '../../../src/ovsdb/schema.js';
import { run } from '../../../src/util/exec.js';
import { type OvsdbServer, dumpRows, startOvsdbServer } from '../../helpers/ovsdb-server.js';
import { until } from '../../helpers/net.js';

const TABLES = ['Bridge', 'Port', 'Interface'] as const;

/** The server's contents per `ovsdb-client dump`, decoded with the replica's schema. */
async function dumpAsRows(srv: OvsdbServer, r: Replica): Promise<Map<string, Map<string, Row>>> {
  const out = new Map<string, Map<string, Row>>();
  for (const table of TABLES) out.set(table, await dumpRows(srv.unix, tableOf(r.databaseSchema!, table)));
  return out;
}

async function assertEqualToServer(t: Test, srv: OvsdbServer, r: Replica): Promise<void> {
  const server = await dumpAsRows(srv, r);
  for (const table of TABLES) {
    const mine = r.rows(table);
    const theirs = server.get(table)!;
    t.same([...mine.keys()].sort(), [...theirs.keys()].sort(), `${table}: same rows`);
    let differ = 0;
    for (const [u, row] of theirs) if (!mine.get(u) || !rowsEqual(mine.get(u)!, row)) differ++;
    t.equal(differ, 0, `${table}: same values in every row`);
  }
}

/** A hang guard for waits on events (a loaded machine is slow, not wrong); normally met in milliseconds. */
const HANG_GUARD_MS = 30_000;

t.test('replica follows ovs-vsctl and survives kill -9 of ovsdb-server', async (t) => {
  const srv = await startOvsdbServer();
  t.teardown(() => srv.stop());
  await srv.vsctl('add-br', 'br0', '--', 'set', 'Bridge', 'br0', 'fail_mode=secure');
  const r = new Replica(srv.unix, { db: 'Open_vSwitch', tables: { Bridge: 'all', Port: 'all', Interface: 'all' }, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
  t.teardown(() => r.close());
  const events: ChangeEvent[] = [];
  r.on('change', (e) => events.push(e));
  await r.start();
  t.equal(r.monitorMethod, 'monitor_cond');
  await assertEqualToServer(t, srv, r);
  t.equal(events.filter((e) => e.kind === 'insert').length, 3, 'initial rows as inserts: bridge, port, interface');

  // A change by ovs-vsctl arrives as one update2 notification.
  let notifications = 0;
  r.client!.on('update2', () => notifications++);
  events.length = 0;
  await srv.vsctl('add-port', 'br0', 'p1', '--', 'set', 'Interface', 'p1', 'type=internal', 'external_ids:iface-id=ep1');
  await until('the three change events', () => events.length >= 3, HANG_GUARD_MS);
  t.equal(notifications, 1, 'one update');
  t.same(events.map((e) => `${e.table} ${e.kind}`).sort(), ['Bridge modify', 'Interface insert', 'Port insert']);
  const iface = events.find((e) => e.table === 'Interface')!;
  t.same(iface.new!.external_ids, { 'iface-id': 'ep1' });
  const br = events.find((e) => e.table === 'Bridge')!;
  t.equal((br.new!.ports as string[]).length, 2);
  t.equal((br.old!.ports as string[]).length, 1);
  await assertEqualToServer(t, srv, r);

  // monitor_cond with a row condition: a second replica sees br0's rows only.
  const only = new Replica(srv.tcp, { db: 'Open_vSwitch', tables: { Bridge: ['name', 'fail_mode'] }, where: { Bridge: [['name', '==', 'br0']] } });
  t.teardown(() => only.close());
  await only.start();
  await srv.vsctl('add-br', 'brx', '--', 'set', 'Bridge', 'br0', 'fail_mode=standalone');
  await until('br0 standalone in the conditional replica', () => [...only.rows('Bridge').values()][0]?.fail_mode === 'standalone', HANG_GUARD_MS);
  t.same([...only.rows('Bridge').values()], [{ name: 'br0', fail_mode: 'standalone' }], 'condition applied by the server');
  await srv.vsctl('del-br', 'brx', '--', 'set', 'Bridge', 'br0', 'fail_mode=secure');
  only.close();
  await until('only br0 left', () => r.rows('Bridge').size === 1, HANG_GUARD_MS);

  // Plain RFC 7047 monitor (update notifications) gives the same rows and events.
  const v1 = new Replica(srv.unix, { db: 'Open_vSwitch', tables: { Bridge: ['name', 'ports'] }, protocol: 'monitor' });
  t.teardown(() => v1.close());
  const v1events: ChangeEvent[] = [];
  v1.on('change', (e) => v1events.push(e));
  await v1.start();
  t.equal(v1.monitorMethod, 'monitor');
  await srv.vsctl('add-br', 'bry');
  await srv.vsctl('del-br', 'bry');
  await until('the delete of bry', () => v1events.filter((e) => e.kind === 'delete').length === 1, HANG_GUARD_MS);
  t.same(v1events.map((e) => `${e.kind} ${String((e.new ?? e.old)!.name)}`), ['insert br0', 'insert bry', 'delete bry']);
  v1.close();
  await until('only br0 left', () => r.rows('Bridge').size === 1, HANG_GUARD_MS);

  // Kill the server hard and change the database file while it is down, so the
  // change can only reach the replica through the resync diff, not a live update.
  events.length = 0;
  const p1 = [...r.rows('Port').entries()].find(([, row]) => row.name === 'p1')![0];
  const down = new Promise((res) => r.once('disconnected', res));
  await srv.kill9();
  await down;
  t.notOk(r.isSynced);
  const txn = [
    'Open_vSwitch',
    { op: 'insert', table: 'Interface', row: { name: 'br1', type: 'internal' }, 'uuid-name': 'i' },
    { op: 'insert', table: 'Port', row: { name: 'br1', interfaces: ['named-uuid', 'i'] }, 'uuid-name': 'p' },
    { op: 'insert', table: 'Bridge', row: { name: 'br1', ports: ['named-uuid', 'p'] }, 'uuid-name': 'b' },
    { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'insert', ['named-uuid', 'b']]] },
    // Dropping p1 from br0 leaves its Port and Interface unreferenced: garbage-collected.
    { op: 'mutate', table: 'Bridge', where: [['name', '==', 'br0']], mutations: [['ports', 'delete', ['uuid', p1]], ['external_ids', 'insert', ['map', [['k', 'v']]]]] },
  ];
  await run(['ovsdb-tool', 'transact', srv.db, JSON.stringify(txn)]);
  t.equal(events.length, 0, 'nothing seen while the server was down');
  const resynced = new Promise<{ resync: boolean; changes: number }>((res) => r.once('sync', res));
  await srv.restart();
  const sync = await resynced;
  t.same(sync, { resync: true, changes: 6 }, 'all six changes came from the resync diff');
  await assertEqualToServer(t, srv, r);
  const seen = events.map((e) => `${e.table} ${e.kind} ${String((e.new ?? e.old)!.name)}`).sort();
  t.same(
    seen,
    ['Bridge insert br1', 'Bridge modify br0', 'Interface delete p1', 'Interface insert br1', 'Port delete p1', 'Port insert br1'],
    'exactly the changes made while away, none twice, none missing',
  );
  const mod = events.find((e) => e.kind === 'modify')!;
  t.same(mod.new!.external_ids, { k: 'v' });
  t.equal((mod.new!.ports as string[]).length, 1);
});
