import t, { type Test } from 'tap';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactedError, CorruptDataError, EmbeddedStore, EtcdStore, InvalidRequestError, StoreClosedError, StoreLockedError, openStore } from '../../../src/store/index.js';
import { collector } from '../../helpers/store-conformance.js';

function tmp(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-emb-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const segs = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('wal-')).sort();

async function fill(dir: string, n: number) {
  const s = await EmbeddedStore.open({ dir });
  for (let i = 0; i < n; i++) await s.put(`k/${i}`, `v${i}`);
  await s.close();
}

t.test('reopen replays the log', async (t) => {
  const dir = tmp(t);
  await fill(dir, 10);
  const s = await EmbeddedStore.open({ dir });
  t.teardown(() => s.close());
  t.equal((await s.range('k/', { prefix: true })).kvs.length, 10);
  t.equal((await s.status()).revision, 11);
  t.equal(s.recovery.replayedRecords, 10);
  t.equal(s.recovery.truncatedBytes, 0);
});

// Each case with the number of the 10 records that must survive: damage inside the last
// record costs exactly that record; bytes after the last record cost nothing.
for (const [name, damage, survivors] of [
  ['half-written record', (f: string) => truncateSync(f, statSync(f).size - 5), 9],
  ['garbage appended', (f: string) => appendFileSync(f, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])), 10],
  [
    'flipped byte in the last record',
    (f: string) => {
      const b = readFileSync(f);
      b[b.length - 3] = b[b.length - 3]! ^ 0xff;
      writeFileSync(f, b);
    },
    9,
  ],
  ['absurd length field', (f: string) => appendFileSync(f, Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 1])), 10],
] as const) {
  t.test(`torn tail recovered: ${name}`, async (t) => {
    const dir = tmp(t);
    await fill(dir, 10);
    const f = join(dir, segs(dir).at(-1)!);
    const before = statSync(f).size;
    damage(f);
    const s = await EmbeddedStore.open({ dir });
    const kept = (await s.range('k/', { prefix: true })).kvs.length;
    t.equal(kept, survivors, `the ${survivors} good records kept`);
    t.ok(s.recovery.truncatedBytes > 0, `cut ${s.recovery.truncatedBytes} bytes (${s.recovery.tornReason})`);
    t.ok(statSync(f).size <= before, 'file truncated at the last good record');
    // New writes follow the good prefix and survive another reopen.
    await s.put('after', 'yes');
    await s.close();
    const s2 = await EmbeddedStore.open({ dir });
    t.teardown(() => s2.close());
    t.equal((await s2.get('after'))?.value, 'yes');
    t.equal(s2.recovery.truncatedBytes, 0, 'nothing left to cut');
    t.equal((await s2.range('k/', { prefix: true })).kvs.length, kept);
  });
}

t.test('damage in the middle of the log is refused, not skipped', async (t) => {
  const dir = tmp(t);
  await fill(dir, 10);
  const f = join(dir, segs(dir).at(-1)!);
  const b = readFileSync(f);
  b[20] = b[20]! ^ 0xff; // inside the first record
  writeFileSync(f, b);
  // In the last segment this reads as a torn tail at record 1: everything after is cut.
  const s = await EmbeddedStore.open({ dir });
  t.equal((await s.range('k/', { prefix: true })).kvs.length, 0);
  await s.close();
  // In an older segment it is corruption.
  const dir2 = tmp(t);
  const s2 = await EmbeddedStore.open({ dir: dir2, snapshotEvery: 5 });
  for (let i = 0; i < 12; i++) await s2.put(`k/${i}`, 'x');
  await s2.close();
  for (const n of readdirSync(dir2)) if (n.startsWith('snap-')) rmSync(join(dir2, n));
  writeFileSync(join(dir2, 'wal-0000000000000001.log'), Buffer.concat([Buffer.from([0, 0, 0, 0, 1, 2, 3, 4])]));
  await t.rejects(EmbeddedStore.open({ dir: dir2 }), CorruptDataError);
});

t.test('snapshots bound the log; state survives snapshot + reopen', async (t) => {
  const dir = tmp(t);
  const s = await EmbeddedStore.open({ dir, snapshotEvery: 50 });
  const lease = await s.grantLease(3600);
  for (let i = 0; i < 230; i++) await s.put(`k/${i % 40}`, `v${i}`, i % 2 ? { lease: lease.id } : {});
  await s.delete('k/0');
  await s.snapshot();
  const files = readdirSync(dir);
  t.equal(files.filter((n) => n.startsWith('snap-')).length, 1, 'one snapshot kept');
  t.equal(segs(dir).length, 1, 'older log segments removed');
  await s.put('tail', 'after snapshot');
  const rev = (await s.status()).revision;
  await s.close();
  writeFileSync(join(dir, 'snap-0000000000999999.bin.tmp'), 'half a snapshot'); // crash before rename
  const s2 = await EmbeddedStore.open({ dir });
  t.teardown(() => s2.close());
  t.ok(s2.recovery.snapshotLsn > 0);
  t.notOk(readdirSync(dir).some((n) => n.endsWith('.tmp')), 'unpublished snapshot removed');
  t.equal((await s2.status()).revision, rev);
  t.equal((await s2.get('k/1'))?.value, 'v201');
  t.equal((await s2.get('k/1'))?.lease, lease.id);
  t.equal(await s2.get('k/0'), undefined);
  t.equal((await s2.get('tail'))?.value, 'after snapshot');
  // History inside the snapshot still serves watches from before it.
  const c = collector();
  const w = await s2.watch('k/', { prefix: true, startRevision: rev - 10 }, c.handler);
  t.teardown(() => w.cancel());
  await c.until(() => c.events.length >= 1);
  t.ok(c.events.every((e) => e.kv.modRevision >= rev - 10));
  await s2.revokeLease(lease.id);
  t.equal(await s2.get('k/1'), undefined, 'lease restored from the snapshot still owns its keys');
});

t.test('leases across a restart: full TTL again from recovery', async (t) => {
  const dir = tmp(t);
  const s = await EmbeddedStore.open({ dir, leaseCheckMs: 20 });
  const g = await s.grantLease(2);
  await s.put('eph', '1', { lease: g.id });
  await s.close();
  await new Promise((r) => setTimeout(r, 1200));
  const s2 = await EmbeddedStore.open({ dir, leaseCheckMs: 20 });
  t.teardown(() => s2.close());
  t.equal((await s2.get('eph'))?.value, '1', 'key still there after restart');
  t.equal(await s2.leaseTimeToLive(g.id), 2, 'lease restarted with its full TTL');
  const c = collector();
  const w = await s2.watch('eph', {}, c.handler);
  t.teardown(() => w.cancel());
  await c.until(() => c.events.length === 1, 5000);
  t.equal(c.events[0]!.type, 'delete', 'and expires one TTL after recovery, with a delete event');
  const g2 = await s2.grantLease(5);
  t.not(g2.id, g.id, 'lease ids are not reused after restart');
});

t.test('bounded history window: old revisions answer CompactedError', async (t) => {
  const dir = tmp(t);
  const s = await EmbeddedStore.open({ dir, historyLimit: 20 });
  t.teardown(() => s.close());
  for (let i = 0; i < 50; i++) await s.put('h', String(i));
  const st = await s.status();
  t.ok(st.compactRevision >= st.revision - 22 && st.compactRevision <= st.revision - 20, `window 20..22 revisions (${st.revision - st.compactRevision})`);
  const err = await s.watch('h', { startRevision: 5 }, collector().handler).catch((e: unknown) => e);
  t.type(err, CompactedError);
  t.equal((err as CompactedError).compactRevision, st.compactRevision);
  await t.rejects(s.get('h', { revision: 3 }), CompactedError);
  t.equal((await s.get('h', { revision: st.revision - 20 }))?.value, '29', 'the last 20 revisions stay readable');
});

t.test('group commit: concurrent puts share fsyncs, each acknowledged after its fsync', async (t) => {
  const dir = tmp(t);
  const s = await EmbeddedStore.open({ dir });
  t.teardown(() => s.close());
  const before = s.fsyncs;
  const c = collector();
  const w = await s.watch('g/', { prefix: true }, c.handler);
  t.teardown(() => w.cancel());
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => s.put(`g/${i}`, 'x')));
  const used = s.fsyncs - before;
  t.ok(used < 200, `200 puts used ${used} fsyncs`);
  t.same(
    results.map((r) => r.revision).sort((a, b) => a - b),
    Array.from({ length: 200 }, (_, i) => results[0]!.revision + i).sort((a, b) => a - b),
    'distinct consecutive revisions',
  );
  await c.until(() => c.events.length === 200);
});

t.test('one process per data directory', async (t) => {
  const dir = tmp(t);
  const s = await EmbeddedStore.open({ dir });
  await t.rejects(EmbeddedStore.open({ dir }), StoreLockedError, 'second open refused');
  await s.close();
  writeFileSync(join(dir, 'LOCK'), '999999999'); // left by a process that died
  const s2 = await EmbeddedStore.open({ dir });
  t.pass('stale lock taken over');
  await s2.close();
  // A lock held by another live process (our parent) is respected and names it.
  writeFileSync(join(dir, 'LOCK'), String(process.ppid));
  await t.rejects(EmbeddedStore.open({ dir }), { name: 'StoreLockedError', pid: process.ppid }, 'live owner: refused');
  // Concurrent openers racing for a stale lock: exactly one wins, no temp files remain.
  writeFileSync(join(dir, 'LOCK'), '999999999');
  const opened = await Promise.allSettled(Array.from({ length: 12 }, () => EmbeddedStore.open({ dir })));
  const winners = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  t.equal(winners.length, 1, 'one opener takes the stale lock');
  t.ok(opened.every((r) => r.status === 'fulfilled' || r.reason instanceof StoreLockedError), 'the others get StoreLockedError');
  t.equal(readFileSync(join(dir, 'LOCK'), 'utf8'), String(process.pid), 'the lock holds the winner pid');
  t.same(readdirSync(dir).filter((n) => n.startsWith('LOCK.')), [], 'no temp lock files left');
  await winners[0]?.close();
  // A directory that cannot be created: a typed error, not a raw ENOTDIR.
  writeFileSync(join(dir, 'plain-file'), '');
  await t.rejects(EmbeddedStore.open({ dir: join(dir, 'plain-file', 'sub') }), { name: 'StoreUnavailableError', context: { errno: 'ENOTDIR' } });
});

t.test('closed store and openStore()', async (t) => {
  const dir = tmp(t);
  const s = await openStore({ kind: 'embedded', dir });
  t.equal(s.kind, 'embedded');
  await s.close();
  await s.close();
  await t.rejects(s.put('a', 'b'), StoreClosedError);
  // Deliberately ill-typed, as from unchecked JSON config.
  await t.rejects(openStore({ kind: 'nope' } as unknown as Parameters<typeof openStore>[0]), /unknown store kind/);
  t.throws(() => new EtcdStore({ endpoints: [] }), InvalidRequestError);
  t.throws(() => new EtcdStore({ endpoints: ['http://127.0.0.1:1'], prefix: '' }), InvalidRequestError);
  const e = await openStore({ kind: 'etcd', endpoints: ['http://127.0.0.1:1'] });
  t.equal(e.kind, 'etcd');
  await e.close();
});
