import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { unitsPlaceText, unitsValidateText } from '../../../src/cli/units.js';
import type { PlacementResult } from '../../../src/scheduler/index.js';
import { tenet } from '../../helpers/cli.js';

const example = fileURLToPath(new URL('../../../topologies/units-three-hosts.json', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tenet-units-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const doc = JSON.parse(readFileSync(example, 'utf8')) as { hosts: unknown[]; units: Array<Record<string, unknown>> };
const write = (name: string, content: unknown) => {
  const f = join(dir, name);
  writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
  return f;
};

t.test('units validate', async (t) => {
  t.same(unitsValidateText(example), { ok: true, text: `${example}: valid (5 units in the document, 9 after template expansion: 9 instances + 1 global; 3 hosts)\n` });
  const bad = write('bad.json', {
    ...doc,
    units: [
      { name: 'a', tenant: 'acme', network: 'nope', command: 'x' },
      { name: 'b', tenant: 'acme', network: 'web', command: 'x', constraints: { machineOf: 'c' } },
      { name: 'c', tenant: 'acme', network: 'web', command: 'x', constraints: { machineOf: 'b' } },
    ],
  });
  const r = unitsValidateText(bad);
  t.equal(r.ok, false);
  t.equal(
    r.text,
    `${bad}: 3 error(s)\n  /units/0/network: unknown network "nope" in tenant "acme"\n  /units/1/constraints/machineOf: machineOf cycle: b → c → b\n  /units/2/constraints/machineOf: machineOf cycle: c → b → c\n`,
  );
  t.throws(() => unitsValidateText(join(dir, 'missing.json')), { code: 'EFILE', message: /cannot read/ });
  t.throws(() => unitsValidateText(write('x.json', '{')), { code: 'EFILE', message: /not JSON/ });
});

t.test('units place: table, explanations, JSON, current placements', async (t) => {
  const r = unitsPlaceText(example, { format: 'text' });
  t.equal(r.ok, true);
  t.match(r.text, /^INSTANCE +HOST\n/);
  t.match(r.text, /\ndb +host1\n/, 'db needs region=eu and disk=ssd: host1');
  t.match(r.text, /12 placed \(12 new\), 0 unplaceable\n$/);

  const j = JSON.parse(unitsPlaceText(example, { format: 'json' }).text) as PlacementResult;
  const at = Object.fromEntries(j.assignments.map((a) => [a.id, a.host]));
  for (const i of [1, 2, 3]) t.equal(at[`log@${i}`], at[`web@${i}`], `log@${i} runs with web@${i}`);
  t.equal(new Set([1, 2, 3].map((i) => at[`web@${i}`])).size, 3, 'web instances conflict: three hosts');

  // Too much memory: nothing placed for it, and the reason.
  const big = write('big.json', { ...doc, units: [...doc.units, { name: 'huge', tenant: 'acme', network: 'web', command: 'x', resources: { memory: '64Gi' } }] });
  const b = unitsPlaceText(big, { format: 'text' });
  t.equal(b.ok, false);
  t.match(b.text, /unplaceable \(1\):\n {2}huge: memory 64Gi: no host has that much free \(host\d has [\d.]+Gi free/);

  // Current placements from a previous JSON output, host3 gone: its instances move.
  const prev = write('prev.json', unitsPlaceText(example, { format: 'json' }).text);
  const two = write('two.json', { ...doc, hosts: doc.hosts.slice(0, 2) });
  const m = unitsPlaceText(two, { format: 'text', current: prev });
  t.match(m.text, /\(kept\)/);
  // web@1 (and log@1 with it) cannot move: web@2 and web@3 hold the other hosts and conflict.
  t.match(m.text, /moved \(2\):\n {2}log@1: host3 → \(nowhere\) \(host host3 is gone\)\n {2}web@1: host3 → \(nowhere\)/);
  t.match(m.text, /\n {2}web@1: machineOf group web@1, log@1: conflicts web@\*: excludes host1 \(runs web@3\), host2 \(runs web@2\)\n/);
  t.match(m.text, /removed \(1\):\n {2}metrics:host3 from host3/);
  t.throws(() => unitsPlaceText(example, { format: 'text', current: write('cur.json', [1]) }), { code: 'EFILE', message: /--current must be/ });
});

t.test('the tenet executable', async (t) => {
  const ok = await tenet(['units', 'place', '-f', example, '--format', 'json']);
  t.equal(ok.code, 0, ok.stderr);
  t.equal((JSON.parse(ok.stdout) as PlacementResult).assignments.length, 12);
  const bad = await tenet(['units', 'validate', '-f', write('bad2.json', { ...doc, units: [{ name: 'a', tenant: 'nope', network: 'web', command: 'x' }] })]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /\/units\/0\/tenant: unknown tenant "nope"/);
  const badPlace = await tenet(['units', 'place', '-f', write('bad3.json', { ...doc, units: [{ name: 'a', tenant: 'nope', network: 'web', command: 'x' }] })]);
  t.equal(badPlace.code, 1);
  t.match(badPlace.stderr, /\/units\/0\/tenant: unknown tenant "nope"/, 'units place: validation errors on stderr too');
  t.equal(badPlace.stdout, '');
  const usage = await tenet(['units', 'place']);
  t.equal(usage.code, 1);
  t.match(usage.stderr, /required option '-f, --file <file>'/);
});
