/**
 * The agent's lock on its state dir: `<state-dir>/agent.lock`, created O_EXCL with the
 * holder's pid and process start time. Two agents on one dir would both adopt and
 * restart the same instances and remove each other's socket; the second one is refused.
 * A lock whose holder is gone (pid dead, or reused by another process: other start time)
 * is taken over. A lock held by this very process (an in-process restart) is taken over too.
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, processStartTime } from '../util/process.js';
import { TenetError } from '../util/errors.js';

export class StateDirLockedError extends TenetError {
  constructor(path: string, pid: number) {
    super('ELOCKED', `another agent (pid ${pid}) holds ${path}: one agent per state dir (stop it, or use another --state-dir)`, { path, pid });
  }
}

interface LockBody {
  pid: number;
  startTime?: string;
}

function readLock(path: string): LockBody | undefined {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockBody>;
    return typeof v.pid === 'number' ? { pid: v.pid, ...(typeof v.startTime === 'string' ? { startTime: v.startTime } : {}) } : undefined;
  } catch {
    return undefined; // missing, or half written by a holder that died: stale
  }
}

/** Whether the process named by a lock still holds it (pure apart from /proc reads). */
export function lockHeld(body: LockBody | undefined, self = process.pid): boolean {
  if (!body || body.pid === self || !isAlive(body.pid)) return false;
  return body.startTime === undefined || processStartTime(body.pid) === body.startTime;
}

/** Takes the lock of `stateDir` (throws StateDirLockedError when a live agent holds it); returns its release. */
export function lockStateDir(stateDir: string): () => void {
  const path = join(stateDir, 'agent.lock');
  const body: LockBody = { pid: process.pid, ...(processStartTime(process.pid) ? { startTime: processStartTime(process.pid)! } : {}) };
  const text = `${JSON.stringify(body)}\n`;
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(path, text, { flag: 'wx', mode: 0o644 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
      const held = readLock(path);
      if (lockHeld(held)) throw new StateDirLockedError(path, held!.pid);
      try {
        unlinkSync(path); // stale: its holder is gone
      } catch {
        /* another agent took it over first: the next attempt sees its lock */
      }
    }
  }
  return () => {
    // Only our own lock: never remove one a successor took over.
    if (readLock(path)?.pid === process.pid) {
      try {
        unlinkSync(path);
      } catch {
        /* gone already */
      }
    }
  };
}
