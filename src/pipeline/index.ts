/** Pipeline compiler: model + placement -> per-host flows and groups (pure), incremental deltas, text output. */
export { TABLES, TABLE_BY_ID, T, PRIO, floodGroup, chainGroup, isChainGroup, FLAG_FROM_TUNNEL, type TableSpec } from './tables.js';
export { ChainConflictError, genChain, liveInstances } from './chains.js';
export {
  compile,
  defaultPlacement,
  cookieOf,
  cookieObject,
  cookieGeneration,
  CompileOptionsError,
  CompileResult,
  Ctx,
  orderFlows,
  orderGroups,
  type Placement,
  type HostPlacement,
  type CompileOptions,
  type Contribution,
  type HostResult,
} from './compile.js';
export { flowProblems, groupProblems } from './conformance.js';
export { IncrementalCompiler, deltaFlowCount, type Change, type Delta, type HostDelta } from './incremental.js';
