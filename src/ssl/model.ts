// A trained stage-1 model: the projection heads (and prototypes) of every modality, what they
// were trained with, and how to apply them to a pool.
import { getBackend, type BackendChoice } from '../backend/index.js';
import { PairpickError, throwIfAborted } from '../errors.js';
import {
  BACKEND,
  check,
  checkPool,
  checkTensorSizes,
  count,
  FUNCTION,
  isPoolShape,
  matrix,
  MAX_ARRAY_VALUES,
  OBJECT,
  optionName,
  readOptions,
  refuse,
  SIGNAL,
  STRING,
  type Schema,
} from '../util/validate.js';
import { openPool, type Pool } from '../io/pool.js';
import { isSourceLike, memorySource } from '../io/source.js';
import { fromTensorLike, isTensorLike, type TensorLike } from '../io/tensor.js';
import type { Chunk, EmbeddingSource } from '../io/types.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { headForward, type Head } from './projection.js';
import type { EpochRecord, ResolvedFitOptions } from './trainer.js';

/** What stage 1 reads from a pool: its modalities in order and one source per modality. */
export interface PoolLike {
  readonly rows: number;
  readonly modalities: readonly string[];
  source(name: string): EmbeddingSource;
}

/** The result of `Projection.embed()`: a pool of in-memory, L2-normalised float32 embeddings. */
export type EmbeddedPool = Pool;

/** Options of `Projection.embed()`. */
export interface EmbedOptions {
  /** Backend for the matrix products (default: PAIRPICK_BACKEND, else cuda → cpu → js). */
  backend?: BackendChoice;
  /** Rows projected per block (default 4096). */
  chunkRows?: number;
  /** Cancels with `E_ABORTED` between blocks. */
  signal?: AbortSignal;
  /** Called after every block with the fraction of all rows (all modalities) done. */
  onProgress?: (fraction: number) => void;
}

const EMBED_CHUNK_OPTIONS = { backend: BACKEND, chunkRows: count(1), signal: SIGNAL } satisfies Schema;
const EMBED_OPTIONS = { ...EMBED_CHUNK_OPTIONS, onProgress: FUNCTION } satisfies Schema;

/** The data a Projection is made of (what fitProjection and loadProjection produce). */
export interface ProjectionData {
  modalities: string[];
  heads: Head[];
  prototypes: Float32Array[];
  options: ResolvedFitOptions;
  history: EpochRecord[];
  gapBefore: number;
  gap: number;
}

export class Projection {
  /** Modality names, in training order. */
  readonly modalities: readonly string[];
  /** Input dimension D_m of each modality. */
  readonly inputDims: Readonly<Record<string, number>>;
  /** Output dimension d shared by every modality. */
  readonly dim: number;
  /** The options it was trained with (defaults filled in). */
  readonly options: Readonly<ResolvedFitOptions>;
  /** One record per epoch: loss parts, gap, seconds. */
  readonly history: readonly EpochRecord[];
  /** Modality gap of the randomly initialised heads on the training pool (spec §1.3). */
  readonly gapBefore: number;
  /** Modality gap after training, on the training pool. */
  readonly gap: number;
  /** The heads, in `modalities` order (weights stored input-major). */
  readonly heads: readonly Head[];
  /** The prototypes (K × d) of each modality. */
  readonly prototypes: readonly Float32Array[];

  constructor(data: ProjectionData) {
    this.modalities = data.modalities;
    this.heads = data.heads;
    this.prototypes = data.prototypes;
    this.inputDims = Object.fromEntries(data.modalities.map((m, i) => [m, data.heads[i].inputDim]));
    this.dim = data.heads[0].dim;
    this.options = data.options;
    this.history = data.history;
    this.gapBefore = data.gapBefore;
    this.gap = data.gap;
  }

  private head(modality: string, inputDim: number, where: string): Head {
    check(STRING, modality, `${where}: argument 'modality'`);
    const m = this.modalities.indexOf(modality);
    if (m < 0) throw new PairpickError('E_SHAPE', `${where}: the model has no modality '${modality}' (it has: ${this.modalities.join(', ')})`);
    const head = this.heads[m];
    if (inputDim !== head.inputDim) {
      throw new PairpickError('E_SHAPE', `${where}: modality '${modality}' has ${inputDim} input dimensions but the model was trained on ${head.inputDim}`);
    }
    return head;
  }

  /** Projects `rows` rows of one modality (rows × D_m float32) to unit-length rows × d. */
  async embedRows(modality: string, x: Float32Array, rows: number, options: { backend?: BackendChoice } = {}): Promise<Float32Array> {
    const where = 'embedRows';
    const o = readOptions(options, { backend: BACKEND }, where);
    check(STRING, modality, `${where}: argument 'modality'`);
    check(count(0), rows, `${where}: argument 'rows'`);
    const head = this.head(modality, this.inputDims[modality], where);
    matrix(x, 'x', where, rows, head.inputDim, { shape: `rows × input dim of '${modality}'` });
    checkTensorSizes(where, [
      [`the hidden activations (argument 'rows' ${rows} × hidden ${head.hidden})`, rows * head.hidden],
      [`the output (argument 'rows' ${rows} × dim ${head.dim})`, rows * head.dim],
    ]);
    return (await headForward(getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend')), head, x, rows)).z;
  }

  /** Streams the projection of one source block by block (for writing large outputs to disk). */
  async *embedChunks(modality: string, source: EmbeddingSource, options: Omit<EmbedOptions, 'onProgress'> = {}): AsyncGenerator<Chunk> {
    const where = 'embed';
    const o = readOptions(options, EMBED_CHUNK_OPTIONS, where);
    checkSource(source, `${where}: argument 'source'`);
    const head = this.head(modality, source.dim, where);
    const chunkRows = o.chunkRows ?? DEFAULT_CHUNK_ROWS;
    this.checkChunkRows(chunkRows, source.rows, where);
    const backend = getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend'));
    for await (const chunk of source.chunks(chunkRows, { signal: o.signal })) {
      throwIfAborted(o.signal, where);
      const { z } = await headForward(backend, head, chunk.data, chunk.count);
      for (let i = 0; i < z.length; i++) {
        // A non-finite output means a non-finite input row (the weights are checked on load).
        if (!Number.isFinite(z[i])) {
          const row = chunk.start + Math.floor(i / this.dim);
          throw new PairpickError('E_NAN', `embed: modality '${modality}' (${source.name}): row ${row} holds NaN or ±Inf`);
        }
      }
      yield { start: chunk.start, count: chunk.count, data: z };
    }
  }

  /**
   * Projects every modality of `input` (a pool, or one source per modality name) into the shared
   * space: a pool of in-memory float32 sources, N × d each, rows of unit length. The input may
   * hold a subset of the model's modalities; each must have the dimension the model was trained on.
   */
  async embed(input: PoolLike | Record<string, EmbeddingSource | TensorLike>, options: EmbedOptions = {}): Promise<EmbeddedPool> {
    const where = 'embed';
    const o = readOptions(options, EMBED_OPTIONS, where);
    const chunkRows = o.chunkRows ?? DEFAULT_CHUNK_ROWS;
    let entries: [string, EmbeddingSource][];
    if (isPoolShape(input)) {
      checkPool(input, where, 'input');
      entries = input.modalities.map((n) => [n, input.source(n) as EmbeddingSource]);
    } else {
      check(OBJECT, input, `${where}: argument 'input' (a pool, or one source per modality name)`);
      // Tensors and { data, dim } are viewed as in-memory sources (nothing to close).
      entries = Object.entries(input as Record<string, EmbeddingSource | TensorLike>).map(([name, value]) => {
        if (isSourceLike(value) || !isTensorLike(value)) return [name, value as EmbeddingSource];
        const m = fromTensorLike(value, `${where}: argument 'input': modality '${name}'`);
        return [name, memorySource(m.data, m.dim, name)];
      });
      for (const [name, source] of entries) checkSource(source, `${where}: argument 'input': modality '${name}'`);
    }
    if (entries.length === 0) throw new PairpickError('E_SHAPE', `${where}: no modalities given`);
    for (const [name, source] of entries) {
      this.head(name, source.dim, where);
      this.checkChunkRows(chunkRows, source.rows, where);
      if (source.rows * this.dim > MAX_ARRAY_VALUES) {
        throw new PairpickError('E_SHAPE', `${where}: modality '${name}' has ${source.rows} rows × ${this.dim} = ${source.rows * this.dim} values, more than one in-memory array holds; project it in chunks with embedChunks() (or \`pairpick embed\`) instead`);
      }
    }
    const backend = getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend'));
    const total = entries.reduce((s, [, src]) => s + src.rows, 0);
    let done = 0;
    const out: Record<string, { data: Float32Array; dim: number }> = {};
    for (const [name, source] of entries) {
      const data = new Float32Array(source.rows * this.dim);
      for await (const chunk of this.embedChunks(name, source, { backend, chunkRows, signal: o.signal })) {
        data.set(chunk.data, chunk.start * this.dim);
        done += chunk.count;
        o.onProgress?.(total ? done / total : 1);
      }
      out[name] = { data, dim: this.dim };
    }
    return openPool(out);
  }

  /** Refuses a `chunkRows` whose blocks of `rows` rows (inputs, hidden activations, outputs) would exceed MAX_TENSOR_VALUES. */
  private checkChunkRows(chunkRows: number, rows: number, where: string): void {
    const widest = Math.max(this.dim, ...this.heads.map((h) => Math.max(h.inputDim, h.hidden)));
    const block = Math.min(chunkRows, rows);
    checkTensorSizes(where, [[`a block of rows (option 'chunkRows' ${chunkRows}, ${block} rows × width ${widest})`, block * widest]]);
  }

  /** Writes the model as .safetensors (weights, prototypes; options and history in __metadata__), atomically. */
  async save(path: string): Promise<void> {
    check(STRING, path, "Projection.save: argument 'path'");
    await saveCheckpoint(path, {
      modalities: [...this.modalities],
      heads: [...this.heads],
      prototypes: [...this.prototypes],
      metadata: { inputDims: this.inputDims, options: this.options, history: this.history, gapBefore: this.gapBefore, gap: this.gap },
    });
  }
}

/** Rows projected per block unless `chunkRows` says otherwise. */
const DEFAULT_CHUNK_ROWS = 4096;

/** Checks that `x` is a source: rows, a dimension and chunked reads. */
function checkSource(x: unknown, what: string): asserts x is EmbeddingSource {
  const s = x as EmbeddingSource;
  if (typeof x !== 'object' || x === null || typeof s.chunks !== 'function' || typeof s.rows !== 'number' || typeof s.dim !== 'number') {
    refuse(what, 'an embedding source (see openSource())', x);
  }
}

/** Loads a model written by `Projection.save()` (E_FORMAT naming the file when it is not one). */
export async function loadProjection(path: string): Promise<Projection> {
  check(STRING, path, "loadProjection: argument 'path'");
  const c = await loadCheckpoint(path);
  const meta = c.metadata;
  const options = meta.options as ResolvedFitOptions | undefined;
  const history = meta.history as EpochRecord[] | undefined;
  if (!options || typeof options !== 'object') throw new PairpickError('E_FORMAT', `${path}: not a pairpick projection checkpoint: __metadata__ has no options`);
  if (!Array.isArray(history)) throw new PairpickError('E_FORMAT', `${path}: not a pairpick projection checkpoint: __metadata__ history is not a list`);
  const num = (v: unknown) => (typeof v === 'number' ? v : NaN);
  return new Projection({
    modalities: c.modalities,
    heads: c.heads,
    prototypes: c.prototypes,
    options,
    history,
    gapBefore: num(meta.gapBefore),
    gap: num(meta.gap),
  });
}
