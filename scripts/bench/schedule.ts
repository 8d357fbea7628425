/**
 * `npm run bench -- schedule [--units N] [--hosts N] [--reps N]`
 * The scheduler's placement function on one core: 100,000 units with mixed
 * constraints onto 5,000 simulated hosts (no I/O: the pure `place()`).
 *
 * Units (deterministic pseudo-random sizes and labels):
 *   55% plain (cpu + memory only); 15% hostLabels region=X; 5% region in {eu,us} AND
 *   disk=ssd; 2% gpu=yes; 10% templates `svcK@1..5` whose instances conflict with each
 *   other (`svcK@*`, fleet's spreading idiom); 6% app/sidecar pairs (sidecar machineOf
 *   app); 1% pinned to a host; ~6% with replicas 3; 3 global units (one limited to
 *   disk=ssd); 20 that ask for more memory than any host has (explained, unplaceable).
 * Hosts: 3 regions x 3 zones, 30% ssd, 5% gpu, 16-32 cores, 32-128 GiB.
 *
 * Timed: place() from nothing (median of --reps runs), then two incremental calls with
 * the result as `current`: 1,000 new units, and 50 hosts gone (their instances move).
 * placements_per_s = instances placed / CPU seconds of the from-nothing call: place()
 * runs on one thread, so its CPU time is one core's time and does not grow when the
 * shared machine is busy (GC helper threads add theirs: the figure is conservative).
 * About a tenth of the instances are global ones (one per eligible host, no choice to
 * make): non_global_placements_per_s counts only the others, over the same CPU time.
 * placements_per_wall_s = the same over wall seconds (inflated by other load).
 * peak_mb = the process's peak RSS (getrusage maxrss), input generation included.
 */
import { loadavg } from 'node:os';
import { place, type PlacementHost, type PlacementUnit } from '../../src/scheduler/index.js';

const args = process.argv.slice(2);
/** A positive integer option (the last one given wins); anything else (missing value, NaN, 0, 1.5) stops the bench. */
const arg = (name: string, def: number) => {
  const i = args.lastIndexOf(name);
  if (i < 0) return def;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 1) {
    process.stderr.write(`${name} ${args[i + 1] ?? ''}: give a positive integer\n`);
    process.exit(2);
  }
  return v;
};
const UNITS = arg('--units', 100_000);
const HOSTS = arg('--hosts', 5_000);
const REPS = arg('--reps', 3);
const NOMAD_PER_S = 3_750; // 1,000,000 containers on 5,000 hosts in under 5 min, 5 servers (HashiCorp C1M, 2016)
const TARGET_PER_S = 10_000;
const log = (s: string) => process.stdout.write(`${s}\n`);

/** mulberry32: a small deterministic PRNG, so every run places the same input. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const REGIONS = ['eu', 'us', 'ap'];

function makeHosts(n: number): PlacementHost[] {
  const r = prng(1);
  return Array.from({ length: n }, (_, i) => {
    const region = REGIONS[i % 3]!;
    const labels: Record<string, string> = { region, zone: `${region}-${'abc'[Math.floor(i / 3) % 3]}`, disk: r() < 0.3 ? 'ssd' : 'hdd', rack: `r${i % 100}` };
    if (r() < 0.05) labels.gpu = 'yes';
    return { name: `host${String(i).padStart(5, '0')}`, labels, cpu: (16 + Math.floor(r() * 17)) * 1000, memory: (32 + Math.floor(r() * 97)) * GiB };
  });
}

function makeUnits(n: number, hosts: number): PlacementUnit[] {
  const r = prng(2);
  const units: PlacementUnit[] = [];
  const base = (name: string): PlacementUnit => ({
    name,
    replicas: 1,
    global: false,
    cpu: 100 + Math.floor(r() * 14) * 100,
    memory: (128 + Math.floor(r() * 31) * 128) * MiB,
    hostLabels: {},
    conflicts: [],
  });
  for (let g = 0; g < 3; g++) units.push({ ...base(`global${g}`), cpu: 250, memory: 256 * MiB, global: true, hostLabels: g === 2 ? { disk: ['ssd'] } : {} });
  for (let i = 0; i < 20; i++) units.push({ ...base(`huge${i}`), memory: 1024 * GiB });
  let i = 0;
  while (units.length < n) {
    const k = i++;
    const x = r();
    if (x < 0.1 && units.length + 5 <= n) {
      for (let j = 1; j <= 5; j++) units.push({ ...base(`svc${k}@${j}`), conflicts: [`svc${k}@*`] });
    } else if (x < 0.16 && units.length + 2 <= n) {
      units.push(base(`app${k}`));
      units.push({ ...base(`side${k}`), cpu: 100, memory: 64 * MiB, machineOf: `app${k}` });
    } else if (x < 0.17) units.push({ ...base(`pin${k}`), host: `host${String(Math.floor(r() * hosts)).padStart(5, '0')}` });
    else if (x < 0.32) units.push({ ...base(`reg${k}`), hostLabels: { region: [REGIONS[k % 3]!] } });
    else if (x < 0.37) units.push({ ...base(`ssd${k}`), hostLabels: { region: ['eu', 'us'], disk: ['ssd'] } });
    else if (x < 0.39) units.push({ ...base(`gpu${k}`), hostLabels: { gpu: ['yes'] } });
    else if (x < 0.45) units.push({ ...base(`rep${k}`), replicas: 3 });
    else units.push(base(`plain${k}`));
  }
  return units;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const hosts = makeHosts(HOSTS);
const units = makeUnits(UNITS, HOSTS);
log(`${units.length} units, ${hosts.length} hosts; ${REPS} reps; load ${loadavg()[0]!.toFixed(2)}`);

const walls: number[] = [];
const cpus: number[] = [];
let result = place(units, hosts);
for (let rep = 0; rep < REPS; rep++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  result = place(units, hosts);
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  walls.push(wall);
  cpus.push(cpu);
  log(`rep ${rep + 1}/${REPS}: ${result.placed.length} placed, ${result.unplaceable.length} unplaceable in ${wall.toFixed(3)} s wall, ${cpu.toFixed(3)} s CPU (${Math.round(result.placed.length / cpu)} placements per CPU-s)`);
}
const placements = result.placed.length;
const globalNames = new Set(units.filter((u) => u.global).map((u) => u.name));
const nonGlobal = result.placed.filter((p) => !globalNames.has(p.unit)).length;
const wall = median(walls);
const cpu = median(cpus);
const perS = Math.round(placements / cpu);
const nonGlobalPerS = Math.round(nonGlobal / cpu);
log(`median: ${placements} placed (${nonGlobal} not global) in ${cpu.toFixed(3)} CPU-s: ${perS} placements per CPU-s, ${nonGlobalPerS} non-global`);
log(`unplaceable example: ${result.unplaceable[0]?.id}: ${result.unplaceable[0]?.reason}`);

// Incremental: the live scheduler calls place() with what runs now.
const current = new Map(result.assignments.map((a) => [a.id, a.host]));
let t0 = performance.now();
const same = place(units, hosts, current);
const resyncMs = performance.now() - t0;
log(`resync (nothing new): ${same.placed.length} placed, ${same.moved.length} moved in ${resyncMs.toFixed(0)} ms`);
const more = makeUnits(1_000, HOSTS)
  .filter((u) => !u.global)
  .map((u) => ({ ...u, name: `new-${u.name}`, ...(u.machineOf ? { machineOf: `new-${u.machineOf}` } : {}), conflicts: u.conflicts.map((g) => `new-${g}`) }));
t0 = performance.now();
const inc = place([...units, ...more], hosts, current);
const incMs = performance.now() - t0;
log(`incremental: +${more.length} units → ${inc.placed.length} placed, ${inc.moved.length} moved in ${incMs.toFixed(0)} ms`);
const gone = new Set(hosts.slice(0, 50).map((h) => h.name));
t0 = performance.now();
const fail = place(units, hosts.filter((h) => !gone.has(h.name)), current);
const failMs = performance.now() - t0;
log(`50 hosts gone: ${fail.moved.length} moved (${fail.moved.filter((m) => m.to === undefined).length} without a new host), ${fail.removed.length} removed in ${failMs.toFixed(0)} ms`);

const peakMb = Math.round(process.resourceUsage().maxRSS / 1024);
log(`peak RSS ${peakMb} MB; heap used now ${Math.round(process.memoryUsage().heapUsed / 2 ** 20)} MB`);
console.log(
  JSON.stringify({
    bench: 'schedule',
    units: units.length,
    hosts: hosts.length,
    placements,
    unplaceable: result.unplaceable.length,
    reps: REPS,
    wall_s: +wall.toFixed(3),
    cpu_s: +cpu.toFixed(3),
    placements_per_s: perS,
    non_global_placements: nonGlobal,
    non_global_placements_per_s: nonGlobalPerS,
    placements_per_wall_s: Math.round(placements / wall),
    peak_mb: peakMb,
    peak_mb_is: 'peak RSS of the bench process (getrusage maxrss)',
    resync_nothing_new_ms: Math.round(resyncMs),
    incremental_1000_units_ms: Math.round(incMs),
    hosts_gone_50_ms: Math.round(failMs),
    hosts_gone_50_moved: fail.moved.length,
    reference: 'Nomad C1M: 1,000,000 containers on 5,000 hosts in < 5 min with 5 servers',
    reference_per_s: NOMAD_PER_S,
    target_per_s: TARGET_PER_S,
    ratio_vs_reference: +(perS / NOMAD_PER_S).toFixed(2),
    ratio_vs_target: +(perS / TARGET_PER_S).toFixed(2),
    load_avg_1m: +loadavg()[0]!.toFixed(2),
  }),
);
