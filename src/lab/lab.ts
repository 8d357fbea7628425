/**
 * The lab: one Linux machine turned into several Open vSwitch hosts.
 *
 *   root namespace:  <prefix>-mgmt bridge (198.18.<k>.1/24) ── veth ──┐
 *   <prefix>-hostN:  mgmt0 (198.18.<k>.1N), ovsdb-server, ovs-vswitchd,│
 *                    br-phy (203.0.113.1N, holds phy0), br-int        │
 *   <prefix>-fabric: Linux bridge `fabric` joining every host's phy0 ──┘
 *
 * `up` records every step in the state file before moving on, and `down`
 * removes what the state file and the naming rules say exists, so a crash
 * anywhere in `up` can be cleaned up.
 */
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, runSync, type RunResult } from '../util/exec.js';
import { TenetError, UsageError } from '../util/errors.js';
import {
  HOST_MGMT_IFACE,
  HOST_UNDERLAY_IFACE,
  MAX_HOSTS,
  MAX_LABS,
  OVSDB_TCP_PORT,
  UNDERLAY_PREFIX_LEN,
  checkPrefix,
  fabricNamespace,
  fabricPort,
  hostName,
  hostNamespace,
  mgmtBridge,
  mgmtSubnet,
  mgmtVethRoot,
  underlayIp,
} from './naming.js';
import { labDir, labRoot, readState, writeState, type LabHost, type LabState } from './state.js';
import { isAlive, processStartTime } from '../util/process.js';
import { ovsEnv, ovsPaths, setupHost, startVswitchd as startHostVswitchd } from '../host/index.js';

export type Progress = (message: string) => void;

export interface LabUpOptions {
  name: string;
  hosts: number;
  onProgress?: Progress;
}

const FABRIC_BRIDGE = 'fabric';

/** Thrown when `up` fails part-way; the lab has already been torn down again. */
export class LabUpError extends TenetError {
  constructor(name: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super('ELABUP', `lab '${name}' could not be created (cleaned up again): ${why}`, { name }, { cause });
  }
}

export function requireRoot(what = 'the lab'): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UsageError(`${what} must run as root (network namespaces and Open vSwitch need it)`);
  }
}

/** Environment that makes plain `ovs-vsctl`, `ovs-ofctl br-int` and `ovs-appctl` address one lab host. */
export function hostEnv(host: Pick<LabHost, 'runDir'>): NodeJS.ProcessEnv {
  return ovsEnv(host.runDir);
}

/** `ovs-vsctl` against one lab host's database (runs in the root namespace over the unix socket). */
export function hostVsctl(host: Pick<LabHost, 'runDir' | 'ovsdbSocket'>, ...args: string[]): Promise<RunResult> {
  return run(['ovs-vsctl', `--db=unix:${host.ovsdbSocket}`, '--timeout=30', ...args], { env: hostEnv(host) });
}

const indexDir = (): string => join(labRoot(), '.index');

/**
 * Claims the lowest free management-subnet slot by creating `.index/<k>`
 * exclusively; a slot whose lab no longer exists is stale and reclaimed.
 */
function claimIndex(name: string): number {
  mkdirSync(indexDir(), { recursive: true });
  for (let k = 0; k < MAX_LABS; k++) {
    const path = join(indexDir(), String(k));
    for (let attempt = 0; attempt < 2; attempt++) {
      // The slot file appears with its owner's name in it (link of a written temp file):
      // an empty file seen by a concurrent claimant would look stale and be stolen.
      const tmp = join(indexDir(), `.${name}.${process.pid}.tmp`);
      writeFileSync(tmp, name);
      try {
        linkSync(tmp, path);
        return k;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        let owner = '';
        try {
          owner = readFileSync(path, 'utf8');
        } catch {
          continue; // released meanwhile: try again
        }
        if (owner && existsSync(labDir(owner))) break; // in use
        try {
          unlinkSync(path);
        } catch {
          /* someone else reclaimed it first */
        }
      } finally {
        rmSync(tmp, { force: true });
      }
    }
  }
  throw new TenetError('ELABFULL', `no free lab slot: ${MAX_LABS} labs exist already`);
}

function releaseIndex(name: string, k: number): void {
  const path = join(indexDir(), String(k));
  try {
    if (readFileSync(path, 'utf8') === name) unlinkSync(path);
  } catch {
    /* already gone */
  }
}

function makeHostRecord(state: LabState, index: number): LabHost {
  const name = hostName(index);
  const paths = ovsPaths(join(state.dir, name));
  const mgmtIp = mgmtSubnet(state.index).host(index);
  return {
    name,
    index,
    namespace: hostNamespace(state.name, name),
    runDir: paths.runDir,
    ovsdbSocket: paths.ovsdbSocket,
    ovsdbTcp: `tcp:${mgmtIp}:${OVSDB_TCP_PORT}`,
    mgmtIp,
    underlayIp: underlayIp(index),
    brIntMgmt: paths.brIntMgmt,
    pidfiles: paths.pidfiles,
    logs: paths.logs,
  };
}

/** Brings a lab up. On any failure everything made so far is removed and LabUpError thrown. */
export async function labUp(opts: LabUpOptions): Promise<LabState> {
  requireRoot();
  const name = checkPrefix(opts.name);
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > MAX_HOSTS) {
    throw new UsageError(`--hosts must be an integer from 1 to ${MAX_HOSTS}, got ${opts.hosts}`);
  }
  const say = opts.onProgress ?? (() => {});
  const dir = labDir(name);
  mkdirSync(labRoot(), { recursive: true });
  try {
    mkdirSync(dir); // atomic: the lab name is ours from here on
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`lab '${name}' already exists (state in ${dir}); remove it with: tenet lab down --name ${name}`);
    }
    throw err;
  }
  for (const ns of [fabricNamespace(name), hostNamespace(name, hostName(1))]) {
    if (namespaceExists(ns)) {
      rmSync(dir, { recursive: true, force: true });
      throw new UsageError(`network namespace '${ns}' already exists; remove it with: tenet lab down --name ${name}`);
    }
  }

  let index: number;
  try {
    index = claimIndex(name);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const subnet = mgmtSubnet(index);
  const state: LabState = {
    version: 1,
    name,
    index,
    status: 'creating',
    createdAt: new Date().toISOString(),
    dir,
    mgmt: { bridge: mgmtBridge(name), cidr: subnet.cidr, gateway: subnet.gateway },
    fabric: { namespace: fabricNamespace(name), bridge: FABRIC_BRIDGE, cidr: `203.0.113.0/${UNDERLAY_PREFIX_LEN}` },
    hosts: [],
    containers: [],
  };
  writeState(state);

  try {
    await raiseNeighbourLimits();
    say(`creating management bridge ${state.mgmt.bridge} (${subnet.gateway}/24) and fabric namespace`);
    await ip('link', 'add', state.mgmt.bridge, 'type', 'bridge');
    await ip('addr', 'add', `${subnet.gateway}/24`, 'dev', state.mgmt.bridge);
    await ip('link', 'set', state.mgmt.bridge, 'up');
    await ip('netns', 'add', state.fabric.namespace);
    await ipIn(state.fabric.namespace, 'link', 'add', FABRIC_BRIDGE, 'type', 'bridge');
    await ipIn(state.fabric.namespace, 'link', 'set', FABRIC_BRIDGE, 'up');

    for (let i = 1; i <= opts.hosts; i++) {
      const host = makeHostRecord(state, i);
      state.hosts.push(host);
      writeState(state); // recorded before it exists, so down finds a half-made host
      say(`host ${host.name}: namespace ${host.namespace}, mgmt ${host.mgmtIp}, underlay ${host.underlayIp}`);
      await createHost(state, host);
    }
    state.status = 'ready';
    writeState(state);
    say(`lab '${name}' is up: ${opts.hosts} host(s); state in ${join(dir, 'lab.json')}`);
    return state;
  } catch (err) {
    say(`lab '${name}': setup failed, cleaning up`);
    labDown(name);
    throw new LabUpError(name, err);
  }
}

async function createHost(state: LabState, host: LabHost): Promise<void> {
  const ns = host.namespace;
  const rootVeth = mgmtVethRoot(state.name, host.index);
  mkdirSync(host.runDir, { recursive: true });
  await ip('netns', 'add', ns);
  await ipIn(ns, 'link', 'set', 'lo', 'up');
  // Management link: root end on the mgmt bridge, host end `mgmt0`.
  await ip('link', 'add', rootVeth, 'type', 'veth', 'peer', 'name', HOST_MGMT_IFACE, 'netns', ns);
  await ip('link', 'set', rootVeth, 'master', state.mgmt.bridge, 'up');
  await ipIn(ns, 'addr', 'add', `${host.mgmtIp}/24`, 'dev', HOST_MGMT_IFACE);
  await ipIn(ns, 'link', 'set', HOST_MGMT_IFACE, 'up');
  // Underlay link: fabric end on the fabric bridge, host end `phy0` (added to br-phy below).
  await ipIn(state.fabric.namespace, 'link', 'add', fabricPort(host.index), 'type', 'veth', 'peer', 'name', HOST_UNDERLAY_IFACE, 'netns', ns);
  await ipIn(state.fabric.namespace, 'link', 'set', fabricPort(host.index), 'master', FABRIC_BRIDGE, 'up');
  await ipIn(ns, 'link', 'set', HOST_UNDERLAY_IFACE, 'up');

  // Open vSwitch, br-phy with the underlay address, br-int: the same per-host setup
  // a real machine runs (`tenet host setup`, vagrant/provision.sh).
  await setupHost({
    name: host.name,
    systemId: `${state.name}-${host.name}`,
    namespace: ns,
    ovs: 'own',
    runDir: host.runDir,
    ovsdbListen: `${host.mgmtIp}:${OVSDB_TCP_PORT}`,
    underlayIp: `${host.underlayIp}/${UNDERLAY_PREFIX_LEN}`,
    underlayIface: HOST_UNDERLAY_IFACE,
    datapathType: 'netdev',
  });
}

/**
 * Starts a lab host's ovs-vswitchd (detached, in the host's namespace, with its
 * own run directory). Tests use it to restart a killed vswitchd.
 */
export async function startVswitchd(host: LabHost): Promise<void> {
  await startHostVswitchd(ovsPaths(host.runDir), host.namespace);
}

/**
 * Removes a lab: processes (by pid: pidfiles, then whatever still runs in the
 * lab's namespaces), namespaces, root-namespace links, run directory, subnet
 * slot. Idempotent, synchronous (usable from exit and signal handlers), and
 * works from the naming rules when the state file is missing or partial.
 * Returns what it removed, for progress output.
 */
export function labDown(nameArg: string): string[] {
  requireRoot();
  const name = checkPrefix(nameArg);
  const removed: string[] = [];
  const state = readState(name);
  const dir = labDir(name);

  // 0. Host agents first (recorded pid, same start time): alive, they would restart the
  // units' processes killed below. Before the namespaces are listed: an agent stopping
  // may finish plumbing an instance namespace.
  const agentPids = (state?.agents ?? []).filter((a) => isAlive(a.pid) && (a.startTime === undefined || processStartTime(a.pid) === a.startTime)).map((a) => a.pid);
  const agentsStopped = stopPids(agentPids);
  if (agentsStopped > 0) removed.push(`${agentsStopped} agent(s)`);

  const namespaces = new Set<string>();
  for (const c of state?.containers ?? []) namespaces.add(c.namespace);
  for (const h of state?.hosts ?? []) namespaces.add(h.namespace);
  // Also whatever follows the naming rules: a crash may have left a namespace
  // that never reached the state file.
  for (const ns of listNamespaces()) if (ns.startsWith(`${name}-`)) namespaces.add(ns);

  // 1. OVS daemons, by their pidfiles (SIGTERM lets them remove their sockets).
  const pidfiles = (state?.hosts ?? []).flatMap((h) => [h.pidfiles.ovsVswitchd, h.pidfiles.ovsdbServer]);
  const pids = pidfiles.map(readPid).filter((p): p is number => p !== undefined);
  // 2. Anything else still running inside the lab's namespaces (containers' processes).
  for (const ns of namespaces) pids.push(...namespacePids(ns));
  const killed = stopPids([...new Set(pids)]);
  if (killed > 0) removed.push(`${killed} process(es)`);

  // 3. Namespaces: containers first, then hosts, then the fabric (veths go with them).
  const ordered = [...namespaces].sort((a, b) => rank(a, name) - rank(b, name));
  for (const ns of ordered) {
    if (runSync(['ip', 'netns', 'delete', ns], { allowFailure: true }).code === 0) removed.push(`namespace ${ns}`);
  }
  // 4. Root-namespace links: the mgmt bridge and any veth end left behind.
  for (const link of listLinks()) {
    if (link === mgmtBridge(name) || new RegExp(`^${name}-m\\d+$`).test(link)) {
      if (runSync(['ip', 'link', 'delete', link], { allowFailure: true }).code === 0) removed.push(`link ${link}`);
    }
  }
  // 5. Files and the subnet slot.
  if (existsSync(dir)) {
    rmSync(dir, { recursive: true, force: true });
    removed.push(`directory ${dir}`);
  }
  if (state) releaseIndex(name, state.index);
  else releaseStaleIndexes(name);
  return removed;
}

function rank(ns: string, prefix: string): number {
  if (ns.startsWith(`${prefix}-c-`)) return 0;
  if (ns === fabricNamespace(prefix)) return 2;
  return 1;
}

function releaseStaleIndexes(name: string): void {
  for (let k = 0; k < MAX_LABS; k++) releaseIndex(name, k);
}

export function namespaceExists(ns: string): boolean {
  return existsSync(join('/run/netns', ns));
}

export function listNamespaces(): string[] {
  const out = runSync(['ip', 'netns', 'list'], { allowFailure: true }).stdout;
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

function listLinks(): string[] {
  const out = runSync(['ip', '-o', 'link', 'show'], { allowFailure: true }).stdout;
  return out
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter(Boolean);
}

export function namespacePids(ns: string): number[] {
  const r = runSync(['ip', 'netns', 'pids', ns], { allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

export function readPid(pidfile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export { isAlive };

/** SIGTERM, wait up to 3 s, then SIGKILL what is left. Returns how many were running. */
function stopPids(pids: number[]): number {
  const alive = pids.filter(isAlive);
  for (const pid of alive) signal(pid, 'SIGCONT'); // a stopped process cannot act on SIGTERM
  for (const pid of alive) signal(pid, 'SIGTERM');
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && alive.some(isAlive)) sleepSync(20);
  for (const pid of alive) if (isAlive(pid)) signal(pid, 'SIGKILL');
  const killDeadline = Date.now() + 2000;
  while (Date.now() < killDeadline && alive.some(isAlive)) sleepSync(20);
  return alive.length;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* exited meanwhile */
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The kernel's neighbour tables are shared by all namespaces; a lab with many containers overflows the defaults. */
async function raiseNeighbourLimits(): Promise<void> {
  const limits: Array<[string, number]> = [
    ['gc_thresh1', 4096],
    ['gc_thresh2', 16384],
    ['gc_thresh3', 32768],
  ];
  for (const family of ['ipv4', 'ipv6']) {
    for (const [key, want] of limits) {
      const path = `/proc/sys/net/${family}/neigh/default/${key}`;
      try {
        if (Number(readFileSync(path, 'utf8')) < want) await run(['sysctl', '-q', '-w', `net.${family}.neigh.default.${key}=${want}`]);
      } catch {
        /* not fatal: only labs with hundreds of containers need it */
      }
    }
  }
}

export function ip(...args: string[]): Promise<RunResult> {
  return run(['ip', ...args]);
}

export function ipIn(ns: string, ...args: string[]): Promise<RunResult> {
  return run(['ip', '-n', ns, ...args]);
}
