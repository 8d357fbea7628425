/**
 * `tenet services list|watch|register|deregister`: clients of the registry's REST API,
 * which the controller daemon serves at /v1/services on its API port (same URL and
 * token as the other client commands). `tenet registry serve` runs the registry alone
 * (HTTP + DNS on the embedded store or on etcd), without a controller.
 */
import { join } from 'node:path';
import { Command, Option } from 'commander';
import WebSocket from 'ws';
import { Registry, WATCH_PATH, serveRegistryHttp, startRegistryDns, type Instance } from '../registry/index.js';
import { openStore } from '../store/index.js';
import { TenetError, UsageError } from '../util/errors.js';
import { loadOrCreateToken, readTokenFile } from '../util/token.js';
import { DEFAULT_API_URL } from '../api/client.js';

/** The controller's API (it hosts the registry); a standalone `tenet registry serve` listens on 7070. */
export const DEFAULT_API = DEFAULT_API_URL;
/** Read when neither --token nor --token-file is given (the controller's default state dir). */
const DEFAULT_TOKEN_FILE = '/var/lib/tenet/token';

/** The registry API answered with an error (or could not be reached). */
export class ApiError extends TenetError {
  constructor(
    readonly status: number,
    message: string,
    context: Record<string, unknown> = {},
  ) {
    super('EAPI', message, { status, ...context });
  }
}

/** The registry (or something posing as it) answered with something that is not a valid reply. */
export class MalformedReplyError extends TenetError {
  constructor(what: string, detail: string, context: Record<string, unknown> = {}) {
    super('EAPI_MALFORMED', `malformed reply from the registry (${what}): ${detail}`, { what, ...context });
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The `instances` array of a list reply or snapshot, or a MalformedReplyError. */
function instancesOf(json: unknown, what: string): Instance[] {
  if (!isObject(json) || !Array.isArray(json.instances)) throw new MalformedReplyError(what, 'no "instances" list');
  return json.instances as Instance[];
}

export interface ClientOptions {
  api: string;
  token?: string;
}

type Write = (s: string) => void;

async function call(opts: ClientOptions, method: string, path: string, body?: unknown): Promise<{ status: number; headers: Headers; json: unknown }> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(new URL(path, opts.api), {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : err instanceof Error ? err.message : String(err);
    throw new ApiError(0, `cannot reach the registry API at ${opts.api}: ${cause}`, { api: opts.api });
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const j = (json ?? {}) as { message?: string; field?: string };
    const field = j.field ? ` (field ${j.field})` : '';
    throw new ApiError(res.status, `${method} ${path}: ${res.status} ${j.message ?? res.statusText}${field}`, { field: j.field });
  }
  return { status: res.status, headers: res.headers, json };
}

function scopePath(tenant?: string, service?: string): string {
  if (service && !tenant) throw new UsageError('--service needs --tenant');
  return `/v1/services${tenant ? `/${encodeURIComponent(tenant)}` : ''}${service ? `/${encodeURIComponent(service)}` : ''}`;
}

function table(instances: Instance[]): string {
  const rows = [['TENANT', 'SERVICE', 'ID', 'ADDRESS', 'PORT', 'STATUS', 'TAGS']];
  for (const i of instances) rows.push([i.tenant, i.service, i.id, i.address, String(i.port), i.status, i.tags.join(',')]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export async function listServices(
  opts: ClientOptions & { tenant?: string; service?: string; passing?: boolean; output?: string },
  write: Write,
): Promise<Instance[]> {
  const q = opts.passing ? '?passing=1' : '';
  const r = await call(opts, 'GET', scopePath(opts.tenant, opts.service) + q);
  const instances = instancesOf(r.json, `GET ${scopePath(opts.tenant, opts.service)}`);
  write(opts.output === 'json' ? `${JSON.stringify(instances, null, 2)}\n` : instances.length ? table(instances) : 'no instances\n');
  return instances;
}

export interface RegisterFlags {
  address: string;
  port: string;
  tag?: string[];
  meta?: string[];
  ttl?: string;
  httpCheck?: string;
  tcpCheck?: string;
  ttlCheck?: string;
  checkInterval?: string;
  deregisterCriticalAfter?: string;
}

/** Builds the registration body from flags; the server validates it (and names bad fields). */
export function registrationBody(f: RegisterFlags): Record<string, unknown> {
  if (!/^\d+$/.test(f.port)) throw new UsageError(`--port must be a number, got '${f.port}'`);
  const meta: Record<string, string> = {};
  for (const m of f.meta ?? []) {
    const eq = m.indexOf('=');
    if (eq <= 0) throw new UsageError(`--meta wants key=value, got '${m}'`);
    meta[m.slice(0, eq)] = m.slice(eq + 1);
  }
  const checks: Array<Record<string, unknown>> = [];
  const interval = f.checkInterval ? { interval: f.checkInterval } : {};
  if (f.httpCheck) checks.push({ type: 'http', url: f.httpCheck, ...interval });
  if (f.tcpCheck) checks.push({ type: 'tcp', ...(f.tcpCheck === 'self' ? {} : { target: f.tcpCheck }), ...interval });
  if (f.ttlCheck) checks.push({ id: 'ttl', type: 'ttl', ttl: f.ttlCheck });
  const body: Record<string, unknown> = { address: f.address, port: Number(f.port), tags: f.tag ?? [], meta, checks };
  if (f.ttl) body.ttl = f.ttl;
  if (f.deregisterCriticalAfter) body.deregisterCriticalAfter = f.deregisterCriticalAfter;
  return body;
}

export async function registerService(opts: ClientOptions, tenant: string, service: string, id: string, flags: RegisterFlags, write: Write): Promise<Instance> {
  const r = await call(opts, 'PUT', `/v1/services/${encodeURIComponent(tenant)}/${encodeURIComponent(service)}/${encodeURIComponent(id)}`, registrationBody(flags));
  if (!isObject(r.json) || typeof r.json.address !== 'string') throw new MalformedReplyError(`PUT ${tenant}/${service}/${id}`, 'no instance in the reply');
  const inst = r.json as unknown as Instance;
  write(`${r.status === 201 ? 'registered' : 'updated'} ${tenant}/${service}/${id} ${inst.address}:${inst.port} (${inst.status}, ttl ${inst.ttl}s)\n`);
  return inst;
}

export async function deregisterService(opts: ClientOptions, tenant: string, service: string, id: string, write: Write): Promise<void> {
  await call(opts, 'DELETE', `/v1/services/${encodeURIComponent(tenant)}/${encodeURIComponent(service)}/${encodeURIComponent(id)}`);
  write(`deregistered ${tenant}/${service}/${id}\n`);
}

export interface WatchFrame {
  type: string;
  index?: number;
  revision?: number;
  instances?: Instance[];
  tenant?: string;
  service?: string;
  id?: string;
  instance?: Instance;
}

/** One watch message: a JSON object with a `type`; a snapshot carries an `instances` list. */
export function parseWatchFrame(text: string): WatchFrame {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new MalformedReplyError('watch', `frame is not JSON: ${JSON.stringify(text.slice(0, 60))}`);
  }
  if (!isObject(v) || typeof v.type !== 'string') throw new MalformedReplyError('watch', 'frame has no "type"');
  if (v.type === 'snapshot') instancesOf(v, 'watch snapshot');
  return v as unknown as WatchFrame;
}

/** Streams changes until `count` events were printed (0 = forever) or the signal aborts. */
export function watchServices(
  opts: ClientOptions & { tenant?: string; service?: string; output?: string; count?: number; signal?: AbortSignal },
  write: Write,
): Promise<void> {
  const url = new URL(WATCH_PATH, opts.api);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (opts.tenant) url.searchParams.set('tenant', opts.tenant);
  if (opts.service) url.searchParams.set('service', opts.service);
  const ws = new WebSocket(url, { headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {} });
  let seen = 0;
  return new Promise((resolve, reject) => {
    const stop = () => {
      ws.close();
      resolve();
    };
    opts.signal?.addEventListener('abort', stop);
    ws.on('unexpected-response', (_req, res) => reject(new ApiError(res.statusCode ?? 0, `watch refused: ${res.statusCode} ${res.statusMessage}`)));
    ws.on('error', (err) => reject(new ApiError(0, `cannot watch the registry at ${opts.api}: ${err.message}`)));
    ws.on('close', () => resolve());
    ws.on('message', (data) => {
      let ev: WatchFrame;
      try {
        ev = parseWatchFrame(String(data));
      } catch (err) {
        // A broken peer ends the watch with one clear error; never an uncaught exception.
        ws.terminate();
        reject(err);
        return;
      }
      if (opts.output === 'json') write(`${JSON.stringify(ev)}\n`);
      else if (ev.type === 'snapshot') write(`# ${ev.instances?.length ?? 0} instances at index ${ev.index}\n`);
      else write(`${ev.revision} ${ev.type} ${ev.tenant}/${ev.service}/${ev.id}${ev.instance ? ` ${ev.instance.address}:${ev.instance.port} ${ev.instance.status}` : ''}\n`);
      if (ev.type !== 'snapshot' && opts.count && ++seen >= opts.count) stop();
    });
  });
}

const apiOption = () => new Option('--api <url>', 'controller API base URL (or a standalone registry\'s)').env('TENET_API').default(DEFAULT_API);
const tokenOption = () => new Option('--token <token>', 'bearer token').env('TENET_TOKEN');
const tokenFileOption = () => new Option('--token-file <file>', `file holding the bearer token (default ${DEFAULT_TOKEN_FILE} if readable)`);
const outputOption = () => new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');
const collect = (v: string, prev: string[] = []) => [...prev, v];
const out: Write = (s) => process.stdout.write(s);

/** --token, else --token-file, else the default token file if readable (as the other client commands). */
function client(o: { api: string; token?: string; tokenFile?: string }): ClientOptions {
  try {
    new URL(o.api);
  } catch {
    throw new UsageError(`--api must be a URL, got '${o.api}'`);
  }
  let token = o.token;
  if (!token && o.tokenFile) {
    token = readTokenFile(o.tokenFile);
    if (!token) throw new UsageError(`cannot read a token from ${o.tokenFile}`);
  }
  token ??= readTokenFile(DEFAULT_TOKEN_FILE);
  return token ? { api: o.api, token } : { api: o.api };
}

export function register(program: Command): void {
  const services = program.command('services').description('service instances in the registry (talks to its REST API)');

  services
    .command('list')
    .description('list instances, optionally of one tenant or service')
    .option('--tenant <tenant>')
    .option('--service <service>')
    .option('--passing', 'only instances that are not critical')
    .addOption(apiOption())
    .addOption(tokenOption())
    .addOption(tokenFileOption())
    .addOption(outputOption())
    .action(async (o: { tenant?: string; service?: string; passing?: boolean; api: string; token?: string; tokenFile?: string; output: string }) => {
      const { tokenFile: _f, ...rest } = o;
      await listServices({ ...rest, ...client(o) }, out);
    });

  services
    .command('watch')
    .description('stream registrations, health changes and deregistrations')
    .option('--tenant <tenant>')
    .option('--service <service>')
    .option('--count <n>', 'exit after n change events', (v) => {
      if (!/^\d+$/.test(v)) throw new UsageError(`--count must be a number, got '${v}'`);
      return Number(v);
    })
    .addOption(apiOption())
    .addOption(tokenOption())
    .addOption(tokenFileOption())
    .addOption(outputOption())
    .action(async (o: { tenant?: string; service?: string; count?: number; api: string; token?: string; tokenFile?: string; output: string }) => {
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      const { tokenFile: _f, ...rest } = o;
      await watchServices({ ...rest, ...client(o), signal: ac.signal }, out);
    });

  services
    .command('register <tenant> <service> <id>')
    .description('register (or update) an instance')
    .requiredOption('--address <ip>', 'IPv4 or IPv6 address')
    .requiredOption('--port <port>', 'port, 1-65535')
    .option('--tag <tag>', 'tag (repeatable)', collect)
    .option('--meta <key=value>', 'metadata (repeatable)', collect)
    .option('--ttl <duration>', 'instance lease TTL, e.g. 30s (renew with PUT .../renew)')
    .option('--http-check <url>', 'HTTP health check (2xx passing, 429 warning)')
    .option('--tcp-check <host:port|self>', 'TCP connect health check')
    .option('--ttl-check <duration>', 'TTL health check, reported with PUT .../checks/ttl/pass')
    .option('--check-interval <duration>', 'interval of HTTP/TCP checks')
    .option('--deregister-critical-after <duration>', 'deregister after being critical this long')
    .addOption(apiOption())
    .addOption(tokenOption())
    .addOption(tokenFileOption())
    .action(async (tenant: string, service: string, id: string, o: RegisterFlags & { api: string; token?: string; tokenFile?: string }) => {
      await registerService(client(o), tenant, service, id, o, out);
    });

  services
    .command('deregister <tenant> <service> <id>')
    .description('remove an instance')
    .addOption(apiOption())
    .addOption(tokenOption())
    .addOption(tokenFileOption())
    .action(async (tenant: string, service: string, id: string, o: { api: string; token?: string; tokenFile?: string }) => {
      await deregisterService(client(o), tenant, service, id, out);
    });

  const registry = program.command('registry').description('run the service registry (REST + WebSocket + DNS)');
  registry
    .command('serve')
    .description('serve the registry on the embedded store (or etcd) until SIGINT/SIGTERM')
    .option('--data-dir <dir>', 'embedded store directory (also holds the token file)', '/var/lib/tenet')
    .option('--etcd <urls>', 'use etcd at these comma-separated client URLs instead of the embedded store')
    .option('--http-host <host>', 'HTTP listen address', '127.0.0.1')
    .option('--http-port <port>', 'HTTP port', '7070')
    .option('--dns-host <host>', 'DNS listen address', '127.0.0.1')
    .option('--dns-port <port>', 'DNS port (UDP and TCP)', '5353')
    .option('--tenants <list>', 'comma-separated tenants that may register (default: any)')
    .addOption(new Option('--token <token>', 'bearer token (default: <data-dir>/token, generated on first start)').env('TENET_TOKEN'))
    .option('--insecure-no-auth', 'serve without authentication')
    .action(async (o: {
      dataDir: string;
      etcd?: string;
      httpHost: string;
      httpPort: string;
      dnsHost: string;
      dnsPort: string;
      tenants?: string;
      token?: string;
      insecureNoAuth?: boolean;
    }) => {
      for (const [name, v] of [['--http-port', o.httpPort], ['--dns-port', o.dnsPort]] as const) {
        if (!/^\d+$/.test(v) || Number(v) > 65535) throw new UsageError(`${name} must be a port number, got '${v}'`);
      }
      const token = o.insecureNoAuth ? undefined : (o.token ?? loadOrCreateToken(o.dataDir));
      const store = o.etcd
        ? await openStore({ kind: 'etcd', endpoints: o.etcd.split(',') })
        : await openStore({ kind: 'embedded', dir: join(o.dataDir, 'store') });
      const tenants = o.tenants ? o.tenants.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
      const reg = await Registry.start({ store, ...(tenants ? { tenants } : {}) });
      const http = await serveRegistryHttp(reg, {
        host: o.httpHost,
        port: Number(o.httpPort),
        ...(token ? { token } : {}),
        onServerError: (err) => process.stderr.write(`registry: http server error: ${err.message}\n`),
        onWatchDropped: (d) => process.stderr.write(`registry: dropped a watch client ${d.remote ?? ''} that stopped reading (${d.backlogBytes} bytes queued)\n`),
      });
      const dnsPort = Number(o.dnsPort);
      const dns = await startRegistryDns(reg, { host: o.dnsHost, port: dnsPort, tcp: dnsPort !== 0 });
      out(`registry: http ${http.url} dns udp${dnsPort !== 0 ? '+tcp' : ''} ${o.dnsHost}:${dns.port} store ${store.kind}${token ? ` token ${o.token ? '(given)' : join(o.dataDir, 'token')}` : ' (no auth)'}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await dns.close();
      await http.close();
      await reg.close();
      await store.close();
    });
}
