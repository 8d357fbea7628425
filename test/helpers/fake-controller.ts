/**
 * A small in-memory ControllerApi for API unit tests: it validates with the real
 * validator (so 400s carry the real issues) and keeps the document in memory; no
 * hosts connect, so every host stays `unreachable`. Integration tests use the real
 * Controller through `tenet controller` instead.
 */
import { EventEmitter } from 'node:events';
import { Registry } from 'prom-client';
import { chainInfos } from '../../src/controller/chains.js';
import type { ApplyResult, ChainInfo, ControllerApi, ControllerEvent, ControllerStatus, EndpointInfo, Plan } from '../../src/controller/types.js';
import { formatIp4, type Allocation } from '../../src/ipam/index.js';
import { TopologyError, validate, type Model } from '../../src/model/index.js';

export class FakeController extends EventEmitter<{ event: [ControllerEvent] }> implements ControllerApi {
  readonly metrics = new Registry();
  generation = 0;
  doc: unknown = null;
  current: Model | null = null;
  readonly startedAt = new Date().toISOString();
  /** Calls seen, for assertions ("nothing applied after a 400"). */
  readonly calls: string[] = [];
  /**
   * Hosts whose switches "realize" every apply at once (a `realized` event each);
   * every other host stays unreachable.
   */
  readonly reachable = new Set<string>();

  status(): ControllerStatus {
    const hosts = (this.current?.hosts ?? []).map((h) =>
      this.reachable.has(h.name)
        ? { name: h.name, state: 'ready' as const, ovsdb: true, openflow: true, datapathId: '00000000000000a1', realizedGeneration: this.generation, flows: 10, groups: 0, bindings: 2, since: this.startedAt }
        : { name: h.name, state: 'unreachable' as const, ovsdb: false, openflow: false, realizedGeneration: 0, flows: 0, groups: 0, bindings: 0, lastError: `cannot connect to ${h.ovsdb}`, since: this.startedAt },
    );
    return { generation: this.generation, hosts, realized: true, startedAt: this.startedAt };
  }
  topology(): { generation: number; doc: unknown } {
    return { generation: this.generation, doc: this.doc };
  }
  model(): Model | null {
    return this.current;
  }
  endpoints(): EndpointInfo[] {
    return (this.current?.tenants ?? []).flatMap((t) =>
      t.endpoints.map((e) => ({
        id: e.id,
        tenant: e.tenant,
        name: e.name,
        network: e.network.name,
        host: e.host,
        ...(e.ip !== undefined && e.network.v4 ? { ip: `${formatIp4(e.ip)}/${e.network.v4.len}`, gateway: formatIp4(e.network.v4.gateway) } : {}),
        mac: e.mac,
        labels: e.labels,
      })),
    );
  }
  /** Endpoints on reachable hosts are bound (ofport 10); `linkDown` ones have their link down. */
  readonly linkDown = new Set<string>();
  chains(): ChainInfo[] {
    return chainInfos(this.current, {
      ofport: (host) => (this.reachable.has(host) ? 10 : undefined),
      linkDown: (_host, id) => this.linkDown.has(id),
      checkFailing: new Set(),
    });
  }
  private check(doc: unknown): Model {
    const r = validate(doc, this.current ? { previous: this.current.alloc as Allocation } : {});
    if (!r.ok) throw new TopologyError(r.errors);
    return r.model;
  }
  private planFor(model: Model): Plan {
    return {
      generation: this.generation + 1,
      hosts: model.hosts.map((h) => ({ host: h.name, hitless: true, add: ['table=0,priority=0 actions=drop'], modify: [], delete: [], groups: { add: [], modify: [], delete: [] }, summary: '+1 flows', reachable: false })),
    };
  }
  async plan(doc: unknown): Promise<Plan> {
    this.calls.push('plan');
    return this.planFor(this.check(doc));
  }
  async apply(doc: unknown): Promise<ApplyResult> {
    this.calls.push('apply');
    const model = this.check(doc);
    const plan = this.planFor(model);
    this.current = model;
    this.doc = doc;
    this.generation++;
    this.emit('event', { type: 'topology', generation: this.generation, at: new Date().toISOString() });
    for (const h of model.hosts) {
      if (this.reachable.has(h.name)) this.emit('event', { type: 'realized', host: h.name, generation: this.generation, summary: '+1 flows', ms: 3, at: new Date().toISOString() });
    }
    return { generation: this.generation, plan, changed: true };
  }
  async deleteTenant(name?: string): Promise<ApplyResult> {
    this.calls.push(`delete:${name ?? '*'}`);
    const d = structuredClone(this.doc) as { tenants?: Array<{ name: string }> };
    d.tenants = name === undefined ? [] : (d.tenants ?? []).filter((t) => t.name !== name);
    return this.apply(d);
  }
  /** The timeouts waitRealized was called with. */
  readonly waits: number[] = [];
  /** This many next waits end as timeouts (realized: false). */
  timeoutWaits = 0;
  /** While true, waits stay pending until their signal aborts (then they count in `abortedWaits`). */
  holdWaits = false;
  abortedWaits = 0;
  async waitRealized(_generation: number, timeoutMs: number, signal?: AbortSignal): Promise<ControllerStatus> {
    this.waits.push(timeoutMs);
    if (this.holdWaits) {
      await new Promise<void>((resolve) => signal?.addEventListener('abort', () => resolve(), { once: true }));
      this.abortedWaits++;
      return { ...this.status(), realized: false };
    }
    if (this.timeoutWaits > 0) {
      this.timeoutWaits--;
      return { ...this.status(), realized: false };
    }
    return this.status();
  }
}
