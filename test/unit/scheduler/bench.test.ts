/** The schedule benchmark's options and figures (R1 #14), on a tiny input. */
import { spawnSync } from 'node:child_process';
import t from 'tap';

const bench = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', './scripts/ts-loader/register.mjs', 'scripts/bench/schedule.ts', ...args], { encoding: 'utf8', timeout: 60_000 });

t.test('options that are not positive integers are refused', async (t) => {
  for (const [opt, value] of [['--reps', '0'], ['--units', 'abc'], ['--hosts', '1.5'], ['--reps', undefined]] as const) {
    // Tiny sizes: without the check, `--reps 0` ran and then crashed in median([]).
    const args = ['--units', '50', '--hosts', '5', opt, ...(value === undefined ? [] : [value])];
    const r = bench(...args);
    t.equal(r.status, 2, `${opt} ${value ?? '(missing)'}: exit 2`);
    t.equal(r.stderr.trim(), `${opt} ${value ?? ''}: give a positive integer`);
  }
});

t.test('non-global placements are reported beside all placements', async (t) => {
  const r = bench('--units', '300', '--hosts', '12', '--reps', '1');
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const figures = JSON.parse(lines[lines.length - 1]!) as Record<string, number>;
  // 3 global units on 12 hosts, one of them on ssd hosts only: between 24 and 36 global instances.
  const globals = figures.placements! - figures.non_global_placements!;
  t.ok(globals >= 24 && globals <= 36, `${globals} global instances`);
  t.ok(figures.non_global_placements_per_s! > 0 && figures.non_global_placements_per_s! < figures.placements_per_s!);
});
