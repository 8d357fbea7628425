import { readFileSync } from 'node:fs';
import t from 'tap';
import { expectedMatrix, expectedVerdict, formatMatrix, mismatches } from '../../../src/lab/connectivity.js';
import { loadTopology } from '../../../src/model/index.js';
import { effectiveDoc } from '../../../src/scheduler/index.js';

// The demo's units placed as its constraints place them in the lab (each instance becomes an endpoint).
const placement = {
  assignments: [
    { id: 'web@1', unit: 'web@1', host: 'host1' },
    { id: 'web@2', unit: 'web@2', host: 'host2' },
    { id: 'db', unit: 'db', host: 'host3' },
    { id: 'fw', unit: 'fw', host: 'host2' },
    { id: 'ids', unit: 'ids', host: 'host3' },
    { id: 'globex-web@1', unit: 'globex-web@1', host: 'host1' },
    { id: 'globex-web@2', unit: 'globex-web@2', host: 'host2' },
    { id: 'globex-db', unit: 'globex-db', host: 'host3' },
  ],
};
const demo = loadTopology(effectiveDoc(JSON.parse(readFileSync(new URL('../../../topologies/demo.json', import.meta.url), 'utf8')), placement).doc);

t.test('expected verdicts of the demo follow its policies', async (t) => {
  t.ok(expectedVerdict(demo, 'acme/web-1', 'acme/db', { kind: 'tcp', port: 5432 }), 'acme web -> db postgres allowed (routed, through the chain)');
  t.notOk(expectedVerdict(demo, 'acme/db', 'acme/web-1', { kind: 'tcp', port: 5432 }), 'acme db -> web: default deny');
  t.notOk(expectedVerdict(demo, 'acme/web-1', 'acme/db', { kind: 'tcp', port: 5433 }), 'another port: denied');
  t.ok(expectedVerdict(demo, 'acme/web-1', 'acme/db', { kind: 'icmp' }), 'ping from web allowed');
  t.notOk(expectedVerdict(demo, 'globex/globex-db', 'globex/globex-web-1', { kind: 'icmp' }), 'globex db -> web: default deny');
  t.ok(expectedVerdict(demo, 'globex/globex-web-1', 'globex/globex-db', { kind: 'icmp' }), 'globex web -> db allowed, replies pass');
  const sf = new Set(['acme/fw', 'acme/ids']);
  const cells = expectedMatrix(demo, [{ kind: 'icmp' }, { kind: 'tcp', port: 5432 }]).filter((c) => !sf.has(c.from) && !sf.has(c.to));
  t.equal(cells.length, 60, 'the demo\'s matrix: 6 endpoints besides the service functions, 2 probes');
  t.equal(cells.filter((c) => c.expected).length, 16);
  t.ok(cells.filter((c) => c.from.split('/')[0] !== c.to.split('/')[0]).every((c) => !c.expected), 'no cross-tenant cell expected');
});

t.test('matrix text and mismatches', async (t) => {
  const cells = expectedMatrix(demo, [{ kind: 'icmp' }]).filter((c) => c.from.startsWith('acme/') && c.to.startsWith('acme/'));
  for (const c of cells) c.observed = c.expected;
  t.same(mismatches(cells), []);
  const leak = cells.find((c) => !c.expected)!;
  leak.observed = true;
  t.same(mismatches(cells), [leak]);
  const text = formatMatrix(cells);
  t.match(text, /^ping, from row to column:/);
  t.match(text, new RegExp(`^${leak.from}\\s.*LEAK`, 'm'));
  t.match(text, /ok/);
});
