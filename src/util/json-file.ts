/**
 * Reading a JSON file a command was pointed at (a topology, a `--current` placement):
 * one reader and one error, so every command words and codes these failures alike.
 */
import { readFileSync } from 'node:fs';
import { TenetError } from './errors.js';

/** The file is unreadable, not JSON, or not the shape the command reads (before any validation of its meaning). */
export class JsonFileError extends TenetError {
  constructor(file: string, message: string, cause?: unknown) {
    super('EFILE', message, { file }, { cause });
  }
}

/** The parsed content of `file` (`-` reads standard input). */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new JsonFileError(file, `cannot read ${file}: ${(e as Error).message}`, e);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new JsonFileError(file, `${file} is not JSON: ${(e as Error).message}`, e);
  }
}
