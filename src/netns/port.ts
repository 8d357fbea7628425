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
  /** -1 when not asked for (plugPort(spec, {ofport: false})). */
  ofport: number;
}

const ipIn = (ns: string, ...args: string[]): Promise<RunResult> => run(['ip', '-n', ns, ...args]);

function vsctlArgv(ovsdb: string, ...args: string[]): string[] {
  return ['ovs-vsctl', `--db=${ovsdb}`, '--timeout=30', ...args];
}

/**
 * The `ip -batch` lines that set up the namespace's side (pure): loopback, the veth pair
 * (peer into `peerNs`), MAC, addresses, link up, default route. One `ip` process instead
 * of one per step: each costs 0.2-0.5 s on a loaded machine.
 */
export function portBatch(spec: Pick<PortSpec, 'hostIface' | 'ip' | 'ip6' | 'mac' | 'gateway'> & { iface: string; peerNs: string }): string[] {
  const v6 = (a: string) => a.includes(':');
  return [
    'link set lo up',
    `link add ${spec.iface} type veth peer name ${spec.hostIface} netns ${spec.peerNs}`,
    ...(spec.mac ? [`link set ${spec.iface} address ${spec.mac}`] : []),
    ...[spec.ip, spec.ip6].filter((a): a is string => !!a).map((a) => `addr add ${a} dev ${spec.iface}${v6(a) ? ' nodad' : ''}`),
    `link set ${spec.iface} up`,
    ...(spec.gateway ? [`route add default via ${spec.gateway}`] : []),
  ];
}

/** Creates the namespace, the veth pair and the br-int port. On failure nothing of it is left behind. */
export async function plugPort(spec: PortSpec, opts: { ofport?: boolean } = {}): Promise<PluggedPort> {
  const ns = spec.namespace;
  const iface = spec.iface ?? CONTAINER_IFACE;
  const peerNs = spec.hostNamespace ?? String(process.pid); // `netns PID` = that process's namespace: ours
  // Checked first: the cleanup below must never delete a namespace someone else made.
  if (netnsExists(ns)) throw new TenetError('ENETNS_EXISTS', `network namespace '${ns}' already exists`, { namespace: ns });
  for (const [what, v] of [['MAC', spec.mac], ['address', spec.ip], ['address', spec.ip6], ['gateway', spec.gateway], ['interface', spec.hostIface]] as const) {
    if (v !== undefined && !/^[0-9A-Za-z:./_-]+$/.test(v)) throw new TenetError('EPORT_SPEC', `invalid ${what} '${v}'`, { [what]: v });
  }
  try {
    await run(['ip', 'netns', 'add', ns]);
    await run(['ip', '-n', ns, '-batch', '-'], { input: portBatch({ ...spec, iface, peerNs }).join('\n') + '\n' });
    // The userspace datapath does not complete checksums offloaded by a veth:
    // without this, ping works but every TCP/UDP segment arrives corrupt.
    await run(['ip', 'netns', 'exec', ns, 'ethtool', '-K', iface, 'tx', 'off'], { timeoutMs: 10_000 });
    if (spec.hostNamespace) await ipIn(spec.hostNamespace, 'link', 'set', spec.hostIface, 'up');
    else await run(['ip', 'link', 'set', spec.hostIface, 'up']);
    const mac = spec.mac?.toLowerCase() ?? (await ipIn(ns, '-br', 'link', 'show', iface)).stdout.trim().split(/\s+/)[2] ?? '';
    const extra = Object.entries(spec.externalIds ?? {}).map(([k, v]) => `external_ids:${k}=${v}`);
    const env = spec.env ?? process.env;
    await run(
      vsctlArgv(
        spec.ovsdb,
        // Without an ofport to read back, no need to wait until vswitchd has made the port.
        ...(opts.ofport === false ? ['--no-wait'] : []),
        '--', '--may-exist', 'add-port', INTEGRATION_BRIDGE, spec.hostIface,
        '--', 'set', 'Interface', spec.hostIface, `external_ids:iface-id=${spec.ifaceId}`, `external_ids:attached-mac=${mac}`, ...extra,
      ),
      { env },
    );
    // The ofport is known once vswitchd added the port (add-port waited for that): one more query, only for who asks.
    const ofport = opts.ofport === false ? -1 : Number((await run(vsctlArgv(spec.ovsdb, 'get', 'Interface', spec.hostIface, 'ofport'), { env })).stdout.trim());
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
