/**
 * OVSDB JSON-RPC 1.0 client (RFC 7047 §4). One socket, requests correlated by
 * id, notifications dispatched as events. Schemas are fetched on demand and
 * used to encode/decode values, so callers deal in plain objects.
 *
 * Lifecycle: `OvsdbClient.connect()` → usable; any transport failure, framing
 * error or keepalive timeout closes the client for good, rejects outstanding
 * requests with a typed error and emits 'close' (reconnecting is the Replica's
 * job). Writes issued in one tick go out in a single socket write.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import {
  OvsdbClosedError,
  OvsdbError,
  OvsdbProtocolError,
  OvsdbRpcError,
  OvsdbTimeoutError,
} from './errors.js';
import { DEFAULT_MAX_FRAME_BYTES, JsonFramer } from './framer.js';
import { type Operation, type OperationResult, decodeTransactResult, encodeOperation } from './ops.js';
import {
  type DatabaseSchema,
  type Row,
  type Value,
  decodeDiff,
  decodeRow,
  encodeValue,
  inColumn,
  rowDecoder,
  parseSchema,
  tableOf,
  columnOf,
} from './schema.js';
import type { Condition } from './ops.js';
import { type ConnectOptions, openSocket } from './transport.js';

export interface ClientOptions extends ConnectOptions {
  /** Default per-request timeout; 0 disables. Default 30 s. */
  requestTimeoutMs?: number;
  /** Send our own echo after this long without hearing from the server; 0 disables. Default 5 s. */
  echoIntervalMs?: number;
  /** Close with OvsdbTimeoutError when the server has been silent this long. Default 3 × echoIntervalMs. */
  inactivityTimeoutMs?: number;
  /** Largest accepted message. Default 64 MiB. */
  maxFrameBytes?: number;
}

export interface RequestOptions {
  timeoutMs?: number;
  /** Aborting sends a JSON-RPC `cancel` for the request (RFC 7047 §4.1.4). */
  signal?: AbortSignal;
}

/** A monitor request for one table (RFC 7047 §4.1.5). */
export interface MonitorRequest {
  columns?: readonly string[];
  select?: { initial?: boolean; insert?: boolean; delete?: boolean; modify?: boolean };
}
/** A monitor_cond request for one table: also a condition on the rows. */
export interface MonitorCondRequest extends MonitorRequest {
  where?: readonly Condition[];
}

/** `update` notification contents, decoded: table → uuid → old/new (RFC 7047 §4.1.6). */
export type TableUpdates = Record<string, Record<string, { old?: Row; new?: Row }>>;
/** `update2` notification contents, decoded (ovsdb-server(7) "update2"). */
export type RowUpdate2 =
  | { initial: Row }
  | { insert: Row }
  | { delete: null }
  | { modify: Record<string, Value> };
export type TableUpdates2 = Record<string, Record<string, RowUpdate2>>;

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

interface MonitorState {
  db: string;
  version: 1 | 2;
  /** Columns per table, to fill in defaults for update2 rows (which omit default-valued columns). */
  columns: Map<string, string[]>;
}

export interface ClientStats {
  /** Requests sent, by method. */
  requests: Record<string, number>;
  messagesIn: number;
}

export interface OvsdbClientEvents {
  update: [monitorId: unknown, updates: TableUpdates];
  update2: [monitorId: unknown, updates: TableUpdates2];
  locked: [lockId: string];
  stolen: [lockId: string];
  /** The connection is gone; `error` is why (undefined after close()). */
  close: [error: OvsdbError | undefined];
}

export class OvsdbClient extends EventEmitter<OvsdbClientEvents> {
  private readonly framer: JsonFramer;
  private readonly pending = new Map<number, Pending>();
  private readonly schemas = new Map<string, Promise<DatabaseSchema>>();
  private readonly monitors = new Map<string, MonitorState>();
  private nextId = 1;
  private out: string[] = [];
  private flushScheduled = false;
  private lastRx = Date.now();
  private keepalive: NodeJS.Timeout | undefined;
  private closedWith: OvsdbError | undefined;
  private closed = false;
  readonly stats: ClientStats = { requests: {}, messagesIn: 0 };
  readonly requestTimeoutMs: number;

  constructor(
    private readonly socket: net.Socket,
    opts: ClientOptions = {},
  ) {
    super();
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.framer = new JsonFramer(opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.shutdown(new OvsdbClosedError(`connection error: ${err.message}`, {}, { cause: err })));
    socket.on('close', () => this.shutdown(new OvsdbClosedError('connection closed by peer')));
    const echoMs = opts.echoIntervalMs ?? 5000;
    if (echoMs > 0) {
      const silentMs = opts.inactivityTimeoutMs ?? echoMs * 3;
      this.keepalive = setInterval(() => this.tick(echoMs, silentMs), Math.min(echoMs, silentMs));
      this.keepalive.unref();
    }
  }

  /** Connects to `tcp:IP:PORT`, `ssl:IP:PORT` or `unix:PATH`. */
  static async connect(target: string, opts: ClientOptions = {}): Promise<OvsdbClient> {
    return new OvsdbClient(await openSocket(target, opts), opts);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  // ------------------------------------------------------------ raw JSON-RPC

  /** Sends a request and resolves with its `result` (raw JSON). */
  request(method: string, params: unknown[], opts: RequestOptions = {}): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closedError());
    const id = this.nextId++;
    this.stats.requests[method] = (this.stats.requests[method] ?? 0) + 1;
    return new Promise((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
      const p: Pending = { method, resolve, reject, timer: undefined };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          // p.reject, not reject: it also detaches the abort listener.
          p.reject(new OvsdbTimeoutError(`${method} got no reply within ${timeoutMs} ms`, { method, id, timeoutMs }));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      const signal = opts.signal;
      if (signal) {
        // ovsdb-server drops a cancelled request without replying, so settle it here.
        const onAbort = () => {
          const q = this.pending.get(id);
          if (!q) return;
          this.pending.delete(id);
          if (q.timer) clearTimeout(q.timer);
          if (!this.closed) this.notify('cancel', [id]);
          q.reject(new OvsdbRpcError(method, 'canceled', { id }));
        };
        if (signal.aborted) queueMicrotask(onAbort);
        else {
          signal.addEventListener('abort', onAbort, { once: true });
          // Do not keep a listener on a long-lived signal after the request settles.
          p.resolve = (v) => {
            signal.removeEventListener('abort', onAbort);
            resolve(v);
          };
          p.reject = (e) => {
            signal.removeEventListener('abort', onAbort);
            reject(e);
          };
        }
      }
      this.send({ method, params, id });
    });
  }

  /** Sends a notification (a request with a null id; no reply). */
  notify(method: string, params: unknown[]): void {
    if (this.closed) throw this.closedError();
    this.send({ method, params, id: null });
  }

  private send(msg: unknown): void {
    this.out.push(JSON.stringify(msg));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed || this.out.length === 0) return;
    const data = this.out.length === 1 ? this.out[0]! : this.out.join('');
    this.out = [];
    this.socket.write(data);
  }

  // ------------------------------------------------------------ incoming

  private onData(chunk: Buffer): void {
    this.lastRx = Date.now();
    try {
      this.framer.push(chunk, (msg) => this.dispatch(msg));
    } catch (err) {
      this.shutdown(err instanceof OvsdbError ? err : new OvsdbProtocolError(`message handling failed: ${String(err)}`));
    }
  }

  private dispatch(msg: unknown): void {
    this.stats.messagesIn++;
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
      throw new OvsdbProtocolError('JSON-RPC message is not an object');
    }
    const m = msg as Record<string, unknown>;
    if (typeof m.method === 'string') {
      const params = Array.isArray(m.params) ? m.params : [];
      if (m.id === null || m.id === undefined) this.onNotification(m.method, params);
      else this.onRequest(m.method, params, m.id);
      return;
    }
    if (!('id' in m) || !('result' in m || 'error' in m)) {
      throw new OvsdbProtocolError('JSON-RPC message is neither request nor response', {
        preview: JSON.stringify(m).slice(0, 200),
      });
    }
    const p = typeof m.id === 'number' ? this.pending.get(m.id) : undefined;
    if (!p) return; // a reply after its timeout: harmless, drop it
    this.pending.delete(m.id as number);
    if (p.timer) clearTimeout(p.timer);
    if (m.error !== null && m.error !== undefined) p.reject(new OvsdbRpcError(p.method, m.error));
    else p.resolve(m.result);
  }

  private onRequest(method: string, params: unknown[], id: unknown): void {
    // The server's keepalive: answer echo with its own params (RFC 7047 §4.1.11).
    if (method === 'echo') this.send({ result: params, error: null, id });
    else this.send({ result: null, error: { error: 'unknown method', details: method }, id });
  }

  private onNotification(method: string, params: unknown[]): void {
    switch (method) {
      case 'update':
      case 'update2': {
        const key = JSON.stringify(params[0]);
        const mon = this.monitors.get(key);
        if (!mon) return; // a late update for a cancelled monitor
        const schema = this.cachedSchema(mon.db);
        if (!schema) return;
        if (method === 'update') this.emit('update', params[0], decodeUpdates(schema, params[1]));
        else this.emit('update2', params[0], decodeUpdates2(schema, params[1], mon.columns));
        return;
      }
      case 'locked':
      case 'stolen':
        this.emit(method, String(params[0]));
        return;
      default:
        return; // unknown notifications are ignored, as RFC 7047 allows extensions
    }
  }

  // ------------------------------------------------------------ lifecycle

  private tick(echoMs: number, silentMs: number): void {
    const idle = Date.now() - this.lastRx;
    if (idle >= silentMs) {
      this.shutdown(new OvsdbTimeoutError(`server silent for ${idle} ms`, { idleMs: idle, inactivityTimeoutMs: silentMs }));
      return;
    }
    if (idle >= echoMs) this.request('echo', ['keepalive'], { timeoutMs: 0 }).catch(() => undefined);
  }

  private closedError(): OvsdbError {
    return this.closedWith ?? new OvsdbClosedError('client is closed');
  }

  private shutdown(err: OvsdbError | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.closedWith = err ?? new OvsdbClosedError('client is closed');
    if (this.keepalive) clearInterval(this.keepalive);
    this.socket.destroy();
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(this.closedWith);
    }
    this.pending.clear();
    this.emit('close', err);
  }

  /** Closes the connection; outstanding requests reject with OvsdbClosedError. */
  close(): void {
    if (!this.closed && this.out.length) this.flush();
    this.shutdown(undefined);
  }

  // ------------------------------------------------------------ RFC 7047 methods

  async listDbs(): Promise<string[]> {
    const r = await this.request('list_dbs', []);
    if (!Array.isArray(r)) throw new OvsdbProtocolError('list_dbs result is not an array');
    return r as string[];
  }

  /** The schema of `db` (fetched once per connection, then cached). */
  getSchema(db: string): Promise<DatabaseSchema> {
    let p = this.schemas.get(db);
    if (!p) {
      p = this.request('get_schema', [db]).then(parseSchema);
      this.schemas.set(db, p);
      p.catch(() => this.schemas.delete(db));
    }
    return p;
  }

  private readonly resolvedSchemas = new Map<string, DatabaseSchema>();
  private cachedSchema(db: string): DatabaseSchema | undefined {
    return this.resolvedSchemas.get(db);
  }
  private async schemaFor(db: string): Promise<DatabaseSchema> {
    const s = this.resolvedSchemas.get(db);
    if (s) return s;
    const fetched = await this.getSchema(db);
    this.resolvedSchemas.set(db, fetched);
    return fetched;
  }

  /**
   * Runs a transaction. Resolves with one decoded result per operation, or
   * rejects with OvsdbTransactError naming the failing operation (nothing was
   * changed then: transactions are atomic), OvsdbSchemaError before sending
   * when a value does not fit the schema.
   */
  async transact(db: string, ops: readonly Operation[], opts: RequestOptions = {}): Promise<OperationResult[]> {
    const schema = this.resolvedSchemas.get(db) ?? (await this.schemaFor(db));
    const params: unknown[] = new Array(ops.length + 1);
    params[0] = db;
    for (let i = 0; i < ops.length; i++) params[i + 1] = encodeOperation(schema, ops[i]!, i);
    const result = await this.request('transact', params, opts);
    return decodeTransactResult(schema, ops, result);
  }

  /** RFC 7047 monitor: resolves with the initial contents; later changes arrive as 'update' events. */
  async monitor(db: string, monitorId: unknown, requests: Record<string, MonitorRequest>): Promise<TableUpdates> {
    const schema = await this.schemaFor(db);
    const wire: Record<string, unknown> = {};
    for (const [table, req] of Object.entries(requests)) {
      const t = tableOf(schema, table);
      const r: Record<string, unknown> = {};
      if (req.columns) {
        for (const c of req.columns) columnOf(t, c);
        r.columns = req.columns;
      }
      if (req.select) r.select = req.select;
      wire[table] = r;
    }
    const key = JSON.stringify(monitorId);
    this.monitors.set(key, { db, version: 1, columns: new Map() });
    try {
      return decodeUpdates(schema, await this.request('monitor', [db, monitorId, wire]));
    } catch (err) {
      this.monitors.delete(key);
      throw err;
    }
  }

  /** OVS's monitor_cond: like monitor, with row conditions; changes arrive as 'update2' events. */
  async monitorCond(db: string, monitorId: unknown, requests: Record<string, MonitorCondRequest>): Promise<TableUpdates2> {
    const schema = await this.schemaFor(db);
    const wire: Record<string, unknown> = {};
    const columns = new Map<string, string[]>();
    for (const [table, req] of Object.entries(requests)) {
      const t = tableOf(schema, table);
      const r: Record<string, unknown> = {};
      const cols = req.columns ? [...req.columns] : [...t.columns.keys()].filter((c) => c !== '_uuid' && c !== '_version');
      for (const c of cols) columnOf(t, c);
      if (req.columns) r.columns = req.columns;
      columns.set(table, cols);
      if (req.select) r.select = req.select;
      if (req.where) {
        r.where = req.where.map(([col, fn, v], i) => [col, fn, encodeValue(columnOf(t, col).type, v, `${table}.where[${i}]`)]);
      }
      wire[table] = [r];
    }
    const key = JSON.stringify(monitorId);
    this.monitors.set(key, { db, version: 2, columns });
    try {
      return decodeUpdates2(schema, await this.request('monitor_cond', [db, monitorId, wire]), columns);
    } catch (err) {
      this.monitors.delete(key);
      throw err;
    }
  }

  async monitorCancel(monitorId: unknown): Promise<void> {
    await this.request('monitor_cancel', [monitorId]);
    this.monitors.delete(JSON.stringify(monitorId));
  }

  /** Resolves with whether the lock was acquired at once; otherwise a 'locked' event follows later. */
  async lock(lockId: string): Promise<boolean> {
    const r = (await this.request('lock', [lockId])) as { locked?: unknown } | null;
    return r?.locked === true;
  }

  /** Takes the lock from its holder (who gets a 'stolen' notification). */
  async steal(lockId: string): Promise<boolean> {
    const r = (await this.request('steal', [lockId])) as { locked?: unknown } | null;
    return r?.locked === true;
  }

  async unlock(lockId: string): Promise<void> {
    await this.request('unlock', [lockId]);
  }

  /** Round-trips `params` through the server; resolves with what came back. */
  async echo(...params: unknown[]): Promise<unknown[]> {
    const r = await this.request('echo', params);
    if (!Array.isArray(r)) throw new OvsdbProtocolError('echo result is not an array');
    return r;
  }
}

function asObject(j: unknown, what: string): Record<string, unknown> {
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw new OvsdbProtocolError(`${what} is not an object`);
  return j as Record<string, unknown>;
}

export function decodeUpdates(schema: DatabaseSchema, j: unknown): TableUpdates {
  const out: TableUpdates = {};
  for (const [table, rows] of Object.entries(asObject(j, 'table-updates'))) {
    const t = tableOf(schema, table);
    const tu: Record<string, { old?: Row; new?: Row }> = {};
    for (const [uuid, ru] of Object.entries(asObject(rows, 'table-update'))) {
      const r = asObject(ru, 'row-update');
      const u: { old?: Row; new?: Row } = {};
      if (r.old) u.old = decodeRow(t, r.old);
      if (r.new) u.new = decodeRow(t, r.new);
      tu[uuid] = u;
    }
    out[table] = tu;
  }
  return out;
}

export function decodeUpdates2(schema: DatabaseSchema, j: unknown, columns: Map<string, string[]>): TableUpdates2 {
  const out: TableUpdates2 = {};
  for (const [table, rows] of Object.entries(asObject(j, 'table-updates2'))) {
    const t = tableOf(schema, table);
    const fill = columns.get(table);
    const decode = (j: unknown) => (fill ? rowDecoder(t, fill)(j) : decodeRow(t, j));
    const tu: Record<string, RowUpdate2> = {};
    for (const [uuid, ru] of Object.entries(asObject(rows, 'table-update2'))) {
      const r = asObject(ru, 'row-update2');
      if (r.initial !== undefined) tu[uuid] = { initial: decode(r.initial) };
      else if (r.insert !== undefined) tu[uuid] = { insert: decode(r.insert) };
      else if ('delete' in r) tu[uuid] = { delete: null };
      else if (r.modify !== undefined) {
        const d: Record<string, Value> = {};
        for (const [col, v] of Object.entries(asObject(r.modify, 'modify'))) {
          const c = t.columns.get(col);
          if (!c) continue;
          try {
            d[col] = decodeDiff(c.type, v);
          } catch (err) {
            throw inColumn(err, table, col);
          }
        }
        tu[uuid] = { modify: d };
      } else throw new OvsdbProtocolError(`row-update2 for ${table} ${uuid} has no known member`);
    }
    out[table] = tu;
  }
  return out;
}
