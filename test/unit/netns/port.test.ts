import t from 'tap';
import { portBatch } from '../../../src/netns/index.js';

t.test('port batch: one ip process sets up the namespace side', async (t) => {
  t.same(portBatch({ iface: 'eth0', hostIface: 'u-web-1', peerNs: 'lab-host1', ip: '10.0.0.5/24', ip6: 'fd00::5/64', mac: '02:00:00:00:00:05', gateway: '10.0.0.1' }), [
    'link set lo up',
    'link add eth0 type veth peer name u-web-1 netns lab-host1',
    'link set eth0 address 02:00:00:00:00:05',
    'addr add 10.0.0.5/24 dev eth0',
    'addr add fd00::5/64 dev eth0 nodad',
    'link set eth0 up',
    'route add default via 10.0.0.1',
  ]);
  t.same(portBatch({ iface: 'eth0', hostIface: 'c-a', peerNs: '1234' }), ['link set lo up', 'link add eth0 type veth peer name c-a netns 1234', 'link set eth0 up'], 'no MAC, address or gateway: none set');
});
