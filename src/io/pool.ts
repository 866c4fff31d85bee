// A pool: several modalities of the same samples (row i of every modality is sample i).
import { checkOptions, PairpickError, throwIfAborted } from '../errors.js';
import { describeValue } from './args.js';
import { checkSourceOptions, isSourceLike, memorySource, openSource } from './source.js';
import { fromTensorLike, isTensorLike, type TensorLike } from './tensor.js';
import type { EmbeddingSource, OpenedSource, OpenSourceOptions } from './types.js';

/** A modality given by files, with options of its own (e.g. `dim` for raw files). */
export interface PoolFileInput {
  path: string | string[];
  dim?: OpenSourceOptions['dim'];
  dtype?: OpenSourceOptions['dtype'];
  tensor?: OpenSourceOptions['tensor'];
}

/**
 * What each modality is made of: a path (file or shard folder), a list of paths, an already open
 * source, an in-memory matrix — a 2-D tensor (onnxruntime-node / transformers.js `{ data, dims, type }`,
 * a tfjs tensor) or `{ data, dim }` (Float32Array, or Uint16Array of fp16), used without copying —
 * or `{ path, dim?, dtype?, tensor? }` for per-modality file options.
 */
export type PoolInput = Record<string, string | string[] | EmbeddingSource | TensorLike | PoolFileInput>;

/** Options of `openPool()` (file options apply to every modality opened from paths). */
export interface OpenPoolOptions {
  /** See `OpenSourceOptions.dim`. */
  dim?: number;
  /** See `OpenSourceOptions.dtype`. */
  dtype?: OpenSourceOptions['dtype'];
  /** See `OpenSourceOptions.tensor`. */
  tensor?: string;
  /** See `OpenSourceOptions.mmap`. Default true. */
  mmap?: boolean;
  /** Cancels opening with `E_ABORTED`. */
  signal?: AbortSignal;
}

/** Several modalities with the same number of rows. */
export interface Pool {
  /** Samples in the pool (rows of every modality). */
  readonly rows: number;
  /** Modality names, in the order given. */
  readonly modalities: string[];
  /** The source of one modality (`E_OPTION` naming the known ones if there is no such modality). */
  source(name: string): EmbeddingSource;
  readonly sources: Record<string, EmbeddingSource>;
  /** Closes the sources the pool opened itself (sources passed in stay open: they are the caller's). */
  close(): Promise<void>;
}

/**
 * Opens every modality of a pool and checks they have the same number of rows (`E_SHAPE` naming
 * both modalities otherwise).
 */
export async function openPool(input: PoolInput, options?: OpenPoolOptions): Promise<Pool> {
  return openPoolAs(input, options, 'openPool');
}

/** openPool, with messages prefixed by `where` (e.g. "fitProjection: argument 'pool'"). */
async function openPoolAs(input: PoolInput, options: OpenPoolOptions | undefined, where: string): Promise<Pool> {
  const opts = checkSourceOptions(options, where);
  if (!input || typeof input !== 'object' || Array.isArray(input)) {
    throw new PairpickError('E_OPTION', `${where}: expected an object mapping modality names to paths, sources, tensors or { data, dim } (got ${describeValue(input)})`);
  }
  const names = Object.keys(input);
  if (names.length === 0) throw new PairpickError('E_OPTION', `${where}: no modalities given`);
  const sources: Record<string, EmbeddingSource> = {};
  const owned: OpenedSource[] = [];
  const keep = async (s: OpenedSource | Promise<OpenedSource>) => {
    const opened = await s;
    owned.push(opened);
    return opened;
  };
  try {
    for (const name of names) {
      throwIfAborted(opts.signal, where);
      const value = input[name];
      let source: EmbeddingSource;
      if (typeof value === 'string' || Array.isArray(value)) {
        source = await keep(openSource(value, opts));
      } else if (isSourceLike(value)) {
        source = value;
      } else if (isTensorLike(value)) {
        if (!('dims' in value || 'shape' in value)) checkOptions(value, ['data', 'dim'], `${where}: modality '${name}'`);
        const m = fromTensorLike(value, `${where}: modality '${name}'`);
        source = await keep(memorySource(m.data, m.dim, name));
      } else if (value && typeof value === 'object' && 'path' in value) {
        checkOptions(value, ['path', 'dim', 'dtype', 'tensor'], `${where}: modality '${name}'`);
        const { path, ...own } = value;
        source = await keep(openSource(path, { ...opts, ...own }));
      } else {
        throw new PairpickError('E_OPTION', `${where}: modality '${name}' must be a path, a list of paths, a source, a 2-D tensor, { data, dim } or { path, … }`);
      }
      sources[name] = source;
    }
    const first = names[0];
    for (const name of names.slice(1)) {
      if (sources[name].rows !== sources[first].rows) {
        throw new PairpickError(
          'E_SHAPE',
          `${where}: modalities disagree on the number of rows: '${first}' (${sources[first].name}) has ${sources[first].rows}, '${name}' (${sources[name].name}) has ${sources[name].rows}`,
        );
      }
    }
  } catch (e) {
    await Promise.all(owned.map((s) => s.close().catch(() => undefined)));
    throw e;
  }
  const rows = sources[names[0]].rows;
  let closing: Promise<void> | undefined;
  return {
    rows,
    modalities: names,
    sources,
    source(name: string): EmbeddingSource {
      const s = sources[name];
      if (!s || !Object.prototype.hasOwnProperty.call(sources, name)) {
        throw new PairpickError('E_OPTION', `pool has no modality '${name}' (modalities: ${names.join(', ')})`);
      }
      return s;
    },
    close(): Promise<void> {
      closing ??= Promise.all(owned.map((s) => s.close())).then(() => undefined);
      return closing;
    },
  };
}

/** What `withPool` takes: an open pool (anything with `modalities` and `source()`), or what openPool accepts. */
function isOpenPool(x: unknown): x is { modalities: readonly string[]; source(name: string): unknown } {
  return typeof x === 'object' && x !== null && Array.isArray((x as Pool).modalities) && typeof (x as Pool).source === 'function';
}

/**
 * Runs `fn` on `input` when it already is an open pool; otherwise on a pool opened from it with
 * openPool (paths, sources, tensors, `{ data, dim }`), closed again when `fn` settles. This is how
 * the API functions that take a pool also take tensors or paths directly. Messages name `what`
 * (default "<where>: argument 'pool'").
 */
export async function withPool<P, T>(
  input: P | PoolInput,
  where: string,
  signal: AbortSignal | undefined,
  fn: (pool: P | Pool) => Promise<T>,
  what = `${where}: argument 'pool'`,
): Promise<T> {
  if (isOpenPool(input)) return fn(input as P);
  const pool = await openPoolAs(input as PoolInput, { signal }, what);
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}
