/**
 * The controller's surface, as the REST API, the CLI and tests see it. The
 * implementation (Controller in ./controller.ts) owns the store, the compiler,
 * one HostRuntime per topology host (OVSDB + OpenFlow + reconciler) and the
 * event stream; the API (src/api) only translates HTTP/WebSocket to these calls.
 */
import type { EventEmitter } from 'node:events';
import type { Registry } from 'prom-client';
import type { DesiredState as UnitDesiredState, Model, SelectorDoc, ValidationIssue } from '../model/index.js';
import type { AgentAssignment, AgentInfo, PlacementRecord, UnitInfo } from '../scheduler/index.js';

/**
 * - `connecting`: OVSDB or OpenFlow not up yet (first contact);
 * - `ready`: both up, the switch holds `realizedGeneration`;
 * - `unreachable`: OVSDB or OpenFlow lost (retrying with backoff); flows stay on the switch;
 * - `error`: connected but the last apply failed (`lastError` says why; retried).
 */
export type HostState = 'connecting' | 'ready' | 'unreachable' | 'error';

export interface HostStatus {
  name: string;
  state: HostState;
  ovsdb: boolean;
  openflow: boolean;
  /** 16 hex digits, once the switch connected. */
  datapathId?: string;
  /** Highest topology generation whose flows this switch holds (0 = none yet). Like OVN's hv_cfg. */
  realizedGeneration: number;
  flows: number;
  groups: number;
  /** Container ports bound (iface-id -> ofport) on this host. */
  bindings: number;
  lastError?: string;
  /** ISO time of the last state change. */
  since: string;
}

export interface ControllerStatus {
  /** Generation of the stored topology (0 = none applied yet). */
  generation: number;
  hosts: HostStatus[];
  /** Every host with state `ready` has realizedGeneration >= generation. */
  realized: boolean;
  startedAt: string;
  /** Set when the stored document failed validation at start: no switch is managed until a valid apply. */
  topologyError?: string;
  /** Hosts this process removed from the topology: no longer managed, their switches keep their last flows. */
  removedHosts?: string[];
}

/** What an apply would do on one host, in ovs-ofctl syntax (`table=…,priority=…,<match> actions=…`). */
export interface HostPlan {
  host: string;
  /**
   * false when the change can disturb traffic that flows now: an existing flow
   * is removed or replaced, or a group changes. Adding flows only is hitless.
   */
  hitless: boolean;
  add: string[];
  modify: string[];
  delete: string[];
  groups: { add: string[]; modify: string[]; delete: string[] };
  /** "+3 flows, -1 flows" or "no change". */
  summary: string;
  /** Hosts the controller cannot reach are planned against their last known state (or empty). */
  reachable: boolean;
}

export interface Plan {
  /** The generation an apply of this document would create. */
  generation: number;
  hosts: HostPlan[];
}

export interface ApplyResult {
  generation: number;
  plan: Plan;
  /** false when the document equals the stored one (nothing stored, generation unchanged). */
  changed: boolean;
}

/** Endpoint as `tenet get endpoints` and GET /v1/endpoints show it (IPAM filled in). */
export interface EndpointInfo {
  /** "tenant/name": also the iface-id a container port must carry. */
  id: string;
  tenant: string;
  name: string;
  network: string;
  host: string;
  /** With prefix length, e.g. "10.0.0.5/24". */
  ip?: string;
  ip6?: string;
  mac: string;
  /** IPv4 gateway of its network (for the container's default route). */
  gateway?: string;
  labels: Record<string, string>;
  /** ofport once a port with its iface-id exists on its host. */
  ofport?: number;
}

/**
 * Health of one service-function instance of a chain hop, worst first:
 * - `port missing`: no port with its iface-id on its host (container gone, not plugged yet);
 * - `link down`: the port exists but ovs-vswitchd reports its link down;
 * - `check failing`: the registry's health check of the instance is critical;
 * - `healthy`: in its hop's select group.
 */
export type InstanceHealth = 'healthy' | 'port missing' | 'link down' | 'check failing';

export interface ChainInstanceInfo {
  /** Endpoint id ("tenant/name") of the port packets enter by. */
  endpoint: string;
  /** Set when packets leave by another endpoint's port. */
  egress?: string;
  host: string;
  weight: number;
  ofport?: number;
  egressOfport?: number;
  health: InstanceHealth;
}

/**
 * - `ok`: every instance healthy;
 * - `degraded`: some instances out, the rest share the traffic;
 * - `bypassed`: none healthy and failMode open (the hop is skipped);
 * - `dropping`: none healthy and failMode closed (matching traffic is dropped).
 */
export type HopState = 'ok' | 'degraded' | 'bypassed' | 'dropping';

export interface ChainHopInfo {
  /** Set when the hop was given as a service name. */
  service?: string;
  state: HopState;
  instances: ChainInstanceInfo[];
  /** Registry instances of the hop's service that are not members, and why (src/controller/services.ts). */
  skipped?: { id: string; reason: string }[];
}

/** A chain as `tenet get chains` and GET /v1/chains show it. */
export interface ChainInfo {
  /** "tenant/chain" */
  id: string;
  tenant: string;
  name: string;
  network: string;
  /** The classifier: source and destination selectors as written, protocol, destination port ranges ("80", "8000-8080"). */
  from: SelectorDoc;
  to: SelectorDoc;
  protocol: 'any' | 'tcp' | 'udp' | 'icmp';
  ports: string[];
  symmetric: boolean;
  failMode: 'open' | 'closed';
  hops: ChainHopInfo[];
}

export type ControllerEvent =
  | { type: 'topology'; generation: number; at: string }
  | { type: 'host'; host: HostStatus; at: string }
  | { type: 'realized'; host: string; generation: number; summary: string; ms: number; at: string }
  | { type: 'drift'; host: string; summary: string; flows: string[]; at: string }
  | { type: 'binding'; host: string; ifaceId: string; ofport: number | null; at: string }
  /** A bound port's link went down or came back up (ovs-vswitchd's link_state). */
  | { type: 'link'; host: string; ifaceId: string; up: boolean; at: string }
  | { type: 'error'; host?: string; message: string; at: string }
  /** The scheduler stored a placement: instances given a host, moved (host lost or constraints changed), not placeable. */
  | {
      type: 'placement';
      generation: number;
      placed: { id: string; host: string }[];
      moved: { id: string; from: string; to?: string; reason: string }[];
      unplaceable: { id: string; reason: string }[];
      at: string;
    };

/** Thrown by plan/apply for an invalid document; the API maps it to 400 with `issues`. */
export interface InvalidTopology {
  code: 'ETOPOLOGY';
  issues: ValidationIssue[];
}

export interface ControllerApi extends EventEmitter<{ event: [ControllerEvent] }> {
  status(): ControllerStatus;
  /** The stored document (null before the first apply) and its generation. */
  topology(): { generation: number; doc: unknown };
  /** The resolved model of the stored document (null before the first apply). */
  model(): Model | null;
  endpoints(): EndpointInfo[];
  /** Every chain of every tenant with its hops' instances and their health (empty before the first apply). */
  chains(): ChainInfo[];
  /** The diff applying `doc` would make. Throws TopologyError (code ETOPOLOGY) when invalid; changes nothing. */
  plan(doc: unknown): Promise<Plan>;
  /** Validates, stores (new generation) and starts realizing `doc`; resolves once stored, not once realized. */
  apply(doc: unknown): Promise<ApplyResult>;
  /** Removes one tenant (or, without a name, every tenant; hosts stay). */
  deleteTenant(name?: string): Promise<ApplyResult>;
  /**
   * Resolves when every reachable host realized `generation`; resolves with realized=false at
   * timeout, when `signal` aborts (the caller went away) or when the controller closes.
   */
  waitRealized(generation: number, timeoutMs: number, signal?: AbortSignal): Promise<ControllerStatus>;
  readonly metrics: Registry;

  // Units and agents (issue 9; docs/SCHEDULER.md). Agent calls throw LeaseExpiredError (code ELEASE) for a lease that is gone.
  /** The scheduler's last stored placement (undefined before the first). */
  placementRecord(): PlacementRecord | undefined;
  /** Registers (or re-registers onto its live lease) the agent of `host`; `registration` is validated (UsageError). */
  registerAgent(host: string, registration: unknown): Promise<{ host: string; leaseId: string; ttlS: number }>;
  agentHeartbeat(host: string, leaseId: unknown): Promise<{ ttlS: number }>;
  reportInstances(host: string, leaseId: unknown, instances: unknown): Promise<void>;
  agentInfos(): Promise<AgentInfo[]>;
  /** The host's assignments once their index differs from `index` (0: at once), or at timeout / abort. */
  waitAssignments(host: string, index: number, timeoutMs: number, signal?: AbortSignal): Promise<{ index: number; assignments: AgentAssignment[] }>;
  units(): Promise<UnitInfo[]>;
  /** Adds or replaces (by name) units in the stored document; validated like apply. */
  submitUnits(units: unknown): Promise<ApplyResult>;
  /** UsageError when the document has no unit of that name. */
  setUnitState(name: string, state: UnitDesiredState): Promise<ApplyResult>;
  destroyUnit(name: string): Promise<ApplyResult>;
}
