// `select()`: which rows of a pool to label. Validates the options against the chosen strategy's
// descriptor (src/select/registry.ts), opens the pool on a backend, runs the strategy and times it.
import { getBackend, type Backend, type BackendChoice } from '../backend/index.js';
import type { BackendName } from '../backend/types.js';
import { checkOptions, PairpickError, throwIfAborted } from '../errors.js';
import {
  BACKEND,
  check,
  checkPool,
  count,
  FUNCTION,
  INDEX_LIST,
  matrix,
  oneOf,
  optionName,
  readOptions,
  refuse,
  rowIndices,
  SEED,
  show,
  SIGNAL,
  type Rule,
  type Schema,
} from '../util/validate.js';
import { withPool, type PoolInput } from '../io/pool.js';
import { fromTensorLike, isTensorLike, type TensorLike } from '../io/tensor.js';
import { halfArrayToFloat } from '../util/half.js';
import type { Classifier, ClassifierModel } from '../train/types.js';
import { openRun, runBase, type PoolLike, type RunBase, type SelectProgress } from './common.js';
import type { MmcsalComponents, MmcsalRaw } from './mmcsal.js';
import { BUILT_IN_STRATEGIES, findStrategy, modelStrategies, ownersOf, strategyNames, type AnyStrategy } from './registry.js';
import type { DefaultsOf, GivenInputs, GivenOptions, GivenPools, PoolDims, RowMatrix, SelectionComponents, StrategyResult } from './strategy.js';

export type { PoolLike, SelectProgress } from './common.js';
export type { MmcsalComponents, MmcsalRaw } from './mmcsal.js';

type BuiltIn = (typeof BUILT_IN_STRATEGIES)[number];
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
type NamesOf<T extends readonly unknown[]> = { readonly [K in keyof T]: T[K] extends { name: infer N } ? N : never };

/** The built-in selection strategies (spec §3), from the registry (src/select/registry.ts). */
export const STRATEGIES = BUILT_IN_STRATEGIES.map((s) => s.name) as unknown as NamesOf<typeof BUILT_IN_STRATEGIES>;
export type Strategy = BuiltIn['name'];

/** Every built-in strategy's options, as select() takes them. */
type StrategyOptions = UnionToIntersection<
  BuiltIn extends infer S ? (S extends { options: infer O; inputs?: infer I; pools?: infer L } ? GivenOptions<O> & GivenInputs<I> & GivenPools<L> : never) : never
>;
type StrategyDefaults = UnionToIntersection<BuiltIn extends infer S ? (S extends { options: infer O } ? DefaultsOf<O> : never) : never>;

/** Defaults of every option (spec/methods.md §3; MMCSAL's weights calibrated, see AUTO_LAMBDA_ALIGN): the
 * strategy (the registry's first), the seed, and each built-in strategy's options that have one. */
export const SELECT_DEFAULTS = {
  strategy: BUILT_IN_STRATEGIES[0].name as Strategy,
  seed: 0,
  ...(Object.fromEntries(
    BUILT_IN_STRATEGIES.flatMap((s) => Object.entries(s.options).flatMap(([name, spec]) => ('default' in spec ? [[name, spec.default]] : []))),
  ) as StrategyDefaults),
};

/** What select() takes whatever the strategy. */
export interface SelectCommonOptions {
  /** Strategy (default 'mmcsal'). */
  strategy?: Strategy;
  /** Number of rows to pick (1 … rows − |labeled|). */
  budget: number;
  /** Already-labelled rows: never picked, and count as covered/selected. Default none. */
  labeled?: ArrayLike<number>;
  /** The trained classifier (trainClassifier / loadClassifier) the warm strategies entropy, margin,
   * leastConfidence, badge and bmmal run over the pool; required by them, refused by the others. */
  model?: Classifier;
  /** Seed of every random choice (k-means++, random picks, density sample, stochastic greedy). Default 0. */
  seed?: number;
  /** Backend: 'js' | 'cpu' | 'cuda' | 'auto' or a Backend (default: PAIRPICK_BACKEND, else cuda → cpu → js). */
  backend?: BackendChoice;
  /** Cancels the selection (rejects with E_ABORTED). */
  signal?: AbortSignal;
  /** Called as the selection progresses. */
  onProgress?: (progress: SelectProgress) => void;
}

/**
 * select()'s options: the common ones, and the options of the strategy in use, e.g. MMCSAL's `k`,
 * `gamma`, `lambdaAlign`, `wDensity`, `wDiversity`, `densitySample`, ProbCover's `radius`, facility
 * location's `optimizer` (each declared, with its default and docs, by its strategy's descriptor in
 * src/select/<strategy>.ts; `pairpick select --help` lists them), and the pools a strategy reads
 * besides the selection pool — MMCSAL's `inputs`, the features stage 1 embedded (same rows): its
 * default then covers the embedding joined with them (`select(embedded, { inputs: rawPool, budget })`).
 * Giving one to another strategy is refused by name.
 */
export type SelectOptions = SelectCommonOptions & StrategyOptions;

export interface Selection {
  /** Picked rows, in pick order. */
  indices: Int32Array;
  strategy: Strategy;
  /** Backend that ran it. */
  backend: BackendName;
  /** Wall time of the whole selection (opening and preparing the pool included). */
  seconds: number;
  /** MMCSAL: the normalised terms of each pick's score (ρ̂, δ̂, â) and the score. k-center:
   * `diversity` = each pick's distance to the nearest earlier pick or labelled row. Uncertainty
   * strategies: `uncertainty`. BADGE/BMMAL: `gradNorm` ‖g‖, `distance` (to the nearest earlier
   * pick), and BMMAL `contribution:<modality>` c_m and `scale:<modality>` s_m. */
  components?: SelectionComponents;
  /** MMCSAL: the raw terms (ρ, δ, a) of each pick. */
  raw?: MmcsalRaw;
  /** The resolved strategy parameters (after 'auto' and defaults), e.g. { gamma: 1, lambdaAlign: 0.25 }. */
  params: Record<string, number | string | undefined>;
}

/** Options every strategy takes (option name → rule); the strategy's name is checked first. */
function commonOptions(): Schema {
  return {
    strategy: oneOf(strategyNames()),
    budget: count(1, 'E_BUDGET'),
    labeled: INDEX_LIST,
    model: CLASSIFIER,
    seed: SEED,
    backend: BACKEND,
    signal: SIGNAL,
    onProgress: FUNCTION,
  };
}

/** The `model` option: a trained Classifier (src/train/types.ts), as far as its shape shows. */
const CLASSIFIER: Rule<Classifier> = {
  expected: 'a trained Classifier (from trainClassifier or loadClassifier)',
  accepts: (v): v is Classifier =>
    typeof v === 'object' &&
    v !== null &&
    typeof (v as Classifier).forward === 'function' &&
    typeof (v as Classifier).head === 'function' &&
    Array.isArray((v as Classifier).modalities) &&
    Number.isInteger((v as Classifier).classes) &&
    Number.isInteger((v as Classifier).hidden),
};

/** The value of a warm strategy's input (its rows and values are checked against the pool later). */
const ROW_MATRIX: Rule<RowMatrix | TensorLike> = {
  expected: 'a matrix { data: Float32Array, dim } or a 2-D float tensor with one row per pool row',
  accepts: (v): v is RowMatrix | TensorLike =>
    isTensorLike(v) && ('dims' in v || 'shape' in v || ((v as RowMatrix).data instanceof Float32Array && Number.isInteger((v as RowMatrix).dim) && (v as RowMatrix).dim >= 1)),
};

/** The value of a strategy's pool option (opened and checked against the pool later). */
const POOL_OPTION: Rule<PoolLike | PoolInput> = {
  expected: 'a pool with one row per pool row: an open pool (see openPool()) or what openPool() accepts ({ name: path | tensor | { data, dim } | … })',
  accepts: (v): v is PoolLike | PoolInput => typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !isTensorLike(v),
};

/** A strategy's own options, inputs and pools (option name → rule). */
function ownOptions(strategy: AnyStrategy): Schema {
  const schema: Schema = {};
  for (const [name, spec] of Object.entries(strategy.options)) schema[name] = spec.rule;
  for (const name of Object.keys(strategy.inputs ?? {})) schema[name] = ROW_MATRIX;
  for (const name of Object.keys(strategy.pools ?? {})) schema[name] = POOL_OPTION;
  return schema;
}

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
  model?: Classifier;
  seed: number;
  backend?: BackendChoice;
  signal?: AbortSignal;
  onProgress?: (progress: SelectProgress) => void;
  /** The strategy's own options and inputs that were given. */
  own: Record<string, unknown>;
}

/** The classifier a warm strategy will be given later (an experiment's plan): its form and modalities. */
export interface PlannedModel {
  form: ClassifierModel;
  modalities: number;
}

/**
 * Checks select options without a pool: the strategy, unknown keys and options of another
 * strategy (naming it), and the type and range of every value. Throws E_OPTION (E_BUDGET for
 * the budget) naming the option; `select()` and the experiment runner call it before any work.
 * `planned` stands for the `model` option of a warm strategy that is trained later (the
 * experiment's plan): its form and modality count are checked against the strategy now.
 */
export function parseSelectOptions(options: unknown, where = 'select', planned?: PlannedModel): ParsedSelectOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    refuse(`${where}: options`, 'an object with at least { budget }', options);
  }
  const given = options as Record<string, unknown>;
  const name = given.strategy === undefined ? SELECT_DEFAULTS.strategy : given.strategy;
  const strategy = findStrategy(name);
  if (!strategy) {
    throw new PairpickError('E_OPTION', `${where}: unknown strategy ${show(name)} (option 'strategy': choose one of ${strategyNames().join(', ')})`);
  }
  const common = commonOptions();
  const own = ownOptions(strategy);
  for (const key of Object.keys(given)) {
    if (Object.hasOwn(common, key) || Object.hasOwn(own, key)) continue;
    const owners = ownersOf(key).map((s) => s.name);
    if (owners.length) throw new PairpickError('E_OPTION', `${where}: option '${key}' does not apply to strategy '${strategy.name}' (it is a ${owners.join('/')} option)`);
    checkOptions({ [key]: 1 }, [...Object.keys(common), ...Object.keys(own)], `${where} (strategy '${strategy.name}')`);
  }
  const o = readOptions(given, { ...common, ...own }, where, ['budget', ...Object.keys(strategy.inputs ?? {})]);
  const ownValues = Object.fromEntries(Object.keys(own).map((key) => [key, o[key]]).filter(([, v]) => v !== undefined));
  if (strategy.model && o.model === undefined) {
    if (!planned) throw new PairpickError('E_OPTION', `${where}: strategy '${strategy.name}' needs option 'model' (a trained Classifier from trainClassifier or loadClassifier)`);
    checkModelNeed(strategy, planned.form, planned.modalities, where);
  }
  if (!strategy.model && o.model !== undefined) {
    const readers = modelStrategies().map((s) => s.name);
    throw new PairpickError('E_OPTION', `${where}: option 'model' does not apply to strategy '${strategy.name}' (it is read by ${readers.join('/')})`);
  }
  return {
    strategy: strategy.name as Strategy,
    budget: o.budget as number,
    labeled: o.labeled as ArrayLike<number> | undefined,
    model: o.model as Classifier | undefined,
    seed: (o.seed as number | undefined) ?? SELECT_DEFAULTS.seed,
    backend: o.backend as BackendChoice | undefined,
    signal: o.signal as AbortSignal | undefined,
    onProgress: o.onProgress as ParsedSelectOptions['onProgress'],
    own: ownValues,
  };
}

/**
 * Picks `budget` rows of a pool to label with one of the registered strategies (the cold-start
 * strategies of spec §3; MMCSAL by default). `pool` is an open Pool (or anything with `rows`, `modalities` and
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

  return withPool(pool, 'select', o.signal, async (opened) => {
    checkPool(opened, 'select');
    return run(opened as PoolLike, o, backend, started);
  });
}

/** A warm strategy's inputs, checked against the pool: one row per pool row, finite values, the dim it reads. */
function checkInputs(strategy: AnyStrategy, own: Record<string, unknown>, rows: number, where: string): Record<string, RowMatrix> {
  const inputs: Record<string, RowMatrix> = {};
  for (const [name, spec] of Object.entries(strategy.inputs ?? {})) {
    const given = fromTensorLike(own[name], `${where}: option '${name}'`);
    const m: RowMatrix = { data: given.data instanceof Float32Array ? given.data : halfArrayToFloat(given.data), dim: given.dim };
    if (spec.dim !== undefined && m.dim !== spec.dim) {
      throw new PairpickError('E_SHAPE', `${where}: option '${name}' has ${m.dim} values per row, strategy '${strategy.name}' reads ${spec.dim}`);
    }
    matrix(m.data, `option '${name}'`, where, rows, m.dim, { shape: 'pool rows × dim' });
    inputs[name] = m;
  }
  return inputs;
}

/**
 * A warm strategy's classifier against the pool: a model form the strategy handles (E_OPTION),
 * no more modalities than it handles (E_OPTION), and the modalities it was trained with — the
 * pool's, by name, with the same dimensions (E_SHAPE naming the first that differs).
 */
function checkModel(strategy: AnyStrategy, model: Classifier, pool: PoolLike, where: string): void {
  const mine = model.modalities.map((m) => m.name);
  for (const m of model.modalities) {
    if (!pool.modalities.includes(m.name)) {
      throw new PairpickError('E_SHAPE', `${where}: option 'model' was trained on modality '${m.name}', which the pool does not have (pool: ${pool.modalities.join(', ')})`);
    }
    const dim = pool.source(m.name).dim;
    if (dim !== m.dim) throw new PairpickError('E_SHAPE', `${where}: modality '${m.name}' has ${dim} dimensions in the pool, option 'model' was trained on ${m.dim}`);
  }
  const extra = pool.modalities.find((m) => !mine.includes(m));
  if (extra !== undefined) throw new PairpickError('E_SHAPE', `${where}: the pool's modality '${extra}' is not one option 'model' was trained on (model: ${mine.join(', ')})`);
  checkModelNeed(strategy, model.model, mine.length, where);
}

/** A model form the warm strategy handles and no more modalities than it handles (E_OPTION otherwise). */
function checkModelNeed(strategy: AnyStrategy, form: ClassifierModel, modalities: number, where: string): void {
  const need = strategy.model!;
  if (!need.forms.includes(form)) {
    throw new PairpickError('E_OPTION', `${where}: strategy '${strategy.name}' needs a ${need.forms.join(' or ')} model${need.why ? ` (${need.why})` : ''}; option 'model' is ${show(form)}`);
  }
  if (need.maxModalities && modalities > need.maxModalities.count) {
    throw new PairpickError('E_OPTION', `${where}: strategy '${strategy.name}' handles at most ${need.maxModalities.count} modalities (${need.maxModalities.why}); the model has ${modalities}`);
  }
}

async function run(pool: PoolLike, o: ParsedSelectOptions, backend: Backend, started: number): Promise<Selection> {
  const { budget, seed } = o;
  const strategy = findStrategy(o.strategy);
  if (!strategy) throw new PairpickError('E_OPTION', `select: strategy '${o.strategy}' is no longer registered`);
  const rows = pool.rows;
  const labeled = validateLabeled(o.labeled, rows);
  const selectable = rows - labeled.length;
  if (budget > selectable) {
    throw new PairpickError('E_BUDGET', `select: option 'budget' = ${budget} exceeds the ${selectable} selectable rows (${rows} rows, ${labeled.length} labelled)`);
  }
  const inputs = checkInputs(strategy, o.own, rows, 'select');
  if (o.model) checkModel(strategy, o.model, pool, 'select');
  // The strategy's options (already checked for type and range), defaults applied, then resolved
  // against the pool by the strategy.
  const options = Object.fromEntries(Object.entries(strategy.options).map(([name, spec]) => [name, o.own[name] ?? spec.default]));
  return withStrategyPools(strategy, o, rows, async (pools) => {
    const dims = pool.modalities.map((m) => pool.source(m).dim);
    const shapes = Object.fromEntries(Object.entries(pools).map(([name, p]) => [name, shapeOf(p)]));
    const resolved = strategy.parse ? strategy.parse(options, { rows, modalities: pool.modalities, dims }, 'select', shapes) : options;
    return runStrategy(pool, o, backend, started, strategy, labeled, inputs, pools, resolved);
  });
}

function shapeOf(pool: PoolLike): PoolDims {
  return { rows: pool.rows, modalities: pool.modalities, dims: pool.modalities.map((m) => pool.source(m).dim) };
}

/**
 * Runs `fn` with the strategy's pool options that were given, opened (what openPool accepts is
 * opened here and closed when `fn` settles) and checked: a pool's own shape, and as many rows as
 * the selection pool (E_SHAPE naming the option).
 */
async function withStrategyPools<T>(strategy: AnyStrategy, o: ParsedSelectOptions, rows: number, fn: (pools: Record<string, PoolLike>) => Promise<T>): Promise<T> {
  const names = Object.keys(strategy.pools ?? {}).filter((name) => o.own[name] !== undefined);
  const opened: Record<string, PoolLike> = {};
  const next = async (t: number): Promise<T> => {
    if (t === names.length) return fn(opened);
    const name = names[t];
    const what = optionName('select', name);
    return withPool(o.own[name] as PoolLike | PoolInput, what, o.signal, async (p) => {
      checkPool(p, what, name, what);
      if (p.rows !== rows) {
        throw new PairpickError('E_SHAPE', `${what} has ${p.rows} rows, the pool has ${rows}: row i of '${name}' must be sample i of the pool`);
      }
      opened[name] = p as PoolLike;
      return next(t + 1);
    }, what);
  };
  return next(0);
}

async function runStrategy(
  pool: PoolLike,
  o: ParsedSelectOptions,
  backend: Backend,
  started: number,
  strategy: AnyStrategy,
  labeled: Int32Array,
  inputs: Record<string, RowMatrix>,
  pools: Record<string, PoolLike>,
  resolved: Record<string, unknown>,
): Promise<Selection> {
  const { budget, seed } = o;
  const params: Selection['params'] = { budget, seed, ...(resolved as Selection['params']) };

  const finish = (run: RunBase, result: StrategyResult): Selection => {
    run.checkSources(); // picks made from a file that changed under the run are garbage: E_IO instead
    Object.assign(params, result.params);
    return {
      indices: result.indices,
      strategy: strategy.name as Strategy,
      backend: backend.name,
      seconds: (performance.now() - started) / 1000,
      params,
      ...(result.components && { components: result.components }),
      ...(result.raw && { raw: result.raw }),
    };
  };
  const runOptions = { backend, model: o.model, labeled, seed, signal: o.signal, onProgress: o.onProgress, weights: strategy.weights, where: 'select' };
  if (strategy.readsPool === false) {
    const base = runBase(pool, runOptions);
    return finish(base, await strategy.run(base, budget, resolved, inputs, pools));
  }
  const r = await openRun(pool, runOptions);
  try {
    return finish(r, await strategy.run(r, budget, resolved, inputs, pools));
  } finally {
    r.ctx.close();
  }
}
