/**
 * Robustness: random, mutated, truncated and length-lying frames to the
 * decoder, the frame splitter and a live channel; random text to the parser.
 * Only typed errors, no hang, bounded memory.
 */
import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  decodeMessage,
  encodeMessage,
  FlowSyntaxError,
  FrameSplitter,
  OpenFlowDecodeError,
  OpenFlowEncodeError,
  OpenFlowServer,
  parseFlow,
  parseGroup,
  parseMeter,
} from '../../../src/openflow/index.js';
import { TenetError } from '../../../src/util/errors.js';
import { FLOW_CORPUS } from './corpus.js';
import { SimSwitch } from './switch-sim.js';

// Deterministic PRNG (mulberry32) so a failure can be replayed.
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const seeds: Buffer[] = [
  ...FLOW_CORPUS.map((f, i) => encodeMessage({ type: 'flow_mod', xid: i, ...parseFlow(f) })),
  encodeMessage({ type: 'group_mod', xid: 1, ...parseGroup('group_id=1,type=select,bucket=weight:2,actions=output:1,bucket=actions=ct(commit,nat(src=1.2.3.4))') }),
  encodeMessage({ type: 'meter_mod', xid: 1, ...parseMeter('meter=1,kbps,bands=type=drop,rate=5,type=dscp_remark,rate=6,prec_level=1') }),
  encodeMessage({ type: 'hello', xid: 1, versions: [1, 4, 5] }),
  encodeMessage({ type: 'bundle_add', xid: 3, bundleId: 1, flags: 3, message: { type: 'flow_mod', xid: 3, ...parseFlow('ip actions=output:1') } }),
  encodeMessage({ type: 'multipart_reply', xid: 1, flags: 0, body: { mpType: 7, groups: [{ groupType: 1, groupId: 1, buckets: [{ weight: 1, watchPort: 1, watchGroup: 1, actions: [{ type: 'output', port: 1, maxLen: 0 }] }] }] } }),
];

function mutate(r: () => number, src: Buffer): Buffer {
  const b = Buffer.from(src);
  const kind = Math.floor(r() * 5);
  if (kind === 0) {
    // flip a few bytes, keep the header length honest
    for (let i = 0, n = 1 + Math.floor(r() * 4); i < n; i++) b[8 + Math.floor(r() * (b.length - 8))] = Math.floor(r() * 256);
    return b;
  }
  if (kind === 1) {
    // truncate, fixing the header length (inner lengths now lie)
    const cut = b.subarray(0, 8 + Math.floor(r() * (b.length - 8)));
    cut.writeUInt16BE(cut.length, 2);
    return cut;
  }
  if (kind === 2) {
    // an inner 16-bit length field set to a random value
    const at = 8 + Math.floor(r() * (b.length - 9));
    b.writeUInt16BE(Math.floor(r() * 65536), at);
    return b;
  }
  if (kind === 3) {
    // random type byte
    b[1] = Math.floor(r() * 40);
    return b;
  }
  // random body
  const len = 8 + Math.floor(r() * 200);
  const x = Buffer.alloc(len);
  for (let i = 0; i < len; i++) x[i] = Math.floor(r() * 256);
  x[0] = 4;
  x[1] = Math.floor(r() * 32);
  x.writeUInt16BE(len, 2);
  return x;
}

// A real collection between memory samples (no --expose-gc needed): retained
// memory is then what the code under test keeps, not garbage not yet collected.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
// Least of three samples, each after full collections and a turn of the event loop
// (background compiler jobs finish), so V8's own transient allocations do not count.
const retained = async () => {
  let least = Infinity;
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
    gc();
    const m = process.memoryUsage();
    least = Math.min(least, m.heapUsed + m.arrayBuffers);
  }
  return least;
};

t.test('decoder: 30,000 mutated frames give messages or OpenFlowDecodeError only', async (t) => {
  const r = rng(42);
  let ok = 0;
  let typed = 0;
  let fedBytes = 0;
  const samples: number[] = [];
  const base = await retained();
  for (let i = 0; i < 30_000; i++) {
    if (i % 10_000 === 0 && i) samples.push((await retained()) - base);
    const frame = mutate(r, seeds[i % seeds.length]!);
    fedBytes += frame.length;
    try {
      const m = decodeMessage(frame);
      // Whatever decodes must encode again, or fail with a typed encode error
      // (not a RangeError from Node's buffer code).
      try {
        encodeMessage(m);
      } catch (e) {
        if (!(e instanceof OpenFlowEncodeError)) {
          t.fail(`re-encoding a decoded ${m.type} threw ${String(e)} for ${frame.toString('hex')}`);
          return;
        }
      }
      ok++;
    } catch (e) {
      if (!(e instanceof OpenFlowDecodeError)) {
        t.fail(`untyped error for ${frame.toString('hex')}: ${String(e)}`);
        return;
      }
      typed++;
    }
  }
  t.ok(typed > 1000 && ok > 1000, `${ok} decoded, ${typed} typed errors`);
  samples.push((await retained()) - base);
  // The decoder keeps nothing per frame. The first 10k frames are warm-up (compiled
  // code, the 64 KiB value slab): bounded in absolute terms. After that, what is
  // retained must not grow with the input: less than a quarter of the bytes fed in
  // frames 10k..30k (a decoder keeping each frame, or a small object per frame,
  // exceeds that; V8's own jitter here is ~100 KiB).
  const [warm, ...later] = samples as [number, ...number[]];
  const fedLater = (fedBytes * 2) / 3;
  const growth = Math.max(...later) - warm;
  t.ok(warm < 4 * 1024 * 1024, `warm-up retained ${(warm / 1024).toFixed(0)} KiB`);
  t.ok(
    growth < fedLater / 4,
    `retained after 10k/20k/30k frames: ${samples.map((x) => (x / 1024).toFixed(0)).join('/')} KiB; growth ${(growth / 1024).toFixed(0)} KiB < ${(fedLater / 4 / 1024).toFixed(0)} KiB`,
  );
});

t.test('splitter: random streams, lying lengths: typed error or frames, bounded buffer', async (t) => {
  const r = rng(7);
  for (let run = 0; run < 300; run++) {
    const s = new FrameSplitter(new Set([4]));
    let maxBuf = 0;
    try {
      for (let c = 0; c < 50; c++) {
        const chunk = Buffer.alloc(1 + Math.floor(r() * 300));
        for (let i = 0; i < chunk.length; i++) chunk[i] = r() < 0.5 ? 4 : Math.floor(r() * 256);
        s.push(chunk, (f) => {
          if (f.length !== f.readUInt16BE(2)) throw new Error('frame length mismatch');
        });
        maxBuf = Math.max(maxBuf, s.buffered);
      }
    } catch (e) {
      if (!(e instanceof OpenFlowDecodeError)) throw e;
    }
    if (maxBuf > 65535 + 300) t.fail(`buffered ${maxBuf}`);
  }
  t.pass('300 random streams');
});

t.test('text parser: random input gives FlowSyntaxError only', async (t) => {
  const r = rng(9);
  const alphabet = 'abcdefgiklnoprstuvwxyz_0123456789=,:()[]./->+|x ';
  let n = 0;
  for (let i = 0; i < 3000; i++) {
    const base = FLOW_CORPUS[i % FLOW_CORPUS.length]!;
    let s = base;
    const k = Math.floor(r() * 4);
    for (let j = 0; j <= k; j++) {
      const at = Math.floor(r() * s.length);
      s = s.slice(0, at) + alphabet[Math.floor(r() * alphabet.length)] + s.slice(at + (r() < 0.5 ? 1 : 0));
    }
    try {
      const f = parseFlow(s);
      encodeMessage({ type: 'flow_mod', xid: 1, ...f });
    } catch (e) {
      if (!(e instanceof FlowSyntaxError) && !(e instanceof OpenFlowEncodeError)) {
        t.fail(`untyped error for "${s}": ${String(e)}`);
        return;
      }
      n++;
    }
  }
  t.ok(n > 100, `${n} rejected with typed errors`);
});

t.test('live channel: garbage from switches never crashes the controller', async (t) => {
  const server = new OpenFlowServer({ echoIntervalMs: 500, echoTimeoutMs: 15_000, handshakeTimeoutMs: 15_000, requestTimeoutMs: 15_000 });
  const port = (await server.listen({ port: 0 })).port!;
  t.teardown(() => server.close());
  const protocolErrors: unknown[] = [];
  server.on('protocol-error', (e) => protocolErrors.push(e));
  server.on('handshake-error', () => {});
  const r = rng(1234);
  let dpid = 100n;
  for (let round = 0; round < 20; round++) {
    const sim = new SimSwitch(port, dpid);
    const conn = await server.waitForSwitch(dpid);
    dpid++;
    for (let i = 0; i < 30; i++) sim.sock.write(mutate(r, seeds[Math.floor(r() * seeds.length)]!));
    if (round % 2) sim.sock.write(Buffer.from('0400000300000000', 'hex')); // length-lying header: stream unusable
    await new Promise((res) => setTimeout(res, 20));
    if (!conn.isClosed) await conn.barrier().catch(() => undefined);
    sim.close();
  }
  for (const e of protocolErrors) {
    if (!(e instanceof TenetError) || !e.code.startsWith('EOF')) t.fail(`untyped protocol error ${String(e)}`);
  }
  t.ok(protocolErrors.length > 0, `${protocolErrors.length} protocol errors reported as events`);
  // The controller still serves a well-behaved switch.
  const good = new SimSwitch(port, 0xfeedn);
  t.teardown(() => good.close());
  const conn = await server.waitForSwitch(0xfeedn);
  await conn.barrier();
  t.pass('a good switch still works');
});
