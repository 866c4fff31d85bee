// Argument parsing shared by every subcommand: node:util parseArgs in strict mode, with errors
// turned into PairpickError('E_OPTION') that name the flag.
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { PairpickError } from '../errors.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

type StrictConfig<T extends OptionSpec> = { args: string[]; options: T; strict: true; allowPositionals: false };
export type ParsedCommand<T extends OptionSpec> = ReturnType<typeof parseArgs<StrictConfig<T>>>;

export function parseCommand<T extends OptionSpec>(argv: string[], options: T, command: string): ParsedCommand<T> {
  try {
    return parseArgs<StrictConfig<T>>({ args: argv, options, strict: true, allowPositionals: false });
  } catch (e) {
    throw new PairpickError('E_OPTION', `pairpick ${command}: ${(e as Error).message.replace(/\. To specify.*$/s, '')}`);
  }
}

/** Parses a numeric flag, naming it when the value is not a finite number (or not an integer). */
export function numberFlag(value: string | undefined, flag: string, opts: { integer?: boolean; min?: number } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (opts.integer && !Number.isInteger(n))) {
    throw new PairpickError('E_OPTION', `--${flag} must be ${opts.integer ? 'an integer' : 'a number'}, got '${value}'`);
  }
  if (opts.min !== undefined && n < opts.min) throw new PairpickError('E_OPTION', `--${flag} must be ≥ ${opts.min}, got ${n}`);
  return n;
}

/** Parses repeated `--modality NAME=PATH` flags into an ordered record. */
export function modalityFlags(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const eq = v.indexOf('=');
    if (eq <= 0 || eq === v.length - 1) throw new PairpickError('E_OPTION', `--modality expects NAME=PATH, got '${v}'`);
    const name = v.slice(0, eq);
    if (name in out) throw new PairpickError('E_OPTION', `--modality ${name} given twice`);
    out[name] = v.slice(eq + 1);
  }
  return out;
}
