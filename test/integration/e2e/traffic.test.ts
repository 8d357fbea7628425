/**
 * End to end, with real traffic: one 3-host lab, the real `tenet controller`
 * daemon (its own process, stopped by pid), `tenet apply -f` of
 * topologies/e2e-three-hosts.json, and containers created with the IP, MAC,
 * iface-id and gateway the controller assigned (GET /v1/endpoints). Then ping and
 * TCP between them: tenant isolation with the same 10.0.0.0/24, the distributed
 * router across hosts, allow/deny policies in both directions with conntrack, and
 * spoofed addresses dropped.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient } from '../../../src/api/client.js';
import type { EndpointInfo } from '../../../src/controller/types.js';
import { addEndpointContainers, endpointContainerName, startLabController, tcpExchange, warmUnderlay, withLabHosts } from '../../../src/lab/index.js';
import { tenet } from '../../helpers/cli.js';
import { withLab, type TestLab } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';

const TOPOLOGY = new URL('../../../topologies/e2e-three-hosts.json', import.meta.url);

const bare = (cidr: string) => cidr.replace(/\/\d+$/, '');
/** A TCP exchange that failed on the network: the server was up (a server that never started proves nothing). */
const blocked = (r: { ok: boolean; detail: string }) => !r.ok && !/did not start/.test(r.detail);

/** TTL of the first echo reply (64 = same network, 63 = one router hop). */
async function replyTtl(lab: TestLab, from: string, ip: string): Promise<number | undefined> {
  const r = await lab.exec(from, ['ping', '-4', '-n', '-c', '1', '-W', '2', ip], { allowFailure: true, timeoutMs: 10_000 });
  const m = /ttl=(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

t.test('controller end to end: isolation, routing, policies with conntrack, anti-spoofing', async (t) => {
  await withLab(t, { hosts: 3 }, async (lab) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tenet-e2e-'));
    t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
    const ctl = await startLabController(lab.state, { stateDir, driftIntervalS: 2 });
    t.teardown(() => ctl.stop());
    const client = new ApiClient({ url: ctl.url, token: ctl.token! });

    const docFile = join(stateDir, 'topology.json');
    writeFileSync(docFile, JSON.stringify(withLabHosts(JSON.parse(readFileSync(TOPOLOGY, 'utf8')) as object, lab.state)));
    const applied = await tenet(['apply', '-f', docFile, '--api', ctl.url, '--token', ctl.token!, '--timeout', '60']);
    t.equal(applied.code, 0, `tenet apply exits 0\n${applied.stdout}${applied.stderr}`);
    const status = await client.status();
    t.ok(status.realized, 'every host realized the generation');
    t.same(status.hosts.map((h) => h.state), ['ready', 'ready', 'ready'], 'three hosts ready');

    // The controller's addresses, not ours: the containers take exactly what GET /v1/endpoints says.
    const eps = await client.endpoints();
    t.equal(eps.length, 7, 'seven endpoints');
    await addEndpointContainers(lab.name, lab.state, eps);
    const ep = (id: string): EndpointInfo => eps.find((e) => e.id === id)!;
    const ip = (id: string) => bare(ep(id).ip!);
    const c = (id: string) => endpointContainerName(ep(id));
    for (const e of eps) {
      const box = lab.container(c(e.id));
      if (box.mac !== e.mac || box.ip !== e.ip) t.fail(`${e.id}: container has ${box.ip} ${box.mac}, controller says ${e.ip} ${e.mac}`);
    }
    t.equal(ip('blue/web2'), ip('red/r2'), 'blue/web2 and red/r2 share one address');

    // The controller binds the new ports (iface-id -> ofport) and installs their flows.
    await until('every port bound', async () => (await client.hosts()).reduce((n, h) => n + h.bindings, 0) === 7, 30_000, 200);
    // The first packet to a peer whose underlay MAC OVS has not learnt yet is dropped, and
    // port changes flush what it learnt (see warmUnderlay): warm up once the ports are bound.
    await warmUnderlay(lab.state);
    // Readiness, not a claim: the bindings' flows are in place once one routed and one plain pair answer.
    await until('blue/web1 reaches blue/web2', async () => (await lab.ping(c('blue/web1'), ip('blue/web2'), { count: 1, timeoutS: 1 })).ok, 30_000, 200);
    await until('red/r1 reaches red/r3', async () => (await lab.ping(c('red/r1'), ip('red/r3'), { count: 1, timeoutS: 1 })).ok, 30_000, 200);

    await t.test('same-tenant traffic within a network, across hosts', async (t) => {
      const p1 = await lab.ping(c('red/r1'), ip('red/r3'));
      t.ok(p1.ok, `red r1 (host1) pings r3 (host3): ${p1.received}/${p1.sent}`);
      // Known gap (see the report): the very first echo r3 -> r2 of a fresh lab is sometimes lost
      // even with the underlay warm; wait for one answer, then demand every echo.
      await until('red/r3 reaches red/r2', async () => (await lab.ping(c('red/r3'), ip('red/r2'), { count: 1, timeoutS: 1 })).ok, 20_000, 200);
      const p2 = await lab.ping(c('red/r3'), ip('red/r2'));
      t.ok(p2.ok, `red r3 (host3) pings r2 (host2): ${p2.received}/${p2.sent}`);
      t.equal(await replyTtl(lab, c('blue/web1'), ip('blue/web2')), 64, 'same network: TTL untouched');
      const tcp = await lab.tcpCheck(c('blue/web1'), c('blue/web2'), 7000);
      t.ok(tcp.ok, `TCP blue web1 -> web2: ${tcp.detail}`);
    });

    await t.test('tenants with the same subnet stay isolated', async (t) => {
      // 10.0.0.12 is both blue/web2 and red/r2: each tenant reaches its own.
      const own = await lab.tcpCheck(c('red/r1'), c('red/r2'), 7002);
      t.ok(own.ok, `red r1 -> 10.0.0.12 reaches red r2: ${own.detail}`);
      const other = await tcpExchange(lab.state, c('red/r1'), c('blue/web2'), ip('blue/web2'), 7002, 2000);
      t.ok(blocked(other), `red r1 -> 10.0.0.12 never reaches blue web2 (${other.detail})`);
      const blueOwn = await lab.tcpCheck(c('blue/web1'), c('blue/web2'), 7002);
      t.ok(blueOwn.ok, `blue web1 -> 10.0.0.12 reaches blue web2: ${blueOwn.detail}`);
      // Addresses that exist only in the other tenant.
      t.not(ip('blue/web1'), ip('red/r1'));
      const p1 = await lab.ping(c('red/r1'), ip('blue/web1'), { count: 2, timeoutS: 1 });
      t.equal(p1.received, 0, `red r1 gets no answer from blue web1's address ${ip('blue/web1')}`);
      const p2 = await lab.ping(c('blue/web1'), ip('red/r3'), { count: 2, timeoutS: 1 });
      t.equal(p2.received, 0, `blue web1 gets no answer from red r3's address ${ip('red/r3')}`);
      const p3 = await lab.ping(c('red/r3'), ip('blue/db1'), { count: 2, timeoutS: 1 });
      t.equal(p3.received, 0, `red r3 cannot route into blue's db network (${ip('blue/db1')})`);
      const tcp = await tcpExchange(lab.state, c('red/r3'), c('blue/web1'), ip('blue/web1'), 7003, 2000);
      t.ok(blocked(tcp), `TCP red r3 -> blue web1 fails (${tcp.detail})`);
    });

    await t.test('the distributed router joins web and db across hosts', async (t) => {
      t.ok((await lab.ping(c('blue/web1'), ip('blue/db1'))).ok, 'blue web1 (host1) pings db1 (host3)');
      t.ok((await lab.ping(c('blue/db1'), ip('blue/web1'))).ok, 'blue db1 (host3) pings web1 (host1)');
      t.ok((await lab.ping(c('blue/db2'), ip('blue/web2'))).ok, 'blue db2 pings web2 (both on host2)');
      t.equal(await replyTtl(lab, c('blue/web1'), ip('blue/db1')), 63, 'routed: the reply arrives with TTL 63 (one hop)');
      const tcp = await lab.tcpCheck(c('blue/web1'), c('blue/db1'), 7000);
      t.ok(tcp.ok, `TCP blue web1 -> db1:7000 through the router: ${tcp.detail}`);
    });

    await t.test('policies in both directions, stateful', async (t) => {
      // blue: web -> db tcp/7000 allowed, default deny.
      const allowed = await lab.tcpCheck(c('blue/web2'), c('blue/db1'), 7000);
      t.ok(allowed.ok, `blue web2 -> db1:7000 allowed, the replies pass: ${allowed.detail}`);
      const back = await lab.tcpCheck(c('blue/db1'), c('blue/web2'), 7000);
      t.ok(blocked(back), `blue db1 -> web2:7000, a new connection the other way, is denied (${back.detail})`);
      const port = await lab.tcpCheck(c('blue/web1'), c('blue/db2'), 7004);
      t.ok(blocked(port), `blue web1 -> db2:7004, a port no policy allows, is denied (${port.detail})`);
      // red: default allow, r1 may not open tcp/7001.
      const denied = await lab.tcpCheck(c('red/r1'), c('red/r3'), 7001);
      t.ok(blocked(denied), `red r1 -> r3:7001 denied by no-7001-from-r1 (${denied.detail})`);
      const reverse = await lab.tcpCheck(c('red/r3'), c('red/r1'), 7001);
      t.ok(reverse.ok, `red r3 -> r1:7001 allowed, r1's replies pass: ${reverse.detail}`);
      const other = await lab.tcpCheck(c('red/r1'), c('red/r3'), 7000);
      t.ok(other.ok, `red r1 -> r3:7000 allowed by default: ${other.detail}`);
    });

    await t.test('spoofed addresses get nothing through', async (t) => {
      const web1 = c('blue/web1');
      const own = ep('blue/web1');
      const peer = ep('blue/web2');
      const sh = (...argv: string[]) => lab.exec(web1, argv);
      // A static neighbour entry: the IP packets themselves go out, not only ARP.
      await sh('ip', 'neigh', 'replace', bare(peer.ip!), 'lladdr', peer.mac, 'dev', 'eth0');
      t.ok((await lab.ping(web1, bare(peer.ip!), { count: 1 })).ok, 'before: web1 pings web2');

      await sh('sysctl', '-q', '-w', 'net.ipv4.conf.eth0.promote_secondaries=1');
      await sh('ip', 'addr', 'add', '10.0.0.99/24', 'dev', 'eth0');
      await sh('ip', 'addr', 'del', own.ip!, 'dev', 'eth0');
      await sh('ip', 'neigh', 'replace', bare(peer.ip!), 'lladdr', peer.mac, 'dev', 'eth0');
      const p = await lab.ping(web1, bare(peer.ip!), { count: 2, timeoutS: 1 });
      t.equal(p.received, 0, `with IP 10.0.0.99 (not its own) nothing comes back (${p.sent} sent)`);
      const tcp = await tcpExchange(lab.state, web1, c('blue/web2'), peer.ip!, 7005, 2000);
      t.ok(blocked(tcp), `TCP from the spoofed IP fails (${tcp.detail})`);
      await sh('ip', 'addr', 'add', own.ip!, 'dev', 'eth0');
      await sh('ip', 'addr', 'del', '10.0.0.99/24', 'dev', 'eth0');
      await sh('ip', 'route', 'replace', 'default', 'via', own.gateway!);
      await sh('ip', 'neigh', 'replace', bare(peer.ip!), 'lladdr', peer.mac, 'dev', 'eth0');
      t.ok((await lab.ping(web1, bare(peer.ip!), { count: 1 })).ok, 'own IP back: web1 pings web2 again');

      await sh('ip', 'link', 'set', 'eth0', 'address', '02:00:00:00:99:99');
      const m = await lab.ping(web1, bare(peer.ip!), { count: 2, timeoutS: 1 });
      t.equal(m.received, 0, `with MAC 02:00:00:00:99:99 (not its own) nothing comes back (${m.sent} sent)`);
      await sh('ip', 'link', 'set', 'eth0', 'address', own.mac);
      t.ok((await lab.ping(web1, bare(peer.ip!), { count: 1 })).ok, 'own MAC back: web1 pings web2 again');
    });
  });
});
