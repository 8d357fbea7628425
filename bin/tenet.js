#!/usr/bin/env node
// Entry point of the `tenet` executable. The sources are TypeScript and run
// through tsx's loader (esbuild, transpile only; `npm test` type-checks with tsc).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
