/**
 * One `tenet agent` per lab host, each its own process in the root namespace (it reaches
 * the controller on the management gateway and the host's OVSDB over its unix socket),
 * with br-int in the host's namespace and instance namespaces named `<lab>-u-<host>-…`
 * (so `lab down` finds them by the lab prefix). Agents are recorded in the lab state
 * by pid and start time; `lab down` and `stopLabAgents` stop them by that pid only.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TenetError, UsageError } from '../util/errors.js';
import { isAlive, processStartTime } from '../util/process.js';
import { hostEnv, requireRoot } from './lab.js';
import { loadLab, findHost } from './container.js';
import { readState, writeState, type LabAgent, type LabHost, type LabState } from './state.js';

const TENET_BIN = fileURLToPath(new URL('../../bin/tenet.js', import.meta.url));

export interface LabAgentsOptions {
  /** Controller API, e.g. http://198.18.K.1:6680 (startLabController's url). */
  controller: string;
  /** Token file; or `token` (written to <lab dir>/agents/token); neither = --no-auth. */
  tokenFile?: string;
  token?: string | null;
  /** Hosts to start agents on (default every lab host). */
  hosts?: string[];
  /** Labels per host name (host → {k: v}). */
  labels?: Record<string, Record<string, string>>;
  /** Resources per host name (`--cpu`, `--memory` strings as the CLI takes them). */
  resources?: Record<string, { cpu?: string; memory?: string }>;
  /**
   * false (default): each agent dies with the process that started it (parent-death
   * signal; tests, demo). true: agents outlive it (`tenet lab agents start`).
   */
  detached?: boolean;
  logLevel?: string;
  /** More `tenet agent` arguments for every agent. */
  args?: string[];
  /** How long to wait for each agent's socket (ms, default 20 s). */
  startTimeoutMs?: number;
}

export interface LabAgentHandle extends LabAgent {
  /** SIGTERM (the agent leaves its instances running), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL the agent only (a crash): its instances keep running. */
  kill(): Promise<void>;
}

export class LabAgentError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('ELABAGENT', message, context);
  }
}

/** Namespace prefix of a lab host's instances (the agent's --netns-prefix). */
export const labAgentNetnsPrefix = (lab: string, host: string): string => `${lab}-u-${host}`;

/** `tenet agent` argv for a lab host (pure). */
export function labAgentArgv(state: LabState, host: LabHost, o: { controller: string; tokenFile?: string; stateDir: string; labels?: Record<string, string>; cpu?: string; memory?: string; logLevel?: string; args?: string[] }): string[] {
  const labels = Object.entries(o.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  return [
    'agent',
    '--host', host.name,
    '--controller', o.controller,
    ...(o.tokenFile ? ['--token-file', o.tokenFile] : ['--no-auth']),
    '--state-dir', o.stateDir,
    '--ovsdb', `unix:${host.ovsdbSocket}`,
    '--advertise-ovsdb', host.ovsdbTcp,
    '--host-netns', host.namespace,
    '--netns-prefix', labAgentNetnsPrefix(state.name, host.name),
    '--underlay-ip', host.underlayIp,
    '--datapath-type', 'netdev',
    ...(labels ? ['--labels', labels] : []),
    ...(o.cpu ? ['--cpu', o.cpu] : []),
    ...(o.memory ? ['--memory', o.memory] : []),
    '--log-level', o.logLevel ?? 'info',
    ...(o.args ?? []),
  ];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Whether the recorded agent still runs (same pid and start time: never a reused pid). */
export function labAgentAlive(a: Pick<LabAgent, 'pid' | 'startTime'>): boolean {
  return isAlive(a.pid) && (a.startTime === undefined || processStartTime(a.pid) === a.startTime);
}

function handle(labName: string, a: LabAgent): LabAgentHandle {
  const waitGone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && labAgentAlive(a)) await sleep(25);
  };
  return {
    ...a,
    async stop(graceMs = 5000) {
      if (!labAgentAlive(a)) return forget(labName, a.host);
      process.kill(a.pid, 'SIGTERM');
      await waitGone(graceMs);
      if (labAgentAlive(a)) process.kill(a.pid, 'SIGKILL');
      await waitGone(2000);
      forget(labName, a.host);
    },
    async kill() {
      if (labAgentAlive(a)) process.kill(a.pid, 'SIGKILL');
      await waitGone(2000);
      forget(labName, a.host);
    },
  };
}

function forget(labName: string, host: string): void {
  const s = readState(labName);
  if (!s?.agents?.some((x) => x.host === host)) return;
  s.agents = s.agents.filter((x) => x.host !== host);
  writeState(s);
}

/** Starts one agent per lab host (or per `hosts`); resolves once each one's socket listens. */
export async function startLabAgents(labName: string, opts: LabAgentsOptions): Promise<LabAgentHandle[]> {
  requireRoot();
  const state = loadLab(labName);
  const hosts = (opts.hosts ?? state.hosts.map((h) => h.name)).map((h) => findHost(state, h));
  for (const h of hosts) {
    const running = state.agents?.find((a) => a.host === h.name);
    if (running && labAgentAlive(running)) throw new UsageError(`an agent already runs for ${h.name} in lab '${labName}' (pid ${running.pid}); stop it first: tenet lab agents stop --name ${labName}`);
  }
  const base = join(state.dir, 'agents');
  mkdirSync(base, { recursive: true });
  let tokenFile = opts.tokenFile;
  if (!tokenFile && opts.token) {
    tokenFile = join(base, 'token');
    writeFileSync(tokenFile, `${opts.token}\n`, { mode: 0o600 });
  }
  if (tokenFile && !existsSync(tokenFile)) throw new UsageError(`token file ${tokenFile} does not exist`);
  const started: LabAgentHandle[] = [];
  try {
    for (const h of hosts) {
      const stateDir = join(base, h.name);
      mkdirSync(stateDir, { recursive: true });
      const logFile = join(stateDir, 'agent.log');
      const res = opts.resources?.[h.name];
      const argv = labAgentArgv(state, h, {
        controller: opts.controller,
        ...(tokenFile ? { tokenFile } : {}),
        stateDir,
        ...(opts.labels?.[h.name] ? { labels: opts.labels[h.name] } : {}),
        ...(res?.cpu ? { cpu: res.cpu } : {}),
        ...(res?.memory ? { memory: res.memory } : {}),
        ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
        ...(opts.args ? { args: opts.args } : {}),
      });
      const fd = openSync(logFile, 'a');
      const node = [process.execPath, TENET_BIN, ...argv];
      // Not detached: setpriv --pdeathsig takes the agent along when its starter dies.
      const child = opts.detached
        ? spawn(node[0]!, node.slice(1), { stdio: ['ignore', fd, fd], detached: true, env: hostEnv(h) })
        : spawn('setpriv', ['--pdeathsig', 'SIGTERM', ...node], { stdio: ['ignore', fd, fd], env: hostEnv(h) });
      closeSync(fd);
      if (opts.detached) child.unref();
      const pid = child.pid;
      if (pid === undefined) throw new LabAgentError(`could not start the agent of ${h.name}`, { argv });
      if (!opts.detached) {
        const onExit = () => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        };
        process.once('exit', onExit);
        child.once('exit', () => process.off('exit', onExit));
      }
      const startTime = processStartTime(pid);
      const agent: LabAgent = { host: h.name, pid, ...(startTime ? { startTime } : {}), stateDir, logFile, socket: join(stateDir, 'agent.sock'), controller: opts.controller };
      const fresh = loadLab(labName);
      fresh.agents = [...(fresh.agents ?? []).filter((a) => a.host !== h.name), agent];
      writeState(fresh);
      started.push(handle(labName, agent));
    }
    for (const a of started) {
      const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
      while (!existsSync(a.socket)) {
        if (!labAgentAlive(a)) throw new LabAgentError(`the agent of ${a.host} exited during start:\n${tail(a.logFile)}`, { logFile: a.logFile });
        if (Date.now() > deadline) throw new LabAgentError(`the agent of ${a.host} did not open ${a.socket} in time:\n${tail(a.logFile)}`, { logFile: a.logFile });
        await sleep(50);
      }
    }
    return started;
  } catch (err) {
    for (const a of started) await a.stop(2000);
    throw err;
  }
}

/** Handles of the agents the lab state records (for `lab agents stop` and tests). */
export function labAgents(labName: string): LabAgentHandle[] {
  return (loadLab(labName).agents ?? []).map((a) => handle(labName, a));
}

/** Stops the lab's agents (all, or those of `hosts`) by their recorded pids. Returns the hosts stopped. */
export async function stopLabAgents(labName: string, hosts?: string[]): Promise<string[]> {
  const stopped: string[] = [];
  if (!readState(labName)) return stopped; // no lab (lab down stopped them already)
  for (const a of labAgents(labName)) {
    if (hosts && !hosts.includes(a.host)) continue;
    const alive = labAgentAlive(a);
    await a.stop();
    if (alive) stopped.push(a.host);
  }
  return stopped;
}
