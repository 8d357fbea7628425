/**
 * Pure decisions of the agent and its netns driver: launch argv, restart policy
 * with backoff, adoption of instances found on disk, and the converge plan from
 * what runs to what is assigned. No I/O here; unit-tested.
 */
import { createHash } from 'node:crypto';
import type { AgentAssignment, RestartPolicy } from './types.js';

/** Backoff of restarts: 250 ms doubling per quick exit, capped. */
export const RESTART_BASE_MS = 250;
export const RESTART_MAX_MS = 10_000;
/** A process that ran this long before exiting counts as healthy: its backoff starts over. */
export const HEALTHY_UPTIME_MS = 10_000;

const stable = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) =>
  x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : x,
);
const digest = (v: unknown): string => createHash('sha1').update(stable(v)).digest('hex').slice(0, 16);

/** What the port depends on: a change means a new namespace and port. */
export function portKey(a: AgentAssignment): string {
  const e = a.endpoint;
  return digest({ id: e.id, ip: e.ip ?? null, ip6: e.ip6 ?? null, mac: e.mac, gateway: e.gateway ?? null });
}

/** What the process depends on: a change means the process restarts (the port stays). */
export function processKey(a: AgentAssignment): string {
  return digest({ command: a.command, env: a.env, image: a.image ?? null });
}

export interface LaunchSpec {
  netns: string;
  command: string | string[];
  exitFile: string;
  /** Own PID, mount and UTS namespaces (`unshare`). */
  isolate: boolean;
  /** Host name inside the UTS namespace (only with isolate). */
  hostname?: string;
}

/**
 * argv that runs the command inside the instance's namespace. A small `sh` wrapper
 * writes the exit status to `exitFile`, so the exit of a process the agent did not
 * start itself (adopted after an agent restart) is still known.
 */
export function launchArgv(s: LaunchSpec): string[] {
  const argv = typeof s.command === 'string' ? ['/bin/sh', '-c', s.command] : [...s.command];
  const setHostname = s.isolate && s.hostname ? `hostname '${s.hostname.replace(/[^A-Za-z0-9-]/g, '')}' 2>/dev/null; ` : '';
  const wrapper = `f=$1; shift; ${setHostname}"$@"; echo $? > "$f"`;
  return [
    'ip', 'netns', 'exec', s.netns,
    ...(s.isolate ? ['unshare', '--pid', '--fork', '--kill-child', '--mount-proc', '--uts'] : []),
    '/bin/sh', '-c', wrapper, 'tenet-unit', s.exitFile, ...argv,
  ];
}

export type RestartDecision = { restart: true; delayMs: number } | { restart: false; state: 'exited' | 'failed' };

/**
 * After an exit: restart or not, and after how long. `exitCode` undefined = killed by
 * a signal (or no status recorded): a failure. `quickExits` = exits in a row that
 * came sooner than HEALTHY_UPTIME_MS after their start, this one included.
 */
export function restartDecision(policy: RestartPolicy, exitCode: number | undefined, quickExits: number): RestartDecision {
  const failed = exitCode !== 0;
  const restart = policy === 'always' || (policy === 'on-failure' && failed);
  if (!restart) return { restart: false, state: failed ? 'failed' : 'exited' };
  return { restart: true, delayMs: backoffMs(quickExits) };
}

/** 0 quick exits → no wait worth speaking of; then 250 ms, 500 ms, 1 s, … capped at 10 s. */
export function backoffMs(quickExits: number): number {
  if (quickExits <= 0) return RESTART_BASE_MS;
  return Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** Math.min(quickExits - 1, 20));
}

/** Quick-exit count after an exit: reset by a run that lasted. */
export function nextQuickExits(previous: number, uptimeMs: number): number {
  return uptimeMs >= HEALTHY_UPTIME_MS ? 0 : previous + 1;
}

/** What an instance record found on disk is, from probing the kernel. */
export interface AdoptionProbe {
  netnsExists: boolean;
  /** The recorded pid runs, with the recorded start time (not a reused pid). */
  processAlive: boolean;
  /** That process is inside the instance's namespace. */
  processInNetns: boolean;
}

export type AdoptionDecision =
  /** Keep the port and the process as they are. */
  | 'adopt'
  /** Keep the port; the process is gone (it exited while no agent watched): the restart policy decides. */
  | 'adopt-exited'
  /** Nothing usable (namespace gone, or a process that is not ours): remove what is left, start afresh if assigned. */
  | 'discard';

export function adoptionDecision(hadProcess: boolean, p: AdoptionProbe): AdoptionDecision {
  if (!p.netnsExists) return 'discard';
  if (!hadProcess) return 'adopt';
  if (p.processAlive && p.processInNetns) return 'adopt';
  if (p.processAlive) return 'discard'; // the pid lives elsewhere: not ours, never signal it
  return 'adopt-exited';
}

/** What the agent runs now, per instance id (for the converge plan). */
export interface RunningInstance {
  portKey: string;
  processKey: string;
  /** A process is wanted (launched), running or being restarted. */
  launched: boolean;
}

export type ConvergeStep =
  | { op: 'create'; id: string }
  | { op: 'remove'; id: string }
  | { op: 'recreate'; id: string }
  | { op: 'restart-process'; id: string }
  | { op: 'start-process'; id: string }
  | { op: 'stop-process'; id: string }
  | { op: 'update'; id: string };

/**
 * Steps from what runs to the assignment set: removals first (they free names and
 * resources), then creations and changes, each list in id order.
 */
export function convergePlan(current: ReadonlyMap<string, RunningInstance>, desired: readonly AgentAssignment[]): ConvergeStep[] {
  const want = new Map(desired.map((a) => [a.id, a]));
  const removals: ConvergeStep[] = [];
  const changes: ConvergeStep[] = [];
  for (const id of [...current.keys()].sort()) if (!want.has(id)) removals.push({ op: 'remove', id });
  for (const id of [...want.keys()].sort()) {
    const a = want.get(id)!;
    const cur = current.get(id);
    const launch = a.desiredState === 'launched';
    if (!cur) changes.push({ op: 'create', id });
    else if (cur.portKey !== portKey(a)) changes.push({ op: 'recreate', id });
    else if (launch && cur.launched && cur.processKey !== processKey(a)) changes.push({ op: 'restart-process', id });
    else if (launch && !cur.launched) changes.push({ op: 'start-process', id });
    else if (!launch && cur.launched) changes.push({ op: 'stop-process', id });
    else changes.push({ op: 'update', id });
  }
  return [...removals, ...changes];
}
