/**
 * flow-install: 100,000 distinct flows installed in one atomic bundle by
 * Tenet's OpenFlow channel, against `ovs-ofctl -O OpenFlow13 --bundle
 * add-flows` of the same flows, on the same netdev bridge of a one-host lab,
 * rotating A/B/C/D; medians. Last line: JSON with flows, tenet_s,
 * ovs_ofctl_s, ratio (as the issue defines it) and the like-for-like figures:
 *  - tenet_s starts from flow_mod objects on a warm, handshaken connection;
 *    ovs-ofctl pays process start, handshake and text parsing. So also:
 *  - tenet_from_text_s: Tenet parsing the same text lines while streaming;
 *  - ovs_ofctl_fixed_s: ovs-ofctl --bundle add-flows of 1 flow (its fixed cost);
 *  - ratio_net = tenet_from_text_s / (ovs_ofctl_s - ovs_ofctl_fixed_s);
 *  - switch_commit_s / switch_barrier_s: from Tenet's bundle timing, how long
 *    ovs-vswitchd takes to apply the commit, and to catch up on the adds after
 *    the last one was queued (time Tenet spends waiting on the switch);
 *  - *_blocked_on_switch_s: send-phase time Tenet sat on back-pressure (the
 *    switch not reading), *_busy_sending_s: the rest of the send phase;
 *  - tenet_cpu_s / tenet_from_text_cpu_s: CPU time the controller process used.
 *
 *   npm run bench -- flow-install [--flows N] [--rounds R] [--transport tcp|unix]
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostEnv, labDown, labUp } from '../../src/lab/index.js';
import { OpenFlowServer, parseFlow, type BundleItem, type BundleTiming } from '../../src/openflow/index.js';
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
  const file1 = join(dir, 'flow1.txt');
  writeFileSync(file1, texts[0] + '\n');
  let t0 = performance.now();
  const items: BundleItem[] = texts.map((t) => ({ type: 'flow_mod', xid: 0, ...parseFlow(t) }));
  const parseS = (performance.now() - t0) / 1000;
  say(`parsed ${N} flows in ${parseS.toFixed(3)} s (cold; tenet_s starts from these objects, tenet_from_text_s parses again each run)`);

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
  // ovs-ofctl's fixed cost (process start, connect, handshake, one-flow bundle),
  // measured on the same bridge in every round.
  const fixedRuns: number[] = [];
  const ofctlFixed = async () => {
    await clear();
    const t = performance.now();
    await ofctl('--bundle', 'add-flows', 'br-int', file1);
    const s = (performance.now() - t) / 1000;
    const c = await count();
    if (c !== 1) throw new Error(`ovs-ofctl 1 flow: switch holds ${c} flows`);
    fixedRuns.push(s);
    return s;
  };
  const commitS: Record<string, number[]> = { tenet: [], 'tenet-text': [] };
  const barrierS: Record<string, number[]> = { tenet: [], 'tenet-text': [] };
  // Time Tenet was blocked because the switch did not read as fast as Tenet wrote,
  // and Tenet's own busy time while sending (send phase minus that wait).
  const waitS: Record<string, number[]> = { tenet: [], 'tenet-text': [] };
  const busyS: Record<string, number[]> = { tenet: [], 'tenet-text': [] };
  // CPU time of this process (the controller) per run: busy time much larger than
  // this means Tenet was waiting for a core, not working.
  const cpuS: Record<string, number[]> = { tenet: [], 'tenet-text': [] };
  const record = (who: string, b: BundleTiming) => {
    commitS[who]!.push(b.commitMs / 1000);
    barrierS[who]!.push(b.barrierMs / 1000);
    waitS[who]!.push(b.waitMs / 1000);
    busyS[who]!.push((b.sendMs - b.waitMs) / 1000);
    say(`  ${who} phases: open ${b.openMs.toFixed(1)} ms, send ${b.sendMs.toFixed(0)} ms (blocked on switch ${b.waitMs.toFixed(0)}), barrier ${b.barrierMs.toFixed(0)} ms, commit ${b.commitMs.toFixed(0)} ms`);
  };

  // tenet: flow_mod objects -> committed bundle (the controller's real path);
  // tenet-text: the same starting from the text (parse included, streamed), like ovs-ofctl.
  const times: Record<string, number[]> = { tenet: [], 'tenet-text': [], 'ovs-ofctl': [] };
  const order = ['tenet', 'ovs-ofctl', 'tenet-text'];
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < order.length; k++) {
      const who = order[(k + r) % order.length]!;
      await clear();
      const cpu0 = process.cpuUsage();
      t0 = performance.now();
      if (who === 'tenet') record(who, await sw.applyBundle(items));
      else if (who === 'tenet-text') {
        // Streamed: each flow is parsed as it is sent, so parsing overlaps the switch's work.
        record(
          who,
          await sw.applyBundle(
            (function* () {
              for (const t of texts) yield { type: 'flow_mod', xid: 0, ...parseFlow(t) } as BundleItem;
            })(),
          ),
        );
      } else await ofctl('--bundle', 'add-flows', 'br-int', file);
      const s = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      if (cpuS[who]) cpuS[who]!.push((cpu.user + cpu.system) / 1e6);
      const c = await count();
      if (c !== N) throw new Error(`${who}: switch holds ${c} flows, expected ${N}`);
      times[who]!.push(s);
      say(`round ${r + 1}/${ROUNDS} ${who}: ${s.toFixed(3)} s (${Math.round(N / s)} flows/s)${cpuS[who] ? `, controller CPU ${cpuS[who]!.at(-1)!.toFixed(3)} s` : ''}`);
    }
    say(`round ${r + 1}/${ROUNDS} ovs-ofctl 1 flow (fixed cost): ${(await ofctlFixed()).toFixed(3)} s`);
  }
  const tenet = times.tenet!;
  const ovs = times['ovs-ofctl']!;
  const tenetS = median(tenet);
  const ovsS = median(ovs);
  const textS = median(times['tenet-text']!);
  const fixedS = median(fixedRuns);
  const r4 = (x: number) => Number(x.toFixed(4));
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
      tenet_from_text_s: Number(textS.toFixed(4)),
      ratio_from_text: Number((textS / ovsS).toFixed(3)),
      ovs_ofctl_fixed_s: r4(fixedS),
      ratio_net: Number((textS / (ovsS - fixedS)).toFixed(3)),
      switch_commit_s: r4(median([...commitS.tenet!, ...commitS['tenet-text']!])),
      switch_barrier_s: r4(median(barrierS.tenet!)),
      switch_barrier_from_text_s: r4(median(barrierS['tenet-text']!)),
      tenet_blocked_on_switch_s: r4(median(waitS.tenet!)),
      tenet_busy_sending_s: r4(median(busyS.tenet!)),
      tenet_from_text_blocked_on_switch_s: r4(median(waitS['tenet-text']!)),
      tenet_from_text_busy_sending_s: r4(median(busyS['tenet-text']!)),
      tenet_cpu_s: r4(median(cpuS.tenet!)),
      tenet_from_text_cpu_s: r4(median(cpuS['tenet-text']!)),
      load_avg_1m: Number(loadavg()[0]!.toFixed(2)),
      tenet_first_parse_s: Number(parseS.toFixed(4)),
      tenet_runs_s: tenet.map((x) => Number(x.toFixed(4))),
      ovs_ofctl_runs_s: ovs.map((x) => Number(x.toFixed(4))),
      ovs_ofctl_fixed_runs_s: fixedRuns.map(r4),
    }),
  );
} catch (e) {
  await server?.close();
  cleanup();
  throw e;
}
