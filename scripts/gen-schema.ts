/**
 * Writes topologies/schema.json from the zod schema (src/model/schema.ts), the
 * single source of truth. `--check` exits 1 if the committed file differs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { topologyJsonSchema } from '../src/model/index.js';

export const SCHEMA_PATH = fileURLToPath(new URL('../topologies/schema.json', import.meta.url));

export function schemaText(): string {
  return JSON.stringify(topologyJsonSchema(), null, 2) + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = schemaText();
  if (process.argv.includes('--check')) {
    const same = readFileSync(SCHEMA_PATH, 'utf8') === text;
    console.log(same ? 'topologies/schema.json is up to date' : 'topologies/schema.json is stale: run node --import ./scripts/ts-loader/register.mjs scripts/gen-schema.ts');
    process.exit(same ? 0 : 1);
  }
  writeFileSync(SCHEMA_PATH, text);
  console.log(`wrote ${SCHEMA_PATH}`);
}
