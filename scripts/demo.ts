/**
 * The demo: a 3-host lab, the controller daemon, one `tenet agent` per host, and
 * topologies/demo.json applied: two customers (tenants) with the same subnets, each
 * a web tier and a database tier on two networks joined by its distributed router;
 * every container is a scheduler unit placed by constraints and started by an agent;
 * acme's web→database traffic runs through a firewall and an IDS (a service chain
 * whose hops follow the service registry). It prints (1) the placement, (2) the
 * connectivity matrix, expected (offline tracer) vs observed (real ping/TCP), (3) one
 * web→db connection hop by hop (tracer and the service functions' nftables
 * counters), (4) DNS answers for the services, (5) where to look next.
 *
 *   npm run demo               bring it up, print the checks, wait for Ctrl-C, clean up
 *   npm run demo -- --check    same, but exit at once: 0 only if every check passed
 *   npm run demo -- --down     remove a demo lab (and its controller) left behind
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { ApiClient } from '../src/api/client.js';
import dns2 from 'dns2';
import {
  DNS_PORT,
  isHealthy,
  labAgentNetnsPrefix,
  labDir,
  labDown,
  labUp,
  loadLab,
  readState,
  requireRoot,
  startLabAgents,
  startLabController,
  warmUnderlay,
  labTopologyHosts,
  type LabController,
} from '../src/lab/index.js';
import { expectedMatrix, formatMatrix, mismatches, observe, type Probe } from '../src/lab/connectivity.js';
import { expandUnits, Topology, validate } from '../src/model/index.js';
import { effectiveDoc, endpointName, type UnitInfo } from '../src/scheduler/index.js';
import { isAlive } from '../src/util/process.js';
import { instanceNetns } from '../src/agent/index.js';

const { values } = parseArgs({
  options: {
    check: { type: 'boolean', default: false },
    down: { type: 'boolean', default: false },
    name: { type: 'string', default: 'demo' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log('usage: npm run demo [-- --check | --down] [--name PREFIX]');
  process.exit(0);
}
const name = values.name!;
const say = (msg: string) => console.log(`[demo] ${msg}`);
const results: boolean[] = [];
function check(ok: boolean, what: string): boolean {
  results.push(ok);
  console.log(`  ${ok ? 'PASS' : 'FAIL'}  ${what}`);
  return ok;
}

try {
  requireRoot('the demo');
} catch (err) {
  console.error(`[demo] error: ${(err as Error).message}`);
  process.exit(1);
}

const TENET_BIN = fileURLToPath(new URL('../bin/tenet.js', import.meta.url));
const DEMO_TOPOLOGY = fileURLToPath(new URL('../topologies/demo.json', import.meta.url));
/** The controller's state (token, store, log, pid file) lives in the lab directory: `lab down` removes it. */
const controllerDir = () => join(labDir(name), 'controller');
const pidFile = () => join(controllerDir(), 'controller.pid');

/** Stops a demo controller by the pid it recorded, if that process is still a `tenet controller` for this demo. */
function stopRecordedController(): void {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile(), 'utf8').trim());
  } catch {
    return;
  }
  if (!pid || !isAlive(pid)) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmdline.includes('controller') || !cmdline.includes(controllerDir())) return; // pid reused by something else
  process.kill(pid, 'SIGTERM');
  say(`stopped the controller (pid ${pid})`);
}

if (values.down) {
  stopRecordedController();
  const removed = labDown(name);
  say(removed.length ? `removed ${removed.join(', ')}` : `no demo lab '${name}' to remove`);
  process.exit(0);
}

let controller: LabController | undefined;
let cleaning = false;
/** Blocks up to `ms` while `pid` lives (cleanup runs in signal handlers: no await there). */
function waitExit(pid: number, ms: number): void {
  const tick = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; waited < ms && isAlive(pid); waited += 50) Atomics.wait(tick, 0, 0, 50);
}

function cleanup(): void {
  if (cleaning) return;
  cleaning = true;
  if (controller && isAlive(controller.pid)) {
    process.kill(controller.pid, 'SIGTERM');
    // Let it close its store before labDown removes the directory it lives in.
    waitExit(controller.pid, 5000);
    say(`stopped the controller (pid ${controller.pid})`);
  }
  say('tearing the lab down (agents, their containers, hosts)');
  const removed = labDown(name);
  say(`removed ${removed.length} thing(s); nothing of the demo is left`);
}
process.on('SIGINT', () => {
  console.log();
  cleanup();
  process.exit(130);
});
process.on('SIGTERM', () => {
  cleanup();
  process.exit(143);
});

function runCli(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TENET_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

/** Runs argv in a network namespace; never throws. */
function runIn(ns: string, argv: string[], timeoutMs = 10_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => (clearTimeout(timer), resolve({ code: 1, out: e.message })));
    child.on('close', (code) => (clearTimeout(timer), resolve({ code: code ?? 1, out })));
  });
}

const indent = (text: string) => text.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bare = (ip: string) => ip.replace(/\/\d+$/, '');

/** Polls `f` every `everyMs` until it returns a value other than undefined, or gives up after `timeoutMs`. */
async function poll<T>(f: () => Promise<T | undefined>, timeoutMs: number, everyMs = 250): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined || Date.now() > end) return v;
    await sleep(everyMs);
  }
}

/**
 * A TCP probe that needs no server of its own (the units serve their ports): a
 * connection that opens, or that the peer refuses with a RST, proves the network
 * carried the SYN both ways; only silence (timeout) means blocked.
 */
const TCP_PROBE = `
import socket, sys
s = socket.socket(); s.settimeout(1.5)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print('open')
except ConnectionRefusedError: print('refused')
except OSError: print('silent')
`;
async function tcpReaches(ns: string, ip: string, port: number): Promise<boolean> {
  const r = await runIn(ns, ['python3', '-c', TCP_PROBE, ip, String(port)]);
  return /open|refused/.test(r.out);
}
const pingReaches = async (ns: string, ip: string) => (await runIn(ns, ['ping', '-c', '1', '-W', '1', ip])).code === 0;

/** The nftables counters of a service function: "tcp dport 5432" and "tcp sport 5432" packets. */
async function sfCounters(ns: string, table: string): Promise<{ toDb: number; fromDb: number }> {
  const out = (await runIn(ns, ['nft', 'list', 'chain', 'ip', table, 'pass'])).out;
  const count = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  return { toDb: count(/tcp dport 5432 counter packets (\d+)/), fromDb: count(/tcp sport 5432 counter packets (\d+)/) };
}

const HTTP_GET = `
import socket, sys
s = socket.create_connection((sys.argv[1], 5432), timeout=3)
s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); data = b''
while True:
    b = s.recv(65536)
    if not b: break
    data += b
print(data.split(b'\\r\\n')[0].decode())
`;

async function runDemo(): Promise<void> {
  if (readState(name)) {
    say(`a demo lab '${name}' exists from an earlier run: removing it first`);
    stopRecordedController();
    labDown(name);
  }
  say('bringing up a 3-host lab (one network namespace per host, each with its own ovsdb-server and ovs-vswitchd)');
  await labUp({ name, hosts: 3, onProgress: (m) => say(m) });
  const lab = loadLab(name);
  check(isHealthy(lab), 'every host runs ovsdb-server and ovs-vswitchd');

  say(`starting the controller: OpenFlow, API and DNS on the lab's management address ${lab.mgmt.gateway}`);
  controller = await startLabController(lab, { stateDir: controllerDir() });
  writeFileSync(pidFile(), `${controller.pid}\n`);
  say(`tenet controller runs (pid ${controller.pid}), API ${controller.url}, log ${controller.logFile}`);
  const client = new ApiClient({ url: controller.url, token: controller.token! });
  const api = ['--api', controller.url, '--token-file', join(controllerDir(), 'token')];

  say('starting one tenet agent per host (it registers its host, keeps a lease and runs the units placed on it)');
  const agents = await startLabAgents(name, { controller: controller.url, token: controller.token });
  const alive = await poll(async () => ((await client.agents()).filter((a) => a.alive).length === agents.length ? true : undefined), 30_000);
  check(alive === true, `${agents.length} agents registered (${agents.map((a) => `${a.host}: pid ${a.pid}`).join(', ')})`);

  // The document's hosts carry the labels the units' constraints use; their addresses are this lab's.
  const demo = JSON.parse(readFileSync(DEMO_TOPOLOGY, 'utf8')) as { hosts: Array<{ name: string; labels?: Record<string, string>; resources?: object }> };
  const labHosts = labTopologyHosts(lab).map((h) => {
    const d = demo.hosts.find((x) => x.name === h.name);
    return { ...h, ...(d?.labels ? { labels: d.labels } : {}), ...(d?.resources ? { resources: d.resources } : {}) };
  });
  const doc = { ...demo, hosts: labHosts };
  const docFile = join(controllerDir(), 'demo.json');
  writeFileSync(docFile, JSON.stringify(doc, null, 2) + '\n');
  say(`applying topologies/demo.json (with this lab's host addresses): tenet apply -f ${docFile}`);
  const applied = await runCli(['apply', '-f', docFile, ...api]);
  console.log(indent(applied.out));
  check(applied.code === 0, 'tenet apply: every host realized the topology');

  // (1) Placement: the scheduler places every unit, the agents start them.
  say('waiting for the scheduler to place every unit and the agents to start them');
  const parsed = Topology.parse(doc);
  const wanted = expandUnits(parsed.units).reduce((n, u) => n + (u.global ? parsed.hosts.length : u.replicas), 0);
  const units = await poll(async () => {
    const u = await client.units();
    const all = u.flatMap((x) => x.instances);
    return all.length === wanted && all.every((i) => i.state === 'running') ? u : undefined;
  }, 120_000, 300);
  const placed: UnitInfo[] = units ?? (await client.units());
  console.log('\n  (1) placement (tenet units list)');
  console.log(indent((await runCli(['units', 'list', ...api])).out));
  check(units !== undefined, `every unit placed and running (${placed.reduce((n, u) => n + u.instances.length, 0)} instances on ${new Set(placed.flatMap((u) => u.instances.map((i) => i.host))).size} hosts)`);
  const instances = placed.flatMap((u) => u.instances.map((i) => ({ ...i, unit: u.name, tenant: u.tenant })));
  const hostOf = new Map(instances.map((i) => [`${i.tenant}/${endpointName(i.id)}`, i.host!]));
  const instanceOf = new Map(instances.map((i) => [`${i.tenant}/${endpointName(i.id)}`, i.id]));
  const nsOf = (endpointId: string) => instanceNetns(labAgentNetnsPrefix(name, hostOf.get(endpointId)!), instanceOf.get(endpointId)!);
  const hostLabels = new Map(doc.hosts.map((h) => [h.name, h.labels ?? {}]));
  const constraintsHeld = instances.every((i) => {
    const labels = hostLabels.get(i.host!) ?? {};
    if (/^(globex-)?web@/.test(i.id)) return labels.tier === 'app';
    if (/^(globex-)?db$/.test(i.id)) return labels.tier === 'data';
    if (i.id === 'fw') return labels.zone === 'b';
    if (i.id === 'ids') return labels.zone === 'c';
    return true;
  });
  const webHosts = (prefix: string) => instances.filter((i) => i.id.startsWith(`${prefix}web@`)).map((i) => i.host);
  check(constraintsHeld && new Set(webHosts('')).size === 2 && new Set(webHosts('globex-')).size === 2, 'placement honours the constraints: web on tier=app hosts, one per host (conflicts), db on tier=data, fw in zone b, ids in zone c');

  // Ports bound, chain hops healthy (their registrations pass the agents' checks).
  const eps = await client.endpoints();
  const bound = await poll(async () => ((await client.hosts()).reduce((n, h) => n + h.bindings, 0) >= wanted ? true : undefined), 30_000);
  check(bound === true && eps.length === wanted, `the controller bound all ${wanted} unit ports (iface-id -> ofport) and programmed their flows`);
  const chainUp = await poll(async () => {
    const c = (await client.chains()).find((x) => x.id === 'acme/web-to-db');
    return c && c.hops.every((h) => h.instances.some((i) => i.health === 'healthy')) ? c : undefined;
  }, 60_000, 300);
  check(chainUp !== undefined, 'the chain acme/web-to-db has a healthy registered instance in every hop (fw, ids)');
  await warmUnderlay(loadLab(name));

  // (2) Connectivity matrix: expected from the compiled flows of what the controller runs.
  // The unit an instance belongs to after template expansion: a template's instance is its own unit (web@1), a replica's is the unit (db.2 → db), a global one's too (m:host1 → m).
  const unitOf = (i: (typeof instances)[number]) => (i.unit.includes('..') ? i.id : i.id.replace(/(\.\d+|:.*)$/, ''));
  const assignments = instances.map((i) => ({ id: i.id, unit: unitOf(i), host: i.host! }));
  const eff = effectiveDoc(doc, { assignments });
  const effFile = join(controllerDir(), 'demo-effective.json');
  writeFileSync(effFile, JSON.stringify(eff.doc, null, 2) + '\n');
  const checked = validate(eff.doc);
  if (!checked.ok) throw new Error('the placed demo topology is invalid: ' + checked.errors.map((e) => `${e.path}: ${e.message}`).join('; '));
  const serviceFunctions = new Set(['acme/fw', 'acme/ids']);
  const probes: Probe[] = [{ kind: 'icmp' }, { kind: 'tcp', port: 5432 }];
  const cells = expectedMatrix(checked.model, probes).filter((c) => !serviceFunctions.has(c.from) && !serviceFunctions.has(c.to));
  const ipOf = new Map(eps.map((e) => [e.id, bare(e.ip ?? '')]));
  console.log(`\n  (2) connectivity: ${cells.length} (pair, protocol) cells; expected from the tracer over the compiled flows, observed with real packets`);
  const queue = cells.filter((c) => !c.note);
  await Promise.all(Array.from({ length: 6 }, async () => {
    for (let c = queue.shift(); c; c = queue.shift()) {
      const tries = c.expected ? 3 : 1;
      let ok = false;
      for (let i = 0; i < tries && !ok; i++) ok = c.probe.kind === 'icmp' ? await pingReaches(nsOf(c.from), ipOf.get(c.to)!) : await tcpReaches(nsOf(c.from), ipOf.get(c.to)!, c.probe.port);
      c.observed = ok;
    }
  }));
  console.log(indent(formatMatrix(cells)));
  const bad = mismatches(cells);
  for (const c of bad) console.log(`    MISMATCH ${c.from} -> ${c.to} ${c.probe.kind === 'icmp' ? 'ping' : `tcp/${c.probe.port}`}: expected ${c.expected ? 'reachable' : 'blocked'}, observed ${c.observed ? 'reachable' : 'blocked'}`);
  const allowed = cells.filter((c) => c.expected).length;
  check(bad.length === 0, `connectivity matches the policy in all ${cells.length} cells (${allowed} reachable, ${cells.length - allowed} blocked)`);
  const cross = cells.filter((c) => c.from.split('/')[0] !== c.to.split('/')[0]);
  // Cells whose address also exists in the sender's tenant are not probed (the twin would answer): isolation needs probed cells.
  const probedCross = cross.filter((c) => c.observed !== undefined);
  check(probedCross.length > 0 && cross.every((c) => !c.expected) && probedCross.every((c) => c.observed === false), `acme and globex (same 10.0.0.0/24 and 10.0.1.0/24) never reach each other (${probedCross.length} of ${cross.length} cross-tenant cells probed, all blocked)`);

  // (3) One web→db connection through the chain.
  console.log('\n  (3) one web -> db connection (tcp/5432) through the chain, hop by hop');
  const trace = await runCli(['trace', effFile, '--from', 'acme/web-1', '--to', 'acme/db', 'tcp', '5432']);
  console.log(indent(`$ tenet trace ${effFile} --from acme/web-1 --to acme/db tcp 5432\n${trace.out}`));
  const before = { fw: await sfCounters(nsOf('acme/fw'), 'fw'), ids: await sfCounters(nsOf('acme/ids'), 'ids') };
  const get = await runIn(nsOf('acme/web-1'), ['python3', '-c', HTTP_GET, ipOf.get('acme/db')!]);
  const after = { fw: await sfCounters(nsOf('acme/fw'), 'fw'), ids: await sfCounters(nsOf('acme/ids'), 'ids') };
  const delta = (k: 'fw' | 'ids') => ({ toDb: after[k].toDb - before[k].toDb, fromDb: after[k].fromDb - before[k].fromDb });
  const host = (id: string) => hostOf.get(id);
  console.log(`    web-1 (${host('acme/web-1')}) --GET--> fw (${host('acme/fw')}): ${delta('fw').toDb} packets to db, ${delta('fw').fromDb} back`);
  console.log(`                       --> ids (${host('acme/ids')}): ${delta('ids').toDb} packets to db, ${delta('ids').fromDb} back`);
  console.log(`                       --> db (${host('acme/db')}) answered: ${get.out.trim() || get.code}`);
  const through = (k: 'fw' | 'ids') => delta(k).toDb > 0 && delta(k).fromDb > 0;
  check(get.code === 0 && /^HTTP\/1\.\d 200/.test(get.out.trim()) && through('fw') && through('ids'), 'the connection passed the firewall and then the IDS, both ways (symmetric chain), and db answered');

  // (4) DNS.
  console.log(`\n  (4) DNS (the registry's names, served by the controller on ${lab.mgmt.gateway}:${DNS_PORT})`);
  const resolver = dns2.UDPClient({ dns: lab.mgmt.gateway, port: DNS_PORT } as Parameters<typeof dns2.UDPClient>[0]);
  let dnsOk = true;
  for (const [svc, ids] of [['web.acme.tenet', ['acme/web-1', 'acme/web-2']], ['postgres.acme.tenet', ['acme/db']], ['web.globex.tenet', ['globex/globex-web-1', 'globex/globex-web-2']]] as const) {
    const answers = await poll(async () => {
      const r = await resolver(svc, 'A');
      const a = r.answers.map((x) => (x as { address?: string }).address ?? '').filter(Boolean).sort();
      return a.length === ids.length ? a : undefined;
    }, 20_000, 500);
    const want = ids.map((id) => ipOf.get(id)!).sort();
    const ok = JSON.stringify(answers) === JSON.stringify(want);
    dnsOk &&= ok;
    console.log(`    ${svc.padEnd(22)} A  ${(answers ?? []).join(', ') || '(no answer)'}${ok ? '' : `   expected ${want.join(', ')}`}`);
  }
  check(dnsOk, 'DNS answers every service with its healthy instances\' controller-assigned addresses');
}
let failed = false;
try {
  await runDemo();
} catch (err) {
  failed = true;
  console.error(`[demo] error: ${(err as Error).message}`);
}
const passed = results.filter(Boolean).length;
const allOk = !failed && results.every(Boolean);
say(`${passed} of ${results.length} checks passed${allOk ? '' : ' — FAILED'}`);

const tok = join(controllerDir(), 'token');
if (controller) {
  const api = `--api ${controller.url} --token-file ${tok}`;
  console.log('\n  (5) where to look next');
  console.log(`    API          ${controller.url}   (bearer token in ${tok}; docs/API.md)`);
  console.log(`    log          ${controller.logFile}`);
  console.log(`    node bin/tenet.js status ${api}`);
  console.log(`    node bin/tenet.js units list ${api}`);
  console.log(`    node bin/tenet.js get chains ${api}`);
  console.log(`    node bin/tenet.js services list --tenant acme ${api}`);
  console.log(`    node bin/tenet.js units logs web@1 ${api}`);
  console.log(`    node bin/tenet.js trace ${join(controllerDir(), 'demo-effective.json')} --from acme/web-1 --to acme/db tcp 5432`);
  console.log(`    node bin/tenet.js lab exec --name ${name} host1 ovs-ofctl -O OpenFlow13 dump-flows br-int`);
}
if (values.check || !allOk) {
  cleanup();
  process.exit(allOk ? 0 : 1);
}
say('the lab, the agents and the controller stay up; press Ctrl-C (or run npm run demo -- --down) to tear everything down');
setInterval(() => {}, 1 << 30);
