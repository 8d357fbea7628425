// ESM loader hooks: TypeScript -> JavaScript with esbuild (transpile only, no
// type-check), with an inline source map whose `sources` is the file's own path,
// so V8 coverage maps back to the .ts lines (tap's c8 report relies on it).
// Output is cached on disk by content hash: a warm start never loads esbuild.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CACHE_VERSION = '1';
const cacheDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', '.cache', 'tenet-ts');
let esbuild;

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    // NodeNext style: `./x.js` in TypeScript source means `./x.ts` on disk.
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && /^\.{1,2}\//.test(specifier) && specifier.endsWith('.js')) {
      return next(specifier.slice(0, -3) + '.ts', context);
    }
    throw err;
  }
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !/\.(c|m)?ts$/.test(url)) return next(url, context);
  const cjs = url.endsWith('.cts');
  const path = fileURLToPath(url);
  const source = await readFile(path, 'utf8');
  const key = createHash('sha1').update(`${CACHE_VERSION}\0${path}\0${source}`).digest('hex');
  const cached = join(cacheDir, `${key}.js`);
  let code;
  try {
    code = readFileSync(cached, 'utf8');
  } catch {
    esbuild ??= await import('esbuild');
    const out = await esbuild.transform(source, {
      loader: 'ts',
      format: cjs ? 'cjs' : 'esm',
      target: 'node20',
      sourcemap: 'inline',
      sourcefile: path,
      sourcesContent: true,
    });
    code = out.code;
    try {
      mkdirSync(cacheDir, { recursive: true });
      const tmp = `${cached}.${process.pid}.tmp`;
      writeFileSync(tmp, code);
      renameSync(tmp, cached);
    } catch {
      // A read-only tree just means no cache.
    }
  }
  return { format: cjs ? 'commonjs' : 'module', source: code, shortCircuit: true };
}
