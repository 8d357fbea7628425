/**
 * Reconciles one switch: reads what it has (flow and group dumps), diffs it
 * against the desired state, and applies only the difference in one atomic,
 * ordered bundle followed by a barrier. What the switch has is read once and
 * then tracked; `checkDrift` reads it again to catch changes made by hand.
 */
import { EventEmitter } from 'node:events';
import { OFPG_ANY, OFPMP, OFPP, type SwitchConnection } from '../openflow/index.js';
import { diffMessages, diffState, isEmpty, summarize, type ActualState, type DesiredState, type Diff, type DiffOptions } from './diff.js';

export interface ReconcileResult {
  diff: Diff;
  /** Human summary: "+3 flows, -1 flows" or "no change". */
  summary: string;
  /** Messages sent in the bundle (0 when nothing changed). */
  messages: number;
  ms: number;
}

export interface SwitchReconcilerOptions extends DiffOptions {
  bundleTimeoutMs?: number;
}

/** Events: `applied` (ReconcileResult), `drift` (ReconcileResult, after restoring). */
export class SwitchReconciler extends EventEmitter {
  private actual: ActualState | undefined;

  constructor(
    readonly conn: SwitchConnection,
    private readonly opts: SwitchReconcilerOptions = {},
  ) {
    super();
  }

  /** Dumps every flow (all tables, any cookie) and every group from the switch, and tracks that from now on. */
  async readActual(): Promise<ActualState> {
    this.actual = await this.dump();
    return this.actual;
  }

  /** Dumps every flow and group without tracking it. */
  private async dump(): Promise<ActualState> {
    const flows = await this.conn.multipart({ mpType: OFPMP.FLOW, tableId: 0xff, outPort: OFPP.ANY, outGroup: OFPG_ANY, cookie: 0n, cookieMask: 0n, match: [] });
    const groups = await this.conn.multipart({ mpType: OFPMP.GROUP_DESC });
    if (flows.mpType !== OFPMP.FLOW || groups.mpType !== OFPMP.GROUP_DESC) throw new TypeError('unexpected multipart reply type');
    return { flows: flows.flows, groups: groups.groups };
  }

  /**
   * The difference an apply would make. Reads the switch when nothing is tracked
   * yet, but does not track that dump: a plan may run alongside a reconcile, and a
   * dump taken mid-bundle must not replace the state the reconcile tracks.
   */
  async plan(desired: DesiredState): Promise<Diff> {
    const actual = this.actual ?? (await this.dump());
    return diffState(desired, actual, this.opts);
  }

  /** Makes the switch equal to `desired`. On a BundleError the switch is unchanged and the error is rethrown. */
  async reconcile(desired: DesiredState): Promise<ReconcileResult> {
    const started = performance.now();
    const diff = diffState(desired, this.actual ?? (await this.readActual()), this.opts);
    const result = await this.apply(diff, started);
    if (result.messages) this.emit('applied', result);
    return result;
  }

  /** Re-reads the switch; restores anything changed behind our back and reports it. */
  async checkDrift(desired: DesiredState): Promise<ReconcileResult> {
    const started = performance.now();
    await this.readActual();
    const diff = diffState(desired, this.actual!, this.opts);
    const result = await this.apply(diff, started);
    if (result.messages) this.emit('drift', result);
    return result;
  }

  private async apply(diff: Diff, started: number): Promise<ReconcileResult> {
    const messages = diffMessages(diff);
    if (!isEmpty(diff)) {
      try {
        await this.conn.applyBundle(messages, this.opts.bundleTimeoutMs !== undefined ? { timeoutMs: this.opts.bundleTimeoutMs } : {});
        await this.conn.barrier();
      } catch (err) {
        this.actual = undefined; // unknown now: read again next time
        throw err;
      }
      this.track(diff);
    }
    return { diff, summary: summarize(diff), messages: messages.length, ms: performance.now() - started };
  }

  /** Updates the tracked state to what the switch holds after a successful apply. */
  private track(diff: Diff): void {
    const actual = this.actual!;
    const removed = new Set(diff.removeFlows);
    const replaced = new Map(diff.changeFlows.map((c) => [c.actual, c.desired]));
    const asStats = (f: DesiredState['flows'][number]) => ({
      tableId: f.tableId,
      durationSec: 0,
      durationNsec: 0,
      priority: f.priority,
      idleTimeout: f.idleTimeout,
      hardTimeout: f.hardTimeout,
      flags: f.flags,
      cookie: f.cookie,
      packetCount: 0n,
      byteCount: 0n,
      match: f.match,
      instructions: f.instructions,
    });
    const flows = actual.flows.filter((f) => !removed.has(f)).map((f) => (replaced.has(f) ? asStats(replaced.get(f)!) : f));
    flows.push(...diff.addFlows.map(asStats));
    const removedGroups = new Set(diff.removeGroups.map((g) => g.groupId));
    const changed = new Map([...diff.addGroups, ...diff.changeGroups].map((g) => [g.groupId, g]));
    const groups = actual.groups.filter((g) => !removedGroups.has(g.groupId) && !changed.has(g.groupId));
    groups.push(...[...changed.values()].map((g) => ({ groupType: g.groupType, groupId: g.groupId, buckets: g.buckets })));
    this.actual = { flows, groups };
  }
}
