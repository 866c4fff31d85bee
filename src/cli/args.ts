// The command line grammar shared by every subcommand: a table of flags per command (which also
// renders its --help, so every flag is documented with its default), a strict parser, and strict
// number grammars. Errors are PairpickError('E_OPTION') naming the flag.
import { PairpickError } from '../errors.js';

export interface FlagSpec {
  type: 'string' | 'boolean';
  /** Placeholder of the value in --help (string flags), e.g. 'B' or 'NAME=PATH'. */
  value?: string;
  /** May be given more than once (values kept in order). */
  multiple?: boolean;
  /** One-letter alias, e.g. 'h' for -h. */
  short?: string;
  /** The default --help shows; `required` marks a flag that must be given. */
  default?: string | number | boolean;
  required?: boolean;
  /** One sentence for --help. */
  help: string;
  /** The library option the flag sets: library messages naming it are reworded with the flag. */
  api?: string;
  /** Heading the flag is listed under in --help. */
  group: string;
}

export interface CommandSpec {
  name: string;
  /** One line for `pairpick --help`. */
  summary: string;
  /** The usage line(s) after `usage: `. */
  synopsis: string;
  /** What the command does, where its results go. */
  description: string;
  flags: Record<string, FlagSpec>;
  /**
   * Flag groups in --help order, each with an optional line shown under its heading (a group
   * listed here is shown even without flags). Groups not listed follow in order of first use.
   */
  groups?: readonly { name: string; doc?: string }[];
  /** Text after the flags (output formats, environment), wrapped by hand at 100 columns. */
  notes?: string;
}

/** --help (and -h), which every command has. */
export const HELP_FLAG: FlagSpec = { type: 'boolean', short: 'h', help: 'print this help and exit', group: 'Other' };
/** --quiet, which every long-running command has. */
export const QUIET_FLAG: FlagSpec = {
  type: 'boolean',
  short: 'q',
  help: 'no progress and no notes on stderr (results and errors are still printed)',
  group: 'Other',
};

type Value = string | string[] | boolean;

/** The flags given on a command line, read through typed accessors. */
export class ParsedArgs {
  constructor(
    readonly spec: CommandSpec,
    private readonly values: Map<string, Value>,
  ) {}

  private flagSpec(name: string): FlagSpec {
    const f = this.spec.flags[name];
    if (!f) throw new PairpickError('E_INTERNAL', `pairpick ${this.spec.name}: flag --${name} is read but not declared`);
    return f;
  }

  has(name: string): boolean {
    this.flagSpec(name);
    return this.values.has(name);
  }

  /** A boolean flag: true when given. */
  flag(name: string): boolean {
    this.flagSpec(name);
    return this.values.get(name) === true;
  }

  /** A string flag's value, or undefined. */
  string(name: string): string | undefined {
    this.flagSpec(name);
    return this.values.get(name) as string | undefined;
  }

  /** A string flag that must be given. */
  required(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw new PairpickError('E_OPTION', `--${name} ${this.spec.flags[name].value ?? ''} is required`.replace(/ +is/, ' is'));
    return v;
  }

  /** Every value of a repeatable flag, in order (empty when not given). */
  list(name: string): string[] {
    this.flagSpec(name);
    return (this.values.get(name) as string[] | undefined) ?? [];
  }

  /** One of a fixed set of words. */
  choice<T extends string>(name: string, choices: readonly T[]): T | undefined {
    const v = this.string(name);
    return v === undefined ? undefined : parseChoice(v, `--${name}`, choices);
  }

  int(name: string, range: { min?: number; max?: number } = {}): number | undefined {
    const v = this.string(name);
    return v === undefined ? undefined : parseInteger(v, `--${name}`, range);
  }

  float(name: string, range: { min?: number; exclusiveMin?: boolean } = {}): number | undefined {
    const v = this.string(name);
    return v === undefined ? undefined : parseDecimal(v, `--${name}`, range);
  }
}

/** Integers are written in decimal digits with an optional leading minus: no sign '+', no spaces,
 * no exponent, no fraction (even '.0'), no hex. */
const INTEGER = /^-?[0-9]+$/;
/** Numbers: decimal, optional fraction and exponent (1, -0.5, .5, 1e-3, 2.5E+2); no hex, no
 * Infinity/NaN, no spaces, no leading '+'. */
const DECIMAL = /^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/;

/** One of a fixed set of words for `what` (a flag). */
export function parseChoice<T extends string>(text: string, what: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text)) throw new PairpickError('E_OPTION', `${what} must be one of ${choices.join(', ')}; got '${text}'`);
  return text as T;
}

/** Parses a decimal integer for `what` (a flag, or `--flag NAME=`), checking its range. */
export function parseInteger(text: string, what: string, range: { min?: number; max?: number } = {}): number {
  if (!INTEGER.test(text)) throw new PairpickError('E_OPTION', `${what} must be an integer written in decimal digits (like 100 or -1), got '${text}'`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new PairpickError('E_OPTION', `${what} ${text} is too large (the largest integer is ${Number.MAX_SAFE_INTEGER})`);
  if (range.min !== undefined && n < range.min) throw new PairpickError('E_OPTION', `${what} must be ≥ ${range.min}, got ${text}`);
  if (range.max !== undefined && n > range.max) throw new PairpickError('E_OPTION', `${what} must be ≤ ${range.max}, got ${text}`);
  return n === 0 ? 0 : n; // no -0
}

/** Parses a decimal number for `what`, checking it is finite and in range. */
export function parseDecimal(text: string, what: string, range: { min?: number; exclusiveMin?: boolean } = {}): number {
  if (!DECIMAL.test(text)) throw new PairpickError('E_OPTION', `${what} must be a decimal number (like 0.5, -2 or 1e-3), got '${text}'`);
  const n = Number(text);
  if (!Number.isFinite(n)) throw new PairpickError('E_OPTION', `${what} ${text} is out of the range of numbers`);
  if (range.min !== undefined && (range.exclusiveMin ? !(n > range.min) : n < range.min)) {
    throw new PairpickError('E_OPTION', `${what} must be ${range.exclusiveMin ? '>' : '≥'} ${range.min}, got ${text}`);
  }
  return n === 0 ? 0 : n;
}

/** The closest declared flag to a mistyped one (edit distance ≤ 2, or a prefix), if any. */
function closest(name: string, names: string[]): string | undefined {
  const distance = (a: string, b: string) => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0];
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const cur = row[j];
        row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = cur;
      }
    }
    return row[b.length];
  };
  let best: string | undefined;
  let bestD = 3;
  for (const n of names) {
    const d = n.startsWith(name) && name.length >= 3 ? 1 : distance(name, n);
    if (d < bestD) {
      best = n;
      bestD = d;
    }
  }
  return best;
}

/**
 * Parses `argv` against a command's flags. `--name value` and `--name=value`; a value may start
 * with '-' (negative numbers: `--seed -1`) but not with '--' (that is the next flag, so a
 * forgotten value is reported rather than swallowing the flag). No positional arguments; when a
 * flag that is not repeatable is given again, the last value counts.
 */
export function parseCommand(argv: string[], spec: CommandSpec): ParsedArgs {
  const values = new Map<string, Value>();
  const byShort = new Map(Object.entries(spec.flags).flatMap(([n, f]) => (f.short ? [[f.short, n] as const] : [])));
  const names = Object.keys(spec.flags);
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    let name: string;
    let inline: string | undefined;
    if (token.startsWith('--') && token.length > 2) {
      const eq = token.indexOf('=');
      name = eq < 0 ? token.slice(2) : token.slice(2, eq);
      inline = eq < 0 ? undefined : token.slice(eq + 1);
    } else if (/^-[a-zA-Z]$/.test(token) && byShort.has(token[1])) {
      name = byShort.get(token[1])!;
    } else if (token.startsWith('-') && token.length > 1 && token !== '--') {
      throw new PairpickError('E_OPTION', `unknown option ${token}`);
    } else {
      throw new PairpickError('E_OPTION', `unexpected argument '${token}' (every input is given with a flag, e.g. --modality NAME=PATH)`);
    }
    const f = spec.flags[name];
    if (!f) {
      const hint = closest(name, names);
      throw new PairpickError('E_OPTION', `unknown option --${name}${hint ? ` (did you mean --${hint}?)` : ''}`);
    }
    let value: Value;
    if (f.type === 'boolean') {
      if (inline !== undefined) throw new PairpickError('E_OPTION', `--${name} takes no value (got '--${name}=${inline}')`);
      value = true;
    } else if (inline !== undefined) {
      value = inline;
    } else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new PairpickError('E_OPTION', `--${name} needs a value (${f.value ?? 'VALUE'})${next === undefined ? '' : `, got the option ${next}`}`);
      }
      value = next;
      i++;
    }
    if (f.multiple) {
      const list = (values.get(name) as string[] | undefined) ?? [];
      list.push(value as string);
      values.set(name, list);
    } else {
      values.set(name, value); // given again: the last one counts, as in most tools
    }
  }
  return new ParsedArgs(spec, values);
}

/** Word-wraps `text` to `width` columns, continuation lines indented by `indent` spaces. */
function wrap(text: string, width: number, indent: number): string {
  const words = text.split(/ +/);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > width - indent) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** The --help text of a command: usage, description, every flag under its group with its default. */
export function helpText(spec: CommandSpec): string {
  const WIDTH = 100;
  const entries = Object.entries(spec.flags).map(([name, f]) => {
    const left = `${f.short ? `-${f.short}, ` : '    '}--${name}${f.value ? ` ${f.value}` : ''}`;
    let right = f.help;
    if (f.required) right += ' (required)';
    else if (f.default !== undefined) right += ` (default: ${f.default})`;
    return { group: f.group, left, right };
  });
  const col = Math.min(34, Math.max(...entries.map((e) => e.left.length)) + 2);
  const docs = new Map((spec.groups ?? []).map((g) => [g.name, g.doc]));
  const groups = [...new Set([...docs.keys(), ...entries.map((e) => e.group)])];
  const out = [`usage: ${spec.synopsis}`, '', wrap(spec.description, WIDTH, 0)];
  for (const g of groups) {
    out.push('', `${g}:`);
    const doc = docs.get(g);
    if (doc) out.push(`  ${wrap(doc, WIDTH, 2)}`);
    for (const e of entries.filter((x) => x.group === g)) {
      const pad = e.left.length + 2 > col ? `\n${' '.repeat(col + 2)}` : ' '.repeat(col - e.left.length);
      out.push(`  ${e.left}${pad}${wrap(e.right, WIDTH, col + 2)}`);
    }
  }
  if (spec.notes) out.push('', spec.notes.trimEnd()); // written pre-wrapped
  return `${out.join('\n')}\n`;
}
