/**
 * `npm run bench -- compile [--tenants N]`: full compile of a generated topology
 * (default 1,000 tenants x 10 networks x 10 endpoints = 100,000 endpoints on 100
 * hosts; each tenant spans 3 hosts, has a router and 2 policies), then 1,000
 * single-endpoint additions applied incrementally. The reference is the full
 * compile measured in the same run (incremental speed-up = full / incremental).
 *
 * full_s: compile() of the validated model (every contribution of every host) plus the
 * flat canonical flow and group list of every host, what a controller hands the
 * reconcilers. Not in it: generating the document, validation + IPAM (validate_s), the
 * offline placement. load_and_compile_s adds validate_s and the placement: the whole
 * document -> flows path, for a reader who counts loading as part of compiling.
 */
import { formatFlow, formatGroup } from '../../src/openflow/index.js';
import { availableParallelism, loadavg } from 'node:os';
import { loadTopology, type TopologyInput } from '../../src/model/index.js';
import { compile, defaultPlacement, deltaFlowCount, IncrementalCompiler } from '../../src/pipeline/index.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const TENANTS = arg('tenants', 1000);
const NETS = 10;
const EPS = 10;
const HOSTS = 100;
const CHANGES = arg('changes', 1000);
const say = (s: string) => console.log(`[compile] ${s}`);

function generate(): TopologyInput {
  const hosts = Array.from({ length: HOSTS }, (_, i) => ({
    name: `h${i}`,
    underlayIp: `198.51.${100 + (i >> 8)}.${i & 255}`,
    ovsdb: `tcp:192.0.2.${i & 255}:6640`,
    datapathType: 'netdev' as const,
  }));
  const tenants = Array.from({ length: TENANTS }, (_, ti) => ({
    name: `t${ti}`,
    networks: Array.from({ length: NETS }, (_, k) => ({ name: `n${k}`, subnet: `10.${k}.0.0/24` })),
    router: {},
    endpoints: Array.from({ length: NETS * EPS }, (_, j) => ({
      name: `e${j}`,
      network: `n${j % NETS}`,
      host: `h${(ti * 3 + (j % 3)) % HOSTS}`,
      labels: { role: j % 2 ? 'web' : 'db' },
    })),
    policies: [
      { name: 'web-db', from: { labels: { role: 'web' } }, to: { networks: ['n1'] }, protocol: 'tcp' as const, ports: [5432], action: 'allow' as const },
      { name: 'icmp', protocol: 'icmp' as const, action: 'allow' as const },
    ],
    defaultPolicy: 'deny' as const,
  }));
  return { hosts, tenants };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2 : 0;
};
const mb = (b: number) => Math.round(b / 1048576);

let peak = 0;
const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
const timer = setInterval(sample, 20);

say(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} on ${availableParallelism()} cores`);
say(`generating ${TENANTS} tenants x ${NETS} networks x ${EPS} endpoints on ${HOSTS} hosts`);
const doc = generate();
let t0 = performance.now();
const model = loadTopology(doc);
const validateS = (performance.now() - t0) / 1000;
sample();
say(`validated + IPAM in ${validateS.toFixed(2)} s`);

const tPlace = performance.now();
const placement = defaultPlacement(model);
const placeS = (performance.now() - tPlace) / 1000;
t0 = performance.now();
const cpu0 = process.cpuUsage();
const result = compile(model, placement);
let flows = 0;
let groups = 0;
for (const h of model.hosts) {
  const hr = result.host(h.name);
  flows += hr.flows.length;
  groups += hr.groups.length;
}
const fullS = (performance.now() - t0) / 1000;
const cpu1 = process.cpuUsage(cpu0);
const fullCpuS = (cpu1.user + cpu1.system) / 1e6;
sample();
const peakFull = Math.max(peak, process.resourceUsage().maxRSS * 1024);
const endpoints = model.tenants.reduce((n, t) => n + t.endpoints.length, 0);
say(`full compile: ${flows} flows, ${groups} groups on ${HOSTS} hosts in ${fullS.toFixed(2)} s (${fullCpuS.toFixed(2)} s CPU), peak RSS ${mb(peakFull)} MB`);

const inc = new IncrementalCompiler(result);
const times: number[] = [];
const counts: number[] = [];
const touched = new Set<string>();
let seed = 12345;
const rnd = (n: number) => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % n;
};
for (let i = 0; i < CHANGES; i++) {
  const ti = rnd(TENANTS);
  const host = `h${(ti * 3 + rnd(3)) % HOSTS}`;
  const change = { op: 'addEndpoint' as const, tenant: `t${ti}`, endpoint: { name: `x${i}`, network: `n${rnd(NETS)}`, host, labels: { role: 'web' } } };
  const s = performance.now();
  const d = inc.apply(change);
  times.push(performance.now() - s);
  counts.push(deltaFlowCount(d));
  if (i < 3) for (const h of d.keys()) touched.add(h);
  if ((i + 1) % 250 === 0) say(`${i + 1} incremental changes, median ${median(times).toFixed(3)} ms, median ${median(counts)} flows per change`);
}
clearInterval(timer);

// Check: the incrementally maintained hosts equal a fresh full compile of the same state.
const fresh = compile(result.ctx.model, structuredClone(result.ctx.placement));
let same = true;
for (const h of touched) {
  const a = [...result.host(h).flows.map(formatFlow), ...result.host(h).groups.map(formatGroup)];
  const b = [...fresh.host(h).flows.map(formatFlow), ...fresh.host(h).groups.map(formatGroup)];
  if (a.length !== b.length || a.some((x, k) => x !== b[k])) same = false;
}
say(`incremental state equals a full recompile on ${touched.size} touched hosts: ${same}`);

const incrMedian = median(times);
console.log(
  JSON.stringify({
    endpoints,
    hosts: HOSTS,
    loadavg_1m: +loadavg()[0]!.toFixed(2),
    flows,
    groups,
    validate_s: +validateS.toFixed(3),
    full_s: +fullS.toFixed(3),
    load_and_compile_s: +(validateS + placeS + fullS).toFixed(3),
    full_cpu_s: +fullCpuS.toFixed(3),
    peak_mb: mb(peakFull),
    changes: CHANGES,
    incr_median_ms: +incrMedian.toFixed(3),
    incr_p95_ms: +[...times].sort((a, b) => a - b)[Math.floor(times.length * 0.95)]!.toFixed(3),
    incr_flows_median: median(counts),
    incr_speedup_vs_full: Math.round((fullS * 1000) / incrMedian),
    incr_matches_full: same,
    target_full_ratio: +(fullS / 5).toFixed(3),
    target_incr_ratio: +(incrMedian / 5).toFixed(3),
  }),
);
