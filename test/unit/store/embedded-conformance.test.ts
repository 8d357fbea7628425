import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../src/store/index.js';
import { storeConformance } from '../../helpers/store-conformance.js';

storeConformance(
  t,
  'embedded',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenet-store-'));
    const store = await EmbeddedStore.open({ dir, leaseCheckMs: 50 });
    return {
      client: async () => store, // one process: every "client" shares the store
      close: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  { shortTtl: 1 },
);
