// The modality gap (spec/methods.md §1.3): gap = ‖mean_i z_i^a − mean_i z_i^b‖₂, over the whole
// pool; with M > 2 modalities, the mean of that distance over all unordered modality pairs.
import { PairpickError, throwIfAborted } from '../errors.js';
import { checkPool, checkTensorSizes, count, readOptions, SIGNAL } from '../util/validate.js';
import type { EmbeddingSource } from '../io/types.js';

/** Running column means of row blocks, accumulated in float64. */
export class MeanAccumulator {
  readonly dim: number;
  rows = 0;
  private readonly sum: Float64Array;

  constructor(dim: number) {
    this.dim = dim;
    this.sum = new Float64Array(dim);
  }

  add(data: Float32Array, rows: number): void {
    const { dim, sum } = this;
    for (let r = 0, o = 0; r < rows; r++, o += dim) for (let j = 0; j < dim; j++) sum[j] += data[o + j];
    this.rows += rows;
  }

  mean(): Float64Array {
    const out = new Float64Array(this.dim);
    if (this.rows > 0) for (let j = 0; j < this.dim; j++) out[j] = this.sum[j] / this.rows;
    return out;
  }
}

/** Mean over unordered pairs of modalities of ‖μ_a − μ_b‖₂, from the per-modality mean embeddings. */
export function gapFromMeans(means: readonly Float64Array[]): number {
  let total = 0;
  let pairs = 0;
  for (let a = 0; a < means.length; a++) {
    for (let b = a + 1; b < means.length; b++) {
      let s = 0;
      for (let j = 0; j < means[a].length; j++) s += (means[a][j] - means[b][j]) ** 2;
      total += Math.sqrt(s);
      pairs++;
    }
  }
  return pairs ? total / pairs : 0;
}

/** Options of `modalityGap()`. */
export interface ModalityGapOptions {
  /** Rows read per block (default 8192). */
  chunkRows?: number;
  /** Cancels with `E_ABORTED` between blocks. */
  signal?: AbortSignal;
}

/**
 * The modality gap of already-projected embeddings (one source per modality, all of the same
 * dimension — e.g. the result of `Projection.embed()`), streamed block by block.
 */
export async function modalityGap(
  embeddings: { readonly modalities: readonly string[]; source(name: string): EmbeddingSource },
  options: ModalityGapOptions = {},
): Promise<number> {
  const where = 'modalityGap';
  const o = readOptions(options, { chunkRows: count(1), signal: SIGNAL }, where);
  const chunkRows = o.chunkRows ?? 8192;
  checkPool(embeddings, where, 'embeddings');
  const names = embeddings.modalities;
  if (names.length < 2) throw new PairpickError('E_SHAPE', `${where} needs at least 2 modalities, got ${names.length}`);
  const sources = names.map((n) => embeddings.source(n));
  const dim = sources[0].dim;
  sources.forEach((s, i) => {
    if (s.dim !== dim) throw new PairpickError('E_SHAPE', `${where}: modality '${names[i]}' has dimension ${s.dim}, '${names[0]}' has ${dim}; the gap needs one shared space`);
  });
  const block = Math.min(chunkRows, embeddings.rows);
  checkTensorSizes(where, [[`a block of rows (option 'chunkRows' ${chunkRows}, ${block} rows × dim ${dim})`, block * dim]]);
  const means: Float64Array[] = [];
  for (const s of sources) {
    const acc = new MeanAccumulator(dim);
    for await (const chunk of s.chunks(chunkRows, { signal: o.signal })) {
      acc.add(chunk.data, chunk.count);
      throwIfAborted(o.signal, where);
    }
    means.push(acc.mean());
  }
  return gapFromMeans(means);
}
