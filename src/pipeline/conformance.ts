/** Checks compiled flows against the table map (tables.ts): what they match, set, and where they go. */
import type { Action, FlowMod, GroupMod } from '../openflow/index.js';
import { isChainGroup, T, TABLE_BY_ID, type TableSpec } from './tables.js';

function actionProblems(spec: TableSpec, actions: Action[], where: string): string[] {
  const out: string[] = [];
  for (const a of actions) {
    let set: string | undefined;
    let next: number | undefined;
    if (a.type === 'set_field') set = a.field.name;
    else if (a.type === 'load') set = a.dst.field.name;
    else if (a.type === 'move') set = a.dst.field.name;
    else if (a.type === 'resubmit') next = a.table;
    else if (a.type === 'ct') {
      if (a.table !== 255) next = a.table;
      out.push(...actionProblems(spec, a.actions, where));
    }
    if (set !== undefined && !spec.set.includes(set)) out.push(`${where}: table ${spec.id} (${spec.name}) may not set ${set}`);
    if (next !== undefined && !spec.next.includes(next)) out.push(`${where}: table ${spec.id} (${spec.name}) may not continue to table ${next}`);
  }
  return out;
}

/** Problems with one flow ([] when it conforms). */
export function flowProblems(f: FlowMod, where = `table=${f.tableId},priority=${f.priority}`): string[] {
  const spec = TABLE_BY_ID.get(f.tableId);
  if (!spec) return [`${where}: table ${f.tableId} is not in the table map`];
  const out: string[] = [];
  for (const t of f.match) if (!spec.match.includes(t.field.name)) out.push(`${where}: table ${spec.id} (${spec.name}) may not match ${t.field.name}`);
  for (const i of f.instructions) {
    if (i.type === 'apply_actions' || i.type === 'write_actions') out.push(...actionProblems(spec, i.actions, where));
    else if (i.type === 'write_metadata' && !spec.set.includes('metadata')) out.push(`${where}: table ${spec.id} (${spec.name}) may not write metadata`);
    else if (i.type === 'goto_table' && !spec.next.includes(i.table)) out.push(`${where}: table ${spec.id} (${spec.name}) may not go to table ${i.table}`);
  }
  return out;
}

/**
 * Flood groups are entered from the L2 table, chain groups from the chain table (and,
 * hop 0 for routed sources, from l3_resolve, whose set/next include the buckets'
 * dl_dst and L2); their buckets follow the entering table's rules.
 */
export function groupProblems(g: GroupMod, fromTable = isChainGroup(g.groupId) ? T.CHAIN : T.L2): string[] {
  const spec = TABLE_BY_ID.get(fromTable)!;
  return g.buckets.flatMap((b, i) => actionProblems(spec, b.actions, `group ${g.groupId} bucket ${i}`));
}
