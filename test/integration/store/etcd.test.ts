import t from 'tap';
import { randomUUID } from 'node:crypto';
import { EtcdStore, StoreUnavailableError, type Store } from '../../../src/store/index.js';
import { startEtcd } from '../../helpers/etcd.js';
import { collector, storeConformance } from '../../helpers/store-conformance.js';

const etcd = await startEtcd();
t.teardown(() => etcd.stop());

// Each test gets its own key prefix on the one etcd (compaction is store-wide, which the
// suite tolerates: it only compacts at revisions it wrote itself).
storeConformance(
  t,
  'etcd',
  async () => {
    const prefix = `t-${randomUUID()}/`;
    const clients: Store[] = [];
    return {
      client: async () => {
        const c = new EtcdStore({ endpoints: [etcd.endpoint], prefix, timeoutMs: 3000 });
        clients.push(c);
        return c;
      },
      close: async () => {
        await Promise.all(clients.map((c) => c.close()));
      },
    };
  },
  { shortTtl: 2 },
);

t.test('etcd: a dead etcd gives typed errors, and the store recovers when it returns', async (t) => {
  const s = new EtcdStore({ endpoints: [etcd.endpoint], prefix: `dead-${randomUUID()}/`, timeoutMs: 1000, watchRetryMs: 100 });
  t.teardown(() => s.close());
  await s.put('k', 'before');
  const c = collector();
  const w = await s.watch('k', {}, c.handler);
  t.teardown(() => w.cancel());
  await etcd.kill();
  const err = await s.put('k', 'during').catch((e: unknown) => e);
  t.type(err, StoreUnavailableError, 'put against a dead etcd: StoreUnavailableError');
  t.match((err as Error).message, etcd.endpoint, 'the error names the endpoint');
  await t.rejects(s.get('k'), StoreUnavailableError);
  await etcd.restart();
  const deadline = Date.now() + 15_000;
  let ok = false;
  while (!ok && Date.now() < deadline) {
    ok = await s.put('k', 'after').then(
      () => true,
      () => new Promise<boolean>((r) => setTimeout(() => r(false), 250)),
    );
  }
  t.ok(ok, 'writes succeed again once etcd is back');
  t.equal((await s.get('k'))?.value, 'after');
  await c.until(() => c.events.some((e) => e.kv.value === 'after'), 15_000);
  t.same(c.errors, [], 'the watch reconnected by itself without an error');
  t.notOk(c.events.some((e) => e.kv.value === 'during'), 'the failed write never happened');
});
