/**
 * One behavioural suite for every Store implementation. `open()` creates a fresh,
 * empty backend and returns a factory of clients on it (for the embedded store all
 * clients are the same object: it is one process; for etcd each is its own connection).
 */
import type { Test } from 'tap';
import {
  CompactedError,
  FutureRevisionError,
  InvalidRequestError,
  LeaseNotFoundError,
  type Store,
  type WatchEvent,
} from '../../src/store/index.js';

export interface ConformanceBackend {
  /** A client on the backend (cleanup is the backend's job). */
  client(): Promise<Store>;
  close(): Promise<void>;
}

export interface ConformanceOptions {
  /** Lease TTL to use in expiry tests (etcd enforces a minimum of about 2 s). */
  shortTtl: number;
}

/** Collects watch events; `until(n)` resolves once n events arrived. */
export function collector() {
  const events: WatchEvent[] = [];
  const errors: Error[] = [];
  let waiters: Array<() => void> = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  return {
    events,
    errors,
    handler: {
      onEvents(evs: WatchEvent[]) {
        events.push(...evs);
        wake();
      },
      onError(err: Error) {
        errors.push(err);
        wake();
      },
    },
    async until(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out; have ${events.length} events, ${errors.length} errors`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
}

export function storeConformance(
  t: Test,
  name: string,
  open: () => Promise<ConformanceBackend>,
  opts: ConformanceOptions,
): void {
  const withStore = (title: string, fn: (s: Store, b: ConformanceBackend, t: Test) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const b = await open();
      t.teardown(() => b.close());
      await fn(await b.client(), b, t);
    });

  withStore('revisions, versions and prefix ranges', async (s, _b, t) => {
    const r0 = (await s.status()).revision;
    const p1 = await s.put('a/1', 'one');
    t.equal(p1.revision, r0 + 1, 'every write bumps the store revision by one');
    const p2 = await s.put('a/2', 'two');
    const p3 = await s.put('a/1', 'uno', { prevKv: true });
    t.equal(p3.revision, r0 + 3);
    t.match(p3.prevKv, { key: 'a/1', value: 'one', version: 1 }, 'prevKv is the value replaced');
    const kv = await s.get('a/1');
    t.match(kv, { key: 'a/1', value: 'uno', createRevision: p1.revision, modRevision: p3.revision, version: 2 });
    t.equal(kv?.lease, undefined);
    await s.put('b', 'outside');
    const r = await s.range('a/', { prefix: true });
    t.same(r.kvs.map((k) => k.key), ['a/1', 'a/2'], 'prefix range, sorted by key');
    t.equal(r.revision, r0 + 4, 'range reports the store revision');
    t.equal(r.kvs[1]!.createRevision, p2.revision);
    const lim = await s.range('a/', { prefix: true, limit: 1 });
    t.equal(lim.kvs.length, 1);
    t.equal(lim.more, true);
    t.equal(await s.get('missing'), undefined);
    // History: the state at a past revision.
    const past = await s.range('a/', { prefix: true, revision: p2.revision });
    t.same(past.kvs.map((k) => [k.key, k.value]), [['a/1', 'one'], ['a/2', 'two']]);
    t.equal((await s.get('a/1', { revision: p1.revision }))?.value, 'one');
    t.equal(await s.get('a/2', { revision: p1.revision }), undefined, 'a key did not exist before its creation');
    await t.rejects(s.range('a/', { prefix: true, revision: r0 + 100 }), FutureRevisionError);
    // Deletes.
    const d0 = await s.delete('nope');
    t.equal(d0.deleted, 0);
    t.equal(d0.revision, r0 + 4, 'deleting nothing does not bump the revision');
    const d = await s.delete('a/', { prefix: true, prevKv: true });
    t.equal(d.deleted, 2);
    t.same(d.prevKvs.map((k) => k.value).sort(), ['two', 'uno']);
    t.equal(d.revision, r0 + 5, 'one delete of many keys is one revision');
    const again = await s.put('a/1', 'fresh');
    t.match(await s.get('a/1'), { version: 1, createRevision: again.revision }, 'recreated key starts over');
  });

  withStore('transactions: compares and branches', async (s, _b, t) => {
    const p = await s.put('k', 'v1');
    const cases: Array<[string, Parameters<Store['txn']>[0]['compare'][number], boolean]> = [
      ['value =', { key: 'k', target: 'value', op: '=', value: 'v1' }, true],
      ['value !=', { key: 'k', target: 'value', op: '!=', value: 'v1' }, false],
      ['value <', { key: 'k', target: 'value', op: '<', value: 'v2' }, true],
      ['value >', { key: 'k', target: 'value', op: '>', value: 'v2' }, false],
      ['version =', { key: 'k', target: 'version', op: '=', value: 1 }, true],
      ['version >', { key: 'k', target: 'version', op: '>', value: 1 }, false],
      ['createRevision =', { key: 'k', target: 'createRevision', op: '=', value: p.revision }, true],
      ['createRevision <', { key: 'k', target: 'createRevision', op: '<', value: p.revision }, false],
      ['modRevision !=', { key: 'k', target: 'modRevision', op: '!=', value: p.revision }, false],
      ['modRevision <', { key: 'k', target: 'modRevision', op: '<', value: p.revision + 1 }, true],
      ['missing key version = 0', { key: 'none', target: 'version', op: '=', value: 0 }, true],
    ];
    for (const [title, cmp, want] of cases) {
      const r = await s.txn({ compare: [cmp], success: [], failure: [] });
      t.equal(r.succeeded, want, title);
    }
    // Create-only: createRevision = 0.
    const create = (v: string) =>
      s.txn({
        compare: [{ key: 'once', target: 'createRevision', op: '=', value: 0 }],
        success: [{ type: 'put', key: 'once', value: v }],
        failure: [{ type: 'range', key: 'once' }],
      });
    const c1 = await create('first');
    t.equal(c1.succeeded, true);
    const c2 = await create('second');
    t.equal(c2.succeeded, false);
    t.equal(c2.revision, c1.revision, 'a failed txn without writes does not bump the revision');
    t.match(c2.results[0], { type: 'range', kvs: [{ key: 'once', value: 'first' }] }, 'failure branch ran');
    // Multi-op success branch: one revision for all writes.
    const multi = await s.txn({
      compare: [{ key: 'k', target: 'value', op: '=', value: 'v1' }],
      success: [
        { type: 'put', key: 'm/1', value: 'x' },
        { type: 'put', key: 'm/2', value: 'y' },
        { type: 'delete', key: 'k', prevKv: true },
      ],
    });
    t.equal(multi.succeeded, true);
    t.equal((await s.get('m/1'))?.modRevision, multi.revision);
    t.equal((await s.get('m/2'))?.modRevision, multi.revision);
    t.match(multi.results[2], { type: 'delete', deleted: 1, prevKvs: [{ value: 'v1' }] });
    await t.rejects(
      s.txn({ compare: [], success: [{ type: 'put', key: 'd', value: '1' }, { type: 'put', key: 'd', value: '2' }] }),
      InvalidRequestError,
      'the same key twice in one txn is refused',
    );
  });

  withStore('CAS races between concurrent clients', async (s, b, t) => {
    const clients = [s, ...(await Promise.all([1, 2, 3].map(() => b.client())))];
    await s.put('counter', '0');
    const perClient = 15;
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < perClient; i++) {
          for (;;) {
            const cur = (await c.get('counter'))!;
            const r = await c.txn({
              compare: [{ key: 'counter', target: 'modRevision', op: '=', value: cur.modRevision }],
              success: [{ type: 'put', key: 'counter', value: String(Number(cur.value) + 1) }],
            });
            if (r.succeeded) break;
          }
        }
      }),
    );
    const final = await s.get('counter');
    t.equal(final?.value, String(clients.length * perClient), 'no increment lost');
    t.equal(final?.version, clients.length * perClient + 1);
    // Forced interleaving: every client reads, then every client CASes on what it read.
    // All but one must conflict in each round, and the winner's increment is kept.
    const rounds = 10;
    const base = Number((await s.get('counter'))!.value);
    let conflicts = 0;
    const winnersPerRound: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const seen = await Promise.all(clients.map(async (c) => (await c.get('counter'))!));
      const res = await Promise.all(
        clients.map((c, i) =>
          c.txn({
            compare: [{ key: 'counter', target: 'modRevision', op: '=', value: seen[i]!.modRevision }],
            success: [{ type: 'put', key: 'counter', value: String(Number(seen[i]!.value) + 1) }],
          }),
        ),
      );
      const won = res.filter((x) => x.succeeded).length;
      winnersPerRound.push(won);
      conflicts += res.length - won;
    }
    t.same(winnersPerRound, Array(rounds).fill(1), 'exactly one CAS wins in every round');
    t.equal(conflicts, rounds * (clients.length - 1), `the other ${clients.length - 1} conflict every round`);
    t.equal((await s.get('counter'))?.value, String(base + rounds), 'each round added exactly one increment');
    // Create-only race: exactly one winner.
    const wins = await Promise.all(
      clients.map((c, i) =>
        c.txn({
          compare: [{ key: 'leader', target: 'createRevision', op: '=', value: 0 }],
          success: [{ type: 'put', key: 'leader', value: `c${i}` }],
        }),
      ),
    );
    t.equal(wins.filter((w) => w.succeeded).length, 1, 'exactly one client creates the key');
  });

  withStore('leases: keep-alive, revoke, expiry deletes keys with events', async (s, _b, t) => {
    const c = collector();
    const w = await s.watch('l/', { prefix: true }, c.handler);
    t.teardown(() => w.cancel());
    const g = await s.grantLease(opts.shortTtl);
    t.ok(g.id && g.ttl >= opts.shortTtl);
    await s.put('l/a', '1', { lease: g.id });
    await s.put('l/b', '2', { lease: g.id });
    t.equal((await s.get('l/a'))?.lease, g.id);
    t.equal(await s.keepAlive(g.id), g.ttl, 'keep-alive renews to the full TTL');
    const ttl = await s.leaseTimeToLive(g.id);
    t.ok(ttl > 0 && ttl <= g.ttl, `remaining ${ttl}`);
    // Expiry.
    await c.until(() => c.events.filter((e) => e.type === 'delete').length === 2, (g.ttl + 6) * 1000);
    t.same(
      c.events.map((e) => [e.type, e.kv.key]),
      [['put', 'l/a'], ['put', 'l/b'], ['delete', 'l/a'], ['delete', 'l/b']],
      'expiry deletes every attached key, with delete events',
    );
    const [d1, d2] = c.events.slice(2);
    t.equal(d1!.kv.modRevision, d2!.kv.modRevision, 'one revision for the whole expiry');
    t.equal(await s.get('l/a'), undefined);
    t.equal(await s.leaseTimeToLive(g.id), -1);
    await t.rejects(s.keepAlive(g.id), LeaseNotFoundError);
    await t.rejects(s.put('l/c', '3', { lease: g.id }), LeaseNotFoundError, 'put on a dead lease is refused');
    // Revoke.
    const g2 = await s.grantLease(60);
    await s.put('l/r', 'x', { lease: g2.id });
    await s.revokeLease(g2.id);
    t.equal(await s.get('l/r'), undefined, 'revoke deletes attached keys');
    await c.until(() => c.events.some((e) => e.type === 'delete' && e.kv.key === 'l/r'));
    // Detach by re-put without lease.
    const g3 = await s.grantLease(60);
    await s.put('l/keep', 'x', { lease: g3.id });
    await s.put('l/keep', 'y');
    await s.revokeLease(g3.id);
    t.equal((await s.get('l/keep'))?.value, 'y', 'a key re-put without the lease is no longer attached');
    await t.rejects(s.grantLease(0), InvalidRequestError);
  });

  withStore('watch: order, no gaps, resume from a revision, prevKv', async (s, _b, t) => {
    const start = (await s.status()).revision + 1;
    for (let i = 0; i < 20; i++) await s.put(`w/${i % 3}`, `v${i}`);
    await s.put('other', 'x');
    await s.delete('w/0');
    // Resume from a past revision: sees everything from there, in order.
    const c = collector();
    const w = await s.watch('w/', { prefix: true, startRevision: start + 5, prevKv: true }, c.handler);
    t.teardown(() => w.cancel());
    await c.until(() => c.events.length === 16);
    t.same(
      c.events.map((e) => e.kv.modRevision),
      [...Array.from({ length: 15 }, (_, i) => start + 5 + i), start + 21],
      'every revision from the start, in order, the unrelated key skipped',
    );
    t.equal(c.events[15]!.type, 'delete');
    t.equal(c.events[15]!.prevKv?.key, 'w/0', 'delete event carries prevKv');
    t.equal(c.events[0]!.prevKv?.value, 'v2', 'put event carries prevKv');
    // Live events continue without a gap, also under a burst of concurrent writes.
    await Promise.all(Array.from({ length: 30 }, (_, i) => s.put(`w/${i % 5}`, `live${i}`)));
    await c.until(() => c.events.length === 46);
    const revs = c.events.map((e) => e.kv.modRevision);
    t.ok(revs.every((r, i) => i === 0 || r > revs[i - 1]!), 'strictly increasing');
    t.equal(revs.at(-1)! - revs[16]! + 1, 30, 'the 30 live writes, no gap');
    // A watch from "now" sees only new events.
    const c2 = collector();
    const w2 = await s.watch('w/1', {}, c2.handler);
    t.teardown(() => w2.cancel());
    await s.put('w/2', 'not me');
    await s.put('w/1', 'me');
    await c2.until(() => c2.events.length >= 1);
    t.same(c2.events.map((e) => e.kv.value), ['me']);
    // A second watch on the same key is the witness: once it has the write, a live c2 would have it too.
    const c3 = collector();
    const w3 = await s.watch('w/1', {}, c3.handler);
    t.teardown(() => w3.cancel());
    await w2.cancel();
    await s.put('w/1', 'after cancel');
    await c3.until(() => c3.events.some((e) => e.kv.value === 'after cancel'));
    t.equal(c2.events.length, 1, 'no events after cancel');
  });

  withStore('compaction: typed error with the compact revision', async (s, _b, t) => {
    const first = await s.put('c/a', '1');
    await s.put('c/a', '2');
    const third = await s.put('c/a', '3');
    await s.compact(third.revision);
    const st = await s.status();
    t.equal(st.compactRevision, third.revision);
    const err = await s.range('c/', { prefix: true, revision: first.revision }).catch((e: unknown) => e);
    t.type(err, CompactedError, 'a read below the compact revision is refused');
    t.equal((err as CompactedError).compactRevision, third.revision, 'and names the compact revision');
    // The refusal may come as a rejected watch() or, as etcd does it, through onError.
    const wc = collector();
    const werr = await s.watch('c/', { prefix: true, startRevision: first.revision }, wc.handler).then(
      async (w) => {
        await wc.until(() => wc.errors.length > 0);
        await w.cancel();
        return wc.errors[0];
      },
      (e: unknown) => e,
    );
    t.type(werr, CompactedError, 'a watch below the compact revision is refused, not silently skipped');
    t.equal(wc.events.length, 0, 'and delivers nothing');
    t.equal((werr as CompactedError).compactRevision, third.revision);
    t.equal((await s.get('c/a', { revision: third.revision }))?.value, '3', 'the compact revision itself is readable');
    const c = collector();
    const w = await s.watch('c/', { prefix: true, startRevision: third.revision }, c.handler);
    t.teardown(() => w.cancel());
    await c.until(() => c.events.length === 1);
    t.equal(c.events[0]!.kv.value, '3', 'watch from the compact revision works');
    await t.rejects(s.compact(first.revision), CompactedError, 'compacting below the compact revision is refused');
  });

  withStore('bad input is refused with typed errors and changes nothing', async (s, _b, t) => {
    const r0 = (await s.status()).revision;
    await t.rejects(s.put('', 'x'), InvalidRequestError);
    await t.rejects(s.get(''), InvalidRequestError);
    await t.rejects(s.range('x', { revision: -1 }), InvalidRequestError);
    await t.rejects(
      s.txn({ compare: [{ key: 'x', target: 'bogus' as 'value', op: '=', value: 'a' }], success: [] }),
      InvalidRequestError,
    );
    await t.rejects(s.txn({ compare: [{ key: 'x', target: 'version', op: '=', value: 'a' }], success: [] }), InvalidRequestError);
    await t.rejects(s.grantLease(-5), InvalidRequestError);
    t.equal((await s.status()).revision, r0, 'revision unchanged');
  });
}
