/**
 * The netns runtime driver: each instance is a network namespace plugged into br-int
 * (src/netns: veth, iface-id, MAC/IP/gateway, tx offload off) and, when launched, a
 * process started detached inside it (own session; own PID/mount/UTS namespaces with
 * `unshare` when available), its output appended to `<state-dir>/logs/<id>.log`.
 *
 * Everything needed to find an instance again is in `<state-dir>/instances/<id>.json`
 * (assignment, namespace, pid and its start time): a restarted agent adopts a live
 * process (same pid, same start time, inside the same namespace) instead of starting
 * another. A small `sh` wrapper writes the exit status to `<state-dir>/run/<id>.exit`,
 * so exits of adopted processes (not our children) are known too.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { plugPort, unplugPort, netnsExists } from '../netns/index.js';
import { runSync } from '../util/exec.js';
import { processStartTime } from '../util/process.js';
import { TenetError } from '../util/errors.js';
import type { DriverInstance, RuntimeDriver } from './driver.js';
import { defaultNetnsPrefix, instanceFileName, instanceHostIface, instanceNetns, endpointName } from './naming.js';
import { adoptionDecision, convergePlan, launchArgv, nextQuickExits, portKey, processKey, restartDecision, type RunningInstance } from './plan.js';
import type { AgentAssignment, InstanceState, InstanceStatus } from './types.js';

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, ctx?: Record<string, unknown>) => void;

export interface NetnsDriverOptions {
  host: string;
  stateDir: string;
  /** OVSDB address ovs-vsctl uses to add ports (`unix:/var/run/openvswitch/db.sock`). */
  ovsdb: string;
  /** Environment of ovs-vsctl (a lab host's OVS_RUNDIR). */
  ovsdbEnv?: NodeJS.ProcessEnv;
  /** Namespace where br-int lives (a lab host's); default the agent's own. */
  hostNetns?: string;
  /** Prefix of instance namespaces (default `tn-<host>`). */
  netnsPrefix?: string;
  /** Own PID/mount/UTS namespaces via unshare: 'auto' (default) uses them when unshare works here. */
  isolate?: 'auto' | 'on' | 'off';
  /** Put in every process's environment as TENET_AGENT_SOCKET. */
  socketPath?: string;
  /** How often processes are checked for exits (ms, default 300). */
  pollMs?: number;
  /** Grace between SIGTERM and SIGKILL when stopping (ms, default 5000). */
  stopGraceMs?: number;
  log?: LogFn;
}

/** What is persisted per instance. */
interface InstanceRecord {
  version: 1;
  id: string;
  assignment: AgentAssignment;
  netns: string;
  hostIface: string;
  mac: string;
  portKey: string;
  processKey: string;
  launched: boolean;
  pid?: number;
  /** /proc/<pid>/stat start time: tells our process from a later one that reused the pid. */
  startTime?: string;
  startedAtMs?: number;
  restarts: number;
  quickExits: number;
  state: InstanceState;
  since: string;
  exitCode?: number;
  message?: string;
  logPath: string;
  exitFile: string;
}

export class DriverError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}, cause?: unknown) {
    super('EAGENT_DRIVER', message, context, cause === undefined ? undefined : { cause });
  }
}

export { processStartTime };

/** Whether process `pid` runs inside the named network namespace. */
export function processInNetns(pid: number, netns: string): boolean {
  try {
    const link = readlinkSync(`/proc/${pid}/ns/net`); // net:[4026532...]
    return link === `net:[${statSync(`/run/netns/${netns}`).ino}]`;
  } catch {
    return false;
  }
}

/**
 * The processes of an instance: those in its namespace whose session is the instance's
 * (its process is started with setsid, so its pid is the session id). The agent's health
 * checks also run inside the namespace (`ip netns exec`), briefly and in the agent's
 * session: `ip netns pids` alone would count them.
 */
export function instanceProcesses(netns: string, leaderPid: number): number[] {
  const r = runSync(['ip', 'netns', 'pids', netns], { allowFailure: true });
  if (r.code !== 0) return [];
  const session = (p: number) => {
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[3]);
    } catch {
      return -1;
    }
  };
  return r.stdout.split('\n').map(Number).filter((p) => Number.isInteger(p) && p > 0 && session(p) === leaderPid).sort((a, b) => a - b);
}

let unshareWorks: boolean | undefined;
/** Whether `unshare --pid --fork --mount-proc --uts` works on this machine (checked once). */
export function unshareAvailable(): boolean {
  unshareWorks ??= runSync(['unshare', '--pid', '--fork', '--kill-child', '--mount-proc', '--uts', 'true'], { allowFailure: true, timeoutMs: 5000 }).code === 0;
  return unshareWorks;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class NetnsDriver implements RuntimeDriver {
  readonly name = 'netns';
  private readonly records = new Map<string, InstanceRecord>();
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  private readonly listeners: Array<(id: string) => void> = [];
  private readonly prefix: string;
  private readonly isolate: boolean;
  private readonly log: LogFn;
  private queue: Promise<unknown> = Promise.resolve();
  private poller: NodeJS.Timeout | undefined;
  private closed = false;
  /** close() was called: a converge in progress makes nothing more. */
  private stopping = false;

  constructor(private readonly opts: NetnsDriverOptions) {
    this.prefix = opts.netnsPrefix ?? defaultNetnsPrefix(opts.host);
    this.isolate = opts.isolate === 'on' || (opts.isolate !== 'off' && unshareAvailable());
    this.log = opts.log ?? (() => {});
    for (const d of ['instances', 'logs', 'run']) mkdirSync(join(opts.stateDir, d), { recursive: true });
    this.poller = setInterval(() => void this.serial(() => this.poll()), opts.pollMs ?? 300);
    this.poller.unref();
  }

  /** Runs `fn` after every earlier operation: converge, restarts and stops never interleave. */
  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  onChange(listener: (id: string) => void): void {
    this.listeners.push(listener);
  }

  private changed(rec: InstanceRecord): void {
    this.persist(rec);
    this.notify(rec.id);
  }

  /** Tells the listeners; one that throws is logged and does not stop the others (or the caller). */
  private notify(id: string): void {
    for (const l of this.listeners) {
      try {
        l(id);
      } catch (err) {
        this.log('warn', 'driver change listener failed', { error: (err as Error).message });
      }
    }
  }

  private recordPath(id: string): string {
    return join(this.opts.stateDir, 'instances', `${instanceFileName(id)}.json`);
  }

  private persist(rec: InstanceRecord): void {
    if (!this.records.has(rec.id)) return; // removed meanwhile
    const path = this.recordPath(rec.id);
    // A failed write (disk full) is logged, not thrown: it must not stop a poll pass from
    // handling the other instances' exits. The record is written again at the next change.
    try {
      writeFileSync(`${path}.tmp`, JSON.stringify(rec, null, 2) + '\n');
      renameSync(`${path}.tmp`, path);
    } catch (err) {
      this.log('warn', `instance ${rec.id}: record not written (a restarted agent may not adopt it)`, { path, error: (err as Error).message });
    }
  }

  private setState(rec: InstanceRecord, state: InstanceState, message?: string): void {
    if (rec.state !== state) rec.since = new Date().toISOString();
    rec.state = state;
    if (message === undefined) delete rec.message;
    else rec.message = message;
  }

  private statusOf(rec: InstanceRecord): InstanceStatus {
    return {
      id: rec.id,
      unit: rec.assignment.unit,
      endpoint: rec.assignment.endpoint.id,
      state: rec.state,
      ...(rec.pid !== undefined ? { pid: rec.pid } : {}),
      restarts: rec.restarts,
      ...(rec.exitCode !== undefined ? { exitCode: rec.exitCode } : {}),
      since: rec.since,
      ...(rec.message !== undefined ? { message: rec.message } : {}),
      logPath: rec.logPath,
    };
  }

  private view(rec: InstanceRecord): DriverInstance {
    return { status: this.statusOf(rec), assignment: rec.assignment, netns: rec.netns };
  }

  list(): DriverInstance[] {
    return [...this.records.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((r) => this.view(r));
  }

  /** The alive check of a recorded process: same pid and same start time. */
  private alive(rec: InstanceRecord): boolean {
    return rec.pid !== undefined && rec.startTime !== undefined && processStartTime(rec.pid) === rec.startTime;
  }

  recover(): Promise<DriverInstance[]> {
    return this.serial(async () => {
      const dir = join(this.opts.stateDir, 'instances');
      for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
        let rec: InstanceRecord;
        try {
          rec = JSON.parse(readFileSync(join(dir, f), 'utf8')) as InstanceRecord;
        } catch (err) {
          this.log('warn', `unreadable instance record ${f}: ignored`, { error: (err as Error).message });
          continue;
        }
        const hadProcess = rec.launched && rec.pid !== undefined;
        const alive = hadProcess && this.alive(rec);
        const decision = adoptionDecision(hadProcess, {
          netnsExists: netnsExists(rec.netns),
          processAlive: alive,
          processInNetns: alive && processInNetns(rec.pid!, rec.netns),
        });
        if (decision === 'discard') {
          this.log('info', `instance ${rec.id}: nothing to adopt (namespace gone or pid reused), removing what is left`, { netns: rec.netns });
          this.unplug(rec);
          rmSync(join(dir, f), { force: true });
          continue;
        }
        this.records.set(rec.id, rec);
        if (decision === 'adopt') {
          this.log('info', `instance ${rec.id}: adopted${rec.pid !== undefined ? ` (pid ${rec.pid})` : ''}`, { netns: rec.netns });
          if (rec.launched && rec.state !== 'running' && rec.pid !== undefined) this.setState(rec, 'running');
          this.changed(rec);
          // A restart that was pending when the agent stopped (not an instance its policy left exited or failed).
          if (rec.launched && rec.pid === undefined && rec.state === 'starting') this.scheduleRestart(rec, 0);
        } else {
          this.log('info', `instance ${rec.id}: adopted its namespace; its process exited while no agent watched`, { netns: rec.netns });
          this.onExit(rec);
        }
      }
      return this.list();
    });
  }

  converge(assignments: readonly AgentAssignment[]): Promise<void> {
    return this.serial(async () => {
      const current = new Map<string, RunningInstance>();
      for (const r of this.records.values()) current.set(r.id, { portKey: r.portKey, processKey: r.processKey, launched: r.launched });
      const byId = new Map(assignments.map((a) => [a.id, a]));
      for (const step of convergePlan(current, assignments)) {
        if (this.stopping) break; // closing: make nothing new
        try {
          await this.applyStep(step.op, step.id, byId.get(step.id));
        } catch (err) {
          // One instance failing (a bad address, OVSDB away) must not block the others.
          this.log('error', `instance ${step.id}: ${step.op} failed: ${(err as Error).message}`);
        }
      }
    });
  }

  start(a: AgentAssignment): Promise<DriverInstance> {
    return this.serial(async () => {
      const rec = this.records.get(a.id);
      const cur = rec ? new Map([[a.id, { portKey: rec.portKey, processKey: rec.processKey, launched: rec.launched }]]) : new Map<string, RunningInstance>();
      const [step] = convergePlan(cur, [a]);
      await this.applyStep(step!.op, a.id, a);
      return this.view(this.records.get(a.id)!);
    });
  }

  stop(id: string): Promise<void> {
    return this.serial(() => this.remove(id));
  }

  private async applyStep(op: string, id: string, a: AgentAssignment | undefined): Promise<void> {
    const rec = this.records.get(id);
    switch (op) {
      case 'remove':
        return this.remove(id);
      case 'create':
        return this.create(a!);
      case 'recreate':
        await this.remove(id);
        return this.create(a!);
      case 'restart-process':
        await this.stopProcess(rec!, 'stopped', 'command or environment changed');
        Object.assign(rec!, { assignment: a!, processKey: processKey(a!), launched: true, restarts: 0, quickExits: 0 });
        this.spawnProcess(rec!);
        return;
      case 'start-process':
        Object.assign(rec!, { assignment: a!, processKey: processKey(a!), launched: true, quickExits: 0 });
        this.spawnProcess(rec!);
        return;
      case 'stop-process':
        rec!.assignment = a!;
        await this.stopProcess(rec!, 'stopped', 'desired state loaded');
        return;
      default: // update: restart policy, services
        if (JSON.stringify(rec!.assignment) !== JSON.stringify(a)) {
          rec!.assignment = a!;
          this.persist(rec!);
        }
    }
  }

  private async create(a: AgentAssignment): Promise<void> {
    const netns = instanceNetns(this.prefix, a.id);
    const hostIface = instanceHostIface(a.id);
    const file = instanceFileName(a.id);
    if (netnsExists(netns)) {
      // Left by a run whose record is gone: ours by name, so replace it.
      this.log('warn', `instance ${a.id}: namespace ${netns} exists without a record; removing it first`);
      this.unplug({ netns, hostIface });
    }
    const port = await plugPort({
      namespace: netns,
      hostIface,
      ...(this.opts.hostNetns ? { hostNamespace: this.opts.hostNetns } : {}),
      ovsdb: this.opts.ovsdb,
      ...(this.opts.ovsdbEnv ? { env: this.opts.ovsdbEnv } : {}),
      ...(a.endpoint.ip ? { ip: a.endpoint.ip } : {}),
      ...(a.endpoint.ip6 ? { ip6: a.endpoint.ip6 } : {}),
      mac: a.endpoint.mac,
      ...(a.endpoint.gateway ? { gateway: a.endpoint.gateway } : {}),
      ifaceId: a.endpoint.id,
      externalIds: { 'tenet-instance': a.id },
    }, { ofport: false });
    const rec: InstanceRecord = {
      version: 1,
      id: a.id,
      assignment: a,
      netns,
      hostIface,
      mac: port.mac,
      portKey: portKey(a),
      processKey: processKey(a),
      launched: a.desiredState === 'launched',
      restarts: 0,
      quickExits: 0,
      state: 'stopped',
      since: new Date().toISOString(),
      logPath: join(this.opts.stateDir, 'logs', `${file}.log`),
      exitFile: join(this.opts.stateDir, 'run', `${file}.exit`),
    };
    this.records.set(a.id, rec);
    this.log('info', `instance ${a.id}: port ${hostIface} in ${netns} (${a.endpoint.ip ?? a.endpoint.ip6 ?? 'no address'}, ${port.mac}, iface-id ${a.endpoint.id})`);
    if (rec.launched) this.spawnProcess(rec);
    else {
      this.setState(rec, 'stopped', 'loaded: port only, no process');
      this.changed(rec);
    }
  }

  private async remove(id: string): Promise<void> {
    const rec = this.records.get(id);
    if (!rec) return;
    await this.stopProcess(rec, 'stopped');
    this.unplug(rec);
    this.records.delete(id);
    rmSync(this.recordPath(id), { force: true });
    rmSync(rec.exitFile, { force: true });
    this.log('info', `instance ${id}: removed (namespace ${rec.netns}, port ${rec.hostIface})`);
    this.notify(id);
  }

  private unplug(r: Pick<InstanceRecord, 'netns' | 'hostIface'>): void {
    unplugPort({ namespace: r.netns, hostIface: r.hostIface, ovsdb: this.opts.ovsdb, ...(this.opts.ovsdbEnv ? { env: this.opts.ovsdbEnv } : {}) });
  }

  private processEnv(a: AgentAssignment): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: '/root',
      ...a.env,
      TENET_INSTANCE_ID: a.id,
      TENET_UNIT: a.unit,
      TENET_TENANT: a.tenant,
      TENET_ENDPOINT: a.endpoint.id,
      ...(a.endpoint.ip ? { TENET_IP: a.endpoint.ip.split('/')[0]! } : {}),
      ...(this.opts.socketPath ? { TENET_AGENT_SOCKET: this.opts.socketPath } : {}),
    };
  }

  private spawnProcess(rec: InstanceRecord): void {
    const a = rec.assignment;
    rmSync(rec.exitFile, { force: true });
    const argv = launchArgv({ netns: rec.netns, command: a.command, exitFile: rec.exitFile, isolate: this.isolate, hostname: endpointName(a.id) });
    const fd = openSync(rec.logPath, 'a');
    try {
      writeSync(fd, `--- tenet agent: starting ${a.id} (restart ${rec.restarts}) at ${new Date().toISOString()}\n`);
      const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: this.processEnv(a) });
      child.unref();
      child.once('error', (err) => {
        // Only when the program itself cannot start (ip missing): poll sees no process.
        this.log('error', `instance ${a.id}: cannot start: ${err.message}`);
      });
      // Our own child: no need to wait for the next poll to see it exit.
      child.once('exit', () => void this.serial(() => this.poll()));
      const pid = child.pid;
      if (pid === undefined) {
        this.setState(rec, 'failed', 'could not start the process');
        delete rec.pid;
        delete rec.startTime;
        this.changed(rec);
        return;
      }
      rec.pid = pid;
      const st = processStartTime(pid);
      if (st !== undefined) rec.startTime = st;
      rec.startedAtMs = Date.now();
      delete rec.exitCode;
      this.setState(rec, 'running');
      this.log('info', `instance ${a.id}: started pid ${pid}${rec.restarts ? ` (restart ${rec.restarts})` : ''}`);
      this.changed(rec);
    } finally {
      closeSync(fd);
    }
  }

  private readExitCode(rec: InstanceRecord): number | undefined {
    try {
      const n = Number(readFileSync(rec.exitFile, 'utf8').trim());
      return Number.isInteger(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }

  private poll(): void {
    if (this.closed) return;
    for (const rec of this.records.values()) {
      if (rec.launched && rec.pid !== undefined && !this.alive(rec)) this.onExit(rec);
    }
  }

  /** The recorded process is gone: record how it ended, then let the restart policy decide. */
  private onExit(rec: InstanceRecord): void {
    const code = this.readExitCode(rec);
    const uptime = rec.startedAtMs !== undefined ? Date.now() - rec.startedAtMs : 0;
    rec.quickExits = nextQuickExits(rec.quickExits, uptime);
    delete rec.pid;
    delete rec.startTime;
    if (code !== undefined) rec.exitCode = code;
    else delete rec.exitCode;
    const how = code === undefined ? 'was killed (no exit status)' : `exited with status ${code}`;
    const d = restartDecision(rec.assignment.restart, code, rec.quickExits);
    if (d.restart) {
      this.setState(rec, 'starting', `${how}; restarting in ${d.delayMs} ms (policy ${rec.assignment.restart})`);
      this.log('info', `instance ${rec.id}: ${how}; restart in ${d.delayMs} ms`);
      this.changed(rec);
      this.scheduleRestart(rec, d.delayMs);
    } else {
      this.setState(rec, d.state, `${how} (policy ${rec.assignment.restart})`);
      this.log('info', `instance ${rec.id}: ${how}; not restarted (policy ${rec.assignment.restart})`);
      this.changed(rec);
    }
  }

  private scheduleRestart(rec: InstanceRecord, delayMs: number): void {
    clearTimeout(this.restartTimers.get(rec.id));
    const timer = setTimeout(() => {
      this.restartTimers.delete(rec.id);
      void this.serial(() => {
        const cur = this.records.get(rec.id);
        if (this.closed || cur !== rec || !rec.launched || rec.pid !== undefined) return;
        rec.restarts++;
        this.spawnProcess(rec);
      });
    }, delayMs);
    timer.unref();
    this.restartTimers.set(rec.id, timer);
  }

  /** SIGTERM to the process group, SIGKILL after the grace; the port stays. */
  private async stopProcess(rec: InstanceRecord, state: InstanceState, message?: string): Promise<void> {
    clearTimeout(this.restartTimers.get(rec.id));
    this.restartTimers.delete(rec.id);
    rec.launched = false;
    const pid = rec.pid;
    if (pid !== undefined && this.alive(rec)) {
      signalGroup(pid, 'SIGTERM');
      const deadline = Date.now() + (this.opts.stopGraceMs ?? 5000);
      while (Date.now() < deadline && this.alive(rec)) await sleep(50);
      if (this.alive(rec)) {
        this.log('warn', `instance ${rec.id}: pid ${pid} ignored SIGTERM, killing it`);
        signalGroup(pid, 'SIGKILL');
        const killDeadline = Date.now() + 2000;
        while (Date.now() < killDeadline && this.alive(rec)) await sleep(20);
      }
    }
    const code = this.readExitCode(rec);
    if (code !== undefined) rec.exitCode = code;
    delete rec.pid;
    delete rec.startTime;
    this.setState(rec, state, message);
    this.changed(rec);
  }

  async logs(id: string, tail = 100): Promise<string> {
    const rec = this.records.get(id);
    const path = rec?.logPath ?? join(this.opts.stateDir, 'logs', `${instanceFileName(id)}.log`);
    if (!existsSync(path)) throw new DriverError(`no logs for instance '${id}' on host ${this.opts.host}`, { id });
    const lines = readFileSync(path, 'utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-Math.max(0, tail)).join('\n') + (lines.length ? '\n' : '');
  }

  async close(opts: { stopInstances?: boolean } = {}): Promise<void> {
    this.stopping = true;
    await this.serial(async () => {
      if (this.closed) return;
      if (opts.stopInstances) for (const id of [...this.records.keys()]) await this.remove(id);
      this.closed = true;
      clearInterval(this.poller);
      for (const t of this.restartTimers.values()) clearTimeout(t);
      this.restartTimers.clear();
    });
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, sig);
    } catch {
      /* gone, or not a group leader */
    }
  }
}
