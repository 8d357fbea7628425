/** The registry on a real etcd: works the same, and a dead etcd gives 503s (not a crash) until it returns. */
import t from 'tap';
import { Registry, serveRegistryHttp } from '../../../src/registry/index.js';
import { EtcdStore } from '../../../src/store/index.js';
import { startEtcd } from '../../helpers/etcd.js';
import { udpResolver } from '../../helpers/registry.js';

const etcd = await startEtcd(); // one etcd for the file; each test has its own key prefix
t.teardown(() => etcd.stop());

t.test('registry over etcd survives an etcd outage', async (t) => {
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

t.test('registry over etcd: lease expiry, blocking query, DNS', async (t) => {
  const { startRegistryDns } = await import('../../../src/registry/index.js');
  const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: 'reg-test2/' });
  t.teardown(() => store.close());
  const registry = await Registry.start({ store, tenants: ['acme'], sweepMs: 50 });
  t.teardown(() => registry.close());
  const http = await serveRegistryHttp(registry);
  t.teardown(() => http.close());
  const dns = await startRegistryDns(registry);
  t.teardown(() => dns.close());
  const put = (id: string, body: unknown) =>
    fetch(`${http.url}/v1/services/acme/web/${id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  t.equal((await put('w1', { address: '10.0.0.1', port: 80 })).status, 201);
  const first = await fetch(`${http.url}/v1/services/acme/web`);
  const index = Number(first.headers.get('x-tenet-index'));
  const blocked = fetch(`${http.url}/v1/services/acme/web?index=${index}&wait=20s`);
  // A short-lived instance (etcd rounds a 1 s lease up to its minimum, ~2 s).
  t.equal((await put('eph', { address: '10.0.0.2', port: 80, ttl: '1s' })).status, 201);
  const woke = await blocked;
  t.ok(Number(woke.headers.get('x-tenet-index')) > index, 'blocking query released by the registration');
  const resolve = udpResolver(dns.port);
  const a = await resolve('web.acme.tenet.', 'A', undefined, { recursive: false });
  t.same(a.answers.map((r) => r.address).sort(), ['10.0.0.1', '10.0.0.2']);
  const events: string[] = [];
  const off = registry.subscribe({ tenant: 'acme' }, (ev) => events.push(`${ev.type} ${ev.id}`));
  t.teardown(off);
  const end = Date.now() + 10_000;
  while (!events.includes('deregister eph') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  t.ok(events.includes('deregister eph'), 'etcd lease expiry: the instance is deregistered and watchers see it');
  const after = await resolve('web.acme.tenet.', 'A', undefined, { recursive: false });
  t.same(after.answers.map((r) => r.address), ['10.0.0.1'], 'and DNS no longer returns it');
});
