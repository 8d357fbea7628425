/**
 * Services of the instances an agent runs, kept in the registry (contract §5):
 * registered at PUT /v1/services/<tenant>/<service>/<endpointName> with a TTL check
 * `agent` the agent feeds with the result of the declared tcp/http check (run inside
 * the instance's namespace), renewed every ttl/3, deregistered when the instance stops.
 * An agent that dies stops renewing: its services expire from the registry on their own.
 */
import { runCheck } from './checks.js';
import { ControllerHttpError, type ControllerClient } from './client.js';
import { endpointName } from './naming.js';
import type { LogFn } from './netns-driver.js';
import type { UnitCheckSpec } from './types.js';

export interface ServiceWant {
  tenant: string;
  service: string;
  instanceId: string;
  unit: string;
  /** "tenant/name" */
  endpoint: string;
  netns: string;
  address: string;
  port: number;
  check?: UnitCheckSpec;
  /** Declared by the unit, or registered by the container through the agent socket. */
  source: 'unit' | 'sidekick';
}

/** Registry path of a service instance (the id is the instance's endpoint name). */
export function servicePath(w: Pick<ServiceWant, 'tenant' | 'service' | 'instanceId'>): string {
  return `/v1/services/${w.tenant}/${w.service}/${endpointName(w.instanceId)}`;
}

const DEFAULT_CHECK_INTERVAL_MS = 10_000;

/** How often the agent reports the check, and the TTL check's ttl (three reports). */
export function checkIntervalMs(w: Pick<ServiceWant, 'check'>, leaseTtlS: number): number {
  const c = w.check;
  if (!c) return Math.max(100, Math.round((leaseTtlS * 1000) / 3));
  if (c.type === 'ttl') return Math.max(100, Math.round((c.ttlMs ?? DEFAULT_CHECK_INTERVAL_MS) / 3));
  return c.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
}

/** The registration body (pure; fields per src/registry/validate.ts). */
export function registrationBody(w: ServiceWant, host: string, leaseTtlS: number): Record<string, unknown> {
  return {
    address: w.address,
    port: w.port,
    tags: w.source === 'sidekick' ? ['sidekick'] : [],
    meta: { unit: w.unit, instance: w.instanceId, host, endpoint: w.endpoint },
    ttl: `${Math.max(1000, Math.round(leaseTtlS * 1000))}ms`,
    checks: [{ id: 'agent', type: 'ttl', ttl: `${checkIntervalMs(w, leaseTtlS) * 3}ms` }],
  };
}

const keyOf = (w: ServiceWant) => `${w.tenant}/${w.service}/${w.instanceId}`;
const sameWant = (a: ServiceWant, b: ServiceWant) => JSON.stringify(a) === JSON.stringify(b);

interface Active {
  want: ServiceWant;
  registered: boolean;
  timers: NodeJS.Timeout[];
  busy: boolean;
}

export class ServiceManager {
  private readonly active = new Map<string, Active>();
  private warnedUnavailable = false;

  constructor(
    private readonly client: ControllerClient,
    private readonly host: string,
    private readonly leaseTtlS: () => number,
    private readonly log: LogFn,
  ) {}

  list(): ServiceWant[] {
    return [...this.active.values()].map((a) => a.want);
  }

  /** Makes the registered set `wants`: registers new ones, deregisters the rest. */
  sync(wants: readonly ServiceWant[]): void {
    const next = new Map(wants.map((w) => [keyOf(w), w]));
    for (const [k, a] of this.active) {
      const w = next.get(k);
      if (!w || !sameWant(w, a.want)) {
        this.stop(k, a, !w);
      }
    }
    for (const [k, w] of next) if (!this.active.has(k)) this.start(k, w);
  }

  private start(key: string, want: ServiceWant): void {
    const a: Active = { want, registered: false, timers: [], busy: false };
    this.active.set(key, a);
    const ttl = this.leaseTtlS();
    a.timers.push(setInterval(() => void this.tick(a, 'check'), checkIntervalMs(want, ttl)));
    a.timers.push(setInterval(() => void this.tick(a, 'renew'), Math.max(300, Math.round((ttl * 1000) / 3))));
    for (const t of a.timers) t.unref();
    void this.tick(a, 'check');
  }

  private stop(key: string, a: Active, deregister: boolean): void {
    for (const t of a.timers) clearInterval(t);
    this.active.delete(key);
    if (deregister && a.registered) {
      this.client.request('DELETE', servicePath(a.want)).then(
        () => this.log('info', `service ${a.want.tenant}/${a.want.service} of ${a.want.instanceId}: deregistered`),
        (err: Error) => this.log('warn', `service ${a.want.tenant}/${a.want.service} of ${a.want.instanceId}: deregister failed (it expires with its TTL): ${err.message}`),
      );
    }
  }

  private async register(a: Active): Promise<boolean> {
    try {
      await this.client.request('PUT', servicePath(a.want), registrationBody(a.want, this.host, this.leaseTtlS()));
      if (this.active.get(keyOf(a.want)) !== a) {
        // Stopped while the registration was in flight: take it back rather than leave it to its TTL.
        await this.client.request('DELETE', servicePath(a.want)).catch(() => {});
        return false;
      }
      a.registered = true;
      this.warnedUnavailable = false;
      this.log('info', `service ${a.want.tenant}/${a.want.service}: registered ${a.want.instanceId} at ${a.want.address}:${a.want.port}`);
      return true;
    } catch (err) {
      if (!this.warnedUnavailable) {
        this.warnedUnavailable = true;
        this.log('warn', `registry: cannot register ${a.want.tenant}/${a.want.service} of ${a.want.instanceId} (retrying): ${(err as Error).message}`);
      }
      return false;
    }
  }

  private async tick(a: Active, what: 'check' | 'renew'): Promise<void> {
    if (a.busy || !this.active.has(keyOf(a.want))) return;
    a.busy = true;
    try {
      if (!a.registered) {
        if (!(await this.register(a))) return;
        what = 'check'; // report health at once after (re-)registering
      }
      if (what === 'renew') {
        await this.client.request('PUT', `${servicePath(a.want)}/renew`);
        return;
      }
      const w = a.want;
      const result = w.check && w.check.type !== 'ttl' ? await runCheck(w.netns, w.address, w.port, w.check) : { ok: true, output: 'process running' };
      if (!this.active.has(keyOf(w))) return;
      await this.client.request('PUT', `${servicePath(w)}/checks/agent/${result.ok ? 'pass' : 'fail'}`, { output: result.output });
    } catch (err) {
      if (err instanceof ControllerHttpError && err.status === 404) {
        a.registered = false; // expired from the registry (agent or controller was away): register again
      } else {
        this.log('debug', `service ${a.want.tenant}/${a.want.service} of ${a.want.instanceId}: ${what} failed: ${(err as Error).message}`);
      }
    } finally {
      a.busy = false;
    }
  }

  /** Stops every timer; `deregister` also removes the registrations (agent stopping its instances). */
  async close(deregister: boolean): Promise<void> {
    const all = [...this.active.entries()];
    for (const [, a] of all) for (const t of a.timers) clearInterval(t);
    this.active.clear();
    if (!deregister) return;
    await Promise.all(all.filter(([, a]) => a.registered).map(([, a]) => this.client.request('DELETE', servicePath(a.want)).catch(() => {})));
  }
}
