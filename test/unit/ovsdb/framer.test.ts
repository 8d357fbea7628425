import t from 'tap';
import { JsonFramer, OvsdbFramingError } from '../../../src/ovsdb/index.js';

function feed(f: JsonFramer, chunks: Buffer[]): unknown[] {
  const out: unknown[] = [];
  for (const c of chunks) f.push(c, (m) => out.push(m));
  return out;
}

const msgs = [
  { id: 1, result: ['a}b', 'c{[d"e'], error: null },
  { method: 'update', params: ['x', { T: { u: { new: { s: 'esc \\" } \\\\' } } } }], id: null },
  { id: 2, result: { 'ünïcødé ✓': '日本語 {' }, error: null },
  // Runs of backslashes before quotes: odd runs escape the quote, even runs do not.
  { id: 3, result: ['\\', '\\\\', '\\"', '\\\\"}', '"', '\\\\\\"{'], error: null },
];
const wire = Buffer.from(msgs.map((m) => JSON.stringify(m)).join(' \n'));

t.test('coalesced messages in one read', async (t) => {
  t.same(feed(new JsonFramer(), [wire]), msgs);
});

t.test('every split point, including inside multi-byte characters and escapes', async (t) => {
  for (let i = 1; i < wire.length; i++) {
    const got = feed(new JsonFramer(), [wire.subarray(0, i), wire.subarray(i)]);
    if (JSON.stringify(got) !== JSON.stringify(msgs)) t.fail(`split at ${i}`);
  }
  t.same(feed(new JsonFramer(), [...wire].map((b) => Buffer.from([b]))), msgs, 'byte by byte');
});

t.test('garbage between messages is a typed error, and the framer stays failed', async (t) => {
  const f = new JsonFramer();
  const out: unknown[] = [];
  t.throws(() => f.push(Buffer.from('{"id":1,"result":1,"error":null}xyz'), (m) => out.push(m)), OvsdbFramingError);
  t.equal(out.length, 1, 'the good message before the garbage was delivered');
  t.throws(() => f.push(Buffer.from('{}'), () => undefined), OvsdbFramingError);
});

t.test('invalid JSON inside a balanced frame', async (t) => {
  const err = t.throws(() => feed(new JsonFramer(), [Buffer.from('{"id":1,,}')])) as OvsdbFramingError;
  t.equal(err.code, 'EOVSDB_FRAMING');
  t.match(err.message, /invalid JSON/);
});

t.test('oversized frame: rejected while still incomplete, memory bounded', async (t) => {
  const f = new JsonFramer(1000);
  f.push(Buffer.from('{"a":"'), () => undefined);
  f.push(Buffer.alloc(500, 0x61), () => undefined);
  t.equal(f.bufferedBytes, 506);
  const err = t.throws(() => f.push(Buffer.alloc(600, 0x61), () => undefined)) as OvsdbFramingError;
  t.match(err.message, /exceeds 1000 bytes/);
  t.equal(f.bufferedBytes, 0, 'buffer released');
});

t.test('oversized frame complete within one chunk', async (t) => {
  const big = Buffer.from(JSON.stringify({ a: 'x'.repeat(2000) }));
  t.throws(() => feed(new JsonFramer(1000), [big]), OvsdbFramingError);
  t.same(feed(new JsonFramer(3000), [big]), [{ a: 'x'.repeat(2000) }]);
});

t.test('a top-level array or scalar is not a JSON-RPC message', async (t) => {
  t.throws(() => feed(new JsonFramer(), [Buffer.from('[1,2]')]), OvsdbFramingError);
  t.throws(() => feed(new JsonFramer(), [Buffer.from('42')]), OvsdbFramingError);
});
