/**
 * Scheduler units in the topology document (DESIGN.md §6): the zod schema of a unit,
 * template expansion (`web@1..3` → web@1, web@2, web@3) and the semantic checks that
 * need the whole document (references, cycles, duplicates), reported like the rest of
 * validation as { path, message } with a JSON Pointer into the document.
 *
 * Resource units, decided here once:
 * - cpu: millicores internally (integer). In documents a number means cores (0.5, 2)
 *   and a string is "250m" (millicores) or "2" / "1.5" (cores).
 * - memory: bytes internally (integer). In documents a number means bytes and a string
 *   carries a suffix: Ki, Mi, Gi, Ti (powers of 1024) or K, M, G, T (powers of 1000).
 *
 * This module imports only types from schema.ts: schema.ts imports the schemas below.
 */
import { z } from 'zod';
import { UsageError } from '../util/errors.js';
import type { TopologyDoc } from './schema.js';
import type { ValidationIssue } from './types.js';

// Same rule as schema.ts's Name (not imported from there: schema.ts imports this module).
const DNS = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const RefName = z.string().regex(DNS, { message: 'must be DNS-safe: 1-63 lowercase letters, digits or "-", not starting or ending with "-"' });

/** `web`, `web@blue`, `web@3`, or a template `web@1..3`. */
const UNIT_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(@[a-z0-9-]{1,63}|@\d{1,6}\.\.\d{1,6})?$/;
/** An expanded unit name (no template range). */
const TEMPLATE = /^(.*)@(\d+)\.\.(\d+)$/;
/** Most instances one template may expand to. */
export const MAX_TEMPLATE_INSTANCES = 100_000;
/**
 * Most units a document may hold after template expansion, all templates together:
 * validation runs on every PUT and plan, and a few bytes of `uN@1..99999` would
 * otherwise cost seconds of CPU and hundreds of MB.
 */
export const MAX_EXPANDED_UNITS = 100_000;
/** Globs over unit names: letters, digits, "-", "@", "." and the wildcards * and ?. */
const GLOB = /^[a-z0-9*?@.-]{1,140}$/;

const CPU_STRING = /^(\d+(\.\d+)?|\d+m)$/;
const MEM_STRING = /^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$/;
const MEM_SUFFIX: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/** "250m" → 250, "1.5" → 1500, 2 → 2000 (millicores; fractions of a millicore round up). */
export function parseCpu(v: number | string): number {
  if (typeof v === 'number') return Math.ceil(v * 1000 - 1e-9);
  if (!CPU_STRING.test(v)) throw new UsageError(`cpu "${v}": give cores (2, "1.5") or millicores ("250m")`, { cpu: v });
  if (v.endsWith('m')) return Number(v.slice(0, -1));
  return Math.ceil(Number(v) * 1000 - 1e-9);
}

/** "512Mi" → 536870912, "1G" → 1e9, 4096 → 4096 (bytes; fractions of a byte round up). */
export function parseMemory(v: number | string): number {
  if (typeof v === 'number') return Math.ceil(v);
  const m = /^(\d+(?:\.\d+)?)([KMGT]i?)?$/.exec(v);
  if (!m) throw new UsageError(`memory "${v}": give bytes (4096) or a size like "512Mi", "2Gi", "1G"`, { memory: v });
  return Math.ceil(Number(m[1]) * MEM_SUFFIX[m[2] ?? '']!);
}

/** 536870912 → "512Mi", 8053063680 → "7.5Gi", -1073741824 → "-1Gi": for explanations. */
export function formatMemory(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'unlimited';
  if (bytes < 0) return `-${formatMemory(-bytes)}`;
  for (const [suffix, f] of [['Ti', 2 ** 40], ['Gi', 2 ** 30], ['Mi', 2 ** 20], ['Ki', 2 ** 10]] as const) {
    if (bytes >= f) return `${+(bytes / f).toFixed(bytes % f === 0 ? 0 : 1)}${suffix}`;
  }
  return `${bytes}B`;
}

/** 1500 → "1500m": for explanations. */
export function formatCpu(millicores: number): string {
  return Number.isFinite(millicores) ? `${millicores}m` : 'unlimited';
}

export const Cpu = z
  .union([z.number().min(0).max(1e6), z.string().regex(CPU_STRING, { message: 'must be cores (2, "1.5") or millicores ("250m")' })])
  .transform(parseCpu)
  .describe('CPU: a number of cores (0.5), or a string "250m" (millicores) / "2" (cores)');
export const Memory = z
  .union([z.number().int().min(0), z.string().regex(MEM_STRING, { message: 'must be bytes (4096) or a size like "512Mi", "2Gi", "1G"' })])
  .transform(parseMemory)
  .describe('memory: bytes (a number) or a size string with Ki/Mi/Gi/Ti (1024) or K/M/G/T (1000)');

/** What a host offers the scheduler (hosts without it are not limited). */
export const HostResources = z
  .strictObject({ cpu: Cpu.optional(), memory: Memory.optional() })
  .describe('capacity offered to scheduled units; a missing figure means not limited');

export const UnitResources = z.strictObject({ cpu: Cpu.default(0), memory: Memory.default(0) });

const LabelKey = z.string().regex(/^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/, { message: 'label key must be DNS-safe' });

export const UnitConstraints = z.strictObject({
  hostLabels: z
    .record(LabelKey, z.union([z.string().max(63), z.array(z.string().max(63)).min(1)]))
    .optional()
    .describe('host labels the unit needs: every key must match (AND), any of a key\'s values will do (OR)'),
  conflicts: z
    .array(z.string().regex(GLOB, { message: 'must be a glob over unit names (letters, digits, "-", "@", ".", * and ?)' }))
    .optional()
    .describe('globs of unit names that must not share a host with this unit (checked both ways); "%i" is the template instance'),
  machineOf: z.string().optional().describe('run on the same host as this unit (both placed or neither); "%i" is the template instance'),
  host: RefName.optional().describe('pin to this host'),
});

const Interval = z.number().int().min(100).max(3_600_000);
export const UnitCheck = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('tcp'), intervalMs: Interval.default(10_000), timeoutMs: Interval.default(2_000) }),
  z.strictObject({ type: z.literal('http'), path: z.string().startsWith('/').default('/'), intervalMs: Interval.default(10_000), timeoutMs: Interval.default(2_000) }),
  z.strictObject({ type: z.literal('ttl'), ttlMs: Interval }),
]);

export const UnitService = z.strictObject({
  name: RefName,
  port: z.number().int().min(1).max(65535),
  check: UnitCheck.optional(),
});

export const DESIRED_STATES = ['inactive', 'loaded', 'launched'] as const;
export const RESTART_POLICIES = ['always', 'on-failure', 'never'] as const;

export const Unit = z.strictObject({
  name: z
    .string()
    .regex(UNIT_NAME, { message: 'must be a DNS-safe name, optionally with an instance ("web@blue", "web@3") or a template range ("web@1..3")' })
    .describe('unit name; "web@1..3" expands to web@1, web@2, web@3'),
  tenant: RefName,
  network: RefName.describe('network of the tenant the unit\'s container joins'),
  command: z
    .union([z.string().min(1), z.array(z.string()).min(1)], { error: (iss) => (iss.input === undefined ? 'is required' : 'must be a command line (string) or an argv array (at least one string)') })
    .describe('argv (array) or a shell command line (string); "%i" is the template instance'),
  image: z.string().min(1).optional().describe('image, for runtimes that have images'),
  replicas: z.number().int().min(1).max(100_000).optional().describe('instances of the unit (default 1); replicas spread over hosts where they can'),
  global: z.boolean().optional().describe('one instance on every eligible host'),
  resources: UnitResources.default({ cpu: 0, memory: 0 }),
  constraints: UnitConstraints.default({}),
  services: z.array(UnitService).default([]),
  desiredState: z.enum(DESIRED_STATES).default('launched').describe('inactive: not scheduled; loaded: placed, not started; launched: placed and running'),
  restart: z.enum(RESTART_POLICIES).default('always').describe('what the agent does when the process exits: always restart, restart on a non-zero exit, never'),
  env: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, { message: 'must be an environment variable name' }), z.string().max(4096))
    .default({})
    .describe('extra environment of the process; "%i" is the template instance'),
});

export type UnitDoc = z.output<typeof Unit>;
export type UnitInput = z.input<typeof Unit>;
export type UnitServiceDoc = z.output<typeof UnitService>;
export type DesiredState = (typeof DESIRED_STATES)[number];
export type RestartPolicy = (typeof RESTART_POLICIES)[number];

/** One unit after template expansion: what the scheduler and (later) the agents use. */
export interface UnitSpec {
  name: string;
  /** Index of the document unit it came from (/units/<source>). */
  source: number;
  tenant: string;
  network: string;
  command: string | string[];
  image?: string;
  replicas: number;
  global: boolean;
  /** Millicores. */
  cpu: number;
  /** Bytes. */
  memory: number;
  /** Key → accepted values (AND across keys, OR within). */
  hostLabels: Record<string, string[]>;
  conflicts: string[];
  machineOf?: string;
  host?: string;
  services: UnitServiceDoc[];
  desiredState: DesiredState;
  restart: RestartPolicy;
  env: Record<string, string>;
}

/** `a → b → c → a` starting at cycle[start]; long cycles keep the first names and the count. */
export function cycleText(cycle: readonly string[], start: number): string {
  const MAX = 10;
  const from = cycle[start]!;
  const names: string[] = [];
  for (let i = 0; i < Math.min(cycle.length, MAX); i++) names.push(cycle[(start + i) % cycle.length]!);
  if (cycle.length > MAX) names.push(`… (${cycle.length - MAX} more)`);
  names.push(from);
  return names.join(' → ');
}

const sub = (s: string, instance: string | undefined) => (instance === undefined ? s : s.replaceAll('%i', instance));

/** Units one document unit expands to: 1, a template's range size, or 0 for a bad range. */
function rangeSize(u: Pick<UnitDoc, 'name'>): number {
  const m = TEMPLATE.exec(u.name);
  if (!m) return 1;
  const lo = Number(m[2]);
  const hi = Number(m[3]);
  return hi >= lo && hi - lo < MAX_TEMPLATE_INSTANCES ? hi - lo + 1 : 0;
}

/** How many units expandUnits would make, without making them. */
export function expandedCount(units: readonly Pick<UnitDoc, 'name'>[]): number {
  let n = 0;
  for (const u of units) n += rangeSize(u);
  return n;
}

/**
 * Expands templates and normalizes a document's units. Expansion of a bad range
 * (reversed or too large) yields nothing, and so does a document that would expand
 * to more than MAX_EXPANDED_UNITS; validateUnits reports both.
 */
export function expandUnits(units: readonly UnitDoc[]): UnitSpec[] {
  const out: UnitSpec[] = [];
  if (expandedCount(units) > MAX_EXPANDED_UNITS) return out;
  units.forEach((u, source) => {
    const m = TEMPLATE.exec(u.name);
    const instances: Array<[string, string | undefined]> = [];
    if (!m) instances.push([u.name, u.name.includes('@') ? u.name.slice(u.name.indexOf('@') + 1) : undefined]);
    else if (rangeSize(u) > 0) for (let i = Number(m[2]); i <= Number(m[3]); i++) instances.push([`${m[1]}@${i}`, String(i)]);
    const c = u.constraints;
    const hostLabels: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(c.hostLabels ?? {})) hostLabels[k] = typeof v === 'string' ? [v] : [...new Set(v)];
    for (const [name, inst] of instances) {
      const spec: UnitSpec = {
        name,
        source,
        tenant: u.tenant,
        network: u.network,
        command: typeof u.command === 'string' ? sub(u.command, inst) : u.command.map((a) => sub(a, inst)),
        replicas: u.replicas ?? 1,
        global: u.global ?? false,
        cpu: u.resources.cpu,
        memory: u.resources.memory,
        hostLabels,
        conflicts: (c.conflicts ?? []).map((g) => sub(g, inst)),
        services: u.services,
        desiredState: u.desiredState,
        restart: u.restart,
        env: Object.fromEntries(Object.entries(u.env).map(([k, v]) => [k, sub(v, inst)])),
      };
      if (u.image !== undefined) spec.image = u.image;
      if (c.machineOf !== undefined) spec.machineOf = sub(c.machineOf, inst);
      if (c.host !== undefined) spec.host = c.host;
      out.push(spec);
    }
  });
  return out;
}

/**
 * Semantic checks of the document's units: template ranges, duplicate names after
 * expansion, unknown tenant/network/host/machineOf target, machineOf cycles and
 * machineOf between units that are not single instances, contradictory options.
 */
export function validateUnits(doc: TopologyDoc, errors: ValidationIssue[]): UnitSpec[] {
  const err = (path: string, message: string) => errors.push({ path, message });
  const tenants = new Map(doc.tenants.map((t) => [t.name, new Set(t.networks.map((n) => n.name))]));
  const hosts = new Set(doc.hosts.map((h) => h.name));
  doc.units.forEach((u, i) => {
    const p = `/units/${i}`;
    const m = TEMPLATE.exec(u.name);
    if (m) {
      const lo = Number(m[2]);
      const hi = Number(m[3]);
      if (hi < lo) err(`${p}/name`, `template range ${lo}..${hi} is empty`);
      else if (hi - lo >= MAX_TEMPLATE_INSTANCES) err(`${p}/name`, `template range ${lo}..${hi} has more than ${MAX_TEMPLATE_INSTANCES} instances`);
    }
    const nets = tenants.get(u.tenant);
    if (!nets) err(`${p}/tenant`, `unknown tenant "${u.tenant}"`);
    else if (!nets.has(u.network)) err(`${p}/network`, `unknown network "${u.network}" in tenant "${u.tenant}"`);
    if (u.global && u.replicas !== undefined) err(`${p}/replicas`, 'a global unit runs one instance per eligible host; it cannot also have replicas');
    if (u.global && u.constraints.host !== undefined) err(`${p}/constraints/host`, 'a global unit cannot be pinned to one host');
    if (u.constraints.host !== undefined && !hosts.has(u.constraints.host)) err(`${p}/constraints/host`, `unknown host "${u.constraints.host}"`);
    const seen = new Map<string, number>();
    u.services.forEach((s, k) => {
      const first = seen.get(s.name);
      if (first !== undefined) err(`${p}/services/${k}/name`, `duplicate service "${s.name}" (first at ${p}/services/${first}/name)`);
      else seen.set(s.name, k);
    });
  });

  // Counted before anything is expanded: the cost of expanding is what the cap prevents.
  const total = expandedCount(doc.units);
  if (total > MAX_EXPANDED_UNITS) {
    err('/units', `the units expand to ${total} units (templates included); at most ${MAX_EXPANDED_UNITS} are allowed`);
    return [];
  }
  const specs = expandUnits(doc.units);
  const byName = new Map<string, UnitSpec>();
  for (const s of specs) {
    const first = byName.get(s.name);
    if (first) {
      const also = first.source === s.source ? '' : ` (also from /units/${first.source}/name)`;
      err(`/units/${s.source}/name`, `duplicate unit "${s.name}"${also}`);
    } else byName.set(s.name, s);
  }
  const single = (s: UnitSpec) => !s.global && s.replicas === 1;
  // Whether a unit lies on a machineOf cycle, found in one pass over each chain and
  // remembered for every unit on it: a long chain costs O(length), not O(length²).
  const cycles = new Map<UnitSpec, { names: string[]; at: number } | null>();
  const cycleOf = (s: UnitSpec): { names: string[]; at: number } | undefined => {
    const path: UnitSpec[] = [];
    const onPath = new Map<UnitSpec, number>();
    let cur: UnitSpec | undefined = s;
    while (cur && !cycles.has(cur) && !onPath.has(cur)) {
      onPath.set(cur, path.length);
      path.push(cur);
      cur = cur.machineOf === undefined ? undefined : byName.get(cur.machineOf);
    }
    const start = cur === undefined ? undefined : onPath.get(cur);
    for (const x of path) cycles.set(x, null);
    if (start !== undefined) {
      const names = path.slice(start).map((x) => x.name);
      for (let i = start; i < path.length; i++) cycles.set(path[i]!, { names, at: i - start });
    }
    return cycles.get(s) ?? undefined;
  };
  const reported = new Set<number>();
  for (const s of specs) {
    if (s.machineOf === undefined) continue;
    const p = `/units/${s.source}/constraints/machineOf`;
    // One report per document unit: a template's instances share the mistake.
    const once = (message: string) => {
      if (reported.has(s.source)) return;
      reported.add(s.source);
      err(p, message);
    };
    const target = byName.get(s.machineOf);
    if (!target) once(`unknown unit "${s.machineOf}"${s.machineOf.includes('%') ? '' : ` (for unit "${s.name}")`}`);
    else if (target === s) once(`unit "${s.name}" cannot be machineOf itself`);
    else if (!single(s) || !single(target)) once(`machineOf needs single-instance units (no replicas, not global): "${s.name}" → "${target.name}"`);
    else {
      const cycle = cycleOf(s);
      if (cycle) once(`machineOf cycle: ${cycleText(cycle.names, cycle.at)}`);
    }
  }
  return specs;
}

/** Per document: every tenant's chains and policies ask, the units expand once. */
const pendingCache = new WeakMap<TopologyDoc, Map<string, Set<string>>>();

/**
 * Per tenant, the endpoint names its units' instances take once placed (the
 * scheduler's endpointName of each instance id: `web@1` → `web-1`, replicas
 * `db.2` → `db-2`, a global unit `m:host1` → `m-host1` for the document's hosts),
 * minus names the tenant's own endpoints already have. Chains and policies may
 * name these before the scheduler has placed them: such a reference selects
 * nothing until the instance exists, instead of being an unknown endpoint.
 */
export function pendingUnitEndpoints(doc: TopologyDoc): Map<string, Set<string>> {
  const cached = pendingCache.get(doc);
  if (cached) return cached;
  const out = new Map<string, Set<string>>();
  pendingCache.set(doc, out);
  if (!doc.units.length) return out;
  const name = (id: string) => id.replace(/[@.:]/g, '-');
  for (const s of expandUnits(doc.units)) {
    let set = out.get(s.tenant);
    if (!set) out.set(s.tenant, (set = new Set()));
    if (s.global) for (const h of doc.hosts) set.add(name(`${s.name}:${h.name}`));
    else if (s.replicas === 1) set.add(name(s.name));
    else for (let i = 1; i <= s.replicas; i++) set.add(name(`${s.name}.${i}`));
  }
  for (const t of doc.tenants) {
    const set = out.get(t.name);
    if (set) for (const e of t.endpoints) set.delete(e.name);
  }
  return out;
}
