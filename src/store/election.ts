/**
 * Leader election over any `Store` (embedded or etcd), etcd-style: the leader is the
 * candidate whose lease holds the election key.
 *
 * - campaign: grant a lease, then txn `version(key) == 0` → put `{id, since}` on it;
 * - leader: keep the lease alive every ttl/3 and watch the key; a failed keep-alive, a
 *   delete of the key (lease expired or revoked) or a put by another lease ends the
 *   leadership (`lost`), and the candidate campaigns again after a short pause
 *   (min(1 s, ttl/3)) that lets the followers, which campaign on the delete, go first;
 * - follower: watch the key and campaign again when it is deleted (and at least every
 *   TTL, in case a watch misses it).
 *
 * Between the moment a leader's lease expires in the store and the moment that leader
 * notices (its next keep-alive or the delete event) both may believe they lead, for at
 * most ttl/3: callers write with CAS (the topology record's modRevision), so a stale
 * leader's write fails rather than overwrites.
 */
import { EventEmitter } from 'node:events';
import pino, { type Logger } from 'pino';
import type { Store, Watch } from './types.js';

export const DEFAULT_ELECTION_KEY = '/tenet/leader/scheduler';

export interface LeaderRecord {
  id: string;
  /** ISO time the leadership began. */
  since: string;
}

export interface ElectionOptions {
  store: Store;
  /** This candidate's id (unique among candidates), e.g. `<hostname>:<pid>`. */
  id: string;
  /** Default /tenet/leader/scheduler. */
  key?: string;
  /** Lease TTL, seconds. Default 5. */
  ttlS?: number;
  /** Delay after a store error before campaigning again, ms. Default 1,000. */
  retryMs?: number;
  logger?: Logger;
}

export class Election extends EventEmitter<{ elected: [LeaderRecord]; lost: [string] }> {
  private readonly key: string;
  private readonly ttlS: number;
  private readonly log: Logger;
  private stopped = false;
  private running: Promise<void> | undefined;
  /** Wakes whatever the campaign loop is waiting on (a follower's wait, a leader's term). */
  private wake: ((reason: string) => void) | undefined;
  private lease: string | undefined;
  private leading: LeaderRecord | undefined;

  constructor(private readonly opts: ElectionOptions) {
    super();
    this.key = opts.key ?? DEFAULT_ELECTION_KEY;
    this.ttlS = opts.ttlS ?? 5;
    this.log = opts.logger ?? pino({ level: 'silent' });
  }

  get id(): string {
    return this.opts.id;
  }

  get isLeader(): boolean {
    return this.leading !== undefined;
  }

  /** The lease this candidate campaigns with (for tests that revoke it). */
  get leaseId(): string | undefined {
    return this.lease;
  }

  /** Starts campaigning (idempotent). */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = this.loop();
  }

  /** Stops campaigning; a leader resigns (revokes its lease, so another takes over at once). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.('stopped');
    await this.running;
    const lease = this.lease;
    this.lease = undefined;
    if (lease) await this.opts.store.revokeLease(lease).catch(() => undefined);
  }

  /** The current leader as the store holds it. */
  async leader(): Promise<LeaderRecord | undefined> {
    const kv = await this.opts.store.get(this.key);
    return kv ? (JSON.parse(kv.value) as LeaderRecord) : undefined;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        this.lease ??= (await this.opts.store.grantLease(this.ttlS)).id;
        const record: LeaderRecord = { id: this.opts.id, since: new Date().toISOString() };
        const r = await this.opts.store.txn({
          compare: [{ key: this.key, target: 'version', op: '=', value: 0 }],
          success: [{ type: 'put', key: this.key, value: JSON.stringify(record), lease: this.lease }],
          failure: [{ type: 'range', key: this.key }],
        });
        if (this.stopped) break;
        if (r.succeeded) {
          const lost = await this.lead(record, r.revision);
          // A leader whose lease was revoked or expired (a pause, a partition) lets the
          // followers, which campaign on the delete, go first.
          if (lost) await this.sleep(Math.min(1000, (this.ttlS * 1000) / 3));
          continue;
        }
        const res = r.results[0];
        const holder = res?.type === 'range' ? res.kvs[0] : undefined;
        if (holder?.lease === this.lease) {
          // Ours already (a previous term whose end was a watch failure, not a lost lease).
          await this.lead(JSON.parse(holder.value) as LeaderRecord, r.revision);
          continue;
        }
        // Our lease is not needed while following: a fresh one per campaign.
        const spare = this.lease;
        this.lease = undefined;
        await this.opts.store.revokeLease(spare).catch(() => undefined);
        await this.follow(r.revision);
      } catch (err) {
        this.log.warn({ err: (err as Error).message, key: this.key }, 'election: store error; campaigning again');
        this.lease = undefined;
        await this.sleep(this.opts.retryMs ?? 1000);
      }
    }
  }

  /** Resolves when the key is deleted after `revision`, at most one TTL later, or on stop. */
  private async follow(revision: number): Promise<void> {
    let watch: Watch | undefined;
    const done = new Promise<string>((resolve) => {
      this.wake = resolve;
    });
    const timer = setTimeout(() => this.wake?.('timeout'), this.ttlS * 1000);
    try {
      watch = await this.opts.store.watch(this.key, { startRevision: revision + 1 }, {
        onEvents: (events) => {
          if (events.some((e) => e.type === 'delete')) this.wake?.('deleted');
        },
        onError: () => this.wake?.('watch failed'),
      });
      if (this.stopped) this.wake?.('stopped');
      await done;
    } finally {
      clearTimeout(timer);
      this.wake = undefined;
      await watch?.cancel().catch(() => undefined);
    }
  }

  /** One term: keeps the lease alive until it, the key or the watch is lost, or stop(). True when the lease or the key was lost. */
  private async lead(record: LeaderRecord, revision: number): Promise<boolean> {
    const lease = this.lease!;
    let watch: Watch | undefined;
    const ended = new Promise<string>((resolve) => {
      this.wake = resolve;
    });
    const keepAlive = setInterval(() => {
      this.opts.store.keepAlive(lease).catch((err: Error) => this.wake?.(`keep-alive failed: ${err.message}`));
    }, Math.max(100, (this.ttlS * 1000) / 3));
    this.leading = record;
    this.log.info({ id: record.id, key: this.key }, 'election: this candidate leads');
    this.emit('elected', record);
    let reason = 'stopped';
    try {
      watch = await this.opts.store.watch(this.key, { startRevision: revision + 1 }, {
        onEvents: (events) => {
          for (const e of events) {
            if (e.type === 'delete') this.wake?.('the leader key was deleted (lease expired or revoked)');
            else if (e.kv.lease !== lease) this.wake?.('another candidate holds the leader key');
          }
        },
        onError: (err) => this.wake?.(`watch failed: ${err.message}`),
      });
      if (this.stopped) this.wake?.('stopped');
      reason = await ended;
    } catch (err) {
      reason = `watch failed: ${(err as Error).message}`;
    } finally {
      clearInterval(keepAlive);
      this.wake = undefined;
      this.leading = undefined;
      await watch?.cancel().catch(() => undefined);
    }
    this.log.warn({ id: record.id, key: this.key, reason }, 'election: leadership ended');
    this.emit('lost', reason);
    if (!this.stopped && !reason.startsWith('watch failed')) {
      // The lease is gone or no longer holds the key: campaign with a fresh one.
      const old = this.lease;
      this.lease = undefined;
      if (old) await this.opts.store.revokeLease(old).catch(() => undefined);
      return true;
    }
    return false;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }
}
