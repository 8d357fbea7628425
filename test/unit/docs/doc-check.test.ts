/**
 * Every `tenet …` and `npm …` command the README, docs/*.md and the other READMEs
 * show a user exists: its subcommand path in the real CLI, each option it uses,
 * the values of options with fixed choices, each npm script (and the benchmark
 * named after `npm run bench --`). A stale command is reported with file:line.
 * Also: `--help` of every documented subcommand path exits 0 from the real
 * executable, and the checker itself catches stale commands (it can fail).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError, type Command } from 'commander';
import t from 'tap';
import { buildProgram } from '../../../src/cli/main.js';
import { checkCommand, extractCommands, type CheckContext, type StaleCommand } from '../../helpers/doc-commands.js';
import { tenet } from '../../helpers/cli.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const docs = ['README.md', 'vagrant/README.md', 'topologies/README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)].filter((f) =>
  existsSync(join(root, f)),
);

async function context(): Promise<CheckContext> {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const sources: Record<string, string> = { demo: 'scripts/demo.ts', test: 'scripts/test.sh' };
  return {
    program: await buildProgram(['node', 'tenet']),
    scripts: pkg.scripts,
    benchExists: (name) => existsSync(join(root, 'scripts/bench', `${name}.ts`)),
    scriptSource: (script, arg) => {
      const file = script === 'bench' && arg ? `scripts/bench/${arg}.ts` : sources[script];
      return file && existsSync(join(root, file)) ? readFileSync(join(root, file), 'utf8') : undefined;
    },
  };
}

t.test('the checker finds stale commands (it can fail)', async (t) => {
  const ctx = await context();
  const doc = [
    '| `tenet lab upp` | x |',
    '```sh',
    'tenet lab up --hostz 3',
    'npm run nope',
    'tenet get endpoints -o yaml',
    'npm run bench -- no-such-bench',
    'npm run demo -- --no-such-flag',
    'vagrant ssh controller -c \'sudo tenet frobnicate\'',
    'tenet lab',
    '```',
    '```sh',
    'tenet lab up --hosts 3   # fine',
    'tenet units validate|place -f FILE [--current F] [--format text|json]',
    'tenet lab exec host1 ovs-ofctl -O OpenFlow13 dump-flows br-int',
    'TENET_API=http://x:6680 npx tenet apply -f topologies/demo.json --dry-run',
    'npm run demo -- --check',
    'npm run bench -- compile',
    '```',
    '```json',
    '{ "cmd": "tenet nonsense" }',
    '```',
  ].join('\n');
  const found = extractCommands('fake.md', doc);
  const stale = found.map((c) => ({ ...c, reason: checkCommand(c, ctx) })).filter((c) => c.reason);
  t.same(
    stale.map((s) => s.line),
    [1, 3, 4, 5, 6, 7, 8, 9],
    stale.map((s) => `${s.line}: ${s.text}: ${s.reason}`).join('\n'),
  );
  t.match(stale[0]!.reason, /no subcommand 'upp'/);
  t.match(stale[1]!.reason, /no option --hostz/);
  t.match(stale[3]!.reason, /'yaml' is not one of table, json/);
  t.equal(found.length, 14, 'the json block is not read; everything else is');
});

t.test('every command in the docs exists in the CLI and package.json', async (t) => {
  const ctx = await context();
  const stale: StaleCommand[] = [];
  let checked = 0;
  for (const file of docs) {
    for (const cmd of extractCommands(file, readFileSync(join(root, file), 'utf8'))) {
      checked++;
      const reason = checkCommand(cmd, ctx);
      if (reason) stale.push({ ...cmd, reason });
    }
  }
  t.ok(checked > 100, `${checked} commands checked in ${docs.length} files`);
  t.same(
    stale.map((s) => `${s.file}:${s.line}: ${s.text}  — ${s.reason}`),
    [],
    'no stale command',
  );
});

/** `tenet PATH --help` through the real program, in-process (a process each would take ~2 s here): exit status and text. */
async function helpOf(path: string[]): Promise<{ code: number; text: string }> {
  const program = await buildProgram(['node', 'tenet', ...path]);
  let text = '';
  const capture = (c: Command) => {
    c.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
    c.commands.forEach(capture);
  };
  capture(program);
  try {
    await program.parseAsync(['node', 'tenet', ...path, '--help']);
    return { code: 0, text };
  } catch (err) {
    return { code: err instanceof CommanderError ? err.exitCode : 1, text };
  }
}

t.test('--help of every documented subcommand path exits 0 and names the options the docs use', async (t) => {
  const ctx = await context();
  const used = new Map<string, Set<string>>();
  for (const file of docs) {
    for (const cmd of extractCommands(file, readFileSync(join(root, file), 'utf8'))) {
      if (cmd.text.startsWith('npm')) continue;
      const words = cmd.text.replace(/^(npx\s+)?tenet\s+|^node bin\/tenet\.js\s+/, '').split(/\s+/);
      let c = ctx.program;
      const path: string[] = [];
      for (const w of words) {
        const sub = c.commands.find((s) => s.name() === w);
        if (!sub) break;
        path.push(w);
        c = sub;
      }
      if (!path.length) continue;
      const key = path.join(' ');
      const flags = used.get(key) ?? new Set<string>();
      // Options before a pass-through command's arguments (lab exec HOST CMD -O …) are the other program's.
      const own = c.name() === 'exec' ? [] : words.slice(path.length);
      for (const w of own) if (/^--?[a-zA-Z]/.test(w.replace(/^\[/, ''))) flags.add(w.replace(/^\[/, '').replace(/[\]=].*$/, ''));
      used.set(key, flags);
    }
  }
  t.ok(used.size >= 15, `${used.size} subcommand paths`);
  for (const [path, flags] of used) {
    const r = await helpOf(path.split(' '));
    t.equal(r.code, 0, `tenet ${path} --help`);
    const missing = [...flags].filter((f) => f !== '--help' && f !== '-h' && !new RegExp(`(^|[\\s,])${f}\\b`).test(r.text));
    t.same(missing, [], `tenet ${path} --help names ${[...flags].join(' ') || 'its usage'}`);
  }
  const real = await tenet(['--help']);
  t.equal(real.code, 0, 'the executable: tenet --help');
  for (const group of new Set([...used.keys()].map((p) => p.split(' ')[0]!))) t.match(real.stdout, new RegExp(`\\n\\s+${group}\\b`), `tenet --help lists ${group}`);
});
