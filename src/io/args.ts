// Argument checks shared by the public io functions: every bad argument becomes a PairpickError
// (E_OPTION) whose message names the function and the argument, never a TypeError from deep inside.
import { checkOptions, PairpickError } from '../errors.js';

/** A short, safe description of any value for an error message. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return 'a function';
  if (v === null || typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

function optionError(where: string, what: string, expected: string, got: unknown): PairpickError {
  return new PairpickError('E_OPTION', `${where}: ${what} must be ${expected} (got ${describeValue(got)})`);
}

/** An options argument: undefined or null (no options), else a plain object with only `allowed` keys. */
export function optionsObject<T extends object>(options: T | null | undefined, allowed: readonly string[], where: string): Partial<T> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw optionError(where, 'options', 'an object', options);
  checkOptions(options, allowed, where);
  return options;
}

/** A non-empty path string. */
export function checkPath(path: unknown, where: string, what = 'path'): string {
  if (typeof path !== 'string' || path === '') throw optionError(where, what, 'a non-empty path string', path);
  if (path.includes('\0')) throw new PairpickError('E_OPTION', `${where}: ${what} ${describeValue(path)} contains a NUL character`);
  return path;
}

/** An integer ≥ min (a safe integer: JS numbers are exact up to 2^53). */
export function checkInteger(value: unknown, where: string, what: string, min = 0): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw optionError(where, what, min === 0 ? 'a non-negative integer' : `an integer ≥ ${min}`, value);
  }
  return value;
}

/** An optional integer ≥ min. */
export function optionalInteger(value: unknown, where: string, what: string, min = 0): number | undefined {
  return value === undefined ? undefined : checkInteger(value, where, what, min);
}

/** An optional AbortSignal. */
export function checkSignal(signal: unknown, where: string): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw optionError(where, "option 'signal'", 'an AbortSignal', signal);
  return signal;
}

/** An optional boolean. */
export function optionalBoolean(value: unknown, where: string, what: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') throw optionError(where, what, 'true or false', value);
  return value;
}

/** An optional string. */
export function optionalString(value: unknown, where: string, what: string): string | undefined {
  if (value !== undefined && typeof value !== 'string') throw optionError(where, what, 'a string', value);
  return value;
}

/** An optional value out of a fixed list. */
export function optionalChoice<T extends string>(value: unknown, choices: readonly T[], where: string, what: string): T | undefined {
  if (value !== undefined && !(choices as readonly unknown[]).includes(value)) {
    throw optionError(where, what, choices.map((c) => `'${c}'`).join(' or '), value);
  }
  return value as T | undefined;
}

/** An optional function. */
export function optionalFunction<T extends (...args: never[]) => unknown>(value: unknown, where: string, what: string): T | undefined {
  if (value !== undefined && typeof value !== 'function') throw optionError(where, what, 'a function', value);
  return value as T | undefined;
}

/** Something with a numeric length and numeric entries: an Array or a typed array. */
export function checkIndexList(value: unknown, where: string, what: string): ArrayLike<number> {
  const ok =
    Array.isArray(value) ||
    (ArrayBuffer.isView(value) && !(value instanceof DataView) && !(value instanceof BigInt64Array) && !(value instanceof BigUint64Array));
  if (!ok) throw optionError(where, what, 'an array or typed array of row indices', value);
  return value as ArrayLike<number>;
}
