/**
 * The scheduler's pure half: `place(units, hosts, current?)` decides where unit
 * instances run and explains what it cannot place. Leases, leader election and the
 * agents that act on the assignments live elsewhere (issue 9, later).
 */
export { place, instanceIds, globalId } from './place.js';
export { compileGlob, GlobCache, type NameMatcher } from './glob.js';
export type { Assignment, CurrentPlacement, Exclusion, Move, PlacementHost, PlacementResult, PlacementUnit, Unplaceable } from './types.js';
export { hostsOf } from './hosts.js';
export { endpointName, effectiveDoc, schedulingInput, currentOf, samePlacement, parseDoc, oversizedUnits, agentHostIssues, type EffectiveDoc, type InstanceEndpoint } from './endpoints.js';
export type { PlacementRecord, AgentRegistration, AgentRecord, InstanceStatus, InstanceState, AgentAssignment, AgentInfo, UnitInfo } from './records.js';
