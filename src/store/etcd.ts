/**
 * The Store interface over etcd v3, through the npm `etcd3` client's raw RPC layer
 * (its KV, Lease and Watch services). The raw watch stream is used instead of etcd3's
 * WatchBuilder because only the raw response carries `compact_revision`, which our
 * CompactedError must report. All keys live under a configurable prefix.
 *
 * Every failure is mapped to a typed StoreError; a dead etcd yields
 * StoreUnavailableError (unary calls carry a deadline) and watches reconnect on their
 * own, resuming at the revision after the last one delivered.
 */
import {
  Etcd3,
  EtcdLeaseInvalidError,
  type ICompare,
  type IDuplexStream,
  type IKeyValue,
  type IOptions,
  type IRequestOp,
  type IResponseOp,
  type IWatchRequest,
  type IWatchResponse,
} from 'etcd3';
import {
  CompactedError,
  FutureRevisionError,
  InvalidRequestError,
  LeaseNotFoundError,
  StoreClosedError,
  StoreError,
  StoreUnavailableError,
} from './errors.js';
import { checkRevision, checkTtl, validateTxn } from './mvcc.js';
import type {
  Compare,
  DeleteOptions,
  DeleteResult,
  KeyValue,
  LeaseGrant,
  PutOptions,
  PutResult,
  RangeOptions,
  RangeResult,
  Store,
  StoreStatus,
  TxnOp,
  TxnOpResult,
  TxnRequest,
  TxnResult,
  Watch,
  WatchEvent,
  WatchHandler,
  WatchOptions,
} from './types.js';

export interface EtcdStoreOptions {
  /** e.g. ['http://127.0.0.1:2379'] */
  endpoints: string[];
  /** Prefix for every key (default 'tenet/'). */
  prefix?: string;
  /** Deadline of each unary call, ms (default 5000). */
  timeoutMs?: number;
  /** First watch reconnect delay, ms (default 200, doubling up to 5 s). */
  watchRetryMs?: number;
}

/** Smallest key greater than every key starting with `p` (etcd's range_end for a prefix). */
export function prefixRangeEnd(p: Buffer): Buffer {
  const end = Buffer.from(p);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: to the end of the keyspace
}

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;
// async: etcd3's markFailed() relies on execute() returning a promise it can .catch().
const passThroughPolicy = { execute: async <T>(fn: () => T | Promise<T>): Promise<T> => fn() } as unknown as HostPolicy;

const compareTargets = { value: 'Value', version: 'Version', createRevision: 'Create', modRevision: 'Mod' } as const;
const compareResults = { '=': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

export class EtcdStore implements Store {
  readonly kind = 'etcd' as const;
  private readonly client: Etcd3;
  private readonly prefix: Buffer;
  private readonly endpoints: string[];
  private closed = false;
  private readonly watches = new Set<EtcdWatch>();
  readonly watchRetryMs: number;
  /** @internal how long EtcdWatch waits for etcd to confirm a new watch */
  readonly timeoutMs: number;

  constructor(opts: EtcdStoreOptions) {
    if (!Array.isArray(opts.endpoints) || opts.endpoints.length === 0) {
      throw new InvalidRequestError('etcd store needs at least one endpoint');
    }
    this.endpoints = opts.endpoints;
    // Non-empty: etcd has no empty key, and a prefix keeps Tenet's keys apart from others'.
    if (opts.prefix === '') throw new InvalidRequestError('etcd key prefix must not be empty');
    this.prefix = Buffer.from(opts.prefix ?? 'tenet/');
    const timeout = opts.timeoutMs ?? 5000;
    this.watchRetryMs = opts.watchRetryMs ?? 200;
    this.timeoutMs = timeout;
    this.client = new Etcd3({
      hosts: opts.endpoints,
      dialTimeout: timeout,
      // Unary calls get a deadline so a dead etcd fails fast; streams must not.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      // No per-host circuit breaker: its default keeps refusing calls for 5 s after three
      // failures, i.e. after etcd is back. Deadlines already bound a dead etcd's cost.
      // etcd3 only ever calls `execute` on this policy, so a pass-through object suffices
      // (cockatiel, which has the real type, is not our dependency).
      faultHandling: { host: () => passThroughPolicy },
    });
  }

  private k(key: string): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(key)]);
  }

  private span(key: string, prefix: boolean): { key: Buffer; range_end?: Buffer } {
    const k = this.k(key);
    return prefix ? { key: k, range_end: prefixRangeEnd(k) } : { key: k };
  }

  private kv(raw: IKeyValue): KeyValue {
    const out: KeyValue = {
      key: raw.key.subarray(this.prefix.length).toString(),
      value: raw.value ? raw.value.toString() : '',
      createRevision: Number(raw.create_revision),
      modRevision: Number(raw.mod_revision),
      version: Number(raw.version),
    };
    if (raw.lease && raw.lease !== '0') out.lease = String(raw.lease);
    return out;
  }

  private check(): void {
    if (this.closed) throw new StoreClosedError();
  }

  /** Maps any etcd3 / gRPC failure to a typed StoreError. */
  private async mapError(err: unknown, ctx: Record<string, unknown> = {}): Promise<StoreError> {
    if (err instanceof StoreError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    if (err instanceof EtcdLeaseInvalidError || /lease not found/i.test(msg)) {
      return new LeaseNotFoundError(String(ctx.lease ?? '?'));
    }
    if (/required revision has been compacted/.test(msg)) {
      const compactRev = await this.compactRevision().catch(() => 0);
      return new CompactedError(Number(ctx.revision ?? 0), compactRev);
    }
    if (/required revision is a future revision/.test(msg)) {
      const cur = await this.rawRevision().catch(() => 0);
      return new FutureRevisionError(Number(ctx.revision ?? 0), cur);
    }
    if (/duplicate key given in txn|too many operations|request is too large/.test(msg)) {
      return new InvalidRequestError(msg, ctx);
    }
    return new StoreUnavailableError(`etcd at ${this.endpoints.join(',')}: ${msg}`, ctx, err);
  }

  private async call<T>(fn: () => Promise<T>, ctx: Record<string, unknown> = {}): Promise<T> {
    this.check();
    try {
      return await fn();
    } catch (err) {
      throw await this.mapError(err, ctx);
    }
  }

  private async rawRevision(): Promise<number> {
    const r = await this.client.kv.range({ ...this.span('', false), limit: 1, keys_only: true });
    return Number(r.header.revision);
  }

  /**
   * etcd does not report its compact revision directly, but a read at revision r
   * fails with "compacted" exactly when r < compact revision: binary-search it
   * (about log2(revision) tiny keys-only reads). 0 when nothing was compacted.
   */
  async compactRevision(): Promise<number> {
    const readable = async (rev: number): Promise<boolean> => {
      try {
        await this.client.kv.range({ key: this.k('\0probe'), revision: rev, keys_only: true, count_only: true });
        return true;
      } catch (err) {
        if (/required revision has been compacted/.test(err instanceof Error ? err.message : '')) return false;
        throw err;
      }
    };
    if (await readable(1)) return 0;
    let lo = 2;
    let hi = await this.rawRevision();
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (await readable(mid)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  async get(key: string, opts: { revision?: number } = {}): Promise<KeyValue | undefined> {
    const r = await this.range(key, opts.revision !== undefined ? { revision: opts.revision } : {});
    return r.kvs[0];
  }

  async range(key: string, opts: RangeOptions = {}): Promise<RangeResult> {
    const prefix = opts.prefix === true;
    checkKeyArg(key, prefix);
    const revision = opts.revision ?? 0;
    checkRevision(revision);
    return this.call(
      async () => {
        const r = await this.client.kv.range({
          ...this.span(key, prefix),
          revision,
          limit: opts.limit ?? 0,
        });
        return { kvs: r.kvs.map((kv) => this.kv(kv)), revision: Number(r.header.revision), more: Boolean(r.more) };
      },
      { key, revision },
    );
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<PutResult> {
    checkKeyArg(key, false);
    if (typeof value !== 'string') throw new InvalidRequestError('value must be a string');
    return this.call(
      async () => {
        const r = await this.client.kv.put({
          key: this.k(key),
          value: Buffer.from(value),
          lease: opts.lease ?? 0,
          prev_kv: opts.prevKv === true,
        });
        const out: PutResult = { revision: Number(r.header.revision) };
        if (opts.prevKv && r.prev_kv) out.prevKv = this.kv(r.prev_kv);
        return out;
      },
      { key, lease: opts.lease },
    );
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<DeleteResult> {
    const prefix = opts.prefix === true;
    checkKeyArg(key, prefix);
    return this.call(
      async () => {
        const r = await this.client.kv.deleteRange({ ...this.span(key, prefix), prev_kv: opts.prevKv === true });
        return {
          revision: Number(r.header.revision),
          deleted: Number(r.deleted),
          prevKvs: opts.prevKv ? (r.prev_kvs ?? []).map((kv) => this.kv(kv)) : [],
        };
      },
      { key },
    );
  }

  private op(op: TxnOp): IRequestOp {
    switch (op.type) {
      case 'put':
        return {
          request_put: { key: this.k(op.key), value: Buffer.from(op.value), lease: op.lease ?? 0, prev_kv: op.prevKv === true },
        };
      case 'delete':
        return { request_delete_range: { ...this.span(op.key, op.prefix === true), prev_kv: op.prevKv === true } };
      case 'range':
        return { request_range: this.span(op.key, op.prefix === true) };
    }
  }

  private compare(c: Compare): ICompare {
    const out: ICompare = { key: this.k(c.key), target: compareTargets[c.target], result: compareResults[c.op] };
    if (c.target === 'value') out.value = Buffer.from(String(c.value));
    else if (c.target === 'version') out.version = Number(c.value);
    else if (c.target === 'createRevision') out.create_revision = Number(c.value);
    else out.mod_revision = Number(c.value);
    return out;
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    validateTxn(req);
    let lease: string | undefined;
    for (const o of [...req.success, ...(req.failure ?? [])]) if (o.type === 'put' && o.lease) lease = o.lease;
    return this.call(
      async () => {
        const r = await this.client.kv.txn({
          compare: req.compare.map((c) => this.compare(c)),
          success: req.success.map((o) => this.op(o)),
          failure: (req.failure ?? []).map((o) => this.op(o)),
        });
        const ops = r.succeeded ? req.success : (req.failure ?? []);
        const results: TxnOpResult[] = (r.responses ?? []).map((res: IResponseOp, i) => {
          const op = ops[i]!;
          if (op.type === 'range') return { type: 'range', kvs: (res.response_range?.kvs ?? []).map((kv) => this.kv(kv)) };
          if (op.type === 'put') {
            const prev = res.response_put?.prev_kv;
            return op.prevKv && prev ? { type: 'put', prevKv: this.kv(prev) } : { type: 'put' };
          }
          const d = res.response_delete_range;
          return {
            type: 'delete',
            deleted: Number(d?.deleted ?? 0),
            prevKvs: op.prevKv ? (d?.prev_kvs ?? []).map((kv) => this.kv(kv)) : [],
          };
        });
        return { succeeded: Boolean(r.succeeded), revision: Number(r.header.revision), results };
      },
      { lease },
    );
  }

  async grantLease(ttlSeconds: number): Promise<LeaseGrant> {
    checkTtl(ttlSeconds);
    return this.call(async () => {
      const r = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 });
      if (r.error) throw new StoreUnavailableError(`etcd refused the lease: ${r.error}`);
      return { id: String(r.ID), ttl: Number(r.TTL) };
    });
  }

  async keepAlive(id: string): Promise<number> {
    return this.call(
      async () => {
        const stream = await this.client.leaseClient.leaseKeepAlive();
        const ttl = await new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new StoreUnavailableError('etcd did not answer a keep-alive')), 5000);
          stream.on('data', (res) => {
            clearTimeout(timer);
            resolve(Number(res.TTL));
          });
          stream.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
          });
          stream.write({ ID: id });
        }).finally(() => stream.cancel());
        if (ttl <= 0) throw new LeaseNotFoundError(id);
        return ttl;
      },
      { lease: id },
    );
  }

  async revokeLease(id: string): Promise<void> {
    await this.call(
      async () => {
        await this.client.leaseClient.leaseRevoke({ ID: id });
      },
      { lease: id },
    );
  }

  async leaseTimeToLive(id: string): Promise<number> {
    return this.call(
      async () => {
        const r = await this.client.leaseClient.leaseTimeToLive({ ID: id });
        return Number(r.TTL) < 0 ? -1 : Number(r.TTL);
      },
      { lease: id },
    );
  }

  async watch(key: string, opts: WatchOptions, handler: WatchHandler): Promise<Watch> {
    this.check();
    checkKeyArg(key, opts.prefix === true);
    const start = opts.startRevision ?? 0;
    checkRevision(start, 'startRevision');
    const w = new EtcdWatch(this, this.span(key, opts.prefix === true), start, opts.prevKv === true, handler);
    this.watches.add(w);
    try {
      await w.start();
    } catch (err) {
      this.watches.delete(w);
      throw await this.mapError(err, { revision: start });
    }
    return {
      cancel: async () => {
        w.stop();
        this.watches.delete(w);
      },
    };
  }

  /** @internal used by EtcdWatch (error context) */
  get endpointList(): readonly string[] {
    return this.endpoints;
  }

  /** @internal used by EtcdWatch */
  openWatchStream(): Promise<IDuplexStream<IWatchRequest, IWatchResponse>> {
    return this.client.watchClient.watch();
  }

  /** @internal used by EtcdWatch */
  toEvent(ev: { type: string; kv: IKeyValue; prev_kv?: IKeyValue }, withPrev: boolean): WatchEvent {
    const out: WatchEvent = { type: ev.type === 'Delete' || ev.type === 'DELETE' ? 'delete' : 'put', kv: this.kv(ev.kv) };
    if (withPrev && ev.prev_kv) out.prevKv = this.kv(ev.prev_kv);
    return out;
  }

  async compact(revision: number): Promise<void> {
    checkRevision(revision);
    await this.call(
      async () => {
        await this.client.kv.compact({ revision, physical: true });
      },
      { revision },
    );
  }

  async status(): Promise<StoreStatus> {
    return this.call(async () => ({ revision: await this.rawRevision(), compactRevision: await this.compactRevision() }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watches) w.stop();
    this.watches.clear();
    this.client.close();
  }
}

function checkKeyArg(key: unknown, prefix: boolean): void {
  if (typeof key !== 'string') throw new InvalidRequestError('key must be a string', { key });
  if (key === '' && !prefix) throw new InvalidRequestError('key must not be empty');
}

/**
 * One etcd watch on its own gRPC stream. On a broken stream it reconnects with
 * backoff and resumes at lastRevision + 1, so the handler sees no gap and no repeat;
 * if that revision was compacted meanwhile, the handler gets CompactedError.
 */
class EtcdWatch {
  private stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  private nextRev: number;
  private stopped = false;
  private retryMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: EtcdStore,
    private readonly span: { key: Buffer; range_end?: Buffer },
    start: number,
    private readonly prevKv: boolean,
    private readonly handler: WatchHandler,
  ) {
    this.nextRev = start;
    this.retryMs = store.watchRetryMs;
  }

  /**
   * Resolves when etcd confirmed the watch; rejects (typed) if it refused it, or with
   * StoreUnavailableError if it did not confirm within the store's timeout (an etcd, or a
   * proxy, that accepts connections but never answers must not hang the caller).
   */
  start(): Promise<void> {
    return new Promise<void>((res, rej) => {
      let created = false;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        const stream = this.stream;
        this.stream = undefined;
        stream?.cancel();
        rej(new StoreUnavailableError(`etcd did not confirm a watch within ${this.store.timeoutMs} ms`, { endpoints: this.store.endpointList }));
      }, this.store.timeoutMs);
      const resolve = () => {
        clearTimeout(timer);
        res();
      };
      const reject = (err: unknown) => {
        clearTimeout(timer);
        rej(err);
      };
      this.store.openWatchStream().then(
        (stream) => {
          if (timedOut || this.stopped) {
            stream.on('error', () => undefined); // a cancelled stream reports CANCELLED
            stream.cancel();
            if (timedOut) return;
            resolve();
            return;
          }
          this.stream = stream;
          stream.on('data', (res: IWatchResponse) => {
            if (this.stopped || timedOut) return;
            if (res.canceled) {
              const compact = Number(res.compact_revision ?? 0);
              const err =
                compact > 0
                  ? new CompactedError(this.nextRev, compact)
                  : new StoreUnavailableError(`etcd canceled the watch: ${res.cancel_reason || 'no reason given'}`);
              this.stopped = true;
              stream.cancel();
              if (!created) reject(err);
              else this.fail(err);
              return;
            }
            if (res.created) {
              created = true;
              this.retryMs = this.store.watchRetryMs;
              if (this.nextRev === 0) this.nextRev = Number(res.header.revision) + 1;
              resolve();
            }
            const events = (res.events ?? []) as Array<{ type: string; kv: IKeyValue; prev_kv?: IKeyValue }>;
            if (events.length === 0) return;
            const out = events.map((e) => this.store.toEvent(e, this.prevKv));
            const last = out[out.length - 1]!.kv.modRevision;
            this.nextRev = last + 1;
            try {
              this.handler.onEvents(out, last);
            } catch {
              // a throwing handler must not kill the stream
            }
          });
          const broken = (err?: Error) => {
            if (this.stopped || timedOut || this.stream !== stream) return;
            this.stream = undefined;
            if (!created) {
              reject(err ?? new StoreUnavailableError('etcd watch stream ended'));
              return;
            }
            this.scheduleReconnect();
          };
          stream.on('error', (err: Error) => broken(err));
          stream.on('end', () => broken());
          const req: IWatchRequest = {
            create_request: { ...this.span, start_revision: this.nextRev, prev_kv: this.prevKv },
          };
          stream.write(req);
        },
        (err: unknown) => reject(err),
      );
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start().catch((err: unknown) => {
        if (this.stopped) return;
        if (err instanceof CompactedError) this.fail(err);
        else this.scheduleReconnect();
      });
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 5000);
  }

  private fail(err: Error): void {
    this.stopped = true;
    try {
      this.handler.onError?.(err);
    } catch {
      // ignore
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.stream?.cancel();
    this.stream = undefined;
  }
}
