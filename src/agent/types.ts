/**
 * The agent's side of the issue-9 contract (controller ↔ agent HTTP API, see
 * docs/AGENT.md). Declared here rather than imported from the API: the agent
 * speaks only HTTP to the controller and must not load its code.
 */

export type RestartPolicy = 'always' | 'on-failure' | 'never';
export type InstanceState = 'starting' | 'running' | 'exited' | 'failed' | 'stopped';

export interface UnitCheckSpec {
  type: 'tcp' | 'http' | 'ttl';
  path?: string;
  intervalMs?: number;
  timeoutMs?: number;
  ttlMs?: number;
}

export interface AssignmentService {
  name: string;
  port: number;
  check?: UnitCheckSpec;
}

export interface AgentAssignment {
  /** Instance id, e.g. web@1. */
  id: string;
  unit: string;
  tenant: string;
  network: string;
  desiredState: 'loaded' | 'launched';
  command: string | string[];
  env: Record<string, string>;
  image?: string;
  restart: RestartPolicy;
  endpoint: {
    /** "tenant/name": the iface-id of its port. */
    id: string;
    name: string;
    ip?: string;
    ip6?: string;
    mac: string;
    gateway?: string;
  };
  services: AssignmentService[];
}

export interface InstanceStatus {
  id: string;
  unit: string;
  endpoint: string;
  state: InstanceState;
  pid?: number;
  restarts: number;
  exitCode?: number;
  since: string;
  message?: string;
  logPath?: string;
}

export interface AgentRegistration {
  version: string;
  labels?: Record<string, string>;
  resources?: { cpu?: number; memory?: number };
  underlayIp?: string;
  ovsdb?: string;
  datapathType?: 'netdev' | 'system';
  socket?: string;
}

export interface RegisterResponse {
  host: string;
  leaseId: string | number;
  ttlS: number;
}

export interface AssignmentsResponse {
  index: number;
  assignments: AgentAssignment[];
}
