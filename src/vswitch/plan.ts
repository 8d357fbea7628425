/**
 * Pure planning for the host switch manager: given what the replica shows and
 * what we want, the operations of one transaction (or null when nothing
 * differs). Each plan starts with `wait` operations (timeout 0) asserting the
 * rows it was computed from are unchanged: if another client got there first,
 * the transaction fails at the wait and changes nothing, and the caller
 * replans from the updated replica (optimistic concurrency).
 */
import { createHash } from 'node:crypto';
import type { Atom, Operation, Row, RowInput } from '../ovsdb/index.js';
import { TenetError } from '../util/errors.js';

/** The subset of a Replica the planner reads. */
export interface SwitchView {
  rows(table: string): ReadonlyMap<string, Row>;
}

export class VswitchError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('EVSWITCH', message, context);
  }
}

/** Columns the manager replicates, per table. */
export const SWITCH_TABLES = {
  Open_vSwitch: ['bridges'],
  Bridge: ['name', 'datapath_type', 'fail_mode', 'other_config', 'protocols', 'controller', 'ports', 'external_ids'],
  Controller: ['target', 'max_backoff'],
  Port: ['name', 'interfaces', 'external_ids'],
  // link_state: a service-function instance whose port is down leaves its chain hop (see src/controller/chains.ts)
  Interface: ['name', 'type', 'options', 'external_ids', 'ofport', 'link_state'],
} as const;

/** external_ids key marking a tunnel port as ours; its value is the peer host's name. */
export const PEER_KEY = 'tenet-peer';

export interface BridgeSpec {
  name: string;
  /** `system` on real hosts, `netdev` for the userspace datapath. */
  datapathType: string;
  /** Controller targets, e.g. `tcp:192.0.2.1:6653`, `unix:/run/tenet/of.sock`. */
  controllers: readonly string[];
  /** OpenFlow versions; must include OpenFlow13. Default: ['OpenFlow13']. */
  protocols?: readonly string[];
  /**
   * Fixed datapath id (16 hex digits, `other_config:datapath-id`), so a controller
   * can tell which host an OpenFlow connection comes from. Unset: OVS picks one.
   */
  datapathId?: string;
  /**
   * The switch's longest wait between attempts to reach a controller, ms (OVS default
   * 8000, minimum 1000): how soon it finds a restarted controller. Unset: OVS's default.
   */
  controllerMaxBackoffMs?: number;
}

export interface TunnelPeer {
  /** Peer host name; the port name is derived from it. */
  name: string;
  remoteIp: string;
}

export interface TunnelSpec {
  bridge: string;
  localIp: string;
  peers: readonly TunnelPeer[];
  /** Default 'vxlan'. */
  type?: 'vxlan' | 'geneve';
}

export interface TunnelPlanSummary {
  added: string[];
  removed: string[];
  updated: string[];
}

const arr = (v: unknown): Atom[] => (Array.isArray(v) ? (v as Atom[]) : v === null || v === undefined ? [] : [v as Atom]);
const rec = (v: unknown): Record<string, Atom> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, Atom>) : {});
const sameSet = (a: readonly Atom[], b: readonly Atom[]) => a.length === b.length && a.every((x) => b.includes(x));

/** Port/interface name for the tunnel to `peer`: readable when it fits IFNAMSIZ (15), else hashed. */
export function tunnelPortName(peer: string): string {
  const plain = `vx-${peer}`;
  if (/^[a-zA-Z0-9_.-]+$/.test(peer) && plain.length <= 15) return plain;
  return `vx-${createHash('sha256').update(peer).digest('hex').slice(0, 12)}`;
}

function rootRow(view: SwitchView): [string, Row] {
  const first = view.rows('Open_vSwitch').entries().next();
  if (first.done) throw new VswitchError('the Open_vSwitch table is empty (database not initialised: run ovs-vsctl init)');
  return first.value;
}

export function findBridge(view: SwitchView, name: string): [string, Row] | undefined {
  for (const e of view.rows('Bridge')) if (e[1].name === name) return e;
  return undefined;
}

function waitRow(table: string, uuid: string, row: Row, columns: readonly string[]): Operation {
  const expect: RowInput = {};
  for (const c of columns) expect[c] = row[c];
  return { op: 'wait', table, where: [['_uuid', '==', uuid]], columns, until: '==', rows: [expect], timeout: 0 };
}

function controllerRow(target: string, spec: BridgeSpec): RowInput {
  return spec.controllerMaxBackoffMs !== undefined ? { target, max_backoff: spec.controllerMaxBackoffMs } : { target };
}

const BRIDGE_GUARD = ['name', 'datapath_type', 'fail_mode', 'other_config', 'protocols', 'controller', 'ports'];

/** Operations making the bridge match `spec`, or null if it already does. */
export function planBridge(view: SwitchView, spec: BridgeSpec): Operation[] | null {
  const protocols = [...(spec.protocols ?? ['OpenFlow13'])];
  if (spec.controllerMaxBackoffMs !== undefined && !(Number.isInteger(spec.controllerMaxBackoffMs) && spec.controllerMaxBackoffMs >= 1000)) {
    throw new VswitchError('controllerMaxBackoffMs must be an integer >= 1000', { controllerMaxBackoffMs: spec.controllerMaxBackoffMs });
  }
  if (spec.datapathId !== undefined && !/^[0-9a-f]{16}$/.test(spec.datapathId)) throw new VswitchError('datapathId must be 16 lowercase hex digits', { datapathId: spec.datapathId });
  if (!protocols.includes('OpenFlow13')) throw new VswitchError('bridge protocols must include OpenFlow13', { protocols });
  const [rootUuid, root] = rootRow(view);
  const found = findBridge(view, spec.name);
  const ops: Operation[] = [];
  const controllers = view.rows('Controller');

  if (!found) {
    ops.push({ op: 'wait', table: 'Bridge', where: [['name', '==', spec.name]], columns: ['name'], until: '==', rows: [], timeout: 0 });
    ops.push({ op: 'insert', table: 'Interface', row: { name: spec.name, type: 'internal' }, uuidName: 'local_iface' });
    ops.push({ op: 'insert', table: 'Port', row: { name: spec.name, interfaces: { namedUuid: 'local_iface' } }, uuidName: 'local_port' });
    const ctl = spec.controllers.map((target, i) => {
      ops.push({ op: 'insert', table: 'Controller', row: controllerRow(target, spec), uuidName: `ctl${i}` });
      return { namedUuid: `ctl${i}` };
    });
    ops.push({
      op: 'insert',
      table: 'Bridge',
      uuidName: 'bridge',
      row: {
        name: spec.name,
        datapath_type: spec.datapathType,
        fail_mode: 'secure',
        other_config: { 'disable-in-band': 'true', ...(spec.datapathId ? { 'datapath-id': spec.datapathId } : {}) },
        protocols,
        controller: ctl,
        ports: [{ namedUuid: 'local_port' }],
      },
    });
    ops.push({ op: 'mutate', table: 'Open_vSwitch', where: [['_uuid', '==', rootUuid]], mutations: [['bridges', 'insert', [{ namedUuid: 'bridge' }]]] });
    return ops;
  }

  const [bUuid, b] = found;
  const update: RowInput = {};
  if (b.datapath_type !== spec.datapathType) update.datapath_type = spec.datapathType;
  if (b.fail_mode !== 'secure') update.fail_mode = 'secure';
  const oc = rec(b.other_config);
  if (oc['disable-in-band'] !== 'true' || (spec.datapathId !== undefined && oc['datapath-id'] !== spec.datapathId)) {
    update.other_config = { ...oc, 'disable-in-band': 'true', ...(spec.datapathId ? { 'datapath-id': spec.datapathId } : {}) };
  }
  if (!sameSet(arr(b.protocols), protocols)) update.protocols = protocols;

  // Controllers: keep rows whose target is wanted (one per target), insert the missing.
  const want = [...new Set(spec.controllers)];
  const keep = new Map<string, string>();
  for (const u of arr(b.controller) as string[]) {
    const t = controllers.get(u)?.target;
    if (typeof t === 'string' && want.includes(t) && !keep.has(t)) keep.set(t, u);
  }
  // Kept controllers with another max_backoff are updated in place (the connection stays).
  const backoff = spec.controllerMaxBackoffMs;
  if (backoff !== undefined) {
    for (const u of keep.values()) {
      const row = controllers.get(u)!;
      if (row.max_backoff !== backoff) {
        ops.push(waitRow('Controller', u, row, ['target', 'max_backoff']));
        ops.push({ op: 'update', table: 'Controller', where: [['_uuid', '==', u]], row: { max_backoff: backoff } });
      }
    }
  }
  const current = arr(b.controller);
  if (keep.size !== want.length || current.length !== want.length) {
    const refs: (string | { namedUuid: string })[] = [];
    want.forEach((t, i) => {
      const u = keep.get(t);
      if (u) refs.push(u);
      else {
        ops.push({ op: 'insert', table: 'Controller', row: controllerRow(t, spec), uuidName: `ctl${i}` });
        refs.push({ namedUuid: `ctl${i}` });
      }
    });
    update.controller = refs;
  }

  // The bridge's local (internal) port, as ovs-vsctl add-br creates it.
  const ports = view.rows('Port');
  const hasLocal = arr(b.ports).some((u) => ports.get(u as string)?.name === spec.name);
  if (!hasLocal) {
    ops.push({ op: 'insert', table: 'Interface', row: { name: spec.name, type: 'internal' }, uuidName: 'local_iface' });
    ops.push({ op: 'insert', table: 'Port', row: { name: spec.name, interfaces: { namedUuid: 'local_iface' } }, uuidName: 'local_port' });
    ops.push({ op: 'mutate', table: 'Bridge', where: [['_uuid', '==', bUuid]], mutations: [['ports', 'insert', [{ namedUuid: 'local_port' }]]] });
  }
  const attached = arr(root.bridges).includes(bUuid);
  if (!attached) {
    ops.push({ op: 'mutate', table: 'Open_vSwitch', where: [['_uuid', '==', rootUuid]], mutations: [['bridges', 'insert', [bUuid]]] });
  }
  if (Object.keys(update).length === 0 && ops.length === 0) return null;
  // Guard every column the decision read, not only those we write: a
  // concurrent change to any of them means the plan may be wrong.
  const guard = waitRow('Bridge', bUuid, b, BRIDGE_GUARD);
  const out: Operation[] = [guard, ...ops];
  if (Object.keys(update).length) out.push({ op: 'update', table: 'Bridge', where: [['_uuid', '==', bUuid]], row: update });
  return out;
}

/**
 * Operations making the bridge's tunnel ports exactly one per peer (ours are
 * marked with external_ids:tenet-peer; ports not marked are left alone), or
 * null when they already match.
 */
export function planTunnels(view: SwitchView, spec: TunnelSpec): { ops: Operation[] | null; summary: TunnelPlanSummary } {
  const type = spec.type ?? 'vxlan';
  const found = findBridge(view, spec.bridge);
  if (!found) throw new VswitchError(`bridge ${spec.bridge} does not exist (ensure it first)`, { bridge: spec.bridge });
  const [bUuid, b] = found;
  const ports = view.rows('Port');
  const ifaces = view.rows('Interface');

  const desired = new Map<string, TunnelPeer>();
  const names = new Map<string, string>();
  for (const p of spec.peers) {
    if (desired.has(p.name)) throw new VswitchError(`peer ${p.name} listed twice`, { peer: p.name });
    const n = tunnelPortName(p.name);
    const clash = names.get(n);
    if (clash) throw new VswitchError(`peers ${clash} and ${p.name} map to the same port name ${n}`, { port: n });
    names.set(n, p.name);
    desired.set(p.name, p);
  }

  const ops: Operation[] = [];
  const summary: TunnelPlanSummary = { added: [], removed: [], updated: [] };
  const existing = new Map<string, { portUuid: string; port: Row; ifaceUuid: string | undefined; iface: Row | undefined }>();
  const stale: string[] = [];
  for (const pu of arr(b.ports) as string[]) {
    const port = ports.get(pu);
    const peer = port ? rec(port.external_ids)[PEER_KEY] : undefined;
    if (!port || typeof peer !== 'string') continue;
    const iu = arr(port.interfaces)[0] as string | undefined;
    const entry = { portUuid: pu, port, ifaceUuid: iu, iface: iu ? ifaces.get(iu) : undefined };
    if (!desired.has(peer) || existing.has(peer) || port.name !== tunnelPortName(peer)) stale.push(pu);
    else existing.set(peer, entry);
  }

  const added: { namedUuid: string }[] = [];
  const guards: Operation[] = [];
  let k = 0;
  for (const [peer, p] of desired) {
    const name = tunnelPortName(peer);
    const options = { remote_ip: p.remoteIp, local_ip: spec.localIp, key: 'flow' };
    const e = existing.get(peer);
    if (e?.iface && e.ifaceUuid) {
      const cur = rec(e.iface.options);
      const same =
        e.iface.type === type &&
        Object.keys(cur).length === 3 &&
        cur.remote_ip === options.remote_ip &&
        cur.local_ip === options.local_ip &&
        cur.key === 'flow';
      // Guard kept tunnels too: if one changes under us, the plan is stale.
      guards.push(waitRow('Interface', e.ifaceUuid, e.iface, ['type', 'options']));
      if (!same) {
        ops.push({ op: 'update', table: 'Interface', where: [['_uuid', '==', e.ifaceUuid]], row: { type, options } });
        summary.updated.push(name);
      }
      continue;
    }
    if (e) stale.push(e.portUuid); // a port of ours without its interface: replace it
    const ext = { [PEER_KEY]: peer };
    ops.push({ op: 'insert', table: 'Interface', row: { name, type, options, external_ids: ext }, uuidName: `tif${k}` });
    ops.push({ op: 'insert', table: 'Port', row: { name, interfaces: { namedUuid: `tif${k}` }, external_ids: ext }, uuidName: `tport${k}` });
    added.push({ namedUuid: `tport${k}` });
    summary.added.push(name);
    k++;
  }
  for (const pu of stale) summary.removed.push(String(ports.get(pu)?.name));
  if (ops.length === 0 && stale.length === 0) return { ops: null, summary };

  const mutations: [string, 'insert' | 'delete', (string | { namedUuid: string })[]][] = [];
  // Delete before insert: a replaced port's name is free again within the same transaction.
  if (stale.length) mutations.push(['ports', 'delete', stale]);
  if (added.length) mutations.push(['ports', 'insert', added]);
  const out: Operation[] = [waitRow('Bridge', bUuid, b, ['ports']), ...guards, ...ops];
  if (mutations.length) out.push({ op: 'mutate', table: 'Bridge', where: [['_uuid', '==', bUuid]], mutations });
  return { ops: out, summary };
}
