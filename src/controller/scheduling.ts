/**
 * The scheduling loop (issue 9): runs only while this controller leads the election
 * (`/tenet/leader/scheduler`). It watches the agents' keys and the topology record;
 * each change (debounced) runs `place()` over the live agents' hosts with the current
 * placement and, when the result differs, writes it through the controller
 * (applyPlacement: same CAS and generation+1 as an apply). An agent whose lease
 * expired shows up as the delete of `/tenet/agents/<host>`: its instances move, and
 * the time from that delete to the new placement being stored is logged.
 */
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';
import { agentHostIssues, currentOf, place, samePlacement, schedulingInput, type AgentRecord, type AgentRegistration, type Assignment, type Move, type PlacementRecord } from '../scheduler/index.js';
import { Election, type Store, type Watch } from '../store/index.js';
import { AGENTS_PREFIX, type AgentDirectory } from './agents.js';
import type { ApplyResult } from './types.js';

export interface SchedulerOptions {
  /** Candidate id in the election. Default `<hostname>:<pid>:<random>`. */
  id?: string;
  /** Election lease TTL, seconds. Default 5. */
  electionTtlS?: number;
  /** Quiet time before a run after a change, ms. Default 100. */
  debounceMs?: number;
  /** Store key of the topology record (the controller's). */
  topologyKey?: string;
  logger?: Logger;
  onHostLost?: (host: string, record: AgentRecord) => void | Promise<void>;
}

/** What the loop needs of the Controller. */
export interface SchedulingTarget {
  schedulingState(): { doc: unknown; placement: PlacementRecord | undefined; modRevision: number; key: string };
  /** `basedOn`: the modRevision the placement was computed from; ECONFLICT when the record moved on. */
  applyPlacement(p: PlacementRecord, why: { placed: Assignment[]; moved: Move[] }, basedOn?: number): Promise<ApplyResult>;
  /** Re-reads the topology record when another writer changed it. */
  reload(): Promise<void>;
  /** Remembers an agent whose lease expired (GET /v1/agents shows it as not alive). */
  agentLost(host: string, record: AgentRecord | undefined): void;
}

/** What of a registration shapes the effective document (version and socket do not). */
function placementFields(r: AgentRegistration): AgentRegistration {
  const out: AgentRegistration = { version: '' };
  if (r.labels) out.labels = r.labels;
  if (r.resources) out.resources = r.resources;
  if (r.underlayIp) out.underlayIp = r.underlayIp;
  if (r.ovsdb) out.ovsdb = r.ovsdb;
  if (r.datapathType) out.datapathType = r.datapathType;
  return out;
}

const EMPTY = { assignments: [], unplaceable: [] };

/**
 * Startup grace (pure): the hosts of the stored placement without a live agent, with the
 * registration saved in that placement, so a new leader does not move everything while
 * the agents are still re-registering. Hosts in `skip` (invalid entries) stay out.
 */
export function graceRegistrations(live: Readonly<Record<string, AgentRegistration>>, placement: Pick<PlacementRecord, 'assignments' | 'agents'> | undefined, skip: ReadonlyMap<string, unknown> = new Map()): Record<string, AgentRegistration> {
  const out: Record<string, AgentRegistration> = {};
  for (const a of placement?.assignments ?? []) {
    if (live[a.host] || out[a.host] || skip.has(a.host)) continue;
    out[a.host] = placement?.agents?.[a.host] ?? { version: 'grace' };
  }
  return out;
}

export class SchedulingLoop {
  private readonly log: Logger;
  private readonly election: Election;
  private watches: Watch[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private again = false;
  private stopped = false;
  /** Hosts whose agent record was deleted (lease expired), with when: logged once their instances are re-placed. */
  private readonly lost = new Map<string, number>();
  /** Last agent records seen, for onHostLost and the not-alive listing. */
  private readonly records = new Map<string, AgentRecord>();
  /** Agents left out of placement (invalid host entry) and why: logged once per reason. */
  private readonly leftOut = new Map<string, string>();
  /** Until then (ms) the hosts of the stored placement count as live (startup grace). */
  private graceUntil = 0;
  /** Incremented by every unfollow(): a follow() of an older term drops what it made. */
  private term = 0;
  private refollowTerm = -1;

  constructor(
    private readonly target: SchedulingTarget,
    private readonly store: Store,
    private readonly agents: AgentDirectory,
    private readonly opts: SchedulerOptions = {},
  ) {
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.election = new Election({
      store,
      id: opts.id ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`,
      ttlS: opts.electionTtlS ?? 5,
      logger: this.log,
    });
  }

  get isLeader(): boolean {
    return this.election.isLeader;
  }

  get candidateId(): string {
    return this.election.id;
  }

  async start(): Promise<void> {
    this.election.on('elected', () => {
      this.log.info({ id: this.election.id }, 'scheduler: leading; scheduling');
      // Startup grace: agents may still be re-registering (every controller was down, or a
      // failover); for one agent TTL the hosts of the stored placement count as live, then
      // a pass judges them by their leases.
      this.graceUntil = Date.now() + this.agents.ttlS * 1000;
      setTimeout(() => this.trigger(0), this.agents.ttlS * 1000 + 50).unref();
      void this.follow();
    });
    this.election.on('lost', (reason) => {
      this.log.warn({ reason }, 'scheduler: no longer leading; scheduling stopped');
      void this.unfollow();
    });
    this.election.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.unfollow();
    await this.election.stop();
    await this.running;
  }

  /** Schedules now (tests, and after an apply when the watch is slower than the caller). */
  kick(): void {
    this.trigger(0);
  }

  private async follow(): Promise<void> {
    await this.unfollow();
    // A loss, stop() or another follow() during one of the awaits below starts a new term:
    // what this call made after that is cancelled, never left running beside the new one.
    const term = this.term;
    const current = () => term === this.term && !this.stopped;
    const keep = async (w: Watch): Promise<boolean> => {
      if (current()) return this.watches.push(w) > 0;
      await w.cancel().catch(() => undefined);
      return false;
    };
    try {
      const { revision } = await this.store.status();
      const live = await this.agents.live();
      if (!current()) return;
      for (const v of live.values()) this.records.set(v.record.host, v.record);
      const agentsWatch =
        await this.store.watch(AGENTS_PREFIX, { prefix: true, startRevision: revision + 1 }, {
          onEvents: (events) => {
            let relevant = false;
            for (const e of events) {
              const host = e.kv.key.slice(AGENTS_PREFIX.length);
              if (host.includes('/')) continue; // the instances key: reports do not change placement
              relevant = true;
              if (e.type === 'put') {
                this.records.set(host, JSON.parse(e.kv.value) as AgentRecord);
                this.lost.delete(host);
              } else this.onLost(host);
            }
            if (relevant) this.trigger();
          },
          onError: (err) => this.watchFailed(err),
        });
      if (!(await keep(agentsWatch))) return;
      const key = this.target.schedulingState().key;
      const topologyWatch = await this.store.watch(key, { startRevision: revision + 1 }, {
        onEvents: () => this.trigger(),
        onError: (err) => this.watchFailed(err),
      });
      if (!(await keep(topologyWatch))) return;
      this.trigger(0);
    } catch (err) {
      this.watchFailed(err as Error);
    }
  }

  private watchFailed(err: Error): void {
    if (this.stopped || !this.election.isLeader) return;
    // Both watches failing (one store outage) follow again once per term, not twice.
    if (this.refollowTerm === this.term) return;
    this.refollowTerm = this.term;
    this.log.warn({ err: err.message }, 'scheduler: watch failed; following again in 1 s');
    setTimeout(() => {
      if (!this.stopped && this.election.isLeader) void this.follow();
    }, 1000).unref();
  }

  private async unfollow(): Promise<void> {
    this.term++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const ws = this.watches;
    this.watches = [];
    await Promise.all(ws.map((w) => w.cancel().catch(() => undefined)));
  }

  private onLost(host: string): void {
    const record = this.records.get(host);
    this.records.delete(host);
    this.lost.set(host, Date.now());
    this.log.warn({ host }, 'scheduler: agent lease expired; rescheduling its instances');
    this.target.agentLost(host, record);
    if (record && this.opts.onHostLost) {
      Promise.resolve(this.opts.onHostLost(host, record)).catch((err: Error) => this.log.warn({ host, err: err.message }, 'scheduler: onHostLost hook failed'));
    }
  }

  private trigger(delayMs = this.opts.debounceMs ?? 100): void {
    if (this.stopped || !this.election.isLeader) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runSerial();
    }, delayMs);
  }

  private runSerial(): void {
    this.running = this.running.then(async () => {
      if (this.stopped || !this.election.isLeader) return;
      try {
        await this.run();
      } catch (err) {
        const e = err as Error & { code?: string; issues?: unknown };
        if (e.code === 'ECONFLICT') {
          this.log.info('scheduler: the topology changed under this controller; reloading and scheduling again');
          await this.target.reload().catch(() => undefined);
          this.trigger();
        } else this.log.error({ err: e.message, issues: e.issues }, 'scheduler: placement not stored');
      }
    });
  }

  /** One pass: place, compare, store. */
  private async run(): Promise<void> {
    const live = await this.agents.live();
    let state = this.target.schedulingState();
    const kv = await this.store.get(state.key);
    if (kv && kv.modRevision !== state.modRevision) {
      await this.target.reload();
      state = this.target.schedulingState();
    }
    if (state.doc === null || state.doc === undefined) return;
    const regs: Record<string, AgentRegistration> = {};
    const docHosts = (state.doc as { hosts?: unknown }).hosts;
    for (const [host, v] of [...live].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const reg = placementFields(v.record.registration);
      // An agent whose host entry would make the effective document invalid (registered
      // before the document listed its IP, say) is left out instead of stalling every placement.
      const issues = agentHostIssues(host, reg, docHosts, regs);
      if (issues.length) {
        const why = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
        if (this.leftOut.get(host) !== why) this.log.warn({ host, issues: why }, 'scheduler: agent left out of placement: its host entry is invalid');
        this.leftOut.set(host, why);
        continue;
      }
      this.leftOut.delete(host);
      regs[host] = reg;
    }
    if (Date.now() < this.graceUntil) Object.assign(regs, graceRegistrations(regs, state.placement, this.leftOut));
    const input = schedulingInput(state.doc, regs);
    if (!input) return; // the stored document does not parse: nothing to place by
    const t0 = performance.now();
    const r = place(input.units, input.hosts, currentOf(state.placement));
    const ms = performance.now() - t0;
    const next: PlacementRecord = { assignments: r.assignments, unplaceable: r.unplaceable, at: new Date().toISOString(), agents: regs };
    const prev = state.placement;
    const sameAgents = JSON.stringify(prev?.agents ?? {}) === JSON.stringify(regs);
    if (samePlacement(prev ?? EMPTY, next) && (sameAgents || (!prev && !input.units.length))) {
      this.reportLost(undefined);
      return;
    }
    const res = await this.target.applyPlacement(next, { placed: r.placed, moved: r.moved }, state.modRevision);
    this.log.info(
      {
        generation: res.generation,
        placeMs: Math.round(ms * 10) / 10,
        placed: r.placed.map((a) => `${a.id}@${a.host}`),
        moved: r.moved.map((m) => `${m.id}: ${m.from} -> ${m.to ?? '(none)'} (${m.reason})`),
        unplaceable: r.unplaceable.map((u) => `${u.id}: ${u.reason}`),
      },
      'scheduler: placement stored',
    );
    this.reportLost(res.generation);
  }

  /** Logs, per lost host, the time from its lease's expiry to the placement that moved its instances. */
  private reportLost(generation: number | undefined): void {
    for (const [host, at] of this.lost) {
      this.log.info({ host, ms: Date.now() - at, generation }, 'scheduler: rescheduled after lease expiry');
    }
    this.lost.clear();
  }
}
