/** The controller: stored topology -> compiled flows -> every host's switch, kept that way. See docs/CONTROLLER.md. */
export type * from './types.js';
export { Controller, ConflictError, TOPOLOGY_KEY, type ControllerOptions } from './controller.js';
export { HostRuntime } from './host.js';
export { datapathIdOf, tunnelPeers, endpointInfo, hostPlanOf, driftLines, compileFailure } from './pure.js';
