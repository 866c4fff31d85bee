// `select()`: which rows of a pool to label. Validates the options, opens the pool on a backend,
// runs one strategy driver (src/select/<strategy>.ts) and times it.
import { getBackend, type Backend, type BackendChoice } from '../backend/index.js';
import type { BackendName } from '../backend/types.js';
import { checkOptions, PairpickError, throwIfAborted } from '../errors.js';
import { openPool, type PoolInput } from '../io/pool.js';
import { openRun, type PhaseWeights, type PoolLike, type Run, type SelectProgress } from './common.js';
import { facility, type FacilityOptimizer } from './facility.js';
import { kcenter } from './kcenter.js';
import { kmeans } from './kmeans.js';
import { mmcsal, type MmcsalComponents, type MmcsalRaw } from './mmcsal.js';
import { probcover } from './probcover.js';
import { randomPicks } from './random.js';
import { typiclust } from './typiclust.js';

export type { PoolLike, SelectProgress } from './common.js';
export type { MmcsalComponents, MmcsalRaw } from './mmcsal.js';

/** The selection strategies (spec §3). */
export const STRATEGIES = ['mmcsal', 'kcenter', 'kmeans', 'typiclust', 'probcover', 'facility', 'random'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/**
 * λ_align that 'auto' resolves to when every modality shares its dimension. The spec's starting
 * point was 0.5 with w_ρ = w_δ = 1 and k = 20; the calibration sweep on AV-Digits
 * (`node bench/mmcsal-sweep.mjs`, README "MMCSAL calibration") chose w_δ = 4, k = 10, λ = 0.25.
 */
export const AUTO_LAMBDA_ALIGN = 0.25;

/** Defaults of every option (spec/methods.md §3; MMCSAL's weights calibrated, see AUTO_LAMBDA_ALIGN). */
export const SELECT_DEFAULTS = {
  strategy: 'mmcsal' as Strategy,
  seed: 0,
  /** MMCSAL: neighbours of the density estimate (calibrated; the spec's starting point was 20). */
  k: 10,
  /** MMCSAL: weight of the cross-modal distances; 'auto' = 1 when all modalities share their dimension, else 0. */
  gamma: 'auto' as number | 'auto',
  /** MMCSAL: weight of the alignment term; 'auto' = AUTO_LAMBDA_ALIGN (0.25) when all modalities share their dimension, else 0. */
  lambdaAlign: 'auto' as number | 'auto',
  /** MMCSAL: weight of the density term w_ρ. */
  wDensity: 1,
  /** MMCSAL: weight of the diversity term w_δ (calibrated; the spec's starting point was 1). */
  wDiversity: 4,
  /** Facility location optimiser. */
  optimizer: 'lazy' as FacilityOptimizer,
};

export interface SelectOptions {
  /** Strategy (default 'mmcsal'). */
  strategy?: Strategy;
  /** Number of rows to pick (1 … rows − |labeled|). */
  budget: number;
  /** Already-labelled rows: never picked, and count as covered/selected. Default none. */
  labeled?: ArrayLike<number>;
  /** Seed of every random choice (k-means++, random picks, density sample, stochastic greedy). Default 0. */
  seed?: number;
  /** Backend: 'js' | 'cpu' | 'cuda' | 'auto' or a Backend (default: PAIRPICK_BACKEND, else cuda → cpu → js). */
  backend?: BackendChoice;
  /** Cancels the selection (rejects with E_ABORTED). */
  signal?: AbortSignal;
  /** Called as the selection progresses. */
  onProgress?: (progress: SelectProgress) => void;
  /** MMCSAL: k of the kNN density (default 10, calibrated; capped at the rows available). */
  k?: number;
  /** MMCSAL: γ of d(i,j) = d_uni + γ·d_cross (default 'auto'). */
  gamma?: number | 'auto';
  /** MMCSAL: λ_align (default 'auto' = 0.25 for equal dimensions, else 0). */
  lambdaAlign?: number | 'auto';
  /** MMCSAL: w_ρ (default 1). */
  wDensity?: number;
  /** MMCSAL: w_δ (default 4, calibrated). */
  wDiversity?: number;
  /** MMCSAL: estimate the density against a seeded sample of this many rows (default: exact, every row). */
  densitySample?: number;
  /** ProbCover: ball radius δ in u space (default: automatic, purity ≥ 0.95 w.r.t. k-means pseudo-labels). */
  radius?: number;
  /** Facility location: 'lazy' (exact lazy greedy, default) or 'stochastic'. */
  optimizer?: FacilityOptimizer;
}

export interface Selection {
  /** Picked rows, in pick order. */
  indices: Int32Array;
  strategy: Strategy;
  /** Backend that ran it. */
  backend: BackendName;
  /** Wall time of the whole selection (opening and preparing the pool included). */
  seconds: number;
  /** MMCSAL: the normalised terms of each pick's score (ρ̂, δ̂, â) and the score. k-center:
   * `diversity` = each pick's distance to the nearest earlier pick or labelled row. */
  components?: Partial<MmcsalComponents>;
  /** MMCSAL: the raw terms (ρ, δ, a) of each pick. */
  raw?: MmcsalRaw;
  /** The resolved strategy parameters (after 'auto' and defaults), e.g. { gamma: 1, lambdaAlign: 0.25 }. */
  params: Record<string, number | string | undefined>;
}

const COMMON = ['strategy', 'budget', 'labeled', 'seed', 'backend', 'signal', 'onProgress'] as const;
const OWN: Record<Strategy, readonly string[]> = {
  mmcsal: ['k', 'gamma', 'lambdaAlign', 'wDensity', 'wDiversity', 'densitySample'],
  kcenter: [],
  kmeans: [],
  typiclust: [],
  probcover: ['radius'],
  facility: ['optimizer'],
  random: [],
};

const WEIGHTS: Record<Strategy, PhaseWeights> = {
  mmcsal: { density: 6, select: 3 },
  kcenter: { select: 6 },
  kmeans: { kmeans: 8, select: 1 },
  typiclust: { kmeans: 8, select: 3 },
  probcover: { radius: 6, coverage: 4, select: 4 },
  facility: { coverage: 4, select: 6 },
  random: { select: 1 },
};

function optionError(message: string): PairpickError {
  return new PairpickError('E_OPTION', `select: ${message}`);
}

function numberOption(value: unknown, name: string, check: (n: number) => boolean, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !check(value)) {
    throw optionError(`option '${name}' must be ${what} (got ${typeof value === 'number' ? value : JSON.stringify(value)})`);
  }
  return value;
}

/** Validates `labeled` against the pool size: integers in [0, rows), no duplicates. Returns them sorted. */
export function validateLabeled(labeled: ArrayLike<number> | undefined, rows: number): Int32Array {
  if (labeled === undefined || labeled === null) return new Int32Array(0);
  if (typeof labeled !== 'object' || typeof (labeled as ArrayLike<number>).length !== 'number') {
    throw optionError(`option 'labeled' must be an array of row indices`);
  }
  const seen = new Uint8Array(rows);
  const out = new Int32Array(labeled.length);
  for (let p = 0; p < labeled.length; p++) {
    const i = labeled[p];
    if (typeof i !== 'number' || !Number.isInteger(i)) throw optionError(`labeled[${p}] = ${String(i)} is not an integer row index`);
    if (i < 0) throw optionError(`labeled[${p}] = ${i} is negative`);
    if (i >= rows) throw optionError(`labeled[${p}] = ${i} is out of range (the pool has ${rows} rows)`);
    if (seen[i]) throw optionError(`labeled index ${i} appears twice (again at labeled[${p}])`);
    seen[i] = 1;
    out[p] = i;
  }
  return out.sort();
}

function isPoolLike(x: unknown): x is PoolLike {
  return !!x && typeof x === 'object' && typeof (x as PoolLike).source === 'function' && Array.isArray((x as PoolLike).modalities);
}

/**
 * Picks `budget` rows of a pool to label with one of the cold-start strategies of spec §3
 * (MMCSAL by default). `pool` is an open Pool (or anything with `rows`, `modalities` and
 * `source(name)`), or what `openPool` accepts (then opened and closed here).
 */
export async function select(pool: PoolLike | PoolInput, options: SelectOptions): Promise<Selection> {
  const started = performance.now();
  if (!options || typeof options !== 'object') throw optionError('options with at least { budget } are required');
  const strategy = options.strategy ?? SELECT_DEFAULTS.strategy;
  if (!STRATEGIES.includes(strategy)) throw optionError(`unknown strategy '${String(strategy)}' (choose one of: ${STRATEGIES.join(', ')})`);
  for (const key of Object.keys(options)) {
    if ((COMMON as readonly string[]).includes(key) || OWN[strategy].includes(key)) continue;
    const owner = STRATEGIES.find((s) => OWN[s].includes(key));
    if (owner) throw optionError(`option '${key}' does not apply to strategy '${strategy}' (it is a ${owner} option)`);
    checkOptions({ [key]: 1 }, [...COMMON, ...OWN[strategy]], `select (strategy '${strategy}')`);
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw optionError(`option 'onProgress' must be a function`);
  const seed = options.seed === undefined ? SELECT_DEFAULTS.seed : numberOption(options.seed, 'seed', Number.isInteger, 'an integer');
  const backend = getBackend(options.backend);
  throwIfAborted(options.signal, 'select');

  const owned = !isPoolLike(pool);
  const opened: PoolLike = owned ? await openPool(pool as PoolInput, { signal: options.signal }) : (pool as PoolLike);
  try {
    return await run(opened, options, strategy, seed, backend, started);
  } finally {
    if (owned) await (opened as unknown as { close(): Promise<void> }).close();
  }
}

async function run(pool: PoolLike, options: SelectOptions, strategy: Strategy, seed: number, backend: Backend, started: number): Promise<Selection> {
  const backendName = backend.name;
  const rows = pool.rows;
  const labeled = validateLabeled(options.labeled, rows);
  const budget = options.budget;
  if (typeof budget !== 'number' || !Number.isInteger(budget)) {
    throw new PairpickError('E_BUDGET', `select: budget must be an integer (got ${typeof budget === 'number' ? budget : JSON.stringify(budget)})`);
  }
  const selectable = rows - labeled.length;
  if (budget <= 0) throw new PairpickError('E_BUDGET', `select: budget must be ≥ 1 (got ${budget})`);
  if (budget > selectable) {
    throw new PairpickError('E_BUDGET', `select: budget ${budget} exceeds the ${selectable} selectable rows (${rows} rows, ${labeled.length} labelled)`);
  }
  const dims = pool.modalities.map((m) => pool.source(m).dim);
  const sameDims = dims.length >= 2 && dims.every((d) => d === dims[0]);
  const params: Record<string, number | string | undefined> = { budget, seed };

  // Strategy parameters, validated before any data is read.
  let mm: Parameters<typeof mmcsal>[2] | undefined;
  if (strategy === 'mmcsal') {
    const k = options.k === undefined ? SELECT_DEFAULTS.k : numberOption(options.k, 'k', (n) => Number.isInteger(n) && n >= 1, 'an integer ≥ 1');
    const gammaOpt = options.gamma ?? SELECT_DEFAULTS.gamma;
    const lambdaOpt = options.lambdaAlign ?? SELECT_DEFAULTS.lambdaAlign;
    const gamma = gammaOpt === 'auto' ? (sameDims ? 1 : 0) : numberOption(gammaOpt, 'gamma', (n) => n >= 0, "'auto' or a number ≥ 0");
    const lambdaAlign = lambdaOpt === 'auto' ? (sameDims ? AUTO_LAMBDA_ALIGN : 0) : numberOption(lambdaOpt, 'lambdaAlign', (n) => n >= 0, "'auto' or a number ≥ 0");
    if (gamma > 0 && !sameDims && dims.length >= 2) {
      throw new PairpickError('E_SHAPE', `select: gamma = ${gamma} needs every modality in one dimension, but ${pool.modalities.map((m, i) => `${m} has ${dims[i]}`).join(', ')} (project them with stage 1 first, or use gamma 0)`);
    }
    if (lambdaAlign > 0 && !sameDims) {
      throw new PairpickError('E_SHAPE', `select: lambdaAlign = ${lambdaAlign} needs ≥ 2 modalities of one dimension, but ${pool.modalities.map((m, i) => `${m} has ${dims[i]}`).join(', ')}`);
    }
    const wDensity = options.wDensity === undefined ? SELECT_DEFAULTS.wDensity : numberOption(options.wDensity, 'wDensity', (n) => n >= 0, 'a number ≥ 0');
    const wDiversity = options.wDiversity === undefined ? SELECT_DEFAULTS.wDiversity : numberOption(options.wDiversity, 'wDiversity', (n) => n >= 0, 'a number ≥ 0');
    const densitySample =
      options.densitySample === undefined ? undefined : numberOption(options.densitySample, 'densitySample', (n) => Number.isInteger(n) && n >= 2, 'an integer ≥ 2');
    mm = { k, gamma, lambdaAlign, wDensity, wDiversity, densitySample };
    Object.assign(params, mm);
  }
  let radius: number | undefined;
  if (strategy === 'probcover' && options.radius !== undefined) {
    radius = numberOption(options.radius, 'radius', (n) => n > 0, 'a number > 0');
  }
  let optimizer: FacilityOptimizer = SELECT_DEFAULTS.optimizer;
  if (strategy === 'facility' && options.optimizer !== undefined) {
    if (options.optimizer !== 'lazy' && options.optimizer !== 'stochastic') {
      throw optionError(`option 'optimizer' must be 'lazy' or 'stochastic' (got ${JSON.stringify(options.optimizer)})`);
    }
    optimizer = options.optimizer;
  }
  if (strategy === 'facility') params.optimizer = optimizer;

  let checkSources = () => {};
  const finish = (indices: Int32Array, extra: Partial<Selection> = {}): Selection => {
    checkSources(); // picks made from a file that changed under the run are garbage: E_IO instead
    return { indices, strategy, backend: backendName, seconds: (performance.now() - started) / 1000, params, ...extra };
  };

  if (strategy === 'random') {
    throwIfAborted(options.signal, 'select');
    const mask = new Uint8Array(rows);
    for (const i of labeled) mask[i] = 1;
    const indices = randomPicks({ rows, labeled, labeledMask: mask, seed }, budget);
    options.onProgress?.({ phase: 'select', done: budget, total: budget, fraction: 1 });
    return finish(indices);
  }

  const r: Run = await openRun(pool, {
    backend,
    labeled,
    seed,
    signal: options.signal,
    onProgress: options.onProgress,
    weights: WEIGHTS[strategy],
    where: 'select',
  });
  checkSources = r.checkSources;
  try {
    switch (strategy) {
      case 'mmcsal': {
        const out = await mmcsal(r, budget, mm!);
        return finish(out.indices, { components: out.components, raw: out.raw });
      }
      case 'kcenter': {
        const out = await kcenter(r, budget);
        return finish(out.indices, { components: { diversity: out.diversity } });
      }
      case 'kmeans': {
        const out = await kmeans(r, budget);
        params.iterations = out.clustering.iterations;
        return finish(out.indices);
      }
      case 'typiclust': {
        const out = await typiclust(r, budget);
        params.iterations = out.clustering.iterations;
        return finish(out.indices);
      }
      case 'probcover': {
        const out = await probcover(r, budget, radius);
        params.radius = out.radius;
        if (out.purity !== undefined) params.purity = out.purity;
        return finish(out.indices);
      }
      case 'facility': {
        const out = await facility(r, budget, optimizer);
        return finish(out.indices);
      }
    }
  } finally {
    r.ctx.close();
  }
  throw new PairpickError('E_INTERNAL', `select: strategy ${strategy} fell through`);
}
