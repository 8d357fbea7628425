/**
 * The host switch manager against a lab host's real ovsdb-server and
 * ovs-vswitchd: bridge and tunnel `ensure` (checked with ovs-vsctl; a second
 * call sends no transaction), optimistic-concurrency guard, 1 → 50 → 10 peer
 * reconciliation, and iface-id → ofport bindings following vswitchd live.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { type OvsdbClient, OvsdbTransactError, rowsEqual } from '../../../src/ovsdb/index.js';
import { tableOf } from '../../../src/ovsdb/schema.js';
import { type BindingEvent, HostSwitch, PEER_KEY, SWITCH_TABLES, planBridge, tunnelPortName } from '../../../src/vswitch/index.js';
import { withLab } from '../../helpers/lab.js';
import { dumpRows } from '../../helpers/ovsdb-server.js';
import { until } from '../../helpers/net.js';

/**
 * `transact` requests the replica's connection has put on the wire so far, and
 * that connection: a count only compares on the same connection.
 */
function wireTransacts(sw: HostSwitch): { client: OvsdbClient; count: number } {
  const client = sw.replica.client;
  if (!client) throw new Error('replica not connected');
  return { client, count: client.stats.requests.transact ?? 0 };
}

/** A hang guard for waits on events (a loaded machine is slow, not wrong); normally met in milliseconds. */
const HANG_GUARD_MS = 30_000;

t.test('host switch manager on a lab host', async (t) => {
  await withLab(t, { hosts: 1 }, async (lab) => {
    const h = lab.hosts[0]!;
    const vsctl = async (...a: string[]) => (await lab.vsctl(h.name, ...a)).stdout.trim();
    // Over the management network, as the controller reaches a real host.
    const sw = await HostSwitch.open(h.ovsdbTcp, { reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
    t.teardown(() => sw.close());

    await t.test('ensureBridge creates, then is a no-op', async (t) => {
      const ofSock = `unix:${h.runDir}/tenet-of.sock`; // inside this lab host's own run dir
      const spec = { name: 'br-tnt', datapathType: 'netdev', controllers: ['tcp:192.0.2.1:6653', ofSock], protocols: ['OpenFlow10', 'OpenFlow13'] };
      const r1 = await sw.ensureBridge(spec);
      t.same(r1, { changed: true, attempts: 1 });
      t.equal(await vsctl('get-fail-mode', 'br-tnt'), 'secure');
      t.equal(await vsctl('get', 'Bridge', 'br-tnt', 'datapath_type'), 'netdev');
      t.equal(await vsctl('get', 'Bridge', 'br-tnt', 'other_config:disable-in-band'), '"true"');
      t.equal(await vsctl('get', 'Bridge', 'br-tnt', 'protocols'), '[OpenFlow10, OpenFlow13]');
      t.same((await vsctl('get-controller', 'br-tnt')).split('\n').sort(), ['tcp:192.0.2.1:6653', ofSock].sort());
      t.match(await vsctl('list-br'), 'br-tnt');
      t.equal(await vsctl('get', 'Interface', 'br-tnt', 'type'), 'internal', 'local port like ovs-vsctl add-br');
      const before = wireTransacts(sw);
      t.same(await sw.ensureBridge(spec), { changed: false, attempts: 0 });
      t.equal(wireTransacts(sw).client, before.client, 'same connection');
      t.equal(wireTransacts(sw).count, before.count, 'second ensure put no transaction on the wire');

      // Someone changes it behind our back: one transaction repairs exactly that.
      await vsctl('set-fail-mode', 'br-tnt', 'standalone', '--', 'set', 'Bridge', 'br-tnt', 'other_config:disable-in-band=false', '--', 'set-controller', 'br-tnt', 'tcp:192.0.2.1:6653', 'tcp:192.0.2.9:1');
      await until('the standalone fail_mode in the replica', () => sw.replica.rows('Bridge').size > 0 && [...sw.replica.rows('Bridge').values()].some((b) => b.fail_mode === 'standalone'), HANG_GUARD_MS);
      t.same(await sw.ensureBridge(spec), { changed: true, attempts: 1 });
      t.equal(await vsctl('get-fail-mode', 'br-tnt'), 'secure');
      t.equal(await vsctl('get', 'Bridge', 'br-tnt', 'other_config:disable-in-band'), '"true"');
      t.same((await vsctl('get-controller', 'br-tnt')).split('\n').sort(), ['tcp:192.0.2.1:6653', ofSock].sort());
      t.same(await sw.ensureBridge(spec), { changed: false, attempts: 0 });
      await t.rejects(sw.ensureBridge({ ...spec, protocols: ['OpenFlow10'] }), { code: 'EVSWITCH' });
    });

    await t.test('the wait guard: a plan made before a concurrent change fails at the wait and changes nothing', async (t) => {
      const stale = planBridge(sw.replica, { name: 'br-tnt', datapathType: 'system', controllers: [] })!;
      t.equal(stale[0]!.op, 'wait');
      await vsctl('set', 'Bridge', 'br-tnt', 'other_config:disable-in-band=false', '--', 'set-controller', 'br-tnt', 'tcp:192.0.2.7:1');
      const e = (await sw.replica.transact(stale).catch((x: unknown) => x)) as OvsdbTransactError;
      t.ok(e instanceof OvsdbTransactError);
      t.equal(e.index, 0);
      t.equal(e.op?.op, 'wait');
      t.equal(await vsctl('get', 'Bridge', 'br-tnt', 'datapath_type'), 'netdev', 'unchanged');
      // ensure replans from the replica (which has the concurrent change) and succeeds.
      t.same(await sw.ensureBridge({ name: 'br-tnt', datapathType: 'netdev', controllers: ['tcp:192.0.2.1:6653'] }), { changed: true, attempts: 1 });
      t.equal(await vsctl('get-controller', 'br-tnt'), 'tcp:192.0.2.1:6653');
      t.equal(await vsctl('get', 'Bridge', 'br-tnt', 'protocols'), '[OpenFlow13]');
    });

    await t.test('lost optimistic race: ensure replans from the updated replica and retries', async (t) => {
      const spec = { name: 'br-tnt', datapathType: 'netdev', controllers: ['tcp:192.0.2.1:6653'] };
      await vsctl('set-fail-mode', 'br-tnt', 'standalone');
      await until('br-tnt standalone in the replica', () => [...sw.replica.rows('Bridge').values()].some((b) => b.name === 'br-tnt' && b.fail_mode === 'standalone'), HANG_GUARD_MS);
      // Inject a concurrent writer between planning and sending: the first
      // transaction must fail at its guard and change nothing.
      const orig = sw.replica.transact.bind(sw.replica);
      let calls = 0;
      sw.replica.transact = async (ops, o) => {
        if (calls++ === 0) await vsctl('set', 'Bridge', 'br-tnt', 'other_config:disable-in-band=false', '--', 'set-controller', 'br-tnt', 'tcp:192.0.2.5:1');
        return orig(ops, o);
      };
      t.teardown(() => {
        sw.replica.transact = orig;
      });
      const r = await sw.ensureBridge(spec);
      t.same(r, { changed: true, attempts: 2 });
      t.equal(await vsctl('get-fail-mode', 'br-tnt'), 'secure');
      t.equal(await vsctl('get', 'Bridge', 'br-tnt', 'other_config:disable-in-band'), '"true"', 'the concurrent change was seen and repaired');
      t.equal(await vsctl('get-controller', 'br-tnt'), 'tcp:192.0.2.1:6653');
      sw.replica.transact = orig;
    });

    await t.test('tunnel ports: 1 → 50 → 10 peers, option changes, foreign ports untouched', async (t) => {
      await vsctl('add-port', 'br-int', 'manual0', '--', 'set', 'Interface', 'manual0', 'type=vxlan', 'options:remote_ip=203.0.113.250');
      const peers = (n: number, off = 0) =>
        Array.from({ length: n }, (_, i) => ({ name: `host${i + 2}`, remoteIp: `203.0.113.${i + 2 + off}` }));
      const check = async (expected: { name: string; remoteIp: string }[]) => {
        const json = JSON.parse(await vsctl('--format=json', '--columns=name,type,options,external_ids', 'find', 'Interface', 'type=vxlan')) as { data: unknown[][] };
        const got = new Map<string, { type: string; options: Record<string, string>; ext: Record<string, string> }>();
        for (const [name, type, options, ext] of json.data) {
          const m = (x: unknown) => Object.fromEntries((x as [string, [string, string][]])[1]);
          got.set(name as string, { type: type as string, options: m(options), ext: m(ext) });
        }
        t.ok(got.has('manual0'), 'manual port untouched');
        got.delete('manual0');
        t.same([...got.keys()].sort(), expected.map((p) => tunnelPortName(p.name)).sort(), `exactly ${expected.length} tunnel ports`);
        let bad = 0;
        for (const p of expected) {
          const g = got.get(tunnelPortName(p.name));
          const ok = g && g.type === 'vxlan' && g.options.remote_ip === p.remoteIp && g.options.local_ip === h.underlayIp && g.options.key === 'flow' && g.ext[PEER_KEY] === p.name;
          if (!ok) bad++;
        }
        t.equal(bad, 0, 'every tunnel has the right options');
        const ports = (await vsctl('list-ports', 'br-int')).split('\n').filter((p) => p.startsWith('vx-'));
        t.equal(ports.length, expected.length, 'ports on br-int');
      };
      const spec = (p: { name: string; remoteIp: string }[]) => ({ bridge: 'br-int', localIp: h.underlayIp, peers: p });

      let r = await sw.ensureTunnels(spec(peers(1)));
      t.equal(r.added.length, 1);
      await check(peers(1));
      const sent = wireTransacts(sw);
      r = await sw.ensureTunnels(spec(peers(50)));
      t.same([r.added.length, r.removed.length, r.updated.length, r.attempts], [49, 0, 0, 1], 'one transaction adds 49');
      t.equal(wireTransacts(sw).count - sent.count, 1, 'exactly one transaction on the wire');
      await check(peers(50));
      const p10 = peers(10);
      p10[3] = { ...p10[3]!, remoteIp: '203.0.113.200' };
      r = await sw.ensureTunnels(spec(p10));
      t.same([r.added.length, r.removed.length, r.updated.length, r.attempts], [0, 40, 1, 1], 'one transaction removes 40, updates 1');
      await check(p10);
      const before = wireTransacts(sw);
      r = await sw.ensureTunnels(spec(p10));
      t.same([r.changed, r.attempts], [false, 0]);
      t.equal(wireTransacts(sw).client, before.client, 'same connection');
      t.equal(wireTransacts(sw).count, before.count, 'no transaction on the wire when tunnels match');
      await t.rejects(sw.ensureTunnels({ ...spec(p10), bridge: 'nope' }), { code: 'EVSWITCH' });
      await t.rejects(sw.ensureTunnels(spec([...p10, p10[0]!])), { code: 'EVSWITCH' });
      r = await sw.ensureTunnels(spec([]));
      t.equal(r.removed.length, 10);
      await check([]);
    });

    await t.test('iface-id → ofport follows vswitchd live', async (t) => {
      const events: BindingEvent[] = [];
      sw.on('binding', (e) => events.push(e));
      const c = await lab.addContainer(h.name, 'c1', { ip: '10.9.0.1/24', ifaceId: 'ep-c1' });
      await until('an ofport for ep-c1', () => sw.ofport('ep-c1') !== undefined, HANG_GUARD_MS);
      const of = Number(await vsctl('get', 'Interface', c.hostIface, 'ofport'));
      t.equal(sw.ofport('ep-c1'), of, 'ofport as ovs-vsctl shows it');
      t.ok(events.some((e) => e.kind === 'added' && e.ifaceId === 'ep-c1'));
      t.ok(sw.listBindings().some((b) => b.ifaceId === 'ep-c1' && b.ofport === of));
      const linkUp = () => sw.listBindings().find((b) => b.ifaceId === 'ep-c1')?.linkUp;
      await until('ep-c1 link up (link_state)', () => linkUp() === true, HANG_GUARD_MS);
      await lab.exec(h.name, ['ip', 'link', 'set', c.hostIface, 'down']);
      await until('ep-c1 link down', () => linkUp() === false, HANG_GUARD_MS);
      t.ok(events.some((e) => e.kind === 'changed' && e.binding?.linkUp === false && e.previous?.linkUp === true), "link_state down: a 'changed' binding event");
      await lab.exec(h.name, ['ip', 'link', 'set', c.hostIface, 'up']);
      await until('ep-c1 link up again', () => linkUp() === true, HANG_GUARD_MS);
      t.equal(sw.ofport('ep-c1'), of, 'same ofport throughout');
      await vsctl('set', 'Interface', c.hostIface, 'ofport_request=77');
      await until('ofport 77 for ep-c1', () => sw.ofport('ep-c1') === 77, HANG_GUARD_MS);
      t.ok(events.some((e) => e.kind === 'changed' && e.binding?.ofport === 77 && e.previous?.ofport === of));
      await vsctl('del-port', 'br-int', c.hostIface);
      await until('ep-c1 unbound', () => sw.ofport('ep-c1') === undefined, HANG_GUARD_MS);
      t.ok(events.some((e) => e.kind === 'removed' && e.ifaceId === 'ep-c1'));
      t.equal(sw.ofport('nobody'), undefined);
    });

    await t.test('kill -9 of the host ovsdb-server: the replica resyncs and equals the server', async (t) => {
      const pid = lab.pids(h.name).ovsdbServer!;
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const down = new Promise((r) => sw.replica.once('disconnected', r));
      process.kill(pid, 'SIGKILL');
      await down;
      await lab.exec(h.name, argv); // same command line, same database file
      await vsctl('--no-wait', 'add-port', 'br-int', 'late0', '--', 'set', 'Interface', 'late0', 'type=internal', 'external_ids:iface-id=ep-late');
      await sw.replica.whenSynced();
      await until('an ofport for ep-late', () => sw.ofport('ep-late') !== undefined, HANG_GUARD_MS); // ovs-vswitchd reconnected too and numbered it
      const schema = sw.replica.databaseSchema!;
      const differences = async () => {
        let diff = 0;
        for (const [table, cols] of Object.entries(SWITCH_TABLES)) {
          const theirs = await dumpRows(`unix:${h.ovsdbSocket}`, tableOf(schema, table), cols);
          const mine = sw.replica.rows(table);
          if (mine.size !== theirs.size) diff++;
          for (const [uuid, row] of theirs) if (!mine.get(uuid) || !rowsEqual(mine.get(uuid)!, row)) diff++;
        }
        return diff;
      };
      // vswitchd keeps writing status columns after its reconnect: wait for quiet, then compare.
      await until('replica equal to the dump', async () => (await differences()) === 0, HANG_GUARD_MS, 100).catch(() => undefined);
      t.equal(await differences(), 0, 'replica equals ovsdb-client dump of every replicated table');
      const before = wireTransacts(sw);
      t.same(await sw.ensureBridge({ name: 'br-tnt', datapathType: 'netdev', controllers: ['tcp:192.0.2.1:6653'] }), { changed: false, attempts: 0 });
      t.equal(wireTransacts(sw).client, before.client, 'same connection');
      t.equal(wireTransacts(sw).count, before.count, 'still no transaction on the wire after the restart');
    });
  });
});
