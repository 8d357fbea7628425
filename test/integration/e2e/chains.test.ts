/**
 * Service chains through the real `tenet controller` daemon: one 3-host lab,
 * `tenet apply -f` of topologies/chain-three-hosts.json (client -> firewall, two
 * instances -> IDS -> server, symmetric), containers with the controller's
 * addresses, forwarding service functions with nftables counters. Shows the
 * controller carries chains unchanged (it calls the same compile()): select groups
 * on the switches, every client packet through a firewall and then the IDS.
 * Health through the daemon: `tenet get chains` shows each instance; a firewall
 * whose eth0 goes down leaves its group (link_state from OVSDB) while a
 * long-lived connection through the other goes on, and rejoins when up; a
 * firewall whose container is deleted leaves its group (its port is gone).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ApiClient } from '../../../src/api/client.js';
import { cookieOf } from '../../../src/pipeline/index.js';
import type { ChainInfo } from '../../../src/controller/types.js';
import { addEndpointContainers, delContainer, endpointContainerName, startLabController, warmUnderlay, withLabHosts } from '../../../src/lab/index.js';
import { tenet } from '../../helpers/cli.js';
import { withLab } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';
import { persistentClient, type Persistent } from '../../helpers/persistent.js';

const TOPOLOGY = new URL('../../../topologies/chain-three-hosts.json', import.meta.url);
const SERVER = '10.1.0.20';
const CLIENT = '10.1.0.10';

const ECHO = `require('node:net').createServer((s) => s.on('data', (d) => s.write(d)).on('error', () => {})).listen(80, '${SERVER}'); console.log('ready');`;
const CONNECT = `
const net = require('node:net');
const n = Number(process.argv[1]);
const one = () => new Promise((res) => {
  const s = net.connect({ host: '${SERVER}', port: 80 });
  const done = (ok) => { clearTimeout(tm); s.destroy(); res(ok); };
  const tm = setTimeout(() => done(false), 3000);
  s.on('connect', () => s.write('through the chain\\n'));
  s.on('data', () => { s.end(); done(true); });
  s.on('error', () => done(false));
});
(async () => { let ok = 0; for (let i = 0; i < n; i++) ok += (await one()) ? 1 : 0; console.log(ok); })();
`;
/** A stream of new connections, one every GAP ms, COUNT in all, each with 10 s to complete: prints "go" at the first, then the number that completed. */
const STREAM = `
const net = require('node:net');
const [count, gap] = [Number(process.argv[1]), Number(process.argv[2])];
const one = () => new Promise((res) => {
  const s = net.connect({ host: '${SERVER}', port: 80 });
  const done = (ok) => { clearTimeout(tm); s.destroy(); res(ok); };
  const tm = setTimeout(() => done(false), 10000);
  s.on('connect', () => s.write('during the failover\\n'));
  s.on('data', () => { s.end(); done(true); });
  s.on('error', () => done(false));
});
(async () => {
  const ps = [];
  for (let i = 0; i < count; i++) { ps.push(one()); if (i === 0) console.log('go'); await new Promise((r) => setTimeout(r, gap)); }
  console.log((await Promise.all(ps)).filter(Boolean).length);
})();
`;
/** One long-lived connection: prints "port N" once connected, then echoes each stdin line back. */
const RULES = (ttl: number) => `table inet tenet {
  counter forwarded {}
  counter c2s {}
  counter c2s_ttl {}
  set c2s_ports { type inet_service; flags dynamic; }
  chain through {
    type filter hook forward priority 0; policy accept;
    counter name "forwarded"
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 80 counter name "c2s" add @c2s_ports { tcp sport }
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 80 ip ttl ${ttl} counter name "c2s_ttl"
  }
}
`;

/** At the server: what arrives from the client to port 80, and how much of it crossed exactly two forwarding hops. */
const SERVER_RULES = `table inet tenet {
  counter c2s {}
  counter c2s_ttl62 {}
  chain in {
    type filter hook input priority 0; policy accept;
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 80 counter name "c2s"
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 80 ip ttl 62 counter name "c2s_ttl62"
  }
}
`;

t.test('controller end to end: a service chain across 3 hosts', async (t) => {
  await withLab(t, { hosts: 3 }, async (lab) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tenet-e2e-chains-'));
    t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
    const ctl = await startLabController(lab.state, { stateDir, driftIntervalS: 2 });
    t.teardown(() => ctl.stop());
    const api = new ApiClient({ url: ctl.url, token: ctl.token! });

    const docFile = join(stateDir, 'topology.json');
    writeFileSync(docFile, JSON.stringify(withLabHosts(JSON.parse(readFileSync(TOPOLOGY, 'utf8')) as object, lab.state)));
    const applied = await tenet(['apply', '-f', docFile, '--api', ctl.url, '--token', ctl.token!, '--timeout', '60']);
    t.equal(applied.code, 0, `tenet apply exits 0\n${applied.stdout}${applied.stderr}`);
    const eps = await api.endpoints();
    await addEndpointContainers(lab.name, lab.state, eps);
    await until('every port bound', async () => (await api.hosts()).reduce((n, h) => n + h.bindings, 0) === eps.length, 30_000, 200);
    await warmUnderlay(lab.state);
    const c = (name: string) => endpointContainerName({ tenant: 'acme', name });

    for (const sf of ['fw-1', 'fw-2', 'ids-1']) {
      for (const s of ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0'])
        await lab.exec(c(sf), ['sysctl', '-q', '-w', s]);
      await lab.exec(c(sf), ['ethtool', '-K', 'eth0', 'gro', 'off', 'gso', 'off', 'tso', 'off'], { allowFailure: true });
      const f = join(stateDir, `${sf}.nft`);
      // the forward hook sees the TTL after the hop's own decrement: firewalls 63, the IDS 62
      writeFileSync(f, RULES(sf === 'ids-1' ? 62 : 63));
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

    for (const h of lab.hosts.map((x) => x.name)) {
      const g = await lab.ofctl(h, 'dump-groups', 'br-int');
      t.match(g.stdout, /type=select/, `${h}: the controller installed the chain's select groups`);
    }
    // readiness: the controller installs flows per binding; wait for one exchange through the chain
    const conn = async (n: number) => Number((await lab.exec(c('client'), [process.execPath, '-e', CONNECT, String(n)], { timeoutMs: 10_000 + n * 4000 })).stdout.trim());
    await until('client reaches server:80 through the chain', async () => (await conn(1)) === 1, 30_000, 500);

    const n = 16;
    t.equal(await conn(n), n, `${n} TCP exchanges client -> server:80`);
    const read = async (sf: string) => {
      const out = JSON.parse((await lab.exec(c(sf), ['nft', '-j', 'list', 'counters'])).stdout) as { nftables: { counter?: { name: string; packets: number } }[] };
      return Object.fromEntries(out.nftables.flatMap((o) => (o.counter ? [[o.counter.name, o.counter.packets]] : []))) as Record<string, number>;
    };
    const srv = await read('server'); // first: whatever it counted, the IDS counted before
    const [f1, f2, ids] = await Promise.all(['fw-1', 'fw-2', 'ids-1'].map(read));
    // The server's own view: a bypass (a packet straight from the client) would arrive with TTL 64.
    t.ok(srv['c2s']! >= n * 3, `the server got the client's packets (${srv['c2s']})`);
    t.equal(srv['c2s_ttl62'], srv['c2s'], 'every one of them after exactly two forwarding hops (TTL 62)');
    t.ok(srv['c2s']! <= ids!['c2s']!, `no more than the IDS forwarded (${ids!['c2s']})`);
    t.ok(f1!['c2s']! > 0 && f2!['c2s']! > 0, `both firewalls carried connections (${f1!['c2s']} and ${f2!['c2s']} packets)`);
    t.equal(ids!['c2s'], f1!['c2s']! + f2!['c2s']!, `the IDS forwarded every packet the firewalls did (${ids!['c2s']})`);
    t.equal(f1!['c2s_ttl']! + f2!['c2s_ttl']!, f1!['c2s']! + f2!['c2s']!, 'the firewalls saw them first');
    t.equal(ids!['c2s_ttl'], ids!['c2s'], 'the IDS second');
    const other = await lab.exec(c('other'), [process.execPath, '-e', CONNECT, '2'], { timeoutMs: 20_000 });
    t.equal(other.stdout.trim(), '2', 'an unclassified source reaches the server');
    const [g1, g2, g3] = await Promise.all(['fw-1', 'fw-2', 'ids-1'].map(read));
    t.same([g1!['forwarded'], g2!['forwarded'], g3!['forwarded']], [f1!['forwarded'], f2!['forwarded'], ids!['forwarded']], 'and passes no service function');

    // tenet get chains: every instance bound and healthy.
    const getChains = async (): Promise<ChainInfo[]> => {
      const r = await tenet(['get', 'chains', '-o', 'json', '--api', ctl.url, '--token', ctl.token!]);
      if (r.code !== 0) throw new Error(`tenet get chains: ${r.stderr}`);
      return JSON.parse(r.stdout) as ChainInfo[];
    };
    const healthOf = (cs: ChainInfo[]) => cs.flatMap((ch) => ch.hops.map((h) => `${h.state}: ${h.instances.map((i) => `${i.endpoint.split('/')[1]} ${i.health}`).join(', ')}`));
    const ofports = Object.fromEntries((await api.endpoints()).map((e) => [e.id, e.ofport])); // bound by now
    const chains0 = await getChains();
    t.same(healthOf(chains0), ['ok: fw-1 healthy, fw-2 healthy', 'ok: ids-1 healthy'], 'tenet get chains: both hops ok, every instance healthy');
    t.same(
      chains0[0]!.hops.flatMap((h) => h.instances.map((i) => [i.endpoint, i.host, i.weight, i.ofport])),
      [['acme/fw-1', 'host2', 1, ofports['acme/fw-1']], ['acme/fw-2', 'host2', 2, ofports['acme/fw-2']], ['acme/ids-1', 'host3', 1, ofports['acme/ids-1']]],
      'instances with their host, weight and ofport (as GET /v1/endpoints shows it)',
    );
    const table = await tenet(['get', 'chains', '--api', ctl.url, '--token', ctl.token!]);
    t.match(table.stdout, /^acme\/web: endpoints=client -> endpoints=server tcp\/80 \(network net, symmetric, failMode closed\)\n/, 'the table names the classifier');

    // Port down: a long-lived connection through one firewall; the other one's eth0 goes down.
    const setOf = async (sf: string) => {
      const out = JSON.parse((await lab.exec(c(sf), ['nft', '-j', 'list', 'set', 'inet', 'tenet', 'c2s_ports'])).stdout) as { nftables: { set?: { elem?: number[] } }[] };
      return out.nftables.flatMap((o) => o.set?.elem ?? []);
    };
    // fw-1 fails; a long-lived connection that the hash put on fw-2 (weight 2: 2 in 3 do) must not notice.
    const carrier = 'fw-2';
    const failed = 'fw-1';
    let conn1: Persistent | undefined;
    for (let i = 0; i < 8 && !conn1; i++) {
      const p = await persistentClient(t, lab.container(c('client')).namespace, SERVER, 80, 20_000 /* node's start in the namespace can take seconds under load */);
      if (!(await p.say('first'))) continue;
      if ((await setOf(carrier)).includes(p.port)) conn1 = p;
    }
    if (!conn1) throw new Error('no long-lived connection through fw-2 in 8 tries');
    t.pass(`a long-lived connection through ${carrier} (port ${conn1.port})`);
    const failedMac = eps.find((e) => e.name === failed)!.mac;
    const events: string[] = [];
    const closeEvents = await api.events((m) => {
      if (m.type === 'link') events.push(`${m.ifaceId} ${m.up ? 'up' : 'down'}`);
    });
    t.teardown(closeEvents);
    // New connections keep starting while the instance fails (before, during and after the window
    // in which the switches still hash some of them to it): each must complete (TCP retransmits its
    // SYN; by then the group has changed).
    const STREAM_N = 40;
    const stream = spawn('ip', ['netns', 'exec', lab.container(c('client')).namespace, process.execPath, '-e', STREAM, String(STREAM_N), '100'], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => {
      if (stream.exitCode === null) stream.kill('SIGKILL');
    });
    let streamOut = '';
    const streamGo = new Promise<void>((res) => stream.stdout!.on('data', (d: Buffer) => ((streamOut += d.toString()), streamOut.includes('go') && res())));
    const streamDone = new Promise<number>((res) => stream.once('exit', () => res(Number(streamOut.trim().split('\n').pop()))));
    await streamGo;
    const tStream = Date.now();
    await new Promise((r) => setTimeout(r, 500)); // a few connections before the failure
    const tDown = Date.now();
    await lab.exec(c(failed), ['ip', 'link', 'set', 'eth0', 'down']);
    await until(`${failed} left the select group on host1`, async () => !(await lab.ofctl('host1', 'dump-groups', 'br-int')).stdout.includes(failedMac), 30_000, 50);
    const downS = (Date.now() - tDown) / 1000;
    const completed = await streamDone;
    t.comment(`connection stream: ${STREAM_N} started 100 ms apart from ${((tDown - tStream) / 1000).toFixed(1)} s before the link went down; the group changed ${downS.toFixed(2)} s after it`);
    t.equal(completed, STREAM_N, `every connection started before, during and after the failover completed (${completed}/${STREAM_N})`);
    t.comment(`${failed} eth0 down -> out of host1's group after ${downS.toFixed(2)} s (link_state through OVSDB, recompile, group mod)`);
    t.same(events, [`acme/${failed} down`], 'the event stream reported the link going down');
    const chainsDown = await getChains();
    t.same(healthOf(chainsDown), [`degraded: ${['fw-1', 'fw-2'].map((f) => `${f} ${f === failed ? 'link down' : 'healthy'}`).join(', ')}`, 'ok: ids-1 healthy'], `tenet get chains: ${failed} link down, hop degraded`);
    t.ok(await conn1.say('second'), `the connection through ${carrier} goes on`);
    const b = await Promise.all(['fw-1', 'fw-2'].map(read));
    const m = 8;
    t.equal(await conn(m), m, `${m} new connections with ${failed} down`);
    const a = await Promise.all(['fw-1', 'fw-2'].map(read));
    const idx = (f: string) => (f === 'fw-1' ? 0 : 1);
    t.equal(a[idx(failed)]!['forwarded'], b[idx(failed)]!['forwarded'], `${failed} got no packet`);
    t.ok(a[idx(carrier)]!['c2s']! - b[idx(carrier)]!['c2s']! >= m * 3, `${carrier} took them all (${a[idx(carrier)]!['c2s']! - b[idx(carrier)]!['c2s']!} packets)`);
    t.ok(await conn1.say('third'), `and the long-lived connection through ${carrier} still works`);

    const tUp = Date.now();
    await lab.exec(c(failed), ['ip', 'link', 'set', 'eth0', 'up']);
    await until(`${failed} back in the select group on host1`, async () => (await lab.ofctl('host1', 'dump-groups', 'br-int')).stdout.includes(failedMac), 30_000, 50);
    t.comment(`${failed} eth0 up -> back in host1's group after ${((Date.now() - tUp) / 1000).toFixed(2)} s`);
    t.same(healthOf(await getChains()), ['ok: fw-1 healthy, fw-2 healthy', 'ok: ids-1 healthy'], 'tenet get chains: healthy again');
    t.same(events, [`acme/${failed} down`, `acme/${failed} up`], 'and the event stream the link coming back');
    const b2 = await read(failed);
    await until(`new connections reach ${failed} again`, async () => (await conn(3), ((await read(failed))['c2s'] ?? 0) > (b2['c2s'] ?? 0)), 30_000, 200);
    t.ok(await conn1.say('fourth'), `the long-lived connection through ${carrier} survived it all`);

    // An instance's container goes away: its port unbinds, the controller recompiles without it.
    const fw1 = eps.find((e) => e.name === 'fw-1')!;
    const t0 = Date.now();
    await delContainer(lab.name, c('fw-1'));
    await until('fw-1 left the select groups on host1', async () => !(await lab.ofctl('host1', 'dump-groups', 'br-int')).stdout.includes(fw1.mac), 30_000, 100);
    const leftS = (Date.now() - t0) / 1000;
    t.comment(`fw-1 removed -> out of host1's group after ${leftS.toFixed(2)} s (container deletion to group change, through the controller)`);
    const before = await Promise.all(['fw-2', 'ids-1'].map(read));
    t.equal(await conn(n), n, `${n} new connections work without fw-1`);
    const after = await Promise.all(['fw-2', 'ids-1'].map(read));
    const viaFw2 = after[0]!['c2s']! - before[0]!['c2s']!;
    t.ok(viaFw2 >= n * 3, `fw-2 carried them all (${viaFw2} packets)`);
    t.equal(after[1]!['c2s']! - before[1]!['c2s']!, viaFw2, 'and the IDS after it');
    t.same(healthOf(await getChains()), ['degraded: fw-1 port missing, fw-2 healthy', 'ok: ids-1 healthy'], 'tenet get chains: fw-1 port missing');

    // A chain change touches only the chain's flows on the real switches: every other flow is
    // left in place (its duration keeps counting, so it was not re-added).
    const chainCookie = `cookie=0x${(cookieOf('chain:acme/web', 1) >> 32n).toString(16).padStart(8, '0')}`;
    const dump = async (h: string) => {
      const out = new Map<string, number>();
      for (const l of (await lab.ofctl(h, 'dump-flows', 'br-int')).stdout.split('\n')) {
        const m = /duration=([\d.]+)s/.exec(l);
        if (!m) continue;
        out.set(l.replace(/ (duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*,/g, '').trim(), Number(m[1]));
      }
      return out;
    };
    const hostNames = lab.hosts.map((x) => x.name);
    const flowsBefore = await Promise.all(hostNames.map(dump));
    const doc2 = JSON.parse(readFileSync(docFile, 'utf8')) as { tenants: { chains: { ports: number[] }[] }[] };
    doc2.tenants[0]!.chains[0]!.ports = [80, 8080];
    writeFileSync(docFile, JSON.stringify(doc2));
    const re = await tenet(['apply', '-f', docFile, '--api', ctl.url, '--token', ctl.token!, '--timeout', '60']);
    t.equal(re.code, 0, `tenet apply of the chain with port 8080 added exits 0\n${re.stdout}${re.stderr}`);
    const flowsAfter = await Promise.all(hostNames.map(dump));
    let kept = 0;
    const lost: string[] = [];
    hostNames.forEach((h, i) => {
      for (const [f, d] of flowsBefore[i]!) {
        if (f.startsWith(chainCookie)) continue;
        const d2 = flowsAfter[i]!.get(f);
        if (d2 === undefined || d2 < d) lost.push(`${h}: ${f} (${d} s -> ${d2 ?? 'gone'})`);
        else kept++;
      }
    });
    t.same(lost, [], `every flow other than the chain's kept its duration (${kept} flows on ${hostNames.length} hosts)`);
    t.ok(flowsAfter[0]!.size > 0 && [...flowsAfter[0]!.keys()].some((f) => f.startsWith(chainCookie) && f.includes('tp_dst=8080')) && ![...flowsBefore[0]!.keys()].some((f) => f.includes('tp_dst=8080')), 'and the chain\'s flows did change (port 8080 classified on host1)');
  });
});

