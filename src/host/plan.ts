/**
 * Pure rules of the per-host setup: bridge names, where an Open vSwitch instance
 * keeps its files, the ovs-vsctl arguments that make the bridges, and reading
 * `ip -o addr` output. No I/O here (unit-tested in test/unit/host).
 */
import { join } from 'node:path';
import { UsageError } from '../util/errors.js';

/** The bridge the controller programs (containers' ports and tunnels). */
export const INTEGRATION_BRIDGE = 'br-int';
/** The underlay bridge of the userspace datapath: holds the underlay NIC, carries the tunnel endpoint IP. */
export const UNDERLAY_BRIDGE = 'br-phy';
/** OVSDB's TCP port (IANA), where the controller reaches a host. */
export const OVSDB_TCP_PORT = 6640;
/** Run directory of the system's Open vSwitch (Debian's openvswitch-switch). */
export const SYSTEM_OVS_RUNDIR = '/var/run/openvswitch';
/** Run directory of daemons `tenet host setup` starts itself when the system's are not running. */
export const DEFAULT_OWN_RUNDIR = '/run/tenet/host';

export type DatapathType = 'netdev' | 'system';

/** Every file of one Open vSwitch instance, under its run directory (OVS_RUNDIR). */
export interface OvsPaths {
  runDir: string;
  db: string;
  ovsdbSocket: string;
  pidfiles: { ovsdbServer: string; ovsVswitchd: string };
  logs: { ovsdbServer: string; ovsVswitchd: string };
  /** OpenFlow management socket of br-int (`ovs-ofctl unix:…`). */
  brIntMgmt: string;
}

export function ovsPaths(runDir: string): OvsPaths {
  return {
    runDir,
    db: join(runDir, 'conf.db'),
    ovsdbSocket: join(runDir, 'db.sock'),
    pidfiles: { ovsdbServer: join(runDir, 'ovsdb-server.pid'), ovsVswitchd: join(runDir, 'ovs-vswitchd.pid') },
    logs: { ovsdbServer: join(runDir, 'ovsdb-server.log'), ovsVswitchd: join(runDir, 'ovs-vswitchd.log') },
    brIntMgmt: `unix:${join(runDir, `${INTEGRATION_BRIDGE}.mgmt`)}`,
  };
}

/** Environment that makes plain `ovs-vsctl`, `ovs-ofctl br-int` and `ovs-appctl` address one instance. */
export function ovsEnv(runDir: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...base, OVS_RUNDIR: runDir, OVS_DBDIR: runDir, OVS_LOGDIR: runDir };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** `A.B.C.D/N` → its parts; a UsageError naming `what` otherwise. */
export function parseCidr(cidr: string, what = 'address'): { ip: string; prefixLen: number; cidr: string } {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(cidr);
  const ip = m?.[1] ?? '';
  const prefixLen = Number(m?.[2]);
  if (!m || !IPV4.test(ip) || prefixLen < 1 || prefixLen > 32) {
    throw new UsageError(`${what} must be an IPv4 address with prefix length (A.B.C.D/N), got '${cidr}'`, { value: cidr });
  }
  return { ip, prefixLen, cidr: `${ip}/${prefixLen}` };
}

/** `IP` or `IP:PORT` → the ovsdb-server remote `ptcp:PORT:IP` and the controller's target `tcp:IP:PORT`. */
export function ovsdbListen(spec: string): { remote: string; target: string } {
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(spec);
  const ip = m?.[1] ?? '';
  const port = m?.[2] === undefined ? OVSDB_TCP_PORT : Number(m[2]);
  if (!m || !IPV4.test(ip) || port < 1 || port > 65535) {
    throw new UsageError(`OVSDB listen address must be IP or IP:PORT, got '${spec}'`, { value: spec });
  }
  return { remote: `ptcp:${port}:${ip}`, target: `tcp:${ip}:${port}` };
}

/** One line of `ip -o -4 addr show`: `2: eth1    inet 192.0.2.5/24 brd … scope global eth1 …`. */
export interface LinkAddress {
  link: string;
  cidr: string;
}

export function parseIpAddrLines(out: string): LinkAddress[] {
  const found: LinkAddress[] = [];
  for (const line of out.split('\n')) {
    const m = /^\d+:\s+([^\s@:]+)(?:@\S+)?\s+inet\s+(\S+)/.exec(line);
    if (m) found.push({ link: m[1]!, cidr: m[2]! });
  }
  return found;
}

/** The link that holds `ip` (any prefix length), if one does. */
export function linkHolding(addrs: readonly LinkAddress[], ip: string): LinkAddress | undefined {
  return addrs.find((a) => a.cidr.split('/')[0] === ip);
}

export interface BridgeArgsOptions {
  datapathType: DatapathType;
  /** The underlay NIC to put into br-phy (netdev only). */
  underlayIface?: string;
}

/**
 * ovs-vsctl arguments (one transaction, idempotent) for the host's bridges:
 * br-phy holding the underlay NIC (userspace datapath only: its native
 * tunnelling routes and ARPs through br-phy's own interface) and br-int, which
 * forwards nothing until a controller programs it (fail_mode=secure).
 */
export function bridgeArgs(opts: BridgeArgsOptions): string[] {
  const dp = `datapath_type=${opts.datapathType}`;
  const underlay =
    opts.datapathType === 'netdev'
      ? [
          '--', '--may-exist', 'add-br', UNDERLAY_BRIDGE, '--', 'set', 'Bridge', UNDERLAY_BRIDGE, dp,
          ...(opts.underlayIface ? ['--', '--may-exist', 'add-port', UNDERLAY_BRIDGE, opts.underlayIface] : []),
        ]
      : [];
  return [
    ...underlay,
    '--', '--may-exist', 'add-br', INTEGRATION_BRIDGE, '--', 'set', 'Bridge', INTEGRATION_BRIDGE, dp,
    'fail_mode=secure', 'other_config:disable-in-band=true', 'protocols=OpenFlow10,OpenFlow13,OpenFlow14,OpenFlow15',
  ];
}

/** `ovs-vsctl get-manager` output plus `target`, for set-manager (keeps the managers already there). */
export function managersWith(current: string, target: string): string[] | undefined {
  const have = current.split('\n').map((s) => s.trim()).filter(Boolean);
  return have.includes(target) ? undefined : [...have, target];
}
