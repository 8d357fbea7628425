/**
 * Database schemas (RFC 7047 §3.2) and the conversion between OVSDB's JSON
 * notation and plain values. Callers write and read:
 *   scalar column        → the atom (string | number | boolean; a uuid as its string)
 *   optional (min 0 max 1) → the atom, or null when empty
 *   set (max > 1)        → an array of atoms
 *   map                  → a Record (string keys) or a Map (other key types)
 * and refer to rows with a uuid string, { uuid } or { namedUuid }.
 */
import { OvsdbSchemaError } from './errors.js';

export type AtomicType = 'integer' | 'real' | 'boolean' | 'string' | 'uuid';

export interface BaseType {
  type: AtomicType;
  enum?: unknown[];
  refTable?: string;
  refType?: 'strong' | 'weak';
}

export interface ColumnType {
  key: BaseType;
  value?: BaseType;
  min: number;
  /** Infinity for "unlimited". */
  max: number;
}

export type ColumnKind = 'scalar' | 'optional' | 'set' | 'map';

export interface ColumnSchema {
  name: string;
  type: ColumnType;
  kind: ColumnKind;
  ephemeral: boolean;
  mutable: boolean;
}

export interface TableSchema {
  name: string;
  columns: Map<string, ColumnSchema>;
  isRoot: boolean;
  maxRows?: number;
  indexes: string[][];
}

export interface DatabaseSchema {
  name: string;
  version: string;
  tables: Map<string, TableSchema>;
  /** The schema exactly as the server sent it. */
  json: unknown;
}

/** A reference to a row by its UUID. */
export interface UuidRef {
  uuid: string;
}
/** A reference to a row inserted earlier in the same transaction (its `uuidName`). */
export interface NamedUuidRef {
  namedUuid: string;
}
export type Atom = string | number | boolean;
export type AtomInput = Atom | UuidRef | NamedUuidRef;
/** A column value as callers read it. */
export type Value = Atom | null | Atom[] | Record<string, Atom> | Map<Atom, Atom>;
/** A column value as callers may write it. */
export type ValueInput =
  | AtomInput
  | null
  | undefined
  | readonly AtomInput[]
  | ReadonlySet<AtomInput>
  | Readonly<Record<string, AtomInput>>
  | ReadonlyMap<AtomInput, AtomInput>;
export type Row = Record<string, Value>;
export type RowInput = Record<string, ValueInput>;

export const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const ZERO_UUID = '00000000-0000-0000-0000-000000000000';
const ATOMIC: ReadonlySet<string> = new Set(['integer', 'real', 'boolean', 'string', 'uuid']);

// ---------------------------------------------------------------- parsing

function parseBase(json: unknown, where: string): BaseType {
  if (typeof json === 'string') {
    if (!ATOMIC.has(json)) throw new OvsdbSchemaError(`${where}: unknown atomic type ${json}`);
    return { type: json as AtomicType };
  }
  if (!json || typeof json !== 'object') throw new OvsdbSchemaError(`${where}: bad base type`);
  const o = json as Record<string, unknown>;
  const base = parseBase(o.type, where);
  if (o.enum !== undefined) base.enum = setElements(o.enum, `${where} enum`);
  if (typeof o.refTable === 'string') {
    base.refTable = o.refTable;
    base.refType = o.refType === 'weak' ? 'weak' : 'strong';
  }
  return base;
}

export function parseColumnType(json: unknown, where = 'column'): ColumnType {
  if (typeof json === 'string') return { key: parseBase(json, where), min: 1, max: 1 };
  if (!json || typeof json !== 'object') throw new OvsdbSchemaError(`${where}: bad column type`);
  const o = json as Record<string, unknown>;
  const t: ColumnType = {
    key: parseBase(o.key, where),
    min: typeof o.min === 'number' ? o.min : 1,
    max: o.max === 'unlimited' ? Infinity : typeof o.max === 'number' ? o.max : 1,
  };
  if (o.value !== undefined) t.value = parseBase(o.value, where);
  return t;
}

export function columnKind(t: ColumnType): ColumnKind {
  if (t.value) return 'map';
  if (t.max === 1) return t.min === 1 ? 'scalar' : 'optional';
  return 'set';
}

function column(name: string, type: ColumnType, ephemeral = false, mutable = true): ColumnSchema {
  return { name, type, kind: columnKind(type), ephemeral, mutable };
}

/** Parses a schema as returned by get_schema; adds the implicit _uuid and _version columns. */
export function parseSchema(json: unknown): DatabaseSchema {
  if (!json || typeof json !== 'object') throw new OvsdbSchemaError('schema is not an object');
  const o = json as Record<string, unknown>;
  if (typeof o.name !== 'string' || !isObj(o.tables)) {
    throw new OvsdbSchemaError('schema lacks name or tables');
  }
  const tables = new Map<string, TableSchema>();
  for (const [tname, tjson] of Object.entries(o.tables as Record<string, unknown>)) {
    if (!isObj(tjson)) throw new OvsdbSchemaError(`schema table ${tname} is not an object`, { table: tname });
    const tj = tjson;
    const columns = new Map<string, ColumnSchema>();
    columns.set('_uuid', column('_uuid', { key: { type: 'uuid' }, min: 1, max: 1 }, false, false));
    columns.set('_version', column('_version', { key: { type: 'uuid' }, min: 1, max: 1 }, false, false));
    const cols = tj.columns ?? {};
    if (!isObj(cols)) throw new OvsdbSchemaError(`schema table ${tname}: columns is not an object`, { table: tname });
    for (const [cname, cjson] of Object.entries(cols)) {
      if (!isObj(cjson)) {
        throw new OvsdbSchemaError(`schema column ${tname}.${cname} is not an object`, { table: tname, column: cname });
      }
      const cj = cjson;
      columns.set(
        cname,
        column(cname, parseColumnType(cj.type, `${tname}.${cname}`), cj.ephemeral === true, cj.mutable !== false),
      );
    }
    const t: TableSchema = {
      name: tname,
      columns,
      isRoot: tj.isRoot === true,
      indexes: parseIndexes(tj.indexes, tname),
    };
    if (typeof tj.maxRows === 'number') t.maxRows = tj.maxRows;
    tables.set(tname, t);
  }
  return { name: o.name, version: typeof o.version === 'string' ? o.version : '', tables, json };
}

function parseIndexes(j: unknown, table: string): string[][] {
  if (j === undefined) return [];
  const ok = Array.isArray(j) && j.every((ix) => Array.isArray(ix) && ix.every((c) => typeof c === 'string'));
  if (!ok) throw new OvsdbSchemaError(`schema table ${table}: indexes is not a list of column lists`, { table });
  return j as string[][];
}

export function tableOf(schema: DatabaseSchema, name: string): TableSchema {
  const t = schema.tables.get(name);
  if (!t) throw new OvsdbSchemaError(`unknown table ${name} in database ${schema.name}`, { table: name });
  return t;
}

export function columnOf(table: TableSchema, name: string): ColumnSchema {
  const c = table.columns.get(name);
  if (!c) throw new OvsdbSchemaError(`unknown column ${table.name}.${name}`, { table: table.name, column: name });
  return c;
}

// ---------------------------------------------------------------- encoding (plain → wire)

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && !(v instanceof Set);
}

export function encodeAtom(base: BaseType, v: unknown, where: string): unknown {
  switch (base.type) {
    case 'string':
      if (typeof v === 'string') return v;
      break;
    case 'integer':
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      break;
    case 'real':
      if (typeof v === 'number' && Number.isFinite(v)) return v;
      break;
    case 'boolean':
      if (typeof v === 'boolean') return v;
      break;
    case 'uuid':
      if (typeof v === 'string' && UUID_RE.test(v)) return ['uuid', v];
      if (isObj(v)) {
        if (typeof v.uuid === 'string' && UUID_RE.test(v.uuid)) return ['uuid', v.uuid];
        if (typeof v.namedUuid === 'string' && /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(v.namedUuid)) {
          return ['named-uuid', v.namedUuid];
        }
      }
      break;
  }
  throw new OvsdbSchemaError(`${where}: ${JSON.stringify(v) ?? String(v)} is not a valid ${base.type}`, {
    where,
    expected: base.type,
  });
}

/** A map key written as a Record property is always a string; convert it to the key type. */
function recordKey(base: BaseType, k: string, where: string): unknown {
  if (base.type === 'integer' || base.type === 'real') {
    const n = Number(k);
    return encodeAtom(base, n, where);
  }
  if (base.type === 'boolean') return encodeAtom(base, k === 'true' ? true : k === 'false' ? false : k, where);
  return encodeAtom(base, k, where);
}

function encodeMapPairs(t: ColumnType, v: unknown, where: string): unknown[] {
  const vt = t.value!;
  const pairs: unknown[] = [];
  if (v instanceof Map) {
    for (const [k, x] of v) pairs.push([encodeAtom(t.key, k, `${where} key`), encodeAtom(vt, x, `${where}[${String(k)}]`)]);
  } else if (isObj(v)) {
    for (const k of Object.keys(v)) {
      const x = v[k];
      if (x === undefined) continue;
      pairs.push([recordKey(t.key, k, `${where} key`), encodeAtom(vt, x, `${where}[${k}]`)]);
    }
  } else if (v === null || v === undefined) {
    // empty map
  } else {
    throw new OvsdbSchemaError(`${where}: expected a map (object or Map)`, { where });
  }
  return pairs;
}

/** Encodes a set of atoms of type `base`; accepts an array, a Set, a single atom, or null for empty. */
export function encodeSet(base: BaseType, v: unknown, where: string): unknown {
  if (v === null || v === undefined) return ['set', []];
  if (Array.isArray(v) || v instanceof Set) {
    const out: unknown[] = [];
    for (const x of v) out.push(encodeAtom(base, x, where));
    return ['set', out];
  }
  return encodeAtom(base, v, where);
}

/** Encodes a value of column type `t` into OVSDB JSON notation. */
export function encodeValue(t: ColumnType, v: unknown, where: string): unknown {
  if (t.value) return ['map', encodeMapPairs(t, v, where)];
  if (t.min === 1 && t.max === 1) return encodeAtom(t.key, v, where);
  return encodeSet(t.key, v, where);
}

export function encodeRow(table: TableSchema, row: RowInput, where: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(row)) {
    const v = row[k];
    if (v === undefined) continue;
    const c = columnOf(table, k);
    out[k] = encodeValue(c.type, v, `${where}.${k}`);
  }
  return out;
}

// ---------------------------------------------------------------- decoding (wire → plain)

function decodeAtom(base: BaseType, j: unknown): Atom {
  if (base.type === 'uuid') {
    if (Array.isArray(j) && (j[0] === 'uuid' || j[0] === 'named-uuid') && typeof j[1] === 'string') return j[1];
    throw new OvsdbSchemaError(`expected a uuid atom, got ${preview(j)}`);
  }
  switch (base.type) {
    case 'string':
      if (typeof j === 'string') return j;
      break;
    case 'boolean':
      if (typeof j === 'boolean') return j;
      break;
    default: // integer, real
      if (typeof j === 'number') return j;
  }
  throw new OvsdbSchemaError(`expected a ${base.type} atom, got ${preview(j)}`);
}

function preview(j: unknown): string {
  const s = JSON.stringify(j) ?? String(j);
  return s.length > 100 ? `${s.slice(0, 100)}...` : s;
}

/** The elements of `["set", [...]]`, or the single atom `j` (a one-element set). */
function setElements(j: unknown, what = 'set'): unknown[] {
  if (Array.isArray(j) && j[0] === 'set') {
    if (j.length !== 2 || !Array.isArray(j[1])) throw new OvsdbSchemaError(`malformed ${what}: ${preview(j)}`);
    return j[1] as unknown[];
  }
  return [j];
}

function isPair(p: unknown): p is [unknown, unknown] {
  return Array.isArray(p) && p.length === 2;
}

function decodeMap(t: ColumnType, j: unknown): Record<string, Atom> | Map<Atom, Atom> {
  if (!Array.isArray(j) || j.length !== 2 || j[0] !== 'map' || !Array.isArray(j[1])) {
    throw new OvsdbSchemaError(`expected a map, got ${preview(j)}`);
  }
  const pairs = j[1] as unknown[];
  const vt = t.value!;
  if (t.key.type === 'string') {
    if (pairs.length === 0) return EMPTY_RECORD;
    const out: Record<string, Atom> = {};
    for (const p of pairs) {
      if (!isPair(p) || typeof p[0] !== 'string') throw new OvsdbSchemaError(`malformed map pair ${preview(p)}`);
      out[p[0]] = decodeAtom(vt, p[1]);
    }
    return out;
  }
  const m = new Map<Atom, Atom>();
  for (const p of pairs) {
    if (!isPair(p)) throw new OvsdbSchemaError(`malformed map pair ${preview(p)}`);
    m.set(decodeAtom(t.key, p[0]), decodeAtom(vt, p[1]));
  }
  return m;
}

/** Decodes a value of column type `t` from OVSDB JSON notation into its plain form. */
export function decodeValue(t: ColumnType, j: unknown): Value {
  if (t.value) return decodeMap(t, j);
  if (t.min === 1 && t.max === 1) return decodeAtom(t.key, j);
  const elems = setElements(j);
  if (t.max === 1) return elems.length === 0 ? null : decodeAtom(t.key, elems[0]);
  if (elems.length === 0) return EMPTY_SET;
  const out: Atom[] = new Array(elems.length);
  for (let i = 0; i < elems.length; i++) out[i] = decodeAtom(t.key, elems[i]);
  return out;
}

/** Decodes an update2 "modify" diff value: sets always decode to the array of toggled elements. */
export function decodeDiff(t: ColumnType, j: unknown): Value {
  if (t.value) return decodeMap(t, j);
  if (t.min === 1 && t.max === 1) return decodeAtom(t.key, j);
  return setElements(j).map((e) => decodeAtom(t.key, e));
}

export function defaultValue(c: ColumnSchema): Value {
  switch (c.kind) {
    case 'map':
      return c.type.key.type === 'string' ? {} : new Map();
    case 'set':
      return [];
    case 'optional':
      return null;
    case 'scalar':
      switch (c.type.key.type) {
        case 'integer':
        case 'real':
          return 0;
        case 'boolean':
          return false;
        case 'string':
          return '';
        case 'uuid':
          return ZERO_UUID;
      }
  }
  return null;
}

/** A value decoder specialised for one column type (the hot path of a large initial sync). */
function compileDecoder(t: ColumnType): (j: unknown) => Value {
  const k = t.key;
  if (t.value) return (j) => decodeMap(t, j);
  if (t.min === 1 && t.max === 1) {
    if (k.type === 'string') return (j) => (typeof j === 'string' ? j : decodeAtom(k, j));
    return (j) => decodeAtom(k, j);
  }
  return (j) => decodeValue(t, j);
}

interface ColumnDecoder {
  name: string;
  column: ColumnSchema;
  decode: (j: unknown) => Value;
  /** Shared, frozen default (empty set / map / null / zero) or a factory for mutable ones. */
  def: Value | (() => Value);
}

const EMPTY_SET: Atom[] = Object.freeze([]) as unknown as Atom[];
const EMPTY_RECORD: Record<string, Atom> = Object.freeze({}) as Record<string, Atom>;

/**
 * A row decoder for a fixed column list: columns the server omitted (update2
 * omits default values) get their default. Empty defaults are shared frozen
 * objects — a 10,000-row sync would otherwise allocate hundreds of thousands
 * of empty arrays and objects; changes always build new values anyway.
 */
export function rowDecoder(table: TableSchema, columns: readonly string[]): (j: unknown) => Row {
  // Cached by the identity of the column list (monitors keep theirs for life).
  let perTable = decoderCache.get(table);
  if (!perTable) decoderCache.set(table, (perTable = new WeakMap()));
  let f = perTable.get(columns);
  if (!f) perTable.set(columns, (f = buildRowDecoder(table, columns)));
  return f;
}
const decoderCache = new WeakMap<TableSchema, WeakMap<readonly string[], (j: unknown) => Row>>();

function buildRowDecoder(table: TableSchema, columns: readonly string[]): (j: unknown) => Row {
  const decs: ColumnDecoder[] = [];
  for (const name of columns) {
    const c = table.columns.get(name);
    if (!c) continue;
    let def: ColumnDecoder['def'];
    if (c.kind === 'set') def = EMPTY_SET;
    else if (c.kind === 'map') def = c.type.key.type === 'string' ? EMPTY_RECORD : () => new Map();
    else def = defaultValue(c);
    decs.push({ name, column: c, decode: compileDecoder(c.type), def });
  }
  return (j) => {
    if (!isObj(j)) throw new OvsdbSchemaError(`row of ${table.name} is not an object`, { table: table.name });
    const out: Row = {};
    let i = 0;
    try {
      for (; i < decs.length; i++) {
        const d = decs[i]!;
        const v = j[d.name];
        out[d.name] = v !== undefined ? d.decode(v) : typeof d.def === 'function' ? d.def() : d.def;
      }
    } catch (err) {
      throw inColumn(err, table.name, decs[i]!.name);
    }
    return out;
  };
}

/** Decodes a row; with `fill`, columns the server omitted get their default (update2 omits them). */
export function decodeRow(table: TableSchema, j: unknown, fill?: readonly string[]): Row {
  if (fill) return rowDecoder(table, fill)(j);
  if (!isObj(j)) throw new OvsdbSchemaError(`row of ${table.name} is not an object`, { table: table.name });
  const out: Row = {};
  for (const k of Object.keys(j)) {
    const c = table.columns.get(k);
    if (!c) continue; // a column newer than our schema: ignore rather than fail
    try {
      out[k] = decodeValue(c.type, j[k]);
    } catch (err) {
      throw inColumn(err, table.name, k);
    }
  }
  return out;
}

/** Re-raises a value decoding error of a server message with the table and column it came from. */
export function inColumn(err: unknown, table: string, column: string): OvsdbSchemaError {
  const msg = err instanceof Error ? err.message : String(err);
  return new OvsdbSchemaError(`${table}.${column}: ${msg}`, { table, column });
}

// ---------------------------------------------------------------- comparison and diffs

function atomKey(a: Atom): string {
  return typeof a === 'string' ? `s${a}` : `${typeof a}${String(a)}`;
}

/** Structural equality of two plain values (sets compare regardless of order). */
export function valuesEqual(a: Value | undefined, b: Value | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined) return false;
  if (typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    const s = new Set(a.map(atomKey));
    return b.every((x) => s.has(atomKey(x)));
  }
  if (a instanceof Map) {
    if (!(b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || b.get(k) !== v) return false;
    return true;
  }
  if (Array.isArray(b) || b instanceof Map) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!Object.prototype.hasOwnProperty.call(b, k) || a[k] !== b[k]) return false;
  return true;
}

export function rowsEqual(a: Row, b: Row): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!valuesEqual(a[k], b[k])) return false;
  return true;
}

/** Applies an update2 "modify" diff value (already decoded) to the old value of column `c`. */
export function applyDiff(c: ColumnSchema, old: Value, diff: Value): Value {
  switch (c.kind) {
    case 'scalar':
      return diff;
    case 'optional': {
      // As OVS's own IDLs apply it: a max-1 column with a value is replaced by
      // the diff (empty diff → empty); an empty one gets the diff's element.
      const d = diff as Atom[];
      return d.length === 0 ? null : d[d.length - 1]!;
    }
    case 'set': {
      // Set diffs toggle: elements present are removed, absent ones are added.
      const cur: Atom[] = Array.isArray(old) ? [...old] : [];
      for (const e of diff as Atom[]) {
        const i = cur.indexOf(e);
        if (i >= 0) cur.splice(i, 1);
        else cur.push(e);
      }
      return cur;
    }
    case 'map': {
      // Map diffs: new key → add; same key+value → remove; same key, other value → replace.
      if (diff instanceof Map) {
        const m = new Map(old as Map<Atom, Atom>);
        for (const [k, v] of diff) {
          if (!m.has(k)) m.set(k, v);
          else if (m.get(k) === v) m.delete(k);
          else m.set(k, v);
        }
        return m;
      }
      const r: Record<string, Atom> = { ...(old as Record<string, Atom>) };
      const d = diff as Record<string, Atom>;
      for (const k of Object.keys(d)) {
        const v = d[k]!;
        if (!Object.prototype.hasOwnProperty.call(r, k)) r[k] = v;
        else if (r[k] === v) delete r[k];
        else r[k] = v;
      }
      return r;
    }
  }
}
