/**
 * The per-host setup: what every Tenet host needs before the controller can
 * program it. One implementation for the lab (each lab host is a network
 * namespace) and for a real machine or VM (`tenet host setup`, run by
 * vagrant/provision.sh), so the path the tests cover is the path VMs run:
 *
 *   1. Open vSwitch: the system's daemons, or ovsdb-server + ovs-vswitchd started
 *      here in their own run directory (reused when they already run); the host's
 *      name in Open_vSwitch external_ids; OVSDB on TCP for the controller.
 *   2. br-phy (userspace datapath) holding the underlay NIC, with the underlay IP
 *      moved onto br-phy's own interface; br-int (fail_mode=secure).
 *
 * Every step is idempotent: a second run changes nothing, so a boot-time unit may
 * run it again (the NIC gets its address back from the OS at boot).
 */
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { run, type RunResult } from '../util/exec.js';
import { TenetError, UsageError } from '../util/errors.js';
import { isAlive } from '../util/process.js';
import {
  DEFAULT_OWN_RUNDIR,
  INTEGRATION_BRIDGE,
  SYSTEM_OVS_RUNDIR,
  UNDERLAY_BRIDGE,
  bridgeArgs,
  linkHolding,
  managersWith,
  ovsEnv,
  ovsPaths,
  ovsdbListen,
  parseCidr,
  parseIpAddrLines,
  type DatapathType,
  type OvsPaths,
} from './plan.js';

const OVS_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

/** Which Open vSwitch a host uses: the system's, daemons of our own, or the system's when its socket answers. */
export type OvsMode = 'own' | 'system' | 'auto';

export interface HostSetupOptions {
  /** Host name, as the topology's `hosts[].name` (Open_vSwitch external_ids:hostname). */
  name: string;
  /** Open_vSwitch external_ids:system-id (default: the name). */
  systemId?: string;
  /** The host's network namespace (a lab host's); undefined: this machine's own network stack. */
  namespace?: string;
  /**
   * Default 'auto': 'system' when the system's socket answers, else 'own'; always 'own'
   * for a namespace host (the system's vswitchd cannot see its interfaces). An explicit
   * 'system' with a namespace means daemons already running for that namespace.
   */
  ovs?: OvsMode;
  /** Run directory: 'own' default /run/tenet/host, 'system' default /var/run/openvswitch. */
  runDir?: string;
  /** Where the controller reaches OVSDB: `IP` or `IP:PORT` (port 6640); omitted: unix socket only. */
  ovsdbListen?: string;
  /** Underlay (tunnel endpoint) address with prefix length. */
  underlayIp: string;
  /** The underlay NIC; default: the link that holds `underlayIp` now. */
  underlayIface?: string;
  /** Default netdev (the userspace datapath the lab uses; no kernel module needed). */
  datapathType?: DatapathType;
  onProgress?: (message: string) => void;
}

export interface HostSetupResult extends OvsPaths {
  ovs: 'own' | 'system';
  /** Daemons this call started (empty when they ran already). */
  started: string[];
  /** The topology's `ovsdb` for this host (`tcp:IP:PORT`), when it listens on TCP. */
  ovsdbTarget?: string;
  underlayIface: string | undefined;
  underlayIp: string;
  datapathType: DatapathType;
}

/** Thrown when the host cannot be set up; `context` names the step. */
export class HostSetupError extends TenetError {
  constructor(message: string, context: Record<string, unknown>, cause?: unknown) {
    super('EHOSTSETUP', message, context, cause === undefined ? undefined : { cause });
  }
}

/** `ip` in the host's namespace (or the root namespace). */
function ipCmd(ns: string | undefined, ...args: string[]): Promise<RunResult> {
  return run(['ip', ...(ns ? ['-n', ns] : []), ...args]);
}

/** A program inside the host's namespace (or here). */
function inHost(ns: string | undefined, argv: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return run(ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv, { env });
}

/** `ovs-vsctl` against one instance over its unix socket (from the root namespace: sockets are files). */
export function vsctl(paths: Pick<OvsPaths, 'runDir' | 'ovsdbSocket'>, ...args: string[]): Promise<RunResult> {
  return run(['ovs-vsctl', `--db=unix:${paths.ovsdbSocket}`, '--timeout=30', ...args], { env: ovsEnv(paths.runDir) });
}

/** Whether a unix socket accepts a connection (a running ovsdb-server behind it). */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const sock = createConnection(path);
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

function readLivePid(pidfile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function resolveOvs(opts: Pick<HostSetupOptions, 'ovs' | 'namespace' | 'runDir'>): Promise<{ mode: 'own' | 'system'; paths: OvsPaths }> {
  let mode = opts.ovs ?? 'auto';
  if (mode === 'auto') {
    const systemDir = opts.runDir ?? SYSTEM_OVS_RUNDIR;
    mode = !opts.namespace && (await socketAnswers(ovsPaths(systemDir).ovsdbSocket)) ? 'system' : 'own';
  }
  const runDir = opts.runDir ?? (mode === 'system' ? SYSTEM_OVS_RUNDIR : DEFAULT_OWN_RUNDIR);
  return { mode, paths: ovsPaths(runDir) };
}

/**
 * Starts an instance's ovs-vswitchd (detached, in the host's namespace, with its
 * own run directory). Setup uses it; tests use it to restart a killed vswitchd.
 */
export async function startVswitchd(paths: OvsPaths, namespace?: string): Promise<void> {
  await inHost(
    namespace,
    ['ovs-vswitchd', `unix:${paths.ovsdbSocket}`, `--pidfile=${paths.pidfiles.ovsVswitchd}`, `--log-file=${paths.logs.ovsVswitchd}`, '--detach'],
    ovsEnv(paths.runDir),
  );
}

/** Starts ovsdb-server (database created when missing) unless its pidfile names a live process. */
async function ensureOvsdbServer(paths: OvsPaths, ns: string | undefined, remote: string | undefined): Promise<boolean> {
  if (readLivePid(paths.pidfiles.ovsdbServer) !== undefined) return false;
  mkdirSync(paths.runDir, { recursive: true });
  if (!existsSync(paths.db)) await run(['ovsdb-tool', 'create', paths.db, OVS_SCHEMA]);
  await inHost(
    ns,
    [
      'ovsdb-server', paths.db,
      `--remote=punix:${paths.ovsdbSocket}`,
      ...(remote ? [`--remote=${remote}`] : []),
      '--remote=db:Open_vSwitch,Open_vSwitch,manager_options',
      `--pidfile=${paths.pidfiles.ovsdbServer}`,
      `--log-file=${paths.logs.ovsdbServer}`,
      '--detach',
    ],
    ovsEnv(paths.runDir),
  );
  return true;
}

/** Sets a host up (see the file comment). Safe to run again; returns what the host is now. */
export async function setupHost(opts: HostSetupOptions): Promise<HostSetupResult> {
  const say = opts.onProgress ?? (() => {});
  const ns = opts.namespace;
  const datapathType = opts.datapathType ?? 'netdev';
  const underlay = parseCidr(opts.underlayIp, 'underlay IP');
  const listen = opts.ovsdbListen ? ovsdbListen(opts.ovsdbListen) : undefined;
  const { mode, paths } = await resolveOvs(opts);
  const started: string[] = [];
  // The underlay NIC first: a refused setup starts nothing.
  const holder = linkHolding(parseIpAddrLines((await ipCmd(ns, '-o', '-4', 'addr', 'show')).stdout), underlay.ip);
  const iface = opts.underlayIface ?? (holder && holder.link !== UNDERLAY_BRIDGE ? holder.link : undefined);
  if (!iface && holder?.link !== UNDERLAY_BRIDGE) {
    throw new UsageError(`no interface holds ${underlay.ip}: name the underlay NIC (--underlay-iface)`, { underlayIp: underlay.cidr });
  }
  // Moving the address onto br-phy takes the NIC's routes with it (the kernel drops them with the
  // address): on a machine whose default route or other gateways use that NIC, setup would cut it
  // off (an SSH session included). Refuse before touching anything; a dedicated underlay NIC is the fix.
  if (datapathType === 'netdev' && holder && holder.link !== UNDERLAY_BRIDGE) {
    const routes = (await ipCmd(ns, '-o', '-4', 'route', 'show', 'dev', holder.link)).stdout.split('\n').filter((l) => l.trim() && !/\bscope link\b/.test(l));
    if (routes.length) {
      throw new HostSetupError(
        `${holder.link} carries routes besides its own subnet (${routes.map((r) => r.trim()).join('; ')}): moving ${holder.cidr} to ${UNDERLAY_BRIDGE} would drop them. Give the underlay its own NIC (the Vagrant VMs have one), or move those routes off ${holder.link} first`,
        { step: 'underlay', iface: holder.link, cidr: holder.cidr, routes },
      );
    }
  }

  // 1. Open vSwitch.
  if (mode === 'own') {
    if (await ensureOvsdbServer(paths, ns, listen?.remote)) started.push('ovsdb-server');
  } else if (!(await socketAnswers(paths.ovsdbSocket))) {
    throw new HostSetupError(`the system Open vSwitch does not answer on ${paths.ovsdbSocket} (is openvswitch-switch running?)`, { socket: paths.ovsdbSocket });
  }
  await vsctl(paths, '--no-wait', 'init', '--', 'set', 'Open_vSwitch', '.', `external_ids:system-id=${opts.systemId ?? opts.name}`, `external_ids:hostname=${opts.name}`);
  if (mode === 'own' && readLivePid(paths.pidfiles.ovsVswitchd) === undefined) {
    await startVswitchd(paths, ns);
    started.push('ovs-vswitchd');
  }
  if (mode === 'system' && listen) {
    // The system's ovsdb-server serves the Manager rows (Debian starts it with db:…manager_options).
    const managers = managersWith((await vsctl(paths, 'get-manager')).stdout, listen.remote);
    if (managers) await vsctl(paths, 'set-manager', ...managers);
  }
  say(`${opts.name}: Open vSwitch (${mode}) in ${paths.runDir}${started.length ? `, started ${started.join(', ')}` : ''}`);

  // 2. Bridges and the underlay address.
  // Without --no-wait, ovs-vsctl returns once vswitchd has created the bridges.
  await vsctl(paths, ...bridgeArgs({ datapathType, ...(iface ? { underlayIface: iface } : {}) }));
  if (datapathType === 'netdev') {
    if (iface) {
      await ipCmd(ns, 'link', 'set', iface, 'up');
    }
    // The userspace datapath's native tunnelling routes and ARPs through br-phy's own interface.
    // Onto br-phy first, then off the NIC: a failure in between leaves the address somewhere.
    await ipCmd(ns, 'addr', 'replace', underlay.cidr, 'dev', UNDERLAY_BRIDGE);
    if (holder && holder.link !== UNDERLAY_BRIDGE) await ipCmd(ns, 'addr', 'del', holder.cidr, 'dev', holder.link);
    await ipCmd(ns, 'link', 'set', UNDERLAY_BRIDGE, 'up');
  } else if (!holder && iface) {
    await ipCmd(ns, 'addr', 'replace', underlay.cidr, 'dev', iface);
    await ipCmd(ns, 'link', 'set', iface, 'up');
  }
  await ipCmd(ns, 'link', 'set', INTEGRATION_BRIDGE, 'up');
  say(`${opts.name}: ${INTEGRATION_BRIDGE}${datapathType === 'netdev' ? `, ${UNDERLAY_BRIDGE} (${iface ?? 'its port'}, ${underlay.cidr})` : ` (underlay ${underlay.cidr} on ${iface ?? holder?.link})`}, datapath ${datapathType}`);
  return {
    ...paths,
    ovs: mode,
    started,
    ...(listen ? { ovsdbTarget: listen.target } : {}),
    underlayIface: iface,
    underlayIp: underlay.cidr,
    datapathType,
  };
}

export interface HostTeardownOptions {
  namespace?: string;
  ovs?: OvsMode;
  runDir?: string;
  onProgress?: (message: string) => void;
}

/**
 * Undoes setupHost: the underlay address goes back onto the NIC, br-int and
 * br-phy are deleted, and daemons of our own are stopped (by their pidfiles).
 * The system's daemons keep running. Idempotent.
 */
export async function teardownHost(opts: HostTeardownOptions = {}): Promise<{ removed: string[] }> {
  const say = opts.onProgress ?? (() => {});
  const ns = opts.namespace;
  const { mode, paths } = await resolveOvs(opts);
  const removed: string[] = [];
  if (await socketAnswers(paths.ovsdbSocket)) {
    const ports = (await vsctl(paths, 'list-ports', UNDERLAY_BRIDGE).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
    const addrs = parseIpAddrLines((await ipCmd(ns, '-o', '-4', 'addr', 'show')).stdout).filter((a) => a.link === UNDERLAY_BRIDGE);
    await vsctl(paths, '--if-exists', 'del-br', INTEGRATION_BRIDGE, '--', '--if-exists', 'del-br', UNDERLAY_BRIDGE);
    removed.push(`bridges ${INTEGRATION_BRIDGE}, ${UNDERLAY_BRIDGE}`);
    const nic = ports[0];
    if (nic) {
      for (const a of addrs) await ipCmd(ns, 'addr', 'replace', a.cidr, 'dev', nic);
      if (addrs.length) removed.push(`${addrs.map((a) => a.cidr).join(', ')} back on ${nic}`);
    }
  }
  if (mode === 'own') {
    for (const [name, pidfile] of [['ovs-vswitchd', paths.pidfiles.ovsVswitchd], ['ovsdb-server', paths.pidfiles.ovsdbServer]] as const) {
      const pid = readLivePid(pidfile);
      if (pid === undefined) continue;
      await stopPid(pid);
      removed.push(`${name} (pid ${pid})`);
    }
  }
  say(removed.length ? `removed ${removed.join('; ')}` : 'nothing to remove');
  return { removed };
}

/** SIGTERM (daemons remove their sockets and pidfiles), SIGKILL after 5 s. */
async function stopPid(pid: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* exited meanwhile */
    }
  };
  signal('SIGTERM');
  for (let waited = 0; waited < 5000 && isAlive(pid); waited += 50) await new Promise((r) => setTimeout(r, 50));
  if (isAlive(pid)) signal('SIGKILL');
  for (let waited = 0; waited < 2000 && isAlive(pid); waited += 50) await new Promise((r) => setTimeout(r, 50));
}
