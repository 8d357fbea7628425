/**
 * The `tenet` executable: one commander program, one module per command group.
 * Each group module exports `register(program)`; add new groups to `groups`.
 */
import { Command, CommanderError } from 'commander';
import { TenetError } from '../util/errors.js';

interface CommandGroup {
  register(program: Command): void;
}

/**
 * Top-level commands and the module that registers them. Modules load lazily:
 * `tenet lab ...` never pays for the registry's dependencies (etcd3, gRPC, ...).
 * To add a group: one entry here, naming every top-level command it registers.
 */
const groups: Array<{ commands: string[]; load: () => Promise<CommandGroup> }> = [
  { commands: ['lab'], load: () => import('./lab.js') },
  { commands: ['services', 'registry'], load: () => import('./services.js') },
  { commands: ['validate', 'compile', 'trace'], load: () => import('./topology.js') },
  { commands: ['units', 'agents'], load: () => import('./units.js') },
  { commands: ['apply', 'plan', 'get', 'delete', 'status'], load: () => import('./client.js') },
  { commands: ['controller'], load: () => import('./controller.js') },
  { commands: ['agent'], load: () => import('./agent.js') },
  { commands: ['host'], load: () => import('./host.js') },
];

/** The program with the groups `argv` needs (all of them for help or an unknown command). */
export async function buildProgram(argv: readonly string[] = process.argv): Promise<Command> {
  const program = new Command('tenet')
    .description('Virtual tenant networks and service chains on Open vSwitch')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (str, write) => write(str) })
    .enablePositionalOptions()
    .exitOverride();
  const first = argv.slice(2).find((a) => !a.startsWith('-'));
  const wanted = groups.filter((g) => first !== undefined && g.commands.includes(first));
  for (const g of wanted.length ? wanted : groups) (await g.load()).register(program);
  return program;
}

/** Runs the CLI; maps every error to a one-line message and a non-zero exit status. */
export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = exitCodeFor(err);
    if (err instanceof CommanderError) return; // commander already printed it
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`tenet: ${msg}\n`);
    if (process.env.TENET_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  }
}

function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode;
  if (err instanceof TenetError && err.code === 'EUSAGE') return 2;
  return 1;
}
