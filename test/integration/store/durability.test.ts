/**
 * Durability of the embedded store under kill -9: a child process writes continuously
 * and prints each acknowledged write; it is SIGKILLed at random points, 21 times on
 * the same data directory (snapshots every 150 records, so kills also land during
 * segment rotation). After each kill the store is reopened and must hold every
 * acknowledged write, with the right value, and nothing that was never written.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { EmbeddedStore } from '../../../src/store/index.js';
import { valueOf } from '../../helpers/store-writer.js';

const KILLS = 21;
const INFLIGHT = 4;
const work = mkdtempSync(join(tmpdir(), 'tenet-durable-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

// A child going through a TypeScript loader takes ~1 s to start; one bundled child starts
// in a tenth of that, so 21 kill cycles fit in a few seconds. (esbuild is a direct
// dependency of the project: it is also what scripts/ts-loader transpiles with.)
const childJs = join(work, 'writer.mjs');
await build({
  entryPoints: [new URL('../../helpers/store-writer.ts', import.meta.url).pathname],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: childJs,
  packages: 'external',
  logLevel: 'error',
});

interface Cycle {
  name: string;
  acked: Map<number, number>;
  maxIssuedBound: number;
}

function runAndKill(t: Test, dir: string, cycle: string, killAfterAcks: number): Promise<Cycle> {
  return new Promise((resolve, reject) => {
    // Through sh to drop tap's NODE_OPTIONS hooks (coverage + loaders) from the child;
    // the child is still killed by its own pid (exec replaces the shell).
    const child = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, childJs, dir, cycle, String(INFLIGHT)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // If the test fails mid-cycle, the writer must not outlive it: killed by its pid.
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const acked = new Map<number, number>();
    let buf = '';
    let err = '';
    let killed = false;
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^ack (\d+) (\d+)$/.exec(line);
        if (m) acked.set(Number(m[1]), Number(m[2]));
      }
      if (!killed && acked.size >= killAfterAcks) {
        killed = true;
        child.kill('SIGKILL'); // by pid, mid-stream
      }
    });
    // 'close', not 'exit': only then are stdout's last lines (acks written just before
    // the kill) read, so every ack printed is checked and none arrives after the check.
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') {
        reject(new Error(`writer exited ${code} ${signal}: ${err}`));
        return;
      }
      const max = Math.max(-1, ...acked.keys());
      resolve({ name: cycle, acked, maxIssuedBound: max + INFLIGHT });
    });
  });
}

t.test(`${KILLS} kill -9 cycles: every acknowledged write survives, nothing else appears`, async (t) => {
  const dir = join(work, 'data');
  const cycles: Cycle[] = [];
  let totalAcked = 0;
  let lost = 0;
  let phantom = 0;
  let maxRev = 0;
  for (let c = 0; c < KILLS; c++) {
    // Random kill point: after 1..80 acknowledged writes.
    const cyc = await runAndKill(t, dir, `c${String(c).padStart(2, '0')}`, 1 + Math.floor(Math.random() * 80));
    cycles.push(cyc);
    totalAcked += cyc.acked.size;
    for (const r of cyc.acked.values()) maxRev = Math.max(maxRev, r);
    const store = await EmbeddedStore.open({ dir, snapshotEvery: 150 });
    try {
      const st = await store.status();
      if (st.revision < maxRev) lost++;
      for (const cy of cycles) {
        const r = await store.range(`${cy.name}/`, { prefix: true });
        const have = new Map(r.kvs.map((kv) => [Number(kv.key.slice(cy.name.length + 1)), kv]));
        for (const [i, rev] of cy.acked) {
          const kv = have.get(i);
          if (!kv || kv.value !== valueOf(cy.name, i) || kv.modRevision !== rev) lost++;
        }
        for (const [i, kv] of have) {
          if (i > cy.maxIssuedBound || kv.value !== valueOf(cy.name, i)) phantom++;
        }
      }
    } finally {
      await store.close();
    }
  }
  t.equal(lost, 0, `all ${totalAcked} acknowledged writes present with value and revision after ${KILLS} kills`);
  t.equal(phantom, 0, 'no key that was never written, no wrong value');
});
