import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry, handleRegistryRequest } from '../../../src/registry/index.js';
import { EmbeddedStore } from '../../../src/store/index.js';

t.test('transport-free handler: ops, pinned tenant, typed replies', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-handler-'));
  const store = await EmbeddedStore.open({ dir });
  const registry = await Registry.start({ store, tenants: ['acme', 'blue'], runChecks: false });
  t.teardown(async () => {
    await registry.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const h = (msg: unknown) => handleRegistryRequest(registry, msg, { tenant: 'acme' });
  const reg = await h({ op: 'register', service: 'web', id: 'w1', body: { address: '10.0.0.1', port: 80, checks: [{ id: 'hb', type: 'ttl', ttl: '10s' }] } });
  t.match(reg, { ok: true, result: { tenant: 'acme', service: 'web', id: 'w1', status: 'critical' } });
  t.match(await h({ op: 'check', service: 'web', id: 'w1', check: 'hb', status: 'pass', output: 'fine' }), { ok: true, result: { status: 'passing' } });
  t.match(await h({ op: 'renew', service: 'web', id: 'w1' }), { ok: true, result: { ttl: 30 } });
  t.match(await h({ op: 'register', tenant: 'blue', service: 'web', id: 'x', body: { address: '10.0.0.1', port: 80 } }), {
    ok: false,
    error: { code: 'invalid', field: 'tenant' },
  }, 'another tenant is refused');
  t.match(await h({ op: 'register', service: 'web', id: 'w2', body: { address: '10.0.0.1', port: 99999 } }), { ok: false, error: { field: 'port' } });
  t.match(await h({ op: 'check', service: 'web', id: 'w1', check: 'hb', status: 'maybe' }), { ok: false, error: { field: 'status' } });
  t.match(await h({ op: 'check', service: 'web', id: 'w1', status: 'pass' }), { ok: false, error: { field: 'check' } });
  t.match(await h({ op: 'explode' }), { ok: false, error: { field: 'op' } });
  t.match(await h('nope'), { ok: false, error: { field: '(message)' } });
  t.match(await h({ op: 'renew', service: 'web', id: 'nope' }), { ok: false, error: { code: 'not_found' } });
  t.match(await h({ op: 'deregister', service: 'web', id: 'w1' }), { ok: true });
  t.same(registry.list({ tenant: 'acme' }).instances, []);
  await store.close();
  t.match(await h({ op: 'register', service: 'web', id: 'w3', body: { address: '10.0.0.1', port: 80 } }), { ok: false, error: { code: 'unavailable' } }, 'closed store: an error reply, not a throw');
});
