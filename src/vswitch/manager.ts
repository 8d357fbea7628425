/**
 * Host switch manager: keeps one host's Open vSwitch configuration the way
 * Tenet wants it, through one OVSDB connection and a replica of the tables it
 * touches. Every `ensure*` call plans from the replica (pure, see plan.ts),
 * sends nothing when the switch already matches, and otherwise sends exactly
 * one transaction guarded by `wait` operations; a concurrent change makes the
 * wait fail, and the call replans from the (by then updated) replica.
 */
import { EventEmitter } from 'node:events';
import { type ChangeEvent, type ClientOptions, type Operation, OvsdbTransactError, Replica, type Row } from '../ovsdb/index.js';
import { type BridgeSpec, SWITCH_TABLES, type TunnelPlanSummary, type TunnelSpec, VswitchError, planBridge, planTunnels } from './plan.js';

export interface HostSwitchOptions extends ClientOptions {
  /** Attempts per ensure when concurrent changes keep invalidating the plan. Default 5. */
  maxRetries?: number;
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
}

export interface EnsureResult {
  /** False when the switch already matched: no transaction was sent. */
  changed: boolean;
  /** Transactions sent (more than 1 only after a lost optimistic race). */
  attempts: number;
}

export interface Binding {
  ifaceId: string;
  /** Interface name (e.g. the host-side veth). */
  interface: string;
  /** The OpenFlow port number, or null until ovs-vswitchd assigns one (or when it failed: -1). */
  ofport: number | null;
  /** false when ovs-vswitchd reports the link down (`link_state`: the port or its veth peer is down); true when up or not reported yet. */
  linkUp: boolean;
}

export interface BindingEvent {
  kind: 'added' | 'changed' | 'removed';
  ifaceId: string;
  binding: Binding | undefined;
  previous: Binding | undefined;
}

export interface HostSwitchEvents {
  binding: [BindingEvent];
}

function bindingOf(row: Row | undefined): Binding | undefined {
  if (!row) return undefined;
  const ext = row.external_ids as Record<string, unknown> | undefined;
  const id = ext?.['iface-id'];
  if (typeof id !== 'string') return undefined;
  const of = row.ofport;
  return { ifaceId: id, interface: String(row.name), ofport: typeof of === 'number' && of > 0 ? of : null, linkUp: row.link_state !== 'down' };
}

export class HostSwitch extends EventEmitter<HostSwitchEvents> {
  readonly replica: Replica;
  /** Transactions this manager has sent (tests use it to prove a no-op sends none). */
  transactions = 0;
  private readonly maxRetries: number;
  /** iface-id → (interface uuid → binding); normally one interface per iface-id. */
  private readonly bindings = new Map<string, Map<string, Binding>>();

  constructor(target: string, opts: HostSwitchOptions = {}) {
    super();
    this.maxRetries = opts.maxRetries ?? 5;
    const tables: Record<string, readonly string[]> = { ...SWITCH_TABLES };
    this.replica = new Replica(target, { ...opts, db: 'Open_vSwitch', tables });
    this.replica.on('change', (e) => this.onChange(e));
  }

  static async open(target: string, opts: HostSwitchOptions = {}): Promise<HostSwitch> {
    const sw = new HostSwitch(target, opts);
    await sw.replica.start();
    return sw;
  }

  close(): void {
    this.replica.close();
  }

  /** Makes the integration bridge match `spec` (name, datapath type, fail_mode=secure, disable-in-band, protocols, controllers). */
  ensureBridge(spec: BridgeSpec): Promise<EnsureResult> {
    return this.ensure(() => planBridge(this.replica, spec));
  }

  /** Makes the bridge's tunnel ports exactly one per peer: adds missing, removes stale, updates changed options. */
  async ensureTunnels(spec: TunnelSpec): Promise<EnsureResult & TunnelPlanSummary> {
    let summary: TunnelPlanSummary = { added: [], removed: [], updated: [] };
    const r = await this.ensure(() => {
      const p = planTunnels(this.replica, spec);
      summary = p.summary;
      return p.ops;
    });
    return { ...r, ...summary };
  }

  /** The OpenFlow port bound to `ifaceId` (external_ids:iface-id), if it has one. */
  ofport(ifaceId: string): number | undefined {
    const m = this.bindings.get(ifaceId);
    if (!m) return undefined;
    for (const b of m.values()) if (b.ofport !== null) return b.ofport;
    return undefined;
  }

  /** Current bindings, one per iface-id. */
  listBindings(): Binding[] {
    const out: Binding[] = [];
    for (const m of this.bindings.values()) {
      const first = [...m.values()].sort((a, b) => (b.ofport ?? 0) - (a.ofport ?? 0))[0];
      if (first) out.push(first);
    }
    return out;
  }

  private async ensure(plan: () => Operation[] | null): Promise<EnsureResult> {
    for (let attempt = 1; ; attempt++) {
      await this.replica.whenSynced();
      const ops = plan();
      if (!ops) return { changed: false, attempts: attempt - 1 };
      this.transactions++;
      try {
        await this.replica.transact(ops);
        return { changed: true, attempts: attempt };
      } catch (err) {
        // A failed guard means someone changed the switch under us; the
        // replica already holds their change (updates precede our reply).
        const lostRace = err instanceof OvsdbTransactError && err.op?.op === 'wait';
        if (!lostRace || attempt >= this.maxRetries) {
          if (lostRace) throw new VswitchError(`gave up after ${attempt} attempts: switch keeps changing`, { attempts: attempt });
          throw err;
        }
      }
    }
  }

  private onChange(e: ChangeEvent): void {
    if (e.table !== 'Interface') return;
    const before = bindingOf(e.old);
    const after = bindingOf(e.new);
    if (before && (!after || after.ifaceId !== before.ifaceId)) {
      const m = this.bindings.get(before.ifaceId);
      m?.delete(e.uuid);
      if (m && m.size === 0) this.bindings.delete(before.ifaceId);
      this.emit('binding', { kind: 'removed', ifaceId: before.ifaceId, binding: undefined, previous: before });
    }
    if (after) {
      let m = this.bindings.get(after.ifaceId);
      if (!m) this.bindings.set(after.ifaceId, (m = new Map()));
      m.set(e.uuid, after);
      if (!before || before.ifaceId !== after.ifaceId) {
        this.emit('binding', { kind: 'added', ifaceId: after.ifaceId, binding: after, previous: undefined });
      } else if (before.ofport !== after.ofport || before.interface !== after.interface || before.linkUp !== after.linkUp) {
        this.emit('binding', { kind: 'changed', ifaceId: after.ifaceId, binding: after, previous: before });
      }
    }
  }
}
