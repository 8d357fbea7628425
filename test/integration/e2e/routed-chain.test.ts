/**
 * A service chain with a routed source, on a real 3-host lab through the
 * `tenet controller` daemon (topologies/chain-routed.json): client on the web
 * network (host1) -> fw (db network, host2) -> ids (db network, host3) -> server
 * (db network, host1), tcp 5432, symmetric, joined by the tenant's router. The
 * service functions are plain Linux forwarders (default route via the db gateway)
 * with nftables counters, so the test sees where each packet went and with which
 * TTL: client -> server after the router and two forwarding hops (TTL 61 at the
 * server), replies through ids then fw (the same instances) and routed after fw
 * (TTL 61 at the client). The client's ping and tcp to another port are routed
 * directly (TTL 63) and touch no service function.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient } from '../../../src/api/client.js';
import { addEndpointContainers, endpointContainerName, startLabController, warmUnderlay, withLabHosts } from '../../../src/lab/index.js';
import { tenet } from '../../helpers/cli.js';
import { withLab } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';

const TOPOLOGY = new URL('../../../topologies/chain-routed.json', import.meta.url);
const SERVER = '10.2.0.20';
const CLIENT = '10.1.0.10';

/** Echo servers on 5432 (chained) and 80 (not). */
const ECHO = `for (const p of [5432, 80]) require('node:net').createServer((s) => s.on('data', (d) => s.write(d)).on('error', () => {})).listen(p, '${SERVER}'); setTimeout(() => console.log('ready'), 200);`;
const CONNECT = `
const net = require('node:net');
const [n, port] = [Number(process.argv[1]), Number(process.argv[2])];
const one = () => new Promise((res) => {
  const s = net.connect({ host: '${SERVER}', port });
  const done = (ok) => { clearTimeout(tm); s.destroy(); res(ok); };
  const tm = setTimeout(() => done(false), 3000);
  s.on('connect', () => s.write('routed through the chain\\n'));
  s.on('data', () => { s.end(); done(true); });
  s.on('error', () => done(false));
});
(async () => { let ok = 0; for (let i = 0; i < n; i++) ok += (await one()) ? 1 : 0; console.log(ok); })();
`;

/** In a service function: what it forwards each way, and with which TTL (after its own decrement). */
const SF_RULES = (ttlFwd: number, ttlRep: number) => `table inet tenet {
  counter forwarded {}
  counter c2s {}
  counter c2s_ttl {}
  counter s2c {}
  counter s2c_ttl {}
  chain through {
    type filter hook forward priority 0; policy accept;
    counter name "forwarded"
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 5432 counter name "c2s"
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 5432 ip ttl ${ttlFwd} counter name "c2s_ttl"
    ip saddr ${SERVER} ip daddr ${CLIENT} tcp sport 5432 counter name "s2c"
    ip saddr ${SERVER} ip daddr ${CLIENT} tcp sport 5432 ip ttl ${ttlRep} counter name "s2c_ttl"
  }
}
`;
/** At an end: what arrives from the other end, by TTL. */
const END_RULES = (from: string, ttl: number, portMatch: string) => `table inet tenet {
  counter arrived {}
  counter arrived_ttl {}
  counter pings {}
  counter pings_ttl63 {}
  counter other {}
  counter other_ttl63 {}
  chain in {
    type filter hook input priority 0; policy accept;
    ip saddr ${from} ${portMatch} counter name "arrived"
    ip saddr ${from} ${portMatch} ip ttl ${ttl} counter name "arrived_ttl"
    ip saddr ${from} icmp type { echo-request, echo-reply } counter name "pings"
    ip saddr ${from} icmp type { echo-request, echo-reply } ip ttl 63 counter name "pings_ttl63"
    ip saddr ${from} tcp dport 80 counter name "other"
    ip saddr ${from} tcp dport 80 ip ttl 63 counter name "other_ttl63"
  }
}
`;

t.test('controller end to end: a chain whose source is on another routed network', async (t) => {
  await withLab(t, { hosts: 3 }, async (lab) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tenet-e2e-routed-chain-'));
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

    for (const sf of ['fw', 'ids']) {
      for (const s of ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0'])
        await lab.exec(c(sf), ['sysctl', '-q', '-w', s]);
      await lab.exec(c(sf), ['ethtool', '-K', 'eth0', 'gro', 'off', 'gso', 'off', 'tso', 'off'], { allowFailure: true });
      const f = join(stateDir, `${sf}.nft`);
      // The forward hook sees the TTL after the router (forward only) and the hop's own decrement:
      // forward fw 62, ids 61; replies (not yet routed) ids 63, fw 62.
      writeFileSync(f, sf === 'fw' ? SF_RULES(62, 62) : SF_RULES(61, 63));
      await lab.exec(c(sf), ['nft', '-f', f]);
    }
    const serverRules = join(stateDir, 'server.nft');
    writeFileSync(serverRules, END_RULES(CLIENT, 61, 'tcp dport 5432'));
    await lab.exec(c('server'), ['nft', '-f', serverRules]);
    const clientRules = join(stateDir, 'client.nft');
    writeFileSync(clientRules, END_RULES(SERVER, 61, 'tcp sport 5432'));
    await lab.exec(c('client'), ['nft', '-f', clientRules]);
    const server = spawn('ip', ['netns', 'exec', lab.container(c('server')).namespace, process.execPath, '-e', ECHO], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });
    await new Promise((res) => server.stdout!.once('data', res));

    const h1Flows = (await lab.ofctl('host1', 'dump-flows', 'br-int')).stdout;
    t.match(h1Flows, /table=35, .*priority=150,tcp,.*nw_src=10\.1\.0\.10,nw_dst=10\.2\.0\.20,tp_dst=5432 actions=group:\d+/, 'host1: the routed source is classified in table 35');

    const conn = async (n: number, port: number) => Number((await lab.exec(c('client'), [process.execPath, '-e', CONNECT, String(n), String(port)], { timeoutMs: 10_000 + n * 4000 })).stdout.trim());
    await until('client reaches server:5432 through the chain', async () => (await conn(1, 5432)) === 1, 30_000, 500);

    const read = async (ep: string) => {
      const out = JSON.parse((await lab.exec(c(ep), ['nft', '-j', 'list', 'counters'])).stdout) as { nftables: { counter?: { name: string; packets: number } }[] };
      return Object.fromEntries(out.nftables.flatMap((o) => (o.counter ? [[o.counter.name, o.counter.packets]] : []))) as Record<string, number>;
    };
    const n = 12;
    t.equal(await conn(n, 5432), n, `${n} TCP exchanges client (web) -> server:5432 (db)`);
    // ends first: whatever they counted, the service functions counted before
    const [srv, cli] = await Promise.all(['server', 'client'].map(read));
    const [fw, ids] = await Promise.all(['fw', 'ids'].map(read));
    t.ok(srv!['arrived']! >= n * 3, `the server got the client's packets (${srv!['arrived']})`);
    t.equal(srv!['arrived_ttl'], srv!['arrived'], 'every one after the router and two forwarding hops (TTL 61): none bypassed the chain');
    t.ok(cli!['arrived']! >= n * 2, `the client got the server's replies (${cli!['arrived']})`);
    t.equal(cli!['arrived_ttl'], cli!['arrived'], 'every reply after two forwarding hops and the router (TTL 61): symmetric');
    t.ok(fw!['c2s']! >= srv!['arrived']! && ids!['c2s']! >= srv!['arrived']!, `forward: fw ${fw!['c2s']}, ids ${ids!['c2s']} packets`);
    t.equal(fw!['c2s_ttl'], fw!['c2s'], 'forward: fw first (TTL 62 after its decrement)');
    t.equal(ids!['c2s_ttl'], ids!['c2s'], 'forward: ids second (TTL 61)');
    t.ok(ids!['s2c']! >= cli!['arrived']! && fw!['s2c']! >= cli!['arrived']!, `replies: ids ${ids!['s2c']}, fw ${fw!['s2c']} packets`);
    t.equal(ids!['s2c_ttl'], ids!['s2c'], 'replies: ids first (TTL 63)');
    t.equal(fw!['s2c_ttl'], fw!['s2c'], 'replies: fw second (TTL 62), routed to the web network after it');

    // Unclassified: ping and tcp/80 from the client are routed directly, no service function.
    const ping = await lab.ping(c('client'), SERVER, { count: 3 });
    t.ok(ping.ok, 'client pings the server (routed)');
    t.equal(await conn(3, 80), 3, 'client -> server:80 (not chained) works');
    const [srv2, cli2] = await Promise.all(['server', 'client'].map(read));
    const [fw2, ids2] = await Promise.all(['fw', 'ids'].map(read));
    t.ok(srv2!['pings']! >= 3 && srv2!['pings_ttl63'] === srv2!['pings'], `pings arrive routed once (TTL 63): ${srv2!['pings_ttl63']}/${srv2!['pings']}`);
    t.ok(cli2!['pings']! >= 3 && cli2!['pings_ttl63'] === cli2!['pings'], 'and their replies too');
    t.ok(srv2!['other']! >= 9 && srv2!['other_ttl63'] === srv2!['other'], `tcp/80 arrives routed once (TTL 63): ${srv2!['other_ttl63']}/${srv2!['other']}`);
    t.same([fw2!['forwarded'], ids2!['forwarded']], [fw!['forwarded'], ids!['forwarded']], 'no service function forwarded any of it');
  });
});
