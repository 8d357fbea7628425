/**
 * HostRuntime: the controller's view of one host. It keeps the OVSDB side right
 * (br-int with our controller target and fixed datapath id, tunnels to exactly
 * the peers the topology needs), learns the placement (container port bindings
 * and tunnel ofports), takes the host's OpenFlow connection, and reconciles the
 * switch to the compiled desired state: one reconcile at a time, coalescing (the
 * latest desired state wins).
 *
 * Hitless restart rule: nothing is reconciled before the OVSDB replica is loaded,
 * the bridge and tunnels are ensured and every tunnel has its ofport. Compiling
 * before that would leave out ports and tunnels and delete live flows. Chain
 * groups list instances bound on other hosts, so a host also waits until the
 * placement of every host its chains use is loaded (`waitingFor`), for at most
 * `placementGraceMs`; a host never loaded by then, or loaded and then unreachable
 * for that long, is `lost`: its chain instances leave their groups.
 */
import type { Logger } from 'pino';
import type { Host } from '../model/index.js';
import { cookieGeneration, type HostPlacement } from '../pipeline/index.js';
import type { SwitchConnection } from '../openflow/index.js';
import { SwitchReconciler, diffState, summarize, type ActualState, type DesiredState, type ReconcileResult } from '../reconcile/index.js';
import { HostSwitch, PEER_KEY, findBridge, type HostSwitchOptions } from '../vswitch/index.js';
import type { Row } from '../ovsdb/index.js';
import { datapathIdOf, driftLines, hostPlanOf } from './pure.js';
import type { ControllerEvent, HostPlan, HostState, HostStatus } from './types.js';

export interface HostRuntimeDeps {
  bridge: string;
  /** Controller targets written into the bridge. */
  advertise: readonly string[];
  logger: Logger;
  ovsdb: HostSwitchOptions;
  /** Delay before retrying a failed setup, and the first retry of a failed reconcile (doubling up to 64x). */
  retryMs: number;
  /** How long others wait for this host's placement (first load, or back after it became unreachable). */
  placementGraceMs: number;
  /** Hosts whose placement `host`'s compile needs (chain instances there) and that is not known yet. */
  waitingFor(host: string): string[];
  /** A switch that has not connected this long after setup is reported unreachable. */
  openflowWaitMs: number;
  /** The desired state of `host` under the current model and placement. */
  desired(host: string): { generation: number; state: DesiredState };
  /** Bindings or tunnel ofports of `host` changed: its desired state must be recompiled. */
  placementChanged(host: string): void;
  event(e: ControllerEvent): void;
  /** After each reconcile (for metrics). */
  reconciled(host: string, r: ReconcileResult, kind: 'apply' | 'drift'): void;
}

const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === null || v === undefined ? [] : [v]);
const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));
/** The switch retries a lost controller at least every second (OVS default: up to 8 s), so a restarted controller is found fast. */
const CONTROLLER_MAX_BACKOFF_MS = 1000;
const EMPTY: ActualState = { flows: [], groups: [] };

export class HostRuntime {
  readonly dpid: string;
  private sw: HostSwitch | undefined;
  private conn: SwitchConnection | undefined;
  private reconciler: SwitchReconciler | undefined;
  private ovsdbUp = false;
  private ovsdbEverUp = false;
  private ovsdbFailed = false;
  private openflowEverUp = false;
  /** The switch has not connected within openflowWaitMs of setup. */
  private openflowLate = false;
  private configured = false;
  private tunnelsReady = false;
  /** Tunnels whose Interface has ofport -1 or an error (ovs-vswitchd could not create them), with the reason. */
  private tunnelErrors: string[] = [];
  /** The placement was read from this host's OVSDB at least once in this process. */
  private placementLoaded = false;
  /** Never loaded within placementGraceMs of start, or unreachable that long after: its chain instances count as gone. */
  private lostFlag = false;
  private lostTimer: NodeJS.Timeout | undefined;
  /** Consecutive failed reconciles (the retry delay doubles with each). */
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private placement: HostPlacement = { ports: {}, tunnels: {} };
  private placementKey = '';
  /** iface-ids of bound ports whose link is down (they leave their chain hop). */
  private down = new Set<string>();
  private busy = false;
  private pending = false;
  private setupRunning = false;
  private setupAgain = false;
  private closed = false;
  private applyError: string | undefined;
  private lastError: string | undefined;
  private state: HostState = 'connecting';
  private since = new Date().toISOString();
  private realized = 0;
  private flows = 0;
  private groups = 0;
  /** Bound ports whose flows the switch holds (the placement of the last successful reconcile). */
  private programmedBindings = 0;
  private connectAttempt = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private changeScheduled = false;
  /** The next setup changes the switch because the topology changed, not because someone edited it. */
  private expectSetupChange = false;
  private openflowTimer: NodeJS.Timeout | undefined;
  /** Flow/group mods this runtime has sent (tests: a restarted controller sends none). */
  messagesSent = 0;

  constructor(
    private host: Host,
    private peers: { name: string; remoteIp: string }[],
    private readonly deps: HostRuntimeDeps,
  ) {
    this.dpid = datapathIdOf(host.name);
  }

  get name(): string {
    return this.host.name;
  }
  get target(): string {
    return this.host.ovsdb;
  }

  start(): void {
    void this.connectOvsdb();
    this.armLostTimer();
  }

  /**
   * The placement others can compile with: loaded, or given up on (lost). While
   * false, hosts whose chains use instances here do not reconcile.
   */
  get placementKnown(): boolean {
    return this.placementLoaded || this.lostFlag;
  }

  /** Never loaded, or unreachable after loading, for longer than placementGraceMs: its chain instances leave their groups. */
  get lost(): boolean {
    return this.lostFlag;
  }

  /** Starts the grace period unless one runs or the host is lost already. */
  private armLostTimer(): void {
    if (this.lostTimer || this.lostFlag || this.closed) return;
    this.lostTimer = setTimeout(() => {
      this.lostTimer = undefined;
      if (this.closed || this.reachable()) return;
      this.lostFlag = true;
      this.deps.logger.warn({ host: this.name, graceMs: this.deps.placementGraceMs }, 'host lost: its chain instances leave their groups');
      this.deps.placementChanged(this.name);
    }, this.deps.placementGraceMs);
    this.lostTimer.unref();
  }

  /** Loaded, OVSDB and OpenFlow up. */
  private reachable(): boolean {
    return this.placementLoaded && this.ovsdbUp && this.conn !== undefined;
  }

  /** Starts or ends the grace period as reachability changes (called on every state input change). */
  private updateLost(): void {
    if (this.closed) return;
    if (!this.reachable()) {
      this.armLostTimer();
      return;
    }
    if (this.lostTimer) clearTimeout(this.lostTimer);
    this.lostTimer = undefined;
    if (this.lostFlag) {
      this.lostFlag = false;
      this.deps.logger.info({ host: this.name }, 'host back: its chain instances rejoin their groups');
      this.deps.placementChanged(this.name);
    }
  }

  close(): void {
    this.closed = true;
    if (this.lostTimer) clearTimeout(this.lostTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.openflowTimer) clearTimeout(this.openflowTimer);
    this.sw?.close();
    this.sw = undefined;
  }

  /** The model changed: new host fields or tunnel peers. */
  update(host: Host, peers: { name: string; remoteIp: string }[]): void {
    const same = JSON.stringify([this.host.datapathType, this.host.underlayIp, this.peers]) === JSON.stringify([host.datapathType, host.underlayIp, peers]);
    this.host = host;
    this.peers = peers;
    if (!same) {
      this.tunnelsReady = this.computeTunnelsReady();
      this.expectSetupChange = true;
      void this.setup();
    }
    this.kick();
  }

  /** Nothing in flight or waiting that could run now (setup, reconcile, a queued replica change). */
  get idle(): boolean {
    return !this.busy && !this.setupRunning && !this.changeScheduled && !(this.pending && this.canReconcile());
  }

  placementOf(): HostPlacement {
    return this.placement;
  }

  ofport(ifaceId: string): number | undefined {
    return this.placement.ports[ifaceId];
  }

  /** true when the port bound to `ifaceId` exists and ovs-vswitchd reports its link down. */
  linkDown(ifaceId: string): boolean {
    return this.down.has(ifaceId);
  }

  status(): HostStatus {
    return {
      name: this.host.name,
      state: this.state,
      ovsdb: this.ovsdbUp,
      openflow: this.conn !== undefined,
      ...(this.conn ? { datapathId: this.conn.dpidHex } : {}),
      realizedGeneration: this.realized,
      flows: this.flows,
      groups: this.groups,
      // Counted once their flows are installed, so a client waiting for N bindings can send traffic right after.
      bindings: this.programmedBindings,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      since: this.since,
    };
  }

  /** What reconciling `desired` would change (against the switch's tracked state, or empty when not connected). */
  async plan(desired: DesiredState): Promise<HostPlan> {
    const rec = this.reconciler;
    if (rec) {
      try {
        const d = await rec.plan(desired);
        return hostPlanOf(this.name, d, summarize(d), true);
      } catch (err) {
        // The switch did not answer the dump: plan as for an unreachable host.
        this.deps.logger.warn({ host: this.name, err: msg(err) }, 'plan: cannot read the switch');
      }
    }
    const d = diffState(desired, EMPTY);
    return hostPlanOf(this.name, d, summarize(d), false);
  }

  // ------------------------------------------------------------------ OpenFlow

  attach(conn: SwitchConnection): void {
    if (this.closed) return;
    this.deps.logger.info({ host: this.name, dpid: conn.dpidHex, remote: conn.remote }, 'switch connected');
    this.conn = conn;
    // A fresh reconciler reads the switch once: after a controller restart it adopts
    // what is there; after a vswitchd restart it finds it empty and installs everything.
    this.reconciler = new SwitchReconciler(conn, { isOurs: (c) => cookieGeneration(c) !== 0, foreign: 'remove' });
    this.openflowEverUp = true;
    this.applyError = undefined;
    if (this.openflowTimer) clearTimeout(this.openflowTimer);
    this.refreshState();
    this.kick();
  }

  detach(conn: SwitchConnection, reason?: Error): void {
    if (conn !== this.conn) return;
    this.deps.logger.warn({ host: this.name, reason: reason?.message }, 'switch disconnected');
    this.conn = undefined;
    this.reconciler = undefined;
    this.lastError = `OpenFlow connection lost${reason ? `: ${reason.message}` : ''}`;
    this.refreshState();
  }

  // ------------------------------------------------------------------ OVSDB

  private async connectOvsdb(): Promise<void> {
    if (this.closed) return;
    if (!this.sw) {
      const sw = new HostSwitch(this.host.ovsdb, { connectTimeoutMs: 3000, requestTimeoutMs: 10_000, reconnect: { initialDelayMs: 200, maxDelayMs: 5000 }, ...this.deps.ovsdb });
      this.sw = sw;
      sw.replica.on('sync', () => this.onOvsdbUp());
      sw.replica.on('disconnected', (err) => {
        this.ovsdbUp = false;
        this.lastError = `OVSDB ${this.host.ovsdb} lost${err ? `: ${err.message}` : ''}`;
        this.refreshState();
      });
      sw.replica.on('reconnect-failed', (err) => {
        this.lastError = `OVSDB ${this.host.ovsdb}: ${err.message}`;
        this.refreshState();
      });
      sw.replica.on('change', () => this.onOvsdbChange());
    }
    try {
      await this.sw.replica.start(); // 'sync' fires on success
    } catch (err) {
      if (this.closed) return;
      this.ovsdbFailed = true;
      this.lastError = `OVSDB ${this.host.ovsdb}: ${msg(err)}`;
      this.deps.logger.warn({ host: this.name, err: msg(err) }, 'OVSDB connect failed');
      this.refreshState();
      const delay = Math.min(10_000, 500 * 2 ** this.connectAttempt++);
      this.later(delay, () => void this.connectOvsdb());
    }
  }

  private onOvsdbUp(): void {
    if (this.closed) return;
    this.ovsdbUp = true;
    this.ovsdbEverUp = true;
    this.connectAttempt = 0;
    this.deps.logger.info({ host: this.name, target: this.host.ovsdb }, 'OVSDB synced');
    this.updateLost(); // back from lost: recompile with its instances before anything reconciles
    void this.setup();
  }

  /** Replica changed (ports added, ofports assigned, someone edited the bridge): re-ensure and re-read placement, once per tick. */
  private onOvsdbChange(): void {
    if (this.changeScheduled || !this.configured) return;
    this.changeScheduled = true;
    setImmediate(() => {
      this.changeScheduled = false;
      if (this.closed || !this.ovsdbUp) return;
      void this.setup();
    });
  }

  /** ensureBridge + ensureTunnels (each sends nothing when the switch matches), then placement. Serialized. */
  private async setup(): Promise<void> {
    const sw = this.sw;
    if (!sw || !this.ovsdbUp || this.closed) return;
    if (this.setupRunning) {
      this.setupAgain = true;
      return;
    }
    this.setupRunning = true;
    try {
      do {
        this.setupAgain = false;
        const b = await sw.ensureBridge({
          name: this.deps.bridge,
          datapathType: this.host.datapathType,
          controllers: this.deps.advertise,
          datapathId: this.dpid,
          controllerMaxBackoffMs: CONTROLLER_MAX_BACKOFF_MS,
        });
        const t = await sw.ensureTunnels({ bridge: this.deps.bridge, localIp: this.host.underlayIp, peers: this.peers });
        const expected = !this.configured || this.expectSetupChange;
        this.expectSetupChange = false;
        if (b.changed || t.changed) {
          this.deps.logger.info({ host: this.name, bridgeChanged: b.changed, tunnels: { added: t.added, removed: t.removed, updated: t.updated } }, 'switch configured');
          if (!expected) {
            // Someone changed the bridge or a tunnel port behind our back: undone above, reported like flow drift.
            const lines = [...(b.changed ? ['bridge restored'] : []), ...t.added.map((p) => `+ port ${p}`), ...t.updated.map((p) => `~ port ${p}`), ...t.removed.map((p) => `- port ${p}`)];
            this.deps.logger.warn({ host: this.name, changes: lines }, 'OVSDB drift repaired');
            this.deps.event({ type: 'drift', host: this.name, summary: `OVSDB: ${lines.join(', ')}`, flows: lines, at: new Date().toISOString() });
          }
        }
        if (!this.configured) {
          this.configured = true;
          if (!this.conn) this.armOpenflowTimer();
        }
        this.refreshPlacement();
      } while (this.setupAgain && !this.closed);
      if (this.lastError?.startsWith('setup')) this.lastError = undefined;
    } catch (err) {
      if (this.closed) return;
      this.lastError = `setup: ${msg(err)}`;
      this.deps.logger.warn({ host: this.name, err: msg(err) }, 'switch setup failed');
      this.later(this.deps.retryMs, () => void this.setup());
    } finally {
      this.setupRunning = false;
      this.refreshState();
    }
  }

  private armOpenflowTimer(): void {
    if (this.openflowTimer) clearTimeout(this.openflowTimer);
    this.openflowTimer = setTimeout(() => {
      if (this.conn || this.closed) return;
      this.openflowLate = true;
      this.lastError = `switch did not connect to ${this.deps.advertise.join(', ')} within ${this.deps.openflowWaitMs} ms`;
      this.refreshState();
    }, this.deps.openflowWaitMs);
    this.openflowTimer.unref();
  }

  /** Tunnel ofports (our tunnel ports, by peer) and bindings (iface-id -> ofport), from the replica. */
  private refreshPlacement(): void {
    const sw = this.sw;
    if (!sw) return;
    const tunnels: Record<string, number> = {};
    const tunnelErrors: string[] = [];
    const found = findBridge(sw.replica, this.deps.bridge);
    if (found) {
      const ports = sw.replica.rows('Port');
      const ifaces = sw.replica.rows('Interface');
      for (const pu of arr(found[1].ports) as string[]) {
        const port = ports.get(pu);
        const ext = port?.external_ids as Record<string, unknown> | undefined;
        const peer = ext?.[PEER_KEY];
        if (typeof peer !== 'string') continue;
        const iface: Row | undefined = ifaces.get(arr(port!.interfaces)[0] as string);
        const of = iface?.ofport;
        if (typeof of === 'number' && of > 0) tunnels[peer] = of;
        else if (of === -1) tunnelErrors.push(`${String(port!.name)} (to ${peer}): ofport -1, ovs-vswitchd could not create it`);
      }
    }
    const ports: Record<string, number> = {};
    const down: string[] = [];
    for (const b of sw.listBindings()) {
      if (b.ofport !== null && b.ofport > 0) ports[b.ifaceId] = b.ofport;
      if (b.ofport !== null && !b.linkUp) down.push(b.ifaceId);
    }
    down.sort();
    const key = JSON.stringify([tunnels, ports, down]);
    const before = this.placement;
    const downBefore = this.down;
    this.placement = { ports, tunnels };
    this.down = new Set(down);
    this.tunnelErrors = tunnelErrors.sort();
    this.tunnelsReady = this.computeTunnelsReady();
    this.placementLoaded = true; // the first load always changes placementKey: hosts waiting for it are kicked below
    this.updateLost();
    if (key !== this.placementKey) {
      this.placementKey = key;
      for (const id of new Set([...Object.keys(before.ports), ...Object.keys(ports)])) {
        if (before.ports[id] !== ports[id]) this.deps.event({ type: 'binding', host: this.name, ifaceId: id, ofport: ports[id] ?? null, at: new Date().toISOString() });
      }
      for (const id of new Set([...downBefore, ...down])) {
        if (downBefore.has(id) !== this.down.has(id)) this.deps.event({ type: 'link', host: this.name, ifaceId: id, up: !this.down.has(id), at: new Date().toISOString() });
      }
      this.deps.placementChanged(this.name);
      this.kick();
    } else if (this.pending) {
      this.kick(); // a reconcile asked for earlier may be possible now (e.g. after an OVSDB reconnect)
    }
  }

  private computeTunnelsReady(): boolean {
    return this.peers.every((p) => this.placement.tunnels[p.name] !== undefined);
  }

  // ------------------------------------------------------------------ reconcile

  private canReconcile(): boolean {
    return !this.closed && this.ovsdbUp && this.configured && this.tunnelsReady && this.reconciler !== undefined && this.deps.waitingFor(this.name).length === 0;
  }

  /** Asks for a reconcile with the latest desired state (coalesced with one in flight); runs at once, also during a retry backoff. */
  kick(): void {
    this.pending = true;
    this.refreshState(); // what it waits for may have changed
    if (!this.busy && this.canReconcile()) void this.loop();
  }

  private async loop(): Promise<void> {
    this.busy = true;
    try {
      while (this.pending && this.canReconcile()) {
        this.pending = false;
        const rec = this.reconciler!;
        const bound = Object.keys(this.placement.ports).length; // the placement desired() compiles with
        try {
          const d = this.deps.desired(this.name);
          const r = await rec.reconcile(d.state);
          if (rec !== this.reconciler) continue;
          this.messagesSent += r.messages;
          this.flows = d.state.flows.length;
          this.groups = d.state.groups.length;
          this.programmedBindings = bound;
          this.applyError = undefined;
          this.failures = 0;
          if (this.retryTimer) clearTimeout(this.retryTimer);
          this.retryTimer = undefined;
          if (this.lastError && this.conn) this.lastError = undefined;
          const advanced = d.generation !== this.realized;
          this.realized = d.generation;
          this.deps.reconciled(this.name, r, 'apply');
          this.refreshState();
          if (r.messages || advanced) {
            this.deps.logger.info({ host: this.name, generation: d.generation, summary: r.summary, ms: Math.round(r.ms) }, 'realized');
            this.deps.event({ type: 'realized', host: this.name, generation: d.generation, summary: r.summary, ms: r.ms, at: new Date().toISOString() });
          }
        } catch (err) {
          if (rec !== this.reconciler) continue; // the connection went away meanwhile; attach() starts over
          this.applyError = msg(err);
          this.lastError = `reconcile: ${msg(err)}`;
          this.deps.logger.error({ host: this.name, err: msg(err) }, 'reconcile failed');
          this.deps.event({ type: 'error', host: this.name, message: this.lastError, at: new Date().toISOString() });
          this.refreshState();
          // Backoff: a compile error or a switch refusing the bundle fails the same way until something changes;
          // a model or placement change kicks at once anyway.
          const delay = this.deps.retryMs * 2 ** Math.min(this.failures++, 6);
          if (this.retryTimer) clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            if (!this.closed) this.kick();
          }, delay);
          this.retryTimer.unref();
          break;
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** Re-reads the switch and restores anything changed by hand. Skipped while not ready or busy. */
  async checkDrift(): Promise<ReconcileResult | undefined> {
    if (this.busy || !this.canReconcile() || this.state !== 'ready') return undefined;
    this.busy = true;
    const rec = this.reconciler!;
    try {
      const d = this.deps.desired(this.name);
      const r = await rec.checkDrift(d.state);
      this.messagesSent += r.messages;
      this.deps.reconciled(this.name, r, 'drift');
      if (r.messages) {
        this.deps.logger.warn({ host: this.name, summary: r.summary }, 'drift repaired');
        this.deps.event({ type: 'drift', host: this.name, summary: r.summary, flows: driftLines(r.diff), at: new Date().toISOString() });
      }
      return r;
    } catch (err) {
      this.deps.logger.warn({ host: this.name, err: msg(err) }, 'drift check failed');
      return undefined;
    } finally {
      this.busy = false;
      if (this.pending) this.kick();
    }
  }

  // ------------------------------------------------------------------ state

  private refreshState(): void {
    let next: HostState;
    if (!this.ovsdbUp) next = this.ovsdbEverUp || this.ovsdbFailed ? 'unreachable' : 'connecting';
    else if (!this.conn) next = this.openflowEverUp || this.openflowLate ? 'unreachable' : 'connecting';
    else if (this.applyError) next = 'error';
    else if (!this.configured) next = 'connecting';
    else if (this.tunnelErrors.length) next = 'error';
    else if (!this.tunnelsReady || this.deps.waitingFor(this.name).length) next = 'connecting';
    else next = 'ready';
    // Both connections up and configured, yet not reconciling: say what it waits for.
    const waiting = next === 'connecting' && this.configured && this.ovsdbUp && this.conn ? this.waitReason() : undefined;
    if (next === 'error' && !this.applyError) this.lastError = `tunnels without an ofport: ${this.tunnelErrors.join('; ')}`;
    else if (waiting) this.lastError = waiting;
    // Ready again: a connection error from before is history (a failing setup is still news).
    if (next === 'ready' && this.lastError && !this.lastError.startsWith('setup')) this.lastError = undefined;
    this.updateLost();
    if (next === this.state) return;
    this.state = next;
    this.since = new Date().toISOString();
    this.deps.event({ type: 'host', host: this.status(), at: this.since });
  }

  /** Why a configured, connected host does not reconcile yet. */
  private waitReason(): string | undefined {
    if (!this.tunnelsReady) return `waiting for the ofport of the tunnels to ${this.peers.filter((p) => this.placement.tunnels[p.name] === undefined).map((p) => p.name).join(', ')}`;
    const hosts = this.deps.waitingFor(this.name);
    if (hosts.length) return `waiting for the placement of ${hosts.join(', ')} (chain instances there; at most ${this.deps.placementGraceMs} ms)`;
    return undefined;
  }

  private later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) f();
    }, ms);
    t.unref();
    this.timers.add(t);
  }
}
