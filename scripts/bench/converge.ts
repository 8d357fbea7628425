/**
 * `npm run bench -- converge [--runs N] [--hosts 4] [--tenants 5] [--per-tenant 20] [--probers-after]`
 *
 * Convergence of the controller, against OVN's figures in the same layout: a lab
 * of 4 hosts × 25 containers in 5 tenants that all use 10.0.0.0/24; one apply of
 * the whole topology. Measured from just before the PUT /v1/topology:
 * - realized_s: until every host reported (event stream) that it realized the generation;
 * - reachable_s: until every same-tenant pair (the policy allows them all: 1,900
 *   pairs) has answered a ping. One `fping` per container namespace probes its
 *   peers (started before the apply, released together through a FIFO at t0) and prints each
 *   peer's first reply as it comes.
 * Before each run: the containers exist and are bound (their ports carry the
 * iface-ids, with the fixed IPs/MACs the topology gives them), the controller has
 * the hosts (a hosts-only document is realized: br-int connected, tunnels up), the
 * underlay is warm, and the containers' neighbour tables are empty with a 20 ms
 * ARP retransmit time (the kernel's default 1 s would measure Linux, not the network).
 * Between runs the tenants are deleted again. Last line: one JSON object.
 *
 * `--probers-after`: release the probers only once every host realized the generation.
 * 100 fping processes waking at t0 compete with the controller for the 2 cores (15:20:
 * realized 3.5 s with them, 0.235 s without); this mode measures the controller alone,
 * and its reachable_s is an upper bound (realized + the probers' own time to hear 1,900
 * answers from an already converged network, ~1.7 s on this machine).
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
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

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
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
/** Release the probers only once every host realized the generation, so they do not compete with the controller for the 2 cores. */
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

async function oneRun(state: LabState, ctl: LabController, client: ApiClient, eps: Ep[], workDir: string, runNo: number) {
  // Clean slate: empty neighbour tables, fast ARP retries.
  await Promise.all(
    eps.map(async (e) => {
      const ns = state.containers.find((c) => c.name === cname(e))!.namespace;
      await run(['ip', 'netns', 'exec', ns, 'sh', '-c', 'ip neigh flush all; sysctl -q -w net.ipv4.neigh.eth0.retrans_time_ms=20']);
    }),
  );
  await warmUnderlay(state);
  log(`run ${runNo}: neighbour tables flushed, underlay warm; starting ${eps.length} probers`);

  // Probers wait on a FIFO that we hold open read-write (so their open never blocks and
  // none can miss the start); at t0 we write one line per prober: all start at once.
  const fifo = join(workDir, `go-${runNo}`);
  execFileSync('mkfifo', [fifo]);
  const fifoFd = openSync(fifo, 'r+');
  const byTenant = new Map<string, Ep[]>();
  for (const e of eps) byTenant.set(e.tenant, [...(byTenant.get(e.tenant) ?? []), e]);
  const firstReply = new Map<string, number>(); // "from>to" -> epoch seconds
  let ready = 0;
  const probers = eps.map((e) => {
    const ns = state.containers.find((c) => c.name === cname(e))!.namespace;
    const peers = byTenant.get(e.tenant)!.filter((p) => p !== e).map((p) => p.ip);
    // -r/-t/-B: retry every 100 ms for up to ~60 s, -i 5 ms between packets. Shorter
    // intervals (-t 25 -i 1) make 100 fpings spin on the CPU and starve the switches.
    const argv = ['netns', 'exec', ns, 'sh', '-c', `echo ready; read go < ${fifo}; exec fping -r 600 -t 100 -B 1 -i 5 ${peers.join(' ')}`];
    // stderr ignored: fping reports every ICMP unreachable there, and an unread pipe would block it.
    const child = spawn('ip', argv, { stdio: ['ignore', 'pipe', 'ignore'] });
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') ready++;
        // fping flushes each "is alive" line as the reply comes: its arrival time is the reply's.
        const m = /^(\S+) is alive/.exec(line);
        if (m) {
          const key = `${cname(e)}>${m[1]}`;
          if (!firstReply.has(key)) firstReply.set(key, Date.now() / 1000);
        }
      }
    });
    return new Promise<void>((resolve) => child.on('exit', () => resolve()));
  });
  for (let i = 0; i < 600 && ready < eps.length; i++) await new Promise((r) => setTimeout(r, 100));
  if (ready < eps.length) throw new Error(`only ${ready} of ${eps.length} probers started`);
  await new Promise((r) => setTimeout(r, 200)); // from "ready" to blocked in read

  const realizedAt = new Map<string, number>();
  let generation = Infinity;
  const closeEvents = await client.events((m) => {
    if (m.type === 'realized' && m.generation >= generation) realizedAt.set(m.host, Date.now() / 1000);
  });

  const doc = topology(state, eps, true);
  const t0 = Date.now() / 1000;
  if (!PROBERS_AFTER) writeSync(fifoFd, 'go\n'.repeat(eps.length));
  const applied = await client.apply(doc);
  generation = applied.generation;
  const status = await client.wait(applied.generation, 60);
  if (PROBERS_AFTER) writeSync(fifoFd, 'go\n'.repeat(eps.length));
  log(`run ${runNo}: generation ${generation} stored and realized; waiting for the probers`);
  const waitedAt = Date.now() / 1000;
  await Promise.all(probers);
  closeEvents();
  closeSync(fifoFd);
  rmSync(fifo, { force: true });

  const pairs = eps.length * (PER_TENANT - 1);
  const hostsRealized = [...realizedAt.values()];
  const realized_s = hostsRealized.length === HOSTS ? Math.max(...hostsRealized) - t0 : waitedAt - t0;
  const answered = [...firstReply.values()];
  const reachable_s = answered.length === pairs ? Math.max(...answered) - t0 : NaN;
  const hosts = await client.hosts();
  const flows = hosts.map((h) => h.flows);
  log(
    `run ${runNo}: realized ${r3(realized_s)} s (${status.realized ? 'all hosts' : 'NOT all hosts'}), ` +
      `${answered.length}/${pairs} pairs answered, last at ${r3(reachable_s)} s; flows per host ${flows.join('/')}; controller RSS ${rssMb(ctl.pid)} MB`,
  );
  return { realized_s, reachable_s, answered: answered.length, pairs, flows, rss: rssMb(ctl.pid) };
}

async function main(): Promise<void> {
  if (readState(NAME)) labDown(NAME);
  const eps = endpoints();
  log(`lab ${NAME}: ${HOSTS} hosts, ${eps.length} containers in ${TENANTS} tenants (all 10.0.0.0/24)`);
  await labUp({ name: NAME, hosts: HOSTS });
  const workDir = mkdtempSync(join(tmpdir(), 'tenet-converge-'));
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
      results.push(await oneRun(state, ctl, client, eps, workDir, runNo));
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
        probers: PROBERS_AFTER ? 'after-realized' : 'at-apply',
        hosts: HOSTS,
        tenants: TENANTS,
        containers: eps.length,
        pairs: results[0]!.pairs,
        runs: RUNS,
        realized_s,
        reachable_s,
        realized_runs_s: results.map((r) => r3(r.realized_s)),
        reachable_runs_s: results.map((r) => r3(r.reachable_s)),
        all_pairs_answered: results.every((r) => r.answered === r.pairs),
        flows_per_host: flowsPerHost,
        controller_rss_mb: rss,
        ovn_realized_s: OVN.realized_s,
        ovn_reachable_s: OVN.reachable_s,
        ovn_flows_per_host: OVN.flows_per_host,
        ovn_controller_rss_mb: OVN.rss_mb,
        realized_ratio: r3(realized_s / OVN.realized_s),
        reachable_ratio: r3(reachable_s / OVN.reachable_s),
        target_met: realized_s <= OVN.realized_s && reachable_s <= OVN.reachable_s,
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
