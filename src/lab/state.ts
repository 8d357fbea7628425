/**
 * The lab state file: the one record of what a lab is, read by the CLI, the
 * tests and (later) the controller. Written atomically after every step of
 * `up` and `container add`, so a crash leaves a file that `down` can act on.
 * Format documented in docs/LAB.md.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const STATE_VERSION = 1;

export interface LabHost {
  /** Host name inside the lab: host1, host2, ... */
  name: string;
  index: number;
  /** Network namespace the host's OVS daemons and links live in. */
  namespace: string;
  /** Run directory: conf.db, sockets, pidfiles, logs (OVS_RUNDIR of this host). */
  runDir: string;
  /** OVSDB unix socket path (reachable from the root namespace). */
  ovsdbSocket: string;
  /** OVSDB TCP address on the management network, `tcp:IP:PORT`. */
  ovsdbTcp: string;
  /** Management IP of the host (the controller reaches it here; it reaches the controller at `mgmt.gateway`). */
  mgmtIp: string;
  /** Underlay (tunnel endpoint) IP, carried by `br-phy`. */
  underlayIp: string;
  /** OpenFlow management socket of br-int, for `ovs-ofctl`: `unix:RUNDIR/br-int.mgmt`. */
  brIntMgmt: string;
  pidfiles: { ovsdbServer: string; ovsVswitchd: string };
  logs: { ovsdbServer: string; ovsVswitchd: string };
}

export interface LabContainer {
  name: string;
  host: string;
  namespace: string;
  /** Interface inside the container. */
  iface: string;
  /** Host-side veth, a port of br-int. */
  hostIface: string;
  /** Address with prefix length, e.g. 10.0.0.1/24. */
  ip: string;
  mac: string;
  ifaceId: string;
  gateway?: string;
  ofport?: number;
}

/** A `tenet agent` the lab started for one of its hosts (src/lab/agents.ts). */
export interface LabAgent {
  host: string;
  pid: number;
  /** /proc start time of pid: `lab down` signals only this very process. */
  startTime?: string;
  stateDir: string;
  logFile: string;
  /** The agent's unix socket (logs, sidekick). */
  socket: string;
  controller: string;
}

export interface LabState {
  version: number;
  name: string;
  /** Index of the lab's management subnet slot (198.18.<index>.0/24). */
  index: number;
  /** `creating` until `up` finished; `ready` after. */
  status: 'creating' | 'ready';
  createdAt: string;
  dir: string;
  mgmt: { bridge: string; cidr: string; gateway: string };
  fabric: { namespace: string; bridge: string; cidr: string };
  hosts: LabHost[];
  containers: LabContainer[];
  /** Agents started by `lab agents start` / startLabAgents; stopped by `lab down`. */
  agents?: LabAgent[];
}

/** Where labs keep their state; tmpfs, so a reboot forgets labs along with their namespaces. */
export function labRoot(): string {
  return process.env.TENET_LAB_ROOT ?? '/run/tenet/lab';
}

export const labDir = (name: string): string => join(labRoot(), name);
export const stateFile = (name: string): string => join(labDir(name), 'lab.json');

export function readState(name: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(name), 'utf8')) as LabState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Atomic write: a reader never sees a half-written file. */
export function writeState(state: LabState): void {
  mkdirSync(state.dir, { recursive: true });
  const tmp = `${stateFile(state.name)}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, stateFile(state.name));
}

/** Names of every lab that has a directory under the lab root. */
export function listLabs(): string[] {
  try {
    return readdirSync(labRoot(), { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}
