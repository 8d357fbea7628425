/**
 * Desired vs actual OpenFlow state of one switch: what to add, change and
 * remove. Pure. A flow's identity is what OpenFlow itself uses for a strict
 * match — table, priority and match (field order does not matter); its content
 * is cookie, timeouts, flags and instructions.
 */
import {
  OFPFC,
  OFPGC,
  OFPG_ANY,
  OFPP,
  OFP_NO_BUFFER,
  formatGroup,
  formatInstructions,
  type Bucket,
  type FlowMod,
  type FlowStats,
  type GroupDesc,
  type GroupMod,
  type Match,
} from '../openflow/index.js';

/** What a compiler hands the reconciler for one switch. */
export interface DesiredState {
  flows: FlowMod[];
  groups: GroupMod[];
}

/** What the switch reports (flow and group-desc multipart replies). */
export interface ActualState {
  flows: FlowStats[];
  groups: GroupDesc[];
}

export type FlowLike = Pick<FlowMod, 'tableId' | 'priority' | 'match'>;
type FlowContent = Pick<FlowMod, 'cookie' | 'idleTimeout' | 'hardTimeout' | 'instructions'>;

export interface Diff {
  /** Flows the switch lacks. */
  addFlows: FlowMod[];
  /** Flows present with other content: replaced in place (ADD of the same identity). */
  changeFlows: Array<{ desired: FlowMod; actual: FlowStats }>;
  /** Flows the switch has and should not: stale ones of ours, and foreign ones unless kept. */
  removeFlows: FlowStats[];
  addGroups: GroupMod[];
  changeGroups: GroupMod[];
  removeGroups: GroupDesc[];
  /** Flows equal on both sides, untouched (they keep their counters and duration). */
  unchanged: number;
}

export interface DiffOptions {
  /** Cookies Tenet owns. Flows with other cookies are foreign. */
  isOurs?: (cookie: bigint) => boolean;
  /** Foreign flows: removed (default: the bridge is Tenet's) or kept. */
  foreign?: 'remove' | 'keep';
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Order-independent text of a match: sorted `header=value/mask` items. */
export function matchKey(match: Match): string {
  return match
    .map((t) => `${t.field.cls.toString(16)}:${t.field.field}=${hex(t.value)}${t.mask ? `/${hex(t.mask)}` : ''}`)
    .sort()
    .join(',');
}

export function flowIdentity(f: FlowLike): string {
  return `${f.tableId}|${f.priority}|${matchKey(f.match)}`;
}

function sameContent(a: FlowContent, b: FlowContent): boolean {
  return (
    a.cookie === b.cookie &&
    a.idleTimeout === b.idleTimeout &&
    a.hardTimeout === b.hardTimeout &&
    formatInstructions(a.instructions) === formatInstructions(b.instructions)
  );
}

const groupText = (g: Pick<GroupMod, 'groupType' | 'groupId' | 'buckets'>): string => formatGroup(g);

export function diffState(desired: DesiredState, actual: ActualState, opts: DiffOptions = {}): Diff {
  const isOurs = opts.isOurs ?? (() => true);
  const keepForeign = opts.foreign === 'keep';
  const have = new Map<string, FlowStats>();
  for (const f of actual.flows) have.set(flowIdentity(f), f);

  const d: Diff = { addFlows: [], changeFlows: [], removeFlows: [], addGroups: [], changeGroups: [], removeGroups: [], unchanged: 0 };
  const wanted = new Set<string>();
  for (const f of desired.flows) {
    const id = flowIdentity(f);
    if (wanted.has(id)) throw new TypeError(`desired state has two flows with identity ${id}`);
    wanted.add(id);
    const a = have.get(id);
    if (!a) d.addFlows.push(f);
    else if (sameContent(f, a)) d.unchanged++;
    else d.changeFlows.push({ desired: f, actual: a });
  }
  for (const [id, a] of have) {
    if (wanted.has(id)) continue;
    if (isOurs(a.cookie) || !keepForeign) d.removeFlows.push(a);
  }

  const haveGroups = new Map(actual.groups.map((g) => [g.groupId, g]));
  const wantGroups = new Set<number>();
  for (const g of desired.groups) {
    wantGroups.add(g.groupId);
    const a = haveGroups.get(g.groupId);
    if (!a) d.addGroups.push(g);
    else if (groupText(a) !== groupText(g)) d.changeGroups.push(g);
  }
  for (const g of actual.groups) if (!wantGroups.has(g.groupId)) d.removeGroups.push(g);
  return d;
}

export function isEmpty(d: Diff): boolean {
  return !(d.addFlows.length || d.changeFlows.length || d.removeFlows.length || d.addGroups.length || d.changeGroups.length || d.removeGroups.length);
}

export type FlowModMessage = { type: 'flow_mod'; xid: number } & FlowMod;
export type GroupModMessage = { type: 'group_mod'; xid: number } & GroupMod;

const strictDelete = (f: FlowStats): FlowModMessage => ({
  type: 'flow_mod',
  xid: 0,
  cookie: 0n,
  cookieMask: 0n,
  tableId: f.tableId,
  command: OFPFC.DELETE_STRICT,
  idleTimeout: 0,
  hardTimeout: 0,
  priority: f.priority,
  bufferId: OFP_NO_BUFFER,
  outPort: OFPP.ANY,
  outGroup: OFPG_ANY,
  flags: 0,
  match: f.match,
  instructions: [],
});

const groupMsg = (command: number, g: { groupType: number; groupId: number; buckets: Bucket[] }): GroupModMessage => ({
  type: 'group_mod',
  xid: 0,
  command,
  groupType: g.groupType,
  groupId: g.groupId,
  buckets: command === OFPGC.DELETE ? [] : g.buckets,
});

/**
 * The messages that carry a diff out, in an order a switch accepts inside one
 * ordered bundle: groups that flows will reference first, then flow removals,
 * replacements and additions, and last the groups no flow references any more.
 * A changed flow is re-added with the same identity: OpenFlow replaces it in
 * place, and unlike MODIFY this also updates its cookie.
 */
export function diffMessages(d: Diff): Array<FlowModMessage | GroupModMessage> {
  return [
    ...d.addGroups.map((g) => groupMsg(OFPGC.ADD, g)),
    ...d.changeGroups.map((g) => groupMsg(OFPGC.MODIFY, g)),
    ...d.removeFlows.map(strictDelete),
    ...d.changeFlows.map(({ desired }) => ({ type: 'flow_mod' as const, xid: 0, ...desired, command: OFPFC.ADD })),
    ...d.addFlows.map((f) => ({ type: 'flow_mod' as const, xid: 0, ...f, command: OFPFC.ADD })),
    ...d.removeGroups.map((g) => groupMsg(OFPGC.DELETE, g)),
  ];
}

export function summarize(d: Diff): string {
  const parts = [
    d.addFlows.length && `+${d.addFlows.length} flows`,
    d.changeFlows.length && `~${d.changeFlows.length} flows`,
    d.removeFlows.length && `-${d.removeFlows.length} flows`,
    d.addGroups.length && `+${d.addGroups.length} groups`,
    d.changeGroups.length && `~${d.changeGroups.length} groups`,
    d.removeGroups.length && `-${d.removeGroups.length} groups`,
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'no change';
}
