/**
 * `npm run bench -- ovsdb [rows] [updates]`: OVSDB client + replica against a
 * private ovsdb-server (temp dir, stopped by pid).
 *   1. bulk-create ROWS Interface rows (and their Ports) in a few transactions;
 *   2. initial sync: Tenet's Replica (monitor_cond, all Interface columns, typed
 *      rows) vs. a minimal raw JSON-RPC `monitor_cond` of the same table (the
 *      like-for-like reference) and a raw RFC 7047 `monitor` (for information);
 *   3. UPDATES single-row update transactions, 16 in flight, on the replica's own
 *      connection: txn/s and latency from sending the transaction to the
 *      replica's change event. References, each run while no other monitor is
 *      open on the server: a minimal raw pipelined JSON-RPC client with no
 *      monitor (the reference), and the same raw client that also holds a
 *      raw monitor_cond of the table on its connection (the same server and
 *      notification work as Tenet's replica; notifications are only JSON-parsed).
 * Medians of 3 alternating runs. Last line: one JSON object.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { JsonFramer, OvsdbClient, Replica } from '../../src/ovsdb/index.js';
import { startOvsdbServer } from '../../test/helpers/ovsdb-server.js';

const ROWS = Number(process.argv[2] ?? 10_000);
const UPDATES = Number(process.argv[3] ?? 10_000);
const IN_FLIGHT = 16;
const DB = 'Open_vSwitch';
const log = (s: string) => console.log(s);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const pct = (a: number[], p: number) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;
/** Distinguishes the values each run writes: an update that writes the value already there changes nothing, and the server then sends no update. */
let runNo = 0;

/** CPU seconds used so far by process `pid` (user + system), from /proc. */
function procCpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
/** Runs `f`, returning its result plus the CPU µs per `n` items spent by the server and by this process. */
async function withCpu<T>(pid: number, n: number, f: () => Promise<T>): Promise<T & { server_us: number; client_us: number }> {
  const s0 = procCpu(pid);
  const c0 = selfCpu();
  const r = await f();
  return { ...r, server_us: ((procCpu(pid) - s0) * 1e6) / n, client_us: ((selfCpu() - c0) * 1e6) / n };
}

function rawSocket(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ path }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Reference: one raw `monitor` request; time until its reply has been received and JSON.parsed. */
async function rawMonitor(path: string, method: 'monitor' | 'monitor_cond' = 'monitor'): Promise<number> {
  const s = await rawSocket(path);
  const t0 = performance.now();
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      if (d[d.length - 1] !== 0x7d) return; // the reply ends with '}'; try to parse only then
      try {
        JSON.parse(Buffer.concat(chunks).toString());
        resolve();
      } catch {
        /* not complete yet */
      }
    });
    const req = method === 'monitor' ? { Interface: {} } : { Interface: [{}] };
    s.write(JSON.stringify({ method, params: [DB, null, req], id: 1 }));
  });
  const dt = (performance.now() - t0) / 1000;
  s.destroy();
  return dt;
}

/**
 * Reference: minimal pipelined JSON-RPC transact client; returns txn/s and reply
 * latencies (ms). With `monitored`, it first sets up a raw monitor_cond of all
 * Interface columns on the same connection, so the server sends it an update2
 * for every transaction, as it does for Tenet's replica.
 */
async function rawUpdates(path: string, uuids: string[], n: number, monitored = false): Promise<{ tps: number; lat: number[]; notifications: number }> {
  const s = await rawSocket(path);
  const framer = new JsonFramer();
  let notifications = 0;
  if (monitored) {
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer) =>
        framer.push(d, (m) => {
          if ((m as { id: unknown }).id === 'mon') {
            s.off('data', onData);
            resolve();
          }
        });
      s.on('data', onData);
      s.write(JSON.stringify({ method: 'monitor_cond', params: [DB, 'raw', { Interface: [{}] }], id: 'mon' }));
    });
  }
  const sent = new Map<number, number>();
  const lat: number[] = [];
  let next = 0;
  let done = 0;
  const tag = ++runNo;
  const t0 = performance.now();
  const send = () => {
    const i = next++;
    sent.set(i, performance.now());
    s.write(
      `{"method":"transact","params":["${DB}",{"op":"update","table":"Interface","where":[["_uuid","==",["uuid","${uuids[i % uuids.length]}"]]],"row":{"external_ids":["map",[["raw","${tag}-${i}"]]]}}],"id":${i}}`,
    );
  };
  await new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) =>
      framer.push(d, (m) => {
        const id = (m as { id: number | null }).id;
        if (id === null) {
          notifications++; // update2 (already JSON-parsed by the framer)
          return;
        }
        lat.push(performance.now() - sent.get(id)!);
        sent.delete(id);
        if (++done === n) resolve();
        else if (next < n) send();
      }),
    );
    for (let k = 0; k < IN_FLIGHT; k++) send();
  });
  const tps = n / ((performance.now() - t0) / 1000);
  s.destroy();
  return { tps, lat, notifications };
}

async function tenetSync(target: string): Promise<{ s: number; replica: Replica }> {
  const replica = new Replica(target, { db: DB, tables: { Interface: 'all' } });
  const t0 = performance.now();
  await replica.start();
  return { s: (performance.now() - t0) / 1000, replica };
}

async function tenetUpdates(replica: Replica, uuids: string[], n: number): Promise<{ tps: number; lat: number[] }> {
  const lat: number[] = [];
  const started = new Map<string, number>();
  const onChange = (e: { uuid: string; table: string }) => {
    const t = started.get(e.uuid);
    if (t !== undefined) {
      lat.push(performance.now() - t);
      started.delete(e.uuid);
    }
  };
  replica.on('change', onChange);
  let next = 0;
  const tag = ++runNo;
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const u = uuids[i % uuids.length]!;
      started.set(u, performance.now());
      await replica.transact([{ op: 'update', table: 'Interface', where: [['_uuid', '==', u]], row: { external_ids: { tenet: `${tag}-${i}` } } }]);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const tps = n / ((performance.now() - t0) / 1000);
  replica.off('change', onChange);
  return { tps, lat };
}

const srv = await startOvsdbServer();
const path = srv.unix.slice('unix:'.length);
try {
  log(`ovsdb-server pid ${srv.pid} in ${srv.dir}`);
  // 1. Bulk load.
  const c = await OvsdbClient.connect(srv.unix);
  await srv.vsctl('add-br', 'br-bench');
  const tl = performance.now();
  const BATCH = 2000;
  for (let base = 0; base < ROWS; base += BATCH) {
    const ops: Parameters<OvsdbClient['transact']>[1][number][] = [];
    const refs: { namedUuid: string }[] = [];
    for (let i = base; i < Math.min(ROWS, base + BATCH); i++) {
      ops.push({ op: 'insert', table: 'Interface', row: { name: `if${i}`, type: 'internal', external_ids: { 'iface-id': `ep${i}` } }, uuidName: `i${i}` });
      ops.push({ op: 'insert', table: 'Port', row: { name: `if${i}`, interfaces: { namedUuid: `i${i}` } }, uuidName: `p${i}` });
      refs.push({ namedUuid: `p${i}` });
    }
    ops.push({ op: 'mutate', table: 'Bridge', where: [['name', '==', 'br-bench']], mutations: [['ports', 'insert', refs]] });
    await c.transact(DB, ops, { timeoutMs: 120_000 });
  }
  log(`loaded ${ROWS} Interface rows in ${((performance.now() - tl) / 1000).toFixed(2)} s`);
  c.close();

  // 2. Initial sync, alternating references and Tenet, 3 runs each; nothing
  //    else monitors the server meanwhile.
  const rawSyncs: number[] = [];
  const rawCondSyncs: number[] = [];
  const syncs: number[] = [];
  let uuids: string[] = [];
  for (let run = 0; run < 3; run++) {
    rawSyncs.push(await rawMonitor(path));
    rawCondSyncs.push(await rawMonitor(path, 'monitor_cond'));
    const r = await tenetSync(srv.unix);
    syncs.push(r.s);
    const size = r.replica.rows('Interface').size;
    uuids = [...r.replica.rows('Interface').keys()];
    r.replica.close();
    log(`sync run ${run + 1}: raw monitor ${rawSyncs[run]!.toFixed(3)} s, raw monitor_cond ${rawCondSyncs[run]!.toFixed(3)} s, Tenet replica ${syncs[run]!.toFixed(3)} s (${size} rows)`);
  }

  // 3. Pipelined single-row updates: 3 rounds, alternating references and Tenet
  //    (so none always runs on a warmer server). Only the connection being
  //    measured is open: Tenet's replica is opened (untimed sync) for its turn
  //    and closed before the references run. txn/s = median round, latency
  //    percentiles over all rounds' samples.
  type Run = Awaited<ReturnType<typeof rawUpdates>> & { server_us: number; client_us: number };
  const refRuns: Run[] = [];
  const monRuns: Run[] = [];
  const myRuns: (Awaited<ReturnType<typeof tenetUpdates>> & { server_us: number; client_us: number })[] = [];
  for (let round = 0; round < 3; round++) {
    const a = await withCpu(srv.pid, UPDATES, () => rawUpdates(path, uuids, UPDATES));
    const m = await withCpu(srv.pid, UPDATES, () => rawUpdates(path, uuids, UPDATES, true));
    const { replica } = await tenetSync(srv.unix);
    const b = await withCpu(srv.pid, UPDATES, () => tenetUpdates(replica, uuids, UPDATES));
    replica.close();
    refRuns.push(a);
    monRuns.push(m);
    myRuns.push(b);
    log(
      `round ${round + 1}: raw no monitor ${Math.round(a.tps)} txn/s (p50 ${pct(a.lat, 50).toFixed(3)} ms reply), ` +
        `raw + monitor_cond ${Math.round(m.tps)} txn/s (p50 ${pct(m.lat, 50).toFixed(3)} ms reply, ${m.notifications} update2), ` +
        `Tenet client+replica ${Math.round(b.tps)} txn/s (p50 ${pct(b.lat, 50).toFixed(3)} ms to replica event, ${b.lat.length} events)`,
    );
  }
  const summary = (runs: { tps: number; lat: number[]; server_us: number; client_us: number }[]) => ({
    tps: median(runs.map((r) => r.tps)),
    lat: runs.flatMap((r) => r.lat),
    server_us: runs.reduce((x, r) => x + r.server_us, 0) / runs.length,
    client_us: runs.reduce((x, r) => x + r.client_us, 0) / runs.length,
  });
  const ref = summary(refRuns);
  const mon = summary(monRuns);
  const mine = summary(myRuns);
  const line = (name: string, x: typeof ref, what: string) =>
    log(`${name}: ${Math.round(x.tps)} txn/s, p50 ${pct(x.lat, 50).toFixed(3)} ms, p99 ${pct(x.lat, 99).toFixed(3)} ms (${what}); CPU per txn: server ${x.server_us.toFixed(1)} µs, client ${x.client_us.toFixed(1)} µs`);
  line('raw pipelined client, no monitor', ref, 'reply latency');
  line('raw pipelined client + raw monitor_cond', mon, 'reply latency');
  line('Tenet client+replica', mine, 'send → replica event');

  const out = {
    rows: ROWS,
    updates: UPDATES,
    in_flight: IN_FLIGHT,
    sync_s: r3(median(syncs)),
    txn_per_s: Math.round(mine.tps),
    p50_ms: r3(pct(mine.lat, 50)),
    p99_ms: r3(pct(mine.lat, 99)),
    ref_raw_monitor_cond_s: r3(median(rawCondSyncs)),
    ref_raw_monitor_s: r3(median(rawSyncs)),
    ref_raw_txn_per_s: Math.round(ref.tps),
    ref_raw_p50_ms: r3(pct(ref.lat, 50)),
    ref_raw_p99_ms: r3(pct(ref.lat, 99)),
    ref_raw_monitored_txn_per_s: Math.round(mon.tps),
    ref_raw_monitored_p50_ms: r3(pct(mon.lat, 50)),
    server_cpu_us_per_txn: Math.round(mine.server_us),
    client_cpu_us_per_txn: Math.round(mine.client_us),
    ref_raw_server_cpu_us_per_txn: Math.round(ref.server_us),
    ref_raw_client_cpu_us_per_txn: Math.round(ref.client_us),
    ref_raw_monitored_server_cpu_us_per_txn: Math.round(mon.server_us),
    ref_raw_monitored_client_cpu_us_per_txn: Math.round(mon.client_us),
    // Headline ratios: like for like (monitor_cond sync; the no-monitor raw client).
    sync_ratio_vs_raw: r3(median(syncs) / median(rawCondSyncs)),
    sync_ratio_vs_raw_plain_monitor: r3(median(syncs) / median(rawSyncs)),
    txn_ratio_vs_raw: r3(mine.tps / ref.tps),
    txn_ratio_vs_raw_monitored: r3(mine.tps / mon.tps),
    // Other work on the machine skews absolute figures; the ratios are what compare.
    load_avg_1m: Math.round(loadavg()[0]! * 100) / 100,
  };
  console.log(JSON.stringify(out));
} finally {
  await srv.stop();
}
