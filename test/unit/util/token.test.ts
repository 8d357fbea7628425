/** The shared token file and bearer check (controller API and registry). */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
});

t.test('bearerOk', async (t) => {
  t.ok(bearerOk(undefined, null), 'auth off');
  t.ok(bearerOk(undefined, undefined), 'auth off');
  t.ok(bearerOk('Bearer s3cret', 's3cret'));
  t.notOk(bearerOk('Bearer s3cre', 's3cret'));
  t.notOk(bearerOk('bearer s3cret', 's3cret'));
  t.notOk(bearerOk('Basic s3cret', 's3cret'));
  t.notOk(bearerOk(undefined, 's3cret'));
});
