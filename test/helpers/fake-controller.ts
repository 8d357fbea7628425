/**
 * A small in-memory ControllerApi for API unit tests: it validates with the real
 * validator (so 400s carry the real issues) and keeps the document in memory; no
 * hosts connect, so every host stays `unreachable`. Integration tests use the real
 * Controller through `tenet controller` instead.
 */
import { EventEmitter } from 'node:events';
import { Registry } from 'prom-client';
import { chainInfos } from '../../src/controller/chains.js';
import { LeaseExpiredError, checkHost, parseInstances, parseRegistration } from '../../src/controller/agents.js';
import { assignmentIndex, destroyUnit, setUnitState, submitUnits, unitInfos } from '../../src/controller/units.js';
import type { AgentAssignment, AgentInfo, InstanceStatus, PlacementRecord, UnitInfo } from '../../src/scheduler/index.js';
import type { DesiredState } from '../../src/model/index.js';
import { UsageError } from '../../src/util/errors.js';
import type { ApplyResult, ChainInfo, ControllerApi, ControllerEvent, ControllerStatus, EndpointInfo, Plan } from '../../src/controller/types.js';
import { formatIp4, type Allocation } from '../../src/ipam/index.js';
import { TopologyError, validate, type Model } from '../../src/model/index.js';

export class FakeController extends EventEmitter<{ event: [ControllerEvent] }> implements ControllerApi {
  readonly metrics = new Registry();
  generation = 0;
  doc: unknown = null;
  current: Model | null = null;
  readonly startedAt = new Date().toISOString();
  /** Calls seen, for assertions ("nothing applied after a 400"). */
  readonly calls: string[] = [];
  /**
   * Hosts whose switches "realize" every apply at once (a `realized` event each);
   * every other host stays unreachable.
   */
  readonly reachable = new Set<string>();

  status(): ControllerStatus {
    const hosts = (this.current?.hosts ?? []).map((h) =>
      this.reachable.has(h.name)
        ? { name: h.name, state: 'ready' as const, ovsdb: true, openflow: true, datapathId: '00000000000000a1', realizedGeneration: this.generation, flows: 10, groups: 0, bindings: 2, since: this.startedAt }
        : { name: h.name, state: 'unreachable' as const, ovsdb: false, openflow: false, realizedGeneration: 0, flows: 0, groups: 0, bindings: 0, lastError: `cannot connect to ${h.ovsdb}`, since: this.startedAt },
    );
    return { generation: this.generation, hosts, realized: true, startedAt: this.startedAt };
  }
  topology(): { generation: number; doc: unknown } {
    return { generation: this.generation, doc: this.doc };
  }
  model(): Model | null {
    return this.current;
  }
  endpoints(): EndpointInfo[] {
    return (this.current?.tenants ?? []).flatMap((t) =>
      t.endpoints.map((e) => ({
        id: e.id,
        tenant: e.tenant,
        name: e.name,
        network: e.network.name,
        host: e.host,
        ...(e.ip !== undefined && e.network.v4 ? { ip: `${formatIp4(e.ip)}/${e.network.v4.len}`, gateway: formatIp4(e.network.v4.gateway) } : {}),
        mac: e.mac,
        labels: e.labels,
      })),
    );
  }
  /** Endpoints on reachable hosts are bound (ofport 10); `linkDown` ones have their link down. */
  readonly linkDown = new Set<string>();
  chains(): ChainInfo[] {
    return chainInfos(this.current, {
      ofport: (host) => (this.reachable.has(host) ? 10 : undefined),
      linkDown: (_host, id) => this.linkDown.has(id),
      checkFailing: new Set(),
    });
  }
  private check(doc: unknown): Model {
    const r = validate(doc, this.current ? { previous: this.current.alloc as Allocation } : {});
    if (!r.ok) throw new TopologyError(r.errors);
    return r.model;
  }
  private planFor(model: Model): Plan {
    return {
      generation: this.generation + 1,
      hosts: model.hosts.map((h) => ({ host: h.name, hitless: true, add: ['table=0,priority=0 actions=drop'], modify: [], delete: [], groups: { add: [], modify: [], delete: [] }, summary: '+1 flows', reachable: false })),
    };
  }
  async plan(doc: unknown): Promise<Plan> {
    this.calls.push('plan');
    return this.planFor(this.check(doc));
  }
  async apply(doc: unknown): Promise<ApplyResult> {
    this.calls.push('apply');
    const model = this.check(doc);
    const plan = this.planFor(model);
    this.current = model;
    this.doc = doc;
    this.generation++;
    this.emit('event', { type: 'topology', generation: this.generation, at: new Date().toISOString() });
    for (const h of model.hosts) {
      if (this.reachable.has(h.name)) this.emit('event', { type: 'realized', host: h.name, generation: this.generation, summary: '+1 flows', ms: 3, at: new Date().toISOString() });
    }
    return { generation: this.generation, plan, changed: true };
  }
  async deleteTenant(name?: string): Promise<ApplyResult> {
    this.calls.push(`delete:${name ?? '*'}`);
    const d = structuredClone(this.doc) as { tenants?: Array<{ name: string }> };
    d.tenants = name === undefined ? [] : (d.tenants ?? []).filter((t) => t.name !== name);
    return this.apply(d);
  }
  /** The timeouts waitRealized was called with. */
  readonly waits: number[] = [];
  /** This many next waits end as timeouts (realized: false). */
  timeoutWaits = 0;
  /** While true, waits stay pending until their signal aborts (then they count in `abortedWaits`). */
  holdWaits = false;
  abortedWaits = 0;
  async waitRealized(_generation: number, timeoutMs: number, signal?: AbortSignal): Promise<ControllerStatus> {
    this.waits.push(timeoutMs);
    if (this.holdWaits) {
      await new Promise<void>((resolve) => signal?.addEventListener('abort', () => resolve(), { once: true }));
      this.abortedWaits++;
      return { ...this.status(), realized: false };
    }
    if (this.timeoutWaits > 0) {
      this.timeoutWaits--;
      return { ...this.status(), realized: false };
    }
    return this.status();
  }

  // ---- units and agents: agents in memory (lease ids count up), assignments set by the test
  placement: PlacementRecord | undefined;
  readonly agents = new Map<string, { leaseId: string; info: AgentInfo }>();
  /** Per host, what GET /v1/agents/:host/assignments answers (tests set it; setAssignments emits a topology event). */
  private readonly assignmentSets = new Map<string, AgentAssignment[]>();
  private nextLease = 100;
  placementRecord(): PlacementRecord | undefined {
    return this.placement;
  }
  async registerAgent(host: string, registration: unknown): Promise<{ host: string; leaseId: string; ttlS: number }> {
    checkHost(host);
    const reg = parseRegistration(registration);
    this.calls.push(`register:${host}`);
    const prev = this.agents.get(host);
    const leaseId = prev?.info.alive ? prev.leaseId : String(this.nextLease++);
    this.agents.set(host, { leaseId, info: { host, alive: true, registration: reg, registeredAt: new Date().toISOString(), instances: prev?.info.alive ? prev.info.instances : [] } });
    return { host, leaseId, ttlS: 10 };
  }
  /** The agent's lease "expires". */
  expire(host: string): void {
    const a = this.agents.get(host);
    if (a) a.info = { ...a.info, alive: false, instances: [] };
  }
  private own(host: string, leaseId: unknown): { leaseId: string; info: AgentInfo } {
    checkHost(host);
    if (leaseId === undefined || leaseId === '') throw new UsageError('leaseId is required');
    const a = this.agents.get(host);
    if (!a || !a.info.alive || a.leaseId !== String(leaseId)) throw new LeaseExpiredError(host, String(leaseId));
    return a;
  }
  async agentHeartbeat(host: string, leaseId: unknown): Promise<{ ttlS: number }> {
    this.own(host, leaseId);
    return { ttlS: 10 };
  }
  async reportInstances(host: string, leaseId: unknown, instances: unknown): Promise<void> {
    const a = this.own(host, leaseId);
    a.info = { ...a.info, instances: parseInstances(instances) as InstanceStatus[] };
  }
  async agentInfos(): Promise<AgentInfo[]> {
    return [...this.agents.values()].map((a) => a.info).sort((x, y) => (x.host < y.host ? -1 : 1));
  }
  setAssignments(host: string, list: AgentAssignment[]): void {
    this.assignmentSets.set(host, list);
    this.emit('event', { type: 'topology', generation: this.generation, at: new Date().toISOString() });
  }
  private assignmentsOf(host: string): { index: number; assignments: AgentAssignment[] } {
    const assignments = this.assignmentSets.get(host) ?? [];
    return { index: assignmentIndex(assignments), assignments };
  }
  async waitAssignments(host: string, index: number, timeoutMs: number, signal?: AbortSignal): Promise<{ index: number; assignments: AgentAssignment[] }> {
    const first = this.assignmentsOf(host);
    if (index === 0 || first.index !== index) return first;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off('event', onEvent);
        resolve(this.assignmentsOf(host));
      };
      const onEvent = () => {
        if (this.assignmentsOf(host).index !== index) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.on('event', onEvent);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
  async units(): Promise<UnitInfo[]> {
    return unitInfos(this.doc, this.placement, [], new Map(this.endpoints().map((e) => [e.id, e])), await this.agentInfos());
  }
  async submitUnits(units: unknown): Promise<ApplyResult> {
    this.calls.push('submit');
    return this.apply(submitUnits(this.doc, units));
  }
  async setUnitState(name: string, state: DesiredState): Promise<ApplyResult> {
    this.calls.push(`state:${name}:${state}`);
    return this.apply(setUnitState(this.doc, name, state));
  }
  async destroyUnit(name: string): Promise<ApplyResult> {
    this.calls.push(`destroy:${name}`);
    return this.apply(destroyUnit(this.doc, name));
  }
}
