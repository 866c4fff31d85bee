// MMCSAL stage 2 (spec §3.1): per-sample density ρ (exact kNN over the multimodal distance, or
// against a seeded sample) and alignment a, then the incremental greedy objective
// score = w_ρ·ρ̂ + w_δ·δ/max δ + λ·â, run on the backend with δ kept next to the data.
import type { PairMetric } from '../backend/ops-select.js';
import { PairpickError } from '../errors.js';
import { Rng } from '../util/rng.js';
import { count, either, MAX_WEIGHT, number, oneOf } from '../util/validate.js';
import { addCenters, greedyPicks, minMaxOverCandidates, pairCost, pairsComputed, reduceAll, type Run } from './common.js';
import { defineStrategy, option } from './strategy.js';

export interface MmcsalParams {
  k: number;
  gamma: number;
  lambdaAlign: number;
  wDensity: number;
  wDiversity: number;
  densitySample?: number;
}

/** Per-pick terms of MMCSAL's score. */
export type MmcsalComponents = {
  /** ρ̂ of each pick (min–max normalised density; NaN when wDensity = 0: not computed). */
  density: Float32Array;
  /** δ̂ of each pick: δ / max_candidates δ at pick time (0 for a first pick with no labelled set). */
  diversity: Float32Array;
  /** â of each pick (min–max normalised alignment; 0 when alignment is off). */
  alignment: Float32Array;
  /** The score the pick won with. */
  score: Float32Array;
};

/** The raw terms behind the components. */
export interface MmcsalRaw {
  /** ρ = 1 / mean distance to the k nearest neighbours (NaN when not computed). */
  density: Float32Array;
  /** δ = distance to the nearest labelled or earlier pick (+Infinity for a first pick without labels). */
  diversity: Float32Array;
  /** a = mean cosine between the pick's own modality embeddings (NaN when undefined). */
  alignment: Float32Array;
}

/** Cost of one multiply-add of the greedy picks relative to one of the blocked density pass. */
const GREEDY_COST_FACTOR = 8;

export async function mmcsal(
  run: Run,
  budget: number,
  p: MmcsalParams,
): Promise<{ indices: Int32Array; components: MmcsalComponents; raw: MmcsalRaw }> {
  const metric: PairMetric = { form: 'multimodal', gamma: p.gamma };
  const N = run.rows;
  const mask = run.labeledMask;

  // Density ρ(i) = 1 / mean over the k nearest j ≠ i of d(i, j).
  let refs: Int32Array | undefined;
  if (p.densitySample !== undefined && p.densitySample < N) {
    refs = new Rng(run.seed).permutation(N).subarray(0, p.densitySample).sort();
  }
  const knn = { kind: 'knnMean', k: Math.min(p.k, Math.max(1, (refs ? refs.length : N) - 1)) } as const;
  // Progress: the density pass is O(N²) and the picks O(B·N), so their shares of the bar come
  // from the work they will do (a greedy multiply-add costs ~8 of the blocked density pass's:
  // measured on the CPU engine, 200k rows).
  const pairCostOf = pairCost(run, metric);
  run.plan({
    density: p.wDensity !== 0 ? pairsComputed(run, { start: 0, count: N }, refs, knn, N) * pairCostOf : 0,
    select: GREEDY_COST_FACTOR * (budget + run.labeled.length) * N * pairCostOf,
  });
  let rho: Float32Array | undefined;
  if (p.wDensity !== 0) {
    const means = await reduceAll(run, { start: 0, count: N }, refs, metric, knn, (d, t, f) => run.report('density', d, t, f));
    rho = new Float32Array(N);
    // A row whose k neighbours all coincide with it has mean 0: clamp to keep ρ finite.
    for (let i = 0; i < N; i++) rho[i] = Number.isFinite(means[i]) ? 1 / Math.max(means[i], 1e-12) : 0;
  }
  const rhoHat = rho ? minMaxOverCandidates(rho, mask) : new Float32Array(N);
  const alignHat = run.alignment && p.lambdaAlign !== 0 ? minMaxOverCandidates(run.alignment, mask) : new Float32Array(N);

  const base = new Float32Array(N);
  for (let i = 0; i < N; i++) base[i] = p.wDensity * rhoHat[i] + p.lambdaAlign * alignHat[i];

  await run.ctx.greedyInit({ metric, base, wDiversity: p.wDiversity, exclude: mask, mode: 'argmax' });
  if (run.labeled.length) await addCenters(run, run.labeled, metric);
  const { picks, diversity, diversityMax } = await greedyPicks(run, budget, metric);

  const n = picks.length;
  const components: MmcsalComponents = {
    density: new Float32Array(n),
    diversity: new Float32Array(n),
    alignment: new Float32Array(n),
    score: new Float32Array(n),
  };
  const raw: MmcsalRaw = { density: new Float32Array(n), diversity: Float32Array.from(diversity), alignment: new Float32Array(n) };
  for (let t = 0; t < n; t++) {
    const i = picks[t];
    const dmax = diversityMax[t];
    const dhat = Number.isFinite(dmax) && dmax > 0 ? diversity[t] / dmax : 0;
    components.density[t] = rho ? rhoHat[i] : NaN;
    components.diversity[t] = dhat;
    components.alignment[t] = alignHat[i];
    components.score[t] = base[i] + p.wDiversity * dhat;
    raw.density[t] = rho ? rho[i] : NaN;
    raw.alignment[t] = run.alignment ? run.alignment[i] : NaN;
  }
  return { indices: picks, components, raw };
}

/**
 * λ_align that 'auto' resolves to when every modality shares its dimension. The spec's starting
 * point was 0.5 with w_ρ = w_δ = 1 and k = 20; the calibration sweep on AV-Digits
 * (`node bench/mmcsal-sweep.mjs`, README "MMCSAL calibration") chose w_δ = 4, k = 10, λ = 0.25.
 */
export const AUTO_LAMBDA_ALIGN = 0.25;

const WEIGHT = number({ min: 0, max: MAX_WEIGHT });
const AUTO = oneOf(['auto'] as const);

export const mmcsalStrategy = defineStrategy({
  name: 'mmcsal',
  kind: 'cold',
  doc: 'MMCSAL: kNN density, diversity and cross-modal alignment of each sample, picked greedily',
  options: {
    /** Calibrated (see AUTO_LAMBDA_ALIGN); the spec's starting point was 20. Capped at the rows available. */
    k: option(count(1), { default: 10, value: 'K', doc: 'neighbours of the kNN density' }),
    gamma: option(either(AUTO, WEIGHT), {
      default: 'auto',
      value: 'auto|G',
      doc: 'weight γ ≥ 0 of the cross-modal distances (auto: 1 when every modality has the same dimension, else 0)',
    }),
    lambdaAlign: option(either(AUTO, WEIGHT), {
      default: 'auto',
      value: 'auto|L',
      doc: `weight λ ≥ 0 of the alignment term (auto: ${AUTO_LAMBDA_ALIGN} when every modality has the same dimension, else 0)`,
    }),
    wDensity: option(WEIGHT, { default: 1, value: 'W', doc: 'weight w_ρ ≥ 0 of the density term' }),
    /** Calibrated (see AUTO_LAMBDA_ALIGN); the spec's starting point was 1. */
    wDiversity: option(WEIGHT, { default: 4, value: 'W', doc: 'weight w_δ ≥ 0 of the diversity term' }),
    densitySample: option(count(2), {
      shownDefault: 'exact',
      value: 'N',
      doc: 'estimate the density against a seeded sample of N ≥ 2 rows instead of every row (faster on large pools)',
    }),
  },
  weights: { density: 6, select: 3 },
  parse(o, pool, where): MmcsalParams {
    const { dims, modalities } = pool;
    const sameDims = dims.length >= 2 && dims.every((d) => d === dims[0]);
    const shapes = () => modalities.map((m, i) => `${m} has ${dims[i]}`).join(', ');
    const gamma = o.gamma === 'auto' ? (sameDims ? 1 : 0) : o.gamma;
    const lambdaAlign = o.lambdaAlign === 'auto' ? (sameDims ? AUTO_LAMBDA_ALIGN : 0) : o.lambdaAlign;
    if (gamma > 0 && !sameDims && dims.length >= 2) {
      throw new PairpickError('E_SHAPE', `${where}: gamma = ${gamma} needs every modality in one dimension, but ${shapes()} (project them with stage 1 first, or use gamma 0)`);
    }
    if (lambdaAlign > 0 && !sameDims) {
      throw new PairpickError('E_SHAPE', `${where}: lambdaAlign = ${lambdaAlign} needs ≥ 2 modalities of one dimension, but ${shapes()}`);
    }
    return { k: o.k, gamma, lambdaAlign, wDensity: o.wDensity, wDiversity: o.wDiversity, densitySample: o.densitySample };
  },
  async run(run, budget, params) {
    return mmcsal(run, budget, params);
  },
});
