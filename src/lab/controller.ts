/**
 * A `tenet controller` daemon for a lab, as its own process (what tests, the demo
 * and benchmarks run): OpenFlow and the REST API listen on the lab's management
 * gateway address, which is unique per lab, so several labs each have their own
 * controller on the default ports (the registry's DNS too, on DNS_PORT). Stopped by its pid only.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TenetError } from '../util/errors.js';
import { isAlive } from '../util/process.js';
import { labAdvertise, OPENFLOW_PORT } from './topology.js';
import type { LabState } from './state.js';

export const API_PORT = 6680;
/** The registry's DNS (UDP + TCP) on the lab's management gateway address. */
export const DNS_PORT = 8600;
const TENET_BIN = fileURLToPath(new URL('../../bin/tenet.js', import.meta.url));

export interface LabControllerOptions {
  /** Token file and embedded store; kept (a restart with the same dir finds the stored topology). */
  stateDir: string;
  /** Seconds between drift checks (default 10). */
  driftIntervalS?: number;
  /** false = `--no-auth`. */
  auth?: boolean;
  logLevel?: string;
  /** Extra arguments for `tenet controller`. */
  args?: string[];
  /** How long to wait for /healthz (ms, default 30 s). */
  startTimeoutMs?: number;
}

export interface LabController {
  pid: number;
  /** http://<mgmt gateway>:6680 */
  url: string;
  /** Bearer token (null with auth off). */
  token: string | null;
  /** The daemon's stderr (JSON log lines). */
  logFile: string;
  /** SIGTERM, SIGKILL after `graceMs`; resolves once the process is gone. Idempotent. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once (a crash). */
  kill(): Promise<void>;
}

export class LabControllerError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('ELABCONTROLLER', message, context);
  }
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Starts `tenet controller` for the lab; resolves once /healthz answers. */
export async function startLabController(state: LabState, opts: LabControllerOptions): Promise<LabController> {
  mkdirSync(opts.stateDir, { recursive: true });
  const gw = state.mgmt.gateway;
  const logFile = join(opts.stateDir, 'controller.log');
  const fd = openSync(logFile, 'a');
  const argv = [
    TENET_BIN, 'controller',
    '--state-dir', opts.stateDir,
    '--api', `${gw}:${API_PORT}`,
    '--openflow', `${gw}:${OPENFLOW_PORT}`,
    '--advertise', labAdvertise(state),
    '--dns', `${gw}:${DNS_PORT}`,
    '--drift-interval', String(opts.driftIntervalS ?? 10),
    '--log-level', opts.logLevel ?? 'info',
    ...(opts.auth === false ? ['--no-auth'] : []),
    ...(opts.args ?? []),
  ];
  // setpriv --pdeathsig (util-linux) execs node with the parent-death signal set: a test
  // or demo killed without running its exit handlers still takes its controller along
  // (an orphan would reconnect to whichever later lab reuses this management subnet).
  const child = spawn('setpriv', ['--pdeathsig', 'SIGTERM', process.execPath, ...argv], { stdio: ['ignore', fd, fd], detached: false });
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new LabControllerError('could not start tenet controller', { argv });
  let exited = false;
  const gone = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  // A process that exits without stopping it (a crash, process.exit) still takes it along, by pid.
  const onExit = () => {
    if (!exited) child.kill('SIGKILL');
  };
  process.once('exit', onExit);
  void gone.then(() => process.off('exit', onExit));
  const url = `http://${gw}:${API_PORT}`;
  const ctl: LabController = {
    pid,
    url,
    token: null,
    logFile,
    async stop(graceMs = 5000) {
      if (exited || !isAlive(pid)) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!exited) child.kill('SIGKILL');
      }, graceMs);
      await gone;
      clearTimeout(timer);
    },
    async kill() {
      if (exited) return;
      child.kill('SIGKILL');
      await gone;
    },
  };
  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  for (;;) {
    if (exited) throw new LabControllerError(`tenet controller exited during start:\n${tail(logFile)}`, { logFile });
    try {
      const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await ctl.stop();
      throw new LabControllerError(`tenet controller did not answer ${url}/healthz in time:\n${tail(logFile)}`, { logFile });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (opts.auth !== false) ctl.token = readFileSync(join(opts.stateDir, 'token'), 'utf8').trim();
  return ctl;
}
