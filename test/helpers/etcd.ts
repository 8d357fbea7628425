/**
 * Starts a real etcd (Debian's etcd-server) on free loopback ports in a temp data
 * directory, for tests and benchmarks. Stopped by pid; the directory is removed.
 * The ports are outside the kernel's ephemeral range (see net.ts), so that while etcd is
 * killed no outgoing connection or listen(0) elsewhere can take them before restart().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';

export interface EtcdProcess {
  endpoint: string;
  dataDir: string;
  pid(): number | undefined;
  /** Kills etcd (SIGKILL) and waits for it to exit; data stays. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data (the ports stay reserved: see net.ts). */
  restart(): Promise<void>;
  /** Stops etcd and removes the data directory. */
  stop(): Promise<void>;
}

// Ports outside the kernel's ephemeral range: restart() reuses them after an outage.
export { freePort };

async function waitHealthy(endpoint: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${endpoint}/health`);
      if (res.ok) {
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
      }
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${endpoint} did not become healthy in ${timeoutMs} ms`);
}

export async function startEtcd(opts: { quotaBytes?: number } = {}): Promise<EtcdProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tenet-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | undefined;
  let stderr = '';
  const launch = async () => {
    const c = spawn(
      'etcd',
      [
        '--name', 'default',
        '--data-dir', join(dataDir, 'data'),
        '--listen-client-urls', client,
        '--advertise-client-urls', client,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `default=${peer}`,
        '--log-level', 'error',
        ...(opts.quotaBytes ? ['--quota-backend-bytes', String(opts.quotaBytes)] : []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    c.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child = c;
    // Safety net if the test process dies without its teardown: kill this etcd by pid.
    const onExit = () => {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    };
    process.once('exit', onExit);
    c.once('exit', () => process.off('exit', onExit));
    try {
      await waitHealthy(client, c, 20_000);
    } catch (err) {
      await killChild(c);
      throw new Error(`${(err as Error).message}\n${stderr}`);
    }
  };
  await launch().catch((err: unknown) => {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  });
  return {
    endpoint: client,
    dataDir,
    pid: () => child?.pid,
    kill: async () => {
      if (child) await killChild(child);
      child = undefined;
    },
    restart: async () => {
      if (child) await killChild(child);
      // The ports are outside the ephemeral range, but another test's freePort() probe may
      // hold one for an instant: a failed start is retried on the same ports and data.
      for (let attempt = 1; ; attempt++) {
        try {
          await launch();
          return;
        } catch (err) {
          if (attempt >= 3) throw err;
          await new Promise((r) => setTimeout(r, 300));
        }
      }
    },
    stop: async () => {
      if (child) await killChild(child, 'SIGTERM');
      child = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function killChild(c: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => c.kill('SIGKILL'), 3000);
    c.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    c.kill(signal); // by pid: ChildProcess.kill signals exactly this child
  });
}
