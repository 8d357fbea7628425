/**
 * The registry's view must not silently miss changes when its store watch is refused
 * with "compacted": it reloads from a fresh read. The store here is a real embedded
 * store; only the watch is wrapped, to drop events (a disconnect) and then report the
 * compaction, as an etcd watch resuming below the compact revision would.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../../../src/registry/index.js';
import { CompactedError, EmbeddedStore, type Store, type WatchHandler } from '../../../src/store/index.js';

t.test('view reloads after a compacted watch', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-reload-'));
  const real = await EmbeddedStore.open({ dir });
  let connected = true;
  let dropped = 0;
  const handlers: WatchHandler[] = [];
  const flaky: Store = Object.assign(Object.create(real) as Store, {
    watch: (key: string, opts: Parameters<Store['watch']>[1], h: WatchHandler) => {
      handlers.push(h);
      return real.watch(key, opts, {
        onEvents: (evs, rev) => (connected ? h.onEvents(evs, rev) : (dropped += evs.length)),
        onError: (e) => h.onError?.(e),
      });
    },
  });
  const viewer = await Registry.start({ store: flaky, runChecks: false });
  const writer = await Registry.start({ store: real, runChecks: false });
  t.teardown(async () => {
    await viewer.close();
    await writer.close();
    await real.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await writer.register('acme', 'web', 'w1', { address: '10.0.0.1', port: 80 });
  const until = async (pred: () => boolean) => {
    const end = Date.now() + 5000;
    while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  };
  await until(() => viewer.list().instances.length === 1);
  t.equal(viewer.list().instances.length, 1, 'viewer sees w1');
  connected = false;
  await writer.register('acme', 'web', 'w2', { address: '10.0.0.2', port: 80 });
  await until(() => dropped > 0); // the change reached the (disconnected) watch and was lost
  t.ok(dropped > 0, 'the change was dropped by the disconnected watch');
  t.equal(viewer.list().instances.length, 1, 'while disconnected the view is behind');
  connected = true;
  handlers[0]!.onError?.(new CompactedError(3, 10));
  await until(() => viewer.list().instances.length === 2);
  t.same(viewer.list().instances.map((i) => i.id), ['w1', 'w2'], 'after the compacted error the view reloaded');
  t.type(viewer.lastError, CompactedError);
  t.equal(handlers.length, 2, 'and watches again from the reload');
});
