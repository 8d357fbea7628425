/**
 * The host agent loop (issue 9): register the host with the controller, keep its lease
 * (heartbeat every ttl/3, register again when the lease is gone), long-poll this host's
 * assignments and converge the runtime driver to them, report instance status on every
 * change and every heartbeat, keep declared services in the registry, serve the agent
 * socket. The controller may be away or restarting: the agent retries with backoff,
 * logs the outage once, never exits for it, and leaves its instances running.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { TenetError } from '../util/errors.js';
import { ControllerClient, ControllerHttpError } from './client.js';
import type { DriverInstance, RuntimeDriver } from './driver.js';
import { endpointName } from './naming.js';
import { lockStateDir } from './lock.js';
import { NetnsDriver, type LogFn } from './netns-driver.js';
import { ServiceManager, type ServiceWant } from './services.js';
import { startSidekick } from './sidekick.js';
import type { AgentAssignment, AgentRegistration, AssignmentsResponse, InstanceStatus, RegisterResponse, UnitCheckSpec } from './types.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  /** This host's name (as in the topology's hosts). */
  host: string;
  /** Controller API base URL, http://127.0.0.1:6680. */
  controller: string;
  /** Bearer token (null: the controller runs without auth). */
  token: string | null;
  /** Records, logs, agent.sock. */
  stateDir: string;
  /** OVSDB address ovs-vsctl uses on this host (default unix:/var/run/openvswitch/db.sock). */
  ovsdb?: string;
  ovsdbEnv?: NodeJS.ProcessEnv;
  /** OVSDB address the controller should use for this host (registration; default: ovsdb when it is tcp:). */
  advertiseOvsdb?: string;
  /** Namespace br-int lives in (a lab host's). */
  hostNetns?: string;
  netnsPrefix?: string;
  labels?: Record<string, string>;
  /** Millicores and bytes. */
  resources?: { cpu?: number; memory?: number };
  underlayIp?: string;
  datapathType?: 'netdev' | 'system';
  isolate?: 'auto' | 'on' | 'off';
  /** Long-poll wait of GET assignments (s, default 30). */
  waitS?: number;
  /** Instead of the netns driver (tests). */
  driver?: RuntimeDriver;
  log?: LogFn;
}

export interface Agent {
  readonly host: string;
  readonly socketPath: string;
  readonly driver: RuntimeDriver;
  /** The live registration, or undefined while not registered. */
  lease(): { leaseId: string | number; ttlS: number } | undefined;
  /** Index of the last assignment set converged (-1 before the first). */
  assignmentIndex(): number;
  instances(): InstanceStatus[];
  services(): ServiceWant[];
  /** Stops the loops. `stopInstances`: also stop every instance and deregister its services; otherwise they keep running for the next agent to adopt. */
  close(opts?: { stopInstances?: boolean }): Promise<void>;
}

export class AgentError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('EAGENT', message, context);
  }
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/** Retry delays while the controller is away: 0.5 s doubling, capped at 10 s (pure). */
export function retryDelayMs(failures: number): number {
  return Math.min(10_000, 500 * 2 ** Math.min(Math.max(failures - 1, 0), 10));
}

const defaultLog: LogFn = (level, msg, ctx) => {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...ctx });
  process.stderr.write(`${line}\n`);
};

/** Starts an agent; resolves once the socket listens and adopted instances are known (the controller may still be away). */
export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const log = opts.log ?? defaultLog;
  mkdirSync(opts.stateDir, { recursive: true });
  const socketPath = join(opts.stateDir, 'agent.sock');
  if (Buffer.byteLength(socketPath) > 107) throw new AgentError(`socket path too long for a unix socket (${socketPath}); use a shorter --state-dir`, { socketPath });
  // One agent per state dir: a second would adopt and restart the same instances.
  const unlock = lockStateDir(opts.stateDir);
  const ovsdb = opts.ovsdb ?? 'unix:/var/run/openvswitch/db.sock';
  const driver: RuntimeDriver =
    opts.driver ??
    new NetnsDriver({
      host: opts.host,
      stateDir: opts.stateDir,
      ovsdb,
      ...(opts.ovsdbEnv ? { ovsdbEnv: opts.ovsdbEnv } : {}),
      ...(opts.hostNetns ? { hostNetns: opts.hostNetns } : {}),
      ...(opts.netnsPrefix ? { netnsPrefix: opts.netnsPrefix } : {}),
      ...(opts.isolate ? { isolate: opts.isolate } : {}),
      socketPath,
      log,
    });
  const client = new ControllerClient(opts.controller, opts.token);
  const hostPath = `/v1/agents/${encodeURIComponent(opts.host)}`;
  const abort = new AbortController();
  const signal = abort.signal;
  let lease: { leaseId: string | number; ttlS: number } | undefined;
  let index = -1;
  let assignments: AgentAssignment[] = [];
  let unreachableSince: number | undefined;
  /** Container-registered services: instance id → service name → spec. */
  const sidekicks = new Map<string, Map<string, { port: number; check?: UnitCheckSpec }>>();
  // Kept in <state-dir>/sidekick.json: a restarted agent keeps what its containers registered.
  const sidekickFile = join(opts.stateDir, 'sidekick.json');
  try {
    const saved = JSON.parse(readFileSync(sidekickFile, 'utf8')) as Record<string, Record<string, { port: number; check?: UnitCheckSpec }>>;
    for (const [id, m] of Object.entries(saved)) sidekicks.set(id, new Map(Object.entries(m)));
  } catch {
    /* none yet */
  }
  const saveSidekicks = () => {
    const obj = Object.fromEntries([...sidekicks].filter(([, m]) => m.size).map(([id, m]) => [id, Object.fromEntries(m)]));
    writeFileSync(`${sidekickFile}.tmp`, JSON.stringify(obj, null, 2) + '\n');
    renameSync(`${sidekickFile}.tmp`, sidekickFile);
  };
  const services = new ServiceManager(client, opts.host, () => lease?.ttlS ?? 10, log);

  const registration: AgentRegistration = {
    version: AGENT_VERSION,
    ...(opts.labels ? { labels: opts.labels } : {}),
    ...(opts.resources ? { resources: opts.resources } : {}),
    ...(opts.underlayIp ? { underlayIp: opts.underlayIp } : {}),
    ...((opts.advertiseOvsdb ?? (ovsdb.startsWith('tcp:') ? ovsdb : undefined)) ? { ovsdb: opts.advertiseOvsdb ?? ovsdb } : {}),
    ...(opts.datapathType ? { datapathType: opts.datapathType } : {}),
    socket: socketPath,
  };

  /** One log line per outage, and one when it ends. */
  const reachable = () => {
    if (unreachableSince !== undefined) {
      log('info', `controller ${opts.controller} reachable again after ${((Date.now() - unreachableSince) / 1000).toFixed(1)} s`);
      unreachableSince = undefined;
    }
  };
  const unreachable = (what: string, err: unknown, retryMs: number) => {
    const msg = (err as Error).message;
    if (unreachableSince === undefined) {
      unreachableSince = Date.now();
      log('warn', `${what} failed: ${msg}; retrying (next in ${(retryMs / 1000).toFixed(1)} s, backoff up to 10 s); instances keep running`);
    } else {
      log('debug', `${what} failed again: ${msg}`);
    }
  };

  // --- services: what should be registered, from what runs -------------------
  const syncServices = () => {
    if (signal.aborted) return;
    const wants: ServiceWant[] = [];
    for (const inst of driver.list()) {
      const a = inst.assignment;
      if (inst.status.state !== 'running' && inst.status.state !== 'starting') continue;
      const address = (a.endpoint.ip ?? a.endpoint.ip6)?.split('/')[0];
      if (!address) continue;
      const base = { tenant: a.tenant, instanceId: a.id, unit: a.unit, endpoint: a.endpoint.id, netns: inst.netns, address };
      const declared = new Set<string>();
      for (const s of a.services) {
        declared.add(s.name);
        wants.push({ ...base, service: s.name, port: s.port, ...(s.check ? { check: s.check } : {}), source: 'unit' });
      }
      for (const [name, s] of sidekicks.get(a.id) ?? []) {
        if (!declared.has(name)) wants.push({ ...base, service: name, port: s.port, ...(s.check ? { check: s.check } : {}), source: 'sidekick' });
      }
    }
    services.sync(wants);
  };

  // --- status reports -----------------------------------------------------------
  let reportTimer: NodeJS.Timeout | undefined;
  let reporting = Promise.resolve();
  const report = () => {
    reporting = reporting.then(async () => {
      if (!lease || signal.aborted) return;
      try {
        await client.request('PUT', `${hostPath}/instances`, { leaseId: lease.leaseId, instances: driver.list().map((i) => i.status) }, 10_000, signal);
      } catch (err) {
        if (err instanceof ControllerHttpError && err.status === 404) lease = undefined; // re-register on the next heartbeat
        else if (!signal.aborted) log('debug', `status report failed: ${(err as Error).message}`);
      }
    });
  };
  const reportSoon = () => {
    if (reportTimer) return;
    reportTimer = setTimeout(() => {
      reportTimer = undefined;
      report();
    }, 100);
    reportTimer.unref();
  };
  driver.onChange((id) => {
    // Services of an instance that is gone are gone with it.
    if (!driver.list().some((i) => i.assignment.id === id) && sidekicks.delete(id)) saveSidekicks();
    syncServices();
    reportSoon();
  });

  // --- registration and heartbeat -------------------------------------------------
  let registerFailures = 0;
  const register = async (): Promise<void> => {
    while (!signal.aborted) {
      try {
        const r = await client.request<RegisterResponse>('POST', hostPath, registration, 10_000, signal);
        const renewed = lease !== undefined;
        lease = { leaseId: r.leaseId, ttlS: r.ttlS };
        registerFailures = 0;
        reachable();
        log('info', `registered host ${opts.host} with ${opts.controller} (lease ${r.leaseId}, ttl ${r.ttlS} s)${renewed ? ' again' : ''}`);
        report();
        return;
      } catch (err) {
        if (signal.aborted) return;
        registerFailures++;
        const delay = retryDelayMs(registerFailures);
        if (err instanceof ControllerHttpError && (err.status === 401 || err.status === 403)) {
          log('error', `controller refused the token (HTTP ${err.status}); check --token-file; retrying in ${delay / 1000} s`);
        } else if (err instanceof ControllerHttpError && err.status === 400) {
          log('error', `controller rejected the registration: ${err.message}; retrying in ${delay / 1000} s`);
        } else {
          unreachable('register', err, delay);
        }
        await sleep(delay, signal);
      }
    }
  };

  const heartbeatLoop = async (): Promise<void> => {
    while (!signal.aborted) {
      if (!lease) await register();
      if (signal.aborted) return;
      // Whole milliseconds: AbortSignal.timeout and setTimeout-based waits take integers (10 s / 3 is not).
      await sleep(Math.max(200, Math.round(((lease?.ttlS ?? 10) * 1000) / 3)), signal);
      if (signal.aborted || !lease) continue;
      try {
        const r = await client.request<{ ttlS?: number }>('POST', `${hostPath}/heartbeat`, { leaseId: lease.leaseId }, Math.max(1000, Math.round((lease.ttlS * 1000) / 3)), signal);
        if (r?.ttlS && lease) lease.ttlS = r.ttlS;
        reachable();
        report();
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ControllerHttpError && err.status === 404) {
          log('warn', `lease of host ${opts.host} expired at the controller; registering again`);
          lease = undefined;
        } else {
          unreachable('heartbeat', err, Math.round(((lease?.ttlS ?? 10) * 1000) / 3));
        }
      }
    }
  };

  // --- assignments -----------------------------------------------------------------
  // An instance that could not be created (OVSDB away, a namespace in the way) is tried
  // again with backoff, not only when the next assignment set arrives.
  let retryTimer: NodeJS.Timeout | undefined;
  let convergeFailures = 0;
  const convergeNow = async (): Promise<void> => {
    clearTimeout(retryTimer);
    retryTimer = undefined;
    if (signal.aborted) return;
    const t0 = Date.now();
    await driver.converge(assignments);
    log('debug', `converged ${assignments.length} assignment(s) in ${Date.now() - t0} ms`, { ms: Date.now() - t0 });
    syncServices();
    report();
    const have = new Set(driver.list().map((i) => i.assignment.id));
    const missing = assignments.filter((a) => !have.has(a.id)).map((a) => a.id);
    if (missing.length === 0 || signal.aborted) {
      convergeFailures = 0;
      return;
    }
    convergeFailures++;
    const delay = retryDelayMs(convergeFailures);
    log('warn', `could not create ${missing.join(' ')}; trying again in ${(delay / 1000).toFixed(1)} s`);
    retryTimer = setTimeout(() => void convergeNow().catch((err: Error) => log('error', `converge failed: ${err.message}`)), delay);
    retryTimer.unref();
  };
  const assignmentLoop = async (): Promise<void> => {
    let failures = 0;
    const waitS = opts.waitS ?? 30;
    while (!signal.aborted) {
      try {
        const q = index < 0 ? 'index=0' : `index=${index}&waitS=${waitS}`;
        const r = await client.request<AssignmentsResponse>('GET', `${hostPath}/assignments?${q}`, undefined, (waitS + 15) * 1000, signal);
        failures = 0;
        reachable();
        if (r.index !== index || index < 0) {
          const before = new Set(assignments.map((a) => a.id));
          assignments = r.assignments;
          const after = new Set(assignments.map((a) => a.id));
          const added = [...after].filter((x) => !before.has(x));
          const gone = [...before].filter((x) => !after.has(x));
          log('info', `assignments index ${r.index}: ${assignments.length} instance(s)${added.length ? `, new ${added.join(' ')}` : ''}${gone.length ? `, removed ${gone.join(' ')}` : ''}`);
          index = r.index;
          await convergeNow();
        }
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        const delay = retryDelayMs(failures);
        if (err instanceof ControllerHttpError && err.status !== 404) log('warn', `assignments: ${err.message}; retrying in ${delay / 1000} s`);
        else unreachable('assignments', err, delay);
        await sleep(delay, signal);
      }
    }
  };

  // --- start ---------------------------------------------------------------------
  const adopted = await driver.recover();
  for (const id of [...sidekicks.keys()]) if (!adopted.some((i) => i.assignment.id === id)) sidekicks.delete(id);
  if (adopted.length) log('info', `adopted ${adopted.length} instance(s) from ${opts.stateDir}: ${adopted.map((i) => `${i.assignment.id}${i.status.pid ? `(pid ${i.status.pid})` : ''}`).join(' ')}`);
  const sidekick: Server = await startSidekick(socketPath, {
    instances: () => driver.list(),
    logs: (id, tail) => driver.logs(id, tail),
    addService: (id, service, spec) => {
      let m = sidekicks.get(id);
      if (!m) sidekicks.set(id, (m = new Map()));
      m.set(service, spec);
      saveSidekicks();
      syncServices();
      const inst = driver.list().find((i) => i.assignment.id === id)!;
      const a = inst.assignment;
      return { tenant: a.tenant, service, id: endpointName(id), address: (a.endpoint.ip ?? a.endpoint.ip6 ?? '').split('/')[0], port: spec.port, ...(spec.check ? { check: spec.check } : {}) };
    },
    removeService: (id, service) => {
      const removed = sidekicks.get(id)?.delete(service) ?? false;
      if (removed) {
        saveSidekicks();
        syncServices();
      }
      return removed;
    },
  });
  syncServices(); // adopted instances' services, until the first assignment set arrives
  log('info', `agent for host ${opts.host} started: controller ${opts.controller}, driver ${driver.name}, socket ${socketPath}`);
  const loops = Promise.all([heartbeatLoop(), assignmentLoop()]);

  let closing: Promise<void> | undefined;
  return {
    host: opts.host,
    socketPath,
    driver,
    lease: () => (lease ? { ...lease } : undefined),
    assignmentIndex: () => index,
    instances: () => driver.list().map((i: DriverInstance) => i.status),
    services: () => services.list(),
    close: (o = {}) =>
      (closing ??= (async () => {
        abort.abort();
        clearTimeout(reportTimer);
        clearTimeout(retryTimer);
        // Told at once (not after the loops): a converge in progress makes nothing more.
        const driverClosed = driver.close({ stopInstances: o.stopInstances === true });
        await loops;
        await new Promise<void>((r) => sidekick.close(() => r()));
        await services.close(o.stopInstances === true);
        await driverClosed;
        if (o.stopInstances && lease) {
          // Tell the controller at once rather than at the next heartbeat it never gets.
          await client.request('PUT', `${hostPath}/instances`, { leaseId: lease.leaseId, instances: [] }, 2000).catch(() => {});
        }
        unlock();
        log('info', `agent for host ${opts.host} stopped${o.stopInstances ? ' (instances stopped)' : ' (instances left running for adoption)'}`);
      })()),
  };
}
