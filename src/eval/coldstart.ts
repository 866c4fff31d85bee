/**
 * The cold-start experiment (spec §7, with the quick ridge probe of the selection engine's
 * calibration): per seed, train stage 1 on the pool without labels, select B samples with each
 * strategy, and score every selection by training a ridge probe on the raw features of the picks
 * only. MMCSAL arms whose options resolve to space 'embedding+inputs' (the default: coverage, space
 * auto) get the raw features stage 1 embedded as `inputs`; every other arm selects on the embedding
 * alone. Used by `pairpick demo`, the MMCSAL calibration sweep and the quality table.
 */
import { getBackend, type BackendChoice } from '../backend/index.js';
import { PairpickError, throwIfAborted } from '../errors.js';
import { openPool, type Pool } from '../io/pool.js';
import { DEFAULT_DISTRIBUTION, readsInputs } from '../select/mmcsal.js';
import { parseSelectOptions, select, type SelectOptions, type Strategy } from '../select/select.js';
import { fitProjection, resolveFitOptions, type FitOptions } from '../ssl/trainer.js';
import { Rng } from '../util/rng.js';
import {
  arrayOf,
  BACKEND,
  check,
  checkPool,
  count,
  FUNCTION,
  number,
  OBJECT,
  oneOf,
  optionName,
  readOptions,
  refuse,
  rowIndices,
  SEED,
  SIGNAL,
  STRING,
  type Schema,
} from '../util/validate.js';
import type { Dataset } from './datasets.js';
import { classCoverage, ridgeProbeAccuracy, type ProbeData } from './probe.js';

/** One arm of the experiment: a strategy with its options, under a display label. */
export interface ColdStartArm {
  label: string;
  strategy: Strategy;
  /** Selection options (`inputs` is set by the experiment: the seed's raw pool, for mmcsal). */
  options?: Omit<SelectOptions, 'strategy' | 'budget' | 'seed' | 'backend' | 'signal' | 'onProgress' | 'inputs'>;
  /** Stage-1 options for this arm (e.g. `{ beta: 0 }` for the "contrastive only" ablation). */
  stage1?: FitOptions;
}

export interface ColdStartOptions {
  arms: ColdStartArm[];
  budgets: number[];
  seeds: number[];
  /** Stage-1 options shared by every arm (an arm's own `stage1` overrides them). */
  stage1?: FitOptions;
  /**
   * Where accuracy is measured: 'test' — pool = train split, probe scored on the test split;
   * 'validation' — pool = a seeded 80 % of the train split, probe scored on the other 20 %
   * (never touches the test split; used for calibration). Default 'test'.
   */
  evaluate?: 'test' | 'validation';
  /** Ridge penalty of the probe (default 1). */
  probeLambda?: number;
  backend?: BackendChoice;
  signal?: AbortSignal;
  /** Called after each selection with (done, total, a description). */
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface ColdStartResult {
  label: string;
  strategy: Strategy;
  budget: number;
  seed: number;
  /** Probe accuracy on the evaluation rows. */
  accuracy: number;
  /** Classes present among the picks, and the entropy (nats) of their histogram. */
  covered: number;
  entropy: number;
  /** Mean over picks of the cosine between the pair's own stage-1 embeddings. */
  alignment: number;
  /** Share of the picks that are mismatched pairs (datasets loaded with `mismatch`; else 0). */
  mismatched: number;
  /** Selection wall time (stage 1 excluded). */
  seconds: number;
  /** Modality gap of the stage-1 model the selection ran on. */
  gap: number;
  /** MMCSAL arms: the space the selection ran on (Selection.params.space), e.g. 'embedding+inputs'. */
  space?: string;
}

/**
 * Greedy selections whose pick order does not depend on the budget: the picks for a smaller budget
 * are a prefix of the picks for a larger one, so one selection serves every budget. Not mmcsal's
 * clusters (k-means with |L| + B clusters) nor the stochastic facility greedy (its sample size
 * depends on B).
 */
function budgetPrefix(strategy: Strategy, options: Record<string, unknown>): boolean {
  if (strategy === 'kcenter') return true;
  if (strategy === 'mmcsal') return (options.distribution ?? DEFAULT_DISTRIBUTION) !== 'clusters';
  if (strategy === 'facility') return options.optimizer !== 'stochastic';
  return false;
}

const OPTIONS = {
  arms: arrayOf(OBJECT, 1),
  budgets: arrayOf(count(1, 'E_BUDGET'), 1),
  seeds: arrayOf(SEED, 1),
  stage1: OBJECT,
  evaluate: oneOf(['test', 'validation'] as const),
  probeLambda: number({ above: 0 }),
  backend: BACKEND,
  signal: SIGNAL,
  onProgress: FUNCTION,
} satisfies Schema;

/** Options the experiment sets itself, per run: refused inside an arm's options or stage-1 options. */
const SET_BY_EXPERIMENT = { select: ['strategy', 'budget', 'seed', 'backend', 'signal', 'onProgress', 'inputs'], stage1: ['seed', 'backend', 'signal'] };

/**
 * Checks everything before any training starts: the dataset's shape, the experiment's options,
 * every arm's selection options and stage-1 options, and the budgets against the pool.
 */
function checkExperiment(dataset: Dataset, options: ColdStartOptions): void {
  const where = 'coldStartExperiment';
  check(OBJECT, dataset, `${where}: argument 'dataset'`);
  checkPool(dataset.pool, where, 'dataset.pool');
  const rows = dataset.pool.rows;
  if (!(dataset.labels instanceof Int32Array) || dataset.labels.length !== rows) {
    refuse(`${where}: dataset.labels`, `an Int32Array of ${rows} labels (one per pool row)`, dataset.labels);
  }
  if (!Array.isArray(dataset.classes) || dataset.classes.length < 1) refuse(`${where}: dataset.classes`, 'a non-empty array of class names', dataset.classes);
  check(OBJECT, dataset.split, `${where}: dataset.split`);
  const train = rowIndices(dataset.split.train, rows, `${where}: dataset.split.train`, 'dataset.split.train', { distinct: true });
  rowIndices(dataset.split.test, rows, `${where}: dataset.split.test`, 'dataset.split.test', { distinct: true });
  const largest = Math.max(...options.budgets);
  if (largest > train.length) {
    throw new PairpickError('E_BUDGET', `${where}: option 'budgets': budget ${largest} exceeds the ${train.length} rows of the train split`);
  }
  options.arms.forEach((arm, i) => {
    const at = `${where}: arms[${i}]`;
    check(STRING, arm.label, `${at}.label`);
    for (const [part, names] of [['options', SET_BY_EXPERIMENT.select], ['stage1', SET_BY_EXPERIMENT.stage1]] as const) {
      const given = (arm as unknown as Record<string, unknown>)[part];
      if (given === undefined) continue;
      check(OBJECT, given, `${at}.${part}`);
      const clash = names.find((n) => Object.hasOwn(given as object, n));
      if (clash) throw new PairpickError('E_OPTION', `${at}.${part}: option '${clash}' is set by the experiment (per seed, budget and arm), not per arm`);
    }
    parseSelectOptions({ ...arm.options, strategy: arm.strategy, budget: largest }, at);
    resolveFitOptions(arm.stage1 ?? {}, `${at}.stage1`);
  });
  if (options.stage1 !== undefined) {
    const clash = SET_BY_EXPERIMENT.stage1.find((n) => Object.hasOwn(options.stage1 as object, n));
    if (clash) throw new PairpickError('E_OPTION', `${optionName(where, 'stage1')}: option '${clash}' is set by the experiment (per seed), not in stage1`);
    resolveFitOptions(options.stage1, optionName(where, 'stage1'));
  }
}

export async function coldStartExperiment(dataset: Dataset, options: ColdStartOptions): Promise<ColdStartResult[]> {
  readOptions(options, OPTIONS, 'coldStartExperiment', ['arms', 'budgets', 'seeds']);
  checkExperiment(dataset, options);
  getBackend(options.backend, optionName('coldStartExperiment', 'backend'));
  const evaluate = options.evaluate ?? 'test';
  const { labels } = dataset;
  const classes = dataset.classes.length;
  const probe: ProbeData = { ...(await standardisedFeatures(dataset.pool)), labels, classes };
  const results: ColdStartResult[] = [];
  const total = options.seeds.length * options.arms.length * options.budgets.length;
  let done = 0;

  for (const seed of options.seeds) {
    let poolRows: Int32Array = dataset.split.train;
    let evalRows: Int32Array = dataset.split.test;
    if (evaluate === 'validation') ({ poolRows, evalRows } = holdOut(dataset.split.train, labels, 0.2, seed));
    const rawPool = await subsetPool(dataset.pool, poolRows);
    // Arms that share stage-1 options share the trained model.
    const models = new Map<string, { pool: Pool; gap: number; alignment: Float64Array }>();
    for (const arm of options.arms) {
      const stage1: FitOptions = { ...options.stage1, ...arm.stage1, seed, backend: options.backend, signal: options.signal };
      const key = JSON.stringify({ ...stage1, signal: undefined, backend: undefined });
      let model = models.get(key);
      if (!model) {
        const projection = await fitProjection(rawPool, stage1);
        const embedded = await projection.embed(rawPool, { backend: options.backend, signal: options.signal });
        model = { pool: embedded, gap: projection.gap, alignment: await pairAlignment(embedded) };
        models.set(key, model);
      }
      const largest = Math.max(...options.budgets);
      let shared: { indices: Int32Array; seconds: number; params: Record<string, unknown> } | undefined;
      const inputs = arm.strategy === 'mmcsal' && readsInputs(arm.options ?? {}) ? { inputs: rawPool } : {};
      for (const budget of options.budgets) {
        throwIfAborted(options.signal, 'cold-start experiment');
        let selection = shared;
        if (!selection) {
          const prefix = budgetPrefix(arm.strategy, arm.options ?? {});
          selection = await select(model.pool, {
            ...arm.options,
            ...inputs,
            strategy: arm.strategy,
            budget: prefix ? largest : budget,
            seed,
            backend: options.backend,
            signal: options.signal,
          });
          if (prefix) shared = selection;
        }
        const indices = selection.indices.subarray(0, budget);
        const picks = Array.from(indices, (i) => poolRows[i]);
        const coverage = classCoverage(labels, picks, classes);
        let alignment = 0;
        for (const i of indices) alignment += model.alignment[i];
        let mismatched = 0;
        if (dataset.mismatched) for (const r of picks) mismatched += dataset.mismatched[r];
        results.push({
          label: arm.label,
          strategy: arm.strategy,
          budget,
          seed,
          accuracy: ridgeProbeAccuracy(probe, picks, evalRows, { lambda: options.probeLambda }),
          covered: coverage.covered,
          entropy: coverage.entropy,
          alignment: alignment / indices.length,
          mismatched: mismatched / picks.length,
          seconds: selection.seconds,
          gap: model.gap,
          ...(typeof selection.params.space === 'string' && { space: selection.params.space }),
        });
        options.onProgress?.(++done, total, `${arm.label} B=${budget} seed=${seed}`);
      }
    }
    for (const m of models.values()) await m.pool.close();
    await rawPool.close();
  }
  return results;
}

/** Mean ± std of accuracy per (label, budget), in first-seen order. */
export function summarise(results: ColdStartResult[]): { label: string; budget: number; mean: number; std: number; n: number }[] {
  if (!Array.isArray(results)) refuse("summarise: argument 'results'", 'an array of coldStartExperiment() results', results);
  results.forEach((r, i) => {
    const at = `summarise: results[${i}]`;
    check(OBJECT, r, at);
    check(STRING, r.label, `${at}.label`);
    check(count(1), r.budget, `${at}.budget`);
    check(number({ min: 0, max: 1 }), r.accuracy, `${at}.accuracy`);
  });
  const groups = new Map<string, ColdStartResult[]>();
  for (const r of results) {
    const key = `${r.label}\u0000${r.budget}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(r);
  }
  return [...groups.values()].map((g) => {
    const mean = g.reduce((s, r) => s + r.accuracy, 0) / g.length;
    const std = Math.sqrt(g.reduce((s, r) => s + (r.accuracy - mean) ** 2, 0) / Math.max(1, g.length - 1));
    return { label: g[0].label, budget: g[0].budget, mean, std, n: g.length };
  });
}

/** Every modality's rows, concatenated and z-scored per feature over the whole dataset (no labels used). */
async function standardisedFeatures(pool: Pool): Promise<{ features: Float32Array; dim: number }> {
  const parts = await Promise.all(pool.modalities.map(async (m) => ({ dim: pool.source(m).dim, data: await pool.source(m).read(0, pool.rows) })));
  const dim = parts.reduce((s, p) => s + p.dim, 0);
  const features = new Float32Array(pool.rows * dim);
  let offset = 0;
  for (const { dim: d, data } of parts) {
    for (let j = 0; j < d; j++) {
      let mean = 0;
      for (let r = 0; r < pool.rows; r++) mean += data[r * d + j];
      mean /= pool.rows;
      let variance = 0;
      for (let r = 0; r < pool.rows; r++) variance += (data[r * d + j] - mean) ** 2;
      const scale = variance > 0 ? 1 / Math.sqrt(variance / pool.rows) : 0;
      for (let r = 0; r < pool.rows; r++) features[r * dim + offset + j] = (data[r * d + j] - mean) * scale;
    }
    offset += d;
  }
  return { features, dim };
}

/** A seeded, stratified hold-out of `fraction` of `rows`. */
function holdOut(rows: Int32Array, labels: Int32Array, fraction: number, seed: number): { poolRows: Int32Array; evalRows: Int32Array } {
  const rng = new Rng(seed ^ 0x5eed);
  const byClass = new Map<number, number[]>();
  for (const r of rows) {
    if (!byClass.has(labels[r])) byClass.set(labels[r], []);
    byClass.get(labels[r])!.push(r);
  }
  const pool: number[] = [];
  const held: number[] = [];
  for (const members of byClass.values()) {
    rng.shuffle(members);
    const cut = Math.round(members.length * fraction);
    held.push(...members.slice(0, cut));
    pool.push(...members.slice(cut));
  }
  return { poolRows: Int32Array.from(pool.sort((a, b) => a - b)), evalRows: Int32Array.from(held.sort((a, b) => a - b)) };
}

/** An in-memory pool of the given rows of `pool`. */
async function subsetPool(pool: Pool, rows: Int32Array): Promise<Pool> {
  const input: Record<string, { data: Float32Array; dim: number }> = {};
  for (const m of pool.modalities) input[m] = { data: await pool.source(m).readRows(rows), dim: pool.source(m).dim };
  return openPool(input);
}

/** a(i) of spec §3.1: the mean cosine between the pair's own (unit) embeddings over modality pairs. */
async function pairAlignment(pool: Pool): Promise<Float64Array> {
  const data = await Promise.all(pool.modalities.map((m) => pool.source(m).read(0, pool.rows)));
  const dim = pool.source(pool.modalities[0]).dim;
  const out = new Float64Array(pool.rows);
  const pairs = (data.length * (data.length - 1)) / 2;
  for (let a = 0; a < data.length; a++) {
    for (let b = a + 1; b < data.length; b++) {
      for (let r = 0; r < pool.rows; r++) {
        let s = 0;
        for (let j = 0; j < dim; j++) s += data[a][r * dim + j] * data[b][r * dim + j];
        out[r] += s / pairs;
      }
    }
  }
  return out;
}
