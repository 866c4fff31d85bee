// The NaN/Inf scan of a training pool, with errors that name the modality as well as the file/row.
import { PairpickError } from '../errors.js';
import { checkFinite } from '../io/source.js';
import type { PoolLike } from './model.js';

/** Scans every modality of the pool; `E_NAN` names the modality, the source, the row and column. */
export async function checkPoolFinite(pool: PoolLike, opts: { signal?: AbortSignal; onProgress?: (fraction: number) => void } = {}): Promise<void> {
  const total = pool.rows * pool.modalities.length;
  let before = 0;
  for (const name of pool.modalities) {
    const source = pool.source(name);
    try {
      // ~8 MB per step: mapped shards are scanned in place anyway; file reads stay small.
      const rowsPerChunk = Math.max(1, Math.floor((1 << 21) / source.dim));
      await checkFinite(source, { rowsPerChunk, signal: opts.signal, onProgress: (done) => opts.onProgress?.(total ? (before + done) / total : 1) });
    } catch (e) {
      if (e instanceof PairpickError && e.code === 'E_NAN') throw new PairpickError('E_NAN', `modality '${name}': ${e.message}`, { cause: e });
      throw e;
    }
    before += source.rows;
  }
}
