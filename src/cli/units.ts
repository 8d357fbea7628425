/**
 * `tenet units validate|place -f FILE`: the topology's units and the scheduler's
 * placement, offline (no controller, no agents). Live, against the controller API:
 * `tenet units submit|start|stop|destroy|list|logs` and `tenet agents`.
 */
import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import { readAgentLogs } from '../agent/sidekick.js';
import type { ApiClient } from '../api/client.js';
import type { AgentInfo, UnitInfo } from '../scheduler/index.js';
import { TenetError, UsageError } from '../util/errors.js';
import { connect, table, type ConnectOptions } from './client.js';
import { expandUnits, validate, type TopologyDoc } from '../model/index.js';
import { hostsOf, place, type PlacementResult } from '../scheduler/index.js';
import { formatIssues } from '../util/issues.js';
import { JsonFileError, readJsonFile } from '../util/json-file.js';

/** `invalid`: the topology failed validation (its issues in `text`, for stderr), as opposed to a placement that is not ok. */
type Output = { ok: boolean; text: string; invalid?: true };

function docOf(file: string): { ok: true; doc: TopologyDoc } | { ok: false; text: string; invalid: true } {
  const r = validate(readJsonFile(file));
  if (!r.ok) return { ok: false, invalid: true, text: `${file}: ${r.errors.length} error(s)\n${formatIssues(r.errors)}\n` };
  return { ok: true, doc: r.doc };
}

/** Output of `tenet units validate` (exit code 1 when invalid). */
export function unitsValidateText(file: string): Output {
  const r = docOf(file);
  if (!r.ok) return r;
  const specs = expandUnits(r.doc.units);
  const global = specs.filter((s) => s.global).length;
  const instances = specs.reduce((n, s) => n + (s.global ? 0 : s.replicas), 0);
  return {
    ok: true,
    text: `${file}: valid (${r.doc.units.length} units in the document, ${specs.length} after template expansion: ${instances} instances${global ? ` + ${global} global` : ''}; ${r.doc.hosts.length} hosts)\n`,
  };
}

/** Reads `--current`: a JSON object instance id → host, or a previous `units place --format json` output. */
function currentOf(file: string): Record<string, string> {
  const j = readJsonFile(file);
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(j) && Array.isArray(j.assignments)) {
    const out: Record<string, string> = {};
    for (const a of j.assignments) if (isObj(a) && typeof a.id === 'string' && typeof a.host === 'string') out[a.id] = a.host;
    return out;
  }
  if (isObj(j) && Object.values(j).every((v) => typeof v === 'string')) return j as Record<string, string>;
  throw new JsonFileError(file, `${file}: --current must be {"<instance id>": "<host>", …} or the JSON output of "tenet units place"`);
}

/** Output of `tenet units place` (exit code 1 when the topology is invalid or something is unplaceable). */
export function unitsPlaceText(file: string, opts: { format: 'text' | 'json'; current?: string }): Output {
  const r = docOf(file);
  if (!r.ok) return r;
  const result = place(expandUnits(r.doc.units), hostsOf(r.doc), opts.current ? currentOf(opts.current) : undefined);
  const ok = result.unplaceable.length === 0;
  if (opts.format === 'json') return { ok, text: JSON.stringify(sorted(result), null, 2) + '\n' };
  return { ok, text: formatPlacement(result) };
}

function sorted(r: PlacementResult): PlacementResult {
  return { ...r, assignments: [...r.assignments].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)) };
}

/** Human-readable placement: instance → host, moves, removals, and every unplaceable instance with its reason. */
export function formatPlacement(r: PlacementResult): string {
  const lines: string[] = [];
  const s = sorted(r);
  const w = Math.max(8, ...s.assignments.map((a) => a.id.length));
  const fresh = new Set(r.placed.map((p) => p.id));
  lines.push(`${'INSTANCE'.padEnd(w)}  HOST`);
  for (const a of s.assignments) lines.push(`${a.id.padEnd(w)}  ${a.host}${fresh.has(a.id) ? '' : '  (kept)'}`);
  if (r.moved.length) {
    lines.push('', `moved (${r.moved.length}):`);
    for (const m of r.moved) lines.push(`  ${m.id}: ${m.from} → ${m.to ?? '(nowhere)'} (${m.reason})`);
  }
  if (r.removed.length) {
    lines.push('', `removed (${r.removed.length}):`);
    for (const m of r.removed) lines.push(`  ${m.id} from ${m.host}`);
  }
  if (r.unplaceable.length) {
    lines.push('', `unplaceable (${r.unplaceable.length}):`);
    for (const u of r.unplaceable) lines.push(`  ${u.id}: ${u.reason}`);
  }
  lines.push('', `${r.assignments.length} placed (${r.placed.length} new), ${r.unplaceable.length} unplaceable`);
  return lines.join('\n') + '\n';
}

/** `tenet units list`: one row per instance (a unit without instances: one row). */
export function unitsTable(units: UnitInfo[]): string {
  const rows = [['UNIT', 'INSTANCE', 'STATE', 'DESIRED', 'HOST', 'IP', 'TENANT/NETWORK']];
  const why: string[] = [];
  for (const u of units) {
    const net = `${u.tenant}/${u.network}`;
    if (!u.instances.length) rows.push([u.name, '-', '-', u.desiredState, '-', '-', net]);
    for (const i of u.instances) rows.push([u.name, i.id, i.state ?? (i.host ? 'assigned' : 'unplaced'), u.desiredState, i.host ?? '-', i.ip ?? '-', net]);
    if (u.unplaceable) why.push(`  ${u.name}: ${u.unplaceable}`);
  }
  return table(rows) + (why.length ? `\nunplaceable:\n${why.join('\n')}\n` : '');
}

/** `tenet agents`: one row per host. */
export function agentsTable(agents: AgentInfo[]): string {
  const rows = [['HOST', 'ALIVE', 'INSTANCES', 'RUNNING', 'VERSION', 'REGISTERED', 'LABELS']];
  for (const a of agents) {
    const labels = Object.entries(a.registration.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    rows.push([a.host, a.alive ? 'yes' : 'no', String(a.instances.length), String(a.instances.filter((i) => i.state === 'running').length), a.registration.version || '-', a.registeredAt, labels || '-']);
  }
  return table(rows);
}

/** Which agent runs `id` and where its socket is; a clear error when that is not on this machine. */
export async function logsOf(client: ApiClient, id: string, tail: number, exists: (p: string) => boolean = existsSync): Promise<string> {
  const agents = await client.agents();
  let agent = agents.find((a) => a.alive && a.instances.some((i) => i.id === id));
  if (!agent) {
    const host = (await client.units()).flatMap((u) => u.instances).find((i) => i.id === id)?.host;
    if (!host) throw new UsageError(`no instance '${id}' (tenet units list shows them)`, { instance: id });
    agent = agents.find((a) => a.host === host);
    if (!agent?.alive) throw new TenetError('ENOAGENT', `instance '${id}' is assigned to ${host}, whose agent is not running`, { instance: id, host });
  }
  const socket = agent.registration.socket;
  if (!socket) throw new TenetError('ENOSOCKET', `the agent of ${agent.host} registered no socket: its logs cannot be read from here`, { host: agent.host });
  if (!exists(socket)) throw new TenetError('ENOSOCKET', `instance '${id}' runs on ${agent.host}, whose agent socket ${socket} is not on this machine: run tenet units logs there`, { host: agent.host, socket });
  return readAgentLogs(socket, id, tail);
}

export function register(program: Command): void {
  const units = program.command('units').description('scheduler units: check and place them offline, or submit and manage them on the controller');
  units
    .command('validate')
    .description('check a topology file, its units included; every error with its JSON path')
    .requiredOption('-f, --file <file>', 'topology JSON')
    .action((opts: { file: string }) => {
      const r = unitsValidateText(opts.file);
      (r.ok ? process.stdout : process.stderr).write(r.text);
      if (!r.ok) process.exitCode = 1;
    });
  units
    .command('place')
    .description('place the units on the topology\'s hosts (labels, resources) and explain what cannot be placed')
    .requiredOption('-f, --file <file>', 'topology JSON')
    .option('--current <file>', 'where instances run now: {"<instance>": "<host>"} or a previous --format json output')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action((opts: { file: string; current?: string; format: 'text' | 'json' }) => {
      const r = unitsPlaceText(opts.file, opts);
      // Validation errors on stderr as in `units validate`; an unplaceable placement is still the command's output.
      (r.invalid ? process.stderr : process.stdout).write(r.text);
      if (!r.ok) process.exitCode = 1;
    });
  registerLive(program, units);
}

const out = (s: string) => void process.stdout.write(s);
const apiOptions = (c: Command) =>
  c
    .addOption(new Option('--api <url>', 'controller API base URL').env('TENET_API').default('http://127.0.0.1:6680'))
    .addOption(new Option('--token <token>', 'bearer token').env('TENET_TOKEN'))
    .addOption(new Option('--token-file <file>', 'file holding the bearer token'));

function registerLive(program: Command, units: Command): void {
  apiOptions(units.command('submit').description('add units to the controller\'s topology, or replace those of the same name').requiredOption('-f, --file <file>', 'JSON: a unit, a list of units, or {"units": [...]} (a topology file works too)')).action(
    async (o: ConnectOptions & { file: string }) => {
      const j = readJsonFile(o.file);
      const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
      const list = Array.isArray(j) ? j : isObj(j) && Array.isArray(j.units) ? j.units : [j];
      const r = await connect(o).submitUnits(list);
      out(`submitted ${list.length} unit(s): generation ${r.generation}${r.changed ? '' : ' (no change)'}\n`);
    },
  );
  for (const [verb, what] of [
    ['start', 'launch a unit (desiredState launched)'],
    ['stop', 'stop a unit, keeping its placement (desiredState loaded)'],
    ['destroy', 'remove a unit from the topology (its instances stop)'],
  ] as const) {
    apiOptions(units.command(verb).description(what).argument('<name>', 'unit name as submitted (a template by its range, e.g. web@1..3)')).action(async (name: string, o: ConnectOptions) => {
      const c = connect(o);
      const r = verb === 'start' ? await c.startUnit(name) : verb === 'stop' ? await c.stopUnit(name) : await c.destroyUnit(name);
      out(`${verb === 'destroy' ? 'destroyed' : verb === 'start' ? 'started' : 'stopped'} ${name}: generation ${r.generation}${r.changed ? '' : ' (no change)'}\n`);
    });
  }
  apiOptions(units.command('list').description('units and their instances: host, address, state as the agents report it').addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))).action(
    async (o: ConnectOptions & { output: string }) => {
      const u = await connect(o).units();
      out(o.output === 'json' ? `${JSON.stringify(u, null, 2)}\n` : unitsTable(u));
    },
  );
  apiOptions(
    units
      .command('logs')
      .description("an instance's output, read from its agent's socket (on the host that runs it)")
      .argument('<id>', 'instance id, e.g. web@1')
      .option('--tail <lines>', 'last lines', '100'),
  ).action(async (id: string, o: ConnectOptions & { tail: string }) => {
    if (!/^\d+$/.test(o.tail)) throw new UsageError(`--tail must be a number of lines, got '${o.tail}'`);
    out(await logsOf(connect(o), id, Number(o.tail)));
  });
  apiOptions(program.command('agents').description('hosts with an agent: alive, instances, running').addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))).action(
    async (o: ConnectOptions & { output: string }) => {
      const a = await connect(o).agents();
      out(o.output === 'json' ? `${JSON.stringify(a, null, 2)}\n` : agentsTable(a));
    },
  );
}
