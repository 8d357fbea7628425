/**
 * A hand-written overlay for the lab: one VXLAN network joining every lab
 * container, flows written directly with `ovs-ofctl`. It is the baseline the
 * controller replaces: no policy, no routing, just L2 over tunnels.
 *
 *   table 0: from a container port -> reg0=1 (local), tun_id=VNI, table 1
 *            from a tunnel with tun_id=VNI -> table 1 (reg0 stays 0)
 *   table 1: eth_dst of a local container -> its port
 *            eth_dst of a remote container -> tunnel to its host
 *            broadcast/multicast -> local ports, plus all tunnels when it came from a local port
 */
import { run } from '../util/exec.js';
import { hostEnv, hostVsctl } from './lab.js';
import { tunnelPort, INTEGRATION_BRIDGE } from './naming.js';
import type { LabHost, LabState } from './state.js';

export interface OverlayPort {
  container: string;
  mac: string;
  ofport: number;
}

export interface HostOverlay {
  host: string;
  /** Peer host name -> its underlay IP (one VXLAN port each). */
  tunnels: Map<string, string>;
  flows: string[];
}

/** Pure: the tunnels and flows every host needs. `tunnelOfport` gives a tunnel port's ofport by name. */
export function overlayFlows(state: LabState, vni: number, host: LabHost, tunnelOfport: (name: string) => number): string[] {
  const local = state.containers.filter((c) => c.host === host.name);
  const remote = state.containers.filter((c) => c.host !== host.name);
  const peers = [...new Set(remote.map((c) => c.host))].sort();
  const tunnels = peers.map((p) => tunnelOfport(tunnelPort(p)));
  const flows: string[] = [];
  for (const c of local) flows.push(`table=0,priority=100,in_port=${c.ofport},actions=load:1->NXM_NX_REG0[],set_field:${vni}->tun_id,resubmit(,1)`);
  for (const t of tunnels) flows.push(`table=0,priority=100,in_port=${t},tun_id=${vni},actions=resubmit(,1)`);
  for (const c of local) flows.push(`table=1,priority=100,dl_dst=${c.mac},actions=output:${c.ofport}`);
  for (const c of remote) flows.push(`table=1,priority=100,dl_dst=${c.mac},actions=output:${tunnelOfport(tunnelPort(c.host))}`);
  const localOut = local.map((c) => `output:${c.ofport}`);
  const allOut = [...localOut, ...tunnels.map((t) => `output:${t}`)];
  if (allOut.length) flows.push(`table=1,priority=50,reg0=1,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=${allOut.join(',')}`);
  if (localOut.length) flows.push(`table=1,priority=50,reg0=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=${localOut.join(',')}`);
  return flows;
}

/** Creates the VXLAN ports and installs the overlay flows on every host that has containers. */
export async function applyStaticOverlay(state: LabState, vni = 100): Promise<Map<string, string[]>> {
  const result = new Map<string, string[]>();
  const hostsWithContainers = new Set(state.containers.map((c) => c.host));
  for (const host of state.hosts.filter((h) => hostsWithContainers.has(h.name))) {
    const env = hostEnv(host);
    const vsctl = (...args: string[]) => hostVsctl(host, ...args);
    const peers = state.hosts.filter((p) => p.name !== host.name && hostsWithContainers.has(p.name));
    const ofports = new Map<string, number>();
    for (const peer of peers) {
      const port = tunnelPort(peer.name);
      await vsctl(
        '--may-exist', 'add-port', INTEGRATION_BRIDGE, port,
        '--', 'set', 'Interface', port, 'type=vxlan',
        `options:remote_ip=${peer.underlayIp}`, `options:local_ip=${host.underlayIp}`, 'options:key=flow',
      );
      ofports.set(port, Number((await vsctl('get', 'Interface', port, 'ofport')).stdout.trim()));
    }
    const flows = overlayFlows(state, vni, host, (name) => {
      const p = ofports.get(name);
      if (p === undefined) throw new Error(`no tunnel port ${name} on ${host.name}`);
      return p;
    });
    await run(['ovs-ofctl', '-O', 'OpenFlow13', '--bundle', 'replace-flows', host.brIntMgmt, '-'], { env, input: flows.join('\n') + '\n' });
    result.set(host.name, flows);
  }
  return result;
}
