/**
 * The client against a real ovsdb-server: every RFC 7047 method and every
 * transact operation, checked against what ovs-vsctl / ovsdb-client show.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  OvsdbClient,
  OvsdbClosedError,
  OvsdbRpcError,
  OvsdbSchemaError,
  OvsdbTransactError,
  type TableUpdates,
  type TableUpdates2,
} from '../../../src/ovsdb/index.js';
import { run } from '../../../src/util/exec.js';
import { freePort, until } from '../../helpers/net.js';
import { startOvsdbServer } from '../../helpers/ovsdb-server.js';

const DB = 'Open_vSwitch';

/** A hang guard for waits on events (a loaded machine is slow, not wrong); normally met in milliseconds. */
const HANG_GUARD_MS = 30_000;

t.test('client against ovsdb-server', async (t) => {
  const srv = await startOvsdbServer();
  t.teardown(() => srv.stop());
  const c = await OvsdbClient.connect(srv.unix);
  t.teardown(() => c.close());

  t.test('list_dbs, get_schema, echo', async (t) => {
    t.same((await c.listDbs()).sort(), ['Open_vSwitch', '_Server']);
    const s = await c.getSchema(DB);
    t.ok(s.tables.has('Bridge'));
    t.equal(await c.getSchema(DB), s, 'schema cached');
    t.same(await c.echo('x', 1, [2]), ['x', 1, [2]]);
    await t.rejects(c.getSchema('nope'), OvsdbRpcError);
  });

  t.test('insert with named uuids, select; matches ovs-vsctl', async (t) => {
    const root = (await c.transact(DB, [{ op: 'select', table: 'Open_vSwitch', where: [], columns: ['_uuid'] }]))[0] as {
      rows: { _uuid: string }[];
    };
    const rootUuid = root.rows[0]!._uuid;
    const r = await c.transact(DB, [
      { op: 'insert', table: 'Interface', row: { name: 'p1', type: 'internal', external_ids: { 'iface-id': 'ep1' } }, uuidName: 'i' },
      { op: 'insert', table: 'Port', row: { name: 'p1', interfaces: { namedUuid: 'i' }, tag: 10 }, uuidName: 'p' },
      { op: 'insert', table: 'Interface', row: { name: 'br0', type: 'internal' }, uuidName: 'li' },
      { op: 'insert', table: 'Port', row: { name: 'br0', interfaces: [{ namedUuid: 'li' }] }, uuidName: 'lp' },
      {
        op: 'insert',
        table: 'Bridge',
        row: { name: 'br0', ports: [{ namedUuid: 'p' }, { namedUuid: 'lp' }], fail_mode: 'secure', other_config: { 'disable-in-band': 'true' }, protocols: ['OpenFlow13'] },
        uuidName: 'b',
      },
      { op: 'mutate', table: 'Open_vSwitch', where: [['_uuid', '==', rootUuid]], mutations: [['bridges', 'insert', [{ namedUuid: 'b' }]]] },
      { op: 'comment', comment: 'tenet test: add br0' },
      { op: 'commit', durable: true },
    ]);
    const brUuid = (r[4] as { uuid: string }).uuid;
    t.match(brUuid, /^[0-9a-f-]{36}$/);
    t.same((await srv.vsctl('list-br')).trim(), 'br0');
    t.same((await srv.vsctl('list-ports', 'br0')).trim(), 'p1');
    t.equal((await srv.vsctl('get', 'Bridge', 'br0', '_uuid')).trim(), brUuid, `ovs-vsctl sees the uuid the insert returned ${JSON.stringify(r)}`);
    t.equal((await srv.vsctl('get', 'Port', 'p1', 'tag')).trim(), '10');
    t.equal((await srv.vsctl('get', 'Interface', 'p1', 'external_ids:iface-id')).trim(), 'ep1');
    t.equal((await srv.vsctl('get', 'Bridge', 'br0', 'other_config:disable-in-band')).trim(), '"true"');
    const sel = (await c.transact(DB, [{ op: 'select', table: 'Bridge', where: [['name', '==', 'br0']], columns: ['name', 'fail_mode', 'ports', 'protocols', 'other_config'] }]))[0] as { rows: Record<string, unknown>[] };
    t.equal(sel.rows.length, 1);
    t.same(sel.rows[0]!.protocols, ['OpenFlow13']);
    t.equal(sel.rows[0]!.fail_mode, 'secure');
    t.equal((sel.rows[0]!.ports as string[]).length, 2);
    // Same rows as ovsdb-client dump shows.
    const dump = (await srv.dump('Bridge')) as { headings: string[]; data: unknown[][] }[];
    const h = dump[0]!.headings;
    const row = dump[0]!.data[0]!;
    t.same(row[h.indexOf('name')], 'br0');
    t.same(row[h.indexOf('_uuid')], ['uuid', brUuid]);
    t.same(row[h.indexOf('protocols')], 'OpenFlow13');
    // The comment operation is recorded with the transaction in the database log.
    const log = (await run(['ovsdb-tool', '-m', 'show-log', join(srv.dir, 'conf.db')])).stdout;
    t.match(log, 'tenet test: add br0');
  });

  t.test('update, mutate, delete counts; matches ovs-vsctl', async (t) => {
    const u = await c.transact(DB, [{ op: 'update', table: 'Bridge', where: [['name', '==', 'br0']], row: { datapath_type: 'netdev', external_ids: { owner: 'tenet' } } }]);
    t.same(u, [{ count: 1 }]);
    t.equal((await srv.vsctl('get', 'Bridge', 'br0', 'datapath_type')).trim(), 'netdev');
    const m = await c.transact(DB, [
      {
        op: 'mutate',
        table: 'Bridge',
        where: [['name', '==', 'br0']],
        mutations: [
          ['external_ids', 'insert', { extra: '1' }],
          ['protocols', 'insert', ['OpenFlow14']],
        ],
      },
      { op: 'mutate', table: 'Port', where: [['name', '==', 'p1']], mutations: [['tag', '+=', 5]] },
    ]);
    t.same(m, [{ count: 1 }, { count: 1 }]);
    t.equal((await srv.vsctl('get', 'Bridge', 'br0', 'external_ids')).trim(), '{extra="1", owner=tenet}');
    t.equal((await srv.vsctl('get', 'Bridge', 'br0', 'protocols')).trim(), '[OpenFlow13, OpenFlow14]');
    t.equal((await srv.vsctl('get', 'Port', 'p1', 'tag')).trim(), '15');
    await c.transact(DB, [{ op: 'mutate', table: 'Bridge', where: [['name', '==', 'br0']], mutations: [['external_ids', 'delete', ['extra']], ['protocols', 'delete', ['OpenFlow14']]] }]);
    t.equal((await srv.vsctl('get', 'Bridge', 'br0', 'external_ids')).trim(), '{owner=tenet}');
    // delete: remove the Port p1 from the bridge, then the (now unreferenced, so collected) rows are gone.
    const p1 = (await srv.vsctl('get', 'Port', 'p1', '_uuid')).trim();
    await c.transact(DB, [{ op: 'mutate', table: 'Bridge', where: [['name', '==', 'br0']], mutations: [['ports', 'delete', [p1]]] }]);
    t.same((await srv.vsctl('list-ports', 'br0')).trim(), '');
    const d = await c.transact(DB, [{ op: 'delete', table: 'Port', where: [['name', '==', 'nonexistent']] }]);
    t.same(d, [{ count: 0 }]);
    // A real delete: a second bridge, detached and deleted in one transaction.
    await srv.vsctl('add-br', 'brd');
    const brd = (await srv.vsctl('get', 'Bridge', 'brd', '_uuid')).trim();
    const del = await c.transact(DB, [
      { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'delete', [brd]]] },
      { op: 'delete', table: 'Bridge', where: [['_uuid', '==', brd]] },
    ]);
    t.same(del, [{ count: 1 }, { count: 1 }]);
    t.same((await srv.vsctl('list-br')).trim(), 'br0', 'ovs-vsctl no longer lists brd');
    const sel = await c.transact(DB, [{ op: 'select', table: 'Interface', where: [['name', '==', 'p1']] }]);
    t.same(sel, [{ rows: [] }], 'garbage-collected');
  });

  t.test('wait: met passes, unmet with timeout 0 fails naming the op and changes nothing', async (t) => {
    await c.transact(DB, [{ op: 'wait', table: 'Bridge', where: [['name', '==', 'br0']], columns: ['fail_mode'], until: '==', rows: [{ fail_mode: 'secure' }], timeout: 0 }]);
    const before = await srv.dump('Bridge');
    const err = await c
      .transact(DB, [
        { op: 'update', table: 'Bridge', where: [['name', '==', 'br0']], row: { datapath_type: 'system' } },
        { op: 'wait', table: 'Bridge', where: [['name', '==', 'br0']], columns: ['fail_mode'], until: '==', rows: [{ fail_mode: 'standalone' }], timeout: 0 },
      ])
      .catch((e: unknown) => e);
    t.ok(err instanceof OvsdbTransactError);
    const te = err as OvsdbTransactError;
    t.equal(te.index, 1);
    t.equal(te.op?.op, 'wait');
    t.equal(te.error, 'timed out');
    t.same(await srv.dump('Bridge'), before, 'nothing changed');
  });

  t.test('abort and assert', async (t) => {
    const e1 = (await c.transact(DB, [{ op: 'update', table: 'Bridge', where: [], row: { datapath_type: 'x' } }, { op: 'abort' }]).catch((e: unknown) => e)) as OvsdbTransactError;
    t.equal(e1.index, 1);
    t.equal(e1.error, 'aborted');
    t.equal((await srv.vsctl('get', 'Bridge', 'br0', 'datapath_type')).trim(), 'netdev');
    const e2 = (await c.transact(DB, [{ op: 'assert', lock: 'L' }]).catch((e: unknown) => e)) as OvsdbTransactError;
    t.equal(e2.op?.op, 'assert');
    t.equal(e2.error, 'not owner');
    t.equal(await c.lock('L'), true);
    t.same(await c.transact(DB, [{ op: 'assert', lock: 'L' }, { op: 'comment', comment: 'locked' }]), [{}, {}]);
    await c.unlock('L');
  });

  t.test('failing transactions: constraint and referential violations change nothing', async (t) => {
    const before = await srv.dump();
    const e1 = (await c
      .transact(DB, [
        { op: 'update', table: 'Bridge', where: [['name', '==', 'br0']], row: { datapath_type: 'changed' } },
        { op: 'update', table: 'Bridge', where: [['name', '==', 'br0']], row: { fail_mode: 'bogus' } },
      ])
      .catch((e: unknown) => e)) as OvsdbTransactError;
    t.ok(e1 instanceof OvsdbTransactError);
    t.equal(e1.index, 1);
    t.equal(e1.op?.op, 'update');
    t.equal(e1.error, 'constraint violation');
    t.match(e1.details, /bogus/);
    const ghost = '2f4b7c3e-0000-4000-8000-000000000000';
    const e2 = (await c
      .transact(DB, [
        { op: 'insert', table: 'Port', row: { name: 'ghost', interfaces: [ghost] }, uuidName: 'g' },
        { op: 'mutate', table: 'Bridge', where: [['name', '==', 'br0']], mutations: [['ports', 'insert', [{ namedUuid: 'g' }]]] },
      ])
      .catch((e: unknown) => e)) as OvsdbTransactError;
    t.equal(e2.error, 'referential integrity violation');
    t.equal(e2.index, 2, 'commit-time failure: after the last operation');
    t.equal(e2.op, undefined);
    t.match(e2.details, ghost);
    const e3 = (await c
      .transact(DB, [
        { op: 'insert', table: 'Interface', row: { name: 'br0' }, uuidName: 'x' },
        { op: 'insert', table: 'Port', row: { name: 'dup', interfaces: { namedUuid: 'x' } }, uuidName: 'p' },
        { op: 'mutate', table: 'Bridge', where: [['name', '==', 'br0']], mutations: [['ports', 'insert', [{ namedUuid: 'p' }]]] },
      ])
      .catch((e: unknown) => e)) as OvsdbTransactError;
    t.ok(e3 instanceof OvsdbTransactError, 'duplicate index entry');
    t.equal(e3.error, 'constraint violation');
    t.equal(e3.index, 3);
    t.same(await srv.dump(), before, 'database unchanged');
    await t.rejects(c.transact(DB, [{ op: 'update', table: 'Bridge', where: [], row: { name: 5 } }]), OvsdbSchemaError, 'bad value caught before sending');
    await t.rejects(c.transact(DB, [{ op: 'select', table: 'NoSuchTable', where: [] }]), OvsdbSchemaError);
  });

  t.test('cancel a blocked transaction', async (t) => {
    const ac = new AbortController();
    const p = c.transact(
      DB,
      [
        { op: 'wait', table: 'Bridge', where: [['name', '==', 'br0']], columns: ['fail_mode'], until: '==', rows: [{ fail_mode: 'standalone' }], timeout: 60_000 },
        { op: 'mutate', table: 'Bridge', where: [['name', '==', 'br0']], mutations: [['external_ids', 'insert', { cancelled: 'no' }]] },
      ],
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(), 50);
    const e = (await p.catch((x: unknown) => x)) as OvsdbRpcError;
    t.ok(e instanceof OvsdbRpcError);
    t.equal(e.serverError, 'canceled');
    // The server really dropped it: meeting the wait's condition now commits nothing.
    await srv.vsctl('set', 'Bridge', 'br0', 'fail_mode=standalone');
    await c.echo();
    t.notMatch(await srv.vsctl('get', 'Bridge', 'br0', 'external_ids'), 'cancelled', 'the mutate after the wait never ran');
    await srv.vsctl('set', 'Bridge', 'br0', 'fail_mode=secure');
  });

  t.test('monitor (update) and monitor_cond (update2), monitor_cancel', async (t) => {
    const m = await OvsdbClient.connect(srv.tcp);
    t.teardown(() => m.close());
    const v1: TableUpdates[] = [];
    const v2: TableUpdates2[] = [];
    m.on('update', (id, u) => id === 'm1' && v1.push(u));
    m.on('update2', (id, u) => id === 'm2' && v2.push(u));
    const init1 = await m.monitor(DB, 'm1', { Bridge: { columns: ['name', 'external_ids'] } });
    const init2 = await m.monitorCond(DB, 'm2', { Bridge: { columns: ['name', 'external_ids', 'stp_enable'], where: [['name', '==', 'br0']] }, Port: {} });
    const [uuid, row1] = Object.entries(init1.Bridge!)[0]!;
    t.same(row1.new, { name: 'br0', external_ids: { owner: 'tenet' } });
    t.same(init2.Bridge![uuid], { initial: { name: 'br0', external_ids: { owner: 'tenet' }, stp_enable: false } });
    t.ok(Object.values(init2.Port!).length >= 1, 'all columns of Port');
    await srv.vsctl('set', 'Bridge', 'br0', 'external_ids:k=v');
    await c.echo(); // a round trip on another session; then wait for m's notifications
    await until('update and update2', () => v1.length >= 1 && v2.length >= 1, HANG_GUARD_MS);
    t.equal(v1.length, 1, 'one update');
    t.equal(v2.length, 1, 'one update2');
    t.same(v1[0]?.Bridge?.[uuid], { old: { external_ids: { owner: 'tenet' } }, new: { name: 'br0', external_ids: { owner: 'tenet', k: 'v' } } });
    t.same(v2[0]?.Bridge?.[uuid], { modify: { external_ids: { k: 'v' } } });
    await m.monitorCancel('m1');
    await t.rejects(m.monitorCancel('m1'), OvsdbRpcError, 'unknown monitor');
    await srv.vsctl('remove', 'Bridge', 'br0', 'external_ids', 'k');
    await until('second update2', () => v2.length >= 2, HANG_GUARD_MS);
    await m.echo();
    t.equal(v1.length, 1, 'no update after monitor_cancel');
    t.equal(v2.length, 2);
    t.same(v2[1]?.Bridge?.[uuid], { modify: { external_ids: { k: 'v' } } });
  });

  t.test('lock, steal, unlock with locked/stolen notifications', async (t) => {
    const a = await OvsdbClient.connect(srv.unix);
    const b = await OvsdbClient.connect(srv.unix);
    t.teardown(() => {
      a.close();
      b.close();
    });
    const events: string[] = [];
    a.on('locked', (id) => events.push(`a locked ${id}`));
    a.on('stolen', (id) => events.push(`a stolen ${id}`));
    b.on('locked', (id) => events.push(`b locked ${id}`));
    b.on('stolen', (id) => events.push(`b stolen ${id}`));
    const settle = (n: number) => until(`${n} lock events`, () => events.length >= n, HANG_GUARD_MS);
    t.equal(await a.lock('tenet'), true);
    t.equal(await b.lock('tenet'), false, 'b waits in line');
    await a.unlock('tenet');
    await settle(1);
    t.same(events, ['b locked tenet'], 'b gets the lock when a releases it');
    t.equal(await a.steal('tenet'), true);
    await settle(2);
    t.same(events, ['b locked tenet', 'b stolen tenet'], 'b learns the lock was stolen');
    const e = (await a.transact(DB, [{ op: 'assert', lock: 'tenet' }]).catch((x: unknown) => x)) as Error;
    t.notOk(e instanceof Error, 'a owns the lock now');
    await a.unlock('tenet');
  });

  t.test('closed client: typed errors', async (t) => {
    const x = await OvsdbClient.connect(srv.unix);
    const pending = x.request('transact', [DB, { op: 'wait', table: 'Bridge', where: [], columns: ['name'], until: '!=', rows: [], timeout: 60_000 }]);
    const closed = new Promise((r) => x.once('close', r));
    x.close();
    await t.rejects(pending, OvsdbClosedError);
    t.equal(await closed, undefined, 'close() is not an error');
    await t.rejects(x.echo(), OvsdbClosedError);
    t.throws(() => x.notify('echo', []), OvsdbClosedError);
    await t.rejects(OvsdbClient.connect(`unix:${srv.dir}/nope.sock`), OvsdbClosedError);
    await t.rejects(OvsdbClient.connect(`tcp:127.0.0.1:${await freePort()}`), OvsdbClosedError);
  });
});

t.test('TLS (ssl:) with certificates both ways', async (t) => {
  const dir = (await import('node:fs')).mkdtempSync('/tmp/tenet-tls-');
  t.teardown(() => (require_rm())(dir));
  const ossl = (...a: string[]) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=tenet-test-ca', '-days', '1');
  for (const who of ['server', 'client']) {
    ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`);
    ossl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '1');
  }
  const srv = await startOvsdbServer({ ssl: { key: join(dir, 'server.key'), cert: join(dir, 'server.crt'), ca: join(dir, 'ca.crt') } });
  t.teardown(() => srv.stop());
  const target = srv.ssl!;
  const tls = {
    ca: readFileSync(join(dir, 'ca.crt')),
    cert: readFileSync(join(dir, 'client.crt')),
    key: readFileSync(join(dir, 'client.key')),
    checkServerIdentity: () => undefined, // the test certificate names no host
  };
  const c = await OvsdbClient.connect(target, { tls });
  t.teardown(() => c.close());
  t.same((await c.listDbs()).sort(), ['Open_vSwitch', '_Server']);
  await t.rejects(OvsdbClient.connect(target, { tls: { ca: readFileSync(join(dir, 'server.crt')) } }), OvsdbClosedError, 'untrusted server');
});

function require_rm() {
  return (d: string) => import('node:fs').then((fs) => fs.rmSync(d, { recursive: true, force: true }));
}
