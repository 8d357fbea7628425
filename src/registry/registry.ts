/**
 * The service registry on top of a Store. Layout under `prefix` (default `registry/`):
 *   instances/<tenant>/<service>/<id>  -> InstanceRecord (JSON), on the instance's lease
 *   health/<tenant>/<service>/<id>     -> HealthRecord (JSON), on the same lease
 * A watch keeps an in-memory view that serves reads, blocking queries, watches and DNS.
 * Registration logic is transport-free: REST and the host agent's socket both call it.
 */
import { EventEmitter } from 'node:events';
import { LeaseNotFoundError, type KeyValue, type Store, type Watch, type WatchEvent } from '../store/index.js';
import { aggregate, runHttpCheck, runTcpCheck } from './health.js';
import type { CheckSpec, CheckState, HealthRecord, HealthStatus, Instance, InstanceRecord, RegistryEvent } from './types.js';
import { NotFoundError, RegistryError, ValidationError, checkNames, parseRegistration } from './validate.js';

export interface RegistryOptions {
  store: Store;
  prefix?: string;
  /** Known tenants: a list or a predicate. Undefined accepts every well-formed tenant name. */
  tenants?: string[] | ((tenant: string) => boolean | Promise<boolean>);
  /** Run health checks and critical-deregistration in this process (default true). */
  runChecks?: boolean;
  /** Sweep period for TTL checks and critical deregistration, ms (default 200). */
  sweepMs?: number;
}

export interface Filter {
  tenant?: string;
  service?: string;
  /** Only instances that are not critical. */
  passing?: boolean;
}

interface Entry {
  record?: InstanceRecord;
  health?: HealthRecord;
}

interface Runner {
  lease: string;
  timers: NodeJS.Timeout[];
}

const sep = '/';

export class Registry extends EventEmitter {
  private readonly store: Store;
  private readonly prefix: string;
  private readonly entries = new Map<string, Entry>();
  /** tenant/service -> entry keys, so DNS and scoped lists do not scan every instance. */
  private readonly byService = new Map<string, Set<string>>();
  private readonly scopeRev = new Map<string, number>();
  private baseRev = 1;
  private rev = 1;
  private watch: Watch | undefined;
  private readonly runners = new Map<string, Runner>();
  private readonly healthQueue = new Map<string, Promise<void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Last watch failure (e.g. compaction); the view reloads itself. */
  lastError: Error | undefined;

  private constructor(private readonly opts: RegistryOptions) {
    super();
    this.setMaxListeners(0);
    this.store = opts.store;
    this.prefix = opts.prefix ?? 'registry/';
  }

  static async start(opts: RegistryOptions): Promise<Registry> {
    const r = new Registry(opts);
    await r.load();
    if (opts.runChecks !== false) {
      r.sweepTimer = setInterval(() => r.sweep(), opts.sweepMs ?? 200);
      r.sweepTimer.unref();
    }
    return r;
  }

  // ---- view maintenance ----

  private async load(): Promise<void> {
    const previous = this.watch;
    this.watch = undefined;
    await previous?.cancel().catch(() => undefined);
    const res = await this.store.range(this.prefix, { prefix: true });
    this.entries.clear();
    this.byService.clear();
    this.baseRev = res.revision;
    this.rev = res.revision;
    for (const kv of res.kvs) this.applyKv(kv, false);
    for (const key of this.entries.keys()) this.syncRunner(key);
    this.watch = await this.store.watch(
      this.prefix,
      { prefix: true, startRevision: res.revision + 1 },
      {
        onEvents: (events) => this.onEvents(events),
        onError: (err) => {
          // Fell out of the history window (or the store gave up): reload from scratch.
          this.lastError = err;
          this.reload();
        },
      },
    );
  }

  /** Reloads the view, retrying every second while the store is unreachable. */
  private reload(): void {
    if (this.closed) return;
    setTimeout(() => {
      if (this.closed) return;
      this.load().catch((e: unknown) => {
        this.lastError = e as Error;
        this.reload();
      });
    }, 1000).unref();
  }

  private parseKey(key: string): { kind: 'instances' | 'health'; tenant: string; service: string; id: string } | undefined {
    const parts = key.slice(this.prefix.length).split(sep);
    if (parts.length !== 4 || (parts[0] !== 'instances' && parts[0] !== 'health')) return undefined;
    return { kind: parts[0], tenant: parts[1]!, service: parts[2]!, id: parts[3]! };
  }

  private applyKv(kv: KeyValue, deleted: boolean): { ek: string; before: boolean; after: boolean } | undefined {
    const p = this.parseKey(kv.key);
    if (!p) return undefined;
    const ek = [p.tenant, p.service, p.id].join(sep);
    const e = this.entries.get(ek) ?? {};
    const before = e.record !== undefined;
    try {
      if (p.kind === 'instances') {
        if (deleted) delete e.record;
        else e.record = JSON.parse(kv.value) as InstanceRecord;
      } else if (deleted) delete e.health;
      else e.health = JSON.parse(kv.value) as HealthRecord;
    } catch {
      return undefined; // not ours / corrupt: ignore rather than crash the view
    }
    const sk = `${p.tenant}${sep}${p.service}`;
    if (e.record || e.health) {
      this.entries.set(ek, e);
      let set = this.byService.get(sk);
      if (!set) this.byService.set(sk, (set = new Set()));
      set.add(ek);
    } else {
      this.entries.delete(ek);
      const set = this.byService.get(sk);
      set?.delete(ek);
      if (set?.size === 0) this.byService.delete(sk);
    }
    const rev = kv.modRevision;
    for (const s of [p.tenant, `${p.tenant}${sep}${p.service}`, '']) this.scopeRev.set(s, Math.max(this.scopeRev.get(s) ?? 0, rev));
    return { ek, before, after: e.record !== undefined };
  }

  /** Applies a batch; emits one event per instance per revision (a revoke deletes both keys at once). */
  private onEvents(events: WatchEvent[]): void {
    let i = 0;
    while (i < events.length) {
      const rev = events[i]!.kv.modRevision;
      const touched = new Map<string, { before: boolean; after: boolean }>();
      for (; i < events.length && events[i]!.kv.modRevision === rev; i++) {
        const ev = events[i]!;
        const r = this.applyKv(ev.kv, ev.type === 'delete');
        if (!r) continue;
        const prev = touched.get(r.ek);
        touched.set(r.ek, { before: prev ? prev.before : r.before, after: r.after });
      }
      this.rev = Math.max(this.rev, rev);
      for (const [ek, { before, after }] of touched) {
        this.syncRunner(ek);
        if (!before && !after) continue;
        const [tenant, service, id] = ek.split(sep) as [string, string, string];
        const type: RegistryEvent['type'] = !after ? 'deregister' : !before ? 'register' : 'update';
        const out: RegistryEvent = { type, revision: rev, tenant, service, id };
        const inst = this.instance(ek);
        if (inst) out.instance = inst;
        this.emit('change', out);
      }
    }
  }

  private instance(ek: string): Instance | undefined {
    const e = this.entries.get(ek);
    if (!e?.record) return undefined;
    const checkStates = e.health?.checks ?? {};
    const status: HealthStatus = e.health ? e.health.status : e.record.checks.length ? 'critical' : 'passing';
    return { ...e.record, status, checkStates };
  }

  // ---- queries ----

  private matches(ek: string, f: Filter): boolean {
    const [t, s] = ek.split(sep);
    return (!f.tenant || f.tenant === t) && (!f.service || f.service === s);
  }

  /** Blocking-query index of a scope: the last revision that changed anything in it. */
  indexFor(f: Filter): number {
    const scope = f.tenant ? (f.service ? `${f.tenant}${sep}${f.service}` : f.tenant) : '';
    return Math.max(this.scopeRev.get(scope) ?? 0, this.baseRev);
  }

  private keysFor(f: Filter): Iterable<string> {
    if (f.tenant && f.service) return this.byService.get(`${f.tenant}${sep}${f.service}`) ?? [];
    return this.entries.keys();
  }

  list(f: Filter = {}): { index: number; instances: Instance[] } {
    const instances: Instance[] = [];
    for (const ek of this.keysFor(f)) {
      if (!this.matches(ek, f)) continue;
      const inst = this.instance(ek);
      if (inst && (!f.passing || inst.status !== 'critical')) instances.push(inst);
    }
    instances.sort((a, b) =>
      a.tenant !== b.tenant ? (a.tenant < b.tenant ? -1 : 1) : a.service !== b.service ? (a.service < b.service ? -1 : 1) : a.id < b.id ? -1 : 1,
    );
    return { index: this.indexFor(f), instances };
  }

  /** For DNS: does the service exist at all, and which instances are healthy (passing or warning)? */
  lookup(tenant: string, service: string): { known: boolean; healthy: Instance[] } {
    let known = false;
    const healthy: Instance[] = [];
    for (const ek of this.keysFor({ tenant, service })) {
      const inst = this.instance(ek);
      if (!inst) continue;
      known = true;
      if (inst.status !== 'critical') healthy.push(inst);
    }
    return { known, healthy };
  }

  get(tenant: string, service: string, id: string): Instance | undefined {
    return this.instance([tenant, service, id].join(sep));
  }

  /**
   * Consul-style blocking query: resolves at once if the scope's index is past `index`,
   * else on the first change in the scope or after `waitMs`, whichever comes first.
   */
  waitForChange(f: Filter, index: number, waitMs: number, signal?: AbortSignal): Promise<void> {
    if (this.indexFor(f) > index || waitMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off('change', onChange);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const onChange = (ev: RegistryEvent) => {
        if ((!f.tenant || f.tenant === ev.tenant) && (!f.service || f.service === ev.service) && ev.revision > index) done();
      };
      const timer = setTimeout(done, waitMs);
      this.on('change', onChange);
      signal?.addEventListener('abort', done);
    });
  }

  /** Calls fn for each change in the filter's scope; returns an unsubscribe function. */
  subscribe(f: Filter, fn: (ev: RegistryEvent) => void): () => void {
    const h = (ev: RegistryEvent) => {
      if ((!f.tenant || f.tenant === ev.tenant) && (!f.service || f.service === ev.service)) fn(ev);
    };
    this.on('change', h);
    return () => this.off('change', h);
  }

  // ---- writes (transport-independent) ----

  private key(kind: 'instances' | 'health', tenant: string, service: string, id: string): string {
    return `${this.prefix}${kind}/${tenant}/${service}/${id}`;
  }

  private async checkTenant(tenant: string): Promise<void> {
    const t = this.opts.tenants;
    if (t === undefined) return;
    const ok = Array.isArray(t) ? t.includes(tenant) : await t(tenant);
    if (!ok) throw new ValidationError('tenant', `unknown tenant ${JSON.stringify(tenant)}`);
  }

  /** Registers (or replaces) an instance. Throws ValidationError naming the bad field. */
  async register(tenant: unknown, service: unknown, id: unknown, body: unknown): Promise<Instance> {
    const reg = parseRegistration(tenant, service, id, body);
    await this.checkTenant(reg.tenant);
    const lease = await this.store.grantLease(reg.ttl);
    const old = this.entries.get([reg.tenant, reg.service, reg.id].join(sep))?.record;
    const now = Date.now();
    const record: InstanceRecord = { ...reg, lease: lease.id, registeredAt: new Date(now).toISOString() };
    const checks: Record<string, CheckState> = {};
    for (const c of reg.checks) checks[c.id] = { status: 'critical', output: 'not run yet', updatedAt: now };
    const health: HealthRecord = { status: aggregate(Object.values(checks)), checks };
    if (health.status === 'critical') health.criticalSince = now;
    const res = await this.store.txn({
      compare: [],
      success: [
        { type: 'put', key: this.key('instances', reg.tenant, reg.service, reg.id), value: JSON.stringify(record), lease: lease.id },
        { type: 'put', key: this.key('health', reg.tenant, reg.service, reg.id), value: JSON.stringify(health), lease: lease.id },
      ],
    });
    // The keys moved to the new lease; the old one now holds nothing of this instance.
    if (old && old.lease !== lease.id) await this.store.revokeLease(old.lease).catch(() => undefined);
    await this.caughtUp(res.revision);
    return this.get(reg.tenant, reg.service, reg.id) ?? { ...record, status: health.status, checkStates: checks };
  }

  /** Waits until the view has applied `rev`, so a caller reads its own write. */
  private async caughtUp(rev: number): Promise<void> {
    const deadline = Date.now() + 5000;
    while (this.rev < rev && Date.now() < deadline && !this.closed) await new Promise((r) => setTimeout(r, 5));
  }

  private requireInstance(tenant: unknown, service: unknown, id: unknown): InstanceRecord {
    checkNames({ tenant, service, id });
    const rec = this.entries.get([tenant, service, id].join(sep))?.record;
    if (!rec) throw new NotFoundError(`instance ${String(tenant)}/${String(service)}/${String(id)}`, { tenant, service, id });
    return rec;
  }

  async deregister(tenant: unknown, service: unknown, id: unknown): Promise<void> {
    const rec = this.requireInstance(tenant, service, id);
    try {
      await this.store.revokeLease(rec.lease); // deletes both keys in one revision
    } catch (err) {
      if (!(err instanceof LeaseNotFoundError)) throw err;
      await this.store.delete(this.key('instances', rec.tenant, rec.service, rec.id));
      await this.store.delete(this.key('health', rec.tenant, rec.service, rec.id));
    }
    const st = await this.store.status();
    await this.caughtUp(st.revision);
  }

  /**
   * Deregisters every instance `pred` selects (e.g. `meta.host` of a host whose agent
   * is gone, with its containers); returns them. One that went away meanwhile is skipped.
   */
  async deregisterWhere(pred: (inst: Instance) => boolean): Promise<Instance[]> {
    const gone: Instance[] = [];
    for (const inst of this.list().instances) {
      if (!pred(inst)) continue;
      try {
        await this.deregister(inst.tenant, inst.service, inst.id);
        gone.push(inst);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    return gone;
  }

  /** Renews the instance lease; returns its TTL in seconds. */
  async renew(tenant: unknown, service: unknown, id: unknown): Promise<number> {
    const rec = this.requireInstance(tenant, service, id);
    try {
      return await this.store.keepAlive(rec.lease);
    } catch (err) {
      if (err instanceof LeaseNotFoundError) throw new NotFoundError(`instance ${rec.tenant}/${rec.service}/${rec.id}`);
      throw err;
    }
  }

  /** Reports a TTL check's state (Consul's pass/warn/fail). */
  async updateTtlCheck(tenant: unknown, service: unknown, id: unknown, checkId: string, status: HealthStatus, output = ''): Promise<Instance> {
    const rec = this.requireInstance(tenant, service, id);
    const spec = rec.checks.find((c) => c.id === checkId);
    if (!spec) throw new NotFoundError(`check ${checkId}`, { checkId });
    if (spec.type !== 'ttl') throw new ValidationError('check', `check ${checkId} is a ${spec.type} check, not a TTL check`);
    await this.setCheck(rec, checkId, status, output || `TTL check set ${status}`, true);
    return this.get(rec.tenant, rec.service, rec.id)!;
  }

  // ---- health checking ----

  /** Writes one check result; serialized per instance, CAS on the health key, only when something changed. */
  private setCheck(rec: InstanceRecord, checkId: string, status: HealthStatus, output: string, touch = false): Promise<void> {
    const ek = [rec.tenant, rec.service, rec.id].join(sep);
    const prev = this.healthQueue.get(ek) ?? Promise.resolve();
    const next = prev.then(async () => {
      const hkey = this.key('health', rec.tenant, rec.service, rec.id);
      for (let attempt = 0; attempt < 5; attempt++) {
        const cur = await this.store.get(hkey);
        if (!cur) return; // deregistered meanwhile
        const h = JSON.parse(cur.value) as HealthRecord;
        const old = h.checks[checkId];
        // Unchanged results are not rewritten; a new reason with the same status is (ECONNRESET racing a close, then ECONNREFUSED).
        if (old && old.status === status && old.output === output && !touch) return;
        const now = Date.now();
        h.checks[checkId] = { status, output, updatedAt: now };
        const agg = aggregate(Object.values(h.checks));
        if (agg === 'critical') h.criticalSince = h.status === 'critical' && h.criticalSince ? h.criticalSince : now;
        else delete h.criticalSince;
        h.status = agg;
        const r = await this.store.txn({
          compare: [{ key: hkey, target: 'modRevision', op: '=', value: cur.modRevision }],
          success: [{ type: 'put', key: hkey, value: JSON.stringify(h), lease: rec.lease }],
        });
        if (r.succeeded) {
          await this.caughtUp(r.revision);
          return;
        }
      }
    });
    const settled = next.catch((err: unknown) => {
      this.lastError = err as Error; // lease gone or store down: the next run retries
    });
    this.healthQueue.set(ek, settled);
    void settled.then(() => {
      if (this.healthQueue.get(ek) === settled) this.healthQueue.delete(ek);
    });
    return next.catch((err: unknown) => {
      if (err instanceof LeaseNotFoundError) throw new NotFoundError(`instance ${ek}`);
      throw err;
    });
  }

  private syncRunner(ek: string): void {
    if (this.opts.runChecks === false || this.closed) return;
    const rec = this.entries.get(ek)?.record;
    const cur = this.runners.get(ek);
    if (cur && (!rec || rec.lease !== cur.lease)) {
      for (const t of cur.timers) clearInterval(t);
      this.runners.delete(ek);
    }
    if (!rec || this.runners.has(ek)) return;
    const runner: Runner = { lease: rec.lease, timers: [] };
    this.runners.set(ek, runner);
    for (const c of rec.checks) {
      if (c.type === 'ttl') continue; // driven by updates; expiry handled by sweep()
      // Never two runs of one check at once: a slow check or a slow store write skips
      // the ticks that fall while it is still in flight instead of piling up.
      let inFlight = false;
      const run = () => {
        if (inFlight) return;
        inFlight = true;
        this.runCheck(rec, c)
          .catch((err: unknown) => (this.lastError = err as Error))
          .finally(() => (inFlight = false));
      };
      run();
      const timer = setInterval(run, c.intervalMs);
      timer.unref();
      runner.timers.push(timer);
    }
  }

  private async runCheck(rec: InstanceRecord, c: CheckSpec): Promise<void> {
    const res =
      c.type === 'http' ? await runHttpCheck(c.url, c.timeoutMs) : c.type === 'tcp' ? await runTcpCheck(c.target, c.timeoutMs) : undefined;
    if (!res || this.closed) return;
    const ek = [rec.tenant, rec.service, rec.id].join(sep);
    if (this.runners.get(ek)?.lease !== rec.lease) return; // re-registered meanwhile
    await this.setCheck(rec, c.id, res.status, res.output).catch(() => undefined);
  }

  /** TTL checks that were not updated in time go critical; long-critical instances are deregistered. */
  private sweep(): void {
    if (this.closed) return;
    const now = Date.now();
    for (const [ek, e] of this.entries) {
      const rec = e.record;
      if (!rec || !e.health) continue;
      for (const c of rec.checks) {
        if (c.type !== 'ttl') continue;
        const st = e.health.checks[c.id];
        if (st && st.status !== 'critical' && now - st.updatedAt > c.ttlMs) {
          void this.setCheck(rec, c.id, 'critical', `TTL of ${c.ttlMs} ms expired`).catch(() => undefined);
        }
      }
      const since = e.health.criticalSince;
      if (e.health.status === 'critical' && since && rec.deregisterCriticalAfterMs > 0 && now - since >= rec.deregisterCriticalAfterMs) {
        if (!this.healthQueue.has(`dereg:${ek}`)) {
          const p = this.deregister(rec.tenant, rec.service, rec.id)
            .catch(() => undefined)
            .finally(() => this.healthQueue.delete(`dereg:${ek}`));
          this.healthQueue.set(`dereg:${ek}`, p);
        }
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const r of this.runners.values()) for (const t of r.timers) clearInterval(t);
    this.runners.clear();
    await this.watch?.cancel();
    await Promise.allSettled([...this.healthQueue.values()]);
    this.removeAllListeners();
  }
}

export { RegistryError };
