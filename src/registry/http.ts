/**
 * REST API and WebSocket watch of the registry.
 *   GET    /v1/services[?tenant=&service=&passing=1&index=N&wait=5s]   list (blocking with index)
 *   GET    /v1/services/:tenant[/:service]                              same, scoped
 *   GET    /v1/services/:tenant/:service/:id                            one instance
 *   PUT    /v1/services/:tenant/:service/:id                            register (JSON body)
 *   DELETE /v1/services/:tenant/:service/:id                            deregister
 *   PUT    /v1/services/:tenant/:service/:id/renew                      renew the instance lease
 *   PUT    /v1/services/:tenant/:service/:id/checks/:check/(pass|warn|fail)   TTL check update
 *   WS     /v1/services/_watch[?tenant=&service=]                       snapshot, then change events
 * Every list answer carries `X-Tenet-Index`; pass it back as `index` to block until a change.
 * With a token configured, every request needs `Authorization: Bearer <token>`.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { WebSocketServer, type WebSocket } from 'ws';
import { bearerOk } from '../util/token.js';
import { StoreClosedError, StoreError, StoreUnavailableError } from '../store/index.js';
import type { Filter, Registry } from './registry.js';
import type { HealthStatus } from './types.js';
import { NotFoundError, ValidationError, checkNames, parseDuration } from './validate.js';

export const SERVICES_BASE = '/v1/services';
export const WATCH_PATH = `${SERVICES_BASE}/_watch`;
const MAX_WAIT_MS = 10 * 60_000;
const DEFAULT_WAIT_MS = 5 * 60_000;

export interface HttpOptions {
  /** Bearer token; undefined disables auth (tests, loopback-only setups). */
  token?: string;
  /**
   * A watch client whose unsent backlog exceeds this many bytes is disconnected
   * (default 1 MiB): a client that stopped reading must not grow the server's memory.
   * It can reconnect and resume from a fresh snapshot.
   */
  maxWatchBacklogBytes?: number;
  /** Told about each dropped slow watch client (for logs/metrics). */
  onWatchDropped?: (info: { backlogBytes: number; remote?: string }) => void;
  /** Errors of the listening server after it started (logged by the caller; never thrown). */
  onServerError?: (err: Error) => void;
}

export const DEFAULT_WATCH_BACKLOG_BYTES = 1 << 20;

/** Back-pressure policy of the watch: send, unless the client's backlog is over the bound. */
export function watchSendDecision(bufferedAmount: number, maxBacklog: number): 'send' | 'drop' {
  return bufferedAmount > maxBacklog ? 'drop' : 'send';
}

function queryFilter(q: Request['query'], params: Record<string, string | undefined>): Filter {
  const f: Filter = {};
  const tenant = params.tenant ?? (typeof q.tenant === 'string' ? q.tenant : undefined);
  const service = params.service ?? (typeof q.service === 'string' ? q.service : undefined);
  if (tenant !== undefined) {
    checkNames({ tenant, service: service ?? 'x' });
    f.tenant = tenant;
  }
  if (service !== undefined) {
    checkNames({ tenant: tenant ?? 'x', service });
    f.service = service;
  }
  if (q.passing !== undefined && q.passing !== '0' && q.passing !== 'false') f.passing = true;
  return f;
}

function parseIndexWait(q: Request['query']): { index?: number; waitMs: number } {
  let index: number | undefined;
  if (q.index !== undefined) {
    if (typeof q.index !== 'string' || !/^\d+$/.test(q.index)) throw new ValidationError('index', 'must be a non-negative integer');
    index = Number(q.index);
  }
  let waitMs = DEFAULT_WAIT_MS;
  if (q.wait !== undefined) {
    const w = typeof q.wait === 'string' ? parseDuration(q.wait) : undefined;
    if (w === undefined) throw new ValidationError('wait', 'must be a duration like "5s"');
    waitMs = Math.min(w, MAX_WAIT_MS);
  }
  return index !== undefined ? { index, waitMs } : { waitMs };
}

const checkStates: Record<string, HealthStatus> = { pass: 'passing', warn: 'warning', fail: 'critical' };

/** The express Router; mount it at SERVICES_BASE. */
export function createRegistryRouter(registry: Registry, opts: HttpOptions = {}): Router {
  const r = express.Router();
  r.use((req, res, next) => {
    if (!bearerOk(req.headers.authorization, opts.token)) {
      res.status(401).set('WWW-Authenticate', 'Bearer').json({ error: 'unauthorized', message: 'missing or wrong bearer token' });
      return;
    }
    next();
  });
  r.use(express.json({ limit: '64kb' }));

  const list = async (req: Request, res: Response, params: Record<string, string | undefined>) => {
    const f = queryFilter(req.query, params);
    const { index, waitMs } = parseIndexWait(req.query);
    if (index !== undefined) {
      const ac = new AbortController();
      const onClose = () => ac.abort();
      res.on('close', onClose);
      await registry.waitForChange(f, index, waitMs, ac.signal);
      res.off('close', onClose);
    }
    const out = registry.list(f);
    res.set('X-Tenet-Index', String(out.index)).json(out);
  };

  r.get('/', (req, res) => list(req, res, {}));
  r.get('/:tenant', (req, res) => list(req, res, { tenant: req.params.tenant }));
  r.get('/:tenant/:service', (req, res) => list(req, res, { tenant: req.params.tenant, service: req.params.service }));
  r.get('/:tenant/:service/:id', (req, res) => {
    const { tenant, service, id } = req.params;
    checkNames({ tenant, service, id });
    const inst = registry.get(tenant, service, id);
    if (!inst) throw new NotFoundError(`instance ${tenant}/${service}/${id}`);
    res.json(inst);
  });
  r.put('/:tenant/:service/:id', async (req, res) => {
    const { tenant, service, id } = req.params;
    const existed = registry.get(tenant, service, id) !== undefined;
    const inst = await registry.register(tenant, service, id, req.body);
    res.status(existed ? 200 : 201).json(inst);
  });
  r.delete('/:tenant/:service/:id', async (req, res) => {
    await registry.deregister(req.params.tenant, req.params.service, req.params.id);
    res.status(204).end();
  });
  r.put('/:tenant/:service/:id/renew', async (req, res) => {
    const ttl = await registry.renew(req.params.tenant, req.params.service, req.params.id);
    res.json({ ttl });
  });
  r.put('/:tenant/:service/:id/checks/:check/:state', async (req, res) => {
    const status = checkStates[req.params.state];
    if (!status) throw new ValidationError('state', 'must be pass, warn or fail');
    const body = req.body as { output?: unknown } | undefined;
    const output = typeof body?.output === 'string' ? body.output.slice(0, 4096) : '';
    const inst = await registry.updateTtlCheck(req.params.tenant, req.params.service, req.params.id, req.params.check, status, output);
    res.json(inst);
  });

  r.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof ValidationError) {
      res.status(400).json({ error: 'invalid', field: err.field, message: err.message });
    } else if (err instanceof NotFoundError) {
      res.status(404).json({ error: 'not_found', message: err.message });
    } else if (err instanceof StoreUnavailableError || err instanceof StoreClosedError) {
      res.status(503).json({ error: 'unavailable', message: err.message });
    } else if (err instanceof StoreError) {
      res.status(500).json({ error: err.code, message: err.message });
    } else if (typeof err === 'object' && err !== null && 'type' in err && (err as { type: unknown }).type === 'entity.parse.failed') {
      res.status(400).json({ error: 'invalid', field: '(body)', message: 'body is not valid JSON' });
    } else if (typeof err === 'object' && err !== null && 'status' in err && (err as { status: unknown }).status === 413) {
      res.status(413).json({ error: 'too_large', field: '(body)', message: 'body larger than 64 KiB' });
    } else {
      res.status(500).json({ error: 'internal', message: err instanceof Error ? err.message : String(err) });
    }
  });
  return r;
}

/**
 * Serves the WebSocket watch on `server` at WATCH_PATH: first a `snapshot` message
 * ({type, index, instances}), then one message per change ({type: register|update|
 * deregister, revision, tenant, service, id, instance?}). Returns a detach function.
 */
export function attachRegistryWatch(server: Server, registry: Registry, opts: HttpOptions = {}): () => Promise<void> {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== WATCH_PATH) return; // someone else's upgrade
    const qtoken = url.searchParams.get('token');
    const auth = req.headers.authorization ?? (qtoken ? `Bearer ${qtoken}` : undefined);
    let f: Filter;
    try {
      if (!bearerOk(auth, opts.token)) throw new Error('401 Unauthorized');
      f = queryFilter(Object.fromEntries(url.searchParams) as Request['query'], {});
    } catch (err) {
      const status = err instanceof ValidationError ? '400 Bad Request' : '401 Unauthorized';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const maxBacklog = opts.maxWatchBacklogBytes ?? DEFAULT_WATCH_BACKLOG_BYTES;
      const unsubscribe = registry.subscribe(f, (ev) => {
        if (ws.readyState !== ws.OPEN) return;
        if (watchSendDecision(ws.bufferedAmount, maxBacklog) === 'drop') {
          const backlogBytes = ws.bufferedAmount;
          unsubscribe();
          ws.terminate(); // a close frame would only queue behind the backlog
          opts.onWatchDropped?.({ backlogBytes, ...(req.socket.remoteAddress ? { remote: `${req.socket.remoteAddress}:${req.socket.remotePort}` } : {}) });
          return;
        }
        ws.send(JSON.stringify(ev));
      });
      const snap = registry.list(f);
      ws.send(JSON.stringify({ type: 'snapshot', index: snap.index, instances: snap.instances }));
      ws.on('close', unsubscribe);
      ws.on('error', unsubscribe);
      ws.on('message', () => undefined); // clients have nothing to say; ignore
    });
  };
  server.on('upgrade', onUpgrade);
  return async () => {
    server.off('upgrade', onUpgrade);
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
  };
}

export interface RegistryHttpServer {
  server: Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

/** A standalone HTTP server with the REST router and the WebSocket watch. */
export async function serveRegistryHttp(
  registry: Registry,
  opts: HttpOptions & { host?: string; port?: number } = {},
): Promise<RegistryHttpServer> {
  const app = express();
  app.disable('x-powered-by');
  app.use(SERVICES_BASE, createRegistryRouter(registry, opts));
  app.use((_req, res) => res.status(404).json({ error: 'not_found', message: 'no such route' }));
  const server = createServer(app);
  const detach = attachRegistryWatch(server, registry, opts);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    const failed = (err: Error) => reject(err);
    server.once('error', failed);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', failed);
      // From now on a server error (EMFILE on accept...) is reported, never an uncaught crash.
      server.on('error', (err) => opts.onServerError?.(err));
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: async () => {
      await detach();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
