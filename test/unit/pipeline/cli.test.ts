import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { compileText, traceText, validateText } from '../../../src/cli/topology.js';
import { parseFlow } from '../../../src/openflow/index.js';
import { tenet } from '../../helpers/cli.js';

const topo = (f: string) => fileURLToPath(new URL(`../../../topologies/${f}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tenet-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('validate', async (t) => {
  t.match(validateText(topo('two-tenants.json')), { ok: true, text: /valid \(2 tenants, 3 networks, 6 endpoints, 3 hosts\)/ });
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ hosts: [{ name: 'h', underlayIp: '1.2.3.4', ovsdb: 'unix:/x' }], tenants: [{ name: 'a', networks: [{ name: 'n', subnet: '10.0.0.1/24' }] }] }));
  const r = validateText(bad);
  t.equal(r.ok, false);
  t.match(r.text, /\/tenants\/0\/networks\/0\/subnet: 10.0.0.1\/24 has host bits set/);
  const notJson = join(dir, 'x.json');
  writeFileSync(notJson, '{');
  t.throws(() => validateText(notJson), { code: 'EFILE', message: /not JSON/ });
  t.throws(() => validateText(join(dir, 'missing.json')), { code: 'EFILE', message: /cannot read/ });
  t.throws(() => compileText(bad, { format: 'ofctl' }), /is invalid/);
});

t.test('compile: ovs-ofctl lines that parse back, or JSON', async (t) => {
  const text = compileText(topo('lab-two-hosts.json'), { host: 'host1', format: 'ofctl' });
  const lines = text.trim().split('\n').filter((l) => !l.startsWith('#'));
  t.ok(lines.length > 40);
  for (const l of lines) parseFlow(l);
  t.match(text, /# group group_id=/);
  const all = compileText(topo('lab-two-hosts.json'), { format: 'ofctl' });
  t.match(all, /# host host1[\s\S]*# host host2/);
  const j = JSON.parse(compileText(topo('lab-two-hosts.json'), { format: 'json' })) as { hosts: { host: string; flows: string[] }[] };
  t.same(j.hosts.map((h) => h.host), ['host1', 'host2']);
  t.throws(() => compileText(topo('lab-two-hosts.json'), { host: 'nope', format: 'ofctl' }), /unknown host/);
});

t.test('trace', async (t) => {
  t.match(traceText(topo('two-tenants.json'), 'acme/web-1', 'acme/db-1', 'tcp', '5432'), /delivered to acme\/db-1 on host2/);
  t.match(traceText(topo('two-tenants.json'), 'acme/web-1', 'acme/db-1', 'tcp', '22'), /dropped on host1 at table 10/);
  t.match(traceText(topo('two-tenants.json'), 'acme/web-1', 'acme/web-2'), /delivered to acme\/web-2/);
  t.throws(() => traceText(topo('two-tenants.json'), 'acme/web-1', 'acme/db-1', 'sctp'), /protocol must be/);
  t.throws(() => traceText(topo('two-tenants.json'), 'acme/web-1', 'acme/db-1', 'tcp', '99999'), /port must be/);
  t.throws(() => traceText(topo('two-tenants.json'), 'acme/web-1', 'acme/db-1', 'icmp', '80'), /needs tcp or udp/);
});

t.test('the tenet executable', async (t) => {
  const ok = await tenet(['trace', topo('two-tenants.json'), '--from', 'acme/web-1', '--to', 'acme/db-1', 'tcp', '5432']);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /verdict:\n  delivered to acme\/db-1 on host2/);
  const bad = await tenet(['validate', fileURLToPath(new URL('../../fixtures/invalid-topologies/35-endpoint-ip6-no-subnet6.json', import.meta.url))]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /unknown fields/);
});
