/** Tenant model: the topology document's schema, validation and the resolved model. */
export { Topology, Host as HostSchema, topologyJsonSchema, DNS_NAME, type TopologyInput, type TopologyDoc, type SelectorDoc } from './schema.js';
export { validate, loadTopology, TopologyError, pointer, type ValidationResult } from './validate.js';
export type { Model, Host, Tenant, Network, Endpoint, Policy, ValidationIssue } from './types.js';
export {
  Unit,
  HostResources,
  expandUnits,
  expandedCount,
  validateUnits,
  pendingUnitEndpoints,
  cycleText,
  MAX_TEMPLATE_INSTANCES,
  MAX_EXPANDED_UNITS,
  parseCpu,
  parseMemory,
  formatCpu,
  formatMemory,
  type UnitDoc,
  type UnitInput,
  type UnitSpec,
  type DesiredState,
} from './units.js';
export type { WaitingChain } from './chains.js';
export { selects, isAnySelector, chainSources, onSourceNetwork, isRoutedSource, routerJoins, chainDestinations, chainInstances, chainKey } from './chains.js';
export type { Chain, ChainHop, ChainInstance } from './types.js';
