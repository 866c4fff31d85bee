// MMCSAL stage 2. Three switches (spec §3.1 and the calibrated modes of the README's method
// section): `distribution` — kNN density with the diversity greedy (spec §3.1), coverage of the
// pool (facility location), or one pick per k-means cluster; `space` — the multimodal distance d
// or the concatenated embedding u; `alignment` — a linear bonus λ·â, or a filter that never picks
// the q share of candidates with the lowest alignment a (mismatched pairs, most likely).
import type { PairMetric } from '../backend/ops-select.js';
import { PairpickError } from '../errors.js';
import { Rng } from '../util/rng.js';
import { count, either, MAX_WEIGHT, number, oneOf } from '../util/validate.js';
import { addCenters, EUCLIDEAN, greedyPicks, minMaxOverCandidates, pairCost, pairsComputed, reduceAll, type Run } from './common.js';
import { facility, FACILITY_MEMORY_MIB, groundSet } from './facility.js';
import { byDistance, cluster, pickPerCluster } from './kmeans.js';
import { defineStrategy, option } from './strategy.js';

export const MMCSAL_DISTRIBUTIONS = ['density', 'coverage', 'clusters'] as const;
export const MMCSAL_SPACES = ['multimodal', 'concat'] as const;
export const MMCSAL_ALIGNMENTS = ['linear', 'filter'] as const;
export type MmcsalDistribution = (typeof MMCSAL_DISTRIBUTIONS)[number];
export type MmcsalSpace = (typeof MMCSAL_SPACES)[number];
export type MmcsalAlignment = (typeof MMCSAL_ALIGNMENTS)[number];

export interface MmcsalParams {
  distribution: MmcsalDistribution;
  space: MmcsalSpace;
  alignment: MmcsalAlignment;
  /** Quantile q of the alignment filter. */
  alignQuantile: number;
  k: number;
  gamma: number;
  lambdaAlign: number;
  wDensity: number;
  wDiversity: number;
  densitySample?: number;
  /** Rows whose coverage counts (distribution coverage): a seeded sample of this many, or every row of a smaller pool. */
  coverageSample: number;
}

/**
 * The alignment filter: 1 for the ⌊q·n⌋ candidates of lowest alignment a(i) (ascending a, lowest
 * index first among equals; n = candidates), but never more than n − budget of them, so a budget
 * can always be met; and 1 for every labelled row. Undefined alignment (modalities of unequal
 * dimension) filters nothing.
 */
export function alignmentFilter(run: Pick<Run, 'rows' | 'labeledMask' | 'alignment'>, quantile: number, budget: number): Uint8Array {
  const out = Uint8Array.from(run.labeledMask);
  const a = run.alignment;
  if (!a || quantile <= 0) return out;
  const cands: number[] = [];
  for (let i = 0; i < run.rows; i++) if (!run.labeledMask[i]) cands.push(i);
  cands.sort((x, y) => a[x] - a[y] || x - y);
  const cut = Math.max(0, Math.min(Math.floor(quantile * cands.length), cands.length - budget));
  for (let t = 0; t < cut; t++) out[cands[t]] = 1;
  return out;
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
  const filtered = p.alignment === 'filter' ? alignmentFilter(run, p.alignQuantile, budget) : undefined;
  if (p.distribution === 'density') return densityGreedy(run, budget, p, filtered);
  let indices: Int32Array;
  if (p.distribution === 'coverage') {
    const ground = groundSet(run.rows, p.coverageSample, run.seed);
    // The first pass of gains (every candidate against the ground set) is most of the work.
    run.plan({ coverage: 2, select: 1 });
    indices = (await facility(run, budget, 'lazy', FACILITY_MEMORY_MIB, filtered, ground)).indices;
  } else {
    indices = await perCluster(run, budget, filtered);
  }
  return { indices, components: noComponents(run, indices), raw: noComponents(run, indices, true) };
}

/** k-means with |L| + B clusters on u; from each (largest first) its row nearest the centre that
 * the filter keeps (a cluster with none is passed over). */
async function perCluster(run: Run, budget: number, filtered: Uint8Array | undefined): Promise<Int32Array> {
  const clustering = await cluster(run, run.labeled.length + budget, run.seed);
  const nearest = byDistance(clustering.distances);
  return pickPerCluster(run, clustering, budget, async (c, members) => {
    const order = await nearest(c, members);
    return filtered ? order.filter((i) => !filtered[i]) : order;
  });
}

/** The MMCSAL of spec §3.1: density ρ̂, diversity δ̂ and the linear alignment bonus, greedily. */
async function densityGreedy(
  run: Run,
  budget: number,
  p: MmcsalParams,
  filtered: Uint8Array | undefined,
): Promise<{ indices: Int32Array; components: MmcsalComponents; raw: MmcsalRaw }> {
  const metric: PairMetric = p.space === 'concat' ? EUCLIDEAN : { form: 'multimodal', gamma: p.gamma };
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
  const linear = p.alignment === 'linear' && p.lambdaAlign !== 0;
  const alignHat = run.alignment && linear ? minMaxOverCandidates(run.alignment, mask) : new Float32Array(N);

  const base = new Float32Array(N);
  for (let i = 0; i < N; i++) base[i] = p.wDensity * rhoHat[i] + (linear ? p.lambdaAlign : 0) * alignHat[i];

  await run.ctx.greedyInit({ metric, base, wDiversity: p.wDiversity, exclude: filtered ?? mask, mode: 'argmax' });
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

/** Components of a coverage or clusters pick: no density, diversity or score terms (NaN); the
 * alignment (raw a, or â over the candidates) of each pick. */
function noComponents(run: Run, picks: Int32Array): MmcsalComponents;
function noComponents(run: Run, picks: Int32Array, raw: true): MmcsalRaw;
function noComponents(run: Run, picks: Int32Array, raw = false): MmcsalComponents | MmcsalRaw {
  const n = picks.length;
  const nan = () => new Float32Array(n).fill(NaN);
  const a = run.alignment ? (raw ? run.alignment : minMaxOverCandidates(run.alignment, run.labeledMask)) : undefined;
  const alignment = Float32Array.from(picks, (i) => (a ? a[i] : NaN));
  return raw ? { density: nan(), diversity: nan(), alignment } : { density: nan(), diversity: nan(), alignment, score: nan() };
}

/**
 * λ_align that 'auto' resolves to when every modality shares its dimension. The spec's starting
 * point was 0.5 with w_ρ = w_δ = 1 and k = 20; the calibration sweep on AV-Digits
 * (`node bench/mmcsal-sweep.mjs`, README "MMCSAL calibration") chose w_δ = 4, k = 10, λ = 0.25.
 */
export const AUTO_LAMBDA_ALIGN = 0.25;

/**
 * The default is coverage of the well-aligned candidates (facility location on the concatenated
 * embedding, alignment filter): the best setting of the stage-2 search (bench/mmcsal-search.mjs,
 * README "MMCSAL calibration") and 1–5 points above the kNN density greedy of spec §3.1 (kept as
 * `distribution: 'density', alignment: 'linear'`) on both datasets' test splits. Its objective sums
 * over a seeded ground sample of DEFAULT_COVERAGE_SAMPLE rows, so a pass of gains is O(N · 8192);
 * at 100,000 × 2 × 128, B = 1,000 it took less time than the density greedy in the same run
 * (bench/mmcsal-speed.mjs).
 */
export const DEFAULT_DISTRIBUTION: MmcsalDistribution = 'coverage';
export const DEFAULT_ALIGNMENT: MmcsalAlignment = 'filter';
export const DEFAULT_ALIGN_QUANTILE = 0.1;
/** Ground rows of the coverage objective: every row of the bundled datasets' pools (≤ 6,880);
 * O(N · 8192) time per pass of gains at large N. */
export const DEFAULT_COVERAGE_SAMPLE = 8192;

const WEIGHT = number({ min: 0, max: MAX_WEIGHT });
const AUTO = oneOf(['auto'] as const);

export const mmcsalStrategy = defineStrategy({
  name: 'mmcsal',
  kind: 'cold',
  doc: 'MMCSAL: coverage of the pool (facility location, over a seeded ground sample on large pools) by well-aligned pairs only; or, by option, the kNN density + diversity + alignment greedy on the multimodal distance, or one pick per k-means cluster',
  options: {
    distribution: option(oneOf(MMCSAL_DISTRIBUTIONS), {
      default: DEFAULT_DISTRIBUTION,
      value: MMCSAL_DISTRIBUTIONS.join('|'),
      doc: 'distribution term: kNN density with the diversity greedy (spec), coverage of the pool (facility location), or one pick per k-means cluster',
    }),
    space: option(either(AUTO, oneOf(MMCSAL_SPACES)), {
      default: 'auto',
      value: `auto|${MMCSAL_SPACES.join('|')}`,
      doc: 'distances: multimodal d (with γ) or the concatenated embedding u (auto: multimodal for density, concat otherwise; coverage and clusters need concat)',
    }),
    alignment: option(oneOf(MMCSAL_ALIGNMENTS), {
      default: DEFAULT_ALIGNMENT,
      value: MMCSAL_ALIGNMENTS.join('|'),
      doc: 'alignment term: a linear bonus λ·â (density only), or never pick the alignQuantile share of candidates with the lowest alignment (at most all but B)',
    }),
    alignQuantile: option(number({ min: 0, below: 1 }), {
      default: DEFAULT_ALIGN_QUANTILE,
      value: 'Q',
      doc: 'share q in [0, 1) of the candidates the alignment filter leaves out (lowest alignment first)',
    }),
    /** Calibrated (see AUTO_LAMBDA_ALIGN); the spec's starting point was 20. Capped at the rows available. */
    k: option(count(1), { default: 10, value: 'K', doc: 'neighbours of the kNN density (distribution density)' }),
    gamma: option(either(AUTO, WEIGHT), {
      default: 'auto',
      value: 'auto|G',
      doc: 'weight γ ≥ 0 of the cross-modal distances of space multimodal (auto: 1 when every modality has the same dimension, else 0)',
    }),
    lambdaAlign: option(either(AUTO, WEIGHT), {
      default: 'auto',
      value: 'auto|L',
      doc: `weight λ ≥ 0 of the linear alignment term, alignment linear (auto: ${AUTO_LAMBDA_ALIGN} when every modality has the same dimension, else 0)`,
    }),
    wDensity: option(WEIGHT, { default: 1, value: 'W', doc: 'weight w_ρ ≥ 0 of the density term (distribution density)' }),
    /** Calibrated (see AUTO_LAMBDA_ALIGN); the spec's starting point was 1. */
    wDiversity: option(WEIGHT, { default: 4, value: 'W', doc: 'weight w_δ ≥ 0 of the diversity term (distribution density)' }),
    coverageSample: option(count(1), {
      default: DEFAULT_COVERAGE_SAMPLE,
      value: 'N',
      doc: 'distribution coverage: sum the coverage over a seeded sample of N rows (every row of a pool of at most N); time O(rows · N)',
    }),
    densitySample: option(count(2), {
      shownDefault: 'exact',
      value: 'N',
      doc: 'estimate the density against a seeded sample of N ≥ 2 rows instead of every row (faster on large pools)',
    }),
  },
  weights: { density: 6, select: 3 },
  parse(o, pool, where): MmcsalParams {
    const { dims, modalities } = pool;
    const space: MmcsalSpace = o.space === 'auto' ? (o.distribution === 'density' ? 'multimodal' : 'concat') : o.space;
    if (space === 'multimodal' && o.distribution !== 'density') {
      throw new PairpickError('E_OPTION', `${where}: space 'multimodal' works with distribution 'density' only; distribution '${o.distribution}' runs on the concatenated embedding (space 'concat' or 'auto')`);
    }
    if (o.alignment === 'linear' && o.distribution !== 'density' && o.lambdaAlign !== 'auto' && o.lambdaAlign > 0) {
      throw new PairpickError('E_OPTION', `${where}: lambdaAlign (the linear alignment bonus) works with distribution 'density' only; use alignment 'filter' with distribution '${o.distribution}'`);
    }
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
    return {
      distribution: o.distribution,
      space,
      alignment: o.alignment,
      alignQuantile: o.alignQuantile,
      k: o.k,
      gamma,
      lambdaAlign,
      wDensity: o.wDensity,
      wDiversity: o.wDiversity,
      densitySample: o.densitySample,
      coverageSample: o.coverageSample,
    };
  },
  async run(run, budget, params) {
    return mmcsal(run, budget, params);
  },
});
