/** The README's main command: `npm run demo` (here its script directly, with a private lab name). */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { labDown, listNamespaces } from '../../../src/lab/index.js';
import { uniqueLabName } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';
import { isAlive } from '../../../src/util/process.js';

const DEMO = fileURLToPath(new URL('../../../scripts/demo.ts', import.meta.url));
const LOADER = fileURLToPath(new URL('../../../scripts/ts-loader/register.mjs', import.meta.url));

function startDemo(args: string[]) {
  const child = spawn(process.execPath, ['--import', LOADER, DEMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

t.test('demo --check: every check passes, exit 0, nothing left', async (t) => {
  const name = uniqueLabName();
  t.teardown(() => labDown(name));
  const demo = startDemo(['--check', '--name', name]);
  const code = await demo.exited;
  t.equal(code, 0, 'exit 0');
  t.match(demo.output(), /PASS {2}tenet apply: every host realized the topology/);
  t.match(demo.output(), /PASS {2}connectivity matches the policy in all 60 cells/);
  t.match(demo.output(), /PASS {2}acme and globex .* never reach each other/);
  t.notMatch(demo.output(), /^ {2}FAIL /m, 'no failed check');
  t.notMatch(demo.output(), /MISMATCH/, 'no matrix cell contradicts the policy');
  t.match(demo.output(), /PASS {2}every unit placed and running \(8 instances on 3 hosts\)/);
  t.match(demo.output(), /PASS {2}placement honours the constraints/);
  t.match(demo.output(), /PASS {2}the connection passed the firewall and then the IDS, both ways/);
  t.match(demo.output(), /delivered to acme\/db on host\d/, 'the tracer\'s verdict for the chained connection');
  t.match(demo.output(), /PASS {2}DNS answers every service/);
  t.match(demo.output(), /\(5\) where to look next/);
  t.match(demo.output(), /11 of 11 checks passed/);
  t.match(demo.output(), /stopped the controller \(pid \d+\)/);
  t.same(listNamespaces().filter((n) => n.startsWith(`${name}-`)), [], 'no namespaces left (hosts, agents\' containers)');
});

// Interrupted while it runs (once the topology is applied) rather than after the matrix:
// the same cleanup path, without a second full run of the matrix in the suite.
t.test('Ctrl-C during the demo stops the controller and tears everything down', async (t) => {
  const name = uniqueLabName();
  t.teardown(() => labDown(name));
  const demo = startDemo(['--name', name]);
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (demo.output().includes('PASS  tenet apply')) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
    void demo.exited.then(() => {
      clearInterval(timer);
      reject(new Error(`demo exited early:\n${demo.output()}`));
    });
  });
  t.ok(listNamespaces().includes(`${name}-host1`), 'lab is up while the demo runs');
  const pid = Number(/controller runs \(pid (\d+)\)/.exec(demo.output())?.[1]);
  t.ok(pid > 0 && isAlive(pid), 'the controller runs while the demo runs');
  const agentPids = [...demo.output().matchAll(/host\d: pid (\d+)/g)].map((m) => Number(m[1]));
  t.equal(agentPids.length, 3, 'three agents started');
  demo.child.kill('SIGINT');
  t.equal(await demo.exited, 130, 'exits with 130 after Ctrl-C');
  await until('the controller is gone', () => !isAlive(pid), 10_000, 100);
  await until('the agents are gone', () => agentPids.every((p) => !isAlive(p)), 10_000, 100);
  t.match(demo.output(), /nothing of the demo is left/);
  t.same(listNamespaces().filter((n) => n.startsWith(`${name}-`)), [], 'no namespaces left (hosts, agents\' containers)');
});
