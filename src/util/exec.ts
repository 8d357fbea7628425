import { execFile, spawnSync } from 'node:child_process';
import { CommandError } from './errors.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  /** Resolve with the exit code instead of throwing CommandError on failure. */
  allowFailure?: boolean;
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
}

/** Runs a program (no shell) and collects its output. Throws CommandError on a non-zero exit. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new TypeError('run: empty argv');
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        if (err && !opts.allowFailure) {
          reject(new CommandError(argv, code, stderr || err.message));
          return;
        }
        resolve({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Synchronous twin of run(), for teardown paths that must finish inside exit/signal handlers. */
export function runSync(argv: readonly string[], opts: RunOptions = {}): RunResult {
  const [file, ...args] = argv;
  if (!file) throw new TypeError('runSync: empty argv');
  const r = spawnSync(file, args, {
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
    input: opts.input,
    maxBuffer: 256 * 1024 * 1024,
  });
  const code = r.status ?? 1;
  if (code !== 0 && !opts.allowFailure) {
    throw new CommandError(argv, r.status, r.stderr || String(r.error ?? ''));
  }
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code };
}
