// Prints the plain `N passed, N failed` line CI reads, from tap's closing
// `# { total: N, pass: N, fail: N, ... }` line. Counts are tap's assertions.
// A run that exits non-zero without a failed assertion (a coverage threshold
// missed, a crashed test file) counts as one failure so the line never says green
// for a red run.
import { readFileSync } from 'node:fs';

const [logPath, statusArg] = process.argv.slice(2);
const status = Number(statusArg ?? 1);
const text = readFileSync(logPath, 'utf8');
const lines = text.split('\n').filter((l) => /^# \{ total: \d+/.test(l));
const last = lines.at(-1) ?? '';
const count = (key) => Number(new RegExp(`\\b${key}: (\\d+)`).exec(last)?.[1] ?? 0);
const passed = count('pass');
let failed = count('fail');
if (status !== 0 && failed === 0) {
  const why = /ERROR: incomplete \w+ coverage/.test(text) || /incomplete coverage/i.test(text)
    ? 'coverage below the thresholds in .taprc'
    : `tap exited with status ${status}`;
  console.log(`[test] ${why}`);
  failed = 1;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && status === 0 ? 0 : 1);
