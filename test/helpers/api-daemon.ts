/**
 * The real controller daemon (`tenet controller`, a child process) on loopback ports
 * for API and CLI tests: no lab, so every host of a topology is unreachable unless a
 * test provides a switch. Stopped by its pid in teardown, even when the test fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { TENET_BIN } from './cli.js';
import { freePort, until } from './net.js';

export interface ApiDaemon {
  pid: number;
  url: string;
  /** Read from `<stateDir>/token` (null with auth off). */
  token: string | null;
  stateDir: string;
  logFile: string;
  /** SIGTERM (SIGKILL after 5 s); resolves once the process exited. Idempotent. */
  stop(): Promise<void>;
}

export interface ApiDaemonOptions {
  /** Reuse a state dir (restart); default a fresh temp dir, removed in teardown. */
  stateDir?: string;
  auth?: boolean;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

export async function startApiDaemon(t: Test, opts: ApiDaemonOptions = {}): Promise<ApiDaemon> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'tenet-api-'));
  if (!opts.stateDir) t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const [apiPort, ofPort] = [await freePort(), await freePort()];
  const logFile = join(stateDir, `controller-${apiPort}.log`);
  const fd = openSync(logFile, 'a');
  const args = ['controller', '--state-dir', stateDir, '--api', `127.0.0.1:${apiPort}`, '--openflow', `127.0.0.1:${ofPort}`, '--drift-interval', '0', '--log-level', 'info', '--dns', '127.0.0.1:0'];
  if (opts.auth === false) args.push('--no-auth');
  const child = spawn(process.execPath, [TENET_BIN, ...args], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const pid = child.pid!;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited(child);
      clearTimeout(killer);
    })());
  // Registered before the readiness wait: a daemon that never came up is still stopped.
  t.teardown(stop);
  const url = `http://127.0.0.1:${apiPort}`;
  await until(
    `tenet controller on ${url} (log ${logFile})`,
    async () => {
      if (child.exitCode !== null) throw new Error(`tenet controller exited ${child.exitCode}:\n${readFileSync(logFile, 'utf8')}`);
      try {
        return (await fetch(`${url}/healthz`)).ok;
      } catch {
        return false;
      }
    },
    30_000,
    100,
  );
  const token = opts.auth === false ? null : readFileSync(join(stateDir, 'token'), 'utf8').trim();
  return { pid, url, token, stateDir, logFile, stop };
}

/** A valid two-tenant document whose hosts' OVSDB addresses are dead (port 1 on loopback). */
export function deadHostsTopology(): { version: 1; hosts: Array<Record<string, unknown>>; tenants: Array<Record<string, unknown> & { endpoints: Array<Record<string, unknown>> }> } {
  return {
    version: 1,
    hosts: [
      { name: 'host1', underlayIp: '192.0.2.1', ovsdb: 'tcp:127.0.0.1:1' },
      { name: 'host2', underlayIp: '192.0.2.2', ovsdb: 'tcp:127.0.0.1:1' },
    ],
    tenants: [
      {
        name: 'red',
        networks: [{ name: 'web', subnet: '10.0.0.0/24' }],
        endpoints: [
          { name: 'a', network: 'web', host: 'host1' },
          { name: 'b', network: 'web', host: 'host2' },
        ],
        policies: [{ name: 'ping', from: {}, to: {}, protocol: 'icmp', action: 'allow' }],
        defaultPolicy: 'deny',
      },
      {
        name: 'blue',
        networks: [{ name: 'web', subnet: '10.0.0.0/24' }],
        endpoints: [{ name: 'c', network: 'web', host: 'host1' }],
      },
    ],
  };
}
