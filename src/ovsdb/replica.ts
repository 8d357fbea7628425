/**
 * A monitored local copy of chosen tables and columns of one database.
 *
 * - Uses monitor_cond (update2 notifications, compact diffs) when the server
 *   has it, else RFC 7047 monitor.
 * - Emits one 'change' event per row change (insert / modify / delete, with
 *   the old and new row) after the copy has been updated, so listeners can
 *   read a consistent replica.
 * - On connection loss it keeps the (stale) copy, reconnects with exponential
 *   backoff, re-issues the monitor and diffs the fresh snapshot against the
 *   copy, emitting only real changes: listeners never see a change twice, and
 *   never miss one (a row changed and changed back while we were away is,
 *   correctly, no change).
 */
import { EventEmitter } from 'node:events';
import { type ClientOptions, type MonitorCondRequest, OvsdbClient, type RowUpdate2, type TableUpdates, type TableUpdates2 } from './client.js';
import { OvsdbClosedError, OvsdbError, OvsdbRpcError } from './errors.js';
import type { Condition, Operation, OperationResult } from './ops.js';
import { type DatabaseSchema, type Row, type Value, applyDiff, columnOf, rowsEqual, tableOf } from './schema.js';
import type { RequestOptions } from './client.js';

export interface ReconnectOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
}

export interface ReplicaOptions extends ClientOptions {
  db: string;
  /** Tables to replicate, each with its columns ('all' for every column). */
  tables: Record<string, readonly string[] | 'all'>;
  /** Row conditions per table (only with monitor_cond). */
  where?: Record<string, readonly Condition[]>;
  /** 'auto' (default) tries monitor_cond, then falls back to monitor. */
  protocol?: 'auto' | 'monitor' | 'monitor_cond';
  reconnect?: ReconnectOptions;
}

export type ChangeKind = 'insert' | 'modify' | 'delete';
export interface ChangeEvent {
  table: string;
  kind: ChangeKind;
  uuid: string;
  /** The row before the change (modify, delete). */
  old: Row | undefined;
  /** The row after the change (insert, modify). */
  new: Row | undefined;
}

export interface ReplicaEvents {
  change: [ChangeEvent];
  /** A (re)synchronisation finished; `resync` is false for the first one. */
  sync: [{ resync: boolean; changes: number }];
  disconnected: [OvsdbError | undefined];
  /** A reconnect attempt failed; another follows after `delayMs`. */
  'reconnect-failed': [error: Error, delayMs: number];
}

const MONITOR_ID = 'tenet-replica';

export class Replica extends EventEmitter<ReplicaEvents> {
  private readonly data = new Map<string, Map<string, Row>>();
  private current: OvsdbClient | undefined;
  private schema: DatabaseSchema | undefined;
  private protocol: 'monitor' | 'monitor_cond' | undefined;
  private closed = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private synced = false;
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** Notifications that arrived while a snapshot was being applied. */
  private queued: (() => void)[] | undefined;
  private readonly columns = new Map<string, string[]>();

  constructor(
    readonly target: string,
    private readonly opts: ReplicaOptions,
  ) {
    super();
    for (const t of Object.keys(opts.tables)) this.data.set(t, new Map());
    if (opts.protocol && opts.protocol !== 'auto') this.protocol = opts.protocol;
  }

  /** Connects and loads the initial snapshot. Rejects if the first attempt fails. */
  async start(): Promise<void> {
    await this.connectAndSync(false);
  }

  /** The connected client, if any (for transactions on the same session). */
  get client(): OvsdbClient | undefined {
    return this.current && !this.current.isClosed ? this.current : undefined;
  }

  get isSynced(): boolean {
    return this.synced;
  }

  get databaseSchema(): DatabaseSchema | undefined {
    return this.schema;
  }

  /** Which monitor method is in use (after the first sync). */
  get monitorMethod(): 'monitor' | 'monitor_cond' | undefined {
    return this.protocol;
  }

  rows(table: string): ReadonlyMap<string, Row> {
    const t = this.data.get(table);
    if (!t) throw new OvsdbError('EOVSDB_REPLICA', `table ${table} is not replicated`, { table });
    return t;
  }

  get(table: string, uuid: string): Row | undefined {
    return this.rows(table).get(uuid);
  }

  /** Resolves once connected and synchronised (at once if already). */
  whenSynced(): Promise<void> {
    if (this.closed) return Promise.reject(new OvsdbClosedError('replica is closed'));
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Runs a transaction on the replica's own connection (its effects arrive as updates before the reply). */
  transact(ops: readonly Operation[], opts?: RequestOptions): Promise<OperationResult[]> {
    const c = this.client;
    if (!c || !this.synced) return Promise.reject(new OvsdbClosedError('replica is not connected', { target: this.target }));
    return c.transact(this.opts.db, ops, opts);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.current?.close();
    this.current = undefined;
    for (const w of this.waiters) w.reject(new OvsdbClosedError('replica is closed'));
    this.waiters = [];
  }

  // ------------------------------------------------------------------ internals

  private async connectAndSync(resync: boolean): Promise<void> {
    const client = await OvsdbClient.connect(this.target, this.opts);
    if (this.closed) {
      client.close();
      return;
    }
    this.current = client;
    // Remember why the connection closed if that happens before we watch for loss.
    let earlyClose: OvsdbError | undefined;
    client.once('close', (err) => (earlyClose = err));
    client.on('update', (id, u) => {
      if (id === MONITOR_ID) this.deliver(() => this.applyUpdates(u));
    });
    client.on('update2', (id, u) => {
      if (id === MONITOR_ID) this.deliver(() => this.applyUpdates2(u));
    });
    try {
      this.schema = await client.getSchema(this.opts.db);
      this.prepareColumns(this.schema);
      this.queued = [];
      const snapshot = await this.monitor(client);
      this.applySnapshot(snapshot, resync);
      const q = this.queued;
      this.queued = undefined;
      for (const f of q) f();
    } catch (err) {
      this.queued = undefined;
      this.current = undefined;
      client.close();
      throw err;
    }
    // Watch for loss only now: a failure during sync is reported by the rejection above.
    client.on('close', (err) => this.onClose(client, err));
    if (client.isClosed) {
      this.onClose(client, earlyClose ?? new OvsdbClosedError('connection closed right after sync'));
      return;
    }
    this.attempt = 0;
    this.synced = true;
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  private prepareColumns(schema: DatabaseSchema): void {
    for (const [table, cols] of Object.entries(this.opts.tables)) {
      const t = tableOf(schema, table);
      const list = cols === 'all' ? [...t.columns.keys()].filter((c) => c !== '_uuid' && c !== '_version') : [...cols];
      for (const c of list) columnOf(t, c);
      this.columns.set(table, list);
    }
  }

  /** Issues the monitor; returns the snapshot as table → uuid → row. */
  private async monitor(client: OvsdbClient): Promise<Map<string, Map<string, Row>>> {
    const snap = new Map<string, Map<string, Row>>();
    for (const t of this.data.keys()) snap.set(t, new Map());
    if (this.protocol !== 'monitor') {
      const req: Record<string, MonitorCondRequest> = {};
      for (const [t, cols] of this.columns) {
        const r: MonitorCondRequest = { columns: cols };
        const w = this.opts.where?.[t];
        if (w) r.where = w;
        req[t] = r;
      }
      try {
        const u = await client.monitorCond(this.opts.db, MONITOR_ID, req);
        this.protocol = 'monitor_cond';
        for (const [table, rows] of Object.entries(u)) {
          const m = snap.get(table)!;
          for (const [uuid, ru] of Object.entries(rows)) {
            const row = 'initial' in ru ? ru.initial : 'insert' in ru ? ru.insert : undefined;
            if (row) m.set(uuid, row);
          }
        }
        return snap;
      } catch (err) {
        if (!(err instanceof OvsdbRpcError) || this.protocol === 'monitor_cond') throw err;
        // The server does not know monitor_cond. Plain monitor has no row
        // conditions: replicating every row silently would be wrong.
        if (this.opts.where && Object.keys(this.opts.where).length) {
          throw new OvsdbError('EOVSDB_REPLICA', 'server lacks monitor_cond, so row conditions (where) cannot be applied', {
            target: this.target,
          });
        }
        this.protocol = 'monitor';
      }
    }
    const req: Record<string, { columns: string[] }> = {};
    for (const [t, cols] of this.columns) req[t] = { columns: cols };
    const u = await client.monitor(this.opts.db, MONITOR_ID, req);
    for (const [table, rows] of Object.entries(u)) {
      const m = snap.get(table)!;
      for (const [uuid, ru] of Object.entries(rows)) if (ru.new) m.set(uuid, ru.new);
    }
    return snap;
  }

  private deliver(f: () => void): void {
    if (this.queued) this.queued.push(f);
    else f();
  }

  /** Replaces the copy with `snap`, emitting the difference. */
  private applySnapshot(snap: Map<string, Map<string, Row>>, resync: boolean): void {
    const events: ChangeEvent[] = [];
    for (const [table, fresh] of snap) {
      const old = this.data.get(table)!;
      for (const [uuid, row] of old) {
        const n = fresh.get(uuid);
        if (!n) events.push({ table, kind: 'delete', uuid, old: row, new: undefined });
        else if (!rowsEqual(row, n)) events.push({ table, kind: 'modify', uuid, old: row, new: n });
        else fresh.set(uuid, row); // keep the old object: unchanged rows stay identical
      }
      for (const [uuid, row] of fresh) {
        if (!old.has(uuid)) events.push({ table, kind: 'insert', uuid, old: undefined, new: row });
      }
      this.data.set(table, fresh);
    }
    for (const e of events) this.emit('change', e);
    this.emit('sync', { resync, changes: events.length });
  }

  private applyUpdates(u: TableUpdates): void {
    for (const [table, rows] of Object.entries(u)) {
      const m = this.data.get(table);
      if (!m) continue;
      for (const [uuid, ru] of Object.entries(rows)) {
        const prev = m.get(uuid);
        if (!ru.new) {
          if (!prev) continue;
          m.delete(uuid);
          this.emit('change', { table, kind: 'delete', uuid, old: prev, new: undefined });
        } else if (!prev) {
          m.set(uuid, ru.new);
          this.emit('change', { table, kind: 'insert', uuid, old: undefined, new: ru.new });
        } else {
          const next = { ...prev, ...ru.new };
          m.set(uuid, next);
          this.emit('change', { table, kind: 'modify', uuid, old: prev, new: next });
        }
      }
    }
  }

  private applyUpdates2(u: TableUpdates2): void {
    const schema = this.schema!;
    for (const [table, rows] of Object.entries(u)) {
      const m = this.data.get(table);
      if (!m) continue;
      const t = tableOf(schema, table);
      for (const [uuid, ru] of Object.entries(rows) as [string, RowUpdate2][]) {
        const prev = m.get(uuid);
        if ('delete' in ru) {
          if (!prev) continue;
          m.delete(uuid);
          this.emit('change', { table, kind: 'delete', uuid, old: prev, new: undefined });
        } else if ('modify' in ru) {
          if (!prev) continue;
          const next: Row = { ...prev };
          for (const [col, diff] of Object.entries(ru.modify)) {
            const c = t.columns.get(col);
            if (c) next[col] = applyDiff(c, prev[col] as Value, diff);
          }
          m.set(uuid, next);
          this.emit('change', { table, kind: 'modify', uuid, old: prev, new: next });
        } else {
          const row = 'insert' in ru ? ru.insert : ru.initial;
          m.set(uuid, row);
          if (prev) this.emit('change', { table, kind: 'modify', uuid, old: prev, new: row });
          else this.emit('change', { table, kind: 'insert', uuid, old: undefined, new: row });
        }
      }
    }
  }

  private onClose(client: OvsdbClient, err: OvsdbError | undefined): void {
    if (client !== this.current) return;
    this.current = undefined;
    this.synced = false;
    this.queued = undefined;
    if (this.closed) return;
    this.emit('disconnected', err);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const r = this.opts.reconnect ?? {};
    const initial = r.initialDelayMs ?? 100;
    const max = r.maxDelayMs ?? 10_000;
    const base = Math.min(max, initial * (r.factor ?? 2) ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.25)); // jitter: hosts do not reconnect in lockstep
    this.attempt++;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      this.connectAndSync(true).catch((e: Error) => {
        if (this.closed) return;
        this.emit('reconnect-failed', e, delay);
        this.scheduleReconnect();
      });
    }, delay);
  }
}
