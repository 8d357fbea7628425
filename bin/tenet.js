#!/usr/bin/env node
// Entry point of the `tenet` executable. The sources are TypeScript, run through
// an esbuild loader (transpile only; `npm test` type-checks with tsc).
import '../scripts/ts-loader/register.mjs';

const { main } = await import('../src/cli/main.ts');
await main(process.argv);
