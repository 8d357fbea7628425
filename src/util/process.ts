/** Process helpers shared by the lab and the store. */
import { readFileSync } from 'node:fs';

/**
 * Whether `pid` is a running process. EPERM means it exists but is not ours (alive);
 * a zombie still answers kill(0) but has exited, so it counts as gone.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: existence check only
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // exited between the two checks
  }
}

/**
 * Start time of a process (field 22 of /proc/PID/stat, clock ticks since boot), undefined
 * when it is gone or a zombie. A pid plus its start time names one process for good:
 * a later process that reuses the pid has another start time.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}
