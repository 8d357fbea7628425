/**
 * A standalone ovsdb-server for tests and the benchmark: its own temp dir,
 * the vswitch schema, a unix socket and a TCP remote on an ephemeral port,
 * run in the foreground so we hold its pid; stopped by that pid.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/util/exec.js';

export const VSWITCH_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

export interface OvsdbServer {
  dir: string;
  /** `unix:PATH` */
  unix: string;
  /** `tcp:127.0.0.1:PORT` */
  tcp: string;
  readonly pid: number;
  /** Runs ovs-vsctl against this server. */
  vsctl(...args: string[]): Promise<string>;
  /** `ovsdb-client -f json dump` of the database, or of one table (optionally some columns); one object per table. */
  dump(...tableAndColumns: string[]): Promise<unknown>;
  kill9(): Promise<void>;
  /** Starts the same command line again (same db file). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as net.AddressInfo;
      s.close(() => resolve(a.port));
    });
  });
}

async function waitForSocket(path: string, child: ChildProcess, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`ovsdb-server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.createConnection({ path }, () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`ovsdb-server socket ${path} not ready`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface StartOptions {
  /** Skip `ovs-vsctl init` (leaves the Open_vSwitch table empty). */
  noInit?: boolean;
  /** Extra remote, e.g. `pssl:PORT:127.0.0.1`, plus the flags it needs. */
  extraArgs?: string[];
}

export async function startOvsdbServer(opts: StartOptions = {}): Promise<OvsdbServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ovsdb-'));
  const db = join(dir, 'conf.db');
  const sock = join(dir, 'db.sock');
  await run(['ovsdb-tool', 'create', db, VSWITCH_SCHEMA]);
  const port = await freePort();
  const argv = [
    db,
    `--remote=punix:${sock}`,
    `--remote=ptcp:${port}:127.0.0.1`,
    `--unixctl=${join(dir, 'ovsdb-server.ctl')}`,
    `--log-file=${join(dir, 'ovsdb-server.log')}`,
    '-vconsole:off',
    ...(opts.extraArgs ?? []),
  ];
  let child: ChildProcess;
  const launch = async () => {
    child = spawn('ovsdb-server', argv, { stdio: 'ignore', env: { ...process.env, OVS_RUNDIR: dir, OVS_DBDIR: dir } });
    await waitForSocket(sock, child);
  };
  const exited = (c: ChildProcess) =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r()));
  await launch();
  const env = { ...process.env, OVS_RUNDIR: dir };
  const server: OvsdbServer = {
    dir,
    unix: `unix:${sock}`,
    tcp: `tcp:127.0.0.1:${port}`,
    get pid() {
      return child.pid!;
    },
    async vsctl(...args) {
      return (await run(['ovs-vsctl', `--db=unix:${sock}`, '--no-wait', '--timeout=10', ...args], { env })).stdout;
    },
    async dump(...tables) {
      const out = (await run(['ovsdb-client', '-f', 'json', 'dump', `unix:${sock}`, 'Open_vSwitch', ...tables])).stdout;
      return out
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as unknown);
    },
    async kill9() {
      const c = child;
      process.kill(c.pid!, 'SIGKILL');
      await exited(c);
    },
    async restart() {
      await launch();
    },
    async stop() {
      const c = child;
      if (c.exitCode === null && c.signalCode === null) {
        process.kill(c.pid!, 'SIGTERM');
        await exited(c);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (!opts.noInit) await server.vsctl('init');
  return server;
}
