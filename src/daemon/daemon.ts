/**
 * The controller daemon: store + Controller + REST API, until SIGINT/SIGTERM.
 * `tenet controller` parses its options into DaemonOptions and calls runDaemon;
 * tests call it in-process.
 */
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { startApi, type ApiServer } from '../api/index.js';
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
  logger?: Logger;
}

export interface Daemon {
  controller: Controller;
  api: ApiServer;
  store: Store;
  /** The bearer token (null with auth off). */
  token: string | null;
  close(): Promise<void>;
}

export const DEFAULT_STATE_DIR = '/var/lib/tenet';

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
  const token = opts.auth ? loadOrCreateToken(opts.stateDir) : null;
  const store = await openStore(storeConfig(opts.store, opts.stateDir));
  let controller: Controller | undefined;
  try {
    controller = await Controller.start({
      store,
      advertise: [advertise],
      openflow: { host: of.host, port: of.port },
      driftIntervalMs: opts.driftIntervalS * 1000,
      logger: log,
    });
    const api = await startApi(controller, { listen: opts.api, token, logger: log });
    log.info({ api: api.url, openflow: controller.openflowAddress, advertise, store: store.kind, stateDir: opts.stateDir }, 'tenet controller ready');
    const c = controller;
    let closing: Promise<void> | undefined;
    return {
      controller: c,
      api,
      store,
      token,
      close: () =>
        (closing ??= (async () => {
          await api.close().catch(() => undefined);
          await c.close();
          await store.close();
        })()),
    };
  } catch (err) {
    await controller?.close();
    await store.close();
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
