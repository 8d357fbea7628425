/**
 * The agent's side of the issue-9 contract (controller ↔ agent HTTP API, see
 * docs/AGENT.md). The agent speaks only HTTP to the controller and must not load
 * its code: the records both sides share are type-only imports from
 * src/scheduler/records.ts (erased at run time), so the compiler checks that the
 * two sides agree; the assignment's service checks are read more loosely here.
 */
import type { AgentAssignment as ControllerAssignment, InstanceState, InstanceStatus, AgentRegistration } from '../scheduler/records.js';

export type { InstanceState, InstanceStatus, AgentRegistration };

export type RestartPolicy = 'always' | 'on-failure' | 'never';

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

export interface RegisterResponse {
  host: string;
  leaseId: string | number;
  ttlS: number;
}

export interface AssignmentsResponse {
  index: number;
  assignments: AgentAssignment[];
}

/** What the controller sends is what the agent reads: fails to compile if they drift apart. */
type Holds<T extends true> = T;
export type AssignmentFits = Holds<ControllerAssignment extends AgentAssignment ? true : false>;
