import t, { type Test } from 'tap';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import WebSocket from 'ws';
import { WATCH_PATH } from '../../../src/registry/index.js';
import { TOKEN, registryFixture, udpResolver } from '../../helpers/registry.js';

/** A real HTTP health target whose answer the test flips. */
async function healthTarget(t: Test) {
  let code = 200;
  const srv: Server = createHttpServer((_req, res) => {
    res.statusCode = code;
    res.end(String(code));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => {
    srv.closeAllConnections();
    srv.close(() => r());
  }));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/health`, set: (c: number) => (code = c) };
}

t.test('REST: auth, bad input with the field named, register/list/get/deregister', async (t) => {
  const f = await registryFixture(t);
  t.equal((await f.api('GET', '/v1/services', undefined, null)).status, 401, 'no token: 401');
  t.equal((await f.api('GET', '/v1/services', undefined, 'wrong')).status, 401, 'wrong token: 401');
  const bad: Array<[string, string, unknown, string]> = [
    ['bad IP', '/v1/services/acme/web/w1', { address: '300.1.1.1', port: 80 }, 'address'],
    ['port out of range', '/v1/services/acme/web/w1', { address: '10.0.0.1', port: 65536 }, 'port'],
    ['unknown tenant', '/v1/services/nobody/web/w1', { address: '10.0.0.1', port: 80 }, 'tenant'],
    ['oversize metadata', '/v1/services/acme/web/w1', { address: '10.0.0.1', port: 80, meta: { k: 'v'.repeat(5000) } }, 'meta'],
    ['bad service name', '/v1/services/acme/Web_1/w1', { address: '10.0.0.1', port: 80 }, 'service'],
    ['not JSON', '/v1/services/acme/web/w1', '{"address":', '(body)'],
  ];
  for (const [title, path, body, field] of bad) {
    const r = await f.api('PUT', path, body);
    t.equal(r.status, 400, `${title}: 400`);
    t.equal(r.body?.field, field, `${title}: names ${field}`);
  }
  t.same((await f.api('GET', '/v1/services')).body?.instances, [], 'bad input changed nothing');
  const reg = await f.api('PUT', '/v1/services/acme/web/w1', { address: '10.0.0.1', port: 80, tags: ['blue'], meta: { v: '1' } });
  t.equal(reg.status, 201);
  t.match(reg.body, { tenant: 'acme', service: 'web', id: 'w1', status: 'passing', tags: ['blue'], meta: { v: '1' } });
  t.equal((await f.api('PUT', '/v1/services/acme/web/w1', { address: '10.0.0.1', port: 81 })).status, 200, 're-register: 200');
  await f.api('PUT', '/v1/services/acme/db/d1', { address: '10.0.0.9', port: 5432 });
  await f.api('PUT', '/v1/services/blue/web/b1', { address: '10.1.0.1', port: 80 });
  const all = await f.api('GET', '/v1/services');
  t.same((all.body?.instances as Array<{ id: string }>).map((i) => i.id), ['d1', 'w1', 'b1']);
  t.ok(Number(all.headers.get('x-tenet-index')) > 0, 'X-Tenet-Index header');
  const acme = await f.api('GET', '/v1/services/acme');
  t.equal((acme.body?.instances as unknown[]).length, 2);
  const web = await f.api('GET', '/v1/services?tenant=acme&service=web');
  t.match(web.body?.instances, [{ id: 'w1', port: 81 }]);
  t.equal((await f.api('GET', '/v1/services/acme/web/w1')).body?.port, 81);
  t.equal((await f.api('GET', '/v1/services/acme/web/nope')).status, 404);
  t.equal((await f.api('PUT', '/v1/services/acme/web/w1/renew')).body?.ttl, 30);
  t.equal((await f.api('DELETE', '/v1/services/acme/web/w1')).status, 204);
  t.equal((await f.api('DELETE', '/v1/services/acme/web/w1')).status, 404);
  t.equal((await f.api('GET', '/v1/services/acme/web')).body?.instances instanceof Array, true);
  t.same((await f.api('GET', '/v1/services/acme/web')).body?.instances, []);
  t.equal((await f.api('GET', '/v1/services?index=abc')).body?.field, 'index');
  t.equal((await f.api('GET', '/v1/services?index=1&wait=forever')).body?.field, 'wait');
  t.equal((await f.api('GET', '/v1/nothing')).status, 404);
});

// Behaviour, not wall-clock: whether a query is parked is read from the registry's
// 'change' listeners (each waiting query holds one); the test timeout is only a hang guard.
t.test('blocking queries return on change and time out on no change', { timeout: 60_000 }, async (t) => {
  const f = await registryFixture(t);
  await f.api('PUT', '/v1/services/acme/web/w1', { address: '10.0.0.1', port: 80 });
  const first = await f.api('GET', '/v1/services/acme/web');
  const index = Number(first.headers.get('x-tenet-index'));
  const base = f.registry.listenerCount('change');
  const parked = () => f.registry.listenerCount('change') > base;
  // No change: the query parks, then answers with the same index when `wait` runs out.
  const idleP = f.api('GET', `/v1/services/acme/web?index=${index}&wait=300ms`);
  await f.until('idle query parked', parked);
  const idle = await idleP;
  t.equal(Number(idle.headers.get('x-tenet-index')), index, 'same index on timeout');
  t.same(idle.body?.instances, first.body?.instances, 'same state on timeout');
  t.notOk(parked(), 'the timed-out query no longer waits');
  // A change in another service does not wake it; a change in this one does.
  const pending = f.api('GET', `/v1/services/acme/web?index=${index}&wait=10m`);
  await f.until('query parked', parked);
  await f.api('PUT', '/v1/services/acme/db/d1', { address: '10.0.0.9', port: 5432 });
  t.ok(f.registry.get('acme', 'db', 'd1'), 'the unrelated change is in the view');
  t.ok(parked(), 'an unrelated change does not release the query');
  const w2 = await f.api('PUT', '/v1/services/acme/web/w2', { address: '10.0.0.2', port: 80 });
  t.equal(w2.status, 201);
  const changed = await pending;
  t.ok(Number(changed.headers.get('x-tenet-index')) > index, 'new index');
  // Answered after w2's registration and not before it: its answer contains w2.
  t.same((changed.body?.instances as Array<{ id: string }>).map((i) => i.id), ['w1', 'w2'], 'returns the new state');
  t.notOk(parked(), 'released');
  // An old index answers at once with the current state (never parks; wait=10m would trip the test timeout).
  const stale = await f.api('GET', `/v1/services/acme/web?index=${index}&wait=10m`);
  t.equal(stale.headers.get('x-tenet-index'), changed.headers.get('x-tenet-index'), 'stale index: the current index');
});

t.test('TTL lease expiry removes an instance and watchers see it (WebSocket)', async (t) => {
  const f = await registryFixture(t);
  const ws = new WebSocket(`${f.http.url.replace('http', 'ws')}${WATCH_PATH}?tenant=acme`, { headers: { authorization: `Bearer ${TOKEN}` } });
  t.teardown(() => ws.terminate());
  const msgs: Array<Record<string, unknown>> = [];
  ws.on('message', (d) => msgs.push(JSON.parse(String(d)) as Record<string, unknown>));
  await f.until('snapshot', () => msgs.length >= 1);
  t.match(msgs[0], { type: 'snapshot', instances: [] });
  // e2 is renewed (every 300 ms, 2 s TTL: generous margins on a loaded machine) while e1,
  // never renewed, expires; both run at once so the test does not wait twice.
  await f.api('PUT', '/v1/services/acme/eph/e2', { address: '10.0.0.7', port: 9000, ttl: '2s' });
  const e2Since = Date.now();
  let renewing = true;
  const renewals: number[] = [];
  const renewer = (async () => {
    while (renewing) {
      renewals.push((await f.api('PUT', '/v1/services/acme/eph/e2/renew')).status);
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  t.teardown(() => {
    renewing = false;
    return renewer;
  });
  await f.api('PUT', '/v1/services/acme/eph/e1', { address: '10.0.0.5', port: 9000, ttl: '1s' });
  await f.api('PUT', '/v1/services/blue/eph/x', { address: '10.0.0.6', port: 9000 });
  await f.until('register event', () => msgs.some((m) => m.type === 'register' && m.id === 'e1'));
  // Not renewed: the lease expires and the instance goes, with a deregister event.
  await f.until('deregister event', () => msgs.some((m) => m.type === 'deregister' && m.id === 'e1'), 10_000);
  t.same(((await f.api('GET', '/v1/services/acme/eph')).body?.instances as Array<{ id: string }>).map((i) => i.id), ['e2'], 'e1 gone from the API');
  t.notOk(msgs.some((m) => m.tenant === 'blue'), 'the watch is scoped to its tenant');
  t.same((await f.query('eph.acme.tenet.', 'A')).answers.map((r) => r.address), ['10.0.0.7'], 'and from DNS');
  // Renewal keeps an instance alive past its TTL (loop bound, not an assertion on time).
  await f.until('e2 outlived its TTL', () => Date.now() - e2Since > 2600, 10_000);
  renewing = false;
  await renewer;
  t.ok(renewals.length >= 3 && renewals.every((s) => s === 200), `renewals accepted (${renewals.length})`);
  t.equal((await f.api('GET', '/v1/services/acme/eph/e2')).status, 200, 'renewed instance still there past its TTL');
  t.notOk(msgs.some((m) => m.type === 'deregister' && m.id === 'e2'), 'and never deregistered');
  // Refused upgrades.
  const bad = new WebSocket(`${f.http.url.replace('http', 'ws')}${WATCH_PATH}`);
  const code = await new Promise<number>((r) => bad.on('unexpected-response', (_req, res) => r(res.statusCode ?? 0)));
  t.equal(code, 401, 'watch without token refused');
});

t.test('HTTP and TCP checks: failing turns critical, DNS stops returning it; auto-deregistration', async (t) => {
  const f = await registryFixture(t);
  const target = await healthTarget(t);
  const tcp: TcpServer = createTcpServer((s) => s.end());
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
  const tcpPort = (tcp.address() as AddressInfo).port;
  t.teardown(() => new Promise<void>((r) => tcp.close(() => r())));
  await f.api('PUT', '/v1/services/acme/web/w1', {
    address: '10.0.0.1',
    port: 8080,
    checks: [{ type: 'http', url: target.url, interval: '250ms' }],
  });
  await f.api('PUT', '/v1/services/acme/web/w2', {
    address: '10.0.0.2',
    port: 8080,
    checks: [{ type: 'tcp', target: `127.0.0.1:${tcpPort}`, interval: '250ms' }],
  });
  await f.api('PUT', '/v1/services/acme/web/w3', { address: 'fd00::3', port: 8080 });
  const status = async (id: string) => (await f.api('GET', `/v1/services/acme/web/${id}`)).body?.status;
  await f.until('both checks passing', async () => (await status('w1')) === 'passing' && (await status('w2')) === 'passing');
  // DNS through a real UDP socket.
  const a = await f.query('web.acme.tenet.', 'A');
  t.equal(a.rcode, 0);
  t.same(a.answers.map((r) => r.address).sort(), ['10.0.0.1', '10.0.0.2'], 'A: the IPv4 instances');
  const aaaa = await f.query('web.acme.tenet.', 'AAAA');
  t.same(aaaa.answers.map((r) => r.address), ['fd00::3'], 'AAAA: the IPv6 instance');
  const srv = await f.query('_web._tcp.acme.tenet.', 'SRV');
  t.equal(srv.rcode, 0);
  t.same(srv.answers.map((r) => [r.port, r.target]).sort(), [
    [8080, 'w1.web.acme.tenet'],
    [8080, 'w2.web.acme.tenet'],
    [8080, 'w3.web.acme.tenet'],
  ], 'SRV: port and per-instance target');
  t.equal(srv.additionals.filter((r) => r.type === 1 || r.type === 28).length, 3, 'SRV glue records');
  t.same((await f.query('w2.web.acme.tenet.', 'A')).answers.map((r) => r.address), ['10.0.0.2'], 'SRV target resolves');
  t.equal((await f.query('nope.acme.tenet.', 'A')).rcode, 3, 'unknown service: NXDOMAIN');
  t.equal((await f.query('web.nope.tenet.', 'A')).rcode, 3, 'unknown tenant: NXDOMAIN');
  const txt = await f.query('web.acme.tenet.', 'TXT');
  t.same([txt.rcode, txt.answers.length], [0, 0], 'known name, no such type: NOERROR, empty');
  t.equal((await f.query('example.com.', 'A')).rcode, 5, 'outside tenet.: REFUSED');
  // Shuffled: over many queries both orders show up.
  const orders = new Set<string>();
  for (let i = 0; i < 20; i++) orders.add((await f.query('web.acme.tenet.', 'A')).answers.map((r) => r.address).join(','));
  t.ok(orders.size > 1, `answers are shuffled (${[...orders].join(' | ')})`);
  // HTTP check fails: critical, gone from DNS, still listed by the API.
  target.set(500);
  await f.until('w1 critical', async () => (await status('w1')) === 'critical');
  t.same((await f.query('web.acme.tenet.', 'A')).answers.map((r) => r.address), ['10.0.0.2'], 'DNS stops returning it');
  t.equal((await f.api('GET', '/v1/services/acme/web?passing=1')).body?.instances instanceof Array, true);
  t.same(((await f.api('GET', '/v1/services/acme/web?passing=1')).body?.instances as Array<{ id: string }>).map((i) => i.id), ['w2', 'w3']);
  target.set(429);
  await f.until('w1 warning', async () => (await status('w1')) === 'warning');
  t.equal((await f.query('web.acme.tenet.', 'A')).answers.length, 2, 'warning instances are still served');
  target.set(200);
  await f.until('w1 passing again', async () => (await status('w1')) === 'passing');
  // TCP target goes away: critical.
  await new Promise<void>((r) => tcp.close(() => r()));
  await f.until('w2 critical', async () => (await status('w2')) === 'critical');
  t.same((await f.query('web.acme.tenet.', 'A')).answers.map((r) => r.address), ['10.0.0.1']);
  // A check racing the close may see ECONNRESET first; every later run must say the port refuses.
  const tcpOutput = async () =>
    ((await f.api('GET', '/v1/services/acme/web/w2')).body?.checkStates as Record<string, { output: string }> | undefined)?.['tcp-0']?.output ?? '';
  await f.until('w2 check output says ECONNREFUSED', async () => /ECONNREFUSED/.test(await tcpOutput()));
  t.match(await tcpOutput(), /ECONNREFUSED/, 'check output says why');
  // Auto-deregistration after a critical period.
  await f.api('PUT', '/v1/services/acme/web/w4', {
    address: '10.0.0.4',
    port: 8080,
    checks: [{ type: 'http', url: 'http://127.0.0.1:1/', interval: '100ms' }],
    deregisterCriticalAfter: '500ms',
  });
  await f.until('w4 deregistered', async () => (await f.api('GET', '/v1/services/acme/web/w4')).status === 404, 6000);
  t.pass('critical longer than deregisterCriticalAfter: deregistered');
});

t.test('TTL checks: pass/warn/fail, expiry to critical', async (t) => {
  const f = await registryFixture(t);
  // j1's TTL is long enough never to lapse during the pass/warn steps, even on a loaded
  // machine; j2's is short and is only ever expected to lapse.
  await f.api('PUT', '/v1/services/acme/job/j1', { address: '10.0.0.1', port: 1, checks: [{ id: 'hb', type: 'ttl', ttl: '30s' }] });
  await f.api('PUT', '/v1/services/acme/job/j2', { address: '10.0.0.2', port: 1, checks: [{ id: 'hb', type: 'ttl', ttl: '300ms' }] });
  const status = async (id: string) => (await f.api('GET', `/v1/services/acme/job/${id}`)).body?.status;
  t.equal(await status('j1'), 'critical', 'a TTL check starts critical until reported');
  t.equal((await f.query('job.acme.tenet.', 'A')).answers.length, 0);
  t.equal((await f.api('PUT', '/v1/services/acme/job/j1/checks/hb/pass', { output: 'ok' })).body?.status, 'passing');
  t.same((await f.query('job.acme.tenet.', 'A')).answers.map((r) => r.address), ['10.0.0.1']);
  t.equal((await f.api('PUT', '/v1/services/acme/job/j1/checks/hb/warn')).body?.status, 'warning');
  t.equal((await f.api('PUT', '/v1/services/acme/job/j1/checks/hb/fail')).body?.status, 'critical');
  t.equal((await f.query('job.acme.tenet.', 'A')).answers.length, 0, 'failed: not in DNS');
  t.equal((await f.api('PUT', '/v1/services/acme/job/j2/checks/hb/pass')).body?.status, 'passing');
  await f.until('TTL expiry', async () => (await status('j2')) === 'critical', 8000);
  const out = (await f.api('GET', '/v1/services/acme/job/j2')).body?.checkStates as Record<string, { output: string }>;
  t.match(out.hb?.output, /TTL of 300 ms expired/, 'not reported within its TTL: critical, and says why');
  t.equal((await f.api('PUT', '/v1/services/acme/job/j1/checks/hb/maybe')).body?.field, 'state');
  t.equal((await f.api('PUT', '/v1/services/acme/job/j1/checks/nope/pass')).status, 404);
});

t.test('DNS wire format checked by hand over node:dgram (independent of dns2)', async (t) => {
  const f = await registryFixture(t);
  await f.api('PUT', '/v1/services/acme/db/d1', { address: '10.9.8.7', port: 5432 });
  const { createSocket } = await import('node:dgram');
  const ask = (name: string, qtype: number) =>
    new Promise<Buffer>((resolve, reject) => {
      const labels = name.split('.').filter(Boolean);
      const q = Buffer.concat([
        Buffer.from([0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), // id, flags (no RD), QDCOUNT 1
        ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
        Buffer.from([0, qtype >> 8, qtype & 0xff, 0, 1]),
      ]);
      const sock = createSocket('udp4');
      const timer = setTimeout(() => {
        sock.close();
        reject(new Error('no answer'));
      }, 2000);
      sock.on('message', (m) => {
        clearTimeout(timer);
        sock.close();
        resolve(m);
      });
      sock.send(q, f.dns.port, '127.0.0.1');
    });
  const a = await ask('db.acme.tenet.', 1);
  t.equal(a.readUInt16BE(0), 0x1234, 'id echoed');
  t.equal(a[2]! & 0x80, 0x80, 'QR set');
  t.equal(a[2]! & 0x04, 0x04, 'AA set');
  t.equal(a[3]! & 0x0f, 0, 'RCODE NOERROR');
  t.equal(a.readUInt16BE(6), 1, 'one answer');
  t.ok(a.subarray(a.length - 4).equals(Buffer.from([10, 9, 8, 7])), 'RDATA is 10.9.8.7');
  const nx = await ask('nothing.acme.tenet.', 1);
  t.equal(nx[3]! & 0x0f, 3, 'RCODE NXDOMAIN');
  t.equal(nx.readUInt16BE(6), 0);
  const empty = await ask('db.acme.tenet.', 28);
  t.equal(empty[3]! & 0x0f, 0, 'AAAA of an IPv4-only service: NOERROR');
  t.equal(empty.readUInt16BE(6), 0, 'with no answer');
  const srv = await ask('_db._tcp.acme.tenet.', 33);
  t.equal(srv.readUInt16BE(6), 1, 'one SRV answer');
  t.ok(srv.includes(Buffer.from([0x15, 0x38])), 'port 5432 in the SRV RDATA');
  // Garbage does not kill the server.
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.send(Buffer.from('not dns'), f.dns.port, '127.0.0.1', () => r()));
  sock.close();
  t.equal((await ask('db.acme.tenet.', 1)).readUInt16BE(6), 1, 'still answering after a malformed packet');
});

t.test('large answers: UDP sets TC, DNS over TCP on the same port carries them all', async (t) => {
  const { freePort } = await import('../../helpers/net.js');
  const { startRegistryDns, DnsServerError } = await import('../../../src/registry/index.js');
  const dns2 = (await import('dns2')).default;
  const f = await registryFixture(t);
  const port = await freePort({ udp: true }); // binds UDP and TCP
  const dns = await startRegistryDns(f.registry, { port, tcp: true });
  t.teardown(() => dns.close());
  for (let i = 0; i < 30; i++) await f.registry.register('acme', 'big', `b${i}`, { address: `10.2.0.${i + 1}`, port: 7000 + i });
  const udp = await udpResolver(port)('_big._tcp.acme.tenet.', 'SRV', undefined, { recursive: false });
  t.equal(udp.header.tc, 1, 'UDP answer truncated (TC)');
  t.equal(udp.answers.length, 0);
  const tcp = await dns2.TCPClient({ dns: '127.0.0.1', port })('_big._tcp.acme.tenet.', 'SRV');
  t.equal(tcp.answers.length, 30, 'all 30 SRV records over TCP');
  t.equal(tcp.additionals.length, 30, 'with glue');
  await t.rejects(startRegistryDns(f.registry, { tcp: true }), DnsServerError, 'TCP needs a fixed port');
  await t.rejects(startRegistryDns(f.registry, { port, tcp: true }), { name: 'DnsServerError', message: new RegExp(`127.0.0.1:${port}`) }, 'port in use: typed, names the address');
});

t.test('WebSocket watch back-pressure: a client that stops reading is dropped, the server stays up', async (t) => {
  const { serveRegistryHttp, watchSendDecision } = await import('../../../src/registry/index.js');
  const { connect } = await import('node:net');
  t.equal(watchSendDecision(0, 100), 'send');
  t.equal(watchSendDecision(100, 100), 'send', 'at the bound: still sent');
  t.equal(watchSendDecision(101, 100), 'drop', 'over the bound: dropped');
  const f = await registryFixture(t);
  const drops: Array<{ backlogBytes: number }> = [];
  const serverErrors: Error[] = [];
  const http = await serveRegistryHttp(f.registry, {
    maxWatchBacklogBytes: 64 * 1024,
    onWatchDropped: (d) => drops.push(d),
    onServerError: (e) => serverErrors.push(e),
  });
  t.teardown(() => http.close());
  // A raw client: completes the upgrade request, then never reads a byte.
  const sock = connect(http.port, '127.0.0.1');
  t.teardown(() => sock.destroy());
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(
    `GET ${WATCH_PATH}?tenant=acme HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  sock.pause();
  // A polite reader on the same server keeps receiving.
  const good = new WebSocket(`${http.url.replace('http', 'ws')}${WATCH_PATH}?tenant=acme`);
  t.teardown(() => good.terminate());
  let goodEvents = 0;
  good.on('message', () => goodEvents++);
  await new Promise<void>((r) => good.once('open', () => r()));
  // ~3.5 KB events until the stalled client's backlog (after the kernel's socket buffers fill) passes 64 KiB.
  const meta = { blob: 'm'.repeat(3500) };
  let n = 0;
  while (drops.length === 0 && n < 4000) {
    await Promise.all(Array.from({ length: 50 }, () => f.registry.register('acme', 'bulk', `b${n++}`, { address: '10.3.0.1', port: 80, meta })));
  }
  t.equal(drops.length, 1, `the stalled client was dropped after ${n} events`);
  t.ok(drops[0]!.backlogBytes > 64 * 1024, `with a backlog over the bound (${drops[0]?.backlogBytes} bytes)`);
  // Once it reads again it finds the connection closed by the server.
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  sock.on('error', () => undefined);
  sock.resume();
  await closed;
  t.pass('stalled connection closed by the server');
  await f.until('the polite reader got every event', () => goodEvents === n + 1);
  http.server.emit('error', new Error('accept failed'));
  t.same(serverErrors.map((e) => e.message), ['accept failed'], 'a later server error is reported, not thrown');
  t.equal((await f.api('GET', '/v1/services/acme/bulk')).status, 200, 'the registry still serves');
});
