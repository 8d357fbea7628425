import t from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { checkArgv, checkIntervalMs, networkReason, parseSidekickBody, registrationBody, retryDelayMs, servicePath, ControllerClient, ControllerUnreachableError, type ServiceWant } from '../../../src/agent/index.js';
import { parseControllerUrl, parseLabels, parseOvsdb, parseUnderlayIp } from '../../../src/agent/options.js';
import { labAgentArgv, labAgentNetnsPrefix, type LabState, type LabHost } from '../../../src/lab/index.js';
import { parseRegistration } from '../../../src/registry/index.js';
import { UsageError } from '../../../src/util/errors.js';
import { run } from '../../../src/util/exec.js';

t.test('command-line values', async (t) => {
  t.same(parseLabels('zone=a, disk=ssd'), { zone: 'a', disk: 'ssd' });
  t.same(parseLabels(''), {});
  t.throws(() => parseLabels('zone'), UsageError, 'not key=value');
  t.throws(() => parseLabels('Zone=a'), /key 'Zone'/);
  t.throws(() => parseLabels('zone=a b'), /value 'a b'/);
  t.throws(() => parseLabels('zone=a,zone=b'), /given twice/);
  t.equal(parseControllerUrl('http://127.0.0.1:6680/'), 'http://127.0.0.1:6680');
  t.throws(() => parseControllerUrl('127.0.0.1:6680'), /not a URL/);
  t.throws(() => parseControllerUrl('ftp://x'), /http/);
  t.equal(parseOvsdb('tcp:198.18.0.11:6640'), 'tcp:198.18.0.11:6640');
  t.throws(() => parseOvsdb('db.sock'), UsageError);
  t.throws(() => parseUnderlayIp('host1'), /not an IP/);
});

t.test('retry delays and network reasons', async (t) => {
  t.same([1, 2, 3, 4, 5, 6, 30].map(retryDelayMs), [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) });
  t.equal(networkReason(refused), 'ECONNREFUSED');
  // A port nothing listens on (fetch refuses port 1 itself: "bad port").
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  const err = await new ControllerClient(`http://127.0.0.1:${port}`, null).request('GET', '/x').catch((e: unknown) => e);
  t.type(err, ControllerUnreachableError);
  t.match((err as Error).message, /controller unreachable at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
});

t.test('checks run inside the namespace', async (t) => {
  const tcp = checkArgv('ns1', '10.0.0.5', 8080, { type: 'tcp', timeoutMs: 500 });
  t.same(tcp.slice(0, 7), ['ip', 'netns', 'exec', 'ns1', 'timeout', '0.500', 'bash']);
  t.equal(tcp.at(-1), 'exec 3<>/dev/tcp/10.0.0.5/8080');
  const http = checkArgv('ns1', '10.0.0.5', 80, { type: 'http', path: '/health?x=1;rm' });
  t.match(http.at(-1)!, /GET \/health\?x=1rm HTTP\/1\.0/, 'the path is kept to URL characters');
  t.match(http.at(-1)!, /\[23\]/, '2xx and 3xx pass');
});

t.test('the http check script: 2xx/3xx pass, 5xx fails (run here with bash against a local server)', async (t) => {
  let status = 200;
  const srv = createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end(`HTTP/1.1 ${status} X\r\nContent-Length: 0\r\n\r\n`));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const port = (srv.address() as AddressInfo).port;
  const script = checkArgv('ns', '127.0.0.1', port, { type: 'http', path: '/health' }).at(-1)!;
  const bash = () => run(['bash', '-c', script], { allowFailure: true });
  t.equal((await bash()).code, 0, '200 passes');
  status = 302;
  t.equal((await bash()).code, 0, '302 passes');
  status = 503;
  const r = await bash();
  t.equal(r.code, 1, '503 fails');
  t.match(r.stdout, /HTTP\/1\.1 503/, 'and says what came back');
});

t.test('service registrations are valid registry bodies', async (t) => {
  const w: ServiceWant = { tenant: 'acme', service: 'web', instanceId: 'web@1', unit: 'web', endpoint: 'acme/web-1', netns: 'ns', address: '10.0.0.5', port: 8080, check: { type: 'tcp', intervalMs: 2000 }, source: 'unit' };
  t.equal(servicePath(w), '/v1/services/acme/web/web-1');
  t.equal(checkIntervalMs(w, 10), 2000);
  t.equal(checkIntervalMs({}, 9), 3000, 'no check: reported every lease ttl/3');
  t.equal(checkIntervalMs({ check: { type: 'ttl', ttlMs: 9000 } }, 9), 3000);
  const reg = parseRegistration('acme', 'web', 'web-1', registrationBody(w, 'host1', 3));
  t.equal(reg.ttl, 3, 'instance TTL = the agent lease TTL');
  t.same(reg.checks, [{ id: 'agent', type: 'ttl', ttlMs: 6000 }], 'one TTL check, three report intervals long');
  t.same(reg.meta, { unit: 'web', instance: 'web@1', host: 'host1', endpoint: 'acme/web-1' });
  t.equal(parseRegistration('acme', 'web', 'web-1', registrationBody(w, 'host1', 0.2)).ttl, 1, 'at least the registry minimum');
});

t.test('sidekick bodies', async (t) => {
  t.same(parseSidekickBody({ port: 9100 }), { port: 9100 });
  t.same(parseSidekickBody({ port: 80, check: { type: 'http', path: '/h', intervalMs: 500 } }), { port: 80, check: { type: 'http', path: '/h', intervalMs: 500 } });
  t.match(parseSidekickBody({ port: 0 }), /port/);
  t.match(parseSidekickBody([]), /JSON object/);
  t.match(parseSidekickBody({ port: 1, check: { type: 'udp' } }), /check\.type/);
  t.match(parseSidekickBody({ port: 1, check: { type: 'ttl' } }), /ttlMs/);
  t.match(parseSidekickBody({ port: 1, check: { type: 'tcp', intervalMs: 5 } }), /intervalMs/);
  t.match(parseSidekickBody({ port: 1, check: { type: 'http', path: 'x' } }), /path/);
});

t.test('lab agent argv', async (t) => {
  const host = { name: 'host2', namespace: 'lab-host2', ovsdbSocket: '/run/tenet/lab/lab/host2/db.sock', ovsdbTcp: 'tcp:198.18.0.12:6640', underlayIp: '203.0.113.12' } as LabHost;
  const argv = labAgentArgv({ name: 'lab' } as LabState, host, { controller: 'http://198.18.0.1:6680', tokenFile: '/t', stateDir: '/s', labels: { zone: 'b' }, cpu: '2' });
  const opt = (o: string) => argv[argv.indexOf(o) + 1];
  t.equal(opt('--host'), 'host2');
  t.equal(opt('--ovsdb'), 'unix:/run/tenet/lab/lab/host2/db.sock');
  t.equal(opt('--advertise-ovsdb'), 'tcp:198.18.0.12:6640');
  t.equal(opt('--host-netns'), 'lab-host2');
  t.equal(opt('--netns-prefix'), labAgentNetnsPrefix('lab', 'host2'));
  t.ok(labAgentNetnsPrefix('lab', 'host2').startsWith('lab-'), 'instance namespaces carry the lab prefix (lab down finds them)');
  t.equal(opt('--labels'), 'zone=b');
  t.equal(opt('--cpu'), '2');
  t.notOk(argv.includes('--no-auth'));
  t.ok(labAgentArgv({ name: 'lab' } as LabState, host, { controller: 'http://x:1', stateDir: '/s' }).includes('--no-auth'));
});
