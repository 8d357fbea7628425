/**
 * `tenet units validate|place -f FILE`: the topology's units and the scheduler's
 * placement, offline (no controller, no agents). The live commands (submit, start,
 * stop, destroy, list) join this group with the scheduler daemon.
 */
import { Command, Option } from 'commander';
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

export function register(program: Command): void {
  const units = program.command('units').description('scheduler units: check them and see where they would run (offline)');
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
}
