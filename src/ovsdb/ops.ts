/**
 * Transaction operations (RFC 7047 §5.2) in plain form, their schema-aware
 * encoding, and the decoding of their results. Pure: no I/O.
 */
import { OvsdbSchemaError, OvsdbTransactError } from './errors.js';
import {
  type ColumnType,
  type DatabaseSchema,
  type Row,
  type RowInput,
  type TableSchema,
  type ValueInput,
  columnOf,
  decodeRow,
  encodeAtom,
  encodeRow,
  encodeSet,
  encodeValue,
  tableOf,
} from './schema.js';

export type ConditionFn = '<' | '<=' | '==' | '!=' | '>=' | '>' | 'includes' | 'excludes';
export type Condition = readonly [column: string, fn: ConditionFn, value: ValueInput];
export type Mutator = '+=' | '-=' | '*=' | '/=' | '%=' | 'insert' | 'delete';
export type Mutation = readonly [column: string, mutator: Mutator, value: ValueInput];

export interface InsertOp {
  op: 'insert';
  table: string;
  row: RowInput;
  /** Name other operations of the transaction use to refer to the new row ({ namedUuid }). */
  uuidName?: string;
  /** Explicit UUID for the new row (OVS extension). */
  uuid?: string;
}
export interface SelectOp {
  op: 'select';
  table: string;
  where: readonly Condition[];
  columns?: readonly string[];
}
export interface UpdateOp {
  op: 'update';
  table: string;
  where: readonly Condition[];
  row: RowInput;
}
export interface MutateOp {
  op: 'mutate';
  table: string;
  where: readonly Condition[];
  mutations: readonly Mutation[];
}
export interface DeleteOp {
  op: 'delete';
  table: string;
  where: readonly Condition[];
}
export interface WaitOp {
  op: 'wait';
  table: string;
  where: readonly Condition[];
  columns: readonly string[];
  until: '==' | '!=';
  rows: readonly RowInput[];
  /** Milliseconds; 0 (the usual choice for optimistic concurrency) fails at once if unmet. */
  timeout?: number;
}
export interface CommitOp {
  op: 'commit';
  durable: boolean;
}
export interface AbortOp {
  op: 'abort';
}
export interface CommentOp {
  op: 'comment';
  comment: string;
}
export interface AssertOp {
  op: 'assert';
  lock: string;
}
export type Operation =
  | InsertOp
  | SelectOp
  | UpdateOp
  | MutateOp
  | DeleteOp
  | WaitOp
  | CommitOp
  | AbortOp
  | CommentOp
  | AssertOp;

export type OperationResult =
  | { uuid: string } // insert
  | { rows: Row[] } // select
  | { count: number } // update, mutate, delete
  | Record<string, never>; // wait, commit, abort, comment, assert

/** Result types per operation, for callers who want them narrowed. */
export interface InsertResult {
  uuid: string;
}
export interface SelectResult {
  rows: Row[];
}
export interface CountResult {
  count: number;
}

function encodeWhere(t: TableSchema, where: readonly Condition[], at: string): unknown[] {
  if (!Array.isArray(where)) throw new OvsdbSchemaError(`${at}: where must be an array of conditions`);
  return where.map(([col, fn, value], i) => {
    const c = columnOf(t, col);
    const w = `${at}.where[${i}]`;
    let v: unknown;
    if (fn === 'includes' || fn === 'excludes' || fn === '==' || fn === '!=') v = encodeValue(relaxed(c.type), value, w);
    else if (['<', '<=', '>=', '>'].includes(fn)) v = encodeAtom(c.type.key, value, w);
    else throw new OvsdbSchemaError(`${w}: unknown condition function ${String(fn)}`);
    return [col, fn, v];
  });
}

/** Conditions and mutations may use any number of elements, whatever the column's min/max. */
function relaxed(t: ColumnType): ColumnType {
  if (t.value || (t.min === 1 && t.max === 1)) return t;
  return { ...t, min: 0, max: Infinity };
}

function encodeMutations(t: TableSchema, muts: readonly Mutation[], at: string): unknown[] {
  return muts.map(([col, mutator, value], i) => {
    const c = columnOf(t, col);
    const w = `${at}.mutations[${i}]`;
    let v: unknown;
    switch (mutator) {
      case '+=':
      case '-=':
      case '*=':
      case '/=':
      case '%=':
        // Arithmetic applies to a scalar or to every element of a set.
        v = encodeAtom(c.type.key, value, w);
        break;
      case 'insert':
        v = c.type.value ? encodeValue(c.type, value, w) : encodeSet(c.type.key, value, w);
        break;
      case 'delete':
        // On a map, delete takes either a map (key and value must match) or a set of keys.
        if (c.type.value && (Array.isArray(value) || value instanceof Set)) v = encodeSet(c.type.key, value, w);
        else v = c.type.value ? encodeValue(c.type, value, w) : encodeSet(c.type.key, value, w);
        break;
      default:
        throw new OvsdbSchemaError(`${w}: unknown mutator ${String(mutator)}`);
    }
    return [col, mutator, v];
  });
}

/** Encodes one operation to its wire form; throws OvsdbSchemaError (naming the operation) on bad input. */
export function encodeOperation(schema: DatabaseSchema, op: Operation, index: number): Record<string, unknown> {
  const at = `operation ${index} (${op.op})`;
  switch (op.op) {
    case 'insert': {
      const t = tableOf(schema, op.table);
      const o: Record<string, unknown> = { op: 'insert', table: op.table, row: encodeRow(t, op.row, at) };
      if (op.uuidName !== undefined) o['uuid-name'] = op.uuidName;
      if (op.uuid !== undefined) o.uuid = op.uuid;
      return o;
    }
    case 'select': {
      const t = tableOf(schema, op.table);
      const o: Record<string, unknown> = { op: 'select', table: op.table, where: encodeWhere(t, op.where, at) };
      if (op.columns) {
        for (const c of op.columns) columnOf(t, c);
        o.columns = op.columns;
      }
      return o;
    }
    case 'update': {
      const t = tableOf(schema, op.table);
      return { op: 'update', table: op.table, where: encodeWhere(t, op.where, at), row: encodeRow(t, op.row, at) };
    }
    case 'mutate': {
      const t = tableOf(schema, op.table);
      return {
        op: 'mutate',
        table: op.table,
        where: encodeWhere(t, op.where, at),
        mutations: encodeMutations(t, op.mutations, at),
      };
    }
    case 'delete': {
      const t = tableOf(schema, op.table);
      return { op: 'delete', table: op.table, where: encodeWhere(t, op.where, at) };
    }
    case 'wait': {
      const t = tableOf(schema, op.table);
      for (const c of op.columns) columnOf(t, c);
      const o: Record<string, unknown> = {
        op: 'wait',
        table: op.table,
        where: encodeWhere(t, op.where, at),
        columns: op.columns,
        until: op.until,
        rows: op.rows.map((r) => encodeRow(t, r, at)),
      };
      if (op.timeout !== undefined) o.timeout = op.timeout;
      return o;
    }
    case 'commit':
      return { op: 'commit', durable: op.durable };
    case 'abort':
      return { op: 'abort' };
    case 'comment':
      return { op: 'comment', comment: op.comment };
    case 'assert':
      return { op: 'assert', lock: op.lock };
    default:
      throw new OvsdbSchemaError(`${at}: unknown operation`, { index });
  }
}

/**
 * Turns a transact result array into decoded per-operation results, or throws
 * OvsdbTransactError naming the failing operation.
 */
export function decodeTransactResult(schema: DatabaseSchema, ops: readonly Operation[], result: unknown): OperationResult[] {
  if (!Array.isArray(result)) throw new OvsdbSchemaError('transact result is not an array');
  // An error element either sits at the failing operation's index or, for a
  // commit-time failure, just after the last operation.
  for (let i = 0; i < result.length; i++) {
    const r = result[i] as Record<string, unknown> | null;
    if (r && typeof r === 'object' && typeof r.error === 'string') {
      const op = ops[i];
      throw new OvsdbTransactError(
        i,
        op ? { op: op.op, ...('table' in op ? { table: op.table } : {}) } : undefined,
        r.error,
        typeof r.details === 'string' ? r.details : undefined,
        result,
      );
    }
  }
  return ops.map((op, i): OperationResult => {
    const r = (result[i] ?? {}) as Record<string, unknown>;
    switch (op.op) {
      case 'insert': {
        const u = r.uuid;
        if (!Array.isArray(u) || u[0] !== 'uuid' || typeof u[1] !== 'string') {
          throw new OvsdbSchemaError(`operation ${i} (insert ${op.table}): malformed uuid in result`, { index: i, table: op.table });
        }
        return { uuid: u[1] };
      }
      case 'select': {
        const t = tableOf(schema, op.table);
        if (!Array.isArray(r.rows)) {
          throw new OvsdbSchemaError(`operation ${i} (select ${op.table}): result has no rows array`, { index: i, table: op.table });
        }
        return { rows: r.rows.map((row) => decodeRow(t, row)) };
      }
      case 'update':
      case 'mutate':
      case 'delete':
        return { count: typeof r.count === 'number' ? r.count : 0 };
      default:
        return {};
    }
  });
}
