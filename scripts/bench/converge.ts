/**
 * `npm run bench -- converge [--runs 5] [--hosts 4] [--tenants 5] [--per-tenant 20] [--interval-ms 50] [--probe-timeout 60] [--probers-after] [--keep]`
 *
 * Convergence of the controller, against OVN's figures in the same layout: a lab
 * of 4 hosts × 25 containers in 5 tenants that all use 10.0.0.0/24; one apply of
 * the whole topology. Measured from just before the PUT /v1/topology:
 * - realized_s: until every host reported (event stream) that it realized the generation;
 * - reachable_s: until every same-tenant pair (the policy allows them all: 1,900
 *   pairs) has answered a ping. One prober process (prober/prober.c, built with gcc
 *   here) holds a raw ICMP socket in every container namespace, is released at t0
 *   and pings each pair every --interval-ms until it answers once.
 * Before each run: the containers exist and are bound (their ports carry the
 * iface-ids, with the fixed IPs/MACs the topology gives them), the controller has
 * the hosts (a hosts-only document is realized: br-int connected, tunnels up), the
 * underlay is warm, and the containers' neighbour tables are empty with a 20 ms
 * ARP retransmit time (the kernel's default 1 s would measure Linux, not the network).
 * Between runs the tenants are deleted again. Figures: medians over the runs, and
 * each run's. Last line: one JSON object.
 *
 * `--probers-after`: release the prober only once every host realized the generation
 * (the prober's own time from an already converged network; reachable_s is then an
 * upper bound).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient } from '../../src/api/client.js';
import {
  addContainer,
  labDown,
  labTopologyHosts,
  labUp,
  loadLab,
  readState,
  requireRoot,
  startLabController,
  warmUnderlay,
  type LabController,
  type LabState,
} from '../../src/lab/index.js';
import { run } from '../../src/util/exec.js';
import { buildProber, startProber } from './prober/index.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    // 50 ms: at 10 ms the prober alone offers 1,900 × 100 = 190,000 echoes/s to four userspace
    // datapaths sharing 2 cores with the controller (every unanswered echo is a slow-path miss), and
    // measurably delays what it measures (docs/PERFORMANCE.md, converge). 50 ms adds at most 50 ms of
    // detection delay per pair, which counts against Tenet.
    'interval-ms': { type: 'string', default: '50' },
    'probe-timeout': { type: 'string', default: '60' },
    hosts: { type: 'string', default: '4' },
    tenants: { type: 'string', default: '5' },
    'per-tenant': { type: 'string', default: '20' },
    name: { type: 'string', default: 'bconv' },
    keep: { type: 'boolean', default: false },
    'probers-after': { type: 'boolean', default: false },
  },
});
const RUNS = Number(values.runs);
const HOSTS = Number(values.hosts);
const TENANTS = Number(values.tenants);
const PER_TENANT = Number(values['per-tenant']);
const NAME = values.name!;
const INTERVAL_MS = Number(values['interval-ms']);
const PROBE_TIMEOUT_S = Number(values['probe-timeout']);
/** Release the prober only once every host realized the generation. */
const PROBERS_AFTER = values['probers-after']!;
const OVN = { realized_s: 0.25, reachable_s: 0.55, flows_per_host: 1019, rss_mb: 12 };
const log = (m: string) => console.error(`[converge] ${m}`);

requireRoot('the converge benchmark');

interface Ep {
  tenant: string;
  name: string;
  host: string;
  ip: string;
  mac: string;
}

/** Fixed addresses: the containers exist before the controller has the tenants. */
function endpoints(): Ep[] {
  const out: Ep[] = [];
  let k = 0;
  for (let t = 1; t <= TENANTS; t++) {
    for (let i = 1; i <= PER_TENANT; i++, k++) {
      out.push({
        tenant: `t${t}`,
        name: `c${i}`,
        host: `host${(k % HOSTS) + 1}`,
        ip: `10.0.0.${10 + i}`,
        mac: `02:00:00:00:${t.toString(16).padStart(2, '0')}:${i.toString(16).padStart(2, '0')}`,
      });
    }
  }
  return out;
}

function topology(state: LabState, eps: Ep[], withTenants: boolean): object {
  const tenants = [];
  if (withTenants) {
    for (let t = 1; t <= TENANTS; t++) {
      tenants.push({
        name: `t${t}`,
        networks: [{ name: 'net', subnet: '10.0.0.0/24' }],
        endpoints: eps.filter((e) => e.tenant === `t${t}`).map((e) => ({ name: e.name, network: 'net', host: e.host, ip: e.ip, mac: e.mac })),
        policies: [{ name: 'no-telnet', protocol: 'tcp', ports: [23], action: 'deny' }],
        defaultPolicy: 'allow',
      });
    }
  }
  return { version: 1, hosts: labTopologyHosts(state), tenants };
}

const cname = (e: Ep) => `${e.tenant}-${e.name}`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

async function oneRun(state: LabState, ctl: LabController, client: ApiClient, eps: Ep[], proberBin: string, runNo: number) {
  // Clean slate: empty neighbour tables, fast ARP retries.
  await Promise.all(
    eps.map(async (e) => {
      const ns = state.containers.find((c) => c.name === cname(e))!.namespace;
      await run(['ip', 'netns', 'exec', ns, 'sh', '-c', 'ip neigh flush all; sysctl -q -w net.ipv4.neigh.eth0.retrans_time_ms=20']);
    }),
  );
  await warmUnderlay(state);

  // One prober process with a socket in each container namespace, idle until go().
  const byTenant = new Map<string, Ep[]>();
  for (const e of eps) byTenant.set(e.tenant, [...(byTenant.get(e.tenant) ?? []), e]);
  const peersOf = eps.map((e) => byTenant.get(e.tenant)!.filter((p) => p !== e));
  const prober = await startProber(
    proberBin,
    eps.map((e, i) => ({ namespace: state.containers.find((c) => c.name === cname(e))!.namespace, peers: peersOf[i]!.map((p) => p.ip) })),
    { intervalMs: INTERVAL_MS, timeoutMs: PROBE_TIMEOUT_S * 1000 },
  );
  log(`run ${runNo}: neighbour tables flushed, underlay warm, prober ${prober.pid} ready`);

  const realizedAt = new Map<string, bigint>();
  let generation = Infinity;
  const closeEvents = await client.events((m) => {
    if (m.type === 'realized' && m.generation >= generation) realizedAt.set(m.host, process.hrtime.bigint());
  });

  const doc = topology(state, eps, true);
  let t0 = process.hrtime.bigint();
  if (!PROBERS_AFTER) t0 = prober.go();
  let status;
  try {
    const applied = await client.apply(doc);
    generation = applied.generation;
    status = await client.wait(applied.generation, 60);
  } catch (err) {
    prober.kill();
    throw err;
  }
  if (PROBERS_AFTER) prober.go();
  const waitedAt = process.hrtime.bigint();
  log(`run ${runNo}: generation ${generation} stored and realized; waiting for the prober`);
  const probe = await prober.result;
  closeEvents();

  const sec = (ns: bigint) => Number(ns) / 1e9;
  const pairs = probe.pairs;
  const hostsRealized = [...realizedAt.values()];
  const realized_s = hostsRealized.length === HOSTS ? sec(hostsRealized.reduce((a, b) => (a > b ? a : b)) - t0) : sec(waitedAt - t0);
  const offset = sec(probe.goNs - t0); // prober's t0 relative to the apply's start
  const firsts = probe.answers.map((a) => a.atS + offset);
  const reachable_s = probe.answers.length === pairs ? Math.max(...firsts) : NaN;
  // Unanswered pairs by (from host -> to host): a pattern names the part of the network at fault.
  const missingBy = new Map<string, number>();
  for (const m of probe.missing) {
    const from = eps[m.from]!;
    const to = peersOf[m.from]![m.peer]!;
    const k = from.host === to.host ? `${from.host} local` : `${from.host}->${to.host}`;
    missingBy.set(k, (missingBy.get(k) ?? 0) + 1);
  }
  const hosts = await client.hosts();
  const flows = hosts.map((h) => h.flows);
  const hostTimes = [...realizedAt.values()].map((t) => r3(sec(t - t0))).sort((a, b) => a - b);
  const sorted = [...firsts].sort((a, b) => a - b);
  const q = (p: number) => r3(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN);
  log(
    `run ${runNo}: realized ${r3(realized_s)} s (${status.realized ? 'all hosts' : 'NOT all hosts'}: ${hostTimes.join('/')}), ` +
      `${probe.answers.length}/${pairs} pairs answered, first answers p10/p50/p90 ${q(0.1)}/${q(0.5)}/${q(0.9)} s, last at ${r3(reachable_s)} s; ` +
      `prober ${probe.sent} echoes, ${r3(probe.cpuS)} CPU-s; flows per host ${flows.join('/')}; controller RSS ${rssMb(ctl.pid)} MB` +
      (missingBy.size ? `; unanswered by host pair: ${[...missingBy].map(([k, n]) => `${k} ${n}`).join(', ')}` : ''),
  );
  return {
    realized_s,
    reachable_s,
    hostsRealized_s: hostTimes,
    firstAnswerMedian_s: median(firsts),
    answered: probe.answers.length,
    pairs,
    flows,
    rss: rssMb(ctl.pid),
    proberCpuS: probe.cpuS,
    proberSent: probe.sent,
    missingBy: Object.fromEntries(missingBy),
  };
}

async function main(): Promise<void> {
  if (readState(NAME)) labDown(NAME);
  const eps = endpoints();
  const loadStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  log(`lab ${NAME}: ${HOSTS} hosts, ${eps.length} containers in ${TENANTS} tenants (all 10.0.0.0/24)`);
  await labUp({ name: NAME, hosts: HOSTS });
  const workDir = mkdtempSync(join(tmpdir(), 'tenet-converge-'));
  const proberBin = buildProber(workDir);
  let ctl: LabController | undefined;
  try {
    let state = loadLab(NAME);
    ctl = await startLabController(state, { stateDir: join(workDir, 'state'), driftIntervalS: 0, logLevel: 'warn' });
    // Generous: on a loaded machine an apply of 100 endpoints took longer than the default 30 s.
    const client = new ApiClient({ url: ctl.url, token: ctl.token!, timeoutMs: 180_000 });
    const hostsOnly = await client.apply(topology(state, eps, false));
    const ready = await client.wait(hostsOnly.generation, 60);
    if (!ready.realized) throw new Error(`hosts not ready: ${JSON.stringify(ready.hosts.map((h) => [h.name, h.state, h.lastError]))}`);
    log(`controller pid ${ctl.pid} has the ${HOSTS} hosts; creating ${eps.length} containers`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < eps.length) {
          const e = eps[next++]!;
          await addContainer(NAME, e.host, cname(e), { ip: `${e.ip}/24`, mac: e.mac, ifaceId: `${e.tenant}/${e.name}` });
        }
      }),
    );
    state = loadLab(NAME);
    for (let i = 0; i < 300; i++) {
      const bound = (await client.hosts()).reduce((n, h) => n + h.bindings, 0);
      if (bound >= eps.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    log(`${eps.length} containers bound`);
    const results = [];
    for (let runNo = 1; runNo <= RUNS; runNo++) {
      results.push(await oneRun(state, ctl, client, eps, proberBin, runNo));
      if (runNo < RUNS) {
        const cleared = await client.apply(topology(state, eps, false));
        await client.wait(cleared.generation, 60);
      }
    }
    const realized_s = r3(median(results.map((r) => r.realized_s)));
    const reachable_s = r3(median(results.map((r) => r.reachable_s)));
    const flowsPerHost = Math.round(median(results.at(-1)!.flows));
    const rss = Math.max(...results.map((r) => r.rss));
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(
      JSON.stringify({
        bench: 'converge',
        prober: PROBERS_AFTER ? 'after-realized' : 'at-apply',
        hosts: HOSTS,
        tenants: TENANTS,
        containers: eps.length,
        pairs: results[0]!.pairs,
        runs: RUNS,
        realized_s,
        reachable_s,
        realized_runs_s: results.map((r) => r3(r.realized_s)),
        reachable_runs_s: results.map((r) => r3(r.reachable_s)),
        answered_runs: results.map((r) => r.answered),
        all_pairs_answered: results.every((r) => r.answered === r.pairs),
        hosts_realized_runs_s: results.map((r) => r.hostsRealized_s),
        first_answer_median_runs_s: results.map((r) => r3(r.firstAnswerMedian_s)),
        prober_interval_ms: INTERVAL_MS,
        prober_cpu_runs_s: results.map((r) => r3(r.proberCpuS)),
        prober_echoes_runs: results.map((r) => r.proberSent),
        ...(results.some((r) => Object.keys(r.missingBy).length) ? { unanswered_by_host_pair_runs: results.map((r) => r.missingBy) } : {}),
        flows_per_host: flowsPerHost,
        controller_rss_mb: rss,
        ovn_realized_s: OVN.realized_s,
        ovn_reachable_s: OVN.reachable_s,
        ovn_flows_per_host: OVN.flows_per_host,
        ovn_controller_rss_mb: OVN.rss_mb,
        realized_ratio: r3(realized_s / OVN.realized_s),
        reachable_ratio: r3(reachable_s / OVN.reachable_s),
        target_met: realized_s <= OVN.realized_s && reachable_s <= OVN.reachable_s,
        loadavg_start: loadStart,
        loadavg: load,
      }),
    );
  } finally {
    if (ctl) await ctl.stop();
    if (!values.keep) labDown(NAME);
    rmSync(workDir, { recursive: true, force: true });
  }
}

await main();
