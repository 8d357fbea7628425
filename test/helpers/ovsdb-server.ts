/**
 * A standalone ovsdb-server for tests and the benchmark: its own temp dir,
 * the vswitch schema, a unix socket and a TCP remote, run in the foreground
 * so we hold its pid; stopped by that pid.
 *
 * TCP (and TLS) remotes listen on port 0: the kernel picks a free port when
 * ovsdb-server binds, and we read it from the server's log. Picking a "free"
 * port first and binding it later races with every other process on the
 * machine (EADDRINUSE), most of all on a restart.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Row, type TableSchema } from '../../src/ovsdb/index.js';
import { decodeRow } from '../../src/ovsdb/schema.js';
import { run } from '../../src/util/exec.js';

export const VSWITCH_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

export interface OvsdbServer {
  dir: string;
  /** The database file. */
  db: string;
  /** `unix:PATH` */
  unix: string;
  /** `tcp:127.0.0.1:PORT` (the port changes on restart()). */
  readonly tcp: string;
  /** `ssl:127.0.0.2:PORT` when started with `ssl`, else undefined (the port changes on restart()). */
  readonly ssl: string | undefined;
  readonly pid: number;
  /** Runs ovs-vsctl against this server. */
  vsctl(...args: string[]): Promise<string>;
  /** `ovsdb-client -f json dump` of the database, or of one table (optionally some columns); one object per table. */
  dump(...tableAndColumns: string[]): Promise<unknown>;
  kill9(): Promise<void>;
  /** Starts the same database again (after kill9()). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function canConnect(path: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const c = net.createConnection({ path }, () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/**
 * Waits until the unix socket answers and the log (from byte `logFrom` on) names
 * the port bound for each address in `addrs` ("ADDR: listening on port N").
 */
async function waitReady(
  sock: string,
  log: string,
  logFrom: number,
  addrs: string[],
  child: ChildProcess,
  ms = 15_000,
): Promise<Map<string, number>> {
  const until = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`ovsdb-server exited (${child.exitCode ?? child.signalCode})`);
    }
    const ports = new Map<string, number>();
    let text = '';
    try {
      text = readFileSync(log).subarray(logFrom).toString();
    } catch {
      // not created yet
    }
    for (const a of addrs) {
      const m = new RegExp(`\\|0:${a.replace(/\./g, '\\.')}: listening on port (\\d+)`).exec(text);
      if (m) ports.set(a, Number(m[1]));
    }
    if (ports.size === addrs.length && (await canConnect(sock))) return ports;
    if (Date.now() > until) throw new Error(`ovsdb-server in ${sock} not ready`);
    await sleep(20);
  }
}

export interface StartOptions {
  /** Skip `ovs-vsctl init` (leaves the Open_vSwitch table empty). */
  noInit?: boolean;
  /** Also listen for TLS on 127.0.0.2 with these files (paths). */
  ssl?: { key: string; cert: string; ca: string };
}

export async function startOvsdbServer(opts: StartOptions = {}): Promise<OvsdbServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-ovsdb-'));
  const db = join(dir, 'conf.db');
  const sock = join(dir, 'db.sock');
  const log = join(dir, 'ovsdb-server.log');
  const argv = [
    db,
    `--remote=punix:${sock}`,
    '--remote=ptcp:0:127.0.0.1',
    `--unixctl=${join(dir, 'ovsdb-server.ctl')}`,
    `--log-file=${log}`,
    '-vconsole:off',
  ];
  const addrs = ['127.0.0.1'];
  if (opts.ssl) {
    // Its own loopback address, so its "listening on port" log line is told apart from TCP's.
    argv.push('--remote=pssl:0:127.0.0.2', `--private-key=${opts.ssl.key}`, `--certificate=${opts.ssl.cert}`, `--ca-cert=${opts.ssl.ca}`);
    addrs.push('127.0.0.2');
  }
  let child: ChildProcess | undefined;
  let ports = new Map<string, number>();
  const exited = (c: ChildProcess) =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r()));
  const killChild = async (sig: NodeJS.Signals) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    process.kill(c.pid!, sig);
    await exited(c);
  };
  const launch = async () => {
    let from = 0;
    try {
      from = statSync(log).size;
    } catch {
      // first start: no log yet
    }
    child = spawn('ovsdb-server', argv, { stdio: 'ignore', env: { ...process.env, OVS_RUNDIR: dir, OVS_DBDIR: dir } });
    child.once('error', () => undefined); // a spawn failure shows as exitCode below
    ports = await waitReady(sock, log, from, addrs, child);
  };
  const env = { ...process.env, OVS_RUNDIR: dir };
  const server: OvsdbServer = {
    dir,
    db,
    unix: `unix:${sock}`,
    get tcp() {
      return `tcp:127.0.0.1:${ports.get('127.0.0.1')}`;
    },
    get ssl() {
      return opts.ssl ? `ssl:127.0.0.2:${ports.get('127.0.0.2')}` : undefined;
    },
    get pid() {
      return child!.pid!;
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
      await killChild('SIGKILL');
    },
    async restart() {
      await launch();
    },
    async stop() {
      await killChild('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // From here on a failure must not leak the daemon or its directory.
  try {
    await run(['ovsdb-tool', 'create', db, VSWITCH_SCHEMA]);
    await launch();
    if (!opts.noInit) await server.vsctl('init');
  } catch (err) {
    await server.stop().catch(() => undefined);
    throw err;
  }
  return server;
}

/**
 * One table of `ovsdb-client -f json dump TARGET Open_vSwitch TABLE [COLUMNS]`
 * decoded with `table`'s schema into uuid → row (without _uuid/_version), for
 * comparing a replica with what the server's own tool shows.
 */
export async function dumpRows(target: string, table: TableSchema, columns: readonly string[] = []): Promise<Map<string, Row>> {
  const cols = columns.length ? ['_uuid', ...columns] : [];
  const out = (await run(['ovsdb-client', '-f', 'json', 'dump', target, 'Open_vSwitch', table.name, ...cols])).stdout;
  const d = JSON.parse(out.split('\n')[0]!) as { headings: string[]; data: unknown[][] };
  const rows = new Map<string, Row>();
  for (const values of d.data) {
    const obj: Record<string, unknown> = {};
    d.headings.forEach((h, i) => (obj[h] = values[i]));
    const uuid = (obj._uuid as [string, string])[1];
    delete obj._uuid;
    delete obj._version;
    rows.set(uuid, decodeRow(table, obj));
  }
  return rows;
}
