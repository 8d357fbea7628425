/**
 * Runs of one health check never overlap: while a run is still in flight (here its
 * result write is held back by a gated store), the interval's later ticks are skipped
 * instead of starting new checks that would pile up. The store is a real embedded store;
 * only `get` of the health key is wrapped, to hold it until the test opens the gate.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../../../src/registry/index.js';
import { EmbeddedStore, type Store } from '../../../src/store/index.js';
import { until } from '../../helpers/net.js';

t.test('a tick while the check is in flight is skipped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-inflight-'));
  const real = await EmbeddedStore.open({ dir });
  let gate: Promise<void> | undefined;
  let release = () => undefined as void;
  let held = 0;
  const gated: Store = Object.assign(Object.create(real) as Store, {
    get: async (key: string, ...rest: unknown[]) => {
      if (gate && key.includes('/health/')) {
        held++;
        await gate;
      }
      return (real.get as (k: string, ...r: unknown[]) => ReturnType<Store['get']>)(key, ...rest);
    },
  });
  let requests = 0;
  const target: Server = createServer((_req, res) => {
    requests++;
    res.end('ok');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
  const registry = await Registry.start({ store: gated, sweepMs: 50 });
  t.teardown(async () => {
    release();
    await registry.close();
    await real.close();
    target.closeAllConnections();
    await new Promise<void>((r) => target.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${(target.address() as AddressInfo).port}/`;
  await registry.register('acme', 'web', 'w1', { address: '10.0.0.1', port: 80, checks: [{ type: 'http', url, interval: '100ms' }] });
  await until('check passing', () => registry.get('acme', 'web', 'w1')?.status === 'passing');
  await until('checks keep running', () => requests >= 3);
  // Hold the next run's result write.
  gate = new Promise<void>((r) => (release = r));
  await until('a run is held in flight', () => held === 1);
  const atHold = requests;
  // Let many ticks' worth of time pass (a wait, not a timing claim: each tick sees the run in flight).
  const ticksSeen = await new Promise<number>((resolve) => {
    let n = 0;
    const iv = setInterval(() => {
      if (++n === 5) {
        clearInterval(iv);
        resolve(n);
      }
    }, 100);
  });
  t.equal(requests, atHold, `no new check started during ${ticksSeen} intervals while one was in flight`);
  t.equal(held, 1, 'one run held, none queued behind it');
  gate = undefined;
  release();
  await until('checks resume once the run finished', () => requests > atHold);
  t.pass('checks resume');
});
