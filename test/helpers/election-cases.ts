/**
 * Leader-election cases shared by the embedded-store unit test and the real-etcd
 * integration test: `stores()` gives one Store per candidate (the same embedded store
 * twice, or two etcd clients: two "daemons" on one etcd).
 */
import type { Test } from 'tap';
import { Election, type Store } from '../../src/store/index.js';

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

export function electionCases(t: Test, stores: () => Promise<{ a: Store; b: Store; close(): Promise<void> }>, ttlS: number): void {
  const start = async (t: Test, key: string) => {
    const s = await stores();
    const a = new Election({ store: s.a, id: 'a', key, ttlS, retryMs: 100 });
    const b = new Election({ store: s.b, id: 'b', key, ttlS, retryMs: 100 });
    t.teardown(async () => {
      await a.stop();
      await b.stop();
      await s.close();
    });
    a.start();
    b.start();
    t.ok(await until(() => a.isLeader || b.isLeader, 5000), 'a leader is elected');
    // Give a second candidate time to (wrongly) believe it leads too.
    await new Promise((r) => setTimeout(r, 300));
    t.equal(Number(a.isLeader) + Number(b.isLeader), 1, 'exactly one leader');
    const leader = a.isLeader ? a : b;
    const other = a.isLeader ? b : a;
    t.same((await leader.leader())?.id, leader.id, 'the key names the leader');
    return { s, leader, other };
  };

  t.test('a revoked lease hands leadership to the other candidate', async (t) => {
    const { s, leader, other } = await start(t, '/test/election/revoke');
    const lost = new Promise<string>((r) => leader.once('lost', r));
    const t0 = Date.now();
    await s.a.revokeLease(leader.leaseId!);
    t.ok(await until(() => other.isLeader, 5000), 'the other candidate takes over');
    t.comment(`takeover after revoke: ${Date.now() - t0} ms`);
    t.match(await lost, /deleted|keep-alive|another/, 'the old leader hears it lost');
    await new Promise((r) => setTimeout(r, 300));
    t.notOk(leader.isLeader, 'the old leader campaigns again as a follower');
    t.same((await other.leader())?.id, other.id);
  });

  t.test('a leader that stops resigns at once', async (t) => {
    const { leader, other } = await start(t, '/test/election/stop');
    const t0 = Date.now();
    await leader.stop();
    t.ok(await until(() => other.isLeader, ttlS * 1000 + 2000), 'the follower leads');
    t.comment(`takeover after resign: ${Date.now() - t0} ms`);
  });

  t.test('a leader whose keep-alives stop loses the key after its TTL', async (t) => {
    const s = await stores();
    const key = '/test/election/expire';
    // A "crashed" leader: a lease that nobody keeps alive holds the key.
    const lease = await s.a.grantLease(ttlS);
    await s.a.put(key, JSON.stringify({ id: 'crashed', since: new Date().toISOString() }), { lease: lease.id });
    const b = new Election({ store: s.b, id: 'b', key, ttlS, retryMs: 100 });
    t.teardown(async () => {
      await b.stop();
      await s.close();
    });
    const t0 = Date.now();
    b.start();
    await new Promise((r) => setTimeout(r, 200));
    t.notOk(b.isLeader, 'not while the crashed leader\'s lease lives');
    t.ok(await until(() => b.isLeader, ttlS * 1000 + 3000), 'leads once the lease expired');
    t.comment(`takeover after a crash: ${Date.now() - t0} ms (TTL ${ttlS} s)`);
  });
}
