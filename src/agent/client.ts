/** The agent's HTTP client of the controller API (bearer token, JSON, timeouts). */
import { TenetError } from '../util/errors.js';

/** The controller answered with an error status. */
export class ControllerHttpError extends TenetError {
  constructor(
    readonly status: number,
    readonly body: unknown,
    method: string,
    path: string,
  ) {
    const msg = typeof body === 'object' && body !== null && 'message' in body ? String((body as { message: unknown }).message) : typeof body === 'string' ? body.slice(0, 200) : '';
    super('EAGENT_HTTP', `${method} ${path}: HTTP ${status}${msg ? `: ${msg}` : ''}`, { status, method, path });
  }
}

/** The controller could not be reached at all (refused, timeout, DNS). */
/** The most telling reason in an error's cause chain: ECONNREFUSED rather than "fetch failed" (pure). */
export function networkReason(err: unknown): string {
  let e: unknown = err;
  let fallback = err instanceof Error ? err.message : String(err);
  for (let depth = 0; depth < 5 && e && typeof e === 'object'; depth++) {
    const x = e as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown; errors?: unknown[] };
    if (typeof x.code === 'string' && x.code !== 'UND_ERR') return x.code;
    if (x.name === 'TimeoutError') return 'timed out';
    if (typeof x.message === 'string' && x.message && x.message !== 'fetch failed') fallback = x.message;
    e = x.cause ?? (Array.isArray(x.errors) ? x.errors[0] : undefined);
  }
  return fallback;
}

export class ControllerUnreachableError extends TenetError {
  constructor(url: string, cause: unknown) {
    const why = networkReason(cause);
    super('EAGENT_UNREACHABLE', `controller unreachable at ${url}: ${why}`, { url }, { cause });
  }
}

export class ControllerClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | null,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, timeoutMs = 10_000, signal?: AbortSignal): Promise<T> {
    const url = `${this.baseUrl.replace(/\/$/, '')}${path}`;
    const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.any(signals),
      });
    } catch (err) {
      throw new ControllerUnreachableError(this.baseUrl, err);
    }
    const text = await res.text();
    let parsed: unknown = text;
    if (text && (res.headers.get('content-type') ?? '').includes('json')) {
      try {
        parsed = JSON.parse(text);
      } catch {
        /* keep the text */
      }
    }
    if (!res.ok) throw new ControllerHttpError(res.status, parsed, method, path);
    return (text ? parsed : undefined) as T;
  }
}
