/**
 * Integration-test fixture: `await withLab(t, { hosts: 2 }, async (lab) => ...)`
 * builds a lab with a unique prefix and removes it afterwards, also when the
 * test throws, times out, or the test process is killed by a signal.
 */
import type { Test } from 'tap';
import {
  addContainer,
  execIn,
  findHost,
  hostEnv,
  hostVsctl,
  labDown,
  labUp,
  loadLab,
  ping,
  readPid,
  tcpExchange,
  type ContainerSpec,
  type LabContainer,
  type LabHost,
  type LabState,
  type PingResult,
  type TcpResult,
} from '../../src/lab/index.js';
import { run, type RunOptions, type RunResult } from '../../src/util/exec.js';

export interface TestLab {
  readonly name: string;
  /** Fresh copy of the state file (containers added since are included). */
  readonly state: LabState;
  readonly hosts: LabHost[];
  host(name: string): LabHost;
  addContainer(host: string, name: string, spec: ContainerSpec): Promise<LabContainer>;
  container(name: string): LabContainer;
  exec(target: string, argv: string[], opts?: RunOptions): Promise<RunResult>;
  vsctl(host: string, ...args: string[]): Promise<RunResult>;
  /** `ovs-ofctl -O OpenFlow13 ARGS`; name the bridge as `br-int` (resolved through the host's OVS_RUNDIR). */
  ofctl(host: string, ...args: string[]): Promise<RunResult>;
  appctl(host: string, ...args: string[]): Promise<RunResult>;
  ping(from: string, ip: string, opts?: { count?: number; timeoutS?: number }): Promise<PingResult>;
  /** TCP exchange from container `from` to container `to` on `port`. */
  tcpCheck(from: string, to: string, port: number): Promise<TcpResult>;
  pids(host: string): { ovsdbServer: number | undefined; ovsVswitchd: number | undefined };
}

let counter = 0;
const live = new Set<string>();

/** Unique per process and call: 't' + pid in base 36 + counter (at most 8 characters). */
export function uniqueLabName(): string {
  const name = `t${process.pid.toString(36)}${(counter++).toString(36)}`;
  if (name.length > 8) return `t${(Date.now() % 36 ** 6).toString(36)}${counter % 10}`;
  return name;
}

function cleanupAll(): void {
  for (const name of live) {
    try {
      labDown(name);
    } catch {
      /* best effort on the way out */
    }
    live.delete(name);
  }
}

let handlersInstalled = false;
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.once('exit', cleanupAll);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanupAll();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15));
    });
  }
}

export async function withLab<T>(t: Test, opts: { hosts: number; name?: string }, fn: (lab: TestLab) => Promise<T>): Promise<T> {
  installHandlers();
  const name = opts.name ?? uniqueLabName();
  live.add(name);
  const down = () => {
    if (!live.has(name)) return;
    live.delete(name);
    labDown(name);
  };
  t.teardown(down);
  try {
    await labUp({ name, hosts: opts.hosts });
    return await fn(makeTestLab(name));
  } finally {
    down();
  }
}

export function makeTestLab(name: string): TestLab {
  const current = () => loadLab(name);
  const hostRun = (host: string, argv: string[]) => run(argv, { env: hostEnv(findHost(current(), host)) });
  return {
    name,
    get state() {
      return current();
    },
    get hosts() {
      return current().hosts;
    },
    host: (h) => findHost(current(), h),
    addContainer: (host, cname, spec) => addContainer(name, host, cname, spec),
    container: (cname) => {
      const c = current().containers.find((x) => x.name === cname);
      if (!c) throw new Error(`no container ${cname}`);
      return c;
    },
    exec: (target, argv, o) => execIn(current(), target, argv, o),
    vsctl: (host, ...args) => hostVsctl(findHost(current(), host), ...args),
    ofctl: (host, ...args) => hostRun(host, ['ovs-ofctl', '-O', 'OpenFlow13', ...args]),
    appctl: (host, ...args) => hostRun(host, ['ovs-appctl', ...args]),
    ping: (from, ip, o) => ping(current(), from, ip, o),
    tcpCheck: (from, to, port) => {
      const s = current();
      const target = s.containers.find((c) => c.name === to);
      if (!target) throw new Error(`no container ${to}`);
      return tcpExchange(s, from, to, target.ip, port);
    },
    pids: (host) => {
      const h = findHost(current(), host);
      return { ovsdbServer: readPid(h.pidfiles.ovsdbServer), ovsVswitchd: readPid(h.pidfiles.ovsVswitchd) };
    },
  };
}
