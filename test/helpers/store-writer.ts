/**
 * Child process for the embedded-store durability test: opens the store in argv[2],
 * writes `<cycle>/<i>` = value(i) with a few puts in flight, and prints `ack <i> <rev>`
 * only after each put resolved (= fsynced). The test kill -9s it mid-stream.
 */
import { EmbeddedStore } from '../../src/store/embedded.js';

export const valueOf = (cycle: string, i: number) => `${cycle}:${i}:${'x'.repeat(i % 200)}`;

const [dir, cycle, inflightArg] = process.argv.slice(2);
if (dir && cycle) {
  const store = await EmbeddedStore.open({ dir, snapshotEvery: 150 });
  process.stdout.write(`ready ${store.recovery.truncatedBytes}\n`);
  const inflight = Number(inflightArg ?? 4);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      const r = await store.put(`${cycle}/${String(i).padStart(6, '0')}`, valueOf(cycle, i));
      process.stdout.write(`ack ${i} ${r.revision}\n`);
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
}
