/** Leader election over one embedded store: two candidates in one process. */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../src/store/index.js';
import { electionCases } from '../../helpers/election-cases.js';

electionCases(
  t,
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenet-elect-'));
    const store = await EmbeddedStore.open({ dir, leaseCheckMs: 50 });
    return {
      a: store,
      b: store,
      close: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  1,
);
