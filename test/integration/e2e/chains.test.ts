/**
 * Service chains through the real `tenet controller` daemon: one 3-host lab,
 * `tenet apply -f` of topologies/chain-three-hosts.json (client -> firewall, two
 * instances -> IDS -> server, symmetric), containers with the controller's
 * addresses, forwarding service functions with nftables counters. Shows the
 * controller carries chains unchanged (it calls the same compile()): select groups
 * on the switches, every client packet through a firewall and then the IDS.
 * (Health-driven instance removal needs the controller to feed `unhealthy` to
 * compile(); test/integration/pipeline/chains.test.ts covers it without the daemon.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient } from '../../../src/api/client.js';
import { addEndpointContainers, delContainer, endpointContainerName, startLabController, warmUnderlay, withLabHosts } from '../../../src/lab/index.js';
import { tenet } from '../../helpers/cli.js';
import { withLab } from '../../helpers/lab.js';
import { until } from '../../helpers/net.js';

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
const RULES = (ttl: number) => `table inet tenet {
  counter forwarded {}
  counter c2s {}
  counter c2s_ttl {}
  chain through {
    type filter hook forward priority 0; policy accept;
    counter name "forwarded"
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 80 counter name "c2s"
    ip saddr ${CLIENT} ip daddr ${SERVER} tcp dport 80 ip ttl ${ttl} counter name "c2s_ttl"
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
    const [f1, f2, ids] = await Promise.all(['fw-1', 'fw-2', 'ids-1'].map(read));
    t.ok(f1!['c2s']! > 0 && f2!['c2s']! > 0, `both firewalls carried connections (${f1!['c2s']} and ${f2!['c2s']} packets)`);
    t.equal(ids!['c2s'], f1!['c2s']! + f2!['c2s']!, `the IDS forwarded every packet the firewalls did (${ids!['c2s']})`);
    t.equal(f1!['c2s_ttl']! + f2!['c2s_ttl']!, f1!['c2s']! + f2!['c2s']!, 'the firewalls saw them first');
    t.equal(ids!['c2s_ttl'], ids!['c2s'], 'the IDS second');
    const other = await lab.exec(c('other'), [process.execPath, '-e', CONNECT, '2'], { timeoutMs: 20_000 });
    t.equal(other.stdout.trim(), '2', 'an unclassified source reaches the server');
    const [g1, g2, g3] = await Promise.all(['fw-1', 'fw-2', 'ids-1'].map(read));
    t.same([g1!['forwarded'], g2!['forwarded'], g3!['forwarded']], [f1!['forwarded'], f2!['forwarded'], ids!['forwarded']], 'and passes no service function');

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
  });
});
