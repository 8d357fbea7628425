/**
 * The agent's state-dir lock (r3#8b): a live holder (another process, same start time)
 * refuses a second agent with a clear error; a dead holder's or a reused pid's lock is
 * taken over; release removes only our own lock.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { lockStateDir, processStartTime, StateDirLockedError } from '../../../src/agent/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tenet-agent-lock-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const lockFile = join(dir, 'agent.lock');

t.test('a live agent holds the dir; a dead one does not', async (t) => {
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => {
    if (holder.exitCode === null) holder.kill('SIGKILL');
  });
  const pid = holder.pid!;
  writeFileSync(lockFile, JSON.stringify({ pid, startTime: processStartTime(pid) }));
  const err = (() => {
    try {
      lockStateDir(dir);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.ok(err instanceof StateDirLockedError, 'refused while the holder lives');
  t.match((err as Error).message, new RegExp(`another agent \\(pid ${pid}\\) holds .*agent\\.lock`));

  // The same pid with another start time: the pid was reused, the lock is stale.
  writeFileSync(lockFile, JSON.stringify({ pid, startTime: '1' }));
  const release = lockStateDir(dir);
  t.equal(JSON.parse(readFileSync(lockFile, 'utf8')).pid, process.pid, 'taken over from a reused pid');
  release();
  t.notOk(existsSync(lockFile), 'released');

  // A dead holder.
  const dead = spawnSync('true').pid;
  writeFileSync(lockFile, JSON.stringify({ pid: dead }));
  const release2 = lockStateDir(dir);
  t.equal(JSON.parse(readFileSync(lockFile, 'utf8')).pid, process.pid, 'taken over from a dead pid');
  // A successor took it over: our release leaves its lock alone.
  writeFileSync(lockFile, JSON.stringify({ pid, startTime: processStartTime(pid) }));
  release2();
  t.ok(existsSync(lockFile), 'release never removes another holder\'s lock');
  rmSync(lockFile);

  // Garbage (a holder that died mid-write) is stale.
  writeFileSync(lockFile, '{"pi');
  lockStateDir(dir)();
  t.notOk(existsSync(lockFile));
});
