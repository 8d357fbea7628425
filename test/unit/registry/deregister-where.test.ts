/**
 * registry.deregisterWhere: the daemon deregisters a lost host's instances (meta.host)
 * when the scheduler reports the host's agent gone. Real embedded store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Registry } from '../../../src/registry/index.js';
import { EmbeddedStore } from '../../../src/store/index.js';

t.test('deregisterWhere removes exactly the selected instances', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-dereg-'));
  const store = await EmbeddedStore.open({ dir });
  const reg = await Registry.start({ store, runChecks: false });
  t.teardown(async () => {
    await reg.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await reg.register('acme', 'web', 'web-1', { address: '10.0.0.1', port: 80, meta: { host: 'host1' } });
  await reg.register('acme', 'web', 'web-2', { address: '10.0.0.2', port: 80, meta: { host: 'host2' } });
  await reg.register('acme', 'db', 'db-1', { address: '10.0.0.3', port: 5432, meta: { host: 'host1' } });
  await reg.register('acme', 'db', 'manual', { address: '10.0.0.4', port: 5432 });
  const gone = await reg.deregisterWhere((i) => i.meta['host'] === 'host1');
  t.same(gone.map((i) => `${i.service}/${i.id}`).sort(), ['db/db-1', 'web/web-1'], 'the two on host1');
  t.same(reg.list().instances.map((i) => `${i.service}/${i.id}`), ['db/manual', 'web/web-2'], 'the others stay (no meta.host, another host)');
  t.same(await reg.deregisterWhere((i) => i.meta['host'] === 'host1'), [], 'again: nothing left to remove');
});
