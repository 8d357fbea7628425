/** OVSDB (RFC 7047) client, schema-aware values, and a monitored replica. */
export {
  OvsdbClient,
  type ClientOptions,
  type ClientStats,
  type RequestOptions,
  type MonitorRequest,
  type MonitorCondRequest,
  type TableUpdates,
  type TableUpdates2,
  type RowUpdate2,
} from './client.js';
export { Replica, type ReplicaOptions, type ReconnectOptions, type ChangeEvent, type ChangeKind } from './replica.js';
export type {
  Operation,
  OperationResult,
  InsertResult,
  SelectResult,
  CountResult,
  Condition,
  ConditionFn,
  Mutation,
  Mutator,
  InsertOp,
  SelectOp,
  UpdateOp,
  MutateOp,
  DeleteOp,
  WaitOp,
  CommitOp,
  AbortOp,
  CommentOp,
  AssertOp,
} from './ops.js';
export { encodeOperation, decodeTransactResult } from './ops.js';
export {
  type DatabaseSchema,
  type TableSchema,
  type ColumnSchema,
  type ColumnType,
  type Atom,
  type AtomInput,
  type Value,
  type ValueInput,
  type Row,
  type RowInput,
  type UuidRef,
  type NamedUuidRef,
  parseSchema,
  valuesEqual,
  rowsEqual,
} from './schema.js';
export { JsonFramer, DEFAULT_MAX_FRAME_BYTES } from './framer.js';
export { parseTarget, type Target } from './transport.js';
export {
  OvsdbError,
  OvsdbFramingError,
  OvsdbProtocolError,
  OvsdbTimeoutError,
  OvsdbClosedError,
  OvsdbRpcError,
  OvsdbSchemaError,
  OvsdbTransactError,
} from './errors.js';
