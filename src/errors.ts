/**
 * The one error class pairpick throws for anything the caller can fix: bad files, bad shapes,
 * bad options, NaN/Inf data, impossible budgets, a missing backend, a cancelled job.
 */
export type ErrorCode =
  | 'E_FORMAT' // a file is not what it claims (bad magic, truncated, header lies, unsupported dtype/order)
  | 'E_IO' // the operating system refused (missing file, permission, short read)
  | 'E_SHAPE' // sizes do not fit together (row counts, dims, k > rows, …)
  | 'E_NAN' // NaN or ±Inf in the data
  | 'E_BUDGET' // budget impossible (≤ 0, larger than what can be selected)
  | 'E_OPTION' // unknown option, or a value out of its range
  | 'E_BACKEND' // the requested backend is not available
  | 'E_ABORTED' // cancelled through an AbortSignal
  | 'E_STATE' // object used after close() or in the wrong order
  | 'E_INTERNAL'; // a bug in pairpick: please report it

export class PairpickError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PairpickError';
    this.code = code;
  }
}

/** Throws `E_ABORTED` when the signal has fired. Call between chunks of long work. */
export function throwIfAborted(signal: AbortSignal | undefined, what = 'operation'): void {
  if (signal?.aborted) throw new PairpickError('E_ABORTED', `${what} was cancelled`, { cause: signal.reason });
}

/** Rejects unknown keys of an options object, naming the first one and listing what is allowed. */
export function checkOptions(options: object | undefined, allowed: readonly string[], where: string): void {
  if (options === undefined || options === null) return;
  if (typeof options !== 'object' || Array.isArray(options)) throw new PairpickError('E_OPTION', `${where}: options must be an object`);
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new PairpickError('E_OPTION', `${where}: unknown option '${key}' (allowed: ${allowed.join(', ')})`);
    }
  }
}
