import { TenetError } from '../util/errors.js';

/** Base of every error the store raises on purpose. */
export class StoreError extends TenetError {}

/** The requested revision is older than the history window (etcd: ErrCompacted). */
export class CompactedError extends StoreError {
  constructor(
    readonly requestedRevision: number,
    readonly compactRevision: number,
  ) {
    super('ESTORE_COMPACTED', `revision ${requestedRevision} has been compacted (compact revision ${compactRevision})`, {
      requestedRevision,
      compactRevision,
    });
  }
}

/** The requested revision is newer than the store's (etcd: ErrFutureRev). */
export class FutureRevisionError extends StoreError {
  constructor(
    readonly requestedRevision: number,
    readonly currentRevision: number,
  ) {
    super('ESTORE_FUTURE_REV', `revision ${requestedRevision} is newer than the current revision ${currentRevision}`, {
      requestedRevision,
      currentRevision,
    });
  }
}

export class LeaseNotFoundError extends StoreError {
  constructor(readonly leaseId: string) {
    super('ESTORE_LEASE_NOT_FOUND', `lease ${leaseId} not found (expired or revoked)`, { leaseId });
  }
}

/** Malformed request: empty key, bad TTL, duplicate key in one transaction... */
export class InvalidRequestError extends StoreError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('ESTORE_INVALID', message, context);
  }
}

/** The store cannot be reached or answered with a transport failure (dead etcd, closed store). */
export class StoreUnavailableError extends StoreError {
  constructor(message: string, context: Record<string, unknown> = {}, cause?: unknown) {
    super('ESTORE_UNAVAILABLE', message, context, { cause });
  }
}

export class StoreClosedError extends StoreError {
  constructor() {
    super('ESTORE_CLOSED', 'the store is closed');
  }
}

/** On-disk data that cannot be trusted beyond a torn tail (mid-log corruption, bad snapshot). */
export class CorruptDataError extends StoreError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('ESTORE_CORRUPT', message, context);
  }
}

/** Another live process (or this one) already has the data directory open. */
export class StoreLockedError extends StoreError {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super('ESTORE_LOCKED', `store directory ${dir} is in use by process ${pid}`, { dir, pid });
  }
}
