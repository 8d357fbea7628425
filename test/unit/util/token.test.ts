/** The shared token file and bearer check (controller API and registry). */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { bearerOk, loadOrCreateToken, readTokenFile } from '../../../src/util/token.js';

t.test('loadOrCreateToken creates a 0600 token once and reads it back', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-token-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const state = join(dir, 'state', 'nested');
  const a = loadOrCreateToken(state);
  t.match(a, /^[A-Za-z0-9_-]{40,}$/);
  t.equal(statSync(join(state, 'token')).mode & 0o777, 0o600);
  t.equal(loadOrCreateToken(state), a, 'second start reads the same token');
  t.equal(readTokenFile(join(state, 'token')), a);
  t.equal(readTokenFile(join(state, 'missing')), undefined);

  chmodSync(join(state, 'token'), 0o644);
  t.equal(loadOrCreateToken(state), a);
  t.equal(statSync(join(state, 'token')).mode & 0o777, 0o600, 'a token readable by others is tightened');

  writeFileSync(join(state, 'token'), '\n');
  t.throws(() => loadOrCreateToken(state), { code: 'ETOKEN' });
  t.equal(readFileSync(join(state, 'token'), 'utf8'), '\n', 'an empty token file is reported, not replaced');
  t.same(readdirSync(state), ['token'], 'no temporary file left behind');
});

t.test('a first start whose write fails leaves nothing that blocks the next start', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-token-efbig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tokenModule = fileURLToPath(new URL('../../../src/util/token.ts', import.meta.url));
  const loader = fileURLToPath(new URL('../../../scripts/ts-loader/register.mjs', import.meta.url));
  // A file size limit of 0 makes every write fail (EFBIG; node ignores SIGXFSZ) after the open succeeded.
  const script = `const { loadOrCreateToken } = await import(${JSON.stringify(tokenModule)});
    try { loadOrCreateToken(${JSON.stringify(dir)}); process.stdout.write('created'); } catch (e) { process.stdout.write(String(e.code)); }`;
  const child = await new Promise<string>((resolve, reject) => {
    const p = spawn('sh', ['-c', 'ulimit -f 0; exec "$0" "$@"', process.execPath, `--import=${loader}`, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.on('error', reject);
    p.on('close', () => resolve(out));
  });
  t.equal(child, 'EFBIG', 'the first start failed writing');
  t.same(readdirSync(dir), [], 'and left no file behind');
  t.match(loadOrCreateToken(dir), /^[A-Za-z0-9_-]{40,}$/, 'the next start creates the token');
});

t.test('bearerOk', async (t) => {
  t.ok(bearerOk(undefined, null), 'auth off');
  t.ok(bearerOk(undefined, undefined), 'auth off');
  t.ok(bearerOk('Bearer s3cret', 's3cret'));
  t.notOk(bearerOk('Bearer s3cre', 's3cret'));
  t.ok(bearerOk('bearer s3cret', 's3cret'), 'the scheme is case-insensitive (RFC 7235)');
  t.ok(bearerOk('BEARER s3cret', 's3cret'));
  t.notOk(bearerOk('Bearer S3CRET', 's3cret'), 'the token is not');
  t.notOk(bearerOk('Basic s3cret', 's3cret'));
  t.notOk(bearerOk(undefined, 's3cret'));
});
