/** `tenet agent` refuses bad input at once (exit 2, one line), and without a controller it waits and says so. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { tenet, TENET_BIN } from '../../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tn-agent-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, 'secret\n');
const base = ['agent', '--host', 'h1', '--state-dir', join(dir, 'state'), '--isolate', 'off'];

t.test('bad input: exit 2 with the reason', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--token-file', join(dir, 'missing')], /cannot read a token from .*missing/],
    [['--token-file', tokenFile, '--labels', 'zone'], /--labels: 'zone' is not key=value/],
    [['--token-file', tokenFile, '--controller', '127.0.0.1:6680'], /--controller: '127\.0\.0\.1:6680' is not a URL/],
  ];
  for (const [args, want] of cases) {
    const env = { ...process.env };
    delete env.TENET_API;
    delete env.TENET_TOKEN;
    const r = await tenet([...base, ...args], { env });
    t.equal(r.code, 2, `exit 2 for ${args.join(' ')}`);
    t.match(r.stderr, want);
  }
  const help = await tenet(['agent', '--help']);
  t.match(help.stdout, /--controller <url>[\s\S]*--token-file[\s\S]*adopts them/, 'help names the options and the adoption');
});

t.test('controller unreachable: the agent keeps trying, logs it once, stops on SIGTERM', async (t) => {
  const child = spawn(process.execPath, [TENET_BIN, ...base, '--token-file', tokenFile, '--controller', 'http://127.0.0.1:9'], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const deadline = Date.now() + 15_000;
  while (!/register failed: controller unreachable/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.match(stderr, /register failed: controller unreachable at http:\/\/127\.0\.0\.1:9: .*retrying/, 'the outage is one clear line');
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.equal(code, 0, 'SIGTERM ends it cleanly');
  t.match(stderr, /agent for host h1 stopped/);
});
