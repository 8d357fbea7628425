/**
 * A fake OVSDB server (net.Server in the test) that misbehaves: garbage,
 * truncated JSON, huge frames, silence. The client must end with a typed
 * error or a reconnect — never a crash, never unbounded buffering.
 */
import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import {
  type ChangeEvent,
  OvsdbClient,
  OvsdbClosedError,
  OvsdbError,
  OvsdbFramingError,
  OvsdbProtocolError,
  OvsdbSchemaError,
  OvsdbTimeoutError,
  Replica,
} from '../../../src/ovsdb/index.js';
import { parseTarget } from '../../../src/ovsdb/transport.js';
import { TenetError } from '../../../src/util/errors.js';
import { until } from '../../helpers/net.js';

type Handler = (sock: net.Socket, msg: Record<string, unknown>) => void;

async function fakeServer(t: Test, onConnect: (sock: net.Socket, n: number) => Handler | void) {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-fake-ovsdb-'));
  const path = join(dir, 's.sock');
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    const h = onConnect(sock, n++);
    if (!h) return;
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      // Test traffic from our own client is one JSON object per write; good enough here.
      for (;;) {
        let depth = 0;
        let end = -1;
        let inStr = false;
        for (let i = 0; i < buf.length; i++) {
          const ch = buf[i];
          if (inStr) {
            if (ch === '\\') i++;
            else if (ch === '"') inStr = false;
          } else if (ch === '"') inStr = true;
          else if (ch === '{') depth++;
          else if (ch === '}' && --depth === 0) {
            end = i;
            break;
          }
        }
        if (end < 0) break;
        const m = JSON.parse(buf.slice(0, end + 1)) as Record<string, unknown>;
        buf = buf.slice(end + 1);
        h(sock, m);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  return { target: `unix:${path}`, connections: () => n };
}

const reply = (sock: net.Socket, id: unknown, result: unknown) => sock.write(JSON.stringify({ id, result, error: null }));
const closedWith = (c: OvsdbClient) => new Promise<OvsdbError | undefined>((r) => c.once('close', r));

t.test('garbage from the server: framing error, pending requests rejected, no crash', async (t) => {
  const srv = await fakeServer(t, () => (sock) => sock.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
  const c = await OvsdbClient.connect(srv.target);
  const closed = closedWith(c);
  await t.rejects(c.echo(), OvsdbFramingError);
  t.ok((await closed) instanceof OvsdbFramingError);
  t.ok(c.isClosed);
  await t.rejects(c.listDbs(), OvsdbFramingError, 'later calls get the same typed error');
});

t.test('invalid JSON in a balanced frame', async (t) => {
  const srv = await fakeServer(t, () => (sock) => sock.write('{"id":1,"result":[1,,2]}'));
  const c = await OvsdbClient.connect(srv.target);
  await t.rejects(c.echo(), OvsdbFramingError);
});

t.test('truncated JSON then hang-up: closed error', async (t) => {
  const srv = await fakeServer(t, () => (sock, m) => {
    sock.write(`{"id":${String(m.id)},"result":["abc`);
    setTimeout(() => sock.end(), 20);
  });
  const c = await OvsdbClient.connect(srv.target);
  const e = await c.echo().catch((x: unknown) => x);
  t.ok(e instanceof OvsdbClosedError, String(e));
});

t.test('huge frame: rejected at the bound, memory stays bounded', async (t) => {
  const srv = await fakeServer(t, () => (sock) => {
    sock.write('{"id":1,"result":["');
    const chunk = 'x'.repeat(64 * 1024);
    let sent = 0;
    const pump = () => {
      while (sent < 8 * 1024 * 1024 && !sock.destroyed) {
        sent += chunk.length;
        if (!sock.write(chunk)) return sock.once('drain', pump);
      }
    };
    pump();
  });
  const c = await OvsdbClient.connect(srv.target, { maxFrameBytes: 1024 * 1024 });
  const e = (await c.echo().catch((x: unknown) => x)) as OvsdbFramingError;
  t.ok(e instanceof OvsdbFramingError);
  t.match(e.message, /exceeds 1048576 bytes/);
});

t.test('silent server: request timeout, then keepalive closes the connection', async (t) => {
  const srv = await fakeServer(t, () => () => undefined);
  const c = await OvsdbClient.connect(srv.target, { echoIntervalMs: 40, inactivityTimeoutMs: 150, requestTimeoutMs: 60 });
  const closed = closedWith(c);
  const e = await c.listDbs().catch((x: unknown) => x);
  t.ok(e instanceof OvsdbTimeoutError, 'request timed out');
  const why = await closed;
  t.ok(why instanceof OvsdbTimeoutError, 'connection closed for silence');
  t.match(String(why?.message), /silent/);
});

t.test('our keepalive echo keeps a live but quiet server connection open', async (t) => {
  let echoes = 0;
  let answered: unknown;
  const srv = await fakeServer(t, () => (sock, m) => {
    if (m.method === 'echo') {
      echoes++;
      reply(sock, m.id, m.params);
    } else if ('result' in m && m.id === 'srv-echo') answered = m.result;
  });
  // A generous silence limit (a loaded machine can stall the event loop for
  // hundreds of ms); the proof is that the connection outlives several echo
  // rounds, counted by the server, not a sleep racing the limit.
  const c = await OvsdbClient.connect(srv.target, { echoIntervalMs: 50, inactivityTimeoutMs: 5000 });
  t.teardown(() => c.close());
  let closedEarly = false;
  c.once('close', () => (closedEarly = true));
  // The server never speaks first; only our echoes (every 50 ms of quiet) keep it talking.
  await until('4 answered keepalive echoes, or a close', () => echoes >= 4 || closedEarly, 30_000, 10);
  t.notOk(closedEarly, 'never closed while echoes were answered');
  t.notOk(c.isClosed, 'still open');
  t.ok(echoes >= 4, `sent keepalive echoes (${echoes})`);
  t.equal(answered, undefined, 'nothing unexpected was answered');
});

t.test('answers a server echo request with its params; rejects unknown server methods', async (t) => {
  const got: unknown[] = [];
  const srv = await fakeServer(t, (sock) => {
    setTimeout(() => {
      sock.write(JSON.stringify({ method: 'echo', params: ['ping', 1], id: 'e1' }));
      sock.write(JSON.stringify({ method: 'frobnicate', params: [], id: 'f1' }));
    }, 10);
    return (_s, m) => got.push(m);
  });
  const c = await OvsdbClient.connect(srv.target);
  t.teardown(() => c.close());
  await until('both answers', () => got.length >= 2, 30_000, 10); // a hang guard, not a timing check
  t.same(got[0], { result: ['ping', 1], error: null, id: 'e1' });
  t.match(got[1], { result: null, error: { error: 'unknown method' }, id: 'f1' });
});

t.test('protocol violations close with OvsdbProtocolError', async (t) => {
  const srv = await fakeServer(t, () => (sock) => sock.write('{"hello":"world"}'));
  const c = await OvsdbClient.connect(srv.target);
  await t.rejects(c.echo(), OvsdbProtocolError);
  const srv2 = await fakeServer(t, () => (sock, m) => reply(sock, m.id, 'not-a-list'));
  const c2 = await OvsdbClient.connect(srv2.target);
  t.teardown(() => c2.close());
  await t.rejects(c2.listDbs(), OvsdbProtocolError);
  await t.rejects(c2.echo(), OvsdbProtocolError);
});

t.test('request timeout detaches its listener from a long-lived abort signal', async (t) => {
  const seen: string[] = [];
  const srv = await fakeServer(t, () => (s, m) => {
    seen.push(String(m.method));
    if (m.method === 'echo') reply(s, m.id, m.params); // everything else goes unanswered
  });
  const c = await OvsdbClient.connect(srv.target);
  t.teardown(() => c.close());
  const ac = new AbortController();
  for (let i = 0; i < 3; i++) {
    const e = await c.request('list_dbs', [], { signal: ac.signal, timeoutMs: 20 }).catch((x: unknown) => x);
    t.ok(e instanceof OvsdbTimeoutError, 'timed out');
  }
  t.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no abort listener left behind');
  // Aborting now must not cancel anything: the requests are already settled.
  ac.abort();
  t.same(await c.echo('x'), ['x'], 'client still usable');
  t.notOk(seen.includes('cancel'), 'no cancel sent for settled requests');
});

t.test('targets', async (t) => {
  t.same(parseTarget('tcp:127.0.0.1:6640'), { kind: 'tcp', host: '127.0.0.1', port: 6640 });
  t.same(parseTarget('ssl:[::1]:6641'), { kind: 'ssl', host: '::1', port: 6641 });
  t.same(parseTarget('tcp:10.0.0.1'), { kind: 'tcp', host: '10.0.0.1', port: 6640 });
  t.same(parseTarget('unix:/run/db.sock'), { kind: 'unix', path: '/run/db.sock' });
  for (const bad of ['udp:1.2.3.4:1', 'tcp:1.2.3.4:99999', 'unix:', 'nonsense']) t.throws(() => parseTarget(bad), { code: 'EUSAGE' });
});

// ----- Replica against a scripted server: fallback to monitor, reconnect, diff-only resync.
const SCHEMA = {
  name: 'T',
  version: '1.0.0',
  tables: { R: { columns: { name: { type: 'string' }, tags: { type: { key: 'string', min: 0, max: 'unlimited' } } } } },
};
const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const C = 'cccccccc-0000-4000-8000-000000000003';

t.test('replica: monitor fallback, reconnect after garbage, resync emits only real changes', async (t) => {
  // Connection 0: rows A, B; then garbage. Connection 1: A unchanged, B modified, C new.
  const snapshots = [
    { [A]: { new: { name: 'a', tags: ['set', ['x']] } }, [B]: { new: { name: 'b', tags: ['set', []] } } },
    { [A]: { new: { name: 'a', tags: 'x' } }, [B]: { new: { name: 'b2', tags: ['set', []] } }, [C]: { new: { name: 'c', tags: ['set', ['y', 'z']] } } },
  ];
  const srv = await fakeServer(t, (sock, n) => (s, m) => {
    if (m.method === 'get_schema') reply(s, m.id, SCHEMA);
    else if (m.method === 'monitor_cond') s.write(JSON.stringify({ id: m.id, result: null, error: 'unknown method' }));
    else if (m.method === 'monitor') {
      reply(s, m.id, { R: snapshots[n] });
      if (n === 0) {
        // A live update, then the connection goes bad.
        s.write(JSON.stringify({ id: null, method: 'update', params: ['tenet-replica', { R: { [A]: { old: { tags: ['set', ['x']] }, new: { name: 'a', tags: ['set', ['x', 'q']] } } } }] }));
        setTimeout(() => sock.write('}}}garbage'), 30);
      }
    }
  });
  const r = new Replica(srv.target, { db: 'T', tables: { R: 'all' }, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  t.teardown(() => r.close());
  const events: ChangeEvent[] = [];
  r.on('change', (e) => events.push(e));
  const disconnected: unknown[] = [];
  r.on('disconnected', (e) => disconnected.push(e));
  await r.start();
  t.equal(r.monitorMethod, 'monitor', 'fell back from monitor_cond');
  t.same(events.slice(0, 2).map((e) => [e.kind, e.uuid]), [['insert', A], ['insert', B]]);
  const resynced = new Promise((res) => r.once('sync', res));
  await resynced;
  t.ok(disconnected[0] instanceof OvsdbFramingError, 'disconnect reason is typed');
  t.same([events[2]!.kind, events[2]!.uuid, events[2]!.new], ['modify', A, { name: 'a', tags: ['x', 'q'] }], 'live update applied');
  const after = events.slice(3);
  // A went x → x,q by the live update, and is x again in the fresh snapshot: a real change.
  t.same(
    after.map((e) => [e.kind, e.uuid]),
    [['modify', A], ['modify', B], ['insert', C]],
  );
  t.same(after[0]!.old, { name: 'a', tags: ['x', 'q'] });
  t.same(after[0]!.new, { name: 'a', tags: ['x'] });
  t.same(after[1]!.new, { name: 'b2', tags: [] });
  t.same([...r.rows('R').keys()].sort(), [A, B, C]);
  t.equal(srv.connections(), 2);
  t.throws(() => r.rows('Nope'), OvsdbError);
});

t.test('replica: row conditions need monitor_cond; no silent fallback', async (t) => {
  const srv = await fakeServer(t, () => (s, m) => {
    if (m.method === 'get_schema') reply(s, m.id, SCHEMA);
    else s.write(JSON.stringify({ id: m.id, result: null, error: 'unknown method' }));
  });
  const r = new Replica(srv.target, { db: 'T', tables: { R: ['name'] }, where: { R: [['name', '==', 'a']] } });
  t.teardown(() => r.close());
  await t.rejects(r.start(), { code: 'EOVSDB_REPLICA' });
});

t.test('replica: start fails with a typed error when nothing listens', async (t) => {
  const r = new Replica('unix:/nonexistent/db.sock', { db: 'T', tables: { R: 'all' } });
  await t.rejects(r.start(), OvsdbClosedError);
  r.close();
  await t.rejects(r.whenSynced(), OvsdbClosedError);
  await t.rejects(r.transact([]), OvsdbClosedError);
});

// ----- Well-formed JSON, malformed OVSDB values: typed errors on every decode path.
const VSCHEMA = {
  name: 'T',
  version: '1.0.0',
  tables: {
    R: {
      columns: {
        name: { type: 'string' },
        n: { type: 'integer' },
        tags: { type: { key: 'string', min: 0, max: 'unlimited' } },
        opt: { type: { key: 'integer', min: 0, max: 1 } },
        ext: { type: { key: 'string', value: 'string', min: 0, max: 'unlimited' } },
        byNum: { type: { key: 'integer', value: 'string', min: 0, max: 'unlimited' } },
        ref: { type: 'uuid' },
      },
    },
  },
};
const BAD_VALUES: [column: string, value: unknown][] = [
  ['tags', ['set']],
  ['tags', ['set', null]],
  ['tags', ['set', [null]]],
  ['opt', ['set', 7]],
  ['ext', ['map', [null]]],
  ['ext', ['map', [['k']]]],
  ['ext', ['map', [[1, 'v']]]],
  ['ext', ['map']],
  ['byNum', ['map', [['x', 'y']]]],
  ['name', 5],
  ['n', 'five'],
  ['ref', ['uuid']],
];

/** A server for VSCHEMA whose replies put `bad` into the row it returns. */
async function badValueServer(t: Test, column: string, bad: unknown) {
  return fakeServer(t, () => (s, m) => {
    const row = { name: 'a', [column]: bad };
    switch (m.method) {
      case 'get_schema':
        return reply(s, m.id, VSCHEMA);
      case 'transact':
        return reply(s, m.id, [{ rows: [row] }]);
      case 'monitor':
        return reply(s, m.id, { R: { [A]: { new: row } } });
      case 'monitor_cond':
        return reply(s, m.id, { R: { [A]: { initial: row } } });
      default:
        return reply(s, m.id, m.params);
    }
  });
}

function checkTyped(t: Test, e: unknown, column: string, what: string) {
  t.ok(e instanceof OvsdbSchemaError && e instanceof TenetError, `${what}: typed error (${String(e)})`);
  if (e instanceof OvsdbSchemaError) {
    t.match(e.context, { table: 'R', column }, `${what}: names R.${column}`);
    t.match(e.message, `R.${column}`);
  }
}

t.test('malformed values in select results and monitor initial results: typed errors, client usable', async (t) => {
  for (const [column, bad] of BAD_VALUES) {
    const srv = await badValueServer(t, column, bad);
    const c = await OvsdbClient.connect(srv.target);
    t.teardown(() => c.close());
    const where = `${column}=${JSON.stringify(bad)}`;
    checkTyped(t, await c.transact('T', [{ op: 'select', table: 'R', where: [] }]).catch((x: unknown) => x), column, `select ${where}`);
    checkTyped(t, await c.monitor('T', 'm1', { R: {} }).catch((x: unknown) => x), column, `monitor ${where}`);
    checkTyped(t, await c.monitorCond('T', 'm2', { R: {} }).catch((x: unknown) => x), column, `monitor_cond ${where}`);
    t.notOk(c.isClosed, `${where}: connection kept`);
    t.same(await c.echo('still', 'here'), ['still', 'here'], `${where}: client usable`);
  }
});

t.test('malformed transact results (insert uuid, select rows): typed errors naming the operation', async (t) => {
  const results: unknown[] = [[{ uuid: ['uuid'] }], [{ uuid: 'x' }], [{}], [{ rows: 'x' }], [null]];
  let k = 0;
  const srv = await fakeServer(t, () => (s, m) => {
    if (m.method === 'get_schema') reply(s, m.id, VSCHEMA);
    else if (m.method === 'transact') reply(s, m.id, results[k]);
    else reply(s, m.id, m.params);
  });
  const c = await OvsdbClient.connect(srv.target);
  t.teardown(() => c.close());
  for (; k < results.length; k++) {
    const op = k < 3 ? ({ op: 'insert', table: 'R', row: { name: 'a' } } as const) : ({ op: 'select', table: 'R', where: [] } as const);
    const e = await c.transact('T', [op]).catch((x: unknown) => x);
    t.ok(e instanceof OvsdbSchemaError, `${JSON.stringify(results[k])}: ${String(e)}`);
    if (e instanceof OvsdbSchemaError) t.match(e.context, { index: 0, table: 'R' });
    t.same(await c.echo(k), [k], 'client usable');
  }
});

t.test('malformed update2 notification: typed close reason, replica resyncs and stays usable', async (t) => {
  // Connection 0: good initial row, then an update2 whose diff is malformed.
  // Connection 1: a clean snapshot.
  const srv = await fakeServer(t, (_sock, n) => (s, m) => {
    if (m.method === 'get_schema') reply(s, m.id, VSCHEMA);
    else if (m.method === 'monitor_cond') {
      reply(s, m.id, { R: { [A]: { initial: { name: n === 0 ? 'a' : 'a2', tags: ['set', ['x']] } } } });
      if (n === 0) {
        s.write(JSON.stringify({ id: null, method: 'update2', params: ['tenet-replica', { R: { [A]: { modify: { tags: ['set', null] } } } }] }));
      }
    } else reply(s, m.id, m.params);
  });
  const r = new Replica(srv.target, { db: 'T', tables: { R: ['name', 'tags'] }, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  t.teardown(() => r.close());
  const disconnected = new Promise<unknown>((res) => r.once('disconnected', res));
  await r.start();
  const why = await disconnected;
  checkTyped(t, why, 'tags', 'update2 modify');
  await new Promise((res) => r.once('sync', res));
  t.same(r.get('R', A), { name: 'a2', tags: ['x'] }, 'resynced from the fresh snapshot');
  t.same(await r.client?.echo(1), [1], 'new connection usable');
});

const BAD_SCHEMAS: unknown[] = [
  { name: 'T', tables: { T: null } },
  { name: 'T', tables: { T: { columns: 5 } } },
  { name: 'T', tables: { T: { columns: { c: null } } } },
  { name: 'T', tables: { T: { columns: { c: { type: null } } } } },
  { name: 'T', tables: { T: { columns: { c: { type: { key: { type: 'string', enum: ['set', null] } } } } } } },
  { name: 'T', tables: { T: { columns: {}, indexes: [5] } } },
  { name: 'T', tables: [] as unknown[] },
];

t.test('malformed get_schema results: typed errors; the client and a replica stay usable', async (t) => {
  let schemaIdx = 0;
  const srv = await fakeServer(t, () => (s, m) => {
    if (m.method === 'get_schema') reply(s, m.id, BAD_SCHEMAS[schemaIdx]);
    else reply(s, m.id, m.params);
  });
  for (; schemaIdx < BAD_SCHEMAS.length; schemaIdx++) {
    const c = await OvsdbClient.connect(srv.target);
    t.teardown(() => c.close());
    const e = await c.getSchema('T').catch((x: unknown) => x);
    t.ok(e instanceof OvsdbSchemaError && e instanceof TenetError, `schema ${JSON.stringify(BAD_SCHEMAS[schemaIdx])}: ${String(e)}`);
    t.same(await c.echo(schemaIdx), [schemaIdx], 'client usable');
    const r = new Replica(srv.target, { db: 'T', tables: { T: 'all' } });
    await t.rejects(r.start(), OvsdbSchemaError, 'Replica.start rejects typed');
    r.close();
  }
});

t.test('replica reconnect that meets a malformed schema reports a typed failure and retries', async (t) => {
  // Connection 0: good; then hang up. Connection 1: a malformed schema. Connection 2: good again.
  const srv = await fakeServer(t, (sock, n) => (s, m) => {
    if (m.method === 'get_schema') reply(s, m.id, n === 1 ? BAD_SCHEMAS[0] : SCHEMA);
    else if (m.method === 'monitor_cond') {
      reply(s, m.id, { R: { [A]: { initial: { name: `a${n}` } } } });
      if (n === 0) setTimeout(() => sock.end(), 10);
    } else reply(s, m.id, m.params);
  });
  const r = new Replica(srv.target, { db: 'T', tables: { R: ['name'] }, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  t.teardown(() => r.close());
  const failed = new Promise<Error>((res) => r.once('reconnect-failed', (e) => res(e)));
  await r.start();
  const e = await failed;
  t.ok(e instanceof OvsdbSchemaError, `reconnect failure is typed: ${String(e)}`);
  await new Promise((res) => r.once('sync', res));
  t.same(r.get('R', A), { name: 'a2' }, 'synced on the next attempt');
  t.equal(srv.connections(), 3);
});
