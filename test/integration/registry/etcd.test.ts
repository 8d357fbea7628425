/** The registry on a real etcd: works the same, and a dead etcd gives 503s (not a crash) until it returns. */
import t from 'tap';
import { Registry, serveRegistryHttp } from '../../../src/registry/index.js';
import { EtcdStore } from '../../../src/store/index.js';
import { startEtcd } from '../../helpers/etcd.js';

t.test('registry over etcd survives an etcd outage', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: 'reg-test/', timeoutMs: 1000, watchRetryMs: 100 });
  t.teardown(() => store.close());
  const registry = await Registry.start({ store, tenants: ['acme'] });
  t.teardown(() => registry.close());
  const http = await serveRegistryHttp(registry);
  t.teardown(() => http.close());
  const put = (id: string) =>
    fetch(`${http.url}/v1/services/acme/web/${id}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ address: '10.0.0.1', port: 80 }),
    });
  t.equal((await put('w1')).status, 201);
  await etcd.kill();
  const down = await put('w2');
  t.equal(down.status, 503, 'etcd down: 503');
  const body = (await down.json()) as { error: string; message: string };
  t.equal(body.error, 'unavailable');
  t.match(body.message, etcd.endpoint, `clear message: ${body.message}`);
  const cached = await fetch(`${http.url}/v1/services/acme/web`);
  t.equal(cached.status, 200, 'reads are served from the view meanwhile');
  await etcd.restart();
  const deadline = Date.now() + 20_000;
  let status = 0;
  while (Date.now() < deadline && status !== 201) {
    status = (await put('w3')).status;
    if (status !== 201) await new Promise((r) => setTimeout(r, 250));
  }
  t.equal(status, 201, 'registrations work again once etcd is back');
  const list = (await (await fetch(`${http.url}/v1/services/acme/web`)).json()) as { instances: Array<{ id: string }> };
  t.same(list.instances.map((i) => i.id), ['w1', 'w3'], 'the view caught up through the reconnected watch');
});
