/**
 * Bearer tokens shared by every Tenet HTTP service (controller API, registry):
 * the token file on disk and the constant-time check of an Authorization header.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TenetError } from './errors.js';

/** Name of the token file inside a state/data directory. */
export const TOKEN_FILE = 'token';

/**
 * Reads the token from `<dir>/token`, creating it (mode 0600, 32 random bytes as
 * base64url) on first start. A token file that is readable by others is tightened to 0600.
 */
export function loadOrCreateToken(dir: string): string {
  const file = join(dir, TOKEN_FILE);
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // EEXIST: it is there already (maybe written by a concurrent first start); read it.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    tighten(file);
  }
  const token = readFileSync(file, 'utf8').trim();
  if (!token) throw new TenetError('ETOKEN', `token file ${file} is empty; delete it to create a new one`, { file });
  return token;
}

/** A token readable by group/others is set to 0600 (best effort: the file may not be ours). */
function tighten(file: string): void {
  try {
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  } catch {
    // not ours to change; reading it still works or fails below
  }
}

/** The token in a file (trimmed), or undefined when the file cannot be read. */
export function readTokenFile(file: string): string | undefined {
  try {
    const t = readFileSync(file, 'utf8').trim();
    return t || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether an `Authorization` header carries `Bearer <token>`. `token` undefined or
 * null means auth is off (always true). Compares in constant time.
 */
export function bearerOk(header: string | undefined, token: string | null | undefined): boolean {
  if (token === undefined || token === null) return true;
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
