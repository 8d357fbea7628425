/**
 * The controller daemon: store + Controller + service registry + REST API (+ DNS),
 * until SIGINT/SIGTERM. The registry lives on the controller's store under
 * REGISTRY_PREFIX, is served at /v1/services on the API's port (same token) and
 * over DNS, and the controller follows it for chain membership and health.
 * `tenet controller` parses its options into DaemonOptions and calls runDaemon;
 * tests call it in-process.
 */
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { startApi, type ApiServer } from '../api/index.js';
import { Registry, SERVICES_BASE, WATCH_PATH, attachRegistryWatch, createRegistryRouter, startRegistryDns, type RegistryDnsServer } from '../registry/index.js';
import { openStore, type Store, type StoreConfig } from '../store/index.js';
import { UsageError } from '../util/errors.js';
import { parseHostPort } from '../util/hostport.js';
import { loadOrCreateToken } from '../util/token.js';
import { Controller } from '../controller/index.js';

export interface DaemonOptions {
  /** Token file, embedded store. Default /var/lib/tenet. */
  stateDir: string;
  /** API listen address host:port. Default 127.0.0.1:6680. */
  api: string;
  /** OpenFlow listen address host:port. Default 0.0.0.0:6653. */
  openflow: string;
  /** Controller target written into each br-int; default `tcp:<openflow host>:<port>` (the host must not be 0.0.0.0 then). */
  advertise?: string;
  /** `embedded` (default, `<stateDir>/store`) or `etcd:http://H:P[,http://...]`. */
  store: string;
  /** Seconds between drift checks; 0 = off. */
  driftIntervalS: number;
  /** false = API without bearer token (`--no-auth`). */
  auth: boolean;
  /** Registry DNS listen address host:port (port 0 = any free one, UDP only) or 'off'. Default off here; the CLI's default is 127.0.0.1:8600. */
  dns?: string;
  /** Agent lease TTL, seconds (issue 9: an agent missing heartbeats this long loses its host's instances). Default 10. */
  agentLeaseTtlS?: number;
  logger?: Logger;
}

export interface Daemon {
  controller: Controller;
  api: ApiServer;
  store: Store;
  /** The bearer token (null with auth off). */
  token: string | null;
  registry: Registry;
  /** The registry's DNS server (undefined with DNS off). */
  dns: RegistryDnsServer | undefined;
  close(): Promise<void>;
}

export const DEFAULT_STATE_DIR = '/var/lib/tenet';
export const DEFAULT_DNS = '127.0.0.1:8600';
/** Where the registry keeps its instances and health records in the controller's store. */
export const REGISTRY_PREFIX = '/tenet/registry/';

export function storeConfig(spec: string, stateDir: string): StoreConfig {
  if (spec === 'embedded') return { kind: 'embedded', dir: join(stateDir, 'store') };
  if (spec.startsWith('etcd:')) {
    const endpoints = spec.slice(5).split(',').filter(Boolean);
    if (!endpoints.length || !endpoints.every((e) => /^https?:\/\/[^/]+$/.test(e))) throw new UsageError(`--store etcd: wants etcd:http://HOST:PORT[,...], got '${spec}'`);
    return { kind: 'etcd', endpoints };
  }
  throw new UsageError(`--store must be 'embedded' or 'etcd:URL', got '${spec}'`);
}

/** Starts everything; resolves once the API listens. The caller decides when to close. */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const log = opts.logger ?? pino({ level: 'info' }, pino.destination(2));
  const of = parseHostPort(opts.openflow, '--openflow');
  let advertise = opts.advertise;
  if (!advertise) {
    if (of.host === '0.0.0.0' || of.host === '::') throw new UsageError('--advertise tcp:IP:PORT is required when --openflow listens on a wildcard address (the switches must know where to connect)');
    advertise = `tcp:${of.host}:${of.port}`;
  }
  if (!/^(tcp|ssl):[^:]+:\d+$|^unix:/.test(advertise)) throw new UsageError(`--advertise must look like tcp:IP:PORT, got '${advertise}'`);
  const dnsAt = opts.dns === undefined || opts.dns === 'off' ? undefined : parseHostPort(opts.dns, '--dns');
  const token = opts.auth ? loadOrCreateToken(opts.stateDir) : null;
  const store = await openStore(storeConfig(opts.store, opts.stateDir));
  let controller: Controller | undefined;
  let registry: Registry | undefined;
  let api: ApiServer | undefined;
  let dns: RegistryDnsServer | undefined;
  const stop = async () => {
    await dns?.close().catch(() => undefined);
    await api?.close().catch(() => undefined);
    await controller?.close(); // stops following the registry
    await registry?.close().catch(() => undefined);
    await store.close();
  };
  try {
    // The registry first, so the controller follows it before any switch connects or chain
    // compiles (a restart never compiles registry-driven hops without their members), and the
    // lost-host hook has it. Tenants that may register: the controller's current ones (asked
    // at each registration; none before the controller has loaded, and the API is not up yet).
    const reg = (registry = await Registry.start({ store, prefix: REGISTRY_PREFIX, tenants: (t) => controller?.model()?.tenants.some((x) => x.name === t) ?? false }));
    controller = await Controller.start({
      store,
      advertise: [advertise],
      openflow: { host: of.host, port: of.port },
      driftIntervalMs: opts.driftIntervalS * 1000,
      ...(opts.agentLeaseTtlS !== undefined ? { agentLeaseTtlS: opts.agentLeaseTtlS } : {}),
      logger: log,
      services: { instances: () => reg.list().instances, onChange: (fn) => reg.subscribe({}, fn) },
      // The scheduler (leader) lost a host's agent: its containers went with it, so do their registrations.
      onHostLost: async (host) => {
        const gone = await reg.deregisterWhere((i) => i.meta['host'] === host);
        if (gone.length) log.info({ host, instances: gone.map((i) => `${i.tenant}/${i.service}/${i.id}`) }, 'deregistered the services of a lost host');
      },
    });
    const c = controller;
    const httpOpts = token ? { token } : {};
    api = await startApi(c, {
      listen: opts.api,
      token,
      logger: log,
      extensions: [
        {
          path: SERVICES_BASE,
          router: createRegistryRouter(reg, httpOpts),
          websocket: { path: WATCH_PATH, attach: (server) => attachRegistryWatch(server, reg, { ...httpOpts, onWatchDropped: (d) => log.warn(d, 'dropped a registry watch client that stopped reading') }) },
        },
      ],
    });
    // A fixed port serves TCP too (answers that do not fit UDP); port 0 would differ between the two.
    if (dnsAt) dns = await startRegistryDns(reg, { host: dnsAt.host, port: dnsAt.port, tcp: dnsAt.port !== 0 });
    log.info(
      { api: api.url, openflow: c.openflowAddress, advertise, store: store.kind, stateDir: opts.stateDir, dns: dnsAt ? `${dnsAt.host}:${dns!.port}` : 'off' },
      'tenet controller ready',
    );
    const a = api;
    let closing: Promise<void> | undefined;
    return {
      controller: c,
      api: a,
      store,
      token,
      registry: reg,
      dns,
      close: () => (closing ??= stop()),
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Runs the daemon until SIGINT or SIGTERM. */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const log = opts.logger ?? pino({ level: 'info' }, pino.destination(2));
  const d = await startDaemon({ ...opts, logger: log });
  await new Promise<void>((resolve) => {
    const stop = (sig: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      log.info({ signal: sig }, 'stopping');
      void d.close().finally(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
