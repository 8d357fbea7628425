/**
 * `npm run bench -- store [--seconds S] [--reps N]`
 * Durable puts/s (256-byte values) with 1, 16 and 256 concurrent clients, for the
 * embedded store and for a local etcd (Debian's etcd-server, started here, driven by
 * the npm etcd3 client through EtcdStore), in the same run; then watch delivery
 * latency with 1,000 watchers (from put() call to each watcher's callback).
 * Last line: one JSON object with the figures and the embedded/etcd ratios.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore, EtcdStore, type Store } from '../../src/store/index.js';
import { startEtcd } from '../../test/helpers/etcd.js';

const args = process.argv.slice(2);
const arg = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const SECONDS = arg('--seconds', 2);
const REPS = arg('--reps', 3);
const CONCURRENCY = [1, 16, 256];
const WATCHERS = 1000;
const WATCH_PUTS = arg('--watch-puts', 50);
const value = 'v'.repeat(256);
const log = (s: string) => process.stdout.write(`${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function putsPerSecond(store: Store, concurrency: number, tag: string): Promise<number> {
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      let i = 0;
      while (performance.now() < end) {
        await store.put(`bench/${tag}/${w}/${i++ % 1000}`, value);
        n++;
      }
    }),
  );
  return n / ((performance.now() - start) / 1000);
}

/**
 * Interleaved: for each rep and concurrency, embedded then etcd back to back, so load
 * from other processes on the shared machine hits both sides alike.
 */
async function measureBoth(emb: Store, et: Store): Promise<{ embedded: Record<string, number>; etcd: Record<string, number> }> {
  const runs: Record<'embedded' | 'etcd', Record<string, number[]>> = { embedded: {}, etcd: {} };
  for (let r = 0; r < REPS; r++) {
    for (const c of CONCURRENCY) {
      const e = await putsPerSecond(emb, c, `${c}-${r}`);
      const x = await putsPerSecond(et, c, `${c}-${r}`);
      (runs.embedded[String(c)] ??= []).push(e);
      (runs.etcd[String(c)] ??= []).push(x);
      log(`rep ${r + 1}/${REPS}, ${c} clients: embedded ${Math.round(e)} puts/s, etcd ${Math.round(x)} puts/s`);
    }
  }
  const med = (m: Record<string, number[]>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Math.round(median(v))]));
  return { embedded: med(runs.embedded), etcd: med(runs.etcd) };
}

async function watchLatency(name: string, store: Store): Promise<{ p50: number; p99: number; samples: number }> {
  const samples: number[] = [];
  let sentAt = new Map<string, number>();
  const watches = [];
  for (let i = 0; i < WATCHERS; i++) {
    watches.push(
      await store.watch('lat/', { prefix: true }, {
        onEvents: (events) => {
          const now = performance.now();
          for (const e of events) {
            const t0 = sentAt.get(e.kv.value);
            if (t0 !== undefined) samples.push(now - t0);
          }
        },
      }),
    );
  }
  log(`${name}: ${WATCHERS} watchers up`);
  for (let i = 0; i < WATCH_PUTS; i++) {
    const v = `m${i}`;
    sentAt.set(v, performance.now());
    await store.put(`lat/${i % 10}`, v);
    // Let every watcher receive it before the next put, so we time delivery, not queueing.
    const deadline = performance.now() + 5000;
    while (samples.length < (i + 1) * WATCHERS && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(watches.map((w) => w.cancel()));
  sentAt = new Map();
  const sorted = samples.sort((a, b) => a - b);
  const res = { p50: +pct(sorted, 50).toFixed(2), p99: +pct(sorted, 99).toFixed(2), samples: sorted.length };
  log(`${name}: watch delivery p50 ${res.p50} ms, p99 ${res.p99} ms over ${res.samples} deliveries (expected ${WATCHERS * WATCH_PUTS})`);
  return res;
}

const dir = mkdtempSync(join(tmpdir(), 'tenet-bench-store-'));
const etcd = await startEtcd();
log(`etcd ${etcd.endpoint} (pid ${etcd.pid()}), embedded store in ${dir}; ${SECONDS}s x ${REPS} reps per point; load ${loadavg()[0]!.toFixed(2)}`);
try {
  const emb = await EmbeddedStore.open({ dir: join(dir, 'emb') });
  const et = new EtcdStore({ endpoints: [etcd.endpoint], prefix: 'bench/' });
  const { embedded, etcd: etcdPuts } = await measureBoth(emb, et);
  log(`medians: embedded ${JSON.stringify(embedded)}, etcd ${JSON.stringify(etcdPuts)}; embedded used ${emb.fsyncs} fsyncs`);
  const embWatch = await watchLatency('embedded', emb);
  const etcdWatch = await watchLatency('etcd', et);
  await emb.close();
  await et.close();
  const ratios: Record<string, number> = {};
  for (const c of CONCURRENCY) ratios[String(c)] = +(embedded[String(c)]! / etcdPuts[String(c)]!).toFixed(2);
  console.log(
    JSON.stringify({
      bench: 'store',
      value_bytes: 256,
      seconds_per_run: SECONDS,
      reps: REPS,
      embedded_puts_per_s: embedded,
      etcd_puts_per_s: etcdPuts,
      ratio_embedded_over_etcd: ratios,
      ratio_min: Math.min(...Object.values(ratios)),
      watchers: WATCHERS,
      watch_p50_ms: embWatch.p50,
      watch_p99_ms: embWatch.p99,
      etcd_watch_p50_ms: etcdWatch.p50,
      etcd_watch_p99_ms: etcdWatch.p99,
      load_avg_1m: +loadavg()[0]!.toFixed(2),
    }),
  );
} finally {
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
}
