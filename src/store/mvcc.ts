/**
 * Pure multi-version key-value state with etcd v3 semantics: no I/O, no clocks.
 * Every mutation is first expressed as a `WalRecord` and then applied through
 * `apply()`, so live execution and crash-recovery replay share one code path.
 */
import { CompactedError, FutureRevisionError, InvalidRequestError, LeaseNotFoundError } from './errors.js';
import type {
  Compare,
  KeyValue,
  RangeOptions,
  RangeResult,
  TxnOp,
  TxnOpResult,
  TxnRequest,
  TxnResult,
  WatchEvent,
} from './types.js';

/** One change at a revision, kept in the history window for watches and past reads. */
export interface HistoryEvent {
  rev: number;
  type: 'put' | 'delete';
  kv: KeyValue;
  prev?: KeyValue;
}

/** ['p', key, value, lease?] or ['d', key]. */
export type WalWrite = ['p', string, string, string?] | ['d', string];

export interface WalWriteRecord {
  t: 'w';
  r: number;
  e: WalWrite[];
}

export type WalRecord =
  | WalWriteRecord
  | { t: 'g'; id: string; ttl: number }
  | { t: 'x'; id: string; r: number }
  | { t: 'c'; r: number };

export interface LeaseState {
  id: string;
  ttl: number;
  keys: Set<string>;
}

export interface MvccSnapshot {
  rev: number;
  compactRev: number;
  nextLease: number;
  kvs: KeyValue[];
  leases: Array<[string, number]>;
  history: HistoryEvent[];
}

export const MAX_KEY_BYTES = 4096;
export const MAX_VALUE_BYTES = 1024 * 1024;
export const MAX_LEASE_TTL = 9_000_000_000;

function matches(key: string, target: string, prefix: boolean): boolean {
  return prefix ? key.startsWith(target) : key === target;
}

function checkKey(key: unknown, allowEmptyPrefix = false): asserts key is string {
  if (typeof key !== 'string') throw new InvalidRequestError('key must be a string', { key });
  if (key.length === 0 && !allowEmptyPrefix) throw new InvalidRequestError('key must not be empty');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new InvalidRequestError(`key longer than ${MAX_KEY_BYTES} bytes`);
}

function checkValue(value: unknown): asserts value is string {
  if (typeof value !== 'string') throw new InvalidRequestError('value must be a string');
  if (Buffer.byteLength(value) > MAX_VALUE_BYTES) {
    throw new InvalidRequestError(`value larger than ${MAX_VALUE_BYTES} bytes`);
  }
}

export function checkRevision(rev: unknown, what = 'revision'): asserts rev is number {
  if (typeof rev !== 'number' || !Number.isSafeInteger(rev) || rev < 0) {
    throw new InvalidRequestError(`${what} must be a non-negative integer`, { [what]: rev });
  }
}

export function checkTtl(ttl: unknown): asserts ttl is number {
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_LEASE_TTL) {
    throw new InvalidRequestError('lease TTL must be an integer number of seconds >= 1', { ttl });
  }
}

/** Validates a transaction's shape; shared by both stores so bad input is rejected the same way. */
export function validateTxn(req: TxnRequest): void {
  if (!req || !Array.isArray(req.compare) || !Array.isArray(req.success)) {
    throw new InvalidRequestError('txn needs compare and success arrays');
  }
  for (const c of req.compare) {
    checkKey(c?.key);
    if (!['value', 'version', 'createRevision', 'modRevision'].includes(c.target)) {
      throw new InvalidRequestError(`unknown compare target ${String(c.target)}`, { key: c.key });
    }
    if (!['=', '!=', '<', '>'].includes(c.op)) {
      throw new InvalidRequestError(`unknown compare op ${String(c.op)}`, { key: c.key });
    }
    if (c.target === 'value') {
      if (typeof c.value !== 'string') throw new InvalidRequestError('value compare needs a string', { key: c.key });
    } else checkRevision(c.value, c.target);
  }
  for (const branch of [req.success, req.failure ?? []]) {
    const puts = new Set<string>();
    for (const op of branch) {
      if (op?.type === 'put') {
        checkKey(op.key);
        checkValue(op.value);
        // etcd rejects a txn that writes the same key twice ("duplicate key given in txn request").
        if (puts.has(op.key)) throw new InvalidRequestError('duplicate key in one transaction', { key: op.key });
        puts.add(op.key);
      } else if (op?.type === 'delete' || op?.type === 'range') {
        checkKey(op.key, op.prefix === true);
      } else {
        throw new InvalidRequestError(`unknown txn op ${String((op as { type?: unknown })?.type)}`);
      }
    }
  }
}

function cmpValues(a: number | string, op: Compare['op'], b: number | string): boolean {
  switch (op) {
    case '=':
      return a === b;
    case '!=':
      return a !== b;
    case '<':
      return a < b;
    case '>':
      return a > b;
  }
}

export interface MvccOptions {
  /** Revisions of history kept for watches and past reads (at least this many, up to 1/8 more). */
  historyLimit?: number;
}

export class Mvcc {
  rev = 1; // etcd starts at revision 1
  compactRev = 0;
  nextLease = 1;
  readonly kvs = new Map<string, KeyValue>();
  readonly leases = new Map<string, LeaseState>();
  history: HistoryEvent[] = [];
  readonly historyLimit: number;
  private readonly historySlack: number;

  constructor(opts: MvccOptions = {}) {
    this.historyLimit = opts.historyLimit ?? 10_000;
    this.historySlack = Math.floor(this.historyLimit / 8);
  }

  // ---- reads ----

  range(key: string, opts: RangeOptions = {}): RangeResult {
    const prefix = opts.prefix === true;
    checkKey(key, prefix);
    const at = opts.revision ?? 0;
    checkRevision(at);
    if (at > this.rev) throw new FutureRevisionError(at, this.rev);
    if (at > 0 && at < this.compactRev) throw new CompactedError(at, this.compactRev);
    let kvs: KeyValue[];
    if (!prefix && (at === 0 || at === this.rev)) {
      const kv = this.kvs.get(key);
      kvs = kv ? [kv] : [];
    } else {
      const view = new Map<string, KeyValue>();
      for (const [k, kv] of this.kvs) if (matches(k, key, prefix)) view.set(k, kv);
      if (at > 0 && at < this.rev) {
        // Undo newer changes, newest first, using each event's previous value.
        for (let i = this.history.length - 1; i >= 0; i--) {
          const ev = this.history[i]!;
          if (ev.rev <= at) break;
          if (!matches(ev.kv.key, key, prefix)) continue;
          if (ev.prev) view.set(ev.kv.key, ev.prev);
          else view.delete(ev.kv.key);
        }
      }
      kvs = [...view.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    }
    const limit = opts.limit ?? 0;
    const more = limit > 0 && kvs.length > limit;
    if (more) kvs = kvs.slice(0, limit);
    return { kvs, revision: this.rev, more };
  }

  /** Events with revision >= from, for a watch resuming there. Throws CompactedError. */
  eventsSince(from: number, key: string, prefix: boolean, upTo = this.rev): HistoryEvent[] {
    if (from < this.compactRev) throw new CompactedError(from, this.compactRev);
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.history[mid]!.rev < from) lo = mid + 1;
      else hi = mid;
    }
    const out: HistoryEvent[] = [];
    for (let i = lo; i < this.history.length; i++) {
      const ev = this.history[i]!;
      if (ev.rev > upTo) break;
      if (matches(ev.kv.key, key, prefix)) out.push(ev);
    }
    return out;
  }

  // ---- planning: turn a request into a WAL record plus its result ----

  planPut(key: string, value: string, lease?: string): WalRecord {
    checkKey(key);
    checkValue(value);
    if (lease !== undefined && lease !== '0' && !this.leases.has(lease)) throw new LeaseNotFoundError(lease);
    const w: WalWrite = lease && lease !== '0' ? ['p', key, value, lease] : ['p', key, value];
    return { t: 'w', r: this.rev + 1, e: [w] };
  }

  /** Returns undefined when nothing would be deleted (etcd does not bump the revision then). */
  planDelete(key: string, prefix: boolean): WalWriteRecord | undefined {
    checkKey(key, prefix);
    const e: WalWrite[] = [];
    if (prefix) {
      for (const k of this.kvs.keys()) if (k.startsWith(key)) e.push(['d', k]);
      e.sort((a, b) => (a[1] < b[1] ? -1 : 1));
    } else if (this.kvs.has(key)) e.push(['d', key]);
    return e.length ? { t: 'w', r: this.rev + 1, e } : undefined;
  }

  evalCompare(c: Compare): boolean {
    const kv = this.kvs.get(c.key);
    switch (c.target) {
      case 'value':
        // etcd: a value compare on a missing key is false.
        return kv !== undefined && cmpValues(kv.value, c.op, c.value);
      case 'version':
        return cmpValues(kv?.version ?? 0, c.op, c.value);
      case 'createRevision':
        return cmpValues(kv?.createRevision ?? 0, c.op, c.value);
      case 'modRevision':
        return cmpValues(kv?.modRevision ?? 0, c.op, c.value);
    }
  }

  /**
   * Runs a transaction. Ops are applied in order (a range sees earlier puts of the
   * same txn); all writes share one new revision. Returns the record to log, if any.
   */
  txn(req: TxnRequest): { record?: WalRecord; result: TxnResult; events: HistoryEvent[] } {
    validateTxn(req);
    const succeeded = req.compare.every((c) => this.evalCompare(c));
    const ops: TxnOp[] = succeeded ? req.success : (req.failure ?? []);
    for (const op of ops) {
      if (op.type === 'put' && op.lease && op.lease !== '0' && !this.leases.has(op.lease)) {
        throw new LeaseNotFoundError(op.lease);
      }
    }
    const newRev = this.rev + 1;
    const writes: WalWrite[] = [];
    const results: TxnOpResult[] = [];
    const events: HistoryEvent[] = [];
    for (const op of ops) {
      if (op.type === 'range') {
        const prefix = op.prefix === true;
        const kvs = [...this.kvs.values()].filter((kv) => matches(kv.key, op.key, prefix));
        kvs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        results.push({ type: 'range', kvs });
      } else if (op.type === 'put') {
        const w: WalWrite = op.lease && op.lease !== '0' ? ['p', op.key, op.value, op.lease] : ['p', op.key, op.value];
        writes.push(w);
        const ev = this.applyWrite(w, newRev);
        events.push(ev);
        results.push(op.prevKv && ev.prev ? { type: 'put', prevKv: ev.prev } : { type: 'put' });
      } else {
        const rec = this.planDelete(op.key, op.prefix === true);
        const prevKvs: KeyValue[] = [];
        for (const w of rec?.e ?? []) {
          writes.push(w);
          const ev = this.applyWrite(w, newRev);
          events.push(ev);
          if (ev.prev) prevKvs.push(ev.prev);
        }
        results.push({ type: 'delete', deleted: prevKvs.length, prevKvs: op.prevKv ? prevKvs : [] });
      }
    }
    if (writes.length === 0) return { result: { succeeded, revision: this.rev, results }, events };
    this.finishWrite(newRev, events);
    return { record: { t: 'w', r: newRev, e: writes }, result: { succeeded, revision: newRev, results }, events };
  }

  planGrant(ttl: number): Extract<WalRecord, { t: 'g' }> {
    checkTtl(ttl);
    return { t: 'g', id: String(this.nextLease), ttl };
  }

  planRevoke(id: string): WalRecord {
    if (!this.leases.has(id)) throw new LeaseNotFoundError(id);
    return { t: 'x', id, r: this.rev + 1 };
  }

  planCompact(rev: number): WalRecord {
    checkRevision(rev);
    if (rev > this.rev) throw new FutureRevisionError(rev, this.rev);
    if (rev <= this.compactRev) throw new CompactedError(rev, this.compactRev);
    return { t: 'c', r: rev };
  }

  // ---- apply: the only place state changes ----

  /** Applies a record (live or replayed). Returns the change events it produced. */
  apply(rec: WalRecord): HistoryEvent[] {
    switch (rec.t) {
      case 'w': {
        const events = rec.e.map((w) => this.applyWrite(w, rec.r));
        this.finishWrite(rec.r, events);
        return events;
      }
      case 'g':
        this.leases.set(rec.id, { id: rec.id, ttl: rec.ttl, keys: new Set() });
        this.nextLease = Math.max(this.nextLease, Number(rec.id) + 1);
        return [];
      case 'x': {
        const lease = this.leases.get(rec.id);
        if (!lease) return [];
        const keys = [...lease.keys].sort();
        this.leases.delete(rec.id);
        if (keys.length === 0) return [];
        const events = keys.map((k) => this.applyWrite(['d', k], rec.r));
        this.finishWrite(rec.r, events);
        return events;
      }
      case 'c':
        this.compactTo(rec.r);
        return [];
    }
  }

  private applyWrite(w: WalWrite, rev: number): HistoryEvent {
    const key = w[1];
    const prev = this.kvs.get(key);
    if (prev?.lease) this.leases.get(prev.lease)?.keys.delete(key);
    if (w[0] === 'p') {
      const lease = w[3];
      const kv: KeyValue = {
        key,
        value: w[2],
        createRevision: prev ? prev.createRevision : rev,
        modRevision: rev,
        version: prev ? prev.version + 1 : 1,
      };
      if (lease) {
        kv.lease = lease;
        this.leases.get(lease)?.keys.add(key);
      }
      this.kvs.set(key, kv);
      const ev: HistoryEvent = { rev, type: 'put', kv };
      if (prev) ev.prev = prev;
      this.history.push(ev);
      return ev;
    }
    this.kvs.delete(key);
    const kv: KeyValue = { key, value: '', createRevision: 0, modRevision: rev, version: 0 };
    const ev: HistoryEvent = { rev, type: 'delete', kv };
    if (prev) ev.prev = prev;
    this.history.push(ev);
    return ev;
  }

  private finishWrite(rev: number, _events: HistoryEvent[]): void {
    this.rev = rev;
    // Bounded history: older revisions become "compacted" rather than silently lost. Done
    // in steps of historyLimit/8 so the trim (an array copy) is not paid on every write.
    if (this.rev - this.compactRev > this.historyLimit + this.historySlack) this.compactTo(this.rev - this.historyLimit);
  }

  private compactTo(rev: number): void {
    if (rev <= this.compactRev) return;
    this.compactRev = rev;
    let i = 0;
    while (i < this.history.length && this.history[i]!.rev < rev) i++;
    if (i > 0) this.history = this.history.slice(i);
  }

  // ---- snapshots ----

  snapshot(): MvccSnapshot {
    return {
      rev: this.rev,
      compactRev: this.compactRev,
      nextLease: this.nextLease,
      kvs: [...this.kvs.values()],
      leases: [...this.leases.values()].map((l) => [l.id, l.ttl]),
      history: this.history,
    };
  }

  static fromSnapshot(s: MvccSnapshot, opts: MvccOptions = {}): Mvcc {
    const m = new Mvcc(opts);
    m.rev = s.rev;
    m.compactRev = s.compactRev;
    m.nextLease = s.nextLease;
    for (const [id, ttl] of s.leases) m.leases.set(id, { id, ttl, keys: new Set() });
    for (const kv of s.kvs) {
      m.kvs.set(kv.key, kv);
      if (kv.lease) m.leases.get(kv.lease)?.keys.add(kv.key);
    }
    m.history = s.history;
    return m;
  }
}

export function toWatchEvent(ev: HistoryEvent, withPrev: boolean): WatchEvent {
  const out: WatchEvent = { type: ev.type, kv: ev.kv };
  if (withPrev && ev.prev) out.prevKv = ev.prev;
  return out;
}
