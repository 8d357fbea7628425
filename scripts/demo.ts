/**
 * The demo (for now): a 3-host lab, two containers on different hosts joined by
 * a hand-written VXLAN overlay, and checks that they talk. Later issues replace
 * the hand-written overlay with the controller and a tenant topology.
 *
 *   npm run demo               bring it up, print the checks, wait for Ctrl-C, clean up
 *   npm run demo -- --check    same, but exit at once: 0 only if every check passed
 *   npm run demo -- --down     remove a demo lab left behind
 */
import { parseArgs } from 'node:util';
import {
  addContainer,
  applyStaticOverlay,
  execIn,
  isHealthy,
  labDown,
  labUp,
  loadLab,
  ping,
  readState,
  requireRoot,
  tcpExchange,
} from '../src/lab/index.js';

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

if (values.down) {
  const removed = labDown(name);
  say(removed.length ? `removed ${removed.join(', ')}` : `no demo lab '${name}' to remove`);
  process.exit(0);
}

let cleaning = false;
function cleanup(): void {
  if (cleaning) return;
  cleaning = true;
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

async function runDemo(): Promise<void> {
  if (readState(name)) {
    say(`a demo lab '${name}' exists from an earlier run: removing it first`);
    labDown(name);
  }
  say('bringing up a 3-host lab (one network namespace per host, each with its own ovsdb-server and ovs-vswitchd)');
  await labUp({ name, hosts: 3, onProgress: (m) => say(m) });
  check(isHealthy(loadLab(name)), 'every host runs ovsdb-server and ovs-vswitchd');

  say('starting two containers: web on host1, db on host3');
  const web = await addContainer(name, 'host1', 'web', { ip: '10.0.0.1/24', mac: '02:00:00:00:00:01', ifaceId: 'web' });
  const db = await addContainer(name, 'host3', 'db', { ip: '10.0.0.2/24', mac: '02:00:00:00:00:02', ifaceId: 'db' });
  check(web.ofport !== undefined && db.ofport !== undefined, `web ${web.ip} on host1 (ofport ${web.ofport}), db ${db.ip} on host3 (ofport ${db.ofport})`);

  const isolated = await ping(loadLab(name), 'web', '10.0.0.2', { count: 1, timeoutS: 1 });
  check(isolated.sent === 1 && isolated.received === 0, 'before the overlay, web cannot reach db (br-int is fail_mode=secure)');
  // The failed ARP left a FAILED neighbour entry that would delay the next ping by seconds.
  await execIn(loadLab(name), 'web', ['ip', 'neigh', 'flush', 'all']);

  say('connecting them with a hand-written VXLAN overlay (VNI 100, flows via ovs-ofctl)');
  const flows = await applyStaticOverlay(loadLab(name), 100);
  check(flows.size === 2, [...flows].map(([h, f]) => `${h}: ${f.length} flows`).join(', ') + ', tunnel host1 <-> host3');

  const state = loadLab(name);
  const p1 = await ping(state, 'web', '10.0.0.2');
  check(p1.ok, `ping web -> db: ${p1.received}/${p1.sent} replies${p1.rttMs !== undefined ? `, avg rtt ${p1.rttMs} ms` : ''}`);
  const p2 = await ping(state, 'db', '10.0.0.1');
  check(p2.ok, `ping db -> web: ${p2.received}/${p2.sent} replies`);
  const tcp = await tcpExchange(state, 'web', 'db', '10.0.0.2', 8080);
  check(tcp.ok, `TCP web -> db:8080: ${tcp.detail}`);
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
say('the lab stays up; look around:');
console.log(`    node bin/tenet.js lab status --name ${name}`);
console.log(`    node bin/tenet.js lab exec --name ${name} host1 ovs-ofctl -O OpenFlow13 dump-flows br-int`);
console.log(`    node bin/tenet.js lab exec --name ${name} web ping -c 3 10.0.0.2`);
say('press Ctrl-C to tear everything down');
setInterval(() => {}, 1 << 30);
