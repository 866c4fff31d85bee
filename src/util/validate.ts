// The checks the public API runs on its arguments and options, in one place. Each refusal is a
// PairpickError whose message names the function and the argument or option at fault, says what
// was expected and shows what came instead — for any value, BigInts and functions included.
//
// A check is a `Rule`: what it accepts and how to say so. Options are read through a table of
// option name → rule (`readOptions`), so every function (and every strategy) declares its options
// as data, and unknown keys, wrong types and out-of-range values are refused the same way.
import { checkOptions, PairpickError, type ErrorCode } from '../errors.js';

/**
 * Largest array pairpick allocates for one model tensor, working buffer or result: 2^28 values
 * (1 GiB as float32). Sizes beyond it are refused before anything is allocated.
 */
export const MAX_TENSOR_VALUES = 2 ** 28;
/** Largest count (rows, dimensions, k, …): indices are Int32 in the native core and in results. */
export const MAX_COUNT = 2 ** 31 - 1;
/** Largest typed array V8 can allocate (values); data-sized outputs beyond it cannot exist in memory. */
export const MAX_ARRAY_VALUES = 2 ** 32;
/**
 * Largest strategy weight (γ, λ, w_ρ, w_δ): the native kernels score in float32, and weights
 * near its range (3.4e38) would overflow into ties of +Infinity. Only their ratios matter.
 */
export const MAX_WEIGHT = 1e6;

/** A check of one value: what it accepts, and how messages describe that. */
export interface Rule<T> {
  /** What an accepted value is, for messages: "an integer ≥ 1". */
  readonly expected: string;
  /** The code of a refusal (default `E_OPTION`). */
  readonly code?: ErrorCode;
  accepts(value: unknown): value is T;
  /** What the rule accepts, as data (rules built by integer, number, oneOf and either): lets the
   * command line read such a value from text and check it with the same bounds. */
  readonly shape?: RuleShape;
}

/** The data behind a rule: an integer or a number within bounds, one of fixed values, or either of two. */
export type RuleShape =
  | { readonly type: 'integer'; readonly min?: number; readonly max?: number }
  | { readonly type: 'number'; readonly min?: number; readonly max?: number; readonly above?: number; readonly below?: number }
  | { readonly type: 'oneOf'; readonly choices: readonly unknown[] }
  | { readonly type: 'either'; readonly of: readonly RuleShape[] };

/** How a value looks in a message: never throws, whatever the value (BigInt, symbol, cycle, …). */
export function show(value: unknown, depth = 0): string {
  switch (typeof value) {
    case 'string':
      return `'${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
    case 'bigint':
      return `${value}n (a BigInt)`;
    case 'symbol':
      return value.toString();
    case 'function':
      return 'a function';
    case 'object':
      break;
    default:
      return String(value);
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) {
    return value.length <= 4 && depth < 2 ? `[${value.map((v) => show(v, depth + 1)).join(', ')}]` : `an array of ${value.length}`;
  }
  if (ArrayBuffer.isView(value)) {
    const length = (value as unknown as { length?: number }).length;
    return `a ${value.constructor.name}${length === undefined ? '' : ` of ${length}`}`;
  }
  let name: string | undefined;
  try {
    name = Object.getPrototypeOf(value)?.constructor?.name;
  } catch {
    name = undefined;
  }
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

/** "select: option 'k'": how messages name an option. */
export function optionName(where: string, name: string): string {
  return `${where}: option '${name}'`;
}

/** Refuses `value`: "<what> must be <expected> (got <value>)". */
export function refuse(what: string, expected: string, value: unknown, code: ErrorCode = 'E_OPTION'): never {
  throw new PairpickError(code, `${what} must be ${expected} (got ${show(value)})`);
}

/** Returns `value` when `rule` accepts it, else refuses it naming `what` (e.g. "select: option 'k'"). */
export function check<T>(rule: Rule<T>, value: unknown, what: string): T {
  if (!rule.accepts(value)) refuse(what, rule.expected, value, rule.code);
  return value;
}

export type Schema = Record<string, Rule<unknown>>;
type ValueOf<R> = R extends Rule<infer T> ? T : never;
/** What `readOptions` returns: the options given, checked; `required` ones always present. */
export type Parsed<S extends Schema, R extends keyof S = never> = { [K in keyof S]?: ValueOf<S[K]> } & { [K in R]: ValueOf<S[K]> };

/**
 * Reads an options object against a table of option name → rule: refuses a non-object, unknown
 * keys (listing the allowed ones), missing `required` options and every value its rule does not
 * accept. Absent options (undefined) are left out of the result, for the caller's defaults.
 * Without required options, `undefined` or `null` as the whole object means no options.
 */
export function readOptions<S extends Schema, R extends keyof S & string = never>(
  options: unknown,
  schema: S,
  where: string,
  required: readonly R[] = [],
): Parsed<S, R> {
  if ((options === undefined || options === null) && required.length === 0) return {} as Parsed<S, R>;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    refuse(`${where}: options`, required.length ? `an object with { ${required.join(', ')} }` : 'an object', options);
  }
  checkOptions(options, Object.keys(schema), where);
  const out: Record<string, unknown> = {};
  for (const [name, rule] of Object.entries(schema)) {
    const value = (options as Record<string, unknown>)[name];
    if (value !== undefined) out[name] = check(rule, value, optionName(where, name));
    else if ((required as readonly string[]).includes(name)) refuse(optionName(where, name), `${rule.expected} (it is required)`, value, rule.code);
  }
  return out as Parsed<S, R>;
}

// ---- rules ------------------------------------------------------------------------------------

function range(min: number | undefined, max: number | undefined, above?: number, below?: number): string {
  const parts: string[] = [];
  if (above !== undefined) parts.push(`> ${above}`);
  if (min !== undefined) parts.push(`≥ ${min}`);
  if (below !== undefined) parts.push(`< ${below}`);
  if (max !== undefined) parts.push(`≤ ${max}`);
  return parts.length ? ` ${parts.join(' and ')}` : '';
}

/** An integer (a JS number) in [min, max]; without bounds, any safe integer. */
export function integer(o: { min?: number; max?: number; code?: ErrorCode } = {}): Rule<number> {
  const min = o.min ?? -Number.MAX_SAFE_INTEGER;
  const max = o.max ?? Number.MAX_SAFE_INTEGER;
  return {
    expected: `an integer${range(o.min, o.max)}`,
    code: o.code,
    accepts: (v): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max,
    shape: { type: 'integer', min: o.min, max: o.max },
  };
}

/** A finite number within the given bounds (`above`/`below` exclusive, `min`/`max` inclusive). */
export function number(o: { min?: number; max?: number; above?: number; below?: number; code?: ErrorCode } = {}): Rule<number> {
  return {
    expected: `a finite number${range(o.min, o.max, o.above, o.below)}`,
    code: o.code,
    accepts: (v): v is number =>
      typeof v === 'number' &&
      Number.isFinite(v) &&
      (o.min === undefined || v >= o.min) &&
      (o.max === undefined || v <= o.max) &&
      (o.above === undefined || v > o.above) &&
      (o.below === undefined || v < o.below),
    shape: { type: 'number', min: o.min, max: o.max, above: o.above, below: o.below },
  };
}

/** "'a', 'b' or 'c'". */
export function listOf(choices: readonly unknown[]): string {
  const shown = choices.map((c) => show(c));
  return shown.length <= 1 ? shown.join('') : `${shown.slice(0, -1).join(', ')} or ${shown[shown.length - 1]}`;
}

/** One of a fixed set of values (compared with ===). */
export function oneOf<T>(choices: readonly T[]): Rule<T> {
  return { expected: listOf(choices), accepts: (v): v is T => choices.includes(v as T), shape: { type: 'oneOf', choices } };
}

/** Either rule: `'auto'` or a number, say. */
export function either<A, B>(a: Rule<A>, b: Rule<B>): Rule<A | B> {
  return {
    expected: `${a.expected} or ${b.expected}`,
    code: a.code ?? b.code,
    accepts: (v): v is A | B => a.accepts(v) || b.accepts(v),
    shape: a.shape && b.shape ? { type: 'either', of: [a.shape, b.shape] } : undefined,
  };
}

export const BOOLEAN: Rule<boolean> = { expected: 'true or false', accepts: (v): v is boolean => typeof v === 'boolean' };

export const STRING: Rule<string> = { expected: 'a non-empty string', accepts: (v): v is string => typeof v === 'string' && v.length > 0 };

export const SIGNAL: Rule<AbortSignal> = { expected: 'an AbortSignal', accepts: (v): v is AbortSignal => v instanceof AbortSignal };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const FUNCTION: Rule<(...args: any[]) => unknown> = { expected: 'a function', accepts: (v): v is () => unknown => typeof v === 'function' };

/** A plain options-like object (not null, not an array). */
export const OBJECT: Rule<Record<string, unknown>> = {
  expected: 'an object',
  accepts: (v): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v),
};

/** A size: an integer in [min, MAX_COUNT] (min defaults to 1). */
export function count(min = 1, code?: ErrorCode): Rule<number> {
  return integer({ min, max: MAX_COUNT, code });
}

/**
 * A seed: an integer in [−2^31, 2^32 − 1], taken modulo 2^32 (so −1 and 2^32 − 1 are the same
 * seed). Larger magnitudes are refused rather than silently folded onto small ones.
 */
export const SEED: Rule<number> = integer({ min: -(2 ** 31), max: 2 ** 32 - 1 });

/** The `backend` option's type: a name or a Backend object (`getBackend` checks which). */
export const BACKEND: Rule<string | object> = {
  expected: "'auto', 'cuda', 'cpu', 'js' or a Backend object",
  accepts: (v): v is string | object => typeof v === 'string' || (typeof v === 'object' && v !== null && !Array.isArray(v)),
};

/** A JS array (any length) each of whose elements `element` accepts, of at least `minLength` elements. */
export function arrayOf<T>(element: Rule<T>, minLength = 0): Rule<T[]> {
  return {
    expected: `${minLength > 0 ? 'a non-empty array' : 'an array'} of ${element.expected.replace(/^an? /, '')}s`,
    code: element.code,
    accepts: (v): v is T[] => Array.isArray(v) && v.length >= minLength && v.every((x) => element.accepts(x)),
  };
}

// ---- arrays -----------------------------------------------------------------------------------

/** A dense matrix: float32 values, or a Uint16Array of fp16 bit patterns. */
type MatrixData = Float32Array | Uint16Array;

/**
 * A list of numbers: a JS array or a typed array of numbers (BigInt arrays are refused: their
 * values are not numbers). Only the container is checked; callers check the values they read.
 */
export function numberList(expected: string): Rule<ArrayLike<number>> {
  return {
    expected,
    accepts: (v): v is ArrayLike<number> =>
      Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)),
  };
}

/** Row indices (their values are checked by `rowIndices`). */
export const INDEX_LIST = numberList('an array or typed array of row indices');

/**
 * Checks row indices against `rows`: every value an integer in [0, rows), naming the first bad
 * one as `name[p]`. With `distinct`, a repeated index is refused too. Returns them as an Int32Array.
 */
export function rowIndices(value: unknown, rows: number, what: string, name: string, o: { distinct?: boolean; code?: ErrorCode } = {}): Int32Array {
  const list = check(INDEX_LIST, value, what);
  const code = o.code ?? 'E_OPTION';
  const where = what.replace(/: (option|argument) '.*'$/, '');
  if (o.distinct && list.length > rows) {
    throw new PairpickError(code, `${what} has ${list.length} indices but the pool has only ${rows} rows (some repeat or are out of range)`);
  }
  const seen = o.distinct ? new Uint8Array(rows) : undefined;
  const out = new Int32Array(list.length);
  for (let p = 0; p < list.length; p++) {
    const i = list[p];
    if (typeof i !== 'number' || !Number.isInteger(i)) throw new PairpickError(code, `${where}: ${name}[${p}] = ${show(i)} is not an integer row index`);
    if (i < 0) throw new PairpickError(code, `${where}: ${name}[${p}] = ${i} is negative`);
    if (i >= rows) throw new PairpickError(code, `${where}: ${name}[${p}] = ${i} is out of range (the pool has ${rows} rows)`);
    if (seen) {
      if (seen[i]) throw new PairpickError(code, `${where}: ${name} index ${i} appears twice (again at ${name}[${p}])`);
      seen[i] = 1;
    }
    out[p] = i;
  }
  return out;
}

/**
 * A dense row-major matrix argument: its type (Float32Array, or with `half` a Uint16Array of fp16
 * bits), its length `rows × cols` (E_SHAPE; `shape` says where the sizes come from, e.g.
 * "rowsQ × dim") and, unless `scan` is false, finite values (E_NAN naming the row and column).
 */
export function matrix(
  value: unknown,
  name: string,
  where: string,
  rows: number,
  cols: number,
  o: { half?: boolean; scan?: boolean; shape?: string } = {},
): MatrixData {
  const isHalf = o.half === true && value instanceof Uint16Array;
  if (!(value instanceof Float32Array) && !isHalf) {
    refuse(`${where}: ${name}`, o.half ? 'a Float32Array or a Uint16Array of fp16 bits' : 'a Float32Array', value);
  }
  const m = value as MatrixData;
  if (m.length !== rows * cols) {
    const shape = o.shape ? `${o.shape} = ` : '';
    throw new PairpickError('E_SHAPE', `${where}: ${name} has ${m.length} values, expected ${shape}${rows} × ${cols} = ${rows * cols}`);
  }
  if (o.scan === false) return m;
  const bad = firstNonFinite(m);
  if (bad >= 0) {
    const v = m instanceof Float32Array ? m[bad] : (m[bad] & 0x3ff) !== 0 ? NaN : m[bad] & 0x8000 ? -Infinity : Infinity;
    throw new PairpickError('E_NAN', `${where}: ${name} row ${Math.floor(bad / cols)} (column ${bad % cols}) is ${v}`);
  }
  return m;
}

/** Index of the first NaN/±Inf value, or −1. fp16: exponent bits all ones. */
export function firstNonFinite(m: MatrixData): number {
  if (m instanceof Uint16Array) {
    for (let i = 0; i < m.length; i++) if ((m[i] & 0x7c00) === 0x7c00) return i;
    return -1;
  }
  for (let i = 0; i < m.length; i++) {
    const v = m[i];
    // v − v is NaN exactly when v is NaN or ±Inf.
    if (v - v !== 0) return i;
  }
  return -1;
}

/**
 * Refuses sizes that would allocate more than MAX_TENSOR_VALUES values in one array, before
 * anything is allocated: `tensors` are (description, value count) pairs, e.g.
 * ["the prototypes (prototypes × dim = 64 × 2147483647)", 64 * 2147483647].
 */
export function checkTensorSizes(where: string, tensors: readonly (readonly [string, number])[], code: ErrorCode = 'E_OPTION'): void {
  for (const [what, values] of tensors) {
    if (values > MAX_TENSOR_VALUES) {
      throw new PairpickError(code, `${where}: ${what} would hold ${values.toExponential(2)} values, more than the ${MAX_TENSOR_VALUES} (2^28) pairpick allocates at once`);
    }
  }
}

/** What selection and stage 1 read from a pool (the io Pool, or anything shaped like it). */
export interface PoolShape {
  readonly rows: number;
  readonly modalities: readonly string[];
  source(name: string): { readonly rows: number; readonly dim: number; readonly name?: string };
}

/** Whether `x` looks like a pool: `modalities` (an array) and `source()`. */
export function isPoolShape(x: unknown): x is PoolShape {
  return typeof x === 'object' && x !== null && Array.isArray((x as PoolShape).modalities) && typeof (x as PoolShape).source === 'function';
}

/**
 * Checks a pool argument before any of it is read: its row count, its modality names (≥ 1,
 * distinct) and every modality's source (as many rows as the pool, a dimension ≥ 1). E_OPTION
 * for something that is not a pool, E_SHAPE for sizes that do not fit together. Messages name
 * `what` (default "<where>: argument '<name>'"; a pool given as an option names the option).
 */
export function checkPool(pool: unknown, where: string, name = 'pool', what = `${where}: argument '${name}'`): asserts pool is PoolShape {
  if (!isPoolShape(pool)) refuse(what, 'a pool (see openPool()): { rows, modalities, source(name) }', pool);
  check(integer({ min: 0, max: MAX_COUNT }), pool.rows, `${what}: rows`);
  const names = pool.modalities;
  if (names.length === 0) throw new PairpickError('E_SHAPE', `${what} has no modalities`);
  names.forEach((m, i) => {
    if (typeof m !== 'string' || m.length === 0) refuse(`${what}: modalities[${i}]`, 'a non-empty string', m);
    if (names.indexOf(m) !== i) throw new PairpickError('E_OPTION', `${what}: modality '${m}' appears twice`);
  });
  for (const m of names) {
    const s = pool.source(m) as unknown;
    if (typeof s !== 'object' || s === null) refuse(`${what}: source('${m}')`, 'a source', s);
    const src = s as { rows: unknown; dim: unknown };
    check(count(1), src.dim, `${what}: modality '${m}': dim`);
    if (src.rows !== pool.rows) {
      throw new PairpickError('E_SHAPE', `${where}: modality '${m}' has ${show(src.rows)} rows, the pool has ${pool.rows}; every modality needs one row per sample`);
    }
  }
}
