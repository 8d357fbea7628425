/**
 * The channel against a real ovs-vswitchd (userspace datapath) in a lab host:
 * bundles (applied and rejected whole), dump-flows equality, groups, meters,
 * multipart, roles, and dead-peer detection of a SIGSTOPped switch.
 */
import t from 'tap';
import { withLab } from '../../helpers/lab.js';
import {
  BundleError,
  formatFlow,
  formatGroup,
  formatMeter,
  OFPCR_ROLE,
  OFPFC,
  OFPMP,
  OFPP,
  OFPG_ANY,
  OFPG_ALL,
  OpenFlowServer,
  parseFlow,
  parseGroup,
  parseMeter,
  type Action,
  type BundleItem,
  type OfMessage,
  type SwitchConnection,
} from '../../../src/openflow/index.js';
import { FLOW_CORPUS } from '../../unit/openflow/corpus.js';
import { makeCerts } from '../../unit/openflow/certs.js';
import { mkdirSync } from 'node:fs';

const noStats = (s: string) =>
  s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('OFPST_') && !l.startsWith('NXST_'))
    .sort();

t.test('OpenFlow channel against ovs-vswitchd', async (t) => {
  await withLab(t, { hosts: 1 }, async (lab) => {
    const host = lab.hosts[0]!.name;
    const server = new OpenFlowServer({ echoIntervalMs: 1000, echoTimeoutMs: 10_000 });
    t.teardown(() => server.close());
    const { port } = await server.listen({ host: lab.state.mgmt.gateway, port: 0 });
    await lab.vsctl(host, 'set-controller', 'br-int', `tcp:${lab.state.mgmt.gateway}:${port}`);
    await lab.vsctl(host, 'set', 'controller', 'br-int', 'max_backoff=1000', 'inactivity_probe=0');
    let sw: SwitchConnection = await server.waitForSwitch(undefined, 20_000);
    t.ok(sw.datapathId > 0n, `handshake done, datapath id ${sw.dpidHex}`);
    const dpid = (await lab.vsctl(host, 'get', 'bridge', 'br-int', 'datapath_id')).stdout.trim().replace(/"/g, '');
    t.equal(sw.dpidHex, dpid, 'datapath id equals the bridge’s');

    const dumpFlows = async () => noStats((await lab.ofctl(host, '--no-stats', '--no-names', 'dump-flows', 'br-int')).stdout);

    await t.test('one bundle installs the corpus; dump-flows equals what was sent', async (t) => {
      // Every corpus flow that needs no group/meter, made distinct by priority.
      const flows = FLOW_CORPUS.filter((f) => !/group:|meter:|table=254/.test(f)).map((text, i) => ({ ...parseFlow(text), priority: 1000 + i }));
      await sw.applyBundle(flows.map((f) => ({ type: 'flow_mod', xid: 0, ...f }) as BundleItem));
      const want = flows.map((f) => formatFlow(f)).sort();
      t.same(await dumpFlows(), want, `${flows.length} flows, printed identically by ovs-ofctl and Tenet`);
      // The switch's own flow stats, decoded by Tenet, print the same.
      const body = await sw.multipart({ mpType: OFPMP.FLOW, tableId: 0xff, outPort: OFPP.ANY, outGroup: OFPG_ANY, cookie: 0n, cookieMask: 0n, match: [] });
      if (body.mpType !== OFPMP.FLOW) throw new Error('bad reply');
      t.same(body.flows.map((f) => formatFlow(f)).sort(), want, 'flow stats multipart decodes to the same flows');
      const agg = await sw.multipart({ mpType: OFPMP.AGGREGATE, tableId: 0xff, outPort: OFPP.ANY, outGroup: OFPG_ANY, cookie: 0n, cookieMask: 0n, match: [] });
      t.equal(agg.mpType === OFPMP.AGGREGATE && agg.flowCount, flows.length, 'aggregate flow count');
    });

    await t.test('a bundle with one invalid flow is rejected whole, switch unchanged', async (t) => {
      const before = await dumpFlows();
      const items: BundleItem[] = [
        { type: 'flow_mod', xid: 0, ...parseFlow('table=7,priority=1,ip actions=output:1') },
        { type: 'flow_mod', xid: 0, ...parseFlow('table=7,priority=2,ip actions=output:2') },
        { type: 'flow_mod', xid: 0, ...parseFlow('table=7,priority=3 actions=goto_table:2') }, // goto a lower table: invalid
        { type: 'flow_mod', xid: 0, ...parseFlow('table=7,priority=4,ip actions=output:4') },
      ];
      const err = await sw.applyBundle(items).then(
        () => null,
        (e: unknown) => e,
      );
      t.ok(err instanceof BundleError, 'BundleError');
      const be = err as BundleError;
      t.same(
        be.failures.map((f) => f.index),
        [2],
        `the failing message maps back to item 2 (${be.failures[0]?.error.context.name})`,
      );
      t.same(await dumpFlows(), before, 'flow table unchanged');

      // A reference to a group that does not exist is only found at commit time.
      const items2: BundleItem[] = [
        { type: 'flow_mod', xid: 0, ...parseFlow('table=8,priority=1,ip actions=output:1') },
        { type: 'flow_mod', xid: 0, ...parseFlow('table=8,priority=2 actions=group:4242') },
      ];
      const err2 = await sw.applyBundle(items2).then(
        () => null,
        (e: unknown) => e,
      );
      t.ok(err2 instanceof BundleError, `missing group rejected: ${(err2 as Error)?.message}`);
      t.same(
        (err2 as BundleError).failures.map((f) => f.index),
        [1],
        `mapped to item 1 (${(err2 as BundleError).failures[0]?.error.context.name})`,
      );
      t.same(await dumpFlows(), before, 'flow table still unchanged');
    });

    await t.test('groups round-trip', async (t) => {
      const texts = [
        'group_id=1,type=select,bucket=weight:100,actions=output:1,bucket=weight:50,actions=output:2',
        'group_id=2,type=all,bucket=actions=output:1,bucket=actions=output:2',
        'group_id=3,type=indirect,bucket=actions=set_field:0x5->reg0,output:3',
        'group_id=4,type=ff,bucket=watch_port:1,actions=output:1,bucket=watch_port:2,actions=output:2',
      ];
      await sw.applyBundle(texts.map((g) => ({ type: 'group_mod', xid: 0, ...parseGroup(g) }) as BundleItem));
      const dumped = noStats((await lab.ofctl(host, '--no-names', 'dump-groups', 'br-int')).stdout);
      t.same(dumped, [...texts].sort(), 'ovs-ofctl dump-groups prints what was sent');
      const desc = await sw.multipart({ mpType: OFPMP.GROUP_DESC });
      if (desc.mpType !== OFPMP.GROUP_DESC) throw new Error('bad reply');
      t.same(desc.groups.map(formatGroup).sort(), [...texts].sort(), 'group desc multipart decodes to the same groups');
      const stats = await sw.multipart({ mpType: OFPMP.GROUP, groupId: OFPG_ALL });
      t.equal(stats.mpType === OFPMP.GROUP && stats.groups.length, texts.length, 'group stats for every group');
      await sw.applyBundle([{ type: 'flow_mod', xid: 0, ...parseFlow('table=9,priority=5 actions=group:1') }]);
      t.ok((await dumpFlows()).includes('table=9, priority=5 actions=group:1'), 'a flow can point at the group');
      // A group and the flow using it in one ordered bundle.
      await sw.applyBundle([
        { type: 'group_mod', xid: 0, ...parseGroup('group_id=7,type=all,bucket=actions=output:3') },
        { type: 'flow_mod', xid: 0, ...parseFlow('table=9,priority=6 actions=group:7') },
      ]);
      t.ok((await dumpFlows()).includes('table=9, priority=6 actions=group:7'), 'group + flow in one bundle');
    });

    await t.test('meters round-trip (userspace datapath)', async (t) => {
      const features = (await lab.ofctl(host, 'meter-features', 'br-int')).stdout;
      const maxMeter = Number(/max_meter:(\d+)/.exec(features)?.[1] ?? 0);
      t.ok(maxMeter > 0, `the netdev datapath implements meters (max_meter:${maxMeter}; ${features.match(/band_types:.*/)?.[0] ?? ''})`);
      const texts = ['meter=1,kbps,burst,stats,bands=type=drop,rate=1000,burst_size=100', 'meter=2,pktps,bands=type=drop,rate=500'];
      for (const m of texts) {
        sw.send({ type: 'meter_mod', xid: sw.nextXid(), ...parseMeter(m) });
      }
      await sw.barrier();
      const out = (await lab.ofctl(host, 'dump-meters', 'br-int')).stdout;
      t.match(out, /meter=1 kbps burst stats bands=\s*type=drop rate=1000 burst_size=100/, 'meter 1 as sent');
      t.match(out, /meter=2 pktps bands=\s*type=drop rate=500/, 'meter 2 as sent');
      t.same(texts.map((x) => formatMeter(parseMeter(x))), texts);
      await sw.applyBundle([{ type: 'flow_mod', xid: 0, ...parseFlow('table=10,priority=5 actions=meter:1,output:1') }]);
      t.ok((await dumpFlows()).includes('table=10, priority=5 actions=meter:1,output:1'), 'a flow can use the meter');
      // OVS does not take meter_mods inside bundles: a typed, mapped refusal.
      const e = await sw.applyBundle([{ type: 'meter_mod', xid: 0, ...parseMeter('meter=9,kbps,bands=type=drop,rate=5') }]).catch((x: unknown) => x);
      t.ok(e instanceof BundleError, `meter_mod in a bundle: ${(e as BundleError).failures[0]?.error.context.name}`);
    });

    await t.test('multipart: tables, ports; role request', async (t) => {
      const tables = await sw.multipart({ mpType: OFPMP.TABLE });
      t.ok(tables.mpType === OFPMP.TABLE && tables.tables.length >= 250, 'table stats for every table');
      const ports = await sw.multipart({ mpType: OFPMP.PORT_DESC });
      t.ok(ports.mpType === OFPMP.PORT_DESC && ports.ports.some((p) => p.name === 'br-int'), 'port desc lists br-int');
      const pstats = await sw.multipart({ mpType: OFPMP.PORT_STATS, portNo: OFPP.ANY });
      t.ok(pstats.mpType === OFPMP.PORT_STATS && pstats.ports.length >= 1, 'port stats');
      const role = await sw.roleRequest(OFPCR_ROLE.MASTER, 1n);
      t.equal(role.role, OFPCR_ROLE.MASTER, 'role reply: master');
      const stale = await sw.roleRequest(OFPCR_ROLE.MASTER, 0n).then(
        () => null,
        (e: Error) => e,
      );
      t.match(stale?.message ?? '', /ROLE_REQUEST_FAILED\/OFPRRFC_STALE/, 'stale generation id is a named switch error');
      await sw.roleRequest(OFPCR_ROLE.EQUAL, 2n);
    });

    await t.test('packet_in -> packet_out: Tenet as a hub forwards a ping between two containers', async (t) => {
      await lab.addContainer(host, 'c1', { ip: '10.9.0.1/24', ifaceId: 'c1' });
      await lab.addContainer(host, 'c2', { ip: '10.9.0.2/24', ifaceId: 'c2' });
      sw.send({ type: 'flow_mod', xid: sw.nextXid(), ...parseFlow('', { command: OFPFC.DELETE }) });
      await sw.applyBundle([{ type: 'flow_mod', xid: 0, ...parseFlow('priority=1 actions=CONTROLLER:65535') }]);
      let seen = 0;
      const inPorts = new Set<number>();
      const flood: Action[] = [{ type: 'output', port: OFPP.FLOOD, maxLen: 0 }];
      const onPacketIn = (m: OfMessage) => {
        if (m.type !== 'packet_in') return;
        seen++;
        const ip = m.match.find((x) => x.field.name === 'in_port');
        const inPort = ip ? Buffer.from(ip.value).readUInt32BE(0) : OFPP.CONTROLLER;
        inPorts.add(inPort);
        sw.send({ type: 'packet_out', xid: sw.nextXid(), bufferId: m.bufferId, inPort, actions: flood, data: m.data });
      };
      sw.on('packet_in', onPacketIn);
      try {
        const r = await lab.ping('c1', '10.9.0.2', { count: 3 });
        t.ok(r.ok && r.received >= 1, `ping through the controller: ${r.received}/${r.sent} replies`);
      } finally {
        sw.off('packet_in', onPacketIn);
      }
      t.ok(seen >= 4, `${seen} packet_ins (ARP + ICMP both ways) answered with packet_outs`);
      t.ok(inPorts.size >= 2, 'packet_ins carry the real in_port of both containers');
    });

    await t.test('a SIGSTOPped switch is detected dead by echo timeout; after SIGCONT it reconnects', async (t) => {
      // Short keepalive only here: the other subtests must not trip over a busy machine.
      server.setKeepalive(200, 1500);
      const pid = lab.pids(host).ovsVswitchd!;
      const gone = new Promise<Error>((resolve) => server.once('disconnect', (_c, reason: Error) => resolve(reason)));
      process.kill(pid, 'SIGSTOP');
      const t0 = Date.now();
      let reason: Error;
      try {
        reason = await gone;
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      t.match((reason as { code?: string }).code, 'EOFDEAD', `declared dead after ${Date.now() - t0} ms`);
      server.setKeepalive(1000, 10_000);
      sw = await server.waitForSwitch(undefined, 20_000);
      t.ok(!sw.isClosed, 'switch reconnected and handshook again');
      await sw.barrier();
      t.same(await dumpFlows(), ['priority=1 actions=CONTROLLER:65535'], 'flows survived');
    });

    await t.test('unix socket listener', async (t) => {
      const usrv = new OpenFlowServer();
      t.teardown(() => usrv.close());
      const path = `${lab.host(host).runDir}/tenet-of.sock`;
      await usrv.listen({ path });
      const disconnected = new Promise((resolve) => server.once('disconnect', resolve));
      await lab.vsctl(host, 'set-controller', 'br-int', `unix:${path}`);
      const usw = await usrv.waitForSwitch(sw.datapathId, 20_000);
      t.equal(usw.dpidHex, sw.dpidHex, 'same switch over unix:');
      await usw.barrier();
      await disconnected;
      t.ok(sw.isClosed, 'the TCP connection saw the switch go (disconnect event)');
      sw = usw;
    });

    await t.test('TLS (ssl: target, mutual certificates)', async (t) => {
      const dir = `${lab.host(host).runDir}/tls`;
      mkdirSync(dir, { recursive: true });
      const certs = makeCerts(dir);
      const tsrv = new OpenFlowServer();
      t.teardown(() => tsrv.close());
      const { port: tport } = await tsrv.listen({
        host: lab.state.mgmt.gateway,
        port: 0,
        tls: { key: certs.controller.key, cert: certs.controller.cert, ca: certs.ca, requestCert: true },
      });
      await lab.vsctl(host, 'set-ssl', certs.switch.keyPath, certs.switch.certPath, certs.caPath);
      await lab.vsctl(host, 'set-controller', 'br-int', `ssl:${lab.state.mgmt.gateway}:${tport}`);
      const tsw = await tsrv.waitForSwitch(sw.datapathId, 20_000);
      await tsw.applyBundle([{ type: 'flow_mod', xid: 0, ...parseFlow('table=11,priority=3,ip actions=output:2') }]);
      t.ok((await dumpFlows()).includes('table=11, priority=3,ip actions=output:2'), 'bundle applied over TLS');
    });
  });
});
