/**
 * Connectivity matrix for lab containers bound to topology endpoints: the
 * verdict the policy predicts (computed offline by the tracer over the compiled
 * flows: request delivered to the peer AND its reply delivered back) next to what
 * real packets do (ping, a TCP exchange). Used by the demo; pure parts tested.
 */
import type { Model } from '../model/index.js';
import { compile } from '../pipeline/index.js';
import { findEndpoint, traceBetween, Tracer, type PacketSpec, type TraceResult } from '../trace/index.js';
import { ping, tcpExchange } from './probe.js';
import type { LabState } from './state.js';

export type Probe = { kind: 'icmp' } | { kind: 'tcp'; port: number };

export const probeName = (p: Probe): string => (p.kind === 'icmp' ? 'ping' : `tcp/${p.port}`);

export interface Cell {
  from: string;
  to: string;
  probe: Probe;
  expected: boolean;
  /** Undefined until probed, or when not observable (see `note`). */
  observed?: boolean;
  note?: string;
}

const reached = (r: TraceResult, id: string) => r.outcomes.some((o) => o.kind === 'delivered' && o.endpoint === id);

/**
 * What the compiled policy predicts for `from` -> `to` with `probe`: the first
 * packet is delivered to `to`, and `to`'s reply is delivered back to `from`
 * (traced with the same conntrack state, so allow-related replies pass).
 */
export function expectedVerdict(model: Model, from: string, to: string, probe: Probe, result = compile(model)): boolean {
  const tracer = new Tracer(result);
  const fwd: PacketSpec = probe.kind === 'icmp' ? { protocol: 'icmp' } : { protocol: 'tcp', sport: 40000, dport: probe.port };
  if (!reached(traceBetween(result, from, to, fwd, tracer), to)) return false;
  const back: PacketSpec = probe.kind === 'icmp' ? { protocol: 'icmp', set: { icmp_type: 0n } } : { protocol: 'tcp', sport: probe.port, dport: 40000 };
  return reached(traceBetween(result, to, from, back, tracer), from);
}

/** Every ordered pair of distinct endpoints × probe, with its expected verdict. */
export function expectedMatrix(model: Model, probes: readonly Probe[]): Cell[] {
  const result = compile(model);
  const ids = model.tenants.flatMap((t) => t.endpoints.map((e) => e.id)).sort();
  const cells: Cell[] = [];
  for (const probe of probes) {
    for (const from of ids) {
      for (const to of ids) {
        if (from === to) continue;
        const cell: Cell = { from, to, probe, expected: expectedVerdict(model, from, to, probe, result) };
        // A ping to an address that also exists in the sender's own tenant is answered by
        // that endpoint, not `to`: the observation would not say anything about `to`.
        const src = findEndpoint(model, from);
        const dst = findEndpoint(model, to);
        // Likewise a TCP probe: it would reach the twin in the sender's own tenant.
        if (src.tenant !== dst.tenant) {
          const clash = model.tenants.find((t) => t.name === src.tenant)?.endpoints.find((e) => e.ip === dst.ip);
          if (clash) cell.note = `${to}'s address is also ${clash.id}'s`;
        }
        cells.push(cell);
      }
    }
  }
  return cells;
}

/**
 * Probes every cell with real packets. A cell expected to pass gets a few tries
 * (the first packets may race the last flows of a fresh apply); one expected to be
 * blocked is probed once. `container(id)` names the lab container of an endpoint,
 * `ip(id)` its address.
 */
export async function observe(
  state: LabState,
  cells: Cell[],
  container: (id: string) => string,
  ip: (id: string) => string,
  opts: { concurrency?: number; tries?: number } = {},
): Promise<void> {
  const tries = opts.tries ?? 3;
  /** undefined: inconclusive (the TCP server never started: a failure would prove nothing). */
  const probeOnce = async (c: Cell): Promise<boolean | undefined> => {
    if (c.probe.kind === 'icmp') return (await ping(state, container(c.from), ip(c.to), { count: 1, timeoutS: 1 })).ok;
    for (let i = 0; i < 3; i++) {
      const r = await tcpExchange(state, container(c.from), container(c.to), ip(c.to), c.probe.port, 2000);
      if (!/did not start/.test(r.detail)) return r.ok;
    }
    return undefined;
  };
  // TCP: one server per target container and port at a time, so group by target.
  const groups = new Map<string, Cell[]>();
  for (const c of cells) {
    if (c.note) continue;
    const key = c.probe.kind === 'tcp' ? `${c.to}:${c.probe.port}` : `${c.from}>${c.to}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  const queue = [...groups.values()];
  const worker = async () => {
    for (let g = queue.shift(); g; g = queue.shift()) {
      for (const c of g) {
        let ok: boolean | undefined = false;
        for (let i = 0; i < (c.expected ? tries : 1) && ok === false; i++) ok = await probeOnce(c);
        if (ok === undefined) c.note = 'TCP server did not start';
        else c.observed = ok;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 6) }, worker));
}

/** Cells where the observation contradicts the policy. */
export const mismatches = (cells: readonly Cell[]): Cell[] => cells.filter((c) => c.observed !== undefined && c.observed !== c.expected);

/**
 * One table per probe: rows = from, columns = to. `ok` reached as expected, `--`
 * blocked as expected, `LEAK` reached although the policy forbids it, `FAIL`
 * blocked although the policy allows it, `n/a` not observable, `?` not probed.
 */
export function formatMatrix(cells: readonly Cell[]): string {
  const ids = [...new Set(cells.flatMap((c) => [c.from, c.to]))].sort();
  const probes = [...new Map(cells.map((c) => [probeName(c.probe), c.probe])).values()];
  const w = Math.max(6, ...ids.map((i) => i.length)) + 2;
  const lines: string[] = [];
  for (const p of probes) {
    const name = probeName(p);
    lines.push(`${name}, from row to column:`);
    lines.push(''.padEnd(w) + ids.map((i) => i.padEnd(w)).join('').trimEnd());
    for (const from of ids) {
      const row = ids.map((to) => {
        if (to === from) return ''.padEnd(w);
        const c = cells.find((x) => x.from === from && x.to === to && probeName(x.probe) === name);
        let s = '?';
        if (c?.note) s = 'n/a';
        else if (c && c.observed !== undefined) s = c.observed === c.expected ? (c.expected ? 'ok' : '--') : c.observed ? 'LEAK' : 'FAIL';
        return s.padEnd(w);
      });
      lines.push(from.padEnd(w) + row.join('').trimEnd());
    }
    lines.push('');
  }
  lines.push('ok = reached, as the policy allows; -- = blocked, as it should be; LEAK = reached although denied; FAIL = blocked although allowed');
  return lines.join('\n') + '\n';
}
