import { TenetError } from '../util/errors.js';

/** Bytes from the wire that are not a valid OpenFlow message (or not one we understand). */
export class OpenFlowDecodeError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('EOFDECODE', message, context);
  }
}

/** A message object that cannot be put on the wire (value out of range, unknown field...). */
export class OpenFlowEncodeError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('EOFENCODE', message, context);
  }
}

/** Flow / action / group / meter text that does not parse. */
export class FlowSyntaxError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('EOFSYNTAX', message, context);
  }
}

/** The switch connection failed: closed, timed out, protocol violation. */
export class ChannelError extends TenetError {
  constructor(code: string, message: string, context: Record<string, unknown> = {}) {
    super(code, message, context);
  }
}

/** The switch answered a request with an OpenFlow ERROR message. */
export class SwitchError extends TenetError {
  constructor(
    message: string,
    context: Record<string, unknown> & { errType: number; errCode: number; name: string },
  ) {
    super('EOFSWITCH', message, context);
  }
}
