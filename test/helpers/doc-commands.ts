/**
 * Commands a user would type, found in Markdown, and checked against the real CLI
 * (the commander program of src/cli/main.ts) and package.json. Used by
 * test/unit/docs/doc-check.test.ts.
 *
 * Found: every line of a shell (`sh`, `bash`, `shell`, `console`) or unlabelled
 * fenced block, and every inline code span that starts like a command
 * (`tenet …`, `npx tenet …`, `sudo tenet …`, `node bin/tenet.js …`, `npm run …`,
 * `npm test`). In each, every `tenet …` / `npm …` invocation (also one inside a
 * quoted `vagrant ssh -c '…'`) is checked; other programs are not.
 * Usage notation is understood: `[--opt V]`, `a|b` alternatives, placeholders
 * (`FILE`, `<name>`, `T/EP`, `CMD…`).
 */
import type { Command, Option } from 'commander';

export interface DocCommand {
  file: string;
  line: number;
  /** The invocation as written, from `tenet`/`npm` to the end of its segment. */
  text: string;
  /** From an inline code span (prose may name a command group: `tenet lab`) rather than a shell block. */
  inline?: boolean;
}

export interface StaleCommand extends DocCommand {
  reason: string;
}

const SHELL_LANGS = new Set(['', 'sh', 'bash', 'shell', 'console', 'sh-session']);
const INLINE_START = /^(?:[A-Z_]+=\S*\s+)*(?:sudo\s+)?(?:npx\s+tenet|tenet|node bin\/tenet\.js|npm run|npm test)(?:\s|$)/;
/** One invocation inside a command line; ends at a shell separator, a quote, or a closing parenthesis. */
const INVOCATION = /(?:^|[\s'"(;&|`$])((?:npx\s+)?tenet|node bin\/tenet\.js|npm(?=\s+(?:run|test)\b))\s+([^'"`;&|)#\n]*)/g;

/** Every command-like text of a Markdown document, with its line number. */
export function extractCommands(file: string, markdown: string): DocCommand[] {
  const out: DocCommand[] = [];
  const lines = markdown.split('\n');
  let fence: { lang: string; indent: string } | undefined;
  let pending: { line: number; text: string } | undefined;
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const open = /^(\s*)(```+|~~~+)\s*([\w-]*)/.exec(raw);
    if (open) {
      if (!fence) fence = { lang: open[3]!.toLowerCase(), indent: open[1]! };
      else fence = undefined;
      return;
    }
    if (fence) {
      if (!SHELL_LANGS.has(fence.lang)) return;
      let text = raw.trim().replace(/^\$\s+/, '');
      if (pending) text = `${pending.text} ${text}`;
      if (text.endsWith('\\')) {
        pending = { line: pending?.line ?? lineNo, text: text.slice(0, -1).trim() };
        return;
      }
      const start = pending?.line ?? lineNo;
      pending = undefined;
      out.push(...invocations(file, start, stripComment(text)));
      return;
    }
    // Inline code spans (tables escape `|` as `\|`).
    const prose = raw.replace(/\\\|/g, '|');
    for (const m of prose.matchAll(/`([^`]+)`/g)) {
      const code = m[1]!.trim();
      if (INLINE_START.test(code)) out.push(...invocations(file, lineNo, code).map((c) => ({ ...c, inline: true })));
    }
  });
  return out;
}

/** A trailing `# comment` (outside quotes) removed. */
function stripComment(text: string): string {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) return text.slice(0, i).trimEnd();
  }
  return text;
}

function invocations(file: string, line: number, text: string): DocCommand[] {
  const out: DocCommand[] = [];
  for (const m of text.matchAll(INVOCATION)) out.push({ file, line, text: `${m[1]} ${m[2]!.trim()}`.trim() });
  return out;
}

/** Shell-ish tokens: whitespace-separated, usage brackets dropped, `$(…)`/`"…"` values kept whole. */
function tokens(text: string): string[] {
  return (text.match(/"[^"]*"|'[^']*'|\$\([^)]*\)|\S+/g) ?? []).map((t) => t.replace(/^\[+|\]+$/g, '')).filter(Boolean);
}

/** A token that stands for a value: FILE, HOST|CONTAINER, <name>, T/EP, CMD…, N, 10.0.0.1/24, $VAR. */
function isPlaceholder(tok: string): boolean {
  return /^<.*>$/.test(tok) || /^[A-Z][A-Z0-9_/|.…-]*…?$/.test(tok) || /[…]|\.\.\./.test(tok) || /^[$"'\d/.]/.test(tok) || tok.includes('/') || tok.includes('=');
}

function findOption(cmd: Command, flag: string): Option | undefined {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const o = c.options.find((opt) => opt.long === flag || opt.short === flag);
    if (o) return o;
  }
  return undefined;
}

const subcommand = (cmd: Command, name: string): Command | undefined => cmd.commands.find((c) => c.name() === name || c.aliases().includes(name));

export interface CheckContext {
  program: Command;
  /** package.json scripts. */
  scripts: Record<string, string>;
  /** Whether `npm run bench -- NAME` exists (scripts/bench/NAME.ts). */
  benchExists: (name: string) => boolean;
  /** Source text of a script, to check flags passed after `--` (`npm run demo -- --check`). */
  scriptSource: (script: string, arg?: string) => string | undefined;
}

/** Why a documented invocation would not work, or undefined when it would. */
export function checkCommand(cmd: DocCommand, ctx: CheckContext): string | undefined {
  const toks = tokens(cmd.text);
  if (toks[0] === 'npm') return checkNpm(toks.slice(1), ctx);
  const args = toks[0] === 'npx' || toks[0] === 'node' ? toks.slice(2) : toks.slice(1);
  return checkTenet(args, ctx.program, cmd.inline === true);
}

function checkNpm(args: string[], ctx: CheckContext): string | undefined {
  const [verb, script, ...rest] = args;
  const name = verb === 'test' ? 'test' : script;
  if (verb !== 'test' && verb !== 'run') return undefined;
  if (!name || isPlaceholder(name)) return undefined;
  if (!(name in ctx.scripts)) return `npm script '${name}' is not in package.json`;
  const extra = (verb === 'test' ? [script, ...rest] : rest).filter((t): t is string => t !== undefined);
  if (extra[0] !== '--') return undefined;
  const passed = extra.slice(1);
  let arg: string | undefined;
  if (name === 'bench') {
    arg = passed[0];
    if (!arg || isPlaceholder(arg)) return undefined;
    if (!ctx.benchExists(arg)) return `no benchmark '${arg}' (scripts/bench/${arg}.ts)`;
  }
  const source = ctx.scriptSource(name, arg);
  if (source === undefined) return undefined;
  for (const t of passed) {
    const flag = t.split('=')[0]!;
    if (/^--?[a-z]/.test(flag) && !source.includes(flag)) return `'${flag}' is not an option of npm run ${name}${arg ? ` -- ${arg}` : ''}`;
  }
  return undefined;
}

function checkTenet(args: string[], program: Command, mention = false): string | undefined {
  let cmd = program;
  let path = 'tenet';
  let leaf = false; // past the subcommand path: the rest are arguments and options
  for (let i = 0; i < args.length; i++) {
    const tok = args[i]!;
    if (tok.startsWith('-') && tok !== '-' && tok !== '--') {
      const flag = tok.split('=')[0]!;
      if (flag === '--help' || flag === '-h' || (cmd === program && (flag === '--version' || flag === '-V'))) continue;
      const opt = findOption(cmd, flag);
      if (!opt) return `${path}: no option ${flag}`;
      if ((opt.required || opt.optional) && !tok.includes('=')) {
        const value = args[i + 1];
        if (value !== undefined && opt.argChoices && !isPlaceholder(value)) {
          const bad = value.split('|').filter((v) => !opt.argChoices!.includes(v));
          if (bad.length) return `${path} ${flag}: '${bad.join('|')}' is not one of ${opt.argChoices.join(', ')}`;
        }
        i++;
      }
      continue;
    }
    if (leaf || isPlaceholder(tok)) {
      // passThroughOptions (`lab exec HOST CMD…`): after the first argument, the rest is another program's.
      if (passesThrough(cmd)) return undefined;
      leaf = true;
      continue;
    }
    const alternatives = tok.split('|');
    const subs = alternatives.map((a) => subcommand(cmd, a));
    if (subs.every((s) => s !== undefined)) {
      if (alternatives.length > 1) {
        // `units validate|place -f FILE`: every alternative with the rest of the line.
        for (const alt of alternatives) {
          const why = checkTenet([...pathTokens(cmd, program), alt, ...args.slice(i + 1)], program, mention);
          if (why) return why;
        }
        return undefined;
      }
      cmd = subs[0]!;
      path += ` ${tok}`;
      continue;
    }
    if (cmd.commands.length > 0 && !hasOwnAction(cmd)) return `${path}: no subcommand '${tok}' (has ${cmd.commands.map((c) => c.name()).join(', ')})`;
    if (passesThrough(cmd)) return undefined;
    leaf = true; // an argument of a leaf command
  }
  // Prose naming a group (`tenet lab`) is a mention; a shell block's bare `tenet lab` would only print usage.
  if (!mention && cmd.commands.length > 0 && !hasOwnAction(cmd) && cmd !== program && !args.some((a) => a === '--help' || a === '-h')) {
    return `${path}: needs a subcommand (${cmd.commands.map((c) => c.name()).join(', ')})`;
  }
  return undefined;
}

function pathTokens(cmd: Command, program: Command): string[] {
  const out: string[] = [];
  for (let c: Command | null = cmd; c && c !== program; c = c.parent) out.unshift(c.name());
  return out;
}

/** Whether options after the command's first argument are passed on (commander keeps the flag private). */
function passesThrough(cmd: Command): boolean {
  // Why the cast: commander has passThroughOptions() to set it but no getter.
  return (cmd as unknown as { _passThroughOptions?: boolean })._passThroughOptions === true;
}

/** Whether a command with subcommands also runs by itself (commander keeps its action handler private). */
function hasOwnAction(cmd: Command): boolean {
  // Why the cast: commander exposes no accessor for "has an action"; _actionHandler is its field.
  return typeof (cmd as unknown as { _actionHandler?: unknown })._actionHandler === 'function';
}
