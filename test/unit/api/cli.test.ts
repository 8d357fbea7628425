/**
 * The commands behind `tenet apply|plan|get|delete|status`, in process, against the
 * API server over an in-memory ControllerApi, and the pure formatters. The real
 * executable against the real controller daemon: test/integration/api/cli.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient, ApiError, startApi } from '../../../src/api/index.js';
import { applyCommand, connect, deleteCommand, formatPlan, formatStatus, getCommand, hostLine, notRealized, planCommand, table } from '../../../src/cli/client.js';
import { FakeController } from '../../helpers/fake-controller.js';

const TOKEN = 'cli-test-token';
const dir = mkdtempSync(join(tmpdir(), 'tenet-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const good = join(dir, 'good.json');
const bad = join(dir, 'bad.json');
const notJson = join(dir, 'not.json');
writeFileSync(
  good,
  JSON.stringify({
    version: 1,
    hosts: [
      { name: 'host1', underlayIp: '192.0.2.1', ovsdb: 'tcp:127.0.0.1:1' },
      { name: 'host2', underlayIp: '192.0.2.2', ovsdb: 'tcp:127.0.0.1:1' },
    ],
    tenants: [
      { name: 'red', networks: [{ name: 'net', subnet: '10.0.0.0/24' }], endpoints: [{ name: 'a', network: 'net', host: 'host1' }, { name: 'b', network: 'net', host: 'host2' }] },
      { name: 'blue', networks: [{ name: 'net', subnet: '10.0.0.0/24' }], endpoints: [{ name: 'c', network: 'net', host: 'host1' }] },
    ],
  }),
);
writeFileSync(
  bad,
  JSON.stringify({
    version: 1,
    hosts: [{ name: 'host1', underlayIp: '192.0.2.1', ovsdb: 'tcp:127.0.0.1:1' }],
    tenants: [{ name: 'red', networks: [{ name: 'a', subnet: '10.0.0.0/24' }, { name: 'b', subnet: '10.0.0.0/25' }], endpoints: [{ name: 'x', network: 'nope', host: 'host1' }] }],
  }),
);
writeFileSync(notJson, '{ "version": ');

t.test('formatters', async (t) => {
  t.equal(table([['A', 'BB'], ['ccc', 'd']]), 'A    BB\nccc  d\n');
  const plan = {
    generation: 3,
    hosts: [
      { host: 'h1', hitless: false, add: ['table=0 actions=drop'], modify: [], delete: ['table=1 actions=drop'], groups: { add: [], modify: [], delete: [] }, summary: '+1 flows, -1 flows', reachable: true },
      { host: 'h2', hitless: true, add: [], modify: [], delete: [], groups: { add: [], modify: [], delete: [] }, summary: 'no change', reachable: false },
    ],
  };
  t.equal(formatPlan(plan), 'plan: generation 3\n  h1: +1 flows, -1 flows (disruptive)\n  h2: no change [not connected: planned against its last known state]\n');
  t.match(formatPlan(plan, true), /\n    - table=1 actions=drop\n    \+ table=0 actions=drop\n/);
  const ready = { name: 'h1', state: 'ready' as const, ovsdb: true, openflow: true, realizedGeneration: 3, flows: 1, groups: 0, bindings: 0, since: 'x' };
  const down = { ...ready, name: 'h2', state: 'unreachable' as const, realizedGeneration: 2, lastError: 'connection refused' };
  t.equal(hostLine(ready, 3), '  h1 realized gen 3');
  t.equal(hostLine(down, 3), '  h2 unreachable: connection refused (realized gen 2)');
  t.same(notRealized({ generation: 3, hosts: [ready, down], realized: true, startedAt: 'x' }, 3).map((h) => h.name), ['h2']);
});

t.test('client and commands against the API (in process)', async (t) => {
  const ctl = new FakeController();
  const api = await startApi(ctl, { listen: '127.0.0.1:0', token: TOKEN });
  t.teardown(() => api.close());
  const client = new ApiClient({ url: api.url, token: TOKEN });
  /** Runs a command function; what it wrote, and what it threw. */
  const run = async (f: (w: (s: string) => void) => Promise<unknown>): Promise<{ out: string; err?: unknown }> => {
    let out = '';
    try {
      await f((s) => (out += s));
      return { out };
    } catch (err) {
      return { out, err };
    }
  };

  // ApiClient errors
  const e400 = await client.plan({ version: 1, hosts: 'x' }).catch((e: unknown) => e);
  t.ok(e400 instanceof ApiError);
  t.match(e400, { status: 400, error: 'invalid topology', code: 'ETOPOLOGY', issues: [{ path: '/hosts', message: 'must be an array' }] });
  t.match(await new ApiClient({ url: api.url, token: 'nope' }).status().catch((e: unknown) => e), { status: 401, error: 'unauthorized', message: /--token/ });
  t.match(await new ApiClient({ url: 'http://127.0.0.1:1' }).status().catch((e: unknown) => e), { status: 0, error: 'unreachable', code: 'EAPI' });

  // Long waits go out in chunks of at most 60 s, until realized or the time is spent.
  ctl.timeoutWaits = 1;
  t.equal((await client.wait(0, 150)).realized, true);
  t.same(ctl.waits, [60_000, 60_000]);
  ctl.waits.length = 0;
  ctl.timeoutWaits = 5;
  t.equal((await client.wait(0, 150)).realized, false);
  t.same(ctl.waits, [60_000, 60_000, 30_000]);
  ctl.waits.length = 0;
  ctl.timeoutWaits = 0;

  // invalid document: every issue, path + reason; nothing applied
  const inv = await run((w) => applyCommand(client, bad, { timeoutS: 5 }, w));
  t.equal(inv.out, '');
  t.match(inv.err, { status: 400, message: /^invalid topology: 2 error\(s\)\n {2}\/tenants\/0\/networks\/1\/subnet: .*overlap.*\n {2}\/tenants\/0\/endpoints\/0\/network: / });
  t.notOk(ctl.calls.includes('apply'));
  t.match((await run((w) => planCommand(client, notJson, false, w))).err, { code: 'EFILE', message: /is not JSON/ });
  t.match((await run((w) => planCommand(client, join(dir, 'absent.json'), false, w))).err, { code: 'EFILE', message: /cannot read/ });

  const plan = await run((w) => planCommand(client, good, true, w));
  t.equal(plan.err, undefined);
  t.match(plan.out, /^plan: generation 1\n {2}host1: \+1 flows \(hitless\) \[not connected: planned against its last known state\]\n {4}\+ table=0,priority=0 actions=drop\n/);

  const dry = await run((w) => applyCommand(client, good, { dryRun: true, timeoutS: 5 }, w));
  t.match(dry.out, /dry run: nothing applied\n$/);
  t.notOk(ctl.calls.includes('apply'));

  // host1 realizes, host2 is unreachable: progress for both, an error naming host2
  ctl.reachable.add('host1');
  const app = await run((w) => applyCommand(client, good, { timeoutS: 5 }, w));
  t.match(app.out, /applied: generation 1\n/);
  t.match(app.out, /\n {2}host1 realized gen 1 \(3 ms\)\n/);
  t.match(app.out, /\n {2}host2 unreachable: cannot connect to tcp:127\.0\.0\.1:1 \(realized gen 0\)\n/);
  t.match(app.err, { code: 'ENOTREALIZED', message: 'generation 1 not realized on 1 of 2 hosts: host2 (unreachable)', context: { hosts: ['host2'] } });

  ctl.reachable.add('host2');
  const ok = await run((w) => applyCommand(client, good, { timeoutS: 5 }, w));
  t.equal(ok.err, undefined);
  t.match(ok.out, /generation 2 realized on 2 of 2 hosts\n$/);
  const nw = await run((w) => applyCommand(client, good, { wait: false, timeoutS: 5 }, w));
  t.equal(nw.err, undefined);
  t.notMatch(nw.out, /realized/);

  const epsJson = await run((w) => getCommand(client, 'endpoints', { output: 'json' }, w));
  const eps = JSON.parse(epsJson.out) as Array<{ id: string; ip: string; mac: string }>;
  t.same(eps.map((e) => e.id), ['blue/c', 'red/a', 'red/b']);
  const epsTable = await run((w) => getCommand(client, 'endpoints', { output: 'table', tenant: 'red' }, w));
  t.match(epsTable.out, /^ENDPOINT\s+NETWORK\s+HOST\s+IP\s+MAC\s+GATEWAY\s+OFPORT\n/);
  t.match(epsTable.out, new RegExp(`red/a\\s+net\\s+host1\\s+${eps[1]!.ip.replace(/\./g, '\\.')}\\s+${eps[1]!.mac}\\s+10\\.0\\.0\\.1\\s+-`));
  t.notMatch(epsTable.out, /blue/);
  t.match((await run((w) => getCommand(client, 'tenants', { output: 'table' }, w))).out, /TENANT\s+NETWORKS.*\nblue\s+net\s+1\s+0\s+allow\s+-\nred\s+net\s+2/);
  t.match((await run((w) => getCommand(client, 'networks', { output: 'table' }, w))).out, /red\s+net\s+10\.0\.0\.0\/24\s+10\.0\.0\.1\s+\d+\s+no\s+2/);
  t.match((await run((w) => getCommand(client, 'host', { output: 'table' }, w))).out, /host1\s+ready\s+\d+\s+10\s+0\s+2\s+00000000000000a1/);
  t.match((await run((w) => getCommand(client, 'things', { output: 'table' }, w))).err, { code: 'EUSAGE', message: /get what\?/ });
  t.match(formatStatus(await client.status()), /^generation 3: realized on 2 of 2 hosts \(2 ready\)/);

  t.match((await run((w) => deleteCommand(client, {}, w))).err, { code: 'EUSAGE' });
  t.match((await run((w) => deleteCommand(client, { kind: 'tenant', all: true }, w))).err, { code: 'EUSAGE' });
  t.match((await run((w) => deleteCommand(client, { kind: 'tenant', name: 'green' }, w))).err, { status: 404, message: "no tenant 'green'" });
  t.equal((await run((w) => deleteCommand(client, { kind: 'tenant', name: 'red' }, w))).out, 'deleted tenant red: generation 4\n');
  t.equal((await run((w) => deleteCommand(client, { all: true }, w))).out, 'deleted every tenant: generation 5\n');
  t.match((await run((w) => getCommand(client, 'endpoints', { output: 'table' }, w))).out, 'no endpoints\n');

  // connect(): flags -> client
  t.throws(() => connect({ api: 'not a url' }), { code: 'EUSAGE' });
  t.throws(() => connect({ api: api.url, tokenFile: join(dir, 'absent') }), { code: 'EUSAGE', message: /cannot read a token/ });
  writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
  t.equal((await connect({ api: api.url, tokenFile: join(dir, 'token') }).status()).generation, 5);
});

t.test('client failures name the API: a silent event-stream handshake, a body cut short', async (t) => {
  // Accepts connections and never answers: the upgrade must time out, not hang `tenet apply`.
  const silent = createServer(() => undefined);
  // Promises 1000 bytes, sends 2, then drops the connection.
  const cut = createServer((s) => {
    s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"');
      setImmediate(() => s.destroy());
    });
  });
  const sockets = new Set<Socket>();
  for (const srv of [silent, cut]) srv.on('connection', (s) => sockets.add(s));
  await Promise.all([silent, cut].map((srv) => new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all([silent, cut].map((srv) => new Promise((r) => srv.close(r))));
  });
  const url = (srv: typeof silent) => `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;

  const hung = Symbol('hung');
  const guard = <T>(p: Promise<T>) => Promise.race([p, new Promise<typeof hung>((r) => setTimeout(() => r(hung), 20_000).unref())]);
  const ev = await guard(new ApiClient({ url: url(silent), timeoutMs: 200 }).events(() => undefined).then(
    (close) => (close(), 'opened'),
    (e: unknown) => e,
  ));
  t.not(ev, hung, 'the handshake gives up');
  t.match(ev, { constructor: ApiError, status: 0, message: /event stream/ });

  const err = await new ApiClient({ url: url(cut) }).status().catch((e: unknown) => e);
  t.ok(err instanceof ApiError, 'an ApiError, not a bare TypeError');
  t.match(err, { status: 0, message: new RegExp(`${url(cut)}.*GET /v1/status`), context: { url: url(cut), path: '/v1/status' } });
});
