/**
 * Embedded store: the pure Mvcc state plus a durable write-ahead log and snapshots
 * in one data directory.
 *
 * Durability: every mutation is framed into the log; writes that arrive while an
 * fsync is in flight are gathered into the next batch and share one synchronous write
 * (group commit): the segment is opened O_DSYNC, so one writev returns only once the
 * data is on disk, like write + fdatasync but in one trip through libuv's thread pool. A write's promise resolves, and its watch events are delivered,
 * only after the batch holding it is on disk. Reads compute their answer, then wait
 * until everything they may have observed is durable, so no caller ever sees state
 * that a crash could take back.
 *
 * Leases: grants and revocations (including expiry) are logged; keep-alives are not.
 * After a restart every surviving lease gets its full TTL again, counted from the
 * moment of recovery (etcd does the same on leader change): a lease never expires
 * earlier than its holder could expect, and a dead holder's keys go one TTL later.
 */
import { constants as fsConstants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CorruptDataError, InvalidRequestError, LeaseNotFoundError, StoreClosedError, StoreLockedError, StoreUnavailableError } from './errors.js';
import { Mvcc, checkRevision, toWatchEvent, type HistoryEvent, type MvccSnapshot, type WalRecord } from './mvcc.js';
import type {
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
  TxnRequest,
  TxnResult,
  Watch,
  WatchHandler,
  WatchOptions,
} from './types.js';
import { decodeFrames, encodeFrame, parseName, segmentName, snapshotName } from './wal.js';
import { isAlive } from '../util/process.js';

export interface EmbeddedStoreOptions {
  /** Data directory; created if missing. */
  dir: string;
  /** Revisions of history kept for watches and past reads (default 10,000). */
  historyLimit?: number;
  /** Take a snapshot and drop old log segments after this many records (default 50,000). */
  snapshotEvery?: number;
  /** How often lease expiry is checked, ms (default 100). */
  leaseCheckMs?: number;
}

export interface RecoveryInfo {
  snapshotLsn: number;
  replayedRecords: number;
  /** Bytes cut off the end of the last segment because of a torn or corrupt tail. */
  truncatedBytes: number;
  tornReason?: string;
}

interface Batch {
  bufs: Buffer[];
  lastLsn: number;
  events: HistoryEvent[];
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface LocalWatcher {
  key: string;
  prefix: boolean;
  prevKv: boolean;
  nextRev: number;
  handler: WatchHandler;
  active: boolean;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // callers get the rejection; avoid unhandled noise for batches nobody awaits
  return { bufs: [], lastLsn: 0, events: [], promise, resolve, reject };
}

export class EmbeddedStore implements Store {
  readonly kind = 'embedded' as const;
  private mvcc: Mvcc;
  private lsn: number;
  private durableLsn: number;
  private deliveredRev: number;
  private fd: FileHandle;
  private batch: Batch = newBatch();
  private inFlight: Batch | undefined;
  private flushing = false;
  private failed: Error | undefined;
  private closed = false;
  private readonly leaseExpiry = new Map<string, number>();
  private readonly watchers = new Set<LocalWatcher>();
  private readonly leaseTimer: NodeJS.Timeout;
  private recordsSinceSnapshot = 0;
  private snapshotting: Promise<void> | undefined;
  private readonly snapshotEvery: number;
  /** Synchronous log writes done (one per group-commit batch), for tests and benchmarks. */
  fsyncs = 0;

  private constructor(
    private readonly dir: string,
    state: { mvcc: Mvcc; lsn: number; fd: FileHandle },
    opts: EmbeddedStoreOptions,
    readonly recovery: RecoveryInfo,
  ) {
    this.mvcc = state.mvcc;
    this.lsn = state.lsn;
    this.durableLsn = state.lsn;
    this.deliveredRev = state.mvcc.rev;
    this.fd = state.fd;
    this.snapshotEvery = opts.snapshotEvery ?? 50_000;
    const now = monotonicMs();
    for (const l of this.mvcc.leases.values()) this.leaseExpiry.set(l.id, now + l.ttl * 1000);
    this.leaseTimer = setInterval(() => this.expireLeases(), opts.leaseCheckMs ?? 100);
    this.leaseTimer.unref();
  }

  static async open(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    const dir = opts.dir;
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw new StoreUnavailableError(`cannot create store directory ${dir}: ${(err as Error).message}`, { dir, errno: (err as NodeJS.ErrnoException).code }, err);
    }
    await takeLock(dir);
    try {
      return await EmbeddedStore.recover(dir, opts);
    } catch (err) {
      await unlink(join(dir, LOCK)).catch(() => undefined);
      throw err;
    }
  }

  private static async recover(dir: string, opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    const names = await readdir(dir);
    const snaps: number[] = [];
    const segs: number[] = [];
    for (const n of names) {
      // A snapshot interrupted by a crash before its rename: never published, just litter.
      if (n.startsWith('snap-') && n.endsWith('.tmp')) await unlink(join(dir, n)).catch(() => undefined);
      const p = parseName(n);
      if (p?.kind === 'snap') snaps.push(p.lsn);
      else if (p?.kind === 'wal') segs.push(p.lsn);
    }
    snaps.sort((a, b) => a - b);
    segs.sort((a, b) => a - b);
    const mvccOpts = opts.historyLimit !== undefined ? { historyLimit: opts.historyLimit } : {};
    let mvcc = new Mvcc(mvccOpts);
    let snapLsn = 0;
    const snapAt = snaps.at(-1);
    if (snapAt !== undefined) {
      const buf = await readFile(join(dir, snapshotName(snapAt)));
      const dec = decodeFrames(buf);
      if (dec.tornReason || dec.payloads.length !== 1) {
        throw new CorruptDataError('snapshot file is damaged', { file: snapshotName(snapAt), reason: dec.tornReason });
      }
      mvcc = Mvcc.fromSnapshot(JSON.parse(dec.payloads[0]!) as MvccSnapshot, mvccOpts);
      snapLsn = snapAt;
    }
    let lsn = snapLsn;
    let replayed = 0;
    let truncatedBytes = 0;
    let tornReason: string | undefined;
    for (let i = 0; i < segs.length; i++) {
      const first = segs[i]!;
      const name = segmentName(first);
      const buf = await readFile(join(dir, name));
      const dec = decodeFrames(buf);
      let good = dec.goodLength;
      let reason: string | undefined = dec.tornReason;
      for (let j = 0; j < dec.payloads.length; j++) {
        let parsed: [number, WalRecord];
        try {
          parsed = JSON.parse(dec.payloads[j]!) as [number, WalRecord];
        } catch {
          reason = 'bad-json';
          good = offsetOfFrame(buf, j);
          break;
        }
        const [n, rec] = parsed;
        if (n <= snapLsn) continue; // already inside the snapshot
        if (n !== lsn + 1) throw new CorruptDataError('gap in the write-ahead log', { file: name, expected: lsn + 1, found: n });
        mvcc.apply(rec);
        lsn = n;
        replayed++;
      }
      if (reason !== undefined) {
        if (i !== segs.length - 1) {
          throw new CorruptDataError('damaged record in the middle of the log', { file: name, offset: good, reason });
        }
        // Torn tail: cut it off so new records follow the last good one.
        const fh = await open(join(dir, name), 'r+');
        await fh.truncate(good);
        await fh.datasync();
        await fh.close();
        truncatedBytes = buf.length - good;
        tornReason = reason;
      }
    }
    const lastSeg = segs.at(-1);
    const segName = lastSeg !== undefined ? segmentName(lastSeg) : segmentName(lsn + 1);
    const fd = await openSegment(join(dir, segName));
    if (lastSeg === undefined) await fsyncDir(dir);
    const info: RecoveryInfo = { snapshotLsn: snapLsn, replayedRecords: replayed, truncatedBytes };
    if (tornReason) info.tornReason = tornReason;
    return new EmbeddedStore(dir, { mvcc, lsn, fd }, opts, info);
  }

  // ---- write path ----

  private check(): void {
    if (this.closed) throw new StoreClosedError();
    if (this.failed) throw new StoreUnavailableError('the store failed to write its log', {}, this.failed);
  }

  /** Queues a record; the promise settles when it is on disk. */
  private append(rec: WalRecord, events: HistoryEvent[]): Promise<void> {
    const lsn = ++this.lsn;
    const b = this.batch;
    b.bufs.push(encodeFrame(JSON.stringify([lsn, rec])));
    b.lastLsn = lsn;
    for (const e of events) b.events.push(e);
    this.recordsSinceSnapshot++;
    if (!this.flushing) void this.flushLoop();
    return b.promise;
  }

  /** Resolves once every record up to the current one is durable. */
  private settled(): Promise<void> {
    if (this.batch.bufs.length > 0) return this.batch.promise;
    if (this.inFlight) return this.inFlight.promise;
    return Promise.resolve();
  }

  private async flushLoop(): Promise<void> {
    this.flushing = true;
    try {
      while (this.batch.bufs.length > 0 && !this.failed) {
        const b = this.batch;
        this.batch = newBatch();
        this.inFlight = b;
        try {
          // O_DSYNC: returns once the batch is durable. A short write is retried for the rest.
          const total = b.bufs.reduce((n, x) => n + x.length, 0);
          const first = (await this.fd.writev(b.bufs)).bytesWritten;
          if (first < total) {
            const rest = Buffer.concat(b.bufs).subarray(first);
            for (let off = 0; off < rest.length; ) off += (await this.fd.write(rest, off)).bytesWritten;
          }
          this.fsyncs++;
        } catch (err) {
          // The in-memory state is now ahead of the disk; fail closed.
          this.failed = err instanceof Error ? err : new Error(String(err));
          const e = new StoreUnavailableError('write-ahead log write failed', { dir: this.dir }, err);
          b.reject(e);
          this.batch.reject(e);
          return;
        }
        this.durableLsn = b.lastLsn;
        this.inFlight = undefined;
        b.resolve();
        this.deliver(b.events);
        if (this.recordsSinceSnapshot >= this.snapshotEvery && !this.snapshotting) await this.startSnapshot();
      }
    } finally {
      this.inFlight = undefined;
      this.flushing = false;
    }
  }

  /**
   * Called between batches, so the current segment holds exactly the records up to
   * durableLsn. The serialized state may include queued (not yet durable) records; the
   * snapshot file is only published once they are durable too.
   */
  private async startSnapshot(): Promise<void> {
    const lsn = this.lsn;
    const data = encodeFrame(JSON.stringify(this.mvcc.snapshot()));
    const newFirst = this.durableLsn + 1;
    const old = this.fd;
    this.fd = await openSegment(join(this.dir, segmentName(newFirst)));
    await fsyncDir(this.dir); // the new segment's name must survive power loss too
    await old.close();
    this.recordsSinceSnapshot = 0;
    this.snapshotting = this.writeSnapshot(lsn, data, newFirst).finally(() => {
      this.snapshotting = undefined;
    });
    this.snapshotting.catch(() => undefined);
  }

  private async writeSnapshot(lsn: number, data: Buffer, keepFrom: number): Promise<void> {
    while (this.durableLsn < lsn) {
      if (this.failed || this.closed) return;
      await this.settled().catch(() => undefined);
      if (this.durableLsn < lsn && !this.flushing) await new Promise((r) => setImmediate(r));
    }
    const tmp = join(this.dir, `${snapshotName(lsn)}.tmp`);
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, snapshotName(lsn)));
    await fsyncDir(this.dir);
    for (const n of await readdir(this.dir)) {
      const p = parseName(n);
      if (!p) continue;
      if ((p.kind === 'wal' && p.lsn < keepFrom) || (p.kind === 'snap' && p.lsn < lsn)) {
        await unlink(join(this.dir, n)).catch(() => undefined);
      }
    }
  }

  /** Forces a snapshot now (tests, shutdown). */
  async snapshot(): Promise<void> {
    this.check();
    await this.settled();
    while (this.flushing || this.snapshotting) {
      await this.snapshotting;
      await this.settled();
      if (this.flushing) await new Promise((r) => setImmediate(r));
    }
    this.flushing = true; // keep the flusher out while the segment rotates
    try {
      await this.startSnapshot();
    } finally {
      this.flushing = false;
    }
    if (this.batch.bufs.length > 0) void this.flushLoop();
    await this.snapshotting;
  }

  private deliver(events: HistoryEvent[]): void {
    if (events.length === 0) return;
    this.deliveredRev = events[events.length - 1]!.rev;
    for (const w of this.watchers) this.dispatch(w, events);
  }

  private dispatch(w: LocalWatcher, events: HistoryEvent[]): void {
    if (!w.active) return;
    const out = [];
    let last = 0;
    for (const ev of events) {
      if (ev.rev < w.nextRev) continue;
      if (w.prefix ? !ev.kv.key.startsWith(w.key) : ev.kv.key !== w.key) continue;
      out.push(toWatchEvent(ev, w.prevKv));
      last = ev.rev;
    }
    const maxRev = events[events.length - 1]!.rev;
    if (maxRev >= w.nextRev) w.nextRev = maxRev + 1;
    if (out.length === 0) return;
    try {
      w.handler.onEvents(out, last);
    } catch {
      // A throwing handler must not break delivery to the others.
    }
  }

  // ---- Store API ----

  async get(key: string, opts: { revision?: number } = {}): Promise<KeyValue | undefined> {
    const r = await this.range(key, opts.revision !== undefined ? { revision: opts.revision } : {});
    return r.kvs[0];
  }

  async range(key: string, opts: RangeOptions = {}): Promise<RangeResult> {
    this.check();
    const res = this.mvcc.range(key, opts);
    await this.settled();
    return res;
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<PutResult> {
    this.check();
    const rec = this.mvcc.planPut(key, value, opts.lease);
    const events = this.mvcc.apply(rec);
    const done = this.append(rec, events);
    const out: PutResult = { revision: this.mvcc.rev };
    const prev = events[0]?.prev;
    if (opts.prevKv && prev) out.prevKv = prev;
    await done;
    return out;
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<DeleteResult> {
    this.check();
    const rec = this.mvcc.planDelete(key, opts.prefix === true);
    if (!rec) {
      const revision = this.mvcc.rev;
      await this.settled();
      return { revision, deleted: 0, prevKvs: [] };
    }
    const events = this.mvcc.apply(rec);
    const done = this.append(rec, events);
    const prevKvs = events.flatMap((e) => (e.prev ? [e.prev] : []));
    const out: DeleteResult = { revision: this.mvcc.rev, deleted: prevKvs.length, prevKvs: opts.prevKv ? prevKvs : [] };
    await done;
    return out;
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    this.check();
    const { record, result, events } = this.mvcc.txn(req);
    await (record ? this.append(record, events) : this.settled());
    return result;
  }

  async grantLease(ttlSeconds: number): Promise<LeaseGrant> {
    this.check();
    const rec = this.mvcc.planGrant(ttlSeconds);
    this.mvcc.apply(rec);
    this.leaseExpiry.set(rec.id, monotonicMs() + ttlSeconds * 1000);
    await this.append(rec, []);
    return { id: rec.id, ttl: ttlSeconds };
  }

  async keepAlive(id: string): Promise<number> {
    this.check();
    const lease = this.mvcc.leases.get(String(id));
    if (!lease) throw new LeaseNotFoundError(String(id));
    this.leaseExpiry.set(lease.id, monotonicMs() + lease.ttl * 1000);
    await this.settled(); // the grant itself may still be in flight
    return lease.ttl;
  }

  async revokeLease(id: string): Promise<void> {
    this.check();
    await this.revoke(String(id));
  }

  private revoke(id: string): Promise<void> {
    const rec = this.mvcc.planRevoke(id);
    this.leaseExpiry.delete(id);
    const events = this.mvcc.apply(rec);
    return this.append(rec, events);
  }

  async leaseTimeToLive(id: string): Promise<number> {
    this.check();
    const exp = this.leaseExpiry.get(String(id));
    if (exp === undefined || !this.mvcc.leases.has(String(id))) return -1;
    return Math.max(0, Math.ceil((exp - monotonicMs()) / 1000));
  }

  private expireLeases(): void {
    if (this.closed || this.failed) return;
    const now = monotonicMs();
    for (const [id, exp] of this.leaseExpiry) {
      if (exp <= now && this.mvcc.leases.has(id)) this.revoke(id).catch(() => undefined);
      else if (!this.mvcc.leases.has(id)) this.leaseExpiry.delete(id);
    }
  }

  async watch(key: string, opts: WatchOptions, handler: WatchHandler): Promise<Watch> {
    this.check();
    if (typeof key !== 'string' || (key === '' && !opts.prefix)) throw new InvalidRequestError('watch needs a key');
    const start = opts.startRevision ?? 0;
    checkRevision(start, 'startRevision');
    const from = start > 0 ? start : this.deliveredRev + 1;
    // Throws CompactedError when `from` fell out of the history window.
    const replay = from <= this.deliveredRev ? this.mvcc.eventsSince(from, key, opts.prefix === true, this.deliveredRev) : [];
    const w: LocalWatcher = {
      key,
      prefix: opts.prefix === true,
      prevKv: opts.prevKv === true,
      nextRev: Math.max(from, this.deliveredRev + 1),
      handler,
      active: true,
    };
    this.watchers.add(w);
    if (replay.length > 0) {
      // Delivered before any later batch: batches are delivered from I/O callbacks, after microtasks.
      queueMicrotask(() => {
        if (!w.active) return;
        try {
          handler.onEvents(
            replay.map((e) => toWatchEvent(e, w.prevKv)),
            replay[replay.length - 1]!.rev,
          );
        } catch {
          // see dispatch()
        }
      });
    }
    return {
      cancel: async () => {
        w.active = false;
        this.watchers.delete(w);
      },
    };
  }

  async compact(revision: number): Promise<void> {
    this.check();
    const rec = this.mvcc.planCompact(revision);
    this.mvcc.apply(rec);
    await this.append(rec, []);
  }

  async status(): Promise<StoreStatus> {
    this.check();
    await this.settled();
    return { revision: this.mvcc.rev, compactRevision: this.mvcc.compactRev };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.leaseTimer);
    await this.settled().catch(() => undefined);
    while (this.flushing) await new Promise((r) => setImmediate(r));
    await this.snapshotting?.catch(() => undefined);
    this.closed = true;
    for (const w of this.watchers) w.active = false;
    this.watchers.clear();
    await this.fd.close().catch(() => undefined);
    await unlink(join(this.dir, LOCK)).catch(() => undefined);
  }
}

/** Lease deadlines use a monotonic clock: a wall-clock step (NTP) must not expire leases. */
const monotonicMs = () => performance.now();

const LOCK = 'LOCK';

/**
 * One process per data directory: two writers would interleave their logs. The lock
 * file holds the owner's pid. It is written to a private temp file first and then
 * link()ed into place (atomic, exclusive), so the lock never exists without its pid.
 * A lock left by a dead process (kill -9) is taken over, but only while holding
 * `LOCK.takeover` (itself taken with link()): so two openers can never both judge the
 * same stale lock and one of them delete the other's fresh lock. (A takeover file left
 * by a crash inside that few-syscall window is removed when its pid is dead.)
 */
async function takeLock(dir: string): Promise<void> {
  const file = join(dir, LOCK);
  const takeover = join(dir, `${LOCK}.takeover`);
  const mine = join(dir, `${LOCK}.${process.pid}.${randomBytes(6).toString('hex')}`);
  const fsFail = (op: string, err: unknown) =>
    new StoreUnavailableError(`cannot lock store directory ${dir}: ${op}: ${(err as Error).message}`, { dir, op, errno: (err as NodeJS.ErrnoException).code }, err);
  const tryLink = async (to: string): Promise<boolean> => {
    try {
      await link(mine, to);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw fsFail('link', err);
    }
  };
  try {
    await writeFile(mine, String(process.pid), { flag: 'wx' });
  } catch (err) {
    throw fsFail('write', err);
  }
  try {
    for (let attempt = 0; attempt < 200; attempt++) {
      if (await tryLink(file)) return;
      const owner = await readPidFile(file);
      if (owner === undefined) continue; // removed meanwhile: try again
      if (owner > 0 && (owner === process.pid || isAlive(owner))) throw new StoreLockedError(dir, owner);
      // Stale (dead owner, or not a pid: never produced by link()).
      if (!(await tryLink(takeover))) {
        const holder = await readPidFile(takeover);
        if (holder !== undefined && !(holder > 0 && isAlive(holder))) await unlink(takeover).catch(() => undefined);
        else await new Promise((r) => setTimeout(r, 5)); // another opener is taking over
        continue;
      }
      try {
        if ((await readPidFile(file)) === owner) await unlink(file).catch(() => undefined);
      } finally {
        await unlink(takeover).catch(() => undefined);
      }
    }
    throw new StoreLockedError(dir, 0);
  } finally {
    await unlink(mine).catch(() => undefined);
  }
}

/** The pid in a lock file: 0 when the content is not a pid, undefined when there is no file. */
async function readPidFile(file: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

function offsetOfFrame(buf: Buffer, index: number): number {
  let off = 0;
  for (let i = 0; i < index; i++) off += 8 + buf.readUInt32LE(off);
  return off;
}

/** Append-only, and every write is synchronous to stable storage (data + size). */
function openSegment(path: string): Promise<FileHandle> {
  return open(path, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_DSYNC, 0o644);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function openEmbeddedStore(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  return EmbeddedStore.open(opts);
}
