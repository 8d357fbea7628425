/** The host agent (issue 9): registers its host, runs the instances the scheduler assigns to it. See docs/AGENT.md. */
export type { AgentAssignment, AgentRegistration, InstanceStatus, InstanceState, RestartPolicy, AssignmentService } from './types.js';
export type { RuntimeDriver, DriverInstance } from './driver.js';
export { NetnsDriver, DriverError, processStartTime, processInNetns, instanceProcesses, unshareAvailable, type NetnsDriverOptions, type LogFn } from './netns-driver.js';
export { endpointName, instanceLocalName, instanceNetns, instanceHostIface, instanceFileName, defaultNetnsPrefix } from './naming.js';
export { launchArgv, restartDecision, backoffMs, nextQuickExits, adoptionDecision, convergePlan, portKey, processKey } from './plan.js';
export { startAgent, retryDelayMs, AgentError, AGENT_VERSION, type Agent, type AgentOptions } from './agent.js';
export { ControllerClient, ControllerHttpError, ControllerUnreachableError, networkReason } from './client.js';
export { ServiceManager, registrationBody, servicePath, checkIntervalMs, type ServiceWant } from './services.js';
export { checkArgv, runCheck } from './checks.js';
export { startSidekick, agentSocketRequest, readAgentLogs, parseSidekickBody, INSTANCE_HEADER } from './sidekick.js';
export { lockStateDir, lockHeld, StateDirLockedError } from './lock.js';
