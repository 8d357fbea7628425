/** scripts/setup.sh, the first step of both README commands, refuses clearly. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const SETUP = fileURLToPath(new URL('../../scripts/setup.sh', import.meta.url));

t.test('not root: one clear line, non-zero exit', async (t) => {
  const r = spawnSync('bash', [SETUP], { uid: 65534, gid: 65534, encoding: 'utf8' });
  t.not(r.status, 0);
  t.match(r.stderr, /^\[setup\] error: must run as root/);
});

t.test('a package that cannot be installed: named in the error, non-zero exit', async (t) => {
  const r = spawnSync('bash', [SETUP, 'tenet-no-such-package'], { encoding: 'utf8', timeout: 240_000 });
  t.not(r.status, 0);
  t.match(r.stdout, /installing Debian packages: .*tenet-no-such-package/);
  t.match(r.stderr, /could not install .*tenet-no-such-package|apt-get update failed/);
});
