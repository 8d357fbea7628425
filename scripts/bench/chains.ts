/**
 * chains: latency a service-chain hop adds. A 3-host lab; client and server on
 * host1, forwarding namespaces sf-1 (host2), sf-2 (host3), sf-3 (host2), so every
 * hop crosses the overlay. For 0..3 hops the chain's flows are compiled and loaded
 * (no controller: the same compile() it calls), then one TCP connection does R
 * request/response round trips of 64 bytes; medians per hop count. Also
 * failover_apply_s: from marking an instance unhealthy to its group being changed
 * on the switches (compile + mod-group), i.e. without the detection time, which the
 * controller's health checks add (failover_s stays null until that is measured).
 *
 *   npm run bench -- chains [--rounds R] [--repeats N]   (R round trips per hop count, N rotations)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labUp, warmUnderlay } from '../../src/lab/index.js';
import { loadTopology } from '../../src/model/index.js';
import { formatFlow, formatGroup } from '../../src/openflow/index.js';
import { compile, type CompileResult, type Placement } from '../../src/pipeline/index.js';
import { makeTestLab, uniqueLabName, type TestLab } from '../../test/helpers/lab.js';

const i = process.argv.indexOf('--rounds');
const ROUNDS = i >= 0 ? Number(process.argv[i + 1]) : 200;
const j = process.argv.indexOf('--repeats');
const REPEATS = j >= 0 ? Number(process.argv[j + 1]) : 3;
const IP: Record<string, string> = { client: '10.1.0.10', server: '10.1.0.20', 'sf-1': '10.1.0.41', 'sf-2': '10.1.0.42', 'sf-3': '10.1.0.43' };
const SFS = ['sf-1', 'sf-2', 'sf-3'];

function doc(hosts: string[], hops: number): unknown {
  const at: Record<string, string> = { client: hosts[0]!, server: hosts[0]!, 'sf-1': hosts[1]!, 'sf-2': hosts[2]!, 'sf-3': hosts[1]! };
  return {
    hosts: hosts.map((h, k) => ({ name: h, underlayIp: `192.0.2.${k + 1}`, ovsdb: 'unix:/nonexistent', datapathType: 'netdev' })),
    tenants: [
      {
        name: 'acme',
        networks: [{ name: 'net', subnet: '10.1.0.0/24' }],
        endpoints: Object.keys(IP).map((n) => ({ name: n, network: 'net', host: at[n], ip: IP[n] })),
        chains: hops
          ? [{ name: 'bench', from: { endpoints: ['client'] }, to: { endpoints: ['server'] }, protocol: 'tcp', ports: [80], hops: SFS.slice(0, hops).map((n) => ({ instances: [n] })), symmetric: true }]
          : [],
      },
    ],
  };
}

const ECHO = `require('node:net').createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); }).listen(80, '${IP.server}'); console.log('ready');`;
const PINGPONG = `
const net = require('node:net');
const s = net.connect({ host: '${IP.server}', port: 80 });
s.setNoDelay(true);
const rounds = Number(process.argv[1]);
const msg = Buffer.alloc(64, 120);
const out = [];
let t0 = 0, got = 0;
const send = () => { got = 0; t0 = process.hrtime.bigint(); s.write(msg); };
s.on('connect', send);
s.on('data', (d) => {
  got += d.length;
  if (got < msg.length) return;
  out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (out.length < rounds + 20) send(); else { console.log(JSON.stringify(out.slice(20))); s.end(); }
});
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function load(lab: TestLab, dir: string, r: CompileResult, prev?: CompileResult): Promise<void> {
  for (const h of lab.hosts) {
    const before = new Set(prev?.host(h.name).groups.map((g) => g.groupId) ?? []);
    const groups = r.host(h.name).groups;
    const add = groups.filter((g) => !before.has(g.groupId));
    if (add.length) {
      writeFileSync(join(dir, 'g'), add.map(formatGroup).join('\n') + '\n');
      await lab.ofctl(h.name, 'add-groups', 'br-int', join(dir, 'g'));
    }
    for (const g of groups.filter((x) => before.has(x.groupId))) await lab.ofctl(h.name, 'mod-group', 'br-int', formatGroup(g));
    writeFileSync(join(dir, 'f'), r.host(h.name).flows.map(formatFlow).join('\n') + '\n');
    await lab.ofctl(h.name, '--bundle', prev ? 'replace-flows' : 'add-flows', 'br-int', join(dir, 'f'));
    const now = new Set(groups.map((g) => g.groupId));
    for (const id of before) if (!now.has(id)) await lab.ofctl(h.name, 'del-groups', 'br-int', `group_id=${id}`);
  }
}

const name = uniqueLabName();
const dir = mkdtempSync(join(tmpdir(), 'tenet-bench-chains-'));
let server: ReturnType<typeof spawn> | undefined;
const cleanup = () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  labDown(name);
  rmSync(dir, { recursive: true, force: true });
};
process.once('SIGINT', () => (cleanup(), process.exit(130)));
try {
  console.log(`lab ${name}: 3 hosts`);
  await labUp({ name, hosts: 3 });
  const lab = makeTestLab(name);
  const hosts = lab.hosts.map((h) => h.name);
  const placement: Placement = { hosts: {} };
  for (const h of hosts) {
    const tunnels: Record<string, number> = {};
    const args: string[] = [];
    hosts.forEach((peer, j) => {
      if (peer === h) return;
      tunnels[peer] = 900 + j;
      args.push('--', 'add-port', 'br-int', `vx${j}`, '--', 'set', 'interface', `vx${j}`, 'type=vxlan', `options:remote_ip=${lab.host(peer).underlayIp}`, 'options:key=flow', `ofport_request=${900 + j}`);
    });
    await lab.vsctl(h, ...args.slice(1));
    placement.hosts[h] = { ports: {}, tunnels };
  }
  const model = loadTopology(doc(hosts, 3));
  for (const e of model.tenants[0]!.endpoints) {
    const c = await lab.addContainer(e.host, e.name, { ip: `${IP[e.name]}/24`, mac: e.mac, ifaceId: e.id });
    placement.hosts[e.host]!.ports[e.id] = c.ofport!;
    if (SFS.includes(e.name))
      for (const s of ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0'])
        await lab.exec(e.name, ['sysctl', '-q', '-w', s]);
  }
  // OVS's native tunnelling drops the first packet to a peer whose underlay MAC it has not learnt
  await warmUnderlay(lab.state);
  server = spawn('ip', ['netns', 'exec', lab.container('server').namespace, process.execPath, '-e', ECHO], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((res) => server!.stdout!.once('data', res));

  // Hop counts in rotation (0,1,2,3, 0,1,2,3, ...) so that load from other processes hits them alike.
  const samples: Record<number, number[]> = { 0: [], 1: [], 2: [], 3: [] };
  let prev: CompileResult | undefined;
  for (let rep = 0; rep < REPEATS; rep++)
    for (const hops of [0, 1, 2, 3]) {
      const r = compile(loadTopology(doc(hosts, hops)), placement);
      await load(lab, dir, r, prev);
      prev = r;
      // the first exchange after new ports can lose its ARP; settle before measuring
      await lab.exec('client', ['ping', '-c', '2', '-i', '0.2', '-W', '2', IP['server']!], { allowFailure: true });
      let out = await lab.exec('client', [process.execPath, '-e', PINGPONG, String(ROUNDS)], { timeoutMs: 120_000, allowFailure: true });
      if (out.code !== 0) out = await lab.exec('client', [process.execPath, '-e', PINGPONG, String(ROUNDS)], { timeoutMs: 120_000 });
      samples[hops]!.push(...(JSON.parse(out.stdout.trim()) as number[]));
    }
  const rtt: Record<string, number> = {};
  const p10: Record<string, number> = {};
  for (const hops of [0, 1, 2, 3]) {
    const xs = samples[hops]!.sort((a, b) => a - b);
    rtt[hops] = Math.round(median(xs) * 1000) / 1000;
    // the fast tail: what a hop costs when the machine's other load leaves the path alone
    p10[hops] = Math.round(xs[Math.floor(xs.length * 0.1)]! * 1000) / 1000;
    console.log(`${hops} hop(s): median TCP round trip ${rtt[hops]} ms over ${xs.length} (p10 ${xs[Math.floor(xs.length * 0.1)]!.toFixed(3)}, p90 ${xs[Math.floor(xs.length * 0.9)]!.toFixed(3)} ms)`);
  }
  // failover without detection: mark sf-1 unhealthy (failMode closed drops; the point is the apply time)
  const t0 = process.hrtime.bigint();
  const failed = compile(loadTopology(doc(hosts, 3)), placement, { unhealthy: new Set(['acme/sf-1']) });
  await load(lab, dir, failed, prev);
  const applyS = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`failover apply (compile + load on 3 hosts, no detection): ${applyS.toFixed(3)} s`);
  const perHop = [1, 2, 3].map((k) => (rtt[k]! - rtt[0]!) / k);
    const perHopP10 = [1, 2, 3].map((k) => (p10[k]! - p10[0]!) / k);
  console.log(JSON.stringify({ rtt_ms: rtt, rtt_p10_ms: p10, per_hop_ms: Math.round(median(perHop) * 1000) / 1000, per_hop_p10_ms: Math.round(median(perHopP10) * 1000) / 1000, rounds: ROUNDS * REPEATS, failover_s: null, failover_apply_s: Math.round(applyS * 1000) / 1000, load: loadavg()[0] }));
} finally {
  cleanup();
}
