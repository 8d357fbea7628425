/**
 * A chain hop given as a service, driven by the service registry the controller
 * daemon hosts: a 2-host lab, `tenet controller` (the lab's), a chain client ->
 * service "fw" -> server, fw-1 and fw-2 labelled service=fw. fw-1 (host1) registers
 * with meta.endpoint, fw-2 (host2) by its address, both with TTL checks pushed
 * through /v1/services (as an agent does). Shows, with real packets and nftables
 * counters in the service functions:
 * - a registration of the client as "fw" (a source, not providing fw) is skipped;
 * - registered and passing: both in host1's select group, new connections spread
 *   over both, every one through exactly one forwarding hop;
 * - fw-1's check set to fail: it leaves the group (time measured from the PUT to the
 *   group change on the switch), a long-lived connection through fw-2 goes on, new
 *   connections all go through fw-2; passing again: it rejoins;
 * - both checks failing: the hop has no healthy instance, failMode open bypasses it;
 * - DNS: fw.acme.tenet. from the daemon's DNS port answers the passing instances.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dns2 from 'dns2';
import t from 'tap';
import { ApiClient } from '../../../src/api/client.js';
import { addEndpointContainers, DNS_PORT, endpointContainerName, startLabController, warmUnderlay, withLabHosts } from '../../../src/lab/index.js';
import { withLab } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';
import { persistentClient, type Persistent } from '../../helpers/persistent.js';

const CLIENT = '10.1.0.10';
const SERVER = '10.1.0.20';
const FW = { 'fw-1': '10.1.0.41', 'fw-2': '10.1.0.42' } as const;
type Fw = keyof typeof FW;

const TOPOLOGY = {
  version: 1,
  hosts: [{ name: 'host1' }, { name: 'host2' }],
  tenants: [
    {
      name: 'acme',
      networks: [{ name: 'net', subnet: '10.1.0.0/24' }],
      endpoints: [
        { name: 'client', network: 'net', host: 'host1', ip: CLIENT },
        { name: 'server', network: 'net', host: 'host2', ip: SERVER },
        { name: 'fw-1', network: 'net', host: 'host1', ip: FW['fw-1'], labels: { service: 'fw' } },
        { name: 'fw-2', network: 'net', host: 'host2', ip: FW['fw-2'], labels: { service: 'fw' } },
      ],
      chains: [
        { name: 'web', from: { endpoints: ['client'] }, to: { endpoints: ['server'] }, protocol: 'tcp', ports: [80], hops: [{ service: 'fw' }], symmetric: true, failMode: 'open' },
      ],
    },
  ],
};

const ECHO = `require('node:net').createServer((s) => s.on('data', (d) => s.write(d)).on('error', () => {})).listen(80, '${SERVER}'); console.log('ready');`;
/** n new connections, 4 at a time, each one exchange; prints how many completed. */
const CONNECT = `
const net = require('node:net');
const n = Number(process.argv[1]);
const one = () => new Promise((res) => {
  const s = net.connect({ host: '${SERVER}', port: 80 });
  const done = (ok) => { clearTimeout(tm); s.destroy(); res(ok); };
  const tm = setTimeout(() => done(false), 5000);
  s.on('connect', () => s.write('through the chain\\n'));
  s.on('data', () => { s.end(); done(true); });
  s.on('error', () => done(false));
});
(async () => { let ok = 0; for (let i = 0; i < n; i += 4) ok += (await Promise.all(Array.from({ length: Math.min(4, n - i) }, one))).filter(Boolean).length; console.log(ok); })();
`;
const SF_RULES = `table inet tenet {
  counter forwarded {}
  counter c2s {}
  set c2s_ports { type inet_service; flags dynamic; }
  chain through {
    type filter hook forward priority 0; policy accept;
    counter name "forwarded"
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 80 counter name "c2s" add @c2s_ports { tcp sport }
  }
}
`;
/** At the server: client packets to port 80, and how many crossed one forwarding hop (TTL 63) or none (64). */
const SERVER_RULES = `table inet tenet {
  counter c2s {}
  counter ttl63 {}
  counter ttl64 {}
  chain in {
    type filter hook input priority 0; policy accept;
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 80 counter name "c2s"
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 80 ip ttl 63 counter name "ttl63"
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 80 ip ttl 64 counter name "ttl64"
  }
}
`;

t.test('a service hop follows the registry the controller hosts', async (t) => {
  await withLab(t, { hosts: 2 }, async (lab) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tenet-e2e-chain-registry-'));
    t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
    const ctl = await startLabController(lab.state, { stateDir, driftIntervalS: 0 });
    t.teardown(() => ctl.stop());
    const api = new ApiClient({ url: ctl.url, token: ctl.token! });
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${ctl.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${ctl.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      await res.text();
      return res.status;
    };

    await api.apply(withLabHosts(TOPOLOGY, lab.state));
    const eps = await api.endpoints();
    await addEndpointContainers(lab.name, lab.state, eps);
    await until('every port bound', async () => (await api.hosts()).reduce((n, h) => n + h.bindings, 0) === eps.length, 30_000, 200);
    await warmUnderlay(lab.state);
    const c = (name: string) => endpointContainerName({ tenant: 'acme', name });
    const macOf = (name: Fw) => eps.find((e) => e.name === name)!.mac;
    for (const sf of ['fw-1', 'fw-2'] as const) {
      for (const s of ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0']) await lab.exec(c(sf), ['sysctl', '-q', '-w', s]);
      await lab.exec(c(sf), ['ethtool', '-K', 'eth0', 'gro', 'off', 'gso', 'off', 'tso', 'off'], { allowFailure: true });
      const f = join(stateDir, `${sf}.nft`);
      writeFileSync(f, SF_RULES);
      await lab.exec(c(sf), ['nft', '-f', f]);
    }
    const serverRules = join(stateDir, 'server.nft');
    writeFileSync(serverRules, SERVER_RULES);
    await lab.exec(c('server'), ['nft', '-f', serverRules]);
    const server = spawn('ip', ['netns', 'exec', lab.container(c('server')).namespace, process.execPath, '-e', ECHO], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });
    await new Promise((res) => server.stdout!.once('data', res));

    const conn = async (n: number) => Number((await lab.exec(c('client'), [process.execPath, '-e', CONNECT, String(n)], { timeoutMs: 15_000 + n * 2000 })).stdout.trim());
    const read = async (name: string) => {
      const out = JSON.parse((await lab.exec(c(name), ['nft', '-j', 'list', 'counters'])).stdout) as { nftables: { counter?: { name: string; packets: number } }[] };
      return Object.fromEntries(out.nftables.flatMap((o) => (o.counter ? [[o.counter.name, o.counter.packets]] : []))) as Record<string, number>;
    };
    const groups = async () => (await lab.ofctl('host1', 'dump-groups', 'br-int')).stdout;
    const hop = async () => (await api.chains())[0]!.hops[0]!;
    const healthOf = async () => {
      const h = await hop();
      return `${h.state}: ${h.instances.map((i) => `${i.endpoint.split('/')[1]} ${i.health}`).join(', ')}`;
    };

    // Nothing registered: the labelled members, no check (healthy), connections go through them (TTL 63 at the server).
    t.equal(await healthOf(), 'ok: fw-1 healthy, fw-2 healthy', 'no instance registered: the labelled members, healthy (checks are opt-in)');
    await until('client reaches server:80', async () => (await conn(1)) === 1, 30_000, 500);
    const s0 = await read('server');
    t.ok(s0['ttl63']! > 0 && s0['ttl64'] === 0, `before any registration the packets cross one hop (TTL 63: ${s0['ttl63']}, TTL 64: ${s0['ttl64']})`);

    // Hijack attempt: the client registered as fw (it neither is labelled fw nor may a source be a member).
    t.equal(await call('PUT', '/v1/services/acme/fw/evil', { address: CLIENT, port: 80, tags: [], meta: { endpoint: 'acme/client' } }), 201, 'the client registered as fw');
    await until('skipped', async () => ((await hop()).skipped ?? []).some((s) => s.id === 'evil'), 10_000, 50);
    t.equal(await healthOf(), 'ok: fw-1 healthy, fw-2 healthy', 'skipped: the members are unchanged');
    t.equal(await call('DELETE', '/v1/services/acme/fw/evil'), 204);

    // Register both (as an agent: TTL check, critical until the first pass), then pass.
    const registration = (name: Fw, byMeta: boolean) => ({
      address: FW[name],
      port: 80,
      tags: [],
      meta: byMeta ? { endpoint: `acme/${name}`, host: name === 'fw-1' ? 'host1' : 'host2' } : {},
      checks: [{ id: 'agent', type: 'ttl', ttl: '60s' }],
    });
    t.equal(await call('PUT', '/v1/services/acme/fw/fw-1', registration('fw-1', true)), 201, 'fw-1 registered (meta.endpoint)');
    t.equal(await call('PUT', '/v1/services/acme/fw/fw-2', registration('fw-2', false)), 201, 'fw-2 registered (by address)');
    await until('both members, check failing until they pass', async () => (await healthOf()) === 'bypassed: fw-1 check failing, fw-2 check failing', 10_000, 50);
    t.pass('registered: both members of the hop, "check failing" until their TTL check passes');
    for (const f of ['fw-1', 'fw-2'] as const) t.equal(await call('PUT', `/v1/services/acme/fw/${f}/checks/agent/pass`), 200, `${f} passes`);
    await until('both in host1\'s select group', async () => {
      const g = await groups();
      return g.includes(macOf('fw-1')) && g.includes(macOf('fw-2'));
    }, 30_000, 50);
    t.equal(await healthOf(), 'ok: fw-1 healthy, fw-2 healthy', 'GET /v1/chains: both healthy');

    // DNS from the controller's DNS port (the lab's management gateway).
    const resolve = dns2.UDPClient({ dns: lab.state.mgmt.gateway, port: DNS_PORT } as Parameters<typeof dns2.UDPClient>[0]);
    const a = await resolve('fw.acme.tenet.', 'A', undefined, { recursive: false });
    t.same(a.answers.map((r) => r.address).sort(), [FW['fw-1'], FW['fw-2']], `fw.acme.tenet. A from ${lab.state.mgmt.gateway}:${DNS_PORT}: both passing instances`);

    // Many new connections: spread over both, each through exactly one forwarding hop.
    const n = 32;
    const [b1, b2, bs] = await Promise.all([read('fw-1'), read('fw-2'), read('server')]);
    t.equal(await conn(n), n, `${n} TCP exchanges client -> server:80`);
    const [a1, a2, as] = await Promise.all([read('fw-1'), read('fw-2'), read('server')]);
    const d1 = a1['c2s']! - b1['c2s']!;
    const d2 = a2['c2s']! - b2['c2s']!;
    t.ok(d1 > 0 && d2 > 0, `both instances carried connections (fw-1 ${d1}, fw-2 ${d2} packets)`);
    t.equal(as['ttl63']! - bs['ttl63']!, as['c2s']! - bs['c2s']!, `every packet at the server crossed one forwarding hop (${as['c2s']! - bs['c2s']!})`);
    t.ok(as['c2s']! - bs['c2s']! <= d1 + d2, 'no more than the instances forwarded');

    // A long-lived connection through fw-2.
    const setOf = async (sf: Fw) => {
      const out = JSON.parse((await lab.exec(c(sf), ['nft', '-j', 'list', 'set', 'inet', 'tenet', 'c2s_ports'])).stdout) as { nftables: { set?: { elem?: number[] } }[] };
      return out.nftables.flatMap((o) => o.set?.elem ?? []);
    };
    let held: Persistent | undefined;
    for (let i = 0; i < 10 && !held; i++) {
      const p = await persistentClient(t, lab.container(c('client')).namespace, SERVER, 80, 20_000);
      if (!(await p.say('first'))) continue;
      if ((await setOf('fw-2')).includes(p.port)) held = p;
    }
    if (!held) throw new Error('no long-lived connection through fw-2 in 10 tries');
    t.pass(`a long-lived connection through fw-2 (port ${held.port})`);

    // fw-1's check fails: out of the group.
    const tFail = Date.now();
    t.equal(await call('PUT', '/v1/services/acme/fw/fw-1/checks/agent/fail'), 200, 'fw-1 check set to fail');
    await until('fw-1 left host1\'s select group', async () => !(await groups()).includes(macOf('fw-1')), 30_000, 20);
    const failS = (Date.now() - tFail) / 1000;
    t.comment(`failover_registry_s=${failS.toFixed(3)} (check set failing -> fw-1 out of host1's select group, polled with ovs-ofctl every 20 ms)`);
    t.ok((await groups()).includes(macOf('fw-2')), 'fw-2 stays in the group');
    t.equal(await healthOf(), 'degraded: fw-1 check failing, fw-2 healthy', 'GET /v1/chains: fw-1 check failing, hop degraded');
    t.ok(await held.say('second'), 'the long-lived connection through fw-2 goes on');
    const [f1, f2] = await Promise.all([read('fw-1'), read('fw-2')]);
    const m = 16;
    t.equal(await conn(m), m, `${m} new connections with fw-1 failing`);
    const [g1, g2] = await Promise.all([read('fw-1'), read('fw-2')]);
    t.equal(g1['c2s'], f1['c2s'], 'fw-1 got none of them');
    t.ok(g2['c2s']! - f2['c2s']! >= m * 3, `fw-2 took them all (${g2['c2s']! - f2['c2s']!} packets)`);
    const r = await resolve('fw.acme.tenet.', 'A', undefined, { recursive: false });
    t.same(r.answers.map((x) => x.address), [FW['fw-2']], 'DNS answers only fw-2');

    // Passing again: it rejoins.
    const tPass = Date.now();
    t.equal(await call('PUT', '/v1/services/acme/fw/fw-1/checks/agent/pass'), 200, 'fw-1 check passes again');
    await until('fw-1 back in host1\'s select group', async () => (await groups()).includes(macOf('fw-1')), 30_000, 20);
    t.comment(`rejoin_registry_s=${((Date.now() - tPass) / 1000).toFixed(3)} (check passing -> back in host1's select group)`);
    t.equal(await healthOf(), 'ok: fw-1 healthy, fw-2 healthy', 'healthy again');
    const h1 = await read('fw-1');
    await until('new connections reach fw-1 again', async () => (await conn(4), (await read('fw-1'))['c2s']! > h1['c2s']!), 30_000, 200);
    t.ok(await held.say('third'), 'the long-lived connection through fw-2 survived it all');

    // Every instance's check failing: no healthy instance, failMode open bypasses the hop.
    t.equal(await call('PUT', '/v1/services/acme/fw/fw-1/checks/agent/fail'), 200);
    t.equal(await call('PUT', '/v1/services/acme/fw/fw-2/checks/agent/fail'), 200);
    await until('no fw in host1\'s groups', async () => {
      const g = await groups();
      return !g.includes(macOf('fw-1')) && !g.includes(macOf('fw-2'));
    }, 30_000, 50);
    t.equal(await healthOf(), 'bypassed: fw-1 check failing, fw-2 check failing', 'GET /v1/chains: no healthy instance, bypassed');
    const [e1, e2, es] = await Promise.all([read('fw-1'), read('fw-2'), read('server')]);
    t.equal(await conn(8), 8, '8 new connections complete (failMode open)');
    const [k1, k2, ks] = await Promise.all([read('fw-1'), read('fw-2'), read('server')]);
    t.same([k1['forwarded'], k2['forwarded']], [e1['forwarded'], e2['forwarded']], 'no service function forwarded anything');
    t.ok(ks['ttl64']! - es['ttl64']! >= 8 * 3 && ks['ttl63'] === es['ttl63'], `the server got them straight from the client (TTL 64: ${ks['ttl64']! - es['ttl64']!} packets)`);
    // Deregistered: the labelled members stay, with no check again (healthy).
    t.equal(await call('DELETE', '/v1/services/acme/fw/fw-1'), 204);
    t.equal(await call('DELETE', '/v1/services/acme/fw/fw-2'), 204);
    await until('both healthy again', async () => (await healthOf()) === 'ok: fw-1 healthy, fw-2 healthy', 10_000, 50);
    t.pass('deregistered: the labelled members stay, healthy');
    t.equal((await resolve('fw.acme.tenet.', 'A', undefined, { recursive: false })).header.rcode, 3, 'fw.acme.tenet. is NXDOMAIN once nothing is registered');
  });
});
