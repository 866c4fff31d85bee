// A trained stage-1 model: the projection heads (and prototypes) of every modality, what they
// were trained with, and how to apply them to a pool.
import { getBackend, type BackendChoice } from '../backend/index.js';
import { checkOptions, PairpickError, throwIfAborted } from '../errors.js';
import { openPool, type Pool } from '../io/pool.js';
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

const EMBED_OPTIONS = ['backend', 'chunkRows', 'signal', 'onProgress'];

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
    const head = this.head(modality, rows > 0 ? x.length / rows : this.inputDims[modality], 'embedRows');
    if (x.length !== rows * head.inputDim) throw new PairpickError('E_SHAPE', `embedRows: expected ${rows} × ${head.inputDim} values, got ${x.length}`);
    return (await headForward(getBackend(options.backend), head, x, rows)).z;
  }

  /** Streams the projection of one source block by block (for writing large outputs to disk). */
  async *embedChunks(modality: string, source: EmbeddingSource, options: Omit<EmbedOptions, 'onProgress'> = {}): AsyncGenerator<Chunk> {
    const head = this.head(modality, source.dim, 'embed');
    const backend = getBackend(options.backend);
    const chunkRows = options.chunkRows ?? 4096;
    for await (const chunk of source.chunks(chunkRows, { signal: options.signal })) {
      throwIfAborted(options.signal, 'embed');
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
  async embed(input: PoolLike | Record<string, EmbeddingSource>, options: EmbedOptions = {}): Promise<EmbeddedPool> {
    checkOptions(options, EMBED_OPTIONS, 'embed');
    const chunkRows = options.chunkRows ?? 4096;
    if (!Number.isInteger(chunkRows) || chunkRows < 1) throw new PairpickError('E_OPTION', `embed: option 'chunkRows' must be an integer ≥ 1, got ${chunkRows}`);
    const entries: [string, EmbeddingSource][] = isPoolLike(input)
      ? input.modalities.map((n) => [n, input.source(n)])
      : Object.entries(input);
    if (entries.length === 0) throw new PairpickError('E_SHAPE', 'embed: no modalities given');
    for (const [name, source] of entries) this.head(name, source.dim, 'embed');
    const total = entries.reduce((s, [, src]) => s + src.rows, 0);
    let done = 0;
    const out: Record<string, { data: Float32Array; dim: number }> = {};
    for (const [name, source] of entries) {
      const data = new Float32Array(source.rows * this.dim);
      for await (const chunk of this.embedChunks(name, source, { backend: options.backend, chunkRows, signal: options.signal })) {
        data.set(chunk.data, chunk.start * this.dim);
        done += chunk.count;
        options.onProgress?.(total ? done / total : 1);
      }
      out[name] = { data, dim: this.dim };
    }
    return openPool(out);
  }

  /** Writes the model as .safetensors (weights, prototypes; options and history in __metadata__), atomically. */
  async save(path: string): Promise<void> {
    await saveCheckpoint(path, {
      modalities: [...this.modalities],
      heads: [...this.heads],
      prototypes: [...this.prototypes],
      metadata: { inputDims: this.inputDims, options: this.options, history: this.history, gapBefore: this.gapBefore, gap: this.gap },
    });
  }
}

function isPoolLike(x: unknown): x is PoolLike {
  return !!x && typeof x === 'object' && Array.isArray((x as PoolLike).modalities) && typeof (x as PoolLike).source === 'function';
}

/** Loads a model written by `Projection.save()` (E_FORMAT naming the file when it is not one). */
export async function loadProjection(path: string): Promise<Projection> {
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
