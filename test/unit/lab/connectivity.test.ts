import { readFileSync } from 'node:fs';
import t from 'tap';
import { expectedMatrix, expectedVerdict, formatMatrix, mismatches } from '../../../src/lab/connectivity.js';
import { loadTopology } from '../../../src/model/index.js';

const demo = loadTopology(JSON.parse(readFileSync(new URL('../../../topologies/demo.json', import.meta.url), 'utf8')));

t.test('expected verdicts of the demo follow its policies', async (t) => {
  t.ok(expectedVerdict(demo, 'acme/web-1', 'acme/db-1', { kind: 'tcp', port: 5432 }), 'acme web -> db postgres allowed (routed)');
  t.notOk(expectedVerdict(demo, 'acme/db-1', 'acme/web-1', { kind: 'tcp', port: 5432 }), 'acme db -> web: default deny');
  t.notOk(expectedVerdict(demo, 'acme/web-1', 'acme/db-1', { kind: 'tcp', port: 5433 }), 'another port: denied');
  t.ok(expectedVerdict(demo, 'acme/web-1', 'acme/db-1', { kind: 'icmp' }), 'ping from web allowed');
  t.notOk(expectedVerdict(demo, 'globex/db-1', 'globex/web-1', { kind: 'icmp' }), 'globex db -> web denied');
  t.ok(expectedVerdict(demo, 'globex/web-1', 'globex/db-1', { kind: 'icmp' }), 'globex web -> db allowed, replies pass');
  const cells = expectedMatrix(demo, [{ kind: 'icmp' }, { kind: 'tcp', port: 5432 }]);
  t.equal(cells.length, 60);
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
