// `node --import ./scripts/ts-loader/register.mjs`: installs the TypeScript hooks
// (used by tap, bin/tenet.js, the demo and the benchmarks).
import { register } from 'node:module';
register('./hooks.mjs', import.meta.url);
