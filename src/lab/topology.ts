/**
 * The lab as a topology sees it: the `hosts` section for a lab (each host's
 * underlay IP, its OVSDB over the management network, the userspace datapath) and
 * the controller target the hosts can reach. Plus the step a scheduler's agent will
 * do later: create a container for every endpoint the controller placed, with the
 * address, MAC, iface-id and gateway the controller assigned.
 */
import { TenetError, UsageError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { addContainer } from './container.js';
import { OVSDB_TCP_PORT } from './naming.js';
import type { LabContainer, LabState } from './state.js';

/** One entry of a topology's `hosts` (src/model's host fields). */
export interface TopologyHost {
  name: string;
  underlayIp: string;
  ovsdb: string;
  datapathType: 'netdev';
}

/** The controller's OpenFlow port (the daemon's default `--openflow 0.0.0.0:6653`). */
export const OPENFLOW_PORT = 6653;

/** The topology `hosts` section for a lab (pure). */
export function labTopologyHosts(state: LabState): TopologyHost[] {
  return state.hosts.map((h) => ({
    name: h.name,
    underlayIp: h.underlayIp,
    ovsdb: `tcp:${h.mgmtIp}:${OVSDB_TCP_PORT}`,
    datapathType: 'netdev',
  }));
}

/** The controller target every lab host reaches over the management network: `tcp:<mgmt gateway>:6653`. */
export function labAdvertise(state: LabState, port = OPENFLOW_PORT): string {
  return `tcp:${state.mgmt.gateway}:${port}`;
}

/**
 * What `tenet lab hosts -o json` prints: the hosts section, ready to paste into a
 * topology, and the controller target to start the daemon with (`--advertise`).
 */
export function labTopologyInfo(state: LabState, port = OPENFLOW_PORT): { lab: string; advertise: string; hosts: TopologyHost[] } {
  return { lab: state.name, advertise: labAdvertise(state, port), hosts: labTopologyHosts(state) };
}

/** A topology document with the lab's hosts in place of the document's own `hosts`. */
export function withLabHosts<T extends object>(doc: T, state: LabState): T & { hosts: TopologyHost[] } {
  return { ...doc, hosts: labTopologyHosts(state) };
}

/** The fields of a controller endpoint (src/controller EndpointInfo) a container needs. */
export interface PlacedEndpoint {
  /** "tenant/name": the iface-id. */
  id: string;
  tenant: string;
  name: string;
  host: string;
  /** With prefix length. */
  ip?: string;
  mac: string;
  gateway?: string;
}

/** Container name for an endpoint: `<tenant>-<name>` (a valid lab container name when both are DNS labels up to 15 characters). */
export const endpointContainerName = (e: Pick<PlacedEndpoint, 'tenant' | 'name'>): string => `${e.tenant}-${e.name}`;

/**
 * Creates a lab container for each endpoint that has none yet (by iface-id), on
 * its host, with the controller's IP, MAC, iface-id and gateway. `concurrency`
 * containers are created at once. Returns the containers created.
 */
export async function addEndpointContainers(
  labName: string,
  state: LabState,
  endpoints: readonly PlacedEndpoint[],
  opts: { concurrency?: number; name?: (e: PlacedEndpoint) => string } = {},
): Promise<LabContainer[]> {
  const have = new Set(state.containers.map((c) => c.ifaceId));
  const todo = endpoints.filter((e) => !have.has(e.id));
  for (const e of todo) {
    if (!e.ip) throw new UsageError(`endpoint ${e.id} has no IPv4 address: the lab needs one per container`, { endpoint: e.id });
  }
  const nameOf = opts.name ?? endpointContainerName;
  const out: LabContainer[] = [];
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const e = todo[next++]!;
      out.push(
        await addContainer(labName, e.host, nameOf(e), {
          ip: e.ip!,
          mac: e.mac,
          ifaceId: e.id,
          ...(e.gateway ? { gateway: e.gateway } : {}),
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, todo.length)) }, worker));
  return out;
}

/**
 * Makes every host's Open vSwitch know every other host's underlay MAC. The
 * userspace datapath's native tunnelling drops a packet whose tunnel next hop is
 * not in its neighbour cache yet (it sends an ARP instead), so the first packet to
 * a new peer host would be lost; a ping from each host's own stack to each peer
 * makes OVS learn the ARP replies (`ovs-appctl tnl/neigh/show` lists them).
 * OVS forgets them when the host's routes change (adding container ports does):
 * call this after the containers exist.
 */
export async function warmUnderlay(state: LabState): Promise<void> {
  const pairs = state.hosts.flatMap((h) => state.hosts.filter((p) => p !== h).map((p) => [h, p] as const));
  const failed: string[] = [];
  await Promise.all(
    pairs.map(async ([h, p]) => {
      for (let attempt = 0; attempt < 3; attempt++) {
        const r = await run(['ip', 'netns', 'exec', h.namespace, 'ping', '-4', '-n', '-q', '-c', '1', '-W', '1', p.underlayIp], { allowFailure: true, timeoutMs: 5000 });
        if (r.code === 0) return;
      }
      failed.push(`${h.name} -> ${p.name} (${p.underlayIp})`);
    }),
  );
  if (failed.length) throw new TenetError('ELAB', `underlay unreachable: ${failed.join(', ')}`, { lab: state.name, failed });
}
