/** The lab: several Open vSwitch hosts and their containers on one Linux machine. See docs/LAB.md. */
export { labUp, labDown, startVswitchd, requireRoot, hostEnv, hostVsctl, readPid, isAlive, namespacePids, listNamespaces, LabUpError, type LabUpOptions, type Progress } from './lab.js';
export { addContainer, delContainer, execIn, resolveTarget, loadLab, findHost, checkContainerSpec, type ContainerSpec } from './container.js';
export { labHealth, isHealthy, type HostHealth } from './status.js';
export { applyStaticOverlay, overlayFlows } from './overlay.js';
export { ping, tcpExchange, type PingResult, type TcpResult } from './probe.js';
export { readState, listLabs, labRoot, labDir, stateFile, type LabState, type LabHost, type LabContainer, type LabAgent } from './state.js';
export { labTopologyHosts, labAdvertise, labTopologyInfo, withLabHosts, warmUnderlay, addEndpointContainers, endpointContainerName, OPENFLOW_PORT, type TopologyHost, type PlacedEndpoint } from './topology.js';
export { startLabController, LabControllerError, API_PORT, DNS_PORT, type LabController, type LabControllerOptions } from './controller.js';
export * as naming from './naming.js';
export { startLabAgents, stopLabAgents, labAgents, labAgentArgv, labAgentAlive, labAgentNetnsPrefix, LabAgentError, type LabAgentsOptions, type LabAgentHandle } from './agents.js';
