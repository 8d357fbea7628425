/**
 * Bearer tokens shared by every Tenet HTTP service (controller API, registry):
 * the token file on disk and the constant-time check of an Authorization header.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TenetError } from './errors.js';

/** Name of the token file inside a state/data directory. */
export const TOKEN_FILE = 'token';

/**
 * Reads the token from `<dir>/token`, creating it (mode 0600, 32 random bytes as
 * base64url) on first start. A token file that is readable by others is tightened to
 * 0600, or refused when that is not possible.
 *
 * The file appears complete or not at all: the token is written to a private temporary
 * file first and hard-linked into place, so a concurrent first start never reads a
 * half-written (empty) file and a failed write leaves nothing behind. Whoever links first
 * wins; the others read the winner's token.
 */
export function loadOrCreateToken(dir: string): string {
  const file = join(dir, TOKEN_FILE);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${TOKEN_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    linkSync(tmp, file);
  } catch (err) {
    // EEXIST: it is there already (maybe linked by a concurrent first start); read it.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    tighten(file);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // never written (the error above says why)
    }
  }
  const token = readFileSync(file, 'utf8').trim();
  if (!token) throw new TenetError('ETOKEN', `token file ${file} is empty; delete it to create a new one`, { file });
  return token;
}

/** A token readable by group/others is set to 0600; one that cannot be is refused rather than used. */
function tighten(file: string): void {
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  try {
    chmodSync(file, 0o600);
  } catch (err) {
    const m = `0${mode.toString(8)}`;
    throw new TenetError('ETOKEN', `token file ${file} is readable by others (mode ${m}) and cannot be set to 0600: ${(err as Error).message}`, { file, mode: m }, { cause: err });
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
  // The scheme is case-insensitive (RFC 7235 section 2.1); the token is not.
  const m = /^Bearer (.+)$/i.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
