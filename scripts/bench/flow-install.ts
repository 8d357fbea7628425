/**
 * flow-install: 100,000 distinct flows installed in one atomic bundle by
 * Tenet's OpenFlow channel, against `ovs-ofctl -O OpenFlow13 --bundle
 * add-flows` of the same flows, on the same netdev bridge of a one-host lab,
 * alternating A/B; medians. Last line: JSON with flows, tenet_s, ovs_ofctl_s, ratio.
 *
 *   npm run bench -- flow-install [--flows N] [--rounds R] [--transport tcp|unix]
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostEnv, labDown, labUp } from '../../src/lab/index.js';
import { OpenFlowServer, parseFlow, type BundleItem } from '../../src/openflow/index.js';
import { run } from '../../src/util/exec.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

const N = Number(arg('flows', '100000'));
const ROUNDS = Number(arg('rounds', '5'));
const TRANSPORT = arg('transport', 'tcp');
const say = (s: string) => console.log(`# ${s}`);

function flowText(i: number): string {
  return (
    `table=60,priority=${100 + (i % 100)},metadata=0x${((i >> 12) + 1).toString(16)},ip,` +
    `nw_dst=10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} ` +
    `actions=set_field:0x${((i % 4096) + 1).toString(16)}->tun_id,output:${(i % 8) + 1}`
  );
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const name = `bfi${(process.pid % 1296).toString(36)}`;
const dir = mkdtempSync(join(tmpdir(), 'tenet-bench-fi-'));
let server: OpenFlowServer | undefined;
const cleanup = () => {
  try {
    labDown(name);
  } catch {
    /* best effort */
  }
  rmSync(dir, { recursive: true, force: true });
};
process.once('SIGINT', () => {
  cleanup();
  process.exit(130);
});

try {
  say(`lab ${name}: 1 host (netdev datapath)`);
  const state = await labUp({ name, hosts: 1 });
  const host = state.hosts[0]!;
  const env = hostEnv(host);
  const ofctl = (...a: string[]) => run(['ovs-ofctl', '-O', 'OpenFlow13', ...a], { env, timeoutMs: 300_000 });
  const vsctl = (...a: string[]) => run(['ovs-vsctl', `--db=unix:${host.ovsdbSocket}`, ...a], { env });

  const texts = Array.from({ length: N }, (_, i) => flowText(i));
  const file = join(dir, 'flows.txt');
  writeFileSync(file, texts.join('\n') + '\n');
  let t0 = performance.now();
  const items: BundleItem[] = texts.map((t) => ({ type: 'flow_mod', xid: 0, ...parseFlow(t) }));
  const parseS = (performance.now() - t0) / 1000;
  say(`parsed ${N} flows in ${parseS.toFixed(3)} s (not part of tenet_s: the compiler hands the channel objects)`);

  server = new OpenFlowServer({ requestTimeoutMs: 120_000 });
  let target: string;
  if (TRANSPORT === 'unix') {
    const path = join(host.runDir, 'tenet-bench.sock');
    await server.listen({ path });
    target = `unix:${path}`;
  } else {
    const { port } = await server.listen({ host: state.mgmt.gateway, port: 0 });
    target = `tcp:${state.mgmt.gateway}:${port}`;
  }
  await vsctl('set-controller', 'br-int', target);
  const sw = await server.waitForSwitch(undefined, 30_000);
  say(`switch ${sw.dpidHex} connected over ${TRANSPORT}`);

  const count = async () => {
    const out = (await ofctl('dump-aggregate', 'br-int')).stdout;
    return Number(/flow_count=(\d+)/.exec(out)?.[1] ?? -1);
  };
  const clear = async () => {
    await ofctl('del-flows', 'br-int');
    const c = await count();
    if (c !== 0) throw new Error(`del-flows left ${c} flows`);
  };

  const tenet: number[] = [];
  const ovs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const who of r % 2 ? ['ovs-ofctl', 'tenet'] : ['tenet', 'ovs-ofctl']) {
      await clear();
      t0 = performance.now();
      if (who === 'tenet') await sw.applyBundle(items);
      else await ofctl('--bundle', 'add-flows', 'br-int', file);
      const s = (performance.now() - t0) / 1000;
      const c = await count();
      if (c !== N) throw new Error(`${who}: switch holds ${c} flows, expected ${N}`);
      (who === 'tenet' ? tenet : ovs).push(s);
      say(`round ${r + 1}/${ROUNDS} ${who}: ${s.toFixed(3)} s (${Math.round(N / s)} flows/s)`);
    }
  }
  const tenetS = median(tenet);
  const ovsS = median(ovs);
  await server.close();
  server = undefined;
  cleanup();
  console.log(
    JSON.stringify({
      flows: N,
      rounds: ROUNDS,
      transport: TRANSPORT,
      tenet_s: Number(tenetS.toFixed(4)),
      ovs_ofctl_s: Number(ovsS.toFixed(4)),
      ratio: Number((tenetS / ovsS).toFixed(3)),
      tenet_flows_per_s: Math.round(N / tenetS),
      ovs_ofctl_flows_per_s: Math.round(N / ovsS),
      tenet_parse_s: Number(parseS.toFixed(4)),
      tenet_runs_s: tenet.map((x) => Number(x.toFixed(4))),
      ovs_ofctl_runs_s: ovs.map((x) => Number(x.toFixed(4))),
    }),
  );
} catch (e) {
  await server?.close();
  cleanup();
  throw e;
}
