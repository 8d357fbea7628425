/**
 * `tenet apply|plan|get|delete|status`: clients of the controller's REST API
 * (`tenet controller`). The formatting is pure and exported for tests.
 */
import { Command, Option } from 'commander';
// The client straight from its module: api/index.js also loads the server (express, ws, the
// store), which costs every `tenet get|status|apply` about 1.5 s and 20 MB at start (measured).
import { ApiClient, DEFAULT_API_URL } from '../api/client.js';
import type { EventMessage, NetworkInfo, TenantInfo } from '../api/index.js';
import type { ChainInfo, ControllerStatus, EndpointInfo, HostStatus, Plan } from '../controller/index.js';
import type { SelectorDoc } from '../model/index.js';
import { TenetError, UsageError } from '../util/errors.js';
import { readJsonFile } from '../util/json-file.js';
import { readTokenFile } from '../util/token.js';

/** Read when neither --token nor --token-file is given (the controller's default state dir). */
export const DEFAULT_TOKEN_FILE = '/var/lib/tenet/token';

type Write = (s: string) => void;

/** Some host did not realize the applied generation (unreachable, error or timeout). */
export class NotRealizedError extends TenetError {
  constructor(message: string, context: Record<string, unknown>) {
    super('ENOTREALIZED', message, context);
  }
}

// ---- formatting (pure) ----------------------------------------------------------------------

/** Columns padded to the widest cell; trailing blanks trimmed. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export function formatPlan(plan: Plan, verbose = false): string {
  const lines = [`plan: generation ${plan.generation}`];
  if (plan.hosts.length === 0) lines.push('  (no hosts)');
  for (const h of plan.hosts) {
    const changed = h.summary !== 'no change';
    const kind = changed ? (h.hitless ? ' (hitless)' : ' (disruptive)') : '';
    lines.push(`  ${h.host}: ${h.summary}${kind}${h.reachable ? '' : ' [not connected: planned against its last known state]'}`);
    if (!verbose) continue;
    for (const g of h.groups.delete) lines.push(`    - group ${g}`);
    for (const g of h.groups.modify) lines.push(`    ~ group ${g}`);
    for (const g of h.groups.add) lines.push(`    + group ${g}`);
    for (const f of h.delete) lines.push(`    - ${f}`);
    for (const f of h.modify) lines.push(`    ~ ${f}`);
    for (const f of h.add) lines.push(`    + ${f}`);
  }
  return lines.join('\n') + '\n';
}

/** A selector in one line: `endpoints=a,b labels=k=v …`, or `*` for {} (the whole tenant). */
export function formatSelector(d: SelectorDoc): string {
  const parts = [
    ...(d.endpoints?.length ? [`endpoints=${d.endpoints.join(',')}`] : []),
    ...(d.networks?.length ? [`networks=${d.networks.join(',')}`] : []),
    ...(d.labels && Object.keys(d.labels).length ? [`labels=${Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(',')}`] : []),
    ...(d.cidrs?.length ? [`cidrs=${d.cidrs.join(',')}`] : []),
  ];
  return parts.length ? parts.join(' ') : '*';
}

/** Per chain: its classifier on one line, then one row per hop instance with its health. */
export function chainsTable(chains: ChainInfo[]): string {
  if (!chains.length) return 'no chains\n';
  return chains
    .map((c) => {
      const proto = c.protocol === 'any' ? 'any' : c.ports.length ? `${c.protocol}/${c.ports.join(',')}` : c.protocol;
      const head = `${c.id}: ${formatSelector(c.from)} -> ${formatSelector(c.to)} ${proto} (network ${c.network}${c.symmetric ? ', symmetric' : ''}, failMode ${c.failMode})\n`;
      const rows = [['  HOP', 'STATE', 'INSTANCE', 'HOST', 'WEIGHT', 'OFPORT', 'HEALTH']];
      c.hops.forEach((h, k) => {
        h.instances.forEach((i, n) => {
          const hop = n === 0 ? `  ${k + 1}${h.service !== undefined ? ` (${h.service})` : ''}` : '';
          const name = i.egress ? `${i.endpoint} -> ${i.egress}` : i.endpoint;
          const ofport = i.egress ? `${i.ofport ?? '-'}/${i.egressOfport ?? '-'}` : String(i.ofport ?? '-');
          rows.push([hop, n === 0 ? h.state : '', name, i.host, String(i.weight), ofport, i.health]);
        });
        if (!h.instances.length) rows.push([`  ${k + 1}${h.service !== undefined ? ` (${h.service})` : ''}`, h.state, '-', '', '', '', '']);
      });
      return head + table(rows);
    })
    .join('\n');
}

export function hostsTable(hosts: HostStatus[]): string {
  if (!hosts.length) return 'no hosts\n';
  const rows = [['HOST', 'STATE', 'REALIZED', 'FLOWS', 'GROUPS', 'BINDINGS', 'DATAPATH', 'SINCE', 'ERROR']];
  for (const h of hosts) {
    rows.push([h.name, h.state, String(h.realizedGeneration), String(h.flows), String(h.groups), String(h.bindings), h.datapathId ?? '-', h.since, h.lastError ?? '']);
  }
  return table(rows);
}

export function tenantsTable(tenants: TenantInfo[]): string {
  if (!tenants.length) return 'no tenants\n';
  const rows = [['TENANT', 'NETWORKS', 'ENDPOINTS', 'POLICIES', 'DEFAULT', 'ROUTER']];
  for (const t of tenants) rows.push([t.name, t.networks.join(','), String(t.endpoints), String(t.policies), t.defaultPolicy, t.router ? t.router.join(',') : '-']);
  return table(rows);
}

export function networksTable(nets: NetworkInfo[]): string {
  if (!nets.length) return 'no networks\n';
  const v6 = nets.some((n) => n.subnet6);
  const rows = [['TENANT', 'NETWORK', 'SUBNET', 'GATEWAY', ...(v6 ? ['SUBNET6'] : []), 'VNI', 'ROUTED', 'ENDPOINTS']];
  for (const n of nets) rows.push([n.tenant, n.name, n.subnet ?? '-', n.gateway ?? '-', ...(v6 ? [n.subnet6 ?? '-'] : []), String(n.vni), n.routed ? 'yes' : 'no', String(n.endpoints)]);
  return table(rows);
}

export function endpointsTable(eps: EndpointInfo[]): string {
  if (!eps.length) return 'no endpoints\n';
  const v6 = eps.some((e) => e.ip6);
  const rows = [['ENDPOINT', 'NETWORK', 'HOST', 'IP', ...(v6 ? ['IP6'] : []), 'MAC', 'GATEWAY', 'OFPORT']];
  for (const e of eps) rows.push([e.id, e.network, e.host, e.ip ?? '-', ...(v6 ? [e.ip6 ?? '-'] : []), e.mac, e.gateway ?? '-', e.ofport === undefined ? '-' : String(e.ofport)]);
  return table(rows);
}

export function formatStatus(s: ControllerStatus): string {
  const ready = s.hosts.filter((h) => h.state === 'ready');
  const done = ready.filter((h) => h.realizedGeneration >= s.generation).length;
  return `generation ${s.generation}: realized on ${done} of ${s.hosts.length} hosts (${ready.length} ready) — controller up since ${s.startedAt}\n${hostsTable(s.hosts)}`;
}

/** One progress line for a host after an apply of `generation`. */
export function hostLine(h: HostStatus, generation: number): string {
  if (h.state === 'ready' && h.realizedGeneration >= generation) return `  ${h.name} realized gen ${h.realizedGeneration}`;
  return `  ${h.name} ${h.state}${h.lastError ? `: ${h.lastError}` : ''} (realized gen ${h.realizedGeneration})`;
}

/** The hosts of a final status that did not realize `generation`. */
export function notRealized(s: ControllerStatus, generation: number): HostStatus[] {
  return s.hosts.filter((h) => !(h.state === 'ready' && h.realizedGeneration >= generation));
}

// ---- commands -------------------------------------------------------------------------------

export interface ConnectOptions {
  api: string;
  token?: string;
  tokenFile?: string;
}

/** The client for the global options: --token, else --token-file, else the default token file if readable. */
export function connect(o: ConnectOptions): ApiClient {
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
  return new ApiClient({ url: o.api, ...(token ? { token } : {}) });
}

export async function planCommand(client: ApiClient, file: string, verbose: boolean, write: Write): Promise<Plan> {
  const plan = await client.plan(readJsonFile(file));
  write(formatPlan(plan, verbose));
  return plan;
}

export interface ApplyFlags {
  dryRun?: boolean;
  wait?: boolean;
  timeoutS: number;
  verbose?: boolean;
}

/**
 * Plan, apply, then follow the event stream until every reachable host realized the new
 * generation (GET /v1/wait decides when; the stream only prints progress as it happens).
 */
export async function applyCommand(client: ApiClient, file: string, flags: ApplyFlags, write: Write): Promise<void> {
  const doc = readJsonFile(file);
  write(formatPlan(await client.plan(doc), flags.verbose));
  if (flags.dryRun) {
    write('dry run: nothing applied\n');
    return;
  }
  // Subscribe before applying so that no `realized` event can be missed.
  const printed = new Set<string>();
  let generation = Infinity;
  const early: EventMessage[] = [];
  const onMessage = (m: EventMessage) => {
    if (generation === Infinity) {
      early.push(m);
      return;
    }
    if (m.type === 'realized' && m.generation >= generation && !printed.has(m.host)) {
      printed.add(m.host);
      write(`  ${m.host} realized gen ${m.generation} (${Math.round(m.ms)} ms)\n`);
    }
  };
  let closeEvents: (() => void) | undefined;
  if (flags.wait !== false) {
    // Progress is a nicety: without the stream, /v1/wait still decides the outcome.
    closeEvents = await client.events(onMessage).catch(() => undefined);
  }
  try {
    const r = await client.apply(doc);
    generation = r.generation;
    write(r.changed ? `applied: generation ${r.generation}\n` : `no change: generation ${r.generation} is already stored\n`);
    for (const m of early.splice(0)) onMessage(m);
    if (flags.wait === false) return;
    const s = await client.wait(r.generation, flags.timeoutS);
    for (const h of s.hosts) {
      if (printed.has(h.name)) continue;
      printed.add(h.name);
      write(`${hostLine(h, r.generation)}\n`);
    }
    const missing = notRealized(s, r.generation);
    if (missing.length === 0) {
      write(`generation ${r.generation} realized on ${s.hosts.length} of ${s.hosts.length} hosts\n`);
      return;
    }
    const why = missing.map((h) => `${h.name} (${h.state === 'ready' ? `timeout after ${flags.timeoutS} s` : h.state})`).join(', ');
    throw new NotRealizedError(`generation ${r.generation} not realized on ${missing.length} of ${s.hosts.length} hosts: ${why}`, {
      generation: r.generation,
      hosts: missing.map((h) => h.name),
    });
  } finally {
    closeEvents?.();
  }
}

type Kind = 'tenants' | 'networks' | 'endpoints' | 'hosts' | 'chains';
const KINDS: Record<string, Kind> = {
  tenants: 'tenants',
  tenant: 'tenants',
  networks: 'networks',
  network: 'networks',
  endpoints: 'endpoints',
  endpoint: 'endpoints',
  hosts: 'hosts',
  host: 'hosts',
  chains: 'chains',
  chain: 'chains',
};

export async function getCommand(client: ApiClient, what: string, o: { output: string; tenant?: string }, write: Write): Promise<void> {
  const kind = KINDS[what];
  if (!kind) throw new UsageError(`get what? one of tenants, networks, endpoints, hosts, chains (got '${what}')`);
  const json = o.output === 'json';
  const emit = <T>(v: T, fmt: (v: T) => string) => write(json ? `${JSON.stringify(v, null, 2)}\n` : fmt(v));
  if (kind === 'tenants') emit(await client.tenants(), tenantsTable);
  else if (kind === 'networks') emit(await client.networks(o.tenant), networksTable);
  else if (kind === 'endpoints') emit(await client.endpoints(o.tenant ? { tenant: o.tenant } : {}), endpointsTable);
  else if (kind === 'chains') emit(await client.chains(o.tenant), chainsTable);
  else emit(await client.hosts(), hostsTable);
}

export async function deleteCommand(client: ApiClient, args: { kind?: string; name?: string; all?: boolean }, write: Write): Promise<void> {
  if (args.all) {
    if (args.kind !== undefined) throw new UsageError('delete --all takes no other argument');
    const r = await client.deleteTenant();
    write(`deleted every tenant: generation ${r.generation}${r.changed ? '' : ' (nothing to delete)'}\n`);
    return;
  }
  if (args.kind !== 'tenant' || !args.name) throw new UsageError('usage: tenet delete tenant NAME | tenet delete --all');
  const r = await client.deleteTenant(args.name);
  write(`deleted tenant ${args.name}: generation ${r.generation}\n`);
}

const apiOption = () => new Option('--api <url>', 'controller API base URL').env('TENET_API').default(DEFAULT_API_URL);
const tokenOption = () => new Option('--token <token>', 'bearer token').env('TENET_TOKEN');
const tokenFileOption = () => new Option('--token-file <file>', `file holding the bearer token (default ${DEFAULT_TOKEN_FILE} if readable)`);
const outputOption = () => new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');
const out: Write = (s) => process.stdout.write(s);

function withApi(c: Command): Command {
  return c.addOption(apiOption()).addOption(tokenOption()).addOption(tokenFileOption());
}

function seconds(v: string): number {
  if (!/^\d+(\.\d+)?$/.test(v) || Number(v) > 600) throw new UsageError(`--timeout must be seconds from 0 to 600, got '${v}'`);
  return Number(v);
}

export function register(program: Command): void {
  withApi(
    program
      .command('apply')
      .description('apply a topology document: print the plan, store it, wait until every host realized it')
      .requiredOption('-f, --file <file>', 'topology document (JSON; - for stdin)')
      .option('--dry-run', 'print the plan only')
      .option('--no-wait', 'return once stored, without waiting for the hosts')
      .addOption(new Option('--timeout <seconds>', 'how long to wait for the hosts').default(60).argParser(seconds))
      .option('-v, --verbose', 'print the flows of the plan'),
  ).action(async (o: ConnectOptions & { file: string; dryRun?: boolean; wait: boolean; timeout: number; verbose?: boolean }) => {
    await applyCommand(connect(o), o.file, { dryRun: o.dryRun === true, wait: o.wait, timeoutS: o.timeout, verbose: o.verbose === true }, out);
  });

  withApi(
    program
      .command('plan')
      .description('the changes applying a document would make, per host (hitless or disruptive)')
      .requiredOption('-f, --file <file>', 'topology document (JSON; - for stdin)')
      .option('-v, --verbose', 'print the flows (ovs-ofctl syntax)'),
  ).action(async (o: ConnectOptions & { file: string; verbose?: boolean }) => {
    await planCommand(connect(o), o.file, o.verbose === true, out);
  });

  withApi(
    program
      .command('get')
      .description('list tenants, networks, endpoints (with IP/MAC), hosts or service chains (hop instances and their health)')
      .argument('<what>', 'tenants | networks | endpoints | hosts | chains')
      .option('--tenant <name>', 'only this tenant (networks, endpoints, chains)')
      .addOption(outputOption()),
  ).action(async (what: string, o: ConnectOptions & { output: string; tenant?: string }) => {
    await getCommand(connect(o), what, o, out);
  });

  withApi(
    program
      .command('delete')
      .description('delete a tenant (tenet delete tenant NAME) or every tenant (--all)')
      .argument('[kind]', 'tenant')
      .argument('[name]', 'tenant name')
      .option('--all', 'delete every tenant (hosts stay)'),
  ).action(async (kind: string | undefined, name: string | undefined, o: ConnectOptions & { all?: boolean }) => {
    await deleteCommand(connect(o), { ...(kind !== undefined ? { kind } : {}), ...(name !== undefined ? { name } : {}), all: o.all === true }, out);
  });

  withApi(program.command('status').description('topology generation and every host: state, realized generation, flows').addOption(outputOption())).action(
    async (o: ConnectOptions & { output: string }) => {
      const s = await connect(o).status();
      out(o.output === 'json' ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
    },
  );
}
