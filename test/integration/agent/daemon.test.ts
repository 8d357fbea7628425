/**
 * Real agents (`tenet agent` per lab host) with the real controller daemon: TCP (not
 * only ping) between instances on two hosts with the controller's addresses, a unit's
 * output through `tenet units logs`, a container's own service registered through the
 * agent socket into the daemon's registry, and `units stop|start` (loaded: the port
 * stays, the process goes; launched: a process again). The 3-host failover and
 * constraint scenario is test/integration/e2e/units.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient } from '../../../src/api/index.js';
import { instanceNetns } from '../../../src/agent/index.js';
import { labAgentNetnsPrefix, labTopologyHosts, namespacePids, startLabAgents, startLabController, stopLabAgents } from '../../../src/lab/index.js';
import { run } from '../../../src/util/exec.js';
import { withLab } from '../../helpers/lab.js';
import { tenet } from '../../helpers/cli.js';
import { until } from '../../helpers/net.js';

const TTL_S = 3;
const SERVER = "require('net').createServer((s)=>{s.on('error',()=>{});s.end('hello from '+process.env.TENET_INSTANCE_ID+'\\n')}).listen(8080,()=>console.log('serving on 8080'))";

t.test('real agents with the real daemon', async (t) => {
  await withLab(t, { hosts: 2 }, async (lab) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tenet-agent-daemon-'));
    t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
    const ctl = await startLabController(lab.state, { stateDir, driftIntervalS: 0, args: ['--agent-ttl', String(TTL_S)] });
    t.teardown(() => ctl.stop());
    const api = new ApiClient({ url: ctl.url, ...(ctl.token ? { token: ctl.token } : {}) });
    const agents = await startLabAgents(lab.name, { controller: ctl.url, token: ctl.token, logLevel: 'debug' });
    t.teardown(() => stopLabAgents(lab.name).then(() => undefined));
    await until('two agents alive', async () => (await api.agents()).filter((a) => a.alive).length === 2, 30_000, 100);

    await api.apply({
      version: 1,
      hosts: labTopologyHosts(lab.state),
      tenants: [{ name: 'acme', networks: [{ name: 'web', subnet: '10.0.3.0/24' }], policies: [{ name: 'all', from: {}, to: {}, action: 'allow' }] }],
      units: [
        {
          name: 'web@1..2',
          tenant: 'acme',
          network: 'web',
          command: [process.execPath, '-e', SERVER],
          constraints: { conflicts: ['web@*'] },
          services: [{ name: 'web', port: 8080, check: { type: 'tcp', intervalMs: 500 } }],
        },
      ],
    });
    const applied = Date.now();
    const running = async () => (await api.units()).flatMap((u) => u.instances);
    await until('both running', async () => (await running()).filter((i) => i.state === 'running').length === 2, 90_000, 200);
    t.comment(`apply -> both instances running (reported by their agents): ${((Date.now() - applied) / 1000).toFixed(2)} s`);
    const insts = await running();
    const w1 = insts.find((i) => i.id === 'web@1')!;
    const w2 = insts.find((i) => i.id === 'web@2')!;
    t.not(w1.host, w2.host, 'one instance per host');
    const ns = (i: { id: string; host?: string }) => instanceNetns(labAgentNetnsPrefix(lab.name, i.host!), i.id);

    // TCP across hosts through the controller's pipeline (tx offload off on eth0 matters here).
    const ip2 = w2.ip!.split('/')[0]!;
    const tcp = async () => {
      const r = await run(['ip', 'netns', 'exec', ns(w1), 'timeout', '2', 'bash', '-c', `exec 3<>/dev/tcp/${ip2}/8080 && head -n1 <&3`], { allowFailure: true });
      return r.stdout.trim();
    };
    let answer = '';
    await until('TCP web@1 -> web@2', async () => (answer = await tcp()) === 'hello from web@2', 30_000, 200);
    t.comment(`apply -> first TCP answer across hosts: ${((Date.now() - applied) / 1000).toFixed(2)} s`);
    for (const a of agents) {
      // Where the agent's share of that time went (its own log, JSON lines).
      const lines = readFileSync(a.logFile, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { time: number; msg: string });
      const first = lines.find((l) => /assignments index .*new web@/.test(l.msg));
      const conv = lines.find((l) => /converged [1-9]/.test(l.msg));
      if (first && conv) t.comment(`${a.host}: assignment received ${((first.time - applied) / 1000).toFixed(2)} s after the apply; ${conv.msg}`);
    }
    t.equal(answer, 'hello from web@2', `web@1 (${w1.host}) reads from web@2 at ${ip2}:8080 (${w2.host})`);

    // Logs through the agent socket, as a user reads them.
    const env = { ...process.env, TENET_API: ctl.url, TENET_TOKEN: ctl.token ?? '' };
    const logs = await tenet(['units', 'logs', 'web@1', '--tail', '5'], { env });
    t.equal(logs.code, 0, `tenet units logs exits 0 ${logs.stderr}`);
    t.match(logs.stdout, /serving on 8080/, 'tenet units logs shows the unit output');

    // A container registers its own service through $TENET_AGENT_SOCKET.
    const pid1 = namespacePids(ns(w1))[0]!;
    const cenv = readFileSync(`/proc/${pid1}/environ`, 'utf8').split('\0').filter((e) => e.startsWith('TENET_'));
    const script = join(stateDir, 'sidekick.cjs');
    writeFileSync(script, `require('http').request({ socketPath: process.env.TENET_AGENT_SOCKET, method: 'PUT', path: '/v1/services/admin',
      headers: { 'content-type': 'application/json', 'x-tenet-instance': process.env.TENET_INSTANCE_ID } },
      (res) => { res.resume(); res.on('end', () => console.log(res.statusCode)); }).end(JSON.stringify({ port: 8080, check: { type: 'tcp', intervalMs: 500 } }));`);
    const side = await run(['ip', 'netns', 'exec', ns(w1), 'env', ...cenv, process.execPath, script]);
    t.equal(side.stdout.trim(), '200', 'the agent accepted the container\'s registration');
    const registry = async (service: string) => {
      const r = await fetch(`${ctl.url}/v1/services/acme/${service}?passing=1`, { headers: { authorization: `Bearer ${ctl.token}` } });
      return r.ok ? ((await r.json()) as { instances: Array<{ id: string; address: string; meta: Record<string, string> }> }).instances : [];
    };
    await until('admin passing in the daemon registry', async () => (await registry('admin')).length === 1, 20_000, 200);
    const admin = (await registry('admin'))[0]!;
    t.match(admin, { id: 'web-1', address: w1.ip!.split('/')[0], meta: { instance: 'web@1', host: w1.host } }, 'registered at the instance address, under its endpoint name');
    await until('web passing twice', async () => (await registry('web')).length === 2, 20_000, 200);
    t.pass('declared services pass their check, run inside the namespaces');

    // units stop: loaded = port kept, process gone; start: a process again.
    await api.stopUnit('web@1..2');
    await until('stopped', async () => (await running()).every((i) => i.state === 'stopped'), 30_000, 200);
    t.same(namespacePids(ns(w1)), [], 'no process in a loaded instance');
    t.ok((await run(['ip', '-n', ns(w1), '-br', 'addr', 'show', 'eth0'])).stdout.includes(w1.ip!), 'its port keeps the address');
    await until('services deregistered', async () => (await registry('web')).length === 0, 20_000, 200);
    const startedAt = Date.now();
    await api.startUnit('web@1..2');
    await until('running again', async () => (await running()).filter((i) => i.state === 'running').length === 2, 30_000, 200);
    await until('TCP again', async () => (await tcp()) === 'hello from web@2', 30_000, 200);
    t.pass('started again: TCP answers');
    t.comment(`units start -> TCP answers again: ${((Date.now() - startedAt) / 1000).toFixed(2)} s`);
  });
});
