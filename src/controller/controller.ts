/**
 * The controller: the stored topology (one store key, generation + document +
 * IPAM allocation), one HostRuntime per topology host, the OpenFlow listener the
 * hosts' br-int connect to, the compiler, the event stream and the metrics.
 *
 * Compilation is lazy and whole-model: any change (a new document, a binding, a
 * tunnel ofport) drops the cached compile, and each affected host's runtime
 * recompiles on its next reconcile. The reconciler diffs per switch, so only the
 * flows that really changed are sent; cookies are a pure function of the source
 * object (constant pipeline epoch), so a restart recompiles identical flows.
 */
import { EventEmitter } from 'node:events';
import pino, { type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { validate, TopologyError, type Model } from '../model/index.js';
import type { Allocation } from '../ipam/index.js';
import { OpenFlowServer, type ListenOptions, type SwitchConnection } from '../openflow/index.js';
import { compile, type CompileResult, type Placement } from '../pipeline/index.js';
import { diffState, type DesiredState } from '../reconcile/index.js';
import type { DesiredState as UnitDesiredState } from '../model/index.js';
import { effectiveDoc, oversizedUnits, type AgentAssignment, type AgentRegistration, type AgentInfo, type AgentRecord, type Assignment, type InstanceEndpoint, type InstanceStatus, type Move, type PlacementRecord, type UnitInfo } from '../scheduler/index.js';
import type { Store } from '../store/index.js';
import { TenetError, UsageError } from '../util/errors.js';
import type { HostSwitchOptions } from '../vswitch/index.js';
import { HostRuntime } from './host.js';
import { createMetrics, type ControllerMetrics } from './metrics.js';
import { chainInfos, unhealthyEndpoints, type HealthView } from './chains.js';
import { blamedTenants, relevantChange, resolveServices, tenantsWithRegistered, withoutRegistered, type ServiceSource, type ServiceView } from './services.js';
import { chainHostDeps, compileFailure, endpointInfo, tunnelPeers } from './pure.js';
import { AgentDirectory } from './agents.js';
import { SchedulingLoop, type SchedulerOptions } from './scheduling.js';
import { assignmentsFor, destroyUnit, setUnitState, submitUnits, unitInfos } from './units.js';
import type { ApplyResult, ChainInfo, ControllerApi, ControllerEvent, ControllerStatus, EndpointInfo, HostStatus, Plan } from './types.js';

export const TOPOLOGY_KEY = '/tenet/topology';

export interface ControllerOptions {
  store: Store;
  /** Controller targets written into every br-int, e.g. `tcp:192.0.2.1:6653`. */
  advertise: readonly string[];
  /** Where the OpenFlow listener binds. Default 0.0.0.0:6653. */
  openflow?: ListenOptions;
  /** Integration bridge name. Default br-int. */
  bridge?: string;
  /** Drift check period, ms; 0 = off. Default 10,000. */
  driftIntervalMs?: number;
  logger?: Logger;
  /** OVSDB connection options (timeouts, reconnect backoff). */
  ovsdb?: HostSwitchOptions;
  /** OpenFlow echo interval / dead-peer timeout, ms. Default 2,000 / 6,000. */
  echo?: { intervalMs: number; timeoutMs: number };
  /** Retry delay after a failed reconcile or switch setup, ms. Default 2,000. */
  retryMs?: number;
  /** Store key of the topology record. Default /tenet/topology. */
  key?: string;
  /**
   * How long a host waits for the placement of the hosts its chains use, and how
   * long a host may stay unreachable before its chain instances leave their groups, ms.
   * Default 15,000.
   */
  placementGraceMs?: number;
  /** Agent lease TTL, seconds (agents heartbeat every ttl/3). Default 10. */
  agentLeaseTtlS?: number;
  /** The scheduling loop (leader election among controllers on one store); false = none. Default on. */
  scheduler?: SchedulerOptions | false;
  /** Called by the leader when a host's agent lease expired (e.g. deregister its services from the registry). */
  onHostLost?: (host: string, record: AgentRecord) => void | Promise<void>;
  /**
   * The service registry to follow from the start (followServices before the first
   * switch connects or compile runs: a restart never compiles chains without it).
   */
  services?: ServiceSource;
  /** Hold-down of registry-driven recompiles, ms: changes within it coalesce into one. Default 200. */
  servicesHoldMs?: number;
}

/** What the store holds under the topology key. */
interface TopologyRecord {
  generation: number;
  /** The user's document (units included); what compiles is effectiveDoc(doc, placement, placement.agents). */
  doc: unknown;
  alloc: Allocation;
  /** Written by the scheduler (leader) through applyPlacement; a user apply carries it over. */
  placement?: PlacementRecord;
}

export class ConflictError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('ECONFLICT', message, context);
  }
}

const now = (): string => new Date().toISOString();

export class Controller extends EventEmitter<{ event: [ControllerEvent] }> implements ControllerApi {
  private readonly server: OpenFlowServer;
  private readonly runtimes = new Map<string, HostRuntime>();
  /** Connections whose datapath id names no host (yet). */
  private readonly orphans = new Set<SwitchConnection>();
  private readonly log: Logger;
  private readonly m: ControllerMetrics;
  private record: TopologyRecord | undefined;
  private modRevision = 0;
  private current: Model | null = null;
  /** Why the stored document is not in force (it failed validation at load). */
  private topologyError: string | undefined;
  /** Hosts removed from the topology by this process whose switches keep their last flows. */
  private readonly removedHosts = new Set<string>();
  private compiled: CompileResult | undefined;
  /** Per host, the hosts whose placement its chains read (see chainHostDeps). */
  private chainDeps = new Map<string, Set<string>>();
  /** Bumped on every placement change: a compile made for a plan is reused by the apply if none came in between. */
  private placementVersion = 0;
  private serial: Promise<unknown> = Promise.resolve();
  private driftTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = now();
  private listenAddress: { port?: number; path?: string } = {};
  private closed = false;
  /** How to end each pending waitRealized (as not realized): close() calls them all. */
  private readonly waits = new Set<() => void>();
  /** Unit instances of the model in force, as endpoints (effectiveDoc). */
  private instances: InstanceEndpoint[] = [];
  /** Agents' leases in the store (register/heartbeat/instances). */
  readonly agents: AgentDirectory;
  private scheduling: SchedulingLoop | undefined;
  /** Agents whose lease expired while this controller led (shown as not alive until they register again). */
  private readonly lostAgents = new Map<string, AgentRecord>();
  /** The service registry this controller follows (followServices), and its resolution for `current`. */
  private services: ServiceSource | undefined;
  private serviceView: { model: Model; view: ServiceView } | undefined;
  private servicesTimer: NodeJS.Timeout | undefined;
  private unfollowServices: (() => void) | undefined;

  private constructor(private readonly opts: ControllerOptions) {
    super();
    this.setMaxListeners(0); // every waiter and event-stream client listens; no leak warning at 11
    this.log = opts.logger ?? pino({ level: 'silent' });
    const echo = opts.echo ?? { intervalMs: 2000, timeoutMs: 6000 };
    this.server = new OpenFlowServer({ echoIntervalMs: echo.intervalMs, echoTimeoutMs: echo.timeoutMs });
    this.m = createMetrics(() => this.status());
    this.agents = new AgentDirectory(opts.store, opts.agentLeaseTtlS ?? 10);
  }

  /** Loads the stored topology, listens for switches and starts one runtime per host. */
  static async start(opts: ControllerOptions): Promise<Controller> {
    const c = new Controller(opts);
    try {
      await c.load();
      if (opts.services) c.unfollowServices = c.followServices(opts.services);
      c.server.on('connect', (conn: SwitchConnection) => c.onSwitch(conn));
      c.server.on('disconnect', (conn: SwitchConnection, reason: Error) => c.onSwitchGone(conn, reason));
      c.server.on('handshake-error', (e: Error, remote: string) => c.log.warn({ remote, err: e.message }, 'OpenFlow handshake failed'));
      c.server.on('server-error', (e: Error) => c.log.error({ err: e.message }, 'OpenFlow listener error'));
      c.listenAddress = await c.server.listen(opts.openflow ?? { host: '0.0.0.0', port: 6653 });
      c.log.info({ openflow: c.listenAddress, advertise: opts.advertise, generation: c.generation }, 'controller started');
      if (c.current) c.syncRuntimes(c.current);
      if (opts.scheduler !== false) {
        c.scheduling = new SchedulingLoop(c, opts.store, c.agents, { ...(opts.scheduler ?? {}), logger: c.log, ...(opts.onHostLost ? { onHostLost: opts.onHostLost } : {}) });
        await c.scheduling.start();
      }
      const every = opts.driftIntervalMs ?? 10_000;
      if (every > 0) {
        c.driftTimer = setInterval(() => void c.checkDrift(), every);
        c.driftTimer.unref();
      }
      return c;
    } catch (err) {
      await c.close();
      throw err;
    }
  }

  /** The OpenFlow listener's address (port when TCP). */
  get openflowAddress(): { port?: number; path?: string } {
    return this.listenAddress;
  }

  get generation(): number {
    return this.record?.generation ?? 0;
  }

  get metrics(): Registry {
    return this.m.registry;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unfollowServices?.();
    await this.scheduling?.stop();
    if (this.driftTimer) clearInterval(this.driftTimer);
    // Pending waits answer now (realized:false) rather than keep the process alive until their timeout.
    for (const finish of [...this.waits]) finish();
    for (const rt of this.runtimes.values()) rt.close();
    this.runtimes.clear();
    await this.server.close();
  }

  // ------------------------------------------------------------------ ControllerApi

  status(): ControllerStatus {
    const hosts = [...this.runtimes.values()].map((r) => r.status()).sort((a, b) => (a.name < b.name ? -1 : 1));
    return {
      generation: this.generation,
      hosts,
      realized: realizedAll(hosts, this.generation),
      startedAt: this.startedAt,
      ...(this.topologyError ? { topologyError: this.topologyError } : {}),
      ...(this.removedHosts.size ? { removedHosts: [...this.removedHosts].sort() } : {}),
    };
  }

  topology(): { generation: number; doc: unknown } {
    return { generation: this.generation, doc: this.record?.doc ?? null };
  }

  model(): Model | null {
    return this.current;
  }

  endpoints(): EndpointInfo[] {
    if (!this.current) return [];
    return this.current.tenants.flatMap((t) => t.endpoints.map((e) => endpointInfo(e, this.runtimes.get(e.host)?.ofport(e.id))));
  }

  chains(): ChainInfo[] {
    const v = this.view();
    return chainInfos(v?.model ?? null, this.health(v?.checkFailing), v?.skipped);
  }

  /**
   * Follows a service registry: service hops take its registered instances and a
   * critical registration takes its chain instance out of the group (services.ts).
   * Each change re-resolves; only a change of members or failing instances recompiles
   * (the reconciler then sends just the chain's flow and group changes). Returns an unfollow.
   */
  followServices(source: ServiceSource): () => void {
    this.services = source;
    const seen = new Map<string, string>();
    const off = source.onChange((change) => {
      // TTL renewals and check reports that change nothing chains read are most events: skip them.
      if (!relevantChange(seen, change)) return;
      // Hold-down: the first relevant change opens a window; every change within it (a burst,
      // a flapping check) resolves once at its end. Not reset by later changes, so a check
      // flapping faster than the window still recompiles at most once per window.
      if (this.servicesTimer) return;
      this.servicesTimer = setTimeout(() => {
        this.servicesTimer = undefined;
        this.servicesChanged();
      }, this.opts.servicesHoldMs ?? 200);
      this.servicesTimer.unref();
    });
    this.servicesChanged();
    return () => {
      off();
      if (this.servicesTimer) clearTimeout(this.servicesTimer);
      this.servicesTimer = undefined;
      if (this.services === source) this.services = undefined;
    };
  }

  /** The current model with the registry's members and failing checks (cached until either changes). */
  private view(): ServiceView | undefined {
    if (!this.current) return undefined;
    if (this.serviceView?.model !== this.current) this.serviceView = { model: this.current, view: this.resolved(this.current) };
    return this.serviceView.view;
  }

  /** `instances`: the unit instances of `model` (their units' declared services verify registrations). */
  private resolved(model: Model, instances: readonly InstanceEndpoint[] = this.instances): ServiceView {
    return resolveServices(model, this.services?.instances() ?? [], instances);
  }

  private servicesChanged(): void {
    if (this.closed || !this.current) return;
    const before = this.view()!;
    const after = this.resolved(this.current);
    this.serviceView = { model: this.current, view: after };
    if (after.key === before.key) return;
    this.log.info({ failing: [...after.checkFailing], skipped: after.skipped.map((s) => `${s.chain} hop ${s.hop}: ${s.service}/${s.id}: ${s.reason}`) }, 'service registry changed chain members or health: recompiling');
    this.compiled = undefined;
    this.placementVersion++; // a plan compiled before this is stale
    this.chainDeps = chainHostDeps(after.model);
    for (const rt of this.runtimes.values()) rt.kick();
  }

  async plan(doc: unknown): Promise<Plan> {
    const { model, instances } = this.validateEffective(doc, this.record?.placement, false);
    return (await this.planModel(model, this.generation + 1, instances)).plan;
  }

  apply(doc: unknown): Promise<ApplyResult> {
    return this.exclusive(() => this.applyLocked(doc));
  }

  deleteTenant(name?: string): Promise<ApplyResult> {
    return this.exclusive(async () => {
      const doc = this.record?.doc;
      if (!doc || typeof doc !== 'object') throw new UsageError('no topology applied yet');
      const d = doc as { tenants?: { name?: unknown }[] };
      const tenants = d.tenants ?? [];
      if (name !== undefined && !tenants.some((t) => t.name === name)) throw new UsageError(`no tenant named '${name}'`, { tenant: name });
      const next = { ...d, tenants: name === undefined ? [] : tenants.filter((t) => t.name !== name) };
      return this.applyLocked(next);
    });
  }

  // ------------------------------------------------------------------ units and agents (issue 9)

  /** Stores the scheduler's placement: same CAS and generation+1 as an apply; the user's document stays. */
  applyPlacement(p: PlacementRecord, why: { placed: Assignment[]; moved: Move[] } = { placed: [], moved: [] }, basedOn?: number): Promise<ApplyResult> {
    return this.exclusive(async () => {
      if (!this.record) throw new UsageError('no topology applied yet');
      // Computed from an older record (a submit, stop or constraint change got in first):
      // storing it would pair the new document with a placement made for the old one.
      if (basedOn !== undefined && basedOn !== this.modRevision) throw new ConflictError('the topology changed while the placement was computed; placing again', { basedOn, modRevision: this.modRevision });
      return this.applyLocked(this.record.doc, p, why);
    });
  }

  /** What the scheduling loop reads (src/controller/scheduling.ts). */
  schedulingState(): { doc: unknown; placement: PlacementRecord | undefined; modRevision: number; key: string } {
    return { doc: this.record?.doc ?? null, placement: this.record?.placement, modRevision: this.modRevision, key: this.opts.key ?? TOPOLOGY_KEY };
  }

  /** Re-reads the topology record if another writer (another controller on the same store) changed it. */
  reload(): Promise<void> {
    return this.exclusive(async () => {
      const kv = await this.opts.store.get(this.opts.key ?? TOPOLOGY_KEY);
      if (!kv || kv.modRevision === this.modRevision) return;
      const rec = JSON.parse(kv.value) as TopologyRecord;
      this.record = rec;
      this.modRevision = kv.modRevision;
      try {
        const { model, instances } = this.validateEffective(rec.doc, rec.placement, false);
        this.instances = instances;
        this.setModel(model);
      } catch (err) {
        this.topologyError = (err as Error).message;
        this.log.error({ generation: rec.generation, err: (err as Error).message }, 'the topology another writer stored does not validate here');
      }
      this.event({ type: 'topology', generation: rec.generation, at: now() });
    });
  }

  agentLost(host: string, record: AgentRecord | undefined): void {
    if (record) this.lostAgents.set(host, record);
  }

  /** Whether this controller's scheduling loop leads (false without a loop). */
  get schedulerLeader(): boolean {
    return this.scheduling?.isLeader ?? false;
  }

  /** Schedules now instead of after the next watch event (tests). */
  kickScheduler(): void {
    this.scheduling?.kick();
  }

  placementRecord(): PlacementRecord | undefined {
    return this.record?.placement;
  }

  async registerAgent(host: string, registration: unknown): Promise<{ host: string; leaseId: string; ttlS: number }> {
    const r = await this.agents.register(host, registration, (this.record?.doc as { hosts?: unknown } | undefined)?.hosts ?? []);
    this.lostAgents.delete(host);
    return r;
  }

  agentHeartbeat(host: string, leaseId: unknown): Promise<{ ttlS: number }> {
    return this.agents.heartbeat(host, leaseId);
  }

  reportInstances(host: string, leaseId: unknown, instances: unknown): Promise<void> {
    return this.agents.reportInstances(host, leaseId, instances);
  }

  agentInfos(): Promise<AgentInfo[]> {
    return this.agents.infos(this.lostAgents);
  }

  assignments(host: string): { index: number; assignments: AgentAssignment[] } {
    return assignmentsFor(host, this.instances, new Map(this.endpoints().map((e) => [e.id, e])));
  }

  /** The host's assignments once their index differs from `index` (at once for 0), or at timeout/abort/close. */
  waitAssignments(host: string, index: number, timeoutMs: number, signal?: AbortSignal): Promise<{ index: number; assignments: AgentAssignment[] }> {
    return new Promise((resolve) => {
      const first = this.assignments(host);
      if (index === 0 || first.index !== index || this.closed || signal?.aborted) return resolve(first);
      const onEvent = (e: ControllerEvent) => {
        if (e.type !== 'topology') return;
        const a = this.assignments(host);
        if (a.index !== index) finish(a);
      };
      const giveUp = () => finish(this.assignments(host));
      const timer = setTimeout(giveUp, timeoutMs);
      const finish = (a: { index: number; assignments: AgentAssignment[] }) => {
        clearTimeout(timer);
        this.off('event', onEvent);
        signal?.removeEventListener('abort', giveUp);
        this.waits.delete(giveUp);
        resolve(a);
      };
      this.on('event', onEvent);
      signal?.addEventListener('abort', giveUp, { once: true });
      this.waits.add(giveUp);
    });
  }

  async units(): Promise<UnitInfo[]> {
    const agents = await this.agentInfos();
    return unitInfos(this.record?.doc ?? null, this.record?.placement, this.instances, new Map(this.endpoints().map((e) => [e.id, e])), agents);
  }

  submitUnits(units: unknown): Promise<ApplyResult> {
    return this.exclusive(() => this.applyLocked(submitUnits(this.record?.doc, units)));
  }

  setUnitState(name: string, state: UnitDesiredState): Promise<ApplyResult> {
    return this.exclusive(() => this.applyLocked(setUnitState(this.record?.doc, name, state)));
  }

  destroyUnit(name: string): Promise<ApplyResult> {
    return this.exclusive(() => this.applyLocked(destroyUnit(this.record?.doc, name)));
  }

  waitRealized(generation: number, timeoutMs: number, signal?: AbortSignal): Promise<ControllerStatus> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const s = this.status();
        // Hosts still connecting for the first time count as pending; unreachable/error ones are reported, not waited for.
        const done = s.hosts.every((h) => h.state === 'unreachable' || h.state === 'error' || (h.state === 'ready' && h.realizedGeneration >= generation));
        if (!done) return false;
        finish({ ...s, realized: realizedAll(s.hosts, generation) });
        return true;
      };
      const onEvent = () => void check();
      // Timeout, abort (the HTTP client went away) and close() all end the wait as not realized.
      const giveUp = () => finish({ ...this.status(), realized: false });
      const timer = setTimeout(giveUp, timeoutMs);
      const finish = (s: ControllerStatus) => {
        clearTimeout(timer);
        this.off('event', onEvent);
        signal?.removeEventListener('abort', giveUp);
        this.waits.delete(giveUp);
        resolve(s);
      };
      if (this.closed || signal?.aborted) return giveUp();
      if (check()) return;
      this.on('event', onEvent);
      signal?.addEventListener('abort', giveUp, { once: true });
      this.waits.add(giveUp);
    });
  }

  /**
   * Resolves once every runtime is idle (no setup or reconcile running or due) for
   * two consecutive polls, e.g. after containers were plugged in; false at timeout.
   */
  async settled(timeoutMs = 10_000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    let quiet = 0;
    while (Date.now() < end) {
      quiet = [...this.runtimes.values()].every((r) => r.idle) ? quiet + 1 : 0;
      if (quiet >= 3) return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  }

  /** Runs a drift check on every ready host now (the timer does this every driftIntervalMs). */
  async checkDrift(): Promise<void> {
    await Promise.all([...this.runtimes.values()].map((r) => r.checkDrift()));
  }

  /** Flow/group mods each host's runtime has sent since this controller started. */
  messagesSent(): Record<string, number> {
    return Object.fromEntries([...this.runtimes].map(([h, r]) => [h, r.messagesSent]));
  }

  // ------------------------------------------------------------------ topology

  /**
   * Validates the effective document (units' instances as endpoints, agents' hosts: src/scheduler/endpoints.ts).
   * `apply`: count an invalid document in tenet_apply_total (a plan is not an apply).
   */
  private validateEffective(doc: unknown, placement: PlacementRecord | undefined, apply = true, liveAgents?: Record<string, AgentRegistration>): { model: Model; instances: InstanceEndpoint[] } {
    const eff = effectiveDoc(doc, placement, placement?.agents ?? {});
    const v = validate(eff.doc, this.record ? { previous: this.record.alloc } : {});
    // A user's change (`liveAgents` given) may not ask more of a unit than any host with a
    // live agent offers (the document's hosts when none is live); a stored one is not re-judged.
    const errors = [...(v.ok ? [] : v.errors), ...eff.issues, ...(v.ok && liveAgents ? oversizedUnits(doc, liveAgents) : [])];
    if (errors.length || !v.ok) {
      if (apply) this.m.applies.inc({ result: 'invalid' });
      throw new TopologyError(errors);
    }
    return { model: v.model, instances: eff.instances };
  }

  private async applyLocked(doc: unknown, placement = this.record?.placement, why?: { placed: Assignment[]; moved: Move[] }): Promise<ApplyResult> {
    const live = why === undefined ? Object.fromEntries([...(await this.agents.live())].map(([h, v]) => [h, v.record.registration])) : undefined;
    const { model, instances } = this.validateEffective(doc, placement, true, live);
    if (this.record && JSON.stringify(doc) === JSON.stringify(this.record.doc) && placement === this.record.placement) {
      this.m.applies.inc({ result: 'unchanged' });
      return { generation: this.generation, plan: (await this.planModel(model, this.generation, instances)).plan, changed: false };
    }
    const generation = this.generation + 1;
    const { plan, result, placementVersion } = await this.planModel(model, generation, instances);
    const record: TopologyRecord = { generation, doc, alloc: model.alloc, ...(placement ? { placement } : {}) };
    const key = this.opts.key ?? TOPOLOGY_KEY;
    const r = await this.opts.store.txn({
      compare: [{ key, target: 'modRevision', op: '=', value: this.modRevision }],
      success: [{ type: 'put', key, value: JSON.stringify(record) }],
    });
    if (!r.succeeded) throw new ConflictError('the stored topology changed under this controller (another writer?); reload and retry', { key });
    this.modRevision = r.revision;
    this.record = record;
    this.m.applies.inc({ result: 'changed' });
    this.log.info({ generation, plan: plan.hosts.map((h) => `${h.host}: ${h.summary}`) }, why ? 'placement stored' : 'topology stored');
    // The plan's compile is the desired state unless a binding or tunnel changed meanwhile.
    this.instances = instances;
    this.setModel(model, placementVersion === this.placementVersion ? result : undefined);
    if (why && placement) {
      this.event({
        type: 'placement',
        generation,
        placed: why.placed.map((a) => ({ id: a.id, host: a.host })),
        moved: why.moved.map((m) => ({ id: m.id, from: m.from, ...(m.to ? { to: m.to } : {}), reason: m.reason })),
        unplaceable: placement.unplaceable.map((u) => ({ id: u.id, reason: u.reason })),
        at: now(),
      });
    }
    this.event({ type: 'topology', generation, at: now() });
    return { generation, plan, changed: true };
  }

  private async load(): Promise<void> {
    const kv = await this.opts.store.get(this.opts.key ?? TOPOLOGY_KEY);
    if (!kv) return;
    const rec = JSON.parse(kv.value) as TopologyRecord;
    this.record = rec;
    this.modRevision = kv.modRevision;
    const eff = effectiveDoc(rec.doc, rec.placement, rec.placement?.agents ?? {});
    const v = validate(eff.doc, { previous: rec.alloc });
    if (!v.ok || eff.issues.length) {
      // E.g. a release that validates more strictly: start anyway, touch no switch (no runtimes), say why;
      // the next valid apply takes over from this generation and allocation.
      const issues = [...(v.ok ? [] : v.errors), ...eff.issues];
      this.topologyError = new TopologyError(issues).message;
      this.log.error({ generation: rec.generation, issues }, 'the stored topology no longer validates: no switch is managed until a valid document is applied');
      return;
    }
    this.current = v.model;
    this.instances = eff.instances;
  }

  private setModel(model: Model, compiled?: CompileResult): void {
    this.current = model;
    this.compiled = compiled;
    this.topologyError = undefined;
    this.syncRuntimes(model);
  }

  /** One runtime per host of the model: new hosts start, removed ones stop (their flows stay), the rest update. */
  private syncRuntimes(model: Model): void {
    if (this.closed) return;
    const peers = tunnelPeers(model);
    this.chainDeps = chainHostDeps(model === this.current ? (this.view()?.model ?? model) : model);
    const byName = new Map(model.hosts.map((h) => [h.name, h]));
    for (const [name, rt] of this.runtimes) {
      const h = byName.get(name);
      if (!h || h.ovsdb !== rt.target) {
        rt.close();
        this.runtimes.delete(name);
        if (!h) {
          this.removedHosts.add(name);
          const message = `host ${name} removed from the topology: no longer managed, its switch keeps its last flows and controller target`;
          this.log.warn({ host: name }, message);
          this.event({ type: 'error', host: name, message, at: now() });
        }
      }
    }
    for (const h of model.hosts) {
      this.removedHosts.delete(h.name);
      const p = (peers.get(h.name) ?? []).map((n) => ({ name: n, remoteIp: byName.get(n)!.underlayIp }));
      const rt = this.runtimes.get(h.name);
      if (rt) {
        rt.update(h, p);
        continue;
      }
      const fresh = new HostRuntime(h, p, {
        bridge: this.opts.bridge ?? 'br-int',
        advertise: this.opts.advertise,
        logger: this.log,
        ovsdb: this.opts.ovsdb ?? {},
        retryMs: this.opts.retryMs ?? 2000,
        openflowWaitMs: 20_000,
        placementGraceMs: this.opts.placementGraceMs ?? 15_000,
        waitingFor: (host) => this.waitingFor(host),
        desired: (host) => this.desiredFor(host),
        placementChanged: (host) => {
          this.compiled = undefined;
          this.placementVersion++;
          // A chain's select groups on every host list instances bound anywhere: the others recompile too.
          for (const [name, rt] of this.runtimes) if (name !== host) rt.kick();
        },
        event: (e) => this.event(e),
        reconciled: (host, r, kind) => {
          this.m.reconcileSeconds.observe({ host, kind }, r.ms / 1000);
          if (r.messages) this.m.messages.inc({ host }, r.messages);
        },
      });
      this.runtimes.set(h.name, fresh);
      fresh.start();
      // Its switch may be connected already: an orphan, or held by a runtime this one replaces (new OVSDB address).
      const conn = this.server.get(BigInt(`0x${fresh.dpid}`));
      if (conn && !conn.isClosed) {
        this.orphans.delete(conn);
        fresh.attach(conn);
      }
    }
  }

  // ------------------------------------------------------------------ compile

  /** Hosts whose placement `host`'s chains read and that is not known yet (not loaded in this process, not lost). */
  private waitingFor(host: string): string[] {
    const deps = this.chainDeps.get(host);
    if (!deps) return [];
    return [...deps].filter((h) => this.runtimes.get(h)?.placementKnown === false).sort();
  }

  /**
   * Instances leaving their groups: unhealthy by port/link/check (chains.ts), plus
   * every chain instance on a lost host (unreachable past the grace period).
   */
  private unhealthy(model: Model, checkFailing?: ReadonlySet<string>): Set<string> {
    const out = unhealthyEndpoints(model, this.health(checkFailing));
    const lost = new Set([...this.runtimes].filter(([, rt]) => rt.lost).map(([h]) => h));
    if (!lost.size) return out;
    for (const t of model.tenants) for (const c of t.chains) for (const hop of c.hops) for (const i of hop.instances) for (const e of [i.ingress, i.egress]) if (lost.has(e.host)) out.add(e.id);
    return out;
  }

  private placement(): Placement {
    const hosts: Placement['hosts'] = {};
    for (const [name, rt] of this.runtimes) hosts[name] = rt.placementOf();
    return { hosts };
  }

  /** Ports, link states and health checks as chain health sees them (src/controller/chains.ts). */
  private health(checkFailing: ReadonlySet<string> = this.view()?.checkFailing ?? new Set()): HealthView {
    return {
      // A lost host's last known bindings are not trusted: its instances show as port missing.
      ofport: (host, id) => (this.runtimes.get(host)?.lost ? undefined : this.runtimes.get(host)?.ofport(id)),
      linkDown: (host, id) => this.runtimes.get(host)?.linkDown(id) ?? false,
      checkFailing,
    };
  }

  private compileCurrent(): CompileResult | undefined {
    const v = this.view();
    if (!this.current || !v) return undefined;
    if (this.compiled) return this.compiled;
    const { result, view } = this.compileView(v, this.current);
    // A fallback shows in GET /v1/chains (the tenant's labelled members, its registrations skipped).
    if (view !== v) this.serviceView = { model: this.current, view };
    this.compiled = result;
    return result;
  }

  /**
   * Compiles a resolved view of `base`. When registered members the validated document
   * did not have make the compile fail (e.g. a classifier conflict at a registered
   * endpoint's port), only the tenant(s) the error blames (else every tenant with
   * registered members) run on their labelled members, their joining registrations
   * skipped with the error; other tenants keep their registered members.
   */
  private compileView(v: ServiceView, base: Model): { result: CompileResult; view: ServiceView } {
    let view = v;
    for (;;) {
      try {
        return { result: compile(view.model, this.placement(), { unhealthy: this.unhealthy(view.model, view.checkFailing) }), view };
      } catch (err) {
        if (view.model === base) throw err;
        const withRegistered = tenantsWithRegistered(view, base);
        const blamed = new Set([...blamedTenants(err)].filter((t) => withRegistered.has(t)));
        const back = blamed.size ? blamed : withRegistered;
        const message = (err as Error).message;
        this.log.error(
          { err: message, tenants: [...back], registrations: view.joined.filter((j) => back.has(j.chain.slice(0, j.chain.indexOf('/')))).map((j) => `${j.chain} hop ${j.hop}: ${j.service}/${j.id} -> ${j.endpoint}`) },
          "chains with these registrations' members do not compile: their tenants run on the labelled members",
        );
        view = withoutRegistered(view, base, back, `its member makes the chains fail to compile: ${message}`);
      }
    }
  }

  private desiredFor(host: string): { generation: number; state: DesiredState } {
    const r = this.compileCurrent();
    if (!r) return { generation: this.generation, state: { flows: [], groups: [] } };
    const h = r.host(host);
    return { generation: this.generation, state: { flows: h.flows, groups: h.groups } };
  }

  private async planModel(model: Model, generation: number, instances: readonly InstanceEndpoint[]): Promise<{ plan: Plan; result: CompileResult; placementVersion: number }> {
    const placementVersion = this.placementVersion;
    const v = this.resolved(model, instances);
    const result = uncompilable(model, () => this.compileView(v, model).result); // as compileCurrent
    const hosts = await Promise.all(
      model.hosts.map(async (h) => {
        const desired = uncompilable(model, () => result.host(h.name), h.name);
        const rt = this.runtimes.get(h.name);
        const state = { flows: desired.flows, groups: desired.groups };
        uncompilable(model, () => diffState(state, NOTHING), h.name); // two flows with one identity: a 400, not a plan that fails later
        if (rt) return rt.plan(state);
        return new HostRuntime(h, [], NO_DEPS).plan(state); // a new host: planned against an empty switch
      }),
    );
    return { plan: { generation, hosts }, result, placementVersion };
  }

  // ------------------------------------------------------------------ switches

  private onSwitch(conn: SwitchConnection): void {
    for (const rt of this.runtimes.values()) {
      if (rt.dpid === conn.dpidHex) {
        rt.attach(conn);
        return;
      }
    }
    this.log.warn({ dpid: conn.dpidHex, remote: conn.remote }, 'a switch with an unknown datapath id connected; kept until a host claims it');
    this.orphans.add(conn);
  }

  private onSwitchGone(conn: SwitchConnection, reason: Error): void {
    this.orphans.delete(conn);
    for (const rt of this.runtimes.values()) rt.detach(conn, reason);
  }

  private event(e: ControllerEvent): void {
    if (e.type === 'drift') this.m.driftRepairs.inc({ host: e.host }); // flow-table and OVSDB repairs alike
    this.emit('event', e);
  }

  /** Serializes applies and deletes (one CAS writer at a time in this process). */
  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.serial.then(f, f);
    this.serial = run.catch(() => undefined);
    return run;
  }
}

const NOTHING = { flows: [], groups: [] };

/** Runs a compile step of a validated document; a failure throws compileFailure's TopologyError. */
function uncompilable<T>(model: Model, f: () => T, host?: string): T {
  try {
    return f();
  } catch (err) {
    throw compileFailure(model, err, host);
  }
}

function realizedAll(hosts: HostStatus[], generation: number): boolean {
  return hosts.every((h) => h.state !== 'ready' || h.realizedGeneration >= generation);
}

/** Dependencies of a throwaway runtime used only to plan against an empty switch. */
const NO_DEPS = {
  bridge: 'br-int',
  advertise: [],
  logger: pino({ level: 'silent' }),
  ovsdb: {},
  retryMs: 0,
  openflowWaitMs: 0,
  placementGraceMs: 0,
  waitingFor: () => [],
  desired: () => ({ generation: 0, state: { flows: [], groups: [] } }),
  placementChanged: () => undefined,
  event: () => undefined,
  reconciled: () => undefined,
};
