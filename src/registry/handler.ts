/**
 * Transport-free registration requests, for the host agent's unix socket (and any
 * other transport): one JSON message in, one JSON-able reply out, never a throw.
 *
 *   { "op": "register",   "service": "web", "id": "w1", "body": { "address": ..., "port": ... } }
 *   { "op": "deregister", "service": "web", "id": "w1" }
 *   { "op": "renew",      "service": "web", "id": "w1" }
 *   { "op": "check",      "service": "web", "id": "w1", "check": "hb", "status": "pass" }
 *
 * The caller (the agent) pins the tenant from what it knows about the container; a
 * message naming another tenant is refused, so a container cannot register elsewhere.
 */
import { StoreClosedError, StoreUnavailableError } from '../store/index.js';
import type { Registry } from './registry.js';
import type { HealthStatus } from './types.js';
import { NotFoundError, ValidationError } from './validate.js';

export type HandlerReply =
  | { ok: true; result: unknown }
  | { ok: false; error: { code: string; message: string; field?: string } };

const statuses: Record<string, HealthStatus> = { pass: 'passing', warn: 'warning', fail: 'critical' };

export async function handleRegistryRequest(registry: Registry, msg: unknown, ctx: { tenant: string }): Promise<HandlerReply> {
  try {
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new ValidationError('(message)', 'must be a JSON object');
    const m = msg as Record<string, unknown>;
    if (m.tenant !== undefined && m.tenant !== ctx.tenant) {
      throw new ValidationError('tenant', `this socket registers for tenant ${ctx.tenant} only`);
    }
    switch (m.op) {
      case 'register':
        return { ok: true, result: await registry.register(ctx.tenant, m.service, m.id, m.body) };
      case 'deregister':
        await registry.deregister(ctx.tenant, m.service, m.id);
        return { ok: true, result: null };
      case 'renew':
        return { ok: true, result: { ttl: await registry.renew(ctx.tenant, m.service, m.id) } };
      case 'check': {
        const status = typeof m.status === 'string' ? statuses[m.status] : undefined;
        if (!status) throw new ValidationError('status', 'must be pass, warn or fail');
        if (typeof m.check !== 'string') throw new ValidationError('check', 'must be a check id');
        const output = typeof m.output === 'string' ? m.output.slice(0, 4096) : '';
        return { ok: true, result: await registry.updateTtlCheck(ctx.tenant, m.service, m.id, m.check, status, output) };
      }
      default:
        throw new ValidationError('op', 'must be register, deregister, renew or check');
    }
  } catch (err) {
    if (err instanceof ValidationError) return { ok: false, error: { code: 'invalid', field: err.field, message: err.message } };
    if (err instanceof NotFoundError) return { ok: false, error: { code: 'not_found', message: err.message } };
    if (err instanceof StoreUnavailableError || err instanceof StoreClosedError) return { ok: false, error: { code: 'unavailable', message: err.message } };
    return { ok: false, error: { code: 'internal', message: err instanceof Error ? err.message : String(err) } };
  }
}
