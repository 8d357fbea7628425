/**
 * The controller's REST API and WebSocket event stream (express 5 + ws). It only
 * translates HTTP to ControllerApi calls; every route is listed in docs/API.md.
 *
 *   GET    /healthz                       open: { ok, generation }
 *   GET    /metrics                       Prometheus text (controller registry + API counters)
 *   GET    /v1/topology                   { generation, doc }
 *   PUT    /v1/topology                   apply a document -> ApplyResult | 400 { issues }
 *   DELETE /v1/topology                   delete every tenant -> ApplyResult
 *   DELETE /v1/tenants/:name              delete one tenant -> ApplyResult | 404
 *   POST   /v1/plan                       the diff an apply would make -> Plan | 400 { issues }
 *   GET    /v1/status | /v1/hosts | /v1/tenants | /v1/networks | /v1/endpoints
 *   GET    /v1/chains[?tenant=T]           service chains: hops, instances, health
 *   GET    /v1/wait?generation=N&timeout=S  ControllerStatus once realized (realized:false at timeout)
 *   /v1/agents…, /v1/units…              units and agents (issue 9): see ./units.ts
 *   WS     /v1/events                     { type:'snapshot', status } then one ControllerEvent per message
 *   /v1/services/...                     the service registry, when the daemon passes it as an extension
 * Every route but /healthz needs `Authorization: Bearer <token>` when a token is set
 * (the WebSocket also accepts `?token=`).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ControllerApi, ControllerEvent } from '../controller/index.js';
import type { ValidationIssue } from '../model/index.js';
import { StoreClosedError, StoreUnavailableError } from '../store/index.js';
import { TenetError, UsageError } from '../util/errors.js';
import { parseHostPort } from '../util/hostport.js';
import { bearerOk } from '../util/token.js';
import { EVENTS_PATH, type ApiErrorBody, type SnapshotMessage } from './protocol.js';
import { networkInfos, tenantInfos } from './views.js';
import { mountUnitRoutes } from './units.js';

export const DEFAULT_BODY_LIMIT = '16mb';
export const DEFAULT_WAIT_S = 30;
export const MAX_WAIT_S = 600;
/** A WebSocket client with more than this many bytes unsent is dropped (it stopped reading). */
export const DEFAULT_EVENT_BACKLOG_BYTES = 4 << 20;

export interface ApiOptions {
  /** "host:port" ("[::1]:port" for IPv6); port 0 picks a free one. */
  listen: string;
  /** Bearer token every route but /healthz requires; null turns auth off. */
  token: string | null;
  logger?: Logger;
  /** express/body-parser size string; larger bodies get 413. */
  bodyLimit?: string;
  maxEventBacklogBytes?: number;
  /** More routes served on the same server (the daemon mounts the service registry this way; src/api does not import it). */
  extensions?: ApiExtension[];
}

/**
 * A router mounted at `path` ahead of the API's own token check (it checks the token
 * itself: the registry's router does), optionally with a WebSocket endpoint.
 */
export interface ApiExtension {
  path: string;
  router: express.RequestHandler;
  /** The extension's WebSocket path and how to serve it on the API's HTTP server (returns a detach). */
  websocket?: { path: string; attach(server: Server): () => Promise<void> };
}

export interface ApiServer {
  /** Base URL, e.g. http://127.0.0.1:6680 (a wildcard listen address is shown as loopback). */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** Answered as `status` with an ApiErrorBody. */
export class HttpError extends TenetError {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super('EHTTP', message, { status, error });
  }
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/** A TopologyError (or anything shaped like one: code ETOPOLOGY with an issue list). */
function topologyIssues(err: unknown): ValidationIssue[] | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; issues?: unknown };
  return e.code === 'ETOPOLOGY' && Array.isArray(e.issues) ? (e.issues as ValidationIssue[]) : undefined;
}

/** Body-parser errors carry `type` and `status`. */
function parserError(err: unknown): { type: string; status: number; message: string } | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { type?: unknown; status?: unknown; message?: unknown };
  return typeof e.type === 'string' && typeof e.status === 'number' ? { type: e.type, status: e.status, message: String(e.message) } : undefined;
}

/** Maps an error to its HTTP answer (pure; exported for tests). */
export function errorResponse(err: unknown, bodyLimit = DEFAULT_BODY_LIMIT): { status: number; body: ApiErrorBody } {
  const issues = topologyIssues(err);
  if (issues) return { status: 400, body: { error: 'invalid topology', message: `invalid topology: ${issues.length} error(s)`, issues } };
  if (err instanceof HttpError) return { status: err.status, body: { error: err.error, message: err.message } };
  if (err instanceof UsageError) return { status: 400, body: { error: 'bad request', message: err.message } };
  const p = parserError(err);
  if (p?.type === 'entity.parse.failed') return { status: 400, body: { error: 'invalid JSON', message: `body is not valid JSON: ${p.message}` } };
  if (p?.type === 'entity.too.large') return { status: 413, body: { error: 'too large', message: `body larger than ${bodyLimit}` } };
  if (p && p.status >= 400 && p.status < 500) return { status: p.status, body: { error: 'bad request', message: p.message } };
  if (err instanceof StoreUnavailableError || err instanceof StoreClosedError) return { status: 503, body: { error: 'unavailable', message: err.message } };
  if (err instanceof TenetError) return { status: 500, body: { error: err.code, message: err.message } };
  return { status: 500, body: { error: 'internal', message: err instanceof Error ? err.message : String(err) } };
}

function queryString(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new HttpError(400, 'bad request', `query parameter ${name} must appear once`);
  return v;
}

function queryNumber(req: Request, name: string, min: number, max: number, integer: boolean): number | undefined {
  const v = queryString(req, name);
  if (v === undefined) return undefined;
  if (!(integer ? /^\d+$/ : /^\d+(\.\d+)?$/).test(v) || Number(v) < min || Number(v) > max) throw new HttpError(400, 'bad request', `${name} must be a number from ${min} to ${max}, got '${v}'`);
  return Number(v);
}

/**
 * Bytes of each request body the JSON parser read. body-parser turns a zero-length body
 * into {} (a valid empty topology, which would delete every tenant!) whatever the framing
 * (Content-Length: 0, or chunked with no data), so docOf goes by the bytes actually read.
 */
const bodyBytes = new WeakMap<IncomingMessage, number>();

/** The document of a PUT/POST; an empty body is a 400 rather than an apply of {}. */
function docOf(req: Request): unknown {
  if (req.body === undefined || !bodyBytes.get(req)) throw new HttpError(400, 'empty body', 'send the topology document as the JSON request body');
  return req.body;
}

/** The express app (without the WebSocket stream, which needs the HTTP server). */
export function createApiApp(controller: ControllerApi, opts: Omit<ApiOptions, 'listen'>): express.Express {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const log = opts.logger;
  const requests =
    (controller.metrics.getSingleMetric('tenet_api_requests_total') as Counter<'method' | 'route' | 'code'> | undefined) ??
    new Counter({ name: 'tenet_api_requests_total', help: 'API requests by route and status code', labelNames: ['method', 'route', 'code'], registers: [controller.metrics] });

  const app = express();
  app.disable('x-powered-by');
  app.set('json spaces', 0);
  app.use((req, res, next) => {
    const t0 = process.hrtime.bigint();
    res.on('finish', () => {
      // The matched route pattern, never the URL (label values must stay few); answers given
      // before routing (401, unparsable body, 404) count as "none".
      const route = (req.route as { path?: string } | undefined)?.path ?? 'none';
      requests.inc({ method: req.method, route: String(route), code: String(res.statusCode) });
      log?.debug({ method: req.method, url: req.originalUrl, status: res.statusCode, ms: Number(process.hrtime.bigint() - t0) / 1e6 }, 'api request');
    });
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, generation: controller.status().generation });
  });

  for (const x of opts.extensions ?? []) app.use(x.path, x.router);

  app.use((req, res, next) => {
    if (bearerOk(req.headers.authorization, opts.token)) return next();
    res.status(401).set('WWW-Authenticate', 'Bearer').json({ error: 'unauthorized', message: 'missing or wrong bearer token' } satisfies ApiErrorBody);
  });

  // Any content type: `curl -d @file` sends form-urlencoded by default. Non-strict so
  // that a JSON scalar reaches the validator and gets its "must be an object" issue.
  app.use(express.json({ limit: bodyLimit, type: () => true, strict: false, verify: (req, _res, buf) => void bodyBytes.set(req, buf.length) }));

  app.get('/metrics', async (_req, res) => {
    res.type(controller.metrics.contentType).send(await controller.metrics.metrics());
  });

  app.get('/v1/topology', (_req, res) => {
    res.json(controller.topology());
  });
  app.put('/v1/topology', async (req, res) => {
    res.json(await controller.apply(docOf(req)));
  });
  app.delete('/v1/topology', async (_req, res) => {
    res.json(await controller.deleteTenant());
  });
  app.delete('/v1/tenants/:name', async (req, res) => {
    const name = req.params.name;
    const model = controller.model();
    if (!model?.tenants.some((t) => t.name === name)) throw new HttpError(404, 'not found', `no tenant '${name}'`);
    res.json(await controller.deleteTenant(name));
  });
  app.post('/v1/plan', async (req, res) => {
    res.json(await controller.plan(docOf(req)));
  });

  app.get('/v1/status', (_req, res) => {
    res.json(controller.status());
  });
  app.get('/v1/hosts', (_req, res) => {
    res.json(controller.status().hosts);
  });
  app.get('/v1/tenants', (_req, res) => {
    res.json(tenantInfos(controller.model()));
  });
  app.get('/v1/networks', (req, res) => {
    res.json(networkInfos(controller.model(), queryString(req, 'tenant')));
  });
  app.get('/v1/endpoints', (req, res) => {
    const tenant = queryString(req, 'tenant');
    const network = queryString(req, 'network');
    const host = queryString(req, 'host');
    res.json(
      controller
        .endpoints()
        .filter((e) => (tenant === undefined || e.tenant === tenant) && (network === undefined || e.network === network) && (host === undefined || e.host === host)),
    );
  });
  app.get('/v1/chains', (req, res) => {
    const tenant = queryString(req, 'tenant');
    res.json(controller.chains().filter((c) => tenant === undefined || c.tenant === tenant));
  });
  mountUnitRoutes(app, controller);
  app.get('/v1/wait', async (req, res) => {
    const generation = queryNumber(req, 'generation', 0, Number.MAX_SAFE_INTEGER, true) ?? controller.status().generation;
    const timeoutS = queryNumber(req, 'timeout', 0, MAX_WAIT_S, false) ?? DEFAULT_WAIT_S;
    // A client that goes away ends its wait (else it would hold a listener and a timer until the timeout).
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    const s = await controller.waitRealized(generation, timeoutS * 1000, gone.signal);
    if (!gone.signal.aborted) res.json(s);
  });
  app.get(EVENTS_PATH, (_req, res) => {
    res.status(426).set('Upgrade', 'websocket').json({ error: 'upgrade required', message: `${EVENTS_PATH} is a WebSocket stream` } satisfies ApiErrorBody);
  });

  app.use((req, res) => {
    res.status(404).json({ error: 'not found', message: `no route ${req.method} ${req.path}` } satisfies ApiErrorBody);
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const { status, body } = errorResponse(err, bodyLimit);
    if (status >= 500) log?.error({ err, method: req.method, url: req.originalUrl }, 'api request failed');
    res.status(status).json(body);
  });
  return app;
}

/**
 * The event stream on `server` at EVENTS_PATH. One listener on the controller fans
 * out to every client; a client that stops reading is dropped, not buffered forever.
 */
export function attachEventStream(server: Server, controller: ControllerApi, opts: Pick<ApiOptions, 'token' | 'logger' | 'maxEventBacklogBytes' | 'extensions'>): () => Promise<void> {
  const others = new Set((opts.extensions ?? []).flatMap((x) => (x.websocket ? [x.websocket.path] : [])));
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  const clients = new Set<WebSocket>();
  const maxBacklog = opts.maxEventBacklogBytes ?? DEFAULT_EVENT_BACKLOG_BYTES;
  const send = (ws: WebSocket, text: string) => {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > maxBacklog) {
      opts.logger?.warn({ backlogBytes: ws.bufferedAmount }, 'dropping an event stream client that stopped reading');
      clients.delete(ws);
      ws.terminate(); // a close frame would only queue behind the backlog
      return;
    }
    ws.send(text);
  };
  const onEvent = (ev: ControllerEvent) => {
    if (clients.size === 0) return;
    const text = JSON.stringify(ev);
    for (const ws of clients) send(ws, text);
  };
  controller.on('event', onEvent);

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (others.has(url.pathname)) return; // an extension's upgrade listener answers it
    if (url.pathname !== EVENTS_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const qtoken = url.searchParams.get('token');
    const auth = req.headers.authorization ?? (qtoken ? `Bearer ${qtoken}` : undefined);
    if (!bearerOk(auth, opts.token)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      // Snapshot and subscription in the same tick: no event can fall between them.
      const snapshot: SnapshotMessage = { type: 'snapshot', status: controller.status(), at: new Date().toISOString() };
      ws.send(JSON.stringify(snapshot));
      clients.add(ws);
      const drop = () => clients.delete(ws);
      ws.on('close', drop);
      ws.on('error', drop);
      ws.on('message', () => undefined); // clients have nothing to say
    });
  };
  server.on('upgrade', onUpgrade);
  return async () => {
    server.off('upgrade', onUpgrade);
    controller.off('event', onEvent);
    for (const ws of clients) ws.terminate();
    clients.clear();
    await new Promise<void>((r) => wss.close(() => r()));
  };
}

/** Starts the API; resolves once listening. */
export async function startApi(controller: ControllerApi, opts: ApiOptions): Promise<ApiServer> {
  const { host, port } = parseHostPort(opts.listen, 'the API listen address');
  const app = createApiApp(controller, opts);
  const server = createServer(app);
  const detachEvents = attachEventStream(server, controller, opts);
  const detachOthers = (opts.extensions ?? []).flatMap((x) => (x.websocket ? [x.websocket.attach(server)] : []));
  const detach = async () => {
    await Promise.all([detachEvents(), ...detachOthers.map((d) => d())]);
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await detach();
    throw new TenetError('ELISTEN', `cannot listen on ${opts.listen} for the API: ${(err as Error).message}`, { listen: opts.listen }, { cause: err });
  }
  // After start a server error (EMFILE on accept, ...) is logged, never an uncaught crash.
  server.on('error', (err) => opts.logger?.error({ err }, 'api server error'));
  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost(host)}:${bound}`,
    port: bound,
    server,
    close: () =>
      (closing ??= (async () => {
        await detach();
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      })()),
  };
}
