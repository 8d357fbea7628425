/**
 * The demo: a 3-host lab, the controller daemon, topologies/demo.json applied
 * (two tenants with the same subnets, each with web + db networks joined by its
 * distributed router, and policies), containers created with the addresses the
 * controller assigned, and a connectivity matrix: what the policy predicts
 * (offline tracer over the compiled flows) next to what real ping/TCP do.
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
import {
  addEndpointContainers,
  endpointContainerName,
  isHealthy,
  labDir,
  labDown,
  labUp,
  loadLab,
  readState,
  requireRoot,
  startLabController,
  warmUnderlay,
  withLabHosts,
  type LabController,
} from '../src/lab/index.js';
import { expectedMatrix, formatMatrix, mismatches, observe, type Probe } from '../src/lab/connectivity.js';
import { validate } from '../src/model/index.js';
import { isAlive } from '../src/util/process.js';

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
function cleanup(): void {
  if (cleaning) return;
  cleaning = true;
  if (controller && isAlive(controller.pid)) {
    process.kill(controller.pid, 'SIGTERM');
    say(`stopped the controller (pid ${controller.pid})`);
  }
  say('tearing the lab down');
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

const indent = (text: string) => text.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

  say(`starting the controller: OpenFlow and API on the lab's management address ${lab.mgmt.gateway}`);
  controller = await startLabController(lab, { stateDir: controllerDir() });
  writeFileSync(pidFile(), `${controller.pid}\n`);
  check(true, `tenet controller runs (pid ${controller.pid}), API ${controller.url}, log ${controller.logFile}`);
  const client = new ApiClient({ url: controller.url, token: controller.token! });
  const api = ['--api', controller.url, '--token-file', join(controllerDir(), 'token')];

  const doc = withLabHosts(JSON.parse(readFileSync(DEMO_TOPOLOGY, 'utf8')) as object, lab);
  const docFile = join(controllerDir(), 'demo.json');
  writeFileSync(docFile, JSON.stringify(doc, null, 2) + '\n');
  say(`applying topologies/demo.json (with this lab's hosts): tenet apply -f ${docFile}`);
  const applied = await runCli(['apply', '-f', docFile, ...api]);
  console.log(indent(applied.out));
  check(applied.code === 0, 'tenet apply: every host realized the topology');

  const eps = await client.endpoints();
  say('creating one container per endpoint, with the IP, MAC, iface-id and gateway the controller assigned:');
  await addEndpointContainers(name, loadLab(name), eps);
  for (const e of eps) console.log(`    ${endpointContainerName(e).padEnd(14)} ${e.host}  ${(e.ip ?? '').padEnd(15)} ${e.mac}  gw ${e.gateway ?? '-'}  iface-id ${e.id}`);
  let bound = 0;
  for (let i = 0; i < 150 && bound < eps.length; i++) {
    bound = (await client.hosts()).reduce((n, h) => n + h.bindings, 0);
    if (bound < eps.length) await sleep(200);
  }
  check(bound === eps.length, `the controller bound all ${eps.length} container ports (iface-id -> ofport) and programmed their flows`);

  // OVS's userspace tunnelling drops the first packet to a peer whose underlay MAC it has
  // not learnt (and forgets them when ports change): let every host learn every peer first.
  await warmUnderlay(loadLab(name));

  // Expected verdicts from the policy, computed offline over the compiled flows.
  const checked = validate(doc);
  if (!checked.ok) throw new Error('topologies/demo.json is invalid: ' + checked.errors.map((e) => `${e.path}: ${e.message}`).join('; '));
  const probes: Probe[] = [{ kind: 'icmp' }, { kind: 'tcp', port: 5432 }];
  const cells = expectedMatrix(checked.model, probes);
  const byId = new Map(eps.map((e) => [e.id, e]));
  say(`probing ${cells.length} (pair, protocol) cells with real packets; expected verdicts come from the tracer`);
  await observe(loadLab(name), cells, (id) => endpointContainerName(byId.get(id)!), (id) => byId.get(id)!.ip!.replace(/\/\d+$/, ''));
  console.log(indent(formatMatrix(cells)));
  const bad = mismatches(cells);
  for (const c of bad) console.log(`    MISMATCH ${c.from} -> ${c.to} ${c.probe.kind === 'icmp' ? 'ping' : `tcp/${c.probe.port}`}: expected ${c.expected ? 'reachable' : 'blocked'}, observed ${c.observed ? 'reachable' : 'blocked'}`);
  const unobserved = cells.filter((c) => c.observed === undefined);
  check(unobserved.length === 0, `every cell observed${unobserved.length ? `; not: ${unobserved.map((c) => `${c.from} -> ${c.to} (${c.note ?? '?'})`).join(', ')}` : ''}`);
  const allowed = cells.filter((c) => c.expected).length;
  check(bad.length === 0, `connectivity matches the policy in all ${cells.length} cells (${allowed} reachable, ${cells.length - allowed} blocked)`);
  const cross = cells.filter((c) => c.from.split('/')[0] !== c.to.split('/')[0]);
  check(cross.length > 0 && cross.every((c) => !c.expected && c.observed === false), `acme and globex (same 10.0.0.0/24 and 10.0.1.0/24) never reach each other (${cross.length} cells)`);
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

if (values.check || !allOk) {
  cleanup();
  process.exit(allOk ? 0 : 1);
}
const tok = join(controllerDir(), 'token');
say('the lab and the controller stay up; look around:');
console.log(`    node bin/tenet.js status --api ${controller!.url} --token-file ${tok}`);
console.log(`    node bin/tenet.js get endpoints --api ${controller!.url} --token-file ${tok}`);
console.log(`    node bin/tenet.js lab exec --name ${name} host1 ovs-ofctl -O OpenFlow13 dump-flows br-int`);
console.log(`    node bin/tenet.js lab exec --name ${name} acme-web-1 ping -c 3 ${byIdIp('acme/db-1')}`);
console.log(`    node bin/tenet.js trace ${join(controllerDir(), 'demo.json')} --from acme/web-1 --to acme/db-1 tcp 5432`);
say('press Ctrl-C to stop the controller and tear everything down');
setInterval(() => {}, 1 << 30);

function byIdIp(id: string): string {
  try {
    const c = loadLab(name).containers.find((x) => x.ifaceId === id);
    return c ? c.ip.replace(/\/\d+$/, '') : '10.0.1.x';
  } catch {
    return '10.0.1.x';
  }
}
