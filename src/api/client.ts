/**
 * Typed HTTP client of the controller API (used by the CLI and tests). Every
 * failure is an ApiError: `status` (0 = could not reach the API) and, for an invalid
 * topology, the validator's `issues`.
 */
import WebSocket from 'ws';
import type { ApplyResult, ChainInfo, ControllerStatus, EndpointInfo, HostStatus, Plan } from '../controller/index.js';
import type { ValidationIssue } from '../model/index.js';
import { TenetError } from '../util/errors.js';
import { formatIssues } from '../util/issues.js';
import { EVENTS_PATH, type ApiErrorBody, type EventMessage } from './protocol.js';
import type { NetworkInfo, TenantInfo } from './views.js';
import type { AgentAssignment, AgentInfo, AgentRegistration, InstanceStatus, UnitInfo } from '../scheduler/records.js';

export const DEFAULT_API_URL = 'http://127.0.0.1:6680';
const DEFAULT_TIMEOUT_MS = 30_000;
/** Longest single GET /v1/wait. */
export const WAIT_CHUNK_S = 60;

/** The API answered with an error, or could not be reached (status 0). */
export class ApiError extends TenetError {
  constructor(
    readonly status: number,
    /** The `error` field of the answer ("invalid topology", "unauthorized", ...). */
    readonly error: string,
    message: string,
    readonly issues: ValidationIssue[] = [],
    context: Record<string, unknown> = {},
  ) {
    super(status === 400 && issues.length ? 'ETOPOLOGY' : 'EAPI', message, { status, error, ...(issues.length ? { issues } : {}), ...context });
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface ApiClientOptions {
  /** Base URL, e.g. http://127.0.0.1:6680. */
  url: string;
  token?: string;
  /** Per request (GET /v1/wait adds its own timeout on top), and for the event stream's opening handshake. */
  timeoutMs?: number;
}

export interface EndpointFilter {
  tenant?: string;
  network?: string;
  host?: string;
}

export class ApiClient {
  readonly url: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(opts: ApiClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  health(): Promise<{ ok: boolean; generation: number }> {
    return this.json('GET', '/healthz');
  }
  status(): Promise<ControllerStatus> {
    return this.json('GET', '/v1/status');
  }
  hosts(): Promise<HostStatus[]> {
    return this.json('GET', '/v1/hosts');
  }
  tenants(): Promise<TenantInfo[]> {
    return this.json('GET', '/v1/tenants');
  }
  networks(tenant?: string): Promise<NetworkInfo[]> {
    return this.json('GET', `/v1/networks${query({ tenant })}`);
  }
  endpoints(filter: EndpointFilter = {}): Promise<EndpointInfo[]> {
    return this.json('GET', `/v1/endpoints${query({ ...filter })}`);
  }
  chains(tenant?: string): Promise<ChainInfo[]> {
    return this.json('GET', `/v1/chains${query({ tenant })}`);
  }
  topology(): Promise<{ generation: number; doc: unknown }> {
    return this.json('GET', '/v1/topology');
  }
  plan(doc: unknown): Promise<Plan> {
    return this.json('POST', '/v1/plan', doc);
  }
  apply(doc: unknown): Promise<ApplyResult> {
    return this.json('PUT', '/v1/topology', doc);
  }
  /** One tenant, or every tenant without a name. */
  deleteTenant(name?: string): Promise<ApplyResult> {
    return this.json('DELETE', name === undefined ? '/v1/topology' : `/v1/tenants/${encodeURIComponent(name)}`);
  }
  /**
   * Status once every reachable host realized `generation` (realized:false after `timeoutS`).
   * Long waits go out as several requests of at most WAIT_CHUNK_S: fetch (undici) gives
   * up on a response whose headers take more than 300 s.
   */
  async wait(generation: number, timeoutS: number): Promise<ControllerStatus> {
    let left = timeoutS;
    for (;;) {
      const chunk = Math.min(left, WAIT_CHUNK_S);
      left -= chunk;
      const s = await this.json<ControllerStatus>('GET', `/v1/wait${query({ generation: String(generation), timeout: String(chunk) })}`, undefined, chunk * 1000 + this.timeoutMs);
      if (s.realized || left <= 0) return s;
    }
  }
  // ---- units and agents (issue 9)
  units(): Promise<UnitInfo[]> {
    return this.json('GET', '/v1/units');
  }
  /** Adds or replaces (by name) units in the stored document. */
  submitUnits(units: unknown[]): Promise<ApplyResult> {
    return this.json('POST', '/v1/units', { units });
  }
  startUnit(name: string): Promise<ApplyResult> {
    return this.json('POST', `/v1/units/${encodeURIComponent(name)}/start`);
  }
  stopUnit(name: string): Promise<ApplyResult> {
    return this.json('POST', `/v1/units/${encodeURIComponent(name)}/stop`);
  }
  destroyUnit(name: string): Promise<ApplyResult> {
    return this.json('DELETE', `/v1/units/${encodeURIComponent(name)}`);
  }
  agents(): Promise<AgentInfo[]> {
    return this.json('GET', '/v1/agents');
  }
  registerAgent(host: string, registration: AgentRegistration): Promise<{ host: string; leaseId: string; ttlS: number }> {
    return this.json('POST', `/v1/agents/${encodeURIComponent(host)}`, registration);
  }
  /** ApiError 404 (error "lease-expired") when the lease is gone. */
  heartbeat(host: string, leaseId: string): Promise<{ ttlS: number }> {
    return this.json('POST', `/v1/agents/${encodeURIComponent(host)}/heartbeat`, { leaseId });
  }
  async reportInstances(host: string, leaseId: string, instances: InstanceStatus[]): Promise<void> {
    await this.request('PUT', `/v1/agents/${encodeURIComponent(host)}/instances`, { leaseId, instances });
  }
  /** Long poll: answers once the host's assignment index differs from `index` (0: at once) or after `waitS`. */
  assignments(host: string, index = 0, waitS = 30): Promise<{ index: number; assignments: AgentAssignment[] }> {
    return this.json('GET', `/v1/agents/${encodeURIComponent(host)}/assignments${query({ index: String(index), waitS: String(waitS) })}`, undefined, waitS * 1000 + this.timeoutMs);
  }

  async metrics(): Promise<string> {
    return (await this.request('GET', '/metrics')).text;
  }

  /**
   * Opens the event stream; `onMessage` gets the snapshot, then every event. Resolves
   * once the connection is open (so later changes are seen), with a function that closes it.
   */
  events(onMessage: (m: EventMessage) => void, onClose?: (err?: Error) => void): Promise<() => void> {
    const url = new URL(this.url + EVENTS_PATH);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    // Without a handshake timeout a server that accepts but never answers the upgrade would hang the caller.
    const ws = new WebSocket(url, { headers: this.token ? { authorization: `Bearer ${this.token}` } : {}, handshakeTimeout: this.timeoutMs });
    return new Promise((resolve, reject) => {
      let open = false;
      const fail = (err: Error) => (open ? onClose?.(err) : reject(err));
      ws.on('unexpected-response', (_req, res) => {
        fail(new ApiError(res.statusCode ?? 0, res.statusCode === 401 ? 'unauthorized' : 'refused', `event stream refused: ${res.statusCode} ${res.statusMessage}`));
        ws.terminate();
      });
      ws.on('error', (err) => fail(new ApiError(0, 'unreachable', `cannot open the event stream at ${url.href}: ${err.message}`, [], { url: url.href })));
      ws.on('open', () => {
        open = true;
        resolve(() => ws.close());
      });
      ws.on('close', () => onClose?.());
      ws.on('message', (data) => {
        let m: unknown;
        try {
          m = JSON.parse(String(data));
        } catch {
          return; // not ours to crash on; the server only sends JSON
        }
        if (isObject(m) && typeof m.type === 'string') onMessage(m as unknown as EventMessage);
      });
    });
  }

  private async json<T>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const r = await this.request(method, path, body, timeoutMs);
    try {
      return JSON.parse(r.text) as T;
    } catch {
      throw new ApiError(r.status, 'malformed reply', `${method} ${path}: the API answered ${r.status} with something that is not JSON`);
    }
  }

  private async request(method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.url + path, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      // Inside the try: the connection can also break (or the timeout fire) while the body arrives.
      text = await res.text();
    } catch (err) {
      const e = err as Error & { cause?: Error };
      const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (e.cause?.message ?? e.message);
      throw new ApiError(0, 'unreachable', `cannot reach the controller API at ${this.url} (${method} ${path}): ${why}`, [], { url: this.url, method, path });
    }
    if (res.ok) return { status: res.status, text };
    let b: Partial<ApiErrorBody> = {};
    try {
      const j: unknown = JSON.parse(text);
      if (isObject(j)) b = j as Partial<ApiErrorBody>;
    } catch {
      // not JSON (a proxy's error page...): status text only
    }
    const issues = Array.isArray(b.issues) ? b.issues : [];
    const error = typeof b.error === 'string' ? b.error : res.statusText;
    const what = typeof b.message === 'string' ? b.message : `${res.status} ${res.statusText}`;
    const message = issues.length ? `${what}\n${formatIssues(issues)}` : res.status === 401 ? `${what} (pass --token, --token-file or TENET_TOKEN)` : what;
    throw new ApiError(res.status, error, message, issues, { method, path });
  }
}

function query(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}
