// ESM loader hooks: TypeScript -> JavaScript with esbuild (transpile only, no
// type-check), with an inline source map whose `sources` is the file's own path,
// so V8 coverage maps back to the .ts lines (tap's c8 report relies on it).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';

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
  const path = fileURLToPath(url);
  const source = await readFile(path, 'utf8');
  const out = await transform(source, {
    loader: 'ts',
    format: url.endsWith('.cts') ? 'cjs' : 'esm',
    target: 'node20',
    sourcemap: 'inline',
    sourcefile: path,
    sourcesContent: true,
  });
  return { format: url.endsWith('.cts') ? 'commonjs' : 'module', source: out.code, shortCircuit: true };
}
