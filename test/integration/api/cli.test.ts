/**
 * `tenet plan|apply|get|delete|status` (the real executable) against the real
 * controller daemon over HTTP. No lab: the hosts' OVSDB addresses are dead, so apply
 * reports them unreachable and exits 1; the success path with realizing switches is
 * covered with a lab in test/integration/api/apply-lab.test.ts
 * (and by the e2e traffic test).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { EndpointInfo } from '../../../src/controller/types.js';
import { validate } from '../../../src/model/index.js';
import { deadHostsTopology, startApiDaemon } from '../../helpers/api-daemon.js';
import { tenet } from '../../helpers/cli.js';

t.test('client commands against tenet controller', async (t) => {
  const d = await startApiDaemon(t);
  const env = { ...process.env, TENET_API: d.url, TENET_TOKEN: d.token! };
  const run = (...args: string[]) => tenet(args, { env });
  const status = async () => (await (await fetch(`${d.url}/v1/status`, { headers: { authorization: `Bearer ${d.token}` } })).json()) as { generation: number };

  const good = join(d.stateDir, 'good.json');
  writeFileSync(good, JSON.stringify(deadHostsTopology(), null, 2));
  const badDoc = deadHostsTopology();
  badDoc.tenants[0]!.networks = [
    { name: 'web', subnet: '10.0.0.0/24' },
    { name: 'db', subnet: '10.0.0.0/25' },
  ];
  (badDoc.tenants[1]!.endpoints[0] as { host: string }).host = 'host7';
  const bad = join(d.stateDir, 'bad.json');
  writeFileSync(bad, JSON.stringify(badDoc));
  const expected = validate(badDoc);
  const issues = expected.ok ? [] : expected.errors;
  t.ok(issues.length >= 2);

  // Invalid file: the validator's list (path: reason, one per line), exit 1, nothing stored.
  const inv = await run('apply', '-f', bad);
  t.equal(inv.code, 1);
  t.equal(inv.stdout, '');
  t.equal(inv.stderr, `tenet: invalid topology: ${issues.length} error(s)\n${issues.map((i) => `  ${i.path}: ${i.message}\n`).join('')}`);
  t.match(inv.stderr, /\n {2}\/tenants\/0\/networks\/1\/subnet: .*overlaps/);

  // plan and apply --dry-run print the plan and store nothing.
  const [planV, dry] = await Promise.all([run('plan', '-f', good, '-v'), run('apply', '-f', good, '--dry-run')]);
  t.equal(planV.code, 0, planV.stderr);
  t.match(planV.stdout, /^plan: generation 1\n {2}host1: \+\d+ flows.* \(hitless\) \[not connected: planned against its last known state\]\n/);
  t.match(planV.stdout, /\n {4}\+ cookie=0x[0-9a-f]+, .*priority=\d+.* actions=/);
  t.match(planV.stdout, /\n {2}host2: \+\d+ flows/);
  t.equal(dry.code, 0);
  t.equal(dry.stdout, `${planV.stdout.split('\n').filter((l) => !l.startsWith('    ')).join('\n')}dry run: nothing applied\n`);
  t.equal((await status()).generation, 0, 'plan and --dry-run stored nothing');

  // apply with only unreachable hosts: stored, every host named with its state, exit 1.
  const app = await run('apply', '-f', good, '--timeout', '20');
  t.equal(app.code, 1);
  t.match(app.stdout, /\napplied: generation 1\n/);
  t.match(app.stdout, /\n {2}host1 unreachable: .*127\.0\.0\.1:1.* \(realized gen 0\)\n/);
  t.match(app.stdout, /\n {2}host2 unreachable: /);
  t.match(app.stderr, /generation 1 not realized on 2 of 2 hosts: host1 \(unreachable\), host2 \(unreachable\)/);
  t.equal((await status()).generation, 1);

  // get / status
  const [epsJson, epsTable, hosts, st, tokenFile, noToken] = await Promise.all([
    run('get', 'endpoints', '-o', 'json'),
    run('get', 'endpoints'),
    run('get', 'hosts'),
    run('status'),
    tenet(['get', 'tenants', '--token-file', join(d.stateDir, 'token')], { env: { ...process.env, TENET_API: d.url, TENET_TOKEN: '' } }),
    tenet(['get', 'tenants'], { env: { ...process.env, TENET_API: d.url, TENET_TOKEN: '' } }),
  ]);
  t.equal(epsJson.code, 0, epsJson.stderr);
  const eps = JSON.parse(epsJson.stdout) as EndpointInfo[];
  const fromApi = (await (await fetch(`${d.url}/v1/endpoints`, { headers: { authorization: `Bearer ${d.token}` } })).json()) as EndpointInfo[];
  t.same(eps, fromApi, '-o json is the API answer');
  t.same(eps.map((e) => e.id), ['blue/c', 'red/a', 'red/b']);
  const lines = epsTable.stdout.trimEnd().split('\n');
  t.match(lines[0], /^ENDPOINT\s+NETWORK\s+HOST\s+IP\s+MAC\s+GATEWAY\s+OFPORT$/);
  t.equal(lines.length, 4);
  for (const e of eps) t.ok(lines.some((l) => l.split(/\s+/).join(' ') === `${e.id} ${e.network} ${e.host} ${e.ip} ${e.mac} ${e.gateway} -`), `table row of ${e.id}`);
  t.match(hosts.stdout, /^HOST\s+STATE\s+REALIZED.*\nhost1\s+unreachable\s+0\s+0\s+0\s+0\s+-\s+\S+\s+OVSDB/);
  t.match(st.stdout, /^generation 1: realized on 0 of 2 hosts \(0 ready\)/);
  t.match(st.stdout, /\nhost2\s+unreachable/);
  t.equal(tokenFile.code, 0, `--token-file: ${tokenFile.stderr}`);
  t.equal(noToken.code, 1);
  t.match(noToken.stderr, /missing or wrong bearer token/);

  // delete
  const [usage, missing] = await Promise.all([run('delete', 'tenant'), run('delete', 'tenant', 'green')]);
  t.equal(usage.code, 2, 'usage error: exit 2');
  t.equal(missing.code, 1);
  t.match(missing.stderr, /no tenant 'green'/);
  t.equal((await run('delete', 'tenant', 'blue')).stdout, 'deleted tenant blue: generation 2\n');
  t.equal((await status()).generation, 2);
});
