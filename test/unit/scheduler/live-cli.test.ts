/**
 * `tenet units submit|start|stop|destroy|list|logs` and `tenet agents`, the real
 * executable against the API over the FakeController; logs through a unix socket that
 * answers like an agent's (and a clear error for a socket that is not on this machine).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startApi } from '../../../src/api/index.js';
import { agentsTable, unitsTable } from '../../../src/cli/units.js';
import { main } from '../../../src/cli/main.js';
import { FakeController } from '../../helpers/fake-controller.js';

/** Runs the CLI in process (spawning the executable costs seconds per command here), capturing its output. */
async function tenet(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const saved = { out: process.stdout.write, err: process.stderr.write, env: { ...process.env } };
  let stdout = '';
  let stderr = '';
  process.stdout.write = ((c: string | Uint8Array) => ((stdout += String(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => ((stderr += String(c)), true)) as typeof process.stderr.write;
  Object.assign(process.env, env);
  process.exitCode = 0;
  try {
    await main(['node', 'tenet', ...args]);
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    process.env = saved.env;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { code, stdout, stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'tenet-units-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('formatters', async (t) => {
  t.equal(
    unitsTable([
      { name: 'web@1..2', tenant: 'acme', network: 'web', desiredState: 'launched', instances: [{ id: 'web@1', host: 'host1', endpoint: 'acme/web-1', ip: '10.0.0.5/24', state: 'running' }, { id: 'web@2' }], unplaceable: 'web@2: conflicts' },
      { name: 'db', tenant: 'acme', network: 'db', desiredState: 'loaded', instances: [] },
    ]),
    [
      'UNIT      INSTANCE  STATE     DESIRED   HOST   IP           TENANT/NETWORK',
      'web@1..2  web@1     running   launched  host1  10.0.0.5/24  acme/web',
      'web@1..2  web@2     unplaced  launched  -      -            acme/web',
      'db        -         -         loaded    -      -            acme/db',
      '',
      'unplaceable:',
      '  web@1..2: web@2: conflicts',
      '',
    ].join('\n'),
  );
  t.match(agentsTable([{ host: 'h1', alive: false, registration: { version: '1', labels: { a: 'b' } }, registeredAt: 'T', instances: [] }]), /\nh1\s+no\s+0\s+0\s+1\s+T\s+a=b\n$/);
});

t.test('live commands against the API', async (t) => {
  const ctl = new FakeController();
  const api = await startApi(ctl, { listen: '127.0.0.1:0', token: null });
  t.teardown(() => api.close());
  const run = (...args: string[]) => tenet(args, { TENET_API: api.url, TENET_TOKEN: 'x' });
  await ctl.apply({
    hosts: [{ name: 'host1', underlayIp: '192.0.2.1', ovsdb: 'tcp:127.0.0.1:1' }],
    tenants: [{ name: 'acme', networks: [{ name: 'web', subnet: '10.0.1.0/24' }] }],
  });
  const file = join(dir, 'units.json');
  writeFileSync(file, JSON.stringify([{ name: 'web@1..2', tenant: 'acme', network: 'web', command: ['sleep', 'infinity'] }]));
  const sub = await run('units', 'submit', '-f', file);
  t.equal(sub.code, 0, sub.stderr);
  t.equal(sub.stdout, 'submitted 1 unit(s): generation 2\n');
  const badFile = join(dir, 'bad.json');
  writeFileSync(badFile, JSON.stringify({ units: [{ name: 'x', tenant: 'acme', network: 'nope', command: 'x' }] }));
  const bad = await run('units', 'submit', '-f', badFile);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /\/units\/1\/network.*unknown network "nope"/);

  const list = await run('units', 'list');
  t.match(list.stdout, /^UNIT\s+INSTANCE\s+STATE/);
  t.match(list.stdout, /\nweb@1\.\.2\s+-\s+-\s+launched\s+-\s+-\s+acme\/web\n/);
  const json = await run('units', 'list', '-o', 'json');
  t.match(JSON.parse(json.stdout), [{ name: 'web@1..2', desiredState: 'launched' }]);
  t.equal((await run('units', 'stop', 'web@1..2')).stdout, 'stopped web@1..2: generation 3\n');
  t.match((await run('units', 'list', '-o', 'json')).stdout, /"desiredState": "loaded"/);
  t.equal((await run('units', 'start', 'web@1..2')).stdout, 'started web@1..2: generation 4\n');
  const nope = await run('units', 'start', 'nope');
  t.equal(nope.code, 1);
  t.match(nope.stderr, /no unit 'nope'/);

  // An agent on "this machine" (a unix socket answering /v1/logs/:id) and one elsewhere.
  const sock = join(dir, 'agent.sock');
  const srv = createServer((req, res) => {
    if (req.url === '/v1/logs/web%401?tail=5') res.end('line 1\nline 2\n');
    else res.writeHead(404).end(JSON.stringify({ message: `no ${req.url}` }));
  });
  await new Promise<void>((r) => srv.listen(sock, r));
  t.teardown(() => srv.close());
  const a1 = await ctl.registerAgent('host1', { version: 'v1', socket: sock });
  await ctl.reportInstances('host1', a1.leaseId, [{ id: 'web@1', unit: 'web@1', endpoint: 'acme/web-1', state: 'running', restarts: 0, since: 'now' }]);
  const a2 = await ctl.registerAgent('host2', { version: 'v1', socket: '/nonexistent/agent.sock' });
  await ctl.reportInstances('host2', a2.leaseId, [{ id: 'web@2', unit: 'web@2', endpoint: 'acme/web-2', state: 'running', restarts: 0, since: 'now' }]);

  const logs = await run('units', 'logs', 'web@1', '--tail', '5');
  t.equal(logs.code, 0, logs.stderr);
  t.equal(logs.stdout, 'line 1\nline 2\n');
  const far = await run('units', 'logs', 'web@2');
  t.equal(far.code, 1);
  t.match(far.stderr, /runs on host2, whose agent socket \/nonexistent\/agent.sock is not on this machine/);
  const none = await run('units', 'logs', 'web@9');
  t.match(none.stderr, /no instance 'web@9'/);

  const agents = await run('agents');
  t.match(agents.stdout, /^HOST\s+ALIVE\s+INSTANCES/);
  t.match(agents.stdout, /\nhost1\s+yes\s+1\s+1\s+v1\s/);
  t.match(agents.stdout, /\nhost2\s+yes\s+1\s+1\s+v1\s/);
  t.equal((await run('units', 'destroy', 'web@1..2')).stdout, 'destroyed web@1..2: generation 5\n');
});
