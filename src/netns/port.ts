/**
 * A container port: a network namespace with one veth inside (`eth0` by default)
 * whose peer is a port of `br-int`, tagged `external_ids:iface-id` (OVN's binding
 * convention), with the address, MAC and gateway the controller assigned.
 * One implementation for the lab's `container add` and the agent's netns driver.
 */
import { existsSync } from 'node:fs';
import { run, runSync, type RunResult } from '../util/exec.js';
import { TenetError } from '../util/errors.js';

export const INTEGRATION_BRIDGE = 'br-int';
export const CONTAINER_IFACE = 'eth0';

export interface PortSpec {
  /** Namespace to create (must not exist). */
  namespace: string;
  /** Interface inside it (default eth0). */
  iface?: string;
  /** Name of the veth peer that becomes the br-int port (at most 15 characters). */
  hostIface: string;
  /** Namespace br-int lives in (a lab host's); undefined = the root namespace. */
  hostNamespace?: string;
  /** OVSDB address for ovs-vsctl (`unix:/path/db.sock`, `tcp:IP:PORT`). */
  ovsdb: string;
  /** Environment of ovs-vsctl (a lab host's OVS_RUNDIR). */
  env?: NodeJS.ProcessEnv;
  /** Address with prefix length (10.0.0.1/24 or fd00::1/64). */
  ip?: string;
  /** A second (IPv6) address with prefix length. */
  ip6?: string;
  mac?: string;
  gateway?: string;
  ifaceId: string;
  /** More external_ids of the Interface (e.g. who made it). */
  externalIds?: Record<string, string>;
}

export interface PluggedPort {
  namespace: string;
  iface: string;
  hostIface: string;
  /** The MAC the interface ended up with (assigned or random). */
  mac: string;
  ofport: number;
}

const ipIn = (ns: string, ...args: string[]): Promise<RunResult> => run(['ip', '-n', ns, ...args]);

function vsctlArgv(ovsdb: string, ...args: string[]): string[] {
  return ['ovs-vsctl', `--db=${ovsdb}`, '--timeout=30', ...args];
}

async function addAddress(ns: string, iface: string, cidr: string): Promise<void> {
  const v6 = cidr.includes(':');
  await run(['ip', '-n', ns, ...(v6 ? ['-6'] : []), 'addr', 'add', cidr, 'dev', iface, ...(v6 ? ['nodad'] : [])]);
}

/** Creates the namespace, the veth pair and the br-int port. On failure nothing of it is left behind. */
export async function plugPort(spec: PortSpec): Promise<PluggedPort> {
  const ns = spec.namespace;
  const iface = spec.iface ?? CONTAINER_IFACE;
  const peerNs = spec.hostNamespace ?? String(process.pid); // `netns PID` = that process's namespace: ours
  // Checked first: the cleanup below must never delete a namespace someone else made.
  if (netnsExists(ns)) throw new TenetError('ENETNS_EXISTS', `network namespace '${ns}' already exists`, { namespace: ns });
  try {
    await run(['ip', 'netns', 'add', ns]);
    await ipIn(ns, 'link', 'set', 'lo', 'up');
    await ipIn(ns, 'link', 'add', iface, 'type', 'veth', 'peer', 'name', spec.hostIface, 'netns', peerNs);
    if (spec.mac) await ipIn(ns, 'link', 'set', iface, 'address', spec.mac);
    if (spec.ip) await addAddress(ns, iface, spec.ip);
    if (spec.ip6) await addAddress(ns, iface, spec.ip6);
    await ipIn(ns, 'link', 'set', iface, 'up');
    // The userspace datapath does not complete checksums offloaded by a veth:
    // without this, ping works but every TCP/UDP segment arrives corrupt.
    await run(['ip', 'netns', 'exec', ns, 'ethtool', '-K', iface, 'tx', 'off'], { timeoutMs: 10_000 });
    if (spec.gateway) await ipIn(ns, ...(spec.gateway.includes(':') ? ['-6'] : []), 'route', 'add', 'default', 'via', spec.gateway);
    if (spec.hostNamespace) await ipIn(spec.hostNamespace, 'link', 'set', spec.hostIface, 'up');
    else await run(['ip', 'link', 'set', spec.hostIface, 'up']);
    const mac = (await ipIn(ns, '-br', 'link', 'show', iface)).stdout.trim().split(/\s+/)[2] ?? '';
    const extra = Object.entries(spec.externalIds ?? {}).map(([k, v]) => `external_ids:${k}=${v}`);
    const env = spec.env ?? process.env;
    await run(
      vsctlArgv(
        spec.ovsdb,
        '--', '--may-exist', 'add-port', INTEGRATION_BRIDGE, spec.hostIface,
        '--', 'set', 'Interface', spec.hostIface, `external_ids:iface-id=${spec.ifaceId}`, `external_ids:attached-mac=${mac}`, ...extra,
      ),
      { env },
    );
    const ofport = Number((await run(vsctlArgv(spec.ovsdb, 'get', 'Interface', spec.hostIface, 'ofport'), { env })).stdout.trim());
    return { namespace: ns, iface, hostIface: spec.hostIface, mac, ofport };
  } catch (err) {
    unplugPort({ namespace: ns, hostIface: spec.hostIface, ovsdb: spec.ovsdb, ...(spec.env ? { env: spec.env } : {}) });
    throw err;
  }
}

/**
 * Removes a port: the br-int port, every process still in the namespace (SIGKILL,
 * by pid), the namespace (the veth goes with it). Idempotent and synchronous (usable
 * from exit handlers).
 */
export function unplugPort(p: { namespace: string; hostIface: string; ovsdb: string; env?: NodeJS.ProcessEnv }): void {
  runSync(vsctlArgv(p.ovsdb, '--if-exists', 'del-port', INTEGRATION_BRIDGE, p.hostIface).map((a) => (a === '--timeout=30' ? '--timeout=10' : a)), {
    allowFailure: true,
    env: p.env ?? process.env,
  });
  for (const pid of runSync(['ip', 'netns', 'pids', p.namespace], { allowFailure: true }).stdout.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  runSync(['ip', 'netns', 'delete', p.namespace], { allowFailure: true });
}

/** Whether a named network namespace exists (`ip netns add` makes /run/netns/NAME). */
export function netnsExists(ns: string): boolean {
  return existsSync(`/run/netns/${ns}`);
}
