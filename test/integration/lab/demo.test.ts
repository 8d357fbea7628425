/** The README's main command: `npm run demo` (here its script directly, with a private lab name). */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { labDown, listNamespaces } from '../../../src/lab/index.js';
import { uniqueLabName } from '../../helpers/lab.js';

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
  t.match(demo.output(), /PASS {2}ping web -> db: 3\/3 replies/);
  t.match(demo.output(), /PASS {2}TCP web -> db:8080/);
  t.notMatch(demo.output(), /FAIL/);
  t.match(demo.output(), /7 of 7 checks passed/);
  t.same(listNamespaces().filter((n) => n.startsWith(`${name}-`)), [], 'no namespaces left');
});

t.test('demo without --check waits, and Ctrl-C tears everything down', async (t) => {
  const name = uniqueLabName();
  t.teardown(() => labDown(name));
  const demo = startDemo(['--name', name]);
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (demo.output().includes('press Ctrl-C')) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
    void demo.exited.then(() => {
      clearInterval(timer);
      reject(new Error(`demo exited early:\n${demo.output()}`));
    });
  });
  t.ok(listNamespaces().includes(`${name}-host1`), 'lab is up while the demo waits');
  demo.child.kill('SIGINT');
  t.equal(await demo.exited, 130, 'exits with 130 after Ctrl-C');
  t.match(demo.output(), /nothing of the demo is left/);
  t.same(listNamespaces().filter((n) => n.startsWith(`${name}-`)), [], 'no namespaces left');
});
