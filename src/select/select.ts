// `select()`: which rows of a pool to label. Validates the options, opens the pool on a backend,
// runs one strategy driver (src/select/<strategy>.ts) and times it.
import { getBackend, type Backend, type BackendChoice } from '../backend/index.js';
import type { BackendName } from '../backend/types.js';
import { checkOptions, PairpickError, throwIfAborted } from '../errors.js';
import {
  BACKEND,
  check,
  checkPool,
  count,
  either,
  FUNCTION,
  INDEX_LIST,
  isPoolShape,
  MAX_WEIGHT,
  number,
  oneOf,
  optionName,
  readOptions,
  refuse,
  rowIndices,
  SEED,
  show,
  SIGNAL,
  type Schema,
} from '../util/validate.js';
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

/** Options every strategy takes (option name → rule). */
const COMMON_OPTIONS = {
  strategy: oneOf(STRATEGIES),
  budget: count(1, 'E_BUDGET'),
  labeled: INDEX_LIST,
  seed: SEED,
  backend: BACKEND,
  signal: SIGNAL,
  onProgress: FUNCTION,
} satisfies Schema;

const WEIGHT = number({ min: 0, max: MAX_WEIGHT });
const AUTO = oneOf(['auto'] as const);

/** Each strategy's own options (option name → rule); giving one to another strategy is refused by name. */
const STRATEGY_OPTIONS: Record<Strategy, Schema> = {
  mmcsal: { k: count(1), gamma: either(AUTO, WEIGHT), lambdaAlign: either(AUTO, WEIGHT), wDensity: WEIGHT, wDiversity: WEIGHT, densitySample: count(2) },
  kcenter: {},
  kmeans: {},
  typiclust: {},
  probcover: { radius: number({ above: 0 }) },
  facility: { optimizer: oneOf(['lazy', 'stochastic'] as const) },
  random: {},
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

/** Validates `labeled` against the pool size: integers in [0, rows), no duplicates. Returns them sorted. */
export function validateLabeled(labeled: ArrayLike<number> | undefined, rows: number): Int32Array {
  check(count(0), rows, "validateLabeled: argument 'rows'");
  if (labeled === undefined) return new Int32Array(0);
  return rowIndices(labeled, rows, optionName('select', 'labeled'), 'labeled', { distinct: true }).sort();
}

/** Select options checked for type and range (everything that does not depend on the pool). */
export interface ParsedSelectOptions {
  strategy: Strategy;
  budget: number;
  labeled?: ArrayLike<number>;
  seed: number;
  backend?: BackendChoice;
  signal?: AbortSignal;
  onProgress?: (progress: SelectProgress) => void;
  /** The strategy's own options that were given. */
  own: Record<string, unknown>;
}

/**
 * Checks select options without a pool: the strategy, unknown keys and options of another
 * strategy (naming it), and the type and range of every value. Throws E_OPTION (E_BUDGET for
 * the budget) naming the option; `select()` and the experiment runner call it before any work.
 */
export function parseSelectOptions(options: unknown, where = 'select'): ParsedSelectOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    refuse(`${where}: options`, 'an object with at least { budget }', options);
  }
  const given = options as Record<string, unknown>;
  const strategy = given.strategy === undefined ? SELECT_DEFAULTS.strategy : given.strategy;
  if (!STRATEGIES.includes(strategy as Strategy)) {
    throw new PairpickError('E_OPTION', `${where}: unknown strategy ${show(strategy)} (option 'strategy': choose one of ${STRATEGIES.join(', ')})`);
  }
  const own = STRATEGY_OPTIONS[strategy as Strategy];
  for (const key of Object.keys(given)) {
    if (Object.hasOwn(COMMON_OPTIONS, key) || Object.hasOwn(own, key)) continue;
    const owner = STRATEGIES.find((s) => Object.hasOwn(STRATEGY_OPTIONS[s], key));
    if (owner) throw new PairpickError('E_OPTION', `${where}: option '${key}' does not apply to strategy '${strategy}' (it is a ${owner} option)`);
    checkOptions({ [key]: 1 }, [...Object.keys(COMMON_OPTIONS), ...Object.keys(own)], `${where} (strategy '${strategy}')`);
  }
  const o = readOptions(given, { ...COMMON_OPTIONS, ...own }, where, ['budget']);
  const ownValues = Object.fromEntries(Object.keys(own).map((key) => [key, (o as Record<string, unknown>)[key]]).filter(([, v]) => v !== undefined));
  return {
    strategy: strategy as Strategy,
    budget: o.budget as number,
    labeled: o.labeled,
    seed: o.seed ?? SELECT_DEFAULTS.seed,
    backend: o.backend as BackendChoice | undefined,
    signal: o.signal,
    onProgress: o.onProgress as ParsedSelectOptions['onProgress'],
    own: ownValues,
  };
}

/**
 * Picks `budget` rows of a pool to label with one of the cold-start strategies of spec §3
 * (MMCSAL by default). `pool` is an open Pool (or anything with `rows`, `modalities` and
 * `source(name)`), or what `openPool` accepts (then opened and closed here).
 */
export async function select(pool: PoolLike | PoolInput, options: SelectOptions): Promise<Selection> {
  const started = performance.now();
  const o = parseSelectOptions(options);
  if (typeof pool !== 'object' || pool === null || Array.isArray(pool)) {
    refuse("select: argument 'pool'", 'an open pool (see openPool()) or what openPool() accepts', pool);
  }
  const backend = getBackend(o.backend, optionName('select', 'backend'));
  throwIfAborted(o.signal, 'select');

  const owned = !isPoolShape(pool);
  const opened: PoolLike = owned ? await openPool(pool as PoolInput, { signal: o.signal }) : (pool as PoolLike);
  try {
    checkPool(opened, 'select');
    return await run(opened, o, backend, started);
  } finally {
    if (owned) await (opened as unknown as { close(): Promise<void> }).close();
  }
}

async function run(pool: PoolLike, o: ParsedSelectOptions, backend: Backend, started: number): Promise<Selection> {
  const { strategy, budget, seed } = o;
  const backendName = backend.name;
  const rows = pool.rows;
  const labeled = validateLabeled(o.labeled, rows);
  const selectable = rows - labeled.length;
  if (budget > selectable) {
    throw new PairpickError('E_BUDGET', `select: option 'budget' = ${budget} exceeds the ${selectable} selectable rows (${rows} rows, ${labeled.length} labelled)`);
  }
  const dims = pool.modalities.map((m) => pool.source(m).dim);
  const sameDims = dims.length >= 2 && dims.every((d) => d === dims[0]);
  const params: Record<string, number | string | undefined> = { budget, seed };
  const own = o.own;

  // Strategy parameters (already checked for type and range) resolved against the pool.
  let mm: Parameters<typeof mmcsal>[2] | undefined;
  if (strategy === 'mmcsal') {
    const gammaOpt = (own.gamma as number | 'auto' | undefined) ?? SELECT_DEFAULTS.gamma;
    const lambdaOpt = (own.lambdaAlign as number | 'auto' | undefined) ?? SELECT_DEFAULTS.lambdaAlign;
    const gamma = gammaOpt === 'auto' ? (sameDims ? 1 : 0) : gammaOpt;
    const lambdaAlign = lambdaOpt === 'auto' ? (sameDims ? AUTO_LAMBDA_ALIGN : 0) : lambdaOpt;
    if (gamma > 0 && !sameDims && dims.length >= 2) {
      throw new PairpickError('E_SHAPE', `select: gamma = ${gamma} needs every modality in one dimension, but ${pool.modalities.map((m, i) => `${m} has ${dims[i]}`).join(', ')} (project them with stage 1 first, or use gamma 0)`);
    }
    if (lambdaAlign > 0 && !sameDims) {
      throw new PairpickError('E_SHAPE', `select: lambdaAlign = ${lambdaAlign} needs ≥ 2 modalities of one dimension, but ${pool.modalities.map((m, i) => `${m} has ${dims[i]}`).join(', ')}`);
    }
    mm = {
      k: (own.k as number | undefined) ?? SELECT_DEFAULTS.k,
      gamma,
      lambdaAlign,
      wDensity: (own.wDensity as number | undefined) ?? SELECT_DEFAULTS.wDensity,
      wDiversity: (own.wDiversity as number | undefined) ?? SELECT_DEFAULTS.wDiversity,
      densitySample: own.densitySample as number | undefined,
    };
    Object.assign(params, mm);
  }
  const radius = own.radius as number | undefined;
  const optimizer = (own.optimizer as FacilityOptimizer | undefined) ?? SELECT_DEFAULTS.optimizer;
  if (strategy === 'facility') params.optimizer = optimizer;

  let checkSources = () => {};
  const finish = (indices: Int32Array, extra: Partial<Selection> = {}): Selection => {
    checkSources(); // picks made from a file that changed under the run are garbage: E_IO instead
    return { indices, strategy, backend: backendName, seconds: (performance.now() - started) / 1000, params, ...extra };
  };

  if (strategy === 'random') {
    throwIfAborted(o.signal, 'select');
    const mask = new Uint8Array(rows);
    for (const i of labeled) mask[i] = 1;
    const indices = randomPicks({ rows, labeled, labeledMask: mask, seed }, budget);
    o.onProgress?.({ phase: 'select', done: budget, total: budget, fraction: 1 });
    return finish(indices);
  }

  const r: Run = await openRun(pool, {
    backend,
    labeled,
    seed,
    signal: o.signal,
    onProgress: o.onProgress,
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
