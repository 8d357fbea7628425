/** `tenet validate|compile|trace FILE`: the topology model, compiler and tracer, offline. */
import { Command, Option } from 'commander';
import { expandedCount, validate, type Model } from '../model/index.js';
import { formatFlow, formatGroup } from '../openflow/index.js';
import { compile, defaultPlacement } from '../pipeline/index.js';
import { formatTrace, traceBetween, verdicts, type PacketSpec } from '../trace/index.js';
import { TenetError, UsageError } from '../util/errors.js';
import { formatIssues } from '../util/issues.js';
import { readJsonFile } from '../util/json-file.js';

/** The file is JSON but not a valid topology (its issues in the message). */
export class InvalidTopologyFile extends TenetError {
  constructor(file: string, message: string) {
    super('ETOPOLOGY', message, { file });
  }
}

function modelOf(file: string): Model {
  const r = validate(readJsonFile(file));
  if (!r.ok) throw new InvalidTopologyFile(file, `${file} is invalid:\n${formatIssues(r.errors)}`);
  return r.model;
}

/** Output of `tenet validate` (exit code 1 when invalid). */
export function validateText(file: string): { ok: boolean; text: string } {
  const r = validate(readJsonFile(file));
  if (!r.ok) return { ok: false, text: `${file}: ${r.errors.length} error(s)\n${formatIssues(r.errors)}\n` };
  const m = r.model;
  const eps = m.tenants.reduce((n, t) => n + t.endpoints.length, 0);
  const nets = m.tenants.reduce((n, t) => n + t.networks.length, 0);
  const waiting = m.tenants.flatMap((t) => (t.waitingChains ?? []).map((c) => `  chain ${t.name}/${c.name} (${c.path}) waits for unit instances the scheduler places: ${c.waitingFor.join(', ')}\n`));
  const units = r.doc.units.length ? `, ${expandedCount(r.doc.units)} units` : '';
  return { ok: true, text: `${file}: valid (${m.tenants.length} tenants, ${nets} networks, ${eps} endpoints${units}, ${m.hosts.length} hosts)\n${waiting.join('')}` };
}

export function compileText(file: string, opts: { host?: string; format: 'ofctl' | 'json' }): string {
  const m = modelOf(file);
  const r = compile(m, defaultPlacement(m));
  const hosts = opts.host ? [opts.host] : m.hosts.map((h) => h.name);
  for (const h of hosts) if (!m.hosts.some((x) => x.name === h)) throw new UsageError(`unknown host "${h}"`, { host: h });
  if (opts.format === 'json') {
    const out = hosts.map((h) => ({ host: h, flows: r.host(h).flows.map(formatFlow), groups: r.host(h).groups.map(formatGroup) }));
    return JSON.stringify({ placement: r.ctx.placement, allocation: m.alloc, hosts: out }, null, 2) + '\n';
  }
  const lines: string[] = [];
  for (const h of hosts) {
    if (!opts.host) lines.push(`# host ${h}`);
    // Groups first: `ovs-ofctl add-groups` must run before flows that use them.
    for (const g of r.host(h).groups) lines.push(`# group ${formatGroup(g)}`);
    for (const f of r.host(h).flows) lines.push(formatFlow(f));
  }
  return lines.join('\n') + '\n';
}

export function traceText(file: string, from: string, to: string, proto?: string, port?: string, more: { sport?: string; unhealthy?: string } = {}): string {
  const m = modelOf(file);
  const spec: PacketSpec = {};
  if (proto !== undefined) {
    if (!['tcp', 'udp', 'icmp', 'arp'].includes(proto)) throw new UsageError(`protocol must be tcp, udp, icmp or arp, not "${proto}"`);
    spec.protocol = proto as PacketSpec['protocol'];
  }
  if (port !== undefined) {
    if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new UsageError(`port must be 1-65535, not "${port}"`);
    if (spec.protocol !== 'tcp' && spec.protocol !== 'udp') throw new UsageError('a port needs tcp or udp');
    spec.dport = Number(port);
  }
  if (more.sport !== undefined) {
    if (!/^\d+$/.test(more.sport) || Number(more.sport) < 1 || Number(more.sport) > 65535) throw new UsageError(`--sport must be 1-65535, not "${more.sport}"`);
    if (spec.protocol !== 'tcp' && spec.protocol !== 'udp') throw new UsageError('--sport needs tcp or udp');
    spec.sport = Number(more.sport);
  }
  // service-chain instances taken as failed (what the controller's health checks would report)
  const unhealthy = new Set((more.unhealthy ?? '').split(',').filter(Boolean));
  const r = traceBetween(compile(m, defaultPlacement(m), { unhealthy }), from, to, spec);
  void verdicts;
  return formatTrace(r) + '\n';
}

export function register(program: Command): void {
  program
    .command('validate')
    .description('check a topology file: structure and meaning, every error with its JSON path')
    .argument('<file>', 'topology JSON')
    .action((file: string) => {
      const r = validateText(file);
      (r.ok ? process.stdout : process.stderr).write(r.text);
      if (!r.ok) process.exitCode = 1;
    });
  program
    .command('compile')
    .description('compile a topology into each host\'s OpenFlow flows (ovs-ofctl syntax), offline')
    .argument('<file>', 'topology JSON')
    .option('--host <name>', 'only this host')
    .addOption(new Option('--format <format>', 'output format').choices(['ofctl', 'json']).default('ofctl'))
    .action((file: string, opts: { host?: string; format: 'ofctl' | 'json' }) => {
      process.stdout.write(compileText(file, opts));
    });
  program
    .command('trace')
    .description('trace a packet between two endpoints through the compiled flows of every host on its way')
    .argument('<file>', 'topology JSON')
    .argument('[protocol]', 'tcp, udp, icmp (default) or arp')
    .argument('[port]', 'destination port (tcp/udp)')
    .requiredOption('--from <tenant/endpoint>', 'source endpoint')
    .requiredOption('--to <tenant/endpoint>', 'destination endpoint')
    .option('--sport <port>', 'source port (tcp/udp; default 40000): e.g. to trace a reply')
    .option('--unhealthy <ids>', 'service-chain instances to treat as failed, comma-separated tenant/endpoint ids')
    .addHelpText('after', '\nExamples:\n  tenet trace topologies/two-tenants.json --from acme/web-1 --to acme/db-1 tcp 5432\n  tenet trace topologies/chain-three-hosts.json --from acme/server --to acme/client tcp 40000 --sport 80 --unhealthy acme/fw-1')
    .action((file: string, proto: string | undefined, port: string | undefined, opts: { from: string; to: string; sport?: string; unhealthy?: string }) => {
      process.stdout.write(traceText(file, opts.from, opts.to, proto, port, opts));
    });
}
