/** The controller: stored topology -> compiled flows -> every host's switch, kept that way. See docs/CONTROLLER.md. */
export type * from './types.js';
export { Controller, ConflictError, TOPOLOGY_KEY, type ControllerOptions } from './controller.js';
export { HostRuntime } from './host.js';
export { datapathIdOf, tunnelPeers, endpointInfo, hostPlanOf, driftLines, compileFailure } from './pure.js';
export { AgentDirectory, LeaseExpiredError, AGENTS_PREFIX, parseRegistration, parseInstances, checkHost } from './agents.js';
export { SchedulingLoop, type SchedulerOptions } from './scheduling.js';
export { assignmentsFor, assignmentIndex, unitInfos, submitUnits, setUnitState, destroyUnit, hasUnit } from './units.js';
