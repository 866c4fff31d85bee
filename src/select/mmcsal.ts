// MMCSAL stage 2. Three switches (spec §3.1 and the calibrated modes of the README's method
// section): `distribution` — kNN density with the diversity greedy (spec §3.1), coverage of the
// pool (facility location), or one pick per k-means cluster; `space` — the multimodal distance d,
// the concatenated embedding u, or u joined with the standardised input features stage 1 embedded
// (option `inputs`); `alignment` — a linear bonus λ·â, or a filter that never picks the q share of
// candidates with the lowest alignment a (mismatched pairs, most likely).
import type { PairMetric } from '../backend/ops-select.js';
import { PairpickError } from '../errors.js';
import type { EmbeddingSource } from '../io/types.js';
import { Rng } from '../util/rng.js';
import { count, either, MAX_WEIGHT, number, oneOf } from '../util/validate.js';
import { addCenters, EUCLIDEAN, greedyPicks, minMaxOverCandidates, openRun, pairCost, pairsComputed, reduceAll, type PoolLike, type Run } from './common.js';
import { facility, groundSet, MEMORY_BUDGET_OPTION } from './facility.js';
import { byDistance, cluster, pickPerCluster } from './kmeans.js';
import { defineStrategy, option } from './strategy.js';

export const MMCSAL_DISTRIBUTIONS = ['density', 'coverage', 'clusters'] as const;
/** Space 'embedding+inputs': u joined with the standardised input features (option `inputs`). */
export const EMBEDDING_AND_INPUTS = 'embedding+inputs';
export const MMCSAL_SPACES = ['multimodal', 'concat', EMBEDDING_AND_INPUTS] as const;
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
  /** MiB for cached similarities (distribution coverage; see facility's `memoryBudget`). */
  memoryBudget: number;
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

/**
 * `inputs` (the features stage 1 embedded, same rows) is read by space 'embedding+inputs' only:
 * coverage then runs on the joint space of `jointRun`, the alignment filter still on the embedding.
 */
export async function mmcsal(
  run: Run,
  budget: number,
  p: MmcsalParams,
  inputs?: PoolLike,
): Promise<{ indices: Int32Array; components: MmcsalComponents; raw: MmcsalRaw }> {
  const filtered = p.alignment === 'filter' ? alignmentFilter(run, p.alignQuantile, budget) : undefined;
  if (p.distribution === 'density') return densityGreedy(run, budget, p, filtered);
  let indices: Int32Array;
  if (p.distribution === 'coverage') {
    const ground = groundSet(run.rows, p.coverageSample, run.seed);
    if (p.space === EMBEDDING_AND_INPUTS) {
      if (!inputs) throw new PairpickError('E_OPTION', `select: space '${EMBEDDING_AND_INPUTS}' needs option 'inputs' (the features stage 1 embedded)`);
      const joint = await jointRun(run, inputs, ground?.length ?? run.rows);
      try {
        indices = (await facility(joint, budget, 'lazy', p.memoryBudget, filtered, ground)).indices;
      } finally {
        joint.ctx.close();
      }
    } else {
      // The first pass of gains (every candidate against the ground set) is most of the work.
      run.plan({ coverage: 2, select: 1 });
      indices = (await facility(run, budget, 'lazy', p.memoryBudget, filtered, ground)).indices;
    }
  } else {
    indices = await perCluster(run, budget, filtered);
  }
  return { indices, components: noComponents(run, indices), raw: noComponents(run, indices, true) };
}

/** Per column of an input modality: the mean and 1/std (population std; 0 for a column whose
 * values are all equal, which is then left at 0). */
interface ColumnScaling {
  mean: Float64Array;
  scale: Float64Array;
}

/**
 * Column means and standard deviations of every modality of `inputs`, in one streamed pass
 * (O(dim) memory: per block of rows a two-pass mean and sum of squared deviations in float64,
 * merged into the running ones by Chan's update). A column is constant exactly when its minimum
 * equals its maximum — decided on the values, not on a rounded variance. E_NAN names the input
 * modality, its source, the row and the column of a NaN or ±Inf.
 */
async function inputScalings(run: Run, inputs: PoolLike, report: (fraction: number) => void): Promise<ColumnScaling[]> {
  const sources = inputs.modalities.map((m) => inputs.source(m));
  const work = sources.reduce((s, src) => s + src.rows * src.dim, 0);
  let done = 0;
  const out: ColumnScaling[] = [];
  for (const [m, src] of sources.entries()) {
    const d = src.dim;
    const mean = new Float64Array(d);
    const m2 = new Float64Array(d);
    const lo = new Float64Array(d).fill(Infinity);
    const hi = new Float64Array(d).fill(-Infinity);
    const blockMean = new Float64Array(d);
    const blockM2 = new Float64Array(d);
    const step = Math.max(1, Math.floor((1 << 20) / d));
    let seen = 0;
    for (let start = 0; start < src.rows; start += step) {
      run.checkAbort();
      const count = Math.min(step, src.rows - start);
      const x = await src.read(start, count);
      blockMean.fill(0);
      blockM2.fill(0);
      for (let r = 0; r < count; r++) {
        for (let j = 0; j < d; j++) {
          const v = x[r * d + j];
          // v − v is NaN exactly when v is NaN or ±Inf.
          if (v - v !== 0) {
            throw new PairpickError('E_NAN', `select: option 'inputs': modality '${inputs.modalities[m]}' (${src.name}) has ${v} in row ${start + r} (column ${j})`);
          }
          blockMean[j] += v;
          if (v < lo[j]) lo[j] = v;
          if (v > hi[j]) hi[j] = v;
        }
      }
      for (let j = 0; j < d; j++) blockMean[j] /= count;
      for (let r = 0; r < count; r++) {
        for (let j = 0; j < d; j++) {
          const e = x[r * d + j] - blockMean[j];
          blockM2[j] += e * e;
        }
      }
      const n = seen + count;
      for (let j = 0; j < d; j++) {
        const delta = blockMean[j] - mean[j];
        mean[j] += (delta * count) / n;
        m2[j] += blockM2[j] + (delta * delta * seen * count) / n;
      }
      seen = n;
      done += count * d;
      report(work > 0 ? done / work : 1);
    }
    const scale = new Float64Array(d);
    for (let j = 0; j < d; j++) scale[j] = lo[j] < hi[j] && m2[j] > 0 ? 1 / Math.sqrt(m2[j] / seen) : 0;
    out.push({ mean, scale });
  }
  return out;
}

/** A source whose rows are `source`'s, standardised column by column as they are read. */
function standardisedSource(source: EmbeddingSource, { mean, scale }: ColumnScaling, name: string): EmbeddingSource {
  const d = source.dim;
  const apply = (x: Float32Array): Float32Array => {
    for (let o = 0; o < x.length; o += d) for (let j = 0; j < d; j++) x[o + j] = (x[o + j] - mean[j]) * scale[j];
    return x;
  };
  return {
    rows: source.rows,
    dim: d,
    dtype: 'float32',
    name,
    read: async (start, count) => apply(await source.read(start, count)),
    readRows: async (indices) => apply(await source.readRows(indices)),
    async *chunks(rowsPerChunk, options) {
      for await (const chunk of source.chunks(rowsPerChunk, options)) yield { ...chunk, data: apply(chunk.data) };
    },
    checkIntact: () => source.checkIntact?.(),
    close: () => undefined,
  };
}

/**
 * The run of space 'embedding+inputs', opened on the backend beside the embedding's: the
 * embedding's modalities z^1…z^M and the input modalities x^1…x^K standardised over the pool
 * ((x − mean)/std per column; see inputScalings), every block normalised per row by the backend as
 * any modality, so sim(i, j) = (1 + the mean of the M + K per-block cosines)/2. The inputs are
 * read twice, streamed (the statistics, then the backend's copy of the standardised rows: N ×
 * Σdim_x float32, as for any pool that is not memory-mapped). Progress and cancellation are the
 * embedding run's; the caller closes the context.
 */
async function jointRun(run: Run, inputs: PoolLike, groundRows: number): Promise<Run> {
  // Reading, standardising and normalising are O(N·Σdim); the first pass of gains O(N·|G|·Σdim).
  run.plan({ prepare: 4, coverage: 2 * groundRows, select: groundRows });
  const scalings = await inputScalings(run, inputs, (f) => run.report('prepare', 0, 1, 0.5 * f));
  // Distinct by construction: each pool's own names are distinct.
  const names = [...run.modalities.map((m) => `embedding:${m}`), ...inputs.modalities.map((m) => `inputs:${m}`)];
  const sources: EmbeddingSource[] = [
    ...run.modalities.map((m) => run.pool.source(m)),
    ...inputs.modalities.map((m, t) => standardisedSource(inputs.source(m), scalings[t], `option 'inputs': modality '${m}', standardised`)),
  ];
  const joint: PoolLike = { rows: run.rows, modalities: names, source: (name) => sources[names.indexOf(name)] };
  const opened = await openRun(joint, {
    backend: run.backend,
    labeled: run.labeled,
    seed: run.seed,
    signal: run.signal,
    onProgress: (p) => run.report('prepare', p.done, p.total, 0.5 + 0.5 * (p.total > 0 ? p.done / p.total : 1)),
    weights: {},
    where: 'select',
  });
  return { ...opened, report: run.report, plan: run.plan, checkAbort: run.checkAbort };
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
 * The default is coverage of the well-aligned candidates (facility location, alignment filter on
 * the embedding): the best setting of the stage-2 search (bench/mmcsal-search.mjs, README "MMCSAL
 * calibration") and 1–5 points above the kNN density greedy of spec §3.1 (kept as `distribution:
 * 'density', alignment: 'linear'`) on both datasets' test splits. Coverage runs on the embedding
 * joined with the input features stage 1 embedded when they are given (option `inputs`; space
 * 'auto' → 'embedding+inputs'): +0.3 to +3.6 points over the embedding alone on the validation
 * parts of both datasets, clean and with mismatched pairs (bench/mmcsal_proto.py); else on the
 * concatenated embedding. Its objective sums over a seeded ground sample of DEFAULT_COVERAGE_SAMPLE
 * rows, so a pass of gains is O(N · 8192 · Σdim); at 100,000 × 2 × 128, B = 1,000 (embedding
 * only) it took less time than the density greedy in the same run (bench/mmcsal-speed.mjs).
 */
export const DEFAULT_DISTRIBUTION: MmcsalDistribution = 'coverage';
export const DEFAULT_ALIGNMENT: MmcsalAlignment = 'filter';
export const DEFAULT_ALIGN_QUANTILE = 0.1;
/**
 * Whether mmcsal options (as given) resolve to space 'embedding+inputs' once `inputs` is given:
 * space 'embedding+inputs', or 'auto' (the default) with distribution coverage (the default). The
 * pipelines that hold the input features (coldStartExperiment, evaluate) pass them exactly then.
 */
export function readsInputs(options: { distribution?: unknown; space?: unknown }): boolean {
  const space = options.space ?? 'auto';
  return space === EMBEDDING_AND_INPUTS || (space === 'auto' && (options.distribution ?? DEFAULT_DISTRIBUTION) === 'coverage');
}

/** Ground rows of the coverage objective: every row of the bundled datasets' pools (≤ 6,880);
 * O(N · 8192) time per pass of gains at large N. */
export const DEFAULT_COVERAGE_SAMPLE = 8192;

const WEIGHT = number({ min: 0, max: MAX_WEIGHT });
const AUTO = oneOf(['auto'] as const);

export const mmcsalStrategy = defineStrategy({
  name: 'mmcsal',
  kind: 'cold',
  doc: "MMCSAL: coverage of the pool (facility location, over a seeded ground sample on large pools) by well-aligned pairs only, on the embedding joined with the input features when they are given ('inputs'); or, by option, the kNN density + diversity + alignment greedy on the multimodal distance, or one pick per k-means cluster",
  options: {
    distribution: option(oneOf(MMCSAL_DISTRIBUTIONS), {
      default: DEFAULT_DISTRIBUTION,
      value: MMCSAL_DISTRIBUTIONS.join('|'),
      doc: 'distribution term: kNN density with the diversity greedy (spec), coverage of the pool (facility location), or one pick per k-means cluster',
    }),
    space: option(either(AUTO, oneOf(MMCSAL_SPACES)), {
      default: 'auto',
      value: `auto|${MMCSAL_SPACES.join('|')}`,
      doc: `distances: multimodal d (with γ), the concatenated embedding u, or u joined with the standardised input features ('inputs', --input) (${EMBEDDING_AND_INPUTS}: coverage only; every embedding and input block weighs the same in the cosine) (auto: multimodal for density; ${EMBEDDING_AND_INPUTS} for coverage when 'inputs' is given; else concat)`,
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
    memoryBudget: MEMORY_BUDGET_OPTION,
    densitySample: option(count(2), {
      shownDefault: 'exact',
      value: 'N',
      doc: 'estimate the density against a seeded sample of N ≥ 2 rows instead of every row (faster on large pools)',
    }),
  },
  pools: {
    inputs: {
      doc: "the features stage 1 embedded, one row per pool row (any modalities and dimensions): coverage then runs on the embedding joined with them, standardised per column (space 'embedding+inputs')",
    },
  },
  weights: { density: 6, select: 3 },
  parse(o, pool, where, pools): MmcsalParams {
    const { dims, modalities } = pool;
    const hasInputs = pools.inputs !== undefined;
    const space: MmcsalSpace =
      o.space !== 'auto' ? o.space : o.distribution === 'density' ? 'multimodal' : o.distribution === 'coverage' && hasInputs ? EMBEDDING_AND_INPUTS : 'concat';
    if (space === EMBEDDING_AND_INPUTS && o.distribution !== 'coverage') {
      throw new PairpickError('E_OPTION', `${where}: space '${EMBEDDING_AND_INPUTS}' works with distribution 'coverage' only (distribution is '${o.distribution}')`);
    }
    if (space === EMBEDDING_AND_INPUTS && !hasInputs) {
      throw new PairpickError('E_OPTION', `${where}: space '${EMBEDDING_AND_INPUTS}' needs option 'inputs' (a pool of the features stage 1 embedded, one row per pool row)`);
    }
    if (hasInputs && space !== EMBEDDING_AND_INPUTS) {
      throw new PairpickError(
        'E_OPTION',
        `${where}: option 'inputs' is read by space '${EMBEDDING_AND_INPUTS}' with distribution 'coverage' only; with distribution '${o.distribution}' and space '${o.space}' it would be ignored (leave it out)`,
      );
    }
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
      memoryBudget: o.memoryBudget,
    };
  },
  async run(run, budget, params, _inputs, pools) {
    return mmcsal(run, budget, params, pools.inputs);
  },
});
