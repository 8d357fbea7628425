/**
 * An "etcd" that accepts TCP connections and never answers (a hung etcd, a black-holing
 * proxy): watch creation must fail with StoreUnavailableError instead of hanging.
 */
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { EtcdStore, StoreUnavailableError } from '../../../src/store/index.js';

t.test('watch creation against a silent peer: StoreUnavailableError, and the store closes cleanly', { timeout: 30_000 }, async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((s) => {
    sockets.add(s); // read nothing, answer nothing
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    silent.close(() => r());
  }));
  const endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
  const store = new EtcdStore({ endpoints: [endpoint], timeoutMs: 400 });
  t.teardown(() => store.close());
  const err = await store.watch('k', {}, { onEvents: () => undefined }).catch((e: unknown) => e);
  t.type(err, StoreUnavailableError, 'typed error instead of a hang');
  t.match((err as StoreUnavailableError).context, { endpoints: [endpoint] }, 'names the endpoint');
  t.ok(sockets.size >= 1, 'the peer did accept the connection (it is silent, not down)');
});
