/**
 * The `tenet` executable: one commander program, one module per command group.
 * Each group module exports `register(program)`; add new groups to `groups`.
 */
import { Command, CommanderError } from 'commander';
import { TenetError } from '../util/errors.js';
import * as lab from './lab.js';
import * as services from './services.js';

interface CommandGroup {
  register(program: Command): void;
}

const groups: CommandGroup[] = [lab, services];

export function buildProgram(): Command {
  const program = new Command('tenet')
    .description('Virtual tenant networks and service chains on Open vSwitch')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (str, write) => write(str) })
    .enablePositionalOptions()
    .exitOverride();
  for (const g of groups) g.register(program);
  return program;
}

/** Runs the CLI; maps every error to a one-line message and a non-zero exit status. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
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
