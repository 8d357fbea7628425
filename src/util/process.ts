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
