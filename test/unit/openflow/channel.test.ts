/**
 * SwitchConnection / OpenFlowServer against simulated switches: handshake and
 * version negotiation, keepalive and dead-peer detection, request correlation
 * and timeouts, named switch errors, multipart reassembly, bundle failure
 * mapping, back-pressure and write batching.
 */
import t, { type Test } from 'tap';
import {
  BundleError,
  ChannelError,
  encodeMessage,
  OFPMP,
  OFPMPF_MORE,
  OpenFlowServer,
  parseFlow,
  SwitchError,
  type BundleItem,
  type OfMessage,
  type SwitchConnection,
} from '../../../src/openflow/index.js';
import { SimSwitch } from './switch-sim.js';
import { makeCerts } from './certs.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server as NetServer } from 'node:net';

async function setup(t: Test, opts = {}) {
  // Generous timeouts: only the tests about timeouts shorten them (a loaded 2-core VM
  // can stall the event loop for seconds).
  const server = new OpenFlowServer({ echoIntervalMs: 100, echoTimeoutMs: 15_000, requestTimeoutMs: 15_000, handshakeTimeoutMs: 15_000, ...opts });
  const { port } = await server.listen({ port: 0 });
  t.teardown(() => server.close());
  return { server, port: port! };
}

async function connected(t: Test, opts = {}, dpid = 0xabcn) {
  const { server, port } = await setup(t, opts);
  const sim = new SimSwitch(port, dpid);
  t.teardown(() => sim.close());
  const conn = await server.waitForSwitch(dpid);
  return { server, port, sim, conn };
}

const fm = (text: string): BundleItem => ({ type: 'flow_mod', xid: 0, ...parseFlow(text) });

t.test('handshake: HELLO, FEATURES, datapath id, connect/disconnect events', async (t) => {
  const { server, sim, conn } = await connected(t);
  t.equal(conn.dpidHex, '0000000000000abc');
  t.equal(server.get(0xabcn), conn);
  t.equal(sim.received[0]?.type, 'hello');
  t.same(sim.received[0]?.type === 'hello' && sim.received[0].versions, [4], 'controller offers 1.3 only');
  const gone = new Promise<Error>((resolve) => server.once('disconnect', (_c: SwitchConnection, e: Error) => resolve(e)));
  sim.close();
  t.match((await gone) as ChannelError, { code: 'EOFCLOSED' });
  t.equal(server.connections.size, 0);
  await t.rejects(conn.barrier(), { code: 'EOFCLOSED' }, 'requests on a closed connection fail typed');
  t.throws(() => conn.send({ type: 'barrier_request', xid: 1 }), ChannelError);
});

t.test('a reconnecting switch replaces its stale connection', async (t) => {
  const { server, port, conn } = await connected(t);
  t.equal(conn.listenerCount('hello'), 0, 'handshake listeners removed');
  const gone = new Promise<unknown[]>((resolve) => server.once('disconnect', (...a) => resolve(a)));
  const again = new SimSwitch(port, 0xabcn);
  t.teardown(() => again.close());
  const [old] = await gone;
  t.equal(old, conn, 'the old connection is closed');
  const fresh = await server.waitForSwitch(0xabcn);
  t.not(fresh, conn);
  t.equal(server.connections.size, 1);
});

t.test('a switch without OpenFlow 1.3 is refused with HELLO_FAILED', async (t) => {
  const { server, port } = await setup(t);
  const sim = new SimSwitch(port, 1n, [1]);
  t.teardown(() => sim.close());
  const [err] = (await new Promise<unknown[]>((resolve) => server.once('handshake-error', (...a) => resolve(a)))) as [ChannelError];
  t.equal(err.code, 'EOFVERSION');
  await sim.waitFor((m) => m.type === 'error' && m.errType === 0);
  t.pass('switch got OFPET_HELLO_FAILED');
});

t.test('handshake timeout', async (t) => {
  const { server, port } = await setup(t, { handshakeTimeoutMs: 200 });
  const sim = new SimSwitch(port, 1n, [4], false);
  t.teardown(() => sim.close());
  const [err] = (await new Promise<unknown[]>((resolve) => server.once('handshake-error', (...a) => resolve(a)))) as [ChannelError];
  t.equal(err.code, 'EOFHANDSHAKE');
});

t.test('echo keepalive; a silent switch is declared dead', async (t) => {
  const { server, sim, conn } = await connected(t);
  await sim.waitFor((m) => m.type === 'echo_request');
  t.pass('idle controller probes with ECHO');
  t.notOk(conn.isClosed, 'answering switch stays up');
  // Switch echo requests are answered.
  sim.send({ type: 'echo_request', xid: 77, data: Buffer.from('hi') });
  await sim.waitFor((m) => m.type === 'echo_reply' && m.xid === 77);
  t.pass('controller answers ECHO');
  conn.setKeepalive(50, 400);
  sim.onMessage = () => false; // stops answering anything
  const t0 = Date.now();
  const [, reason] = (await new Promise<unknown[]>((resolve) => server.once('disconnect', (...a) => resolve(a)))) as [SwitchConnection, ChannelError];
  t.equal(reason.code, 'EOFDEAD', `dead after ${Date.now() - t0} ms`);
});

t.test('requests: correlation, timeouts, named switch errors, multipart parts', async (t) => {
  const { sim, conn } = await connected(t, { echoIntervalMs: 10_000, echoTimeoutMs: 30_000 });
  sim.onMessage = (m, sw) => {
    if (m.type === 'get_config_request') return false; // never answered
    if (m.type === 'multipart_request' && m.body.mpType === OFPMP.TABLE) {
      for (let i = 0; i < 3; i++) {
        sw.send({
          type: 'multipart_reply',
          xid: m.xid,
          flags: i < 2 ? OFPMPF_MORE : 0,
          body: { mpType: OFPMP.TABLE, tables: [{ tableId: i, activeCount: i, lookupCount: 0n, matchedCount: 0n }] },
        });
      }
      return false;
    }
    if (m.type === 'flow_mod') {
      sw.send({ type: 'error', xid: m.xid, errType: 5, errCode: 1, data: encodeFrame(m) });
      return false;
    }
    return true;
  };
  await conn.barrier();
  await t.rejects(conn.request({ type: 'get_config_request', xid: 0 }, 100), { code: 'EOFTIMEOUT' }, 'timeout');
  const tables = await conn.multipart({ mpType: OFPMP.TABLE });
  t.same(tables.mpType === OFPMP.TABLE && tables.tables.map((x) => x.tableId), [0, 1, 2], 'three parts merged');
  const err = await conn.request({ type: 'flow_mod', xid: 0, ...parseFlow('actions=drop') }).catch((e: unknown) => e);
  t.ok(err instanceof SwitchError, 'SwitchError');
  t.equal((err as SwitchError).context.name, 'OFPET_FLOW_MOD_FAILED/OFPFMFC_TABLE_FULL');
  t.equal((err as SwitchError).context.requestType, 14, 'offending request type carried');
  const role = await conn.roleRequest(2, 3n);
  t.same(role, { role: 2, generationId: 3n });
  // Unsolicited messages become events.
  const pin = new Promise<OfMessage>((resolve) => conn.once('packet_in', resolve));
  sim.send({ type: 'packet_in', xid: 0, bufferId: 0xffffffff, totalLen: 1, reason: 0, tableId: 0, cookie: 0n, match: [], data: Buffer.from([1]) });
  t.equal((await pin).type, 'packet_in');
  // A throwing packet_in handler does not cost the switch its connection.
  const boom = new Promise<unknown[]>((resolve) => conn.once('handler-error', (...a) => resolve(a)));
  const thrower = () => {
    throw new Error('app bug');
  };
  conn.once('packet_in', thrower);
  sim.send({ type: 'packet_in', xid: 0, bufferId: 0xffffffff, totalLen: 1, reason: 0, tableId: 0, cookie: 0n, match: [], data: Buffer.from([1]) });
  t.match(((await boom)[0] as Error).message, 'app bug', 'handler error reported as an event');
  await conn.barrier();
  t.notOk(conn.isClosed, 'connection kept');
  const ps = new Promise<OfMessage>((resolve) => conn.once('port_status', resolve));
  sim.send({
    type: 'port_status',
    xid: 0,
    reason: 0,
    port: { portNo: 1, hwAddr: Buffer.alloc(6), name: 'p1', config: 0, state: 0, curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 },
  });
  t.equal((await ps).type, 'port_status');
  const serr = new Promise<SwitchError>((resolve) => conn.once('switch-error', resolve));
  sim.send({ type: 'error', xid: 999, errType: 1, errCode: 1, data: Buffer.alloc(0) });
  t.equal((await serr).context.name, 'OFPET_BAD_REQUEST/OFPBRC_BAD_TYPE', 'unsolicited error is an event');
  const pending = conn.request({ type: 'get_config_request', xid: 0 });
  conn.close();
  await t.rejects(pending, { code: 'EOFCLOSED' }, 'close rejects pending requests');
});

/** The error's data: (the start of) the offending request, as a switch sends it. */
function encodeFrame(m: OfMessage): Buffer {
  return encodeMessage(m).subarray(0, 64);
}

t.test('bundles: success, failure at add, failure at commit', async (t) => {
  const { sim, conn } = await connected(t, { echoIntervalMs: 10_000, echoTimeoutMs: 30_000 });
  const adds: OfMessage[] = [];
  let failCommit = false;
  sim.onMessage = (m, sw) => {
    if (m.type === 'bundle_add') {
      adds.push(m);
      const inner = m.message as OfMessage;
      if (inner.type !== 'flow_mod') throw new Error('expected flow_mod');
      t.equal(inner.xid, m.xid, 'inner xid equals outer xid');
      if (inner.priority === 666) sw.send({ type: 'error', xid: m.xid, errType: 3, errCode: 2, data: Buffer.alloc(0) });
      if (inner.priority === 777) failCommit = true;
      return false;
    }
    if (m.type === 'bundle_control' && m.ctrlType === 4 && failCommit) {
      failCommit = false;
      const bad = adds.find((a) => a.type === 'bundle_add' && (a.message as { priority?: number }).priority === 777)!;
      sw.send({ type: 'error', xid: bad.xid, errType: 2, errCode: 9, data: Buffer.alloc(0) });
      sw.send({ type: 'error', xid: m.xid, errType: 0xffff, errCode: 2313, experimenter: 0x4f4e4600, data: Buffer.alloc(0) });
      return false;
    }
    return true;
  };
  const timing = await conn.applyBundle([fm('priority=1 actions=drop'), fm('priority=2 actions=drop')]);
  t.equal(adds.length, 2, 'two adds');
  t.equal(timing.count, 2, 'timing counts the adds');
  t.ok([timing.openMs, timing.sendMs, timing.waitMs, timing.barrierMs, timing.commitMs].every((x) => Number.isFinite(x) && x >= 0), 'phase times are durations');
  t.ok(timing.waitMs <= timing.sendMs, 'back-pressure wait is part of the send phase');
  t.ok(sim.received.some((m) => m.type === 'bundle_control' && m.ctrlType === 4 && m.flags === 3), 'commit atomic+ordered');

  const e1 = await conn.applyBundle([fm('priority=1 actions=drop'), fm('priority=666 actions=drop'), fm('priority=3 actions=drop')]).catch((e: unknown) => e);
  t.ok(e1 instanceof BundleError);
  t.same((e1 as BundleError).failures.map((f) => f.index), [1], 'failure at add mapped to item 1');
  t.equal((e1 as BundleError).failures[0]!.error.context.name, 'OFPET_BAD_INSTRUCTION/OFPBIC_BAD_TABLE_ID');
  t.equal((e1 as BundleError).failures[0]!.item?.type, 'flow_mod', 'the failing item itself is returned');
  t.ok(sim.received.some((m) => m.type === 'bundle_control' && m.ctrlType === 6), 'bundle discarded');

  const e2 = await conn.applyBundle([fm('priority=1 actions=drop'), fm('priority=777 actions=drop')]).catch((e: unknown) => e);
  t.ok(e2 instanceof BundleError);
  t.same((e2 as BundleError).failures.map((f) => f.index), [1], 'failure at commit mapped to item 1');
  t.equal((e2 as BundleError).commitError?.context.name, 'ONF_BUNDLE/OFPBFC_MSG_FAILED');

  // A streamed bundle (generator): failures still carry the index.
  function* gen() {
    for (const p of [20, 21, 666, 23]) yield fm(`priority=${p} actions=drop`);
  }
  const e3 = await conn.applyBundle(gen()).catch((e: unknown) => e);
  t.same((e3 as BundleError).failures.map((f) => [f.index, f.item]), [[2, undefined]], 'streamed: index only');
  await conn.applyBundle(new Set([fm('priority=30 actions=drop')]));
  t.pass('iterator of items accepted');

  // Two bundles at once: each sees only its own failures.
  const [ok, bad] = await Promise.allSettled([
    conn.applyBundle([fm('priority=10 actions=drop'), fm('priority=11 actions=drop')]),
    conn.applyBundle([fm('priority=12 actions=drop'), fm('priority=13 actions=drop'), fm('priority=666 actions=drop')]),
  ]);
  t.equal(ok.status, 'fulfilled', 'the good bundle commits');
  t.same(bad.status === 'rejected' && (bad.reason as BundleError).failures.map((f) => f.index), [2], 'the bad one names its own item');
});

t.test('back-pressure: bounded buffering, drain, batching', async (t) => {
  const { sim, conn } = await connected(t, { echoIntervalMs: 10_000, echoTimeoutMs: 30_000, highWaterMark: 64 * 1024, maxBufferedBytes: 1 << 20 });
  sim.sock.pause(); // the switch stops reading
  const big = { type: 'echo_request' as const, xid: 5, data: Buffer.alloc(60_000) };
  let sawFalse = false;
  let threw: unknown;
  try {
    for (let i = 0; i < 200; i++) {
      if (!conn.send(big)) sawFalse = true;
      conn.flush();
    }
  } catch (e) {
    threw = e;
  }
  t.ok(sawFalse, 'send() reports back-pressure');
  t.match(threw, { code: 'EOFBACKPRESSURE' }, 'hard cap enforced with a typed error');
  t.ok(conn.buffered <= (1 << 20) + 70_000, `buffered ${conn.buffered} bytes stays bounded`);
  const drained = conn.drained();
  sim.sock.resume();
  await drained;
  t.ok(conn.buffered < 64 * 1024, 'drained below the high-water mark');
  await conn.barrier();
});

t.test('replies written while handling one read go out in one write', async (t) => {
  const { sim, conn } = await connected(t, { echoIntervalMs: 10_000, echoTimeoutMs: 30_000 });
  let writes = 0;
  const orig = conn.socket.write.bind(conn.socket);
  conn.socket.write = ((chunk: Buffer) => {
    writes++;
    return orig(chunk);
  }) as typeof conn.socket.write;
  conn.on('packet_in', (m: OfMessage) => {
    if (m.type !== 'packet_in') return;
    conn.send({ type: 'packet_out', xid: m.xid, bufferId: 0xffffffff, inPort: 1, actions: [{ type: 'output', port: 2, maxLen: 0 }], data: m.data });
  });
  const frames = Array.from({ length: 50 }, (_, i) =>
    Buffer.from(
      encodeMessage({ type: 'packet_in', xid: i + 1, bufferId: 0xffffffff, totalLen: 4, reason: 0, tableId: 0, cookie: 0n, match: [], data: Buffer.from([1, 2, 3, 4]) }),
    ),
  );
  let outs = 0;
  const done = new Promise<void>((resolve) => {
    sim.onMessage = (m) => {
      if (m.type === 'packet_out' && ++outs === 50) resolve();
      return true;
    };
  });
  sim.sock.write(Buffer.concat(frames));
  await done;
  t.ok(writes <= 3, `50 packet_outs in ${writes} socket write(s)`);
});

t.test('TLS listener: mutual authentication; an unknown client is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-of-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const certs = makeCerts(dir);
  const server = new OpenFlowServer();
  t.teardown(() => server.close());
  const { port } = await server.listen({ port: 0, host: '127.0.0.1', tls: { key: certs.controller.key, cert: certs.controller.cert, ca: certs.ca, requestCert: true } });
  const sim = new SimSwitch(port!, 0x77n, [4], true, { ca: certs.ca, key: certs.switch.key, cert: certs.switch.cert });
  t.teardown(() => sim.close());
  const conn = await server.waitForSwitch(0x77n);
  await conn.barrier();
  t.pass('handshake and barrier over TLS');
  const refused = new Promise<unknown[]>((resolve) => server.once('handshake-error', (...a) => resolve(a)));
  const stranger = new SimSwitch(port!, 0x78n, [4], true, { ca: certs.ca }); // no client certificate
  t.teardown(() => stranger.close());
  const [err] = await refused;
  t.match(err, { code: 'EOFTLS' }, 'client without a certificate refused with a typed error');
  t.equal(server.get(0x78n), undefined);
});

t.test('unix listener: replaces a stale socket, refuses to clobber a file; port in use is typed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-of-unix-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'of.sock');
  const a = new OpenFlowServer();
  await a.listen({ path });
  await a.close();
  const b = new OpenFlowServer();
  t.teardown(() => b.close());
  await b.listen({ path });
  t.pass('stale socket replaced');
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'keep me');
  await t.rejects(new OpenFlowServer().listen({ path: file }), { code: 'EOFLISTEN' });
  t.equal(readFileSync(file, 'utf8'), 'keep me', 'regular file untouched');
  const c = new OpenFlowServer();
  t.teardown(() => c.close());
  const { port } = await c.listen({ port: 0 });
  await t.rejects(new OpenFlowServer().listen({ port }), { code: 'EOFLISTEN', context: { errno: 'EADDRINUSE' } }, 'address in use: typed');
});

t.test('listener errors after listen() are server-error events, every time; the server keeps serving', async (t) => {
  const { server, port } = await setup(t);
  // The underlying net.Server, as Node would see it fail on accept (private on purpose).
  const net = (server as unknown as { server: NetServer }).server;
  const seen: ChannelError[] = [];
  server.on('server-error', (e: ChannelError) => seen.push(e));
  for (const code of ['EMFILE', 'ENFILE']) {
    const e = Object.assign(new Error(`accept ${code}`), { code });
    // An 'error' without a listener would throw right here (and crash a controller).
    t.doesNotThrow(() => net.emit('error', e), `${code}: no throw`);
  }
  t.match(seen, [
    { code: 'EOFSERVER', context: { errno: 'EMFILE' } },
    { code: 'EOFSERVER', context: { errno: 'ENFILE' } },
  ]);
  t.ok(seen.every((e) => e instanceof ChannelError));
  t.equal(net.listenerCount('error'), 1, 'only the permanent handler remains (no stale listen() listener)');
  const sim = new SimSwitch(port, 0x99n);
  t.teardown(() => sim.close());
  const conn = await server.waitForSwitch(0x99n);
  await conn.barrier();
  t.pass('a switch still connects and works');
});
