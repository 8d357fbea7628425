/**
 * What the scheduler service stores and what the controller ↔ agent HTTP API carries
 * (the issue-9 contract; the agent declares its own copy in src/agent/types.ts, since
 * it speaks only HTTP). Pure data.
 */
import type { UnitServiceDoc } from '../model/units.js';
import type { Assignment, Unplaceable } from './types.js';

/** The placement the leader writes into the topology record (`/tenet/topology`). */
export interface PlacementRecord {
  assignments: Assignment[];
  unplaceable: Unplaceable[];
  /** ISO time it was computed. */
  at: string;
  /**
   * The live agents' registrations the placement was made with: the effective document
   * (agent-only hosts, labels/resources filled in) is a function of the record alone,
   * so a restarted controller compiles exactly what it compiled before.
   */
  agents?: Record<string, AgentRegistration>;
}

/** Body of POST /v1/agents/:host. */
export interface AgentRegistration {
  version: string;
  labels?: Record<string, string>;
  /** cpu in millicores, memory in bytes. */
  resources?: { cpu?: number; memory?: number };
  underlayIp?: string;
  ovsdb?: string;
  datapathType?: 'netdev' | 'system';
  /** The agent's unix socket (logs, sidekick). */
  socket?: string;
}

/** `/tenet/agents/<host>`: on the agent's lease. */
export interface AgentRecord {
  host: string;
  registration: AgentRegistration;
  registeredAt: string;
  leaseId: string;
}

export type InstanceState = 'starting' | 'running' | 'exited' | 'failed' | 'stopped';

/** One entry of `/tenet/agents/<host>/instances` (PUT /v1/agents/:host/instances). */
export interface InstanceStatus {
  id: string;
  unit: string;
  /** "tenant/name" */
  endpoint: string;
  state: InstanceState;
  pid?: number;
  restarts: number;
  exitCode?: number;
  since: string;
  message?: string;
  logPath?: string;
}

/** What an agent runs (GET /v1/agents/:host/assignments). */
export interface AgentAssignment {
  id: string;
  unit: string;
  tenant: string;
  network: string;
  desiredState: 'loaded' | 'launched';
  command: string | string[];
  env: Record<string, string>;
  image?: string;
  restart: 'always' | 'on-failure' | 'never';
  endpoint: { id: string; name: string; ip?: string; ip6?: string; mac: string; gateway?: string };
  services: UnitServiceDoc[];
}

/** GET /v1/agents */
export interface AgentInfo {
  host: string;
  alive: boolean;
  registration: AgentRegistration;
  registeredAt: string;
  instances: InstanceStatus[];
}

/** GET /v1/units */
export interface UnitInfo {
  name: string;
  tenant: string;
  network: string;
  desiredState: 'inactive' | 'loaded' | 'launched';
  instances: { id: string; host?: string; endpoint?: string; ip?: string; state?: InstanceState }[];
  /** Why (some of) its instances have no host. */
  unplaceable?: string;
}
