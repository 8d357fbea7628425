/**
 * Restarts, with the daemon as a real process (`node bin/tenet.js controller`):
 * - hitless controller restart: a ping every 10 ms between containers on two hosts
 *   while the controller is killed with SIGKILL and started again loses nothing,
 *   no flow is deleted and re-added, and the new process sends no flow_mod; a
 *   service chain from host1 to host2 through an instance on host3 keeps its
 *   select groups (they list host3's instance, whose placement host1 and host2
 *   must wait for);
 * - ovs-vswitchd restart: the controller reprograms the empty switch and traffic
 *   resumes (the time is measured and printed, not asserted).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient } from '../../../src/api/index.js';
import { addEndpointContainers, endpointContainerName, isAlive, startVswitchd } from '../../../src/lab/index.js';
import { withLab } from '../../helpers/lab.js';
import { freePort, until } from '../../helpers/net.js';
import { dumpFlows, sleep, smallTopology } from './helpers.js';

const ROOT = new URL('../../../', import.meta.url).pathname;

t.test('controller and vswitchd restarts', async (t) => {
  await withLab(t, { hosts: 3 }, async (lab) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tenet-ctld-'));
    t.teardown(() => {
      // On failure, the daemon's log is worth keeping.
      if (t.passing()) rmSync(stateDir, { recursive: true, force: true });
      else t.comment(`controller log kept in ${join(stateDir, 'controller.log')}`);
    });
    const gw = lab.state.mgmt.gateway;
    const apiPort = await freePort({ host: '127.0.0.1' });
    const ofPort = await freePort({ host: gw });
    const log = join(stateDir, 'controller.log');
    const children = new Set<ChildProcess>();
    t.teardown(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
    });

    const startDaemon = async (): Promise<ChildProcess> => {
      const child = spawn(
        process.execPath,
        [
          join(ROOT, 'bin/tenet.js'), 'controller',
          '--state-dir', stateDir,
          '--api', `127.0.0.1:${apiPort}`,
          '--openflow', `${gw}:${ofPort}`,
          '--advertise', `tcp:${gw}:${ofPort}`,
          '--drift-interval', '0',
          '--log-level', 'info',
          '--dns', 'off',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      children.add(child);
      child.stderr!.pipe(createWriteStream(log, { flags: 'a' }));
      await until('controller API up', async () => {
        if (child.exitCode !== null) throw new Error(`controller exited ${child.exitCode}: ${readFileSync(log, 'utf8').slice(-2000)}`);
        return fetch(`http://127.0.0.1:${apiPort}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
      }, 20_000, 100);
      return child;
    };

    let daemon = await startDaemon();
    const api = new ApiClient({ url: `http://127.0.0.1:${apiPort}`, token: readFileSync(join(stateDir, 'token'), 'utf8').trim() });
    const topology = smallTopology(lab.state);
    const acme = topology.tenants[0]! as { endpoints: unknown[]; chains?: unknown[] };
    acme.endpoints.push({ name: 'fw', network: 'web', host: 'host3' });
    acme.chains = [{ name: 'web', from: { endpoints: ['web-1'] }, to: { endpoints: ['web-2'] }, protocol: 'tcp', ports: [80], hops: [{ instances: ['fw'] }], symmetric: true, failMode: 'closed' }];
    const applied = await api.apply(topology);
    const realized = await api.wait(applied.generation, 30);
    t.ok(realized.realized, 'generation realized through the daemon');
    const eps = await api.endpoints();
    await addEndpointContainers(lab.name, lab.state, eps, { concurrency: 2 });
    const web1 = eps.find((e) => e.id === 'acme/web-1')!;
    const web2 = eps.find((e) => e.id === 'acme/web-2')!;
    const ip2 = web2.ip!.split('/')[0]!;
    await until('web-1 reaches web-2', async () => (await lab.ping(endpointContainerName(web1), ip2, { count: 1, timeoutS: 1 })).ok, 20_000, 100);
    const metrics = async () => api.metrics();
    const sentBefore = /tenet_reconcile_messages_total\{host="host1"\} (\d+)/.exec(await metrics());
    t.ok(Number(sentBefore?.[1]) > 0, `the first controller programmed host1 (${sentBefore?.[1]} messages)`);

    // ---- 3. hitless restart
    await sleep(1100);
    const flowsBefore = new Map(await Promise.all(['host1', 'host2'].map(async (h) => [h, await dumpFlows(lab, h)] as const)));
    const groups = async (h: string) => (await lab.ofctl(h, 'dump-groups', 'br-int')).stdout.split('\n').filter((l) => l.includes('group_id')).sort();
    const groupsBefore = new Map(await Promise.all(['host1', 'host2'].map(async (h) => [h, await groups(h)] as const)));
    for (const [h, g] of groupsBefore) t.ok(g.some((l) => l.includes('type=select') && l.includes('bucket=')), `${h}: the chain's select group lists host3's instance`);
    const c1 = lab.container(endpointContainerName(web1));
    // A fixed count (20 s or more at 10 ms): ping then waits for the last reply, so nothing is in flight when it reports
    // (stopping it with SIGINT would count an echo still on the wire as lost).
    const pinger = spawn('ip', ['netns', 'exec', c1.namespace, 'ping', '-n', '-q', '-i', '0.01', '-c', '2000', ip2], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => {
      if (pinger.exitCode === null && pinger.signalCode === null) pinger.kill('SIGKILL');
    });
    let pingOut = '';
    pinger.stdout!.on('data', (d: Buffer) => (pingOut += d.toString()));
    let pingEndedAt = 0;
    const pingDone = new Promise<void>((resolve) =>
      pinger.once('exit', () => {
        pingEndedAt = performance.now();
        resolve();
      }),
    );
    await sleep(1000);
    process.kill(daemon.pid!, 'SIGKILL');
    await new Promise((r) => daemon.once('exit', r));
    const killedAt = performance.now();
    await sleep(500);
    daemon = await startDaemon();
    // Wait until both switches reconnected to the new process and it reconciled them.
    await until('restarted controller has host1 and host2 back', async () => {
      const s = await api.status();
      return ['host1', 'host2'].every((h) => s.hosts.find((x) => x.name === h)?.state === 'ready' && s.hosts.find((x) => x.name === h)?.realizedGeneration === applied.generation);
    }, 30_000, 100);
    const backAt = performance.now();
    t.comment(`switches back on the restarted controller ${((backAt - killedAt) / 1000).toFixed(1)} s after the kill`);
    await pingDone;
    t.ok(pingEndedAt > backAt, 'the ping ran until after the switches were back on the restarted controller');
    const m = /(\d+) packets transmitted, (\d+) received/.exec(pingOut);
    t.ok(m, `ping summary: ${pingOut.trim().split('\n').slice(-2).join(' | ')}`);
    t.ok(Number(m?.[1]) > 100, `${m?.[1]} pings sent across the restart`);
    t.equal(Number(m?.[2]), Number(m?.[1]), 'zero lost packets');
    const after = await metrics();
    t.notMatch(after, /tenet_reconcile_messages_total\{host="host[12]"\} [1-9]/, 'the restarted controller sent no flow_mod or group_mod');
    for (const [h, before] of flowsBefore) {
      const now = await dumpFlows(lab, h);
      t.same([...now.keys()].sort(), [...before.keys()].sort(), `${h}: the same flows`);
      t.ok([...now].every(([f, d]) => d > before.get(f)!), `${h}: every flow kept its duration (none deleted and re-added)`);
      t.same(await groups(h), groupsBefore.get(h), `${h}: the same groups (the chain's instance on host3 kept)`);
    }

    // ---- 4. vswitchd restart on host2
    const pid = lab.pids('host2').ovsVswitchd!;
    t.ok(pid, 'host2 vswitchd pid');
    process.kill(pid, 'SIGKILL');
    await until('vswitchd gone', () => !isAlive(pid), 5000, 20);
    const restartedAt = performance.now();
    await startVswitchd(lab.host('host2'));
    let reprogrammedMs = 0;
    await until('host2 reprogrammed', async () => {
      const s = await api.status();
      const h2 = s.hosts.find((x) => x.name === 'host2');
      if (h2?.state === 'ready' && (await dumpFlows(lab, 'host2')).size === h2.flows) {
        reprogrammedMs ||= performance.now() - restartedAt;
        return true;
      }
      return false;
    }, 30_000, 20);
    await until('ping resumes', async () => (await lab.ping(endpointContainerName(web1), ip2, { count: 1, timeoutS: 1 })).ok, 30_000, 20);
    const resumedMs = performance.now() - restartedAt;
    t.comment(`vswitchd restart: host2 reprogrammed ${reprogrammedMs.toFixed(0)} ms, ping resumed ${resumedMs.toFixed(0)} ms after ovs-vswitchd was started again`);
    const p = await lab.ping(endpointContainerName(web1), ip2, { count: 3 });
    t.ok(p.ok, `traffic flows again: ${p.received}/${p.sent}`);
    const h2 = (await api.status()).hosts.find((x) => x.name === 'host2')!;
    t.equal(h2.state, 'ready');
    t.match(await metrics(), /tenet_reconcile_messages_total\{host="host2"\} [1-9]/, 'the controller reinstalled host2');

    process.kill(daemon.pid!, 'SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    t.equal(daemon.exitCode, 0, 'SIGTERM stops the daemon cleanly');
  });
});
