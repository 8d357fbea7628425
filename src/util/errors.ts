/**
 * Base class of every error Tenet raises on purpose. `code` is stable and
 * machine-readable; `context` carries what a user or a log needs to act on it.
 */
export class TenetError extends Error {
  readonly code: string;
  readonly context: Record<string, unknown>;

  constructor(code: string, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.context = context;
  }
}

/** The caller asked for something invalid: bad argument, unknown name, duplicate. */
export class UsageError extends TenetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('EUSAGE', message, context);
  }
}

/** An external command (ip, ovs-vsctl, ...) failed. */
export class CommandError extends TenetError {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    const first = stderr.trim().split('\n')[0] ?? '';
    super('ECOMMAND', `${argv.join(' ')} failed (exit ${exitCode ?? 'signal'})${first ? `: ${first}` : ''}`, {
      argv,
      exitCode,
      stderr,
    });
  }
}
