import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  OvsdbSchemaError,
  OvsdbTransactError,
  decodeTransactResult,
  encodeOperation,
  parseSchema,
  rowsEqual,
  valuesEqual,
} from '../../../src/ovsdb/index.js';
import { applyDiff, columnOf, decodeDiff, decodeRow, decodeValue, defaultValue, encodeValue, tableOf } from '../../../src/ovsdb/schema.js';

const schema = parseSchema(JSON.parse(readFileSync('/usr/share/openvswitch/vswitch.ovsschema', 'utf8')));
const U1 = '11111111-2222-3333-4444-555555555555';
const U2 = '66666666-2222-3333-4444-555555555555';
const col = (table: string, c: string) => columnOf(tableOf(schema, table), c);

t.test('schema parsing', async (t) => {
  t.equal(schema.name, 'Open_vSwitch');
  t.equal(col('Bridge', 'name').kind, 'scalar');
  t.equal(col('Bridge', 'fail_mode').kind, 'optional');
  t.same(col('Bridge', 'fail_mode').type.key.enum, ['standalone', 'secure']);
  t.equal(col('Bridge', 'ports').kind, 'set');
  t.equal(col('Bridge', 'ports').type.key.refTable, 'Port');
  t.equal(col('Bridge', 'other_config').kind, 'map');
  t.equal(col('Bridge', '_uuid').kind, 'scalar');
  t.equal(tableOf(schema, 'Open_vSwitch').isRoot, true);
  t.throws(() => tableOf(schema, 'Nope'), OvsdbSchemaError);
  t.throws(() => col('Bridge', 'nope'), OvsdbSchemaError);
  t.throws(() => parseSchema({ name: 'x' }), OvsdbSchemaError);
  t.throws(() => parseSchema({ name: 'x', tables: { T: { columns: { c: { type: 'float' } } } } }), OvsdbSchemaError);
});

t.test('values: plain in, OVSDB notation out, and back', async (t) => {
  const cases: [string, string, unknown, unknown][] = [
    ['Bridge', 'name', 'br0', 'br0'],
    ['Bridge', 'fail_mode', 'secure', 'secure'],
    ['Bridge', 'fail_mode', null, ['set', []]],
    ['Bridge', 'ports', [U1, { uuid: U2 }], ['set', [['uuid', U1], ['uuid', U2]]]],
    ['Bridge', 'ports', { namedUuid: 'p' }, ['named-uuid', 'p']],
    ['Bridge', 'other_config', { a: 'b' }, ['map', [['a', 'b']]]],
    ['Bridge', 'other_config', new Map([['a', 'b']]), ['map', [['a', 'b']]]],
    ['Interface', 'ofport', 7, 7],
    ['Bridge', 'stp_enable', true, true],
    ['Interface', 'ingress_policing_rate', 0, 0],
    ['QoS', 'queues', new Map([[1, U1]]), ['map', [[1, ['uuid', U1]]]]],
    ['QoS', 'queues', { 2: U1 }, ['map', [[2, ['uuid', U1]]]]],
  ];
  for (const [table, c, plain, wire] of cases) t.same(encodeValue(col(table, c).type, plain, `${table}.${c}`), wire, `${table}.${c}`);
  t.equal(decodeValue(col('Bridge', 'fail_mode').type, ['set', []]), null);
  t.equal(decodeValue(col('Bridge', 'fail_mode').type, 'secure'), 'secure');
  t.same(decodeValue(col('Bridge', 'ports').type, ['uuid', U1]), [U1], 'single-element set in short form');
  t.same(decodeValue(col('Bridge', 'other_config').type, ['map', [['k', 'v']]]), { k: 'v' });
  const q = decodeValue(col('QoS', 'queues').type, ['map', [[1, ['uuid', U1]]]]);
  t.ok(q instanceof Map && q.get(1) === U1, 'non-string keys decode to a Map');
  t.equal(decodeValue(col('Bridge', '_uuid').type, ['uuid', U1]), U1);
});

t.test('bad values are typed errors naming where', async (t) => {
  const bad: [string, string, unknown][] = [
    ['Bridge', 'name', 5],
    ['Interface', 'ofport', 1.5],
    ['Bridge', 'stp_enable', 'yes'],
    ['Bridge', 'ports', ['not-a-uuid']],
    ['Bridge', 'ports', [{ namedUuid: '1bad' }]],
    ['Bridge', 'other_config', 'x'],
    ['Bridge', 'other_config', { a: 1 }],
    ['Interface', 'ingress_policing_rate', Number.NaN],
  ];
  for (const [table, c, v] of bad) {
    const e = t.throws(() => encodeValue(col(table, c).type, v, `${table}.${c}`), OvsdbSchemaError) as OvsdbSchemaError;
    t.match(e.message, `${table}.${c}`);
  }
  t.throws(() => decodeValue(col('Bridge', 'ports').type, ['set', ['x']]), OvsdbSchemaError);
  t.throws(() => decodeValue(col('Bridge', 'name').type, { x: 1 }), OvsdbSchemaError);
  t.throws(() => decodeValue(col('Bridge', 'other_config').type, ['set', []]), OvsdbSchemaError);
});

t.test('decodeRow fills defaults for omitted columns (update2 omits them)', async (t) => {
  const T = tableOf(schema, 'Bridge');
  const row = decodeRow(T, { name: 'br0' }, ['name', 'fail_mode', 'ports', 'other_config', 'stp_enable', 'datapath_type']);
  t.same(row, { name: 'br0', fail_mode: null, ports: [], other_config: {}, stp_enable: false, datapath_type: '' });
  t.same(decodeRow(T, { name: 'x', bogus: 1 }), { name: 'x' }, 'unknown columns ignored');
  t.throws(() => decodeRow(T, [1]), OvsdbSchemaError);
  t.equal(defaultValue(col('Interface', 'ingress_policing_rate')), 0);
  t.equal(defaultValue(col('Bridge', '_uuid')), '00000000-0000-0000-0000-000000000000');
  t.ok(defaultValue(col('QoS', 'queues')) instanceof Map);
});

t.test('update2 diffs: sets toggle, maps add/remove/replace, scalars replace', async (t) => {
  const ports = col('Bridge', 'ports');
  t.same(applyDiff(ports, [U1], decodeDiff(ports.type, ['set', [['uuid', U1], ['uuid', U2]]])), [U2]);
  const fm = col('Bridge', 'fail_mode');
  // Max-1 columns: ovsdb-server sends the new value (as captured from ovsdb-server 3.1).
  t.equal(applyDiff(fm, 'secure', decodeDiff(fm.type, ['set', ['standalone']])), 'standalone');
  t.equal(applyDiff(fm, 'secure', decodeDiff(fm.type, ['set', []])), null);
  t.equal(applyDiff(fm, null, decodeDiff(fm.type, 'secure')), 'secure');
  const oc = col('Bridge', 'other_config');
  t.same(applyDiff(oc, { a: '1', b: '2', c: '3' }, decodeDiff(oc.type, ['map', [['a', '1'], ['b', '9'], ['d', '4']]])), { b: '9', c: '3', d: '4' });
  const q = col('QoS', 'queues');
  const qd = applyDiff(q, new Map([[1, U1]]), decodeDiff(q.type, ['map', [[1, ['uuid', U1]], [2, ['uuid', U2]]]])) as Map<number, string>;
  t.same([...qd], [[2, U2]]);
  const name = col('Bridge', 'name');
  t.equal(applyDiff(name, 'a', decodeDiff(name.type, 'b')), 'b');
});

t.test('equality ignores set order', async (t) => {
  t.ok(valuesEqual([1, 2], [2, 1]));
  t.notOk(valuesEqual([1, 2], [1, 3]));
  t.notOk(valuesEqual([1], [1, 1]));
  t.ok(valuesEqual({ a: '1' }, { a: '1' }));
  t.notOk(valuesEqual({ a: '1' }, { b: '1' }));
  t.notOk(valuesEqual({ a: '1' }, [1]));
  t.ok(valuesEqual(new Map([[1, 'a']]), new Map([[1, 'a']])));
  t.notOk(valuesEqual(new Map([[1, 'a']]), new Map([[1, 'b']])));
  t.notOk(valuesEqual(null, 'a'));
  t.ok(rowsEqual({ a: [1, 2], b: 'x' }, { b: 'x', a: [2, 1] }));
  t.notOk(rowsEqual({ a: 1 }, { a: 1, b: 2 }));
});

t.test('operations encode with the schema', async (t) => {
  const enc = (op: Parameters<typeof encodeOperation>[1]) => encodeOperation(schema, op, 0);
  t.same(enc({ op: 'insert', table: 'Bridge', row: { name: 'b', ports: [] }, uuidName: 'nb' }), {
    op: 'insert',
    table: 'Bridge',
    row: { name: 'b', ports: ['set', []] },
    'uuid-name': 'nb',
  });
  t.same(enc({ op: 'select', table: 'Bridge', where: [['name', '==', 'b'], ['ports', 'includes', U1]], columns: ['name'] }), {
    op: 'select',
    table: 'Bridge',
    where: [['name', '==', 'b'], ['ports', 'includes', ['uuid', U1]]],
    columns: ['name'],
  });
  t.same(enc({ op: 'select', table: 'Interface', where: [['ofport', '>', 3]] }).where, [['ofport', '>', 3]]);
  t.same(
    enc({
      op: 'mutate',
      table: 'Bridge',
      where: [['_uuid', '==', U1]],
      mutations: [
        ['ports', 'insert', [U2]],
        ['ports', 'delete', U1],
        ['other_config', 'insert', { k: 'v' }],
        ['other_config', 'delete', ['k']],
        ['external_ids', 'delete', { k: 'v' }],
      ],
    }).mutations,
    [
      ['ports', 'insert', ['set', [['uuid', U2]]]],
      ['ports', 'delete', ['uuid', U1]],
      ['other_config', 'insert', ['map', [['k', 'v']]]],
      ['other_config', 'delete', ['set', ['k']]],
      ['external_ids', 'delete', ['map', [['k', 'v']]]],
    ],
  );
  t.same(enc({ op: 'mutate', table: 'Interface', where: [], mutations: [['ofport_request', '+=', 1]] }).mutations, [['ofport_request', '+=', 1]]);
  t.same(enc({ op: 'wait', table: 'Bridge', where: [], columns: ['name'], until: '==', rows: [{ name: 'b' }], timeout: 0 }), {
    op: 'wait',
    table: 'Bridge',
    where: [],
    columns: ['name'],
    until: '==',
    rows: [{ name: 'b' }],
    timeout: 0,
  });
  t.same(enc({ op: 'update', table: 'Bridge', where: [], row: { fail_mode: null } }).row, { fail_mode: ['set', []] });
  t.same(enc({ op: 'delete', table: 'Bridge', where: [['name', '!=', 'x']] }), { op: 'delete', table: 'Bridge', where: [['name', '!=', 'x']] });
  t.same(enc({ op: 'commit', durable: false }), { op: 'commit', durable: false });
  t.same(enc({ op: 'abort' }), { op: 'abort' });
  t.same(enc({ op: 'comment', comment: 'c' }), { op: 'comment', comment: 'c' });
  t.same(enc({ op: 'assert', lock: 'l' }), { op: 'assert', lock: 'l' });
  t.same(enc({ op: 'insert', table: 'Bridge', row: { name: 'x' }, uuid: U1 }).uuid, U1);
  t.throws(() => enc({ op: 'select', table: 'Bridge', where: [['name', '~' as '==', 'b']] }), OvsdbSchemaError);
  t.throws(() => enc({ op: 'mutate', table: 'Bridge', where: [], mutations: [['ports', 'push' as 'insert', []]] }), OvsdbSchemaError);
  t.throws(() => enc({ op: 'frob' } as unknown as Parameters<typeof encodeOperation>[1]), OvsdbSchemaError);
  t.throws(() => enc({ op: 'select', table: 'Bridge', where: [], columns: ['nope'] }), OvsdbSchemaError);
  t.throws(() => enc({ op: 'select', table: 'Bridge', where: 'x' as unknown as [] }), OvsdbSchemaError);
});

t.test('transact results decode; errors name the operation', async (t) => {
  const ops = [
    { op: 'insert', table: 'Bridge', row: { name: 'b' } },
    { op: 'select', table: 'Bridge', where: [] },
    { op: 'update', table: 'Bridge', where: [], row: {} },
    { op: 'comment', comment: 'c' },
  ] as const;
  const ok = decodeTransactResult(schema, ops, [{ uuid: ['uuid', U1] }, { rows: [{ name: 'b', ports: ['set', []] }] }, { count: 2 }, {}]);
  t.same(ok, [{ uuid: U1 }, { rows: [{ name: 'b', ports: [] }] }, { count: 2 }, {}]);
  const e1 = t.throws(() =>
    decodeTransactResult(schema, ops, [{ uuid: ['uuid', U1] }, { error: 'constraint violation', details: 'bad' }, null, null]),
  ) as OvsdbTransactError;
  t.ok(e1 instanceof OvsdbTransactError);
  t.equal(e1.index, 1);
  t.equal(e1.op?.op, 'select');
  t.equal(e1.op?.table, 'Bridge');
  t.equal(e1.error, 'constraint violation');
  t.equal(e1.details, 'bad');
  t.match(e1.message, /operation 1 \(select Bridge\)/);
  const e2 = t.throws(() =>
    decodeTransactResult(schema, ops, [{ uuid: ['uuid', U1] }, { rows: [] }, { count: 0 }, {}, { error: 'referential integrity violation' }]),
  ) as OvsdbTransactError;
  t.equal(e2.index, 4);
  t.equal(e2.op, undefined);
  t.match(e2.message, /commit \(after operation 3\)/);
  t.throws(() => decodeTransactResult(schema, ops, {}), OvsdbSchemaError);
});
