// ProbCover (spec §3.5): balls of radius δ in u space (Euclidean, edge i→j iff ‖u_i − u_j‖ < δ);
// greedily pick the sample whose ball covers the most not-yet-covered samples, then random picks
// once everything is covered. No graph is stored: coverage counts are blocked pairwise reductions,
// updated after each pick by a reduction against the newly covered rows.
import { Rng } from '../util/rng.js';
import { count, number } from '../util/validate.js';
import { argmaxUnmasked, EUCLIDEAN, reduceAll, type Run } from './common.js';
import { cluster } from './kmeans.js';
import { defineStrategy, option } from './strategy.js';

/** Purity the automatic radius must reach (spec §3.5). */
export const PURITY_TARGET = 0.95;
/** Step of the automatic radius grid (our choice): δ ∈ {0.01, 0.02, …}. */
export const RADIUS_GRID_STEP = 0.01;

/**
 * Pseudo-classes of the automatic radius when the number of classes is not given. K = budget made
 * δ shrink as the budget grew (below random at B = 100); K = 2 — the coarsest split of the pool, a
 * radius that does not depend on the budget, scikit-activeml's default too — was best of K ∈ {2, 5,
 * 10, 20, 50, budget} on the validation parts of AV-Digits and Clipart-IT, clean and with 20 %
 * mismatched pairs (bench/mmcsal-search.mjs --grid probcover: 46.0 vs 41.1 for K = budget).
 */
export const DEFAULT_PROBCOVER_CLASSES = 2;

/**
 * Largest δ on the grid for which ≥ 95% of the balls are pure w.r.t. k-means pseudo-labels
 * (K = `classes` when the number of classes is known, as ProbCover's authors set it; else
 * DEFAULT_PROBCOVER_CLASSES). Ball i is pure iff its nearest row with another label is at distance ≥ δ, so the
 * answer follows from those distances r_i: the largest grid δ ≤ the ⌊0.05·N⌋-th smallest r_i.
 * The smallest grid value when none qualifies; the largest (2√M) when every row has one label.
 */
export async function automaticRadius(run: Run, classes: number): Promise<{ radius: number; purity: number }> {
  const { labels } = await cluster(run, Math.min(classes, run.rows), run.seed, 'radius');
  const other = await reduceAll(run, { start: 0, count: run.rows }, undefined, EUCLIDEAN, { kind: 'minOtherLabel', labels }, (d, t) =>
    run.report('radius', d, t),
  );
  const sorted = Float64Array.from(other).sort();
  const maxGrid = Math.floor((2 * Math.sqrt(run.dims.length)) / RADIUS_GRID_STEP);
  const limit = sorted[Math.floor((1 - PURITY_TARGET) * run.rows)];
  let g = Number.isFinite(limit) ? Math.min(maxGrid, Math.floor(limit / RADIUS_GRID_STEP + 1e-9)) : maxGrid;
  while (g > 1 && g * RADIUS_GRID_STEP > limit) g--;
  g = Math.max(1, g);
  const radius = g * RADIUS_GRID_STEP;
  let pure = 0;
  for (const r of other) if (r >= radius) pure++;
  return { radius, purity: pure / run.rows };
}

export async function probcover(
  run: Run,
  budget: number,
  radiusOption: number | undefined,
  classes: number = DEFAULT_PROBCOVER_CLASSES,
): Promise<{ indices: Int32Array; radius: number; purity?: number }> {
  const N = run.rows;
  let radius = radiusOption;
  let purity: number | undefined;
  if (radius === undefined) ({ radius, purity } = await automaticRadius(run, classes));

  // Covered: every row within δ of a labelled row (the labelled rows themselves included).
  const covered = new Uint8Array(N);
  if (run.labeled.length) {
    const near = await reduceAll(run, { start: 0, count: N }, run.labeled, EUCLIDEAN, { kind: 'countWithin', radius });
    for (let i = 0; i < N; i++) if (near[i] > 0) covered[i] = 1;
  }
  const uncovered = new Uint8Array(N);
  for (let i = 0; i < N; i++) uncovered[i] = covered[i] ? 0 : 1;
  const counts = await reduceAll(run, { start: 0, count: N }, undefined, EUCLIDEAN, { kind: 'countWithin', radius, refMask: uncovered }, (d, t) =>
    run.report('coverage', d, t),
  );

  const taken = Uint8Array.from(run.labeledMask);
  const out = new Int32Array(budget);
  let n = 0;
  while (n < budget) {
    run.checkAbort();
    const best = argmaxUnmasked(counts, taken);
    if (best < 0 || counts[best] <= 0) break;
    out[n++] = best;
    taken[best] = 1;
    const dist = await run.ctx.distancesFrom(best, EUCLIDEAN);
    const fresh: number[] = [];
    for (let j = 0; j < N; j++) {
      if (!covered[j] && (j === best || dist[j] < radius)) {
        covered[j] = 1;
        fresh.push(j);
      }
    }
    if (fresh.length) {
      const lost = await reduceAll(run, { start: 0, count: N }, Int32Array.from(fresh), EUCLIDEAN, { kind: 'countWithin', radius });
      for (let i = 0; i < N; i++) counts[i] -= lost[i];
    }
    run.report('select', n, budget);
  }
  if (n < budget) {
    // Everything is covered: seeded random picks among the remaining candidates.
    const rest: number[] = [];
    for (let i = 0; i < N; i++) if (!taken[i]) rest.push(i);
    const rng = new Rng(run.seed);
    for (let t = 0; n < budget; t++) {
      const j = t + rng.int(rest.length - t);
      [rest[t], rest[j]] = [rest[j], rest[t]];
      out[n++] = rest[t];
    }
    run.report('select', n, budget);
  }
  return { indices: out, radius, purity };
}

export const probcoverStrategy = defineStrategy({
  name: 'probcover',
  kind: 'cold',
  doc: 'ProbCover: repeatedly the row whose ball of radius δ covers the most uncovered rows, then random rows once all are covered',
  options: {
    radius: option(number({ above: 0 }), {
      shownDefault: 'auto',
      value: 'R',
      doc: `ball radius δ > 0 (auto: chosen for ball purity ≥ ${PURITY_TARGET} w.r.t. k-means pseudo-labels)`,
    }),
    classes: option(count(1), {
      default: DEFAULT_PROBCOVER_CLASSES,
      value: 'K',
      doc: 'number of classes, when known: the k-means pseudo-labels of the automatic radius use K clusters (unknown: the coarsest split, 2, a radius independent of the budget)',
    }),
  },
  weights: { radius: 6, coverage: 4, select: 4 },
  async run(run, budget, params) {
    const out = await probcover(run, budget, params.radius, params.classes);
    return { indices: out.indices, params: out.purity === undefined ? { radius: out.radius } : { radius: out.radius, purity: out.purity } };
  },
});
