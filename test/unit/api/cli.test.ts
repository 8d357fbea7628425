/**
 * `tenet apply|plan|get|delete|status` (the real executable) against the API server
 * over an in-memory ControllerApi, and the pure formatters. The same commands against
 * the real controller daemon: test/integration/api/cli.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient, ApiError, startApi } from '../../../src/api/index.js';
import { formatPlan, hostLine, notRealized, table } from '../../../src/cli/client.js';
import { tenet } from '../../helpers/cli.js';
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

t.test('client and CLI against the API', async (t) => {
  const ctl = new FakeController();
  const api = await startApi(ctl, { listen: '127.0.0.1:0', token: TOKEN });
  t.teardown(() => api.close());
  const env = { ...process.env, TENET_API: api.url, TENET_TOKEN: TOKEN };
  const run = (...args: string[]) => tenet(args, { env });

  // ApiClient errors
  const client = new ApiClient({ url: api.url, token: TOKEN });
  const e400 = await client.plan({ version: 1, hosts: 'x' }).catch((e: unknown) => e);
  t.ok(e400 instanceof ApiError);
  t.match(e400, { status: 400, error: 'invalid topology', code: 'ETOPOLOGY', issues: [{ path: '/hosts', message: 'must be an array' }] });
  t.match(await new ApiClient({ url: api.url, token: 'nope' }).status().catch((e: unknown) => e), { status: 401, error: 'unauthorized', message: /--token/ });
  t.match(await new ApiClient({ url: 'http://127.0.0.1:1' }).status().catch((e: unknown) => e), { status: 0, error: 'unreachable', code: 'EAPI' });

  // invalid document: every issue, path + reason, exit 1, nothing applied
  const inv = await run('apply', '-f', bad);
  t.equal(inv.code, 1);
  t.match(inv.stderr, /invalid topology: 2 error\(s\)/);
  t.match(inv.stderr, /\n {2}\/tenants\/0\/networks\/1\/subnet: .*overlap/);
  t.match(inv.stderr, /\n {2}\/tenants\/0\/endpoints\/0\/network: /);
  t.notOk(ctl.calls.includes('apply'));
  const nj = await run('plan', '-f', notJson);
  t.equal(nj.code, 1);
  t.match(nj.stderr, /is not JSON/);

  const plan = await run('plan', '-f', good, '-v');
  t.equal(plan.code, 0, plan.stderr);
  t.match(plan.stdout, /^plan: generation 1\n {2}host1: \+1 flows \(hitless\) \[not connected: planned against its last known state\]\n {4}\+ table=0,priority=0 actions=drop\n/);

  const dry = await run('apply', '-f', good, '--dry-run');
  t.equal(dry.code, 0);
  t.match(dry.stdout, /dry run: nothing applied/);
  t.notOk(ctl.calls.includes('apply'));

  // host1 realizes, host2 is unreachable: progress for both, exit 1 naming host2
  ctl.reachable.add('host1');
  const app = await run('apply', '-f', good, '--timeout', '5');
  t.equal(app.code, 1);
  t.match(app.stdout, /applied: generation 1\n/);
  t.match(app.stdout, /\n {2}host1 realized gen 1 \(3 ms\)\n/);
  t.match(app.stdout, /\n {2}host2 unreachable: cannot connect to tcp:127\.0\.0\.1:1 \(realized gen 0\)\n/);
  t.match(app.stderr, /generation 1 not realized on 1 of 2 hosts: host2 \(unreachable\)/);

  ctl.reachable.add('host2');
  const ok = await run('apply', '-f', good, '--api', api.url, '--token', TOKEN);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /generation 2 realized on 2 of 2 hosts\n$/);
  const nw = await run('apply', '-f', good, '--no-wait');
  t.equal(nw.code, 0);
  t.notMatch(nw.stdout, /realized/);

  // Read-only commands run side by side (each is a process start).
  const [epsJson, epsTable, tenants, networks, hosts, what, st, stText] = await Promise.all([
    run('get', 'endpoints', '-o', 'json'),
    run('get', 'endpoints', '--tenant', 'red'),
    run('get', 'tenants'),
    run('get', 'networks'),
    run('get', 'hosts'),
    run('get', 'things'),
    run('status', '-o', 'json'),
    run('status'),
  ]);
  t.equal(epsJson.code, 0);
  const eps = JSON.parse(epsJson.stdout) as Array<{ id: string; ip: string; mac: string }>;
  t.same(eps.map((e) => e.id), ['blue/c', 'red/a', 'red/b']);
  t.match(epsTable.stdout, /^ENDPOINT\s+NETWORK\s+HOST\s+IP\s+MAC\s+GATEWAY\s+OFPORT\n/);
  t.match(epsTable.stdout, new RegExp(`red/a\\s+net\\s+host1\\s+${eps[1]!.ip.replace(/\./g, '\\.')}\\s+${eps[1]!.mac}\\s+10\\.0\\.0\\.1\\s+-`));
  t.notMatch(epsTable.stdout, /blue/);
  t.match(tenants.stdout, /TENANT\s+NETWORKS.*\nblue\s+net\s+1\s+0\s+allow\s+-\nred\s+net\s+2/);
  t.match(networks.stdout, /red\s+net\s+10\.0\.0\.0\/24\s+10\.0\.0\.1\s+\d+\s+no\s+2/);
  t.match(hosts.stdout, /host1\s+ready\s+\d+\s+10/);
  t.equal(what.code, 2);
  t.match(what.stderr, /get what\?/);
  t.equal(JSON.parse(st.stdout).generation, 3);
  t.match(stText.stdout, /^generation 3: realized on 2 of 2 hosts \(2 ready\)/);

  const [delUsage, del404, unauth, noFile] = await Promise.all([
    run('delete'),
    run('delete', 'tenant', 'green'),
    run('status', '--token', 'wrong'),
    run('status', '--token-file', join(dir, 'absent'), '--token', ''),
  ]);
  t.equal(delUsage.code, 2);
  t.equal(del404.code, 1);
  t.match(del404.stderr, /no tenant 'green'/);
  t.match((await run('delete', 'tenant', 'red')).stdout, /deleted tenant red: generation 4/);
  t.match((await run('delete', '--all')).stdout, /deleted every tenant: generation 5/);

  t.equal(unauth.code, 1);
  t.match(unauth.stderr, /missing or wrong bearer token \(pass --token/);
  t.equal(noFile.code, 2);
});
