/**
 * End to end: `tenet registry serve` as a real process (embedded store, HTTP, DNS),
 * driven by the `tenet services ...` commands (the binary for register, in-process
 * client functions for the rest, to keep the file fast).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deregisterService, listServices, registerService, registrationBody, watchServices, parseWatchFrame, ApiError, MalformedReplyError } from '../../../src/cli/services.js';
import { freePort, until } from '../../helpers/net.js';
import { udpResolver } from '../../helpers/registry.js';

const bin = new URL('../../../bin/tenet.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tenet-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function tenet(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const httpPort = await freePort();
const dnsPort = await freePort({ udp: true }); // DNS binds UDP and TCP on it
const api = `http://127.0.0.1:${httpPort}`;
const server = spawn(
  process.execPath,
  [bin, 'registry', 'serve', '--data-dir', dir, '--http-port', String(httpPort), '--dns-port', String(dnsPort), '--tenants', 'acme'],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
process.once('exit', () => server.exitCode === null && server.kill('SIGKILL')); // if teardown never runs
t.teardown(
  () =>
    new Promise<void>((r) => {
      if (server.exitCode !== null) return r();
      server.once('exit', () => r());
      server.kill('SIGTERM'); // by pid
    }),
);
let banner = '';
await new Promise<void>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`serve did not start: ${banner}`)), 20_000);
  server.stdout.on('data', (d: Buffer) => {
    banner += d.toString();
    if (banner.includes('registry: http')) {
      clearTimeout(timer);
      resolve();
    }
  });
  server.stderr.on('data', (d: Buffer) => (banner += d.toString()));
  server.on('exit', (code) => reject(new Error(`serve exited ${code}: ${banner}`)));
});

t.test('serve generates a private token; the CLI registers, lists, watches, deregisters', async (t) => {
  const tokenFile = join(dir, 'token');
  t.equal(statSync(tokenFile).mode & 0o777, 0o600, 'token file is mode 0600');
  const token = readFileSync(tokenFile, 'utf8').trim();
  t.ok(token.length >= 24);

  let text = '';
  const w = (s: string) => (text += s);
  const c = { api, token };
  await registerService(c, 'acme', 'web', 'w1', { address: '10.0.0.1', port: '8080', tag: ['v1'], meta: ['zone=a'] }, w);
  t.match(text, /registered acme\/web\/w1 10\.0\.0\.1:8080 \(passing/);

  // The binary itself: a bad registration exits non-zero and names the field.
  const bad = await tenet(['services', 'register', 'acme', 'web', 'w2', '--address', '10.0.0.2', '--port', '70000', '--api', api], { TENET_TOKEN: token });
  t.equal(bad.code, 1, 'bad port: non-zero exit');
  t.match(bad.stderr, /400.*field port/, `names the field: ${bad.stderr.trim()}`);

  text = '';
  const listed = await listServices({ ...c, tenant: 'acme' }, w);
  t.same(listed.map((i) => i.id), ['w1']);
  t.match(text, /TENANT\s+SERVICE\s+ID\s+ADDRESS\s+PORT\s+STATUS\s+TAGS\n\s*acme\s+web\s+w1\s+10\.0\.0\.1\s+8080\s+passing\s+v1/);
  text = '';
  await listServices({ ...c, output: 'json' }, w);
  t.match(JSON.parse(text), [{ id: 'w1', meta: { zone: 'a' } }]);
  await t.rejects(listServices({ api, tenant: 'acme' }, w), ApiError, 'no token: refused');
  await t.rejects(listServices({ ...c, service: 'web' }, w), /--service needs --tenant/);

  // DNS of the served registry.
  const resolve = udpResolver(dnsPort);
  const a = await resolve('web.acme.tenet.', 'A', undefined, { recursive: false });
  t.same(a.answers.map((r) => r.address), ['10.0.0.1'], 'served DNS answers');

  // Watch sees the deregistration.
  let wtext = '';
  let watchEnded: unknown;
  const watching = watchServices({ ...c, tenant: 'acme', count: 1 }, (s) => (wtext += s)).finally(() => (watchEnded ??= 'ended'));
  watching.catch((err: unknown) => (watchEnded = err)); // surfaced below, not left unhandled
  // The snapshot line means the server-side subscription is live: deregister only then.
  await until('watch snapshot', () => {
    if (watchEnded !== undefined) throw new Error(`watch ended before its snapshot: ${String(watchEnded)}`);
    return wtext.startsWith('# ');
  });
  text = '';
  await deregisterService(c, 'acme', 'web', 'w1', w);
  t.equal(text, 'deregistered acme/web/w1\n');
  await watching;
  t.match(wtext, /# 1 instances at index \d+\n\d+ deregister acme\/web\/w1\n/);
  await t.rejects(deregisterService(c, 'acme', 'web', 'w1', w), /404/);
  await t.rejects(watchServices({ api, tenant: 'acme', count: 1 }, w), /401/, 'watch without token refused');
  await t.rejects(listServices({ api: 'http://127.0.0.1:1', token }, w), /cannot reach the registry API/);
});

t.test('registration flags', async (t) => {
  t.same(
    registrationBody({
      address: '10.0.0.1',
      port: '80',
      ttl: '10s',
      httpCheck: 'http://x/h',
      tcpCheck: 'self',
      ttlCheck: '5s',
      checkInterval: '1s',
      deregisterCriticalAfter: '1m',
    }),
    {
      address: '10.0.0.1',
      port: 80,
      tags: [],
      meta: {},
      checks: [
        { type: 'http', url: 'http://x/h', interval: '1s' },
        { type: 'tcp', interval: '1s' },
        { id: 'ttl', type: 'ttl', ttl: '5s' },
      ],
      ttl: '10s',
      deregisterCriticalAfter: '1m',
    },
  );
  t.throws(() => registrationBody({ address: 'x', port: 'eighty' }), /--port must be a number/);
  t.throws(() => registrationBody({ address: 'x', port: '1', meta: ['novalue'] }), /key=value/);
});

t.test('a broken registry peer gives typed errors, never an uncaught exception', async (t) => {
  const { createServer } = await import('node:http');
  const { WebSocketServer } = await import('ws');
  // Replies 200 with `{}` to everything, and sends non-JSON / typeless frames on the watch.
  const srv = createServer((_req, res) => res.setHeader('content-type', 'application/json').end('{}'));
  const wss = new WebSocketServer({ server: srv });
  let frame = 'this is not json';
  wss.on('connection', (ws) => ws.send(frame));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    srv.closeAllConnections();
    srv.close(() => r());
  }));
  const peer = { api: `http://127.0.0.1:${(srv.address() as { port: number }).port}`, token: 'x' };
  const w = () => undefined;
  await t.rejects(listServices(peer, w), MalformedReplyError, 'list reply without instances');
  await t.rejects(registerService(peer, 'acme', 'web', 'w1', { address: '10.0.0.1', port: '80' }, w), MalformedReplyError, 'register reply without an instance');
  await t.rejects(watchServices({ ...peer, count: 1 }, w), { name: 'MalformedReplyError', message: /frame is not JSON/ }, 'malformed watch frame');
  frame = '{"index":3}';
  await t.rejects(watchServices({ ...peer, count: 1 }, w), { name: 'MalformedReplyError', message: /no "type"/ });
  frame = '{"type":"snapshot","index":3}';
  await t.rejects(watchServices({ ...peer, count: 1 }, w), { name: 'MalformedReplyError', message: /no "instances"/ });
  t.match(parseWatchFrame('{"type":"register","id":"a"}'), { type: 'register', id: 'a' });
});
