/**
 * The agent's unix socket `<state-dir>/agent.sock` (HTTP over a unix socket):
 *   GET    /v1/logs/:id?tail=N       an instance's output (text/plain; `tenet units logs`)
 *   GET    /v1/instances             the instances this agent runs (InstanceStatus[])
 *   PUT    /v1/services/:service     a container registers a service of its own: {port, check?}
 *   DELETE /v1/services/:service     … and removes it
 * The container names itself with the header `X-Tenet-Instance: <instance id>` (its
 * environment has TENET_INSTANCE_ID and TENET_AGENT_SOCKET); the agent fills tenant,
 * address and registry id from that instance. The socket is mode 0600 (root only):
 * it trusts whoever can open it.
 */
import { chmodSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { TenetError } from '../util/errors.js';
import type { DriverInstance } from './driver.js';
import type { UnitCheckSpec } from './types.js';

export const INSTANCE_HEADER = 'x-tenet-instance';
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export interface SidekickDeps {
  instances(): DriverInstance[];
  logs(id: string, tail: number): Promise<string>;
  /** Adds or replaces a container-registered service; returns what was registered. */
  addService(instanceId: string, service: string, spec: { port: number; check?: UnitCheckSpec }): Record<string, unknown>;
  removeService(instanceId: string, service: string): boolean;
}

/** Validates a sidekick registration body (pure); returns an error message or the spec. */
export function parseSidekickBody(body: unknown): { port: number; check?: UnitCheckSpec } | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object {port, check?}';
  const b = body as Record<string, unknown>;
  if (!Number.isInteger(b.port) || (b.port as number) < 1 || (b.port as number) > 65535) return 'port: must be an integer 1-65535';
  if (b.check === undefined) return { port: b.port as number };
  const c = b.check as Record<string, unknown>;
  if (typeof c !== 'object' || c === null || !['tcp', 'http', 'ttl'].includes(String(c.type))) return 'check.type: must be tcp, http or ttl';
  for (const f of ['intervalMs', 'timeoutMs', 'ttlMs'] as const) {
    if (c[f] !== undefined && (!Number.isInteger(c[f]) || (c[f] as number) < 100 || (c[f] as number) > 3_600_000)) return `check.${f}: must be an integer 100-3600000`;
  }
  if (c.type === 'ttl' && c.ttlMs === undefined) return 'check.ttlMs: required for a ttl check';
  if (c.path !== undefined && (typeof c.path !== 'string' || !c.path.startsWith('/'))) return 'check.path: must start with /';
  return { port: b.port as number, check: c as unknown as UnitCheckSpec };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (typeof body === 'string') {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
  } else {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 64 * 1024) throw new Error('body larger than 64 KiB');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

async function handle(deps: SidekickDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://agent');
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (req.method === 'GET' && parts[0] === 'v1' && parts[1] === 'logs' && parts.length === 3) {
    const tail = url.searchParams.has('tail') ? Number(url.searchParams.get('tail')) : 100;
    if (!Number.isInteger(tail) || tail < 0) return send(res, 400, { error: 'invalid', message: 'tail: must be a non-negative integer' });
    try {
      return send(res, 200, await deps.logs(parts[2]!, tail));
    } catch (err) {
      return send(res, 404, { error: 'not_found', message: (err as Error).message });
    }
  }
  if (req.method === 'GET' && url.pathname === '/v1/instances') return send(res, 200, deps.instances().map((i) => i.status));
  if (parts[0] === 'v1' && parts[1] === 'services' && parts.length === 3 && (req.method === 'PUT' || req.method === 'DELETE')) {
    const service = parts[2]!;
    if (!NAME.test(service)) return send(res, 400, { error: 'invalid', message: `service: must be a DNS label, got ${JSON.stringify(service)}` });
    const id = req.headers[INSTANCE_HEADER];
    if (typeof id !== 'string' || !id) return send(res, 400, { error: 'invalid', message: `header X-Tenet-Instance is required (the instance id, $TENET_INSTANCE_ID)` });
    if (!deps.instances().some((i) => i.assignment.id === id)) return send(res, 404, { error: 'not_found', message: `instance '${id}' does not run on this agent` });
    if (req.method === 'DELETE') {
      return deps.removeService(id, service) ? send(res, 204, '') : send(res, 404, { error: 'not_found', message: `service '${service}' of '${id}' was not registered here` });
    }
    let body: unknown;
    try {
      body = await readBody(req);
    } catch (err) {
      return send(res, 400, { error: 'invalid', message: `body: ${(err as Error).message}` });
    }
    const spec = parseSidekickBody(body);
    if (typeof spec === 'string') return send(res, 400, { error: 'invalid', message: spec });
    return send(res, 200, deps.addService(id, service, spec));
  }
  send(res, 404, { error: 'not_found', message: `no route ${req.method} ${url.pathname}` });
}

/** Listens on `socketPath` (a stale socket file is replaced). */
export async function startSidekick(socketPath: string, deps: SidekickDeps): Promise<Server> {
  rmSync(socketPath, { force: true });
  const server = createServer((req, res) => {
    handle(deps, req, res).catch((err: Error) => {
      if (!res.headersSent) send(res, 500, { error: 'internal', message: err.message });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(socketPath, 0o600);
  return server;
}

/** Client of an agent socket: `tenet units logs` and tests. Resolves with status and body text. */
export function agentSocketRequest(socketPath: string, method: string, path: string, opts: { body?: unknown; instance?: string; timeoutMs?: number } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = request(
      {
        socketPath,
        method,
        path,
        timeout: opts.timeoutMs ?? 10_000,
        headers: {
          ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          ...(opts.instance ? { [INSTANCE_HEADER]: opts.instance } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`agent socket ${socketPath}: no answer in time`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The last `tail` lines of an instance's output, read through its agent's socket. */
export async function readAgentLogs(socketPath: string, id: string, tail = 100): Promise<string> {
  const r = await agentSocketRequest(socketPath, 'GET', `/v1/logs/${encodeURIComponent(id)}?tail=${tail}`);
  if (r.status !== 200) {
    let msg = r.body;
    try {
      msg = (JSON.parse(r.body) as { message: string }).message;
    } catch {
      /* plain text */
    }
    throw new TenetError(r.status === 404 ? 'EAGENT_NO_LOGS' : 'EAGENT_SOCKET', msg, { socketPath, id, status: r.status });
  }
  return r.body;
}
