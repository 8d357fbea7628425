/** withLab removes its lab whatever way the test ends. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { labDown, listNamespaces, readState } from '../../../src/lab/index.js';
import { uniqueLabName, withLab } from '../../helpers/lab.js';

const CHILD = fileURLToPath(new URL('../../fixtures/hang-in-lab.ts', import.meta.url));
const LOADER = fileURLToPath(new URL('../../../scripts/ts-loader/register.mjs', import.meta.url));
const ours = (name: string) => listNamespaces().filter((n) => n.startsWith(`${name}-`));

t.test('a test that throws inside withLab leaves no lab behind', async (t) => {
  let name = '';
  await t.rejects(
    withLab(t, { hosts: 1 }, async (lab) => {
      name = lab.name;
      t.ok(ours(name).length > 0, 'lab exists inside the callback');
      throw new Error('boom');
    }),
    /boom/,
  );
  t.same(ours(name), [], 'namespaces removed');
  t.equal(readState(name), undefined, 'state removed');
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`a test process killed by ${sig} (as on a tap timeout) removes its lab`, async (t) => {
    const name = uniqueLabName();
    t.teardown(() => labDown(name));
    const child = spawn(process.execPath, ['--import', LOADER, CHILD, name], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => String(d).includes('ready') && resolve()));
    t.ok(ours(name).length > 0, 'lab is up');
    child.kill(sig);
    t.not(await exited, 0, 'the process still exits with a failure status');
    t.same(ours(name), [], 'namespaces removed');
    t.equal(readState(name), undefined, 'state removed');
  });
}
