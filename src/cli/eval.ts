// `pairpick eval`: the active-learning experiment (evaluate(), spec §7) on the user's labelled
// embeddings or a bundled dataset, into a run folder with results.json and report.html. Labels and
// split files are read by src/io/labels.ts (.npy integers, .json arrays, text one per line).
import { PairpickError } from '../errors.js';
import { readLabels, readSplit } from '../io/labels.js';
import { datasetNames, loadDataset, type Dataset } from '../eval/datasets.js';
import { evaluate, type EvaluateResults } from '../eval/evaluate.js';
import { DOWNSTREAM_MODELS } from '../eval/model.js';
import { EVALUATE_DEFAULTS, type EvaluateOptions } from '../eval/plan.js';
import { pct, points } from '../eval/report.js';
import { findStrategy, strategyNames } from '../select/registry.js';
import { Rng } from '../util/rng.js';
import { HELP_FLAG, parseDecimal, parseInteger, QUIET_FLAG, type CommandSpec, type ParsedArgs } from './args.js';
import { commandProgress, runCommand, streams, withInterrupt, type CommandContext } from './context.js';
import { INPUT_FLAGS, modalityInputs, openInputs } from './inputs.js';
import { backendFlag, BACKENDS, COMMON_NOTES } from './shared.js';

const D = EVALUATE_DEFAULTS;

/** The registered strategies that read a trained classifier. */
function warmReaders(): string[] {
  return strategyNames().filter((n) => findStrategy(n)!.kind === 'warm');
}

export function evalSpec(): CommandSpec {
  return {
    name: 'eval',
    summary: 'which strategy picks the most useful pairs on your data: the active-learning experiment, with an HTML report',
    synopsis:
      'pairpick eval --modality NAME=PATH … --labels FILE [--split FILE | --test-fraction 0.2] --out-dir DIR [options]\n' +
      '       pairpick eval --dataset av-digits --out-dir DIR [options]',
    description:
      'For every strategy × budget × seed: fits stage 1 on the train split (labels unused), selects the budget (cold strategies ' +
      'from scratch; warm strategies from a random initial set, one round per further budget), trains the downstream model on ' +
      'the picks and scores it on the test split. Each finished cell is written to DIR/cells/ (Ctrl-C keeps them: --resume ' +
      'continues); at the end DIR/results.json and DIR/report.html (one self-contained page: learning curves, ranked table, ' +
      'class balance, modality gap, timing). stdout: the ranked table, or results.json with --json.',
    flags: {
      ...INPUT_FLAGS,
      modality: { ...INPUT_FLAGS.modality, required: false, default: 'with --dataset: its own' },
      labels: { type: 'string', value: 'FILE', group: 'Inputs', default: 'with --dataset: its own', help: 'class of every row: .npy integers, .json array, or text/.csv with one label per line (integers are class ids; names are numbered in sorted order)' },
      split: { type: 'string', value: 'FILE', group: 'Inputs', default: 'by --test-fraction', help: "train/test part of every row, same formats: 0 or 'train', 1 or 'test'" },
      'test-fraction': { type: 'string', value: 'F', group: 'Inputs', default: 0.2, help: 'without --split: this fraction of each class is the test split (stratified, fixed seed)' },
      dataset: { type: 'string', value: 'NAME', group: 'Inputs', default: 'none', help: `a bundled dataset instead of --modality/--labels (${datasetNames.join(', ')})` },
      cold: { type: 'string', value: 'LIST', group: 'Experiment', default: D.cold.join(','), api: 'cold', help: `cold-start strategies, comma-separated (registered: ${strategyNames().join(', ')})` },
      warm: { type: 'string', value: 'LIST', group: 'Experiment', default: 'none', api: 'warm', help: `warm-start strategies: from a random initial set of the first budget, one round per further budget (random, a cold strategy, or ${warmReaders().join('/')}, which read the previous round's model: late-fusion or mla, not ridge)` },
      budgets: { type: 'string', value: 'LIST', group: 'Experiment', default: D.budgets.join(','), api: 'budgets', help: 'labelled-set sizes, ascending, comma-separated' },
      init: { type: 'string', value: 'N', group: 'Experiment', default: 'by --budgets', api: 'init', help: 'instead of --budgets: first budget …' },
      step: { type: 'string', value: 'N', group: 'Experiment', default: 'by --budgets', api: 'step', help: '… labels added per round …' },
      rounds: { type: 'string', value: 'N', group: 'Experiment', default: 'by --budgets', api: 'rounds', help: '… and rounds after the first' },
      seeds: { type: 'string', value: 'LIST', group: 'Experiment', default: D.seeds.join(','), api: 'seeds', help: 'seeds, comma-separated (each: stage 1, selection, initial set, model)' },
      model: { type: 'string', value: DOWNSTREAM_MODELS.join('|'), group: 'Experiment', default: D.model, api: 'model', help: 'downstream model retrained on each labelled set: late fusion, MLA (both trainClassifier) or the quick ridge probe' },
      epochs: { type: 'string', value: 'N', group: 'Experiment', default: 20, help: 'stage-1 epochs' },
      'raw-features': { type: 'boolean', group: 'Experiment', help: 'select on the raw features (no stage 1)' },
      backend: backendFlag('Experiment'),
      'out-dir': { type: 'string', value: 'DIR', group: 'Output', required: true, api: 'outDir', help: 'run folder: plan.json, cells/, results.json, report.html' },
      resume: { type: 'boolean', group: 'Output', api: 'resume', help: 'continue the run in DIR (same plan), skipping its finished cells' },
      json: { type: 'boolean', group: 'Output', help: 'print results.json on stdout instead of the table' },
      quiet: QUIET_FLAG,
      help: HELP_FLAG,
    },
    notes: COMMON_NOTES,
  };
}

export async function evalCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  return runCommand(evalSpec(), argv, context, (args) => evalBody(args, argv, context));
}

/** A comma-separated list of words. */
function words(text: string, flag: string): string[] {
  const list = text.split(',').map((w) => w.trim());
  if (list.some((w) => w === '')) throw new PairpickError('E_OPTION', `--${flag} expects a comma-separated list without empty entries, got '${text}'`);
  return list;
}

function integers(text: string, flag: string, min?: number): number[] {
  return words(text, flag).map((w) => parseInteger(w, `--${flag}`, { min }));
}

/** The command line as typed, without --resume (a resumed run is the same experiment). */
function commandLine(argv: string[]): string {
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return ['pairpick', 'eval', ...argv.filter((a) => a !== '--resume')].map(quote).join(' ');
}

async function evalBody(args: ParsedArgs, argv: string[], context: CommandContext): Promise<void> {
  const { out, err } = streams(context);
  const quiet = args.flag('quiet');
  const name = args.string('dataset');
  const outDir = args.required('out-dir');
  const options: EvaluateOptions = { outDir, resume: args.flag('resume'), command: commandLine(argv) };
  if (args.has('cold')) options.cold = args.string('cold') === 'none' ? [] : words(args.string('cold')!, 'cold');
  if (args.has('warm')) options.warm = args.string('warm') === 'none' ? [] : words(args.string('warm')!, 'warm');
  if (args.has('budgets')) options.budgets = integers(args.string('budgets')!, 'budgets', 1);
  for (const k of ['init', 'step', 'rounds'] as const) if (args.has(k)) options[k] = args.int(k, { min: k === 'rounds' ? 0 : 1 });
  if (args.has('seeds')) options.seeds = integers(args.string('seeds')!, 'seeds');
  options.model = args.choice('model', DOWNSTREAM_MODELS);
  options.backend = args.choice('backend', BACKENDS);
  options.stage1 = args.flag('raw-features') ? false : { epochs: args.int('epochs', { min: 1 }) ?? 20 };
  if (args.flag('raw-features') && args.has('epochs')) throw new PairpickError('E_OPTION', '--epochs is the stage-1 epochs: it does not go with --raw-features');

  let dataset: Dataset;
  if (name !== undefined) {
    for (const flag of ['modality', 'labels', 'split', 'test-fraction']) {
      if (args.has(flag)) throw new PairpickError('E_OPTION', `--${flag} does not go with --dataset (the dataset has its own features, labels and split)`);
    }
    if (!datasetNames.includes(name)) throw new PairpickError('E_OPTION', `--dataset must be one of ${datasetNames.join(', ')}; got '${name}'`);
    dataset = await loadDataset(name);
  } else {
    const inputs = modalityInputs(args, 1);
    const labelsPath = args.required('labels');
    if (args.has('split') && args.has('test-fraction')) throw new PairpickError('E_OPTION', '--split and --test-fraction do not go together');
    const fraction = args.has('test-fraction') ? parseDecimal(args.string('test-fraction')!, '--test-fraction', { min: 0, exclusiveMin: true }) : 0.2;
    if (!(fraction < 1)) throw new PairpickError('E_OPTION', `--test-fraction must be < 1, got ${fraction}`);
    const pool = await openInputs(inputs);
    try {
      const { labels, classes } = await datasetLabels(labelsPath, pool.rows);
      const split = args.has('split') ? await readSplit(args.string('split')!, pool.rows) : stratifiedSplit(labels, classes.length, fraction);
      dataset = { name: inputs.names.map((n) => `${n}=${inputs.pool[n].path}`).join(' '), pool, labels, split, classes };
    } catch (e) {
      await pool.close();
      throw e;
    }
  }

  try {
    const progress = commandProgress(context, 'pairpick eval', quiet);
    let results: EvaluateResults;
    try {
      results = await withInterrupt(context.signal, (signal) =>
        evaluate(dataset, {
          ...options,
          signal,
          onProgress: (p) => progress.update(p.fraction, p.phase, `${p.done}/${p.total} cells${p.skipped ? ` (${p.skipped} from before)` : ''} ${p.detail}`),
        }),
      );
    } catch (e) {
      if (e instanceof PairpickError && e.code === 'E_ABORTED') {
        throw new PairpickError('E_ABORTED', `interrupted: the finished cells are in ${outDir}/cells/; run the same command with --resume to continue`, { cause: e });
      }
      throw e;
    } finally {
      progress.clear();
    }
    if (args.flag('json')) {
      out(`${JSON.stringify(results, null, 1)}\n`);
      return;
    }
    out(summaryText(results));
    if (!quiet) err(`wrote ${outDir}/results.json and ${outDir}/report.html (${results.times.totalSeconds.toFixed(1)} s)\n`);
  } finally {
    await dataset.pool.close();
  }
}

/** The ranked table of the report, as text. */
export function summaryText(results: EvaluateResults): string {
  const budgets = results.options.budgets;
  const header = ['#', 'strategy', 'mean acc %', 'AUC %', 'vs random', ...budgets.map((b) => `B=${b}`)];
  const rows = [...results.summary]
    .sort((a, b) => a.rank - b.rank)
    .map((s) => [
      String(s.rank),
      s.label,
      `${pct(s.meanAccuracy.mean)} ± ${pct(s.meanAccuracy.std)}`,
      pct(s.auc),
      s.gainOverRandom ? `${points(s.gainOverRandom.mean)} ± ${(100 * s.gainOverRandom.std).toFixed(1)}` : '—',
      ...s.points.map((p) => pct(p.accuracy.mean)),
    ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 1 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  return `${[line(header), ...rows.map(line)].join('\n')}\n(${results.options.model} model, test accuracy; mean ± std over seeds ${results.options.seeds.join(', ')})\n`;
}

// ---- labels ----------------------------------------------------------------------------------

/**
 * The class of every row (readLabels: integers are class ids, names are numbered in sorted order).
 * Every row needs one: an unlabelled entry is refused, naming the row (E_FORMAT), as is a count
 * other than the pool's rows (E_SHAPE).
 */
async function datasetLabels(path: string, rows: number): Promise<{ labels: Int32Array; classes: string[] }> {
  const { ids, classNames } = await readLabels(path);
  if (ids.length !== rows) throw new PairpickError('E_SHAPE', `--labels ${path} has ${ids.length} labels but the pool has ${rows} rows (one label per row)`);
  const hole = ids.indexOf(-1);
  if (hole >= 0) throw new PairpickError('E_FORMAT', `--labels ${path}: row ${hole} has no label (eval needs every row labelled)`);
  const classes = classNames ?? Array.from({ length: ids.reduce((m, id) => Math.max(m, id), 0) + 1 }, (_, c) => String(c));
  return { labels: ids, classes };
}

/** A stratified split: round(fraction · n_c) rows of each class c go to the test part (seeded shuffle, fixed seed). */
export function stratifiedSplit(labels: Int32Array, classes: number, fraction: number): { train: Int32Array; test: Int32Array } {
  const rng = new Rng(0x5eed);
  const byClass: number[][] = Array.from({ length: classes }, () => []);
  labels.forEach((c, i) => byClass[c].push(i));
  const test: number[] = [];
  const train: number[] = [];
  for (const members of byClass) {
    rng.shuffle(members);
    const cut = Math.round(members.length * fraction);
    test.push(...members.slice(0, cut));
    train.push(...members.slice(cut));
  }
  return { train: Int32Array.from(train.sort((a, b) => a - b)), test: Int32Array.from(test.sort((a, b) => a - b)) };
}
