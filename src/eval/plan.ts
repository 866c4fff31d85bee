// The plan of an `evaluate()` run, checked as a whole before any work starts (spec §7): the
// dataset (labels, split), the strategies (cold and warm, from the strategy registry), the budget
// sequence, the seeds, the downstream model and the stage-1 options; then the list of cells
// (strategy × budget or round × seed) the run computes.
import type { BackendChoice } from '../backend/index.js';
import { PairpickError } from '../errors.js';
import { parseSelectOptions } from '../select/select.js';
import { findStrategy, strategyNames } from '../select/registry.js';
import { resolveFitOptions, type FitOptions } from '../ssl/trainer.js';
import {
  arrayOf,
  BACKEND,
  BOOLEAN,
  check,
  checkPool,
  count,
  FUNCTION,
  OBJECT,
  oneOf,
  optionName,
  readOptions,
  refuse,
  rowIndices,
  SEED,
  show,
  SIGNAL,
  STRING,
} from '../util/validate.js';
import type { ClassifierModel } from '../train/types.js';
import type { Dataset } from './datasets.js';
import { checkModel, DOWNSTREAM_MODELS, type DownstreamModel } from './model.js';

/** Progress of `evaluate()`: cells done (finished ones found by `resume` count as done at the start). */
export interface EvaluateProgress {
  /** Overall fraction in [0, 1] (a stage-1 fit weighs as much as the cells of its seed). */
  fraction: number;
  /** Cells finished (this run or an earlier one) and the total. */
  done: number;
  total: number;
  /** Cells found finished in DIR/cells/ by `resume`. */
  skipped: number;
  /** 'stage 1' or 'cells'. */
  phase: string;
  /** What runs now, e.g. `mmcsal B=50 seed 1`. */
  detail: string;
  /** Remaining seconds extrapolated from this run's pace; undefined until there is one. */
  etaSeconds?: number;
}

export interface EvaluateOptions {
  /** Cold-start strategies (registered, kind 'cold'): each selects every budget from scratch. Default ['mmcsal', 'random']. */
  cold?: string[];
  /**
   * Warm-start strategies: each starts from a seeded random set of the first budget's size and
   * adds the difference to the next budget each round, with the model of the previous round.
   * 'random' and any registered strategy (cold ones continue from the labelled set). Default [].
   */
  warm?: string[];
  /** Labelled-set sizes, ascending (default [20, 50, 100]); or give init, step and rounds. */
  budgets?: number[];
  /** First budget (the warm strategies' random initial set) … */
  init?: number;
  /** … labels added per round … */
  step?: number;
  /** … and rounds after the first: budgets = init, init + step, …, init + rounds·step. */
  rounds?: number;
  /** Seeds (stage 1, selection, the random initial set, the model). Default [0, 1, 2]. */
  seeds?: number[];
  /** Downstream model retrained on every labelled set (default 'late-fusion'; 'ridge' is the quick linear probe). */
  model?: DownstreamModel;
  /** Stage-1 options (spec §1; fitted per seed on the train split, without labels), or false to
   * select on the raw features. Default {} (stage-1 defaults). */
  stage1?: FitOptions | false;
  /** Folder of the run: plan.json, cells/, results.json, report.html. */
  outDir: string;
  /** Reuse the finished cells in outDir/cells/ (the plan must be the same). Default false. */
  resume?: boolean;
  /** The command line that started the run, shown in the report. */
  command?: string;
  backend?: BackendChoice;
  signal?: AbortSignal;
  onProgress?: (progress: EvaluateProgress) => void;
}

/** One curve of the report: a strategy run cold (every budget from scratch) or warm (rounds). */
export interface Arm {
  /** `cold:NAME` or `warm:NAME`. */
  key: string;
  /** `NAME` (cold) or `NAME (warm)`. */
  label: string;
  kind: 'cold' | 'warm';
  strategy: string;
}

/** One unit of work: an arm at one budget (its round for warm arms) and one seed. */
export interface CellSpec {
  /** File name stem under cells/: `cold-NAME-b20-s0`, `warm-NAME-r1-s0`. */
  id: string;
  arm: string;
  kind: 'cold' | 'warm';
  strategy: string;
  seed: number;
  /** Index of the budget in the budget sequence (the round of a warm arm). */
  round: number;
  budget: number;
}

export interface Plan {
  arms: Arm[];
  budgets: number[];
  seeds: number[];
  model: DownstreamModel;
  stage1: FitOptions | false;
  /** Cells in report order: arm, then budget, then seed. */
  cells: CellSpec[];
  trainRows: Int32Array;
  testRows: Int32Array;
  classes: number;
}

const WHERE = 'evaluate';

const OPTIONS = {
  cold: arrayOf(STRING),
  warm: arrayOf(STRING),
  budgets: arrayOf(count(1, 'E_BUDGET'), 1),
  init: count(1, 'E_BUDGET'),
  step: count(1, 'E_BUDGET'),
  rounds: count(0),
  seeds: arrayOf(SEED, 1),
  model: oneOf(DOWNSTREAM_MODELS),
  stage1: { expected: 'stage-1 options (an object) or false', accepts: (v: unknown): v is FitOptions | false => v === false || OBJECT.accepts(v) },
  outDir: STRING,
  resume: BOOLEAN,
  command: STRING,
  backend: BACKEND,
  signal: SIGNAL,
  onProgress: FUNCTION,
};

/** Stage-1 options the experiment sets itself (per seed). */
const SET_PER_SEED = ['seed', 'backend', 'signal'];

export const EVALUATE_DEFAULTS = { cold: ['mmcsal', 'random'], warm: [] as string[], budgets: [20, 50, 100], seeds: [0, 1, 2], model: 'late-fusion' as DownstreamModel };

/**
 * Checks the whole run before any work: the dataset (one label per row, classes in range, a split
 * with a non-empty test part and every class in its train part), the options, every strategy,
 * the budgets against the pool, the model and the stage-1 options. Returns the plan.
 */
export function resolvePlan(dataset: Dataset, options: EvaluateOptions): Plan {
  const o = readOptions(options, OPTIONS, WHERE, ['outDir']);
  const { trainRows, testRows, classes } = checkDataset(dataset);

  // Budgets: an explicit ascending list, or init + step × rounds.
  const sequence = o.init !== undefined || o.step !== undefined || o.rounds !== undefined;
  if (sequence && o.budgets !== undefined) throw new PairpickError('E_OPTION', `${WHERE}: give either option 'budgets' or 'init', 'step' and 'rounds', not both`);
  let budgets: number[];
  if (sequence) {
    const missing = (['init', 'step', 'rounds'] as const).find((k) => o[k] === undefined);
    if (missing) throw new PairpickError('E_OPTION', `${optionName(WHERE, missing)} is needed with the others of init, step and rounds`);
    budgets = Array.from({ length: o.rounds! + 1 }, (_, r) => o.init! + r * o.step!);
  } else {
    budgets = o.budgets ?? EVALUATE_DEFAULTS.budgets;
    budgets.forEach((b, i) => {
      if (i > 0 && b <= budgets[i - 1]) throw new PairpickError('E_BUDGET', `${optionName(WHERE, 'budgets')}: budgets must increase (budgets[${i}] = ${b} after ${budgets[i - 1]})`);
    });
  }
  const largest = budgets[budgets.length - 1];
  if (largest > trainRows.length) {
    throw new PairpickError('E_BUDGET', `${WHERE}: budget ${largest} exceeds the ${trainRows.length} rows of the train split (the pool)`);
  }

  const seeds = o.seeds ?? EVALUATE_DEFAULTS.seeds;
  seeds.forEach((s, i) => {
    if (seeds.indexOf(s) !== i) throw new PairpickError('E_OPTION', `${optionName(WHERE, 'seeds')}: seed ${s} is given twice`);
  });

  const model = o.model ?? EVALUATE_DEFAULTS.model;
  checkModel(model, WHERE);

  const cold = o.cold ?? (o.warm !== undefined ? [] : EVALUATE_DEFAULTS.cold);
  const warm = o.warm ?? EVALUATE_DEFAULTS.warm;
  if (cold.length + warm.length === 0) throw new PairpickError('E_OPTION', `${WHERE}: no strategies: give option 'cold' or 'warm' (or both)`);
  const arms: Arm[] = [];
  for (const [kind, names] of [['cold', cold], ['warm', warm]] as const) {
    names.forEach((name, i) => {
      const what = optionName(WHERE, kind);
      if (names.indexOf(name) !== i) throw new PairpickError('E_OPTION', `${what}: strategy '${name}' is listed twice`);
      const strategy = findStrategy(name);
      if (!strategy) {
        const known = strategyNames().filter((n) => kind === 'warm' || findStrategy(n)!.kind === 'cold');
        throw new PairpickError('E_OPTION', `${what}: unknown strategy ${show(name)} (${kind} strategies: ${known.join(', ')})`);
      }
      if (kind === 'cold' && strategy.kind === 'warm') {
        throw new PairpickError('E_OPTION', `${what}: '${name}' is a warm-start strategy (it reads a trained model): list it under 'warm'`);
      }
      if (strategy.kind === 'warm' && model === 'ridge') {
        throw new PairpickError('E_OPTION', `${what}: warm strategy '${name}' reads a trained classifier; option 'model' must be 'late-fusion' or 'mla', not 'ridge'`);
      }
      // Type and range of everything select() will get (the strategy's own options take defaults);
      // a warm strategy's classifier is the model trained each round: its form is checked now.
      const planned = strategy.kind === 'warm' ? { form: model as ClassifierModel, modalities: dataset.pool.modalities.length } : undefined;
      parseSelectOptions({ strategy: name, budget: largest }, what, planned);
      arms.push({ key: `${kind}:${name}`, label: kind === 'cold' ? name : `${name} (warm)`, kind, strategy: name });
    });
  }
  if (warm.length > 0 && budgets.length < 2) {
    throw new PairpickError('E_BUDGET', `${WHERE}: warm strategies need at least two budgets (the random initial set, then a round); got ${budgets.join(', ')}`);
  }

  const stage1 = o.stage1 ?? {};
  if (stage1 !== false) {
    const clash = SET_PER_SEED.find((n) => Object.hasOwn(stage1, n));
    if (clash) throw new PairpickError('E_OPTION', `${optionName(WHERE, 'stage1')}: option '${clash}' is set by the experiment (per seed), not in stage1`);
    resolveFitOptions(stage1, optionName(WHERE, 'stage1'));
  }

  const cells: CellSpec[] = [];
  for (const arm of arms) {
    budgets.forEach((budget, round) => {
      for (const seed of seeds) {
        const id = arm.kind === 'cold' ? `cold-${arm.strategy}-b${budget}-s${seed}` : `warm-${arm.strategy}-r${round}-s${seed}`;
        cells.push({ id, arm: arm.key, kind: arm.kind, strategy: arm.strategy, seed, round, budget });
      }
    });
  }
  return { arms, budgets, seeds, model, stage1, cells, trainRows, testRows, classes };
}

/** The dataset's checks: labels, classes, split (E_SHAPE naming what is wrong). */
function checkDataset(dataset: Dataset): { trainRows: Int32Array; testRows: Int32Array; classes: number } {
  check(OBJECT, dataset, `${WHERE}: argument 'dataset'`);
  checkPool(dataset.pool, WHERE, 'dataset.pool');
  const rows = dataset.pool.rows;
  if (!Array.isArray(dataset.classes) || dataset.classes.length < 2) refuse(`${WHERE}: dataset.classes`, 'an array of at least two class names', dataset.classes);
  const classes = dataset.classes.length;
  if (!(dataset.labels instanceof Int32Array)) refuse(`${WHERE}: dataset.labels`, 'an Int32Array of class indices', dataset.labels);
  if (dataset.labels.length !== rows) {
    throw new PairpickError('E_SHAPE', `${WHERE}: the labels have ${dataset.labels.length} rows but the pool has ${rows} (one label per pool row)`);
  }
  for (let i = 0; i < rows; i++) {
    const label = dataset.labels[i];
    if (!(label >= 0 && label < classes)) throw new PairpickError('E_SHAPE', `${WHERE}: label of row ${i} is ${label}, not a class in [0, ${classes})`);
  }
  check(OBJECT, dataset.split, `${WHERE}: dataset.split`);
  const trainRows = rowIndices(dataset.split.train, rows, `${WHERE}: dataset.split.train`, 'split.train', { distinct: true, code: 'E_SHAPE' });
  const testRows = rowIndices(dataset.split.test, rows, `${WHERE}: dataset.split.test`, 'split.test', { distinct: true, code: 'E_SHAPE' });
  if (testRows.length === 0) throw new PairpickError('E_SHAPE', `${WHERE}: the split has an empty test part: nothing to score the models on`);
  if (trainRows.length === 0) throw new PairpickError('E_SHAPE', `${WHERE}: the split has an empty train part: nothing to select from`);
  const inTrain = new Uint8Array(rows);
  for (const r of trainRows) inTrain[r] = 1;
  for (const r of testRows) if (inTrain[r]) throw new PairpickError('E_SHAPE', `${WHERE}: row ${r} is in both the train and the test part of the split`);
  const trainCount = new Int32Array(classes);
  for (const r of trainRows) trainCount[dataset.labels[r]]++;
  for (const r of testRows) {
    const c = dataset.labels[r];
    if (trainCount[c] === 0) {
      throw new PairpickError('E_SHAPE', `${WHERE}: class ${show(dataset.classes[c])} has test rows (e.g. row ${r}) but none in the train part of the split: no strategy could pick it`);
    }
  }
  return { trainRows, testRows, classes };
}
