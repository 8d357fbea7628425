/**
 * Typed errors of the OVSDB client. Every error a caller can see extends
 * OvsdbError (and so TenetError); `code` tells the kind, `context` the details.
 */
import { TenetError } from '../util/errors.js';

export class OvsdbError extends TenetError {}

/** The byte stream is not valid JSON-RPC framing (garbage, bad JSON, oversized frame). */
export class OvsdbFramingError extends OvsdbError {
  constructor(message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('EOVSDB_FRAMING', message, context, options);
  }
}

/** A well-formed JSON message that is not a valid JSON-RPC 1.0 message, or an unexpected reply. */
export class OvsdbProtocolError extends OvsdbError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('EOVSDB_PROTOCOL', message, context);
  }
}

/** A request got no reply in time, or the server stayed silent past the keepalive limit. */
export class OvsdbTimeoutError extends OvsdbError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('EOVSDB_TIMEOUT', message, context);
  }
}

/** The connection is closed (or closed while a request was outstanding). */
export class OvsdbClosedError extends OvsdbError {
  constructor(message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('EOVSDB_CLOSED', message, context, options);
  }
}

/** The server answered a request with a JSON-RPC error (e.g. "unknown database", "canceled"). */
export class OvsdbRpcError extends OvsdbError {
  constructor(
    readonly method: string,
    readonly serverError: unknown,
    context: Record<string, unknown> = {},
  ) {
    const text = typeof serverError === 'string' ? serverError : JSON.stringify(serverError);
    super('EOVSDB_RPC', `${method} failed: ${text}`, { method, serverError, ...context });
  }
}

/** A value or operation does not fit the database schema; detected before anything is sent. */
export class OvsdbSchemaError extends OvsdbError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('EOVSDB_SCHEMA', message, context);
  }
}

/**
 * A transaction failed. `index` is the failing operation's position in the
 * caller's list; when the failure happened at commit time (referential
 * integrity, duplicate index, ...) the server reports it after the last
 * operation, and `index` equals the number of operations with `op` undefined.
 */
export class OvsdbTransactError extends OvsdbError {
  constructor(
    readonly index: number,
    readonly op: { op: string; table?: string } | undefined,
    readonly error: string,
    readonly details: string | undefined,
    readonly results: unknown[],
  ) {
    const where = op ? `operation ${index} (${op.op}${op.table ? ` ${op.table}` : ''})` : `commit (after operation ${index - 1})`;
    super('EOVSDB_TRANSACT', `transaction failed at ${where}: ${error}${details ? `: ${details}` : ''}`, {
      index,
      op: op?.op,
      table: op?.table,
      error,
      details,
    });
  }
}
