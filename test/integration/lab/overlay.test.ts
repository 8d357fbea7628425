/**
 * Two lab hosts, one container each, joined by VXLAN with flows written through
 * ovs-ofctl: ICMP and a TCP exchange must cross the overlay, and the switch's
 * own trace must show the tunnel being used.
 */
import t from 'tap';
import { applyStaticOverlay } from '../../../src/lab/index.js';
import { withLab } from '../../helpers/lab.js';

t.test('containers on different hosts talk through VXLAN', async (t) => {
  await withLab(t, { hosts: 2 }, async (lab) => {
    await lab.addContainer('host1', 'a', { ip: '10.10.0.1/24', ifaceId: 'lp-a', mac: '02:00:0a:00:00:01' });
    await lab.addContainer('host2', 'b', { ip: '10.10.0.2/24', ifaceId: 'lp-b', mac: '02:00:0a:00:00:02' });

    // Before any flow: br-int is fail_mode=secure, so nothing passes.
    const before = await lab.ping('a', '10.10.0.2', { count: 1, timeoutS: 1 });
    t.same([before.sent, before.received], [1, 0], 'no flows, no connectivity (fail_mode=secure): 1 sent, 0 received');
    // That failed ARP left a FAILED neighbour entry that would delay the next pings by seconds.
    await lab.exec('a', ['ip', 'neigh', 'flush', 'all']);

    const flows = await applyStaticOverlay(lab.state, 5001);
    t.equal(flows.size, 2, 'flows installed on both hosts');
    const dump = (await lab.ofctl('host1', 'dump-flows', 'br-int')).stdout;
    t.match(dump, /set_field:0x1389->tun_id/, 'dump-flows shows the VNI being set');

    const p = await lab.ping('a', '10.10.0.2', { count: 3 });
    t.ok(p.ok, `ping a -> b through the tunnel (${p.received}/${p.sent}, rtt ${p.rttMs} ms)`);
    const back = await lab.ping('b', '10.10.0.1', { count: 2 });
    t.ok(back.ok, 'ping b -> a');

    const tcp = await lab.tcpCheck('a', 'b', 7070);
    t.ok(tcp.ok, `TCP exchange a -> b: ${tcp.detail}`);

    // The port the packet leaves by is the VXLAN port, as the switch itself says.
    const ofport = (await lab.vsctl('host1', 'get', 'Interface', 'vx-host2', 'ofport')).stdout.trim();
    const trace = (
      await lab.appctl('host1', 'ofproto/trace', 'br-int', `in_port=${lab.container('a').ofport},dl_src=02:00:0a:00:00:01,dl_dst=02:00:0a:00:00:02`)
    ).stdout;
    t.match(trace, new RegExp(`output:${ofport}`), 'ofproto/trace outputs to the tunnel port');
    t.match(lab.host('host1').ovsdbTcp, /^tcp:198\.18\.\d+\.11:6640$/, 'OVSDB TCP address on the management network');
  });
});
