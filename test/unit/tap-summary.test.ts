/** The plain `N passed, N failed` line CI reads is derived from tap's closing summary. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const SCRIPT = fileURLToPath(new URL('../../scripts/tap-summary.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tenet-summary-'));

function summarise(log: string, status: number) {
  const file = join(dir, `log-${Math.random()}`);
  writeFileSync(file, log);
  const r = spawnSync(process.execPath, [SCRIPT, file, String(status)], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout.trim().split('\n') };
}

t.test('green run', async (t) => {
  const r = summarise('ok 1 - a\n# { total: 12, pass: 12 }\n# time=1ms\n', 0);
  t.same(r.out, ['12 passed, 0 failed']);
  t.equal(r.code, 0);
});

t.test('failures are counted from the last summary line', async (t) => {
  const r = summarise('# { total: 3, pass: 1 }\nnested\n# { total: 9, pass: 7, fail: 2, skip: 1 }\n', 1);
  t.same(r.out, ['7 passed, 2 failed']);
  t.equal(r.code, 1);
});

t.test('a red run without failed assertions still reports a failure', async (t) => {
  const cov = summarise('# ERROR: incomplete branches coverage (60%)\n# { total: 5, pass: 5 }\n', 1);
  t.same(cov.out, ['[test] coverage below the thresholds in .taprc', '5 passed, 1 failed']);
  const crash = summarise('no summary at all', 1);
  t.same(crash.out, ['[test] tap exited with status 1', '0 passed, 1 failed']);
  t.equal(crash.code, 1);
});
