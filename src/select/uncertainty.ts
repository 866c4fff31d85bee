// Uncertainty sampling (spec §5.1) on a trained classifier's fused softmax p_i: entropy, margin
// and least confidence. One forward pass over the pool in chunks, a score per row, and the B
// unlabelled rows with the highest scores (lowest index on ties). Scores are computed in float64
// from the float32 logits; larger = more uncertain:
//   entropy          −Σ_c p_c log p_c
//   margin           1 − (p_(1) − p_(2))      (the two largest probabilities)
//   leastConfidence  1 − p_(1)
import { PairpickError } from '../errors.js';
import type { Pool } from '../io/pool.js';
import { inChunks, type RunBase } from './common.js';
import { defineStrategy, type ModelNeed } from './strategy.js';

export type UncertaintyMeasure = 'entropy' | 'margin' | 'leastConfidence';

/** Rows per forward call to start with (the chunk then adapts to ~80 ms a call). */
export const FORWARD_CHUNK_ROWS = 2048;

/** Both downstream models: the uncertainty strategies read only the fused logits. */
export const ANY_MODEL: ModelNeed = { forms: ['late-fusion', 'mla'] };

/** The uncertainty of one row's logits (float64; see the file header). */
export function uncertaintyOf(logits: Float32Array, offset: number, classes: number, measure: UncertaintyMeasure): number {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, logits[offset + c]);
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(logits[offset + c] - max);
  if (measure === 'entropy') {
    // H = log Σ e^(l−max) − Σ p (l − max), with p = e^(l−max) / Σ.
    let weighted = 0;
    for (let c = 0; c < classes; c++) {
      const d = logits[offset + c] - max;
      weighted += Math.exp(d) * d;
    }
    return Math.log(sum) - weighted / sum;
  }
  let first = -Infinity;
  let second = -Infinity;
  for (let c = 0; c < classes; c++) {
    const p = Math.exp(logits[offset + c] - max) / sum;
    if (p > first) {
      second = first;
      first = p;
    } else if (p > second) second = p;
  }
  return measure === 'margin' ? 1 - (first - (classes > 1 ? second : 0)) : 1 - first;
}

/** One forward pass over every row in chunks; `each(start, result)` gets each chunk. NaN/±Inf logits are E_NAN. */
export async function forwardAll(
  run: RunBase,
  each: (start: number, r: Awaited<ReturnType<NonNullable<RunBase['model']>['forward']>>) => Promise<void> | void,
): Promise<void> {
  const model = run.model!;
  const pool = run.pool as unknown as Pool;
  await inChunks(
    run,
    run.rows,
    FORWARD_CHUNK_ROWS,
    async (start, count) => {
      const r = await model.forward(pool, { start, count }, { signal: run.signal });
      if (r.rows !== count || r.classes !== model.classes || r.logits.length !== count * model.classes) {
        throw new PairpickError('E_SHAPE', `select: option 'model' returned ${r.rows} rows × ${r.classes} classes for rows ${start}…${start + count - 1} (expected ${count} × ${model.classes})`);
      }
      await each(start, r);
    },
    (done) => run.report('prepare', done, run.rows),
  );
}

/** The B candidates with the largest scores, in descending order of score (lowest index on ties). */
export function topScores(scores: Float64Array, exclude: Uint8Array, budget: number): Int32Array {
  const rows: number[] = [];
  for (let i = 0; i < scores.length; i++) if (!exclude[i]) rows.push(i);
  rows.sort((a, b) => scores[b] - scores[a] || a - b);
  return Int32Array.from(rows.slice(0, budget));
}

export async function uncertaintyPicks(run: RunBase, budget: number, measure: UncertaintyMeasure): Promise<{ indices: Int32Array; uncertainty: Float32Array }> {
  const C = run.model!.classes;
  const scores = new Float64Array(run.rows);
  await forwardAll(run, (start, r) => {
    for (let i = 0; i < r.rows; i++) {
      const u = uncertaintyOf(r.logits, i * C, C, measure);
      if (!Number.isFinite(u)) throw new PairpickError('E_NAN', `select: the classifier's logits for row ${start + i} are not finite (NaN or ±Inf)`);
      scores[start + i] = u;
    }
  });
  run.checkAbort();
  const indices = topScores(scores, run.labeledMask, budget);
  run.report('select', budget, budget);
  return { indices, uncertainty: Float32Array.from(indices, (i) => scores[i]) };
}

function uncertaintyStrategy<N extends string>(name: N, measure: UncertaintyMeasure, doc: string) {
  return defineStrategy({
    name,
    kind: 'warm',
    doc,
    options: {},
    model: ANY_MODEL,
    weights: { select: 0.05 },
    readsPool: false,
    async run(run, budget) {
      const r = await uncertaintyPicks(run, budget, measure);
      return { indices: r.indices, components: { uncertainty: r.uncertainty } };
    },
  });
}

export const entropyStrategy = uncertaintyStrategy('entropy', 'entropy', 'the rows whose fused class probabilities have the highest entropy');
export const marginStrategy = uncertaintyStrategy('margin', 'margin', 'the rows with the smallest gap between their two most probable classes');
export const leastConfidenceStrategy = uncertaintyStrategy('leastConfidence', 'leastConfidence', 'the rows whose most probable class has the lowest probability');
