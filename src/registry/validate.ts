/**
 * Validation of registrations, shared by every transport (REST today, the agent's
 * unix socket later). Errors name the offending field.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { TenetError } from '../util/errors.js';
import type { CheckSpec, Registration } from './types.js';

export class RegistryError extends TenetError {}

/** Bad registration input; `field` is the JSON path of the first problem (e.g. `checks[0].url`). */
export class ValidationError extends RegistryError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('EREGISTRY_INVALID', `${field}: ${message}`, { field });
  }
}

export class NotFoundError extends RegistryError {
  constructor(what: string, context: Record<string, unknown> = {}) {
    super('EREGISTRY_NOT_FOUND', `${what} not found`, context);
  }
}

export const MAX_META_BYTES = 4096;
export const MAX_CHECKS = 8;
const DEFAULT_CHECK_TIMEOUT_MS = 2000;

/** DNS label: the names appear in `<id>.<service>.<tenant>.tenet.`. */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const label = (what: string) => z.string().regex(LABEL, `${what} must be a DNS label (a-z, 0-9, '-', 1-63 chars)`);

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
/** '500ms', '10s', '1.5m', '2h' or a number of seconds -> milliseconds. */
export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  const m = DURATION.exec(v.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(n * mult);
}

const duration = (min: number, max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `must be a duration between ${min} ms and ${max} ms (e.g. "10s")` });
      return z.NEVER;
    }
    return ms;
  });

const checkSchema = z.discriminatedUnion('type', [
  z.object({
    id: label('check id').optional(),
    type: z.literal('http'),
    url: z.string().refine((u) => {
      try {
        const p = new URL(u).protocol;
        return p === 'http:' || p === 'https:';
      } catch {
        return false;
      }
    }, 'must be an http(s) URL'),
    interval: duration(100, 3_600_000).default(10_000),
    timeout: duration(50, 60_000).optional(),
  }),
  z.object({
    id: label('check id').optional(),
    type: z.literal('tcp'),
    target: z
      .string()
      .refine((s) => /^(.+):(\d{1,5})$/.test(s) && Number(s.split(':').at(-1)) <= 65535, 'must be host:port')
      .optional(),
    interval: duration(100, 3_600_000).default(10_000),
    timeout: duration(50, 60_000).optional(),
  }),
  z.object({
    id: label('check id').optional(),
    type: z.literal('ttl'),
    ttl: duration(100, 86_400_000),
  }),
]);

const bodySchema = z.object({
  address: z.string().refine((a) => isIP(a) !== 0, 'must be an IPv4 or IPv6 address'),
  port: z.number().int('must be an integer').min(1, 'must be 1-65535').max(65535, 'must be 1-65535'),
  tags: z.array(z.string().min(1).max(255)).max(64).default([]),
  meta: z
    .record(z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'keys are [A-Za-z0-9_.-], 1-128 chars'), z.string())
    .default({})
    .refine((m) => Buffer.byteLength(JSON.stringify(m)) <= MAX_META_BYTES, `must be at most ${MAX_META_BYTES} bytes as JSON`),
  ttl: duration(1000, 86_400_000).default(30_000),
  checks: z.array(checkSchema).max(MAX_CHECKS).default([]),
  deregisterCriticalAfter: duration(0, 86_400_000).default(0),
});

function pathOf(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(body)';
}

export function checkNames(names: { tenant: unknown; service: unknown; id?: unknown }): void {
  for (const [field, v] of Object.entries(names)) {
    if (v === undefined && field === 'id') continue;
    if (typeof v !== 'string' || !LABEL.test(v)) {
      throw new ValidationError(field, `must be a DNS label (a-z, 0-9, '-', 1-63 chars), got ${JSON.stringify(v)}`);
    }
  }
}

/** Validates a registration body for tenant/service/id; throws ValidationError naming the field. */
export function parseRegistration(tenant: unknown, service: unknown, id: unknown, body: unknown): Registration {
  checkNames({ tenant, service, id });
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('(body)', 'must be a JSON object');
  }
  const r = bodySchema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ValidationError(pathOf(issue.path), issue.message);
  }
  const v = r.data;
  const ids = new Set<string>();
  const checks: CheckSpec[] = v.checks.map((c, i) => {
    const cid = c.id ?? `${c.type}-${i}`;
    if (ids.has(cid)) throw new ValidationError(`checks[${i}].id`, `duplicate check id ${cid}`);
    ids.add(cid);
    if (c.type === 'ttl') return { id: cid, type: 'ttl', ttlMs: c.ttl };
    // A check must finish before the next one is due; an unset timeout fits the interval.
    if (c.timeout !== undefined && c.timeout > c.interval) {
      throw new ValidationError(`checks[${i}].timeout`, `must not exceed the check's interval (${c.timeout} ms > ${c.interval} ms)`);
    }
    const timeoutMs = c.timeout ?? Math.min(DEFAULT_CHECK_TIMEOUT_MS, c.interval);
    if (c.type === 'http') return { id: cid, type: 'http', url: c.url, intervalMs: c.interval, timeoutMs };
    const target = c.target ?? (isIP(v.address) === 6 ? `[${v.address}]:${v.port}` : `${v.address}:${v.port}`);
    return { id: cid, type: 'tcp', target, intervalMs: c.interval, timeoutMs };
  });
  return {
    tenant: tenant as string,
    service: service as string,
    id: id as string,
    address: v.address,
    port: v.port,
    tags: v.tags,
    meta: v.meta,
    ttl: Math.max(1, Math.ceil(v.ttl / 1000)),
    checks,
    deregisterCriticalAfterMs: v.deregisterCriticalAfter,
  };
}
