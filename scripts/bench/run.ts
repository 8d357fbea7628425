/**
 * `npm run bench -- <name> [args]`: runs scripts/bench/<name>.ts. Each benchmark
 * prints progress lines and, last, one JSON object with its figures.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -3))
  .sort();
const [name, ...rest] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name> [args]\nbenchmarks: ${available.join(', ') || '(none yet)'}`);
  process.exit(2);
}
process.argv = [process.argv[0]!, join(here, `${name}.ts`), ...rest];
await import(pathToFileURL(join(here, `${name}.ts`)).href);
