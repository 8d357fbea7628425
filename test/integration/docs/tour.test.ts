/**
 * The README's "5-minute tour", run as written: every command of its shell block,
 * in order, from the repository root, each exiting 0 with the output the README
 * promises. Only the lab's name is replaced by a unique one (tests run in parallel).
 * Its steps 3 and 4 are `npm run demo` (test/integration/lab/demo.test.ts) and the
 * Vagrant testbed (test/unit/vagrant/vagrant.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { labDown } from '../../../src/lab/index.js';
import { uniqueLabName } from '../../helpers/lab.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');

/** The commands of the first shell block after the tour's heading, comments dropped. */
function tourCommands(): string[] {
  const section = readme.slice(readme.indexOf('## A 5-minute tour'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').replace(/^#.*$/, '').trim())
    .filter(Boolean);
}

/** What each command must print (beyond exiting 0), by a piece of its text. */
const expectations: Array<[RegExp, RegExp]> = [
  [/ validate topologies\/demo\.json/, /valid \(2 tenants, 4 networks, 0 endpoints, 8 units, 3 hosts\)/],
  [/ units place -f topologies\/demo\.json/, /8 placed \(8 new\), 0 unplaceable/],
  [/ units place -f topologies\/demo\.json/, /web@1\s+host1\n[\s\S]*web@2\s+host2/],
  [/ compile .*--host host1/, /table=60, priority=0 actions=drop/],
  [/--from acme\/web-1 --to acme\/db-1 tcp 5432/, /delivered to acme\/db-1 on host2/],
  [/--from acme\/web-1 --to acme\/db-1 tcp 22/, /dropped on host1 at table 10 \(acl_ingress\)/],
  [/--from acme\/client --to acme\/server tcp 5432/, /service functions: acme\/fw@host2 -> acme\/ids@host3/],
  [/--from acme\/client --to acme\/server tcp 5432/, /delivered to acme\/server on host1/],
  [/ ping -c 3 /, /3 packets transmitted, [1-3] received/],
  [/ dump-flows br-int/, /actions=/],
];

t.test('README 5-minute tour, command by command', async (t) => {
  const commands = tourCommands();
  t.ok(commands.length >= 10, `${commands.length} commands in the tour`);
  t.ok(commands.some((c) => c.includes('lab down --name tour')), 'the tour removes its lab');
  const name = uniqueLabName();
  t.teardown(() => labDown(name));
  for (const cmd of commands) {
    const run = cmd.replace(/--name tour\b/g, `--name ${name}`);
    const r = spawnSync('sh', ['-c', run], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    const out = `${r.stdout}${r.stderr}`;
    t.equal(r.status, 0, `${cmd}${r.status === 0 ? '' : `\n${out.slice(-2000)}`}`);
    for (const [which, want] of expectations) if (which.test(cmd)) t.match(out, want, `  prints ${want.source}`);
  }
});
