/**
 * The state-store contract, with etcd v3 semantics. Both the embedded store and the
 * etcd-backed store implement `Store`; one conformance suite checks both.
 *
 * Keys and values are strings (UTF-8). Lease ids are decimal strings, because etcd's
 * are int64 and do not fit a JS number.
 */

export interface KeyValue {
  key: string;
  value: string;
  /** Revision of the put that created this key (since its last delete). */
  createRevision: number;
  /** Revision of the last put to this key. */
  modRevision: number;
  /** Number of puts since creation (1 after the first put). */
  version: number;
  /** Lease id the key is attached to, undefined when none. */
  lease?: string;
}

export interface RangeOptions {
  /** Treat `key` as a prefix. */
  prefix?: boolean;
  /** Read at a past revision (must be within the history window). 0/undefined = latest. */
  revision?: number;
  /** At most this many keys (sorted by key). */
  limit?: number;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** Store revision at which the range was served. */
  revision: number;
  /** True when `limit` cut the result short. */
  more: boolean;
}

export interface PutOptions {
  lease?: string;
  prevKv?: boolean;
}

export interface PutResult {
  revision: number;
  prevKv?: KeyValue;
}

export interface DeleteOptions {
  prefix?: boolean;
  prevKv?: boolean;
}

export interface DeleteResult {
  revision: number;
  deleted: number;
  prevKvs: KeyValue[];
}

export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision';
export type CompareOp = '=' | '!=' | '<' | '>';

/** A transaction guard. A missing key has version, createRevision and modRevision 0. */
export interface Compare {
  key: string;
  target: CompareTarget;
  op: CompareOp;
  value: string | number;
}

export type TxnOp =
  | { type: 'put'; key: string; value: string; lease?: string; prevKv?: boolean }
  | { type: 'delete'; key: string; prefix?: boolean; prevKv?: boolean }
  | { type: 'range'; key: string; prefix?: boolean };

export type TxnOpResult =
  | { type: 'put'; prevKv?: KeyValue }
  | { type: 'delete'; deleted: number; prevKvs: KeyValue[] }
  | { type: 'range'; kvs: KeyValue[] };

export interface TxnRequest {
  compare: Compare[];
  success: TxnOp[];
  failure?: TxnOp[];
}

export interface TxnResult {
  succeeded: boolean;
  revision: number;
  results: TxnOpResult[];
}

export interface LeaseGrant {
  id: string;
  ttl: number;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  /** For deletes: key, modRevision = the delete's revision, other fields zero/empty. */
  kv: KeyValue;
  prevKv?: KeyValue;
}

export interface WatchOptions {
  prefix?: boolean;
  /**
   * First revision to deliver. Default: the next revision after the current one. Below
   * the compact revision, watch() rejects with CompactedError or (etcd) the handler
   * gets it through onError; either way nothing is delivered.
   */
  startRevision?: number;
  prevKv?: boolean;
}

/**
 * Receives batches of events in revision order, never skipping one. `onError` is
 * called at most once, with a typed error, and then the watch is finished.
 */
export interface WatchHandler {
  onEvents(events: WatchEvent[], revision: number): void;
  onError?(err: Error): void;
}

export interface Watch {
  /** Stops delivery; resolves once no further batches will arrive. */
  cancel(): Promise<void>;
}

export interface StoreStatus {
  revision: number;
  compactRevision: number;
}

export interface Store {
  readonly kind: 'embedded' | 'etcd';
  get(key: string, opts?: { revision?: number }): Promise<KeyValue | undefined>;
  range(key: string, opts?: RangeOptions): Promise<RangeResult>;
  put(key: string, value: string, opts?: PutOptions): Promise<PutResult>;
  delete(key: string, opts?: DeleteOptions): Promise<DeleteResult>;
  txn(req: TxnRequest): Promise<TxnResult>;
  grantLease(ttlSeconds: number): Promise<LeaseGrant>;
  /** Renews the lease to its full TTL; resolves to that TTL. Throws LeaseNotFoundError. */
  keepAlive(id: string): Promise<number>;
  revokeLease(id: string): Promise<void>;
  /** Remaining seconds, or -1 when the lease does not exist (expired or revoked). */
  leaseTimeToLive(id: string): Promise<number>;
  watch(key: string, opts: WatchOptions, handler: WatchHandler): Promise<Watch>;
  compact(revision: number): Promise<void>;
  status(): Promise<StoreStatus>;
  close(): Promise<void>;
}
