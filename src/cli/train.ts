// `pairpick train`: a downstream classifier (late fusion or MLA) on the labelled rows of a pool,
// written to a .safetensors model.
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

import { PairpickError } from '../errors.js';
import { readLabels } from '../io/labels.js';
import { trainClassifier, TRAIN_DEFAULTS, type ClassifierEpochRecord, type TrainClassifierOptions, type TrainProgress } from '../train/index.js';
import { HELP_FLAG, QUIET_FLAG, type CommandSpec, type FlagSpec, type ParsedArgs } from './args.js';
import { commandProgress, runCommand, streams, withInterrupt, type CommandContext } from './context.js';
import { readIndexFile } from './files.js';
import { INPUT_FLAGS, modalityInputs, openInputs, poolFiles, refuseOverwritingInputs } from './inputs.js';
import { backendFlag, BACKENDS, COMMON_NOTES } from './shared.js';

const d = TRAIN_DEFAULTS;
const training = (value: string, api: string, def: string | number, help: string, group = 'Training'): FlagSpec => ({ type: 'string', value, group, default: def, api, help });

export const TRAIN_SPEC: CommandSpec = {
  name: 'train',
  summary: 'train a classifier (late fusion or MLA) on the labelled rows',
  synopsis: 'pairpick train --modality NAME=PATH [--modality NAME=PATH …] --labels FILE --out clf.safetensors [options]',
  description:
    'Trains a downstream classifier on the rows of the pool that have a label, and writes it to --out. A modality row that is ' +
    'all NaN is missing: late fusion zero-fills its encoder output, MLA trains that modality only on the rows that have it. ' +
    'stdout gets one line per epoch (loss, train accuracy) or, with --json, one JSON summary at the end.',
  flags: {
    ...INPUT_FLAGS,
    labels: {
      type: 'string',
      value: 'FILE',
      required: true,
      group: 'Inputs',
      help: 'one label per pool row: .npy (integers), .json (an array), .csv/.txt (one a line); strings are class names; -1, empty or null = unlabelled',
    },
    labeled: { type: 'string', value: 'FILE', group: 'Inputs', api: 'labeled', default: 'every labelled row', help: 'train only on these rows: .json (an array, or a `pairpick select` document), .csv/.txt or .npy' },
    out: { type: 'string', value: 'FILE', required: true, group: 'Output', help: 'the model file to write (.safetensors); must not be an input' },
    json: { type: 'boolean', group: 'Output', help: 'print one JSON summary (out, model, classes, classNames, options, history, seconds) instead of the log' },
    model: { type: 'string', value: 'late-fusion|mla', group: 'Training', default: d.model, api: 'model', help: 'late fusion (spec §4) or MLA, alternating unimodal adaptation (spec §6)' },
    epochs: training('N', 'epochs', d.epochs, 'passes over the labelled rows'),
    hidden: training('H', 'hidden', d.hidden, 'hidden width of every modality encoder'),
    batch: training('N', 'batch', d.batch, 'mini-batch size'),
    lr: training('LR', 'lr', `${d.lateFusion.lr} (late fusion), ${d.mla.lr} (MLA)`, 'learning rate > 0'),
    'weight-decay': training('WD', 'weightDecay', d.weightDecay, 'weight decay ≥ 0 of the weight matrices'),
    classes: training('C', 'classes', 'largest label + 1, or the class names', 'number of classes'),
    seed: training('N', 'seed', d.seed, 'seed of the initialisation and the batch order'),
    momentum: training('M', 'momentum', d.mla.momentum, 'SGD momentum in [0, 1)', 'MLA'),
    'lr-drop-at': training('F', 'lrDropAt', d.mla.lrDropAt, 'fraction of the epochs after which the learning rate drops ×0.1', 'MLA'),
    'no-head-projection': { type: 'boolean', group: 'MLA', api: 'headProjection', help: "turn off the orthogonal head-gradient projection (the MLA authors' released behaviour)" },
    fusion: { type: 'string', value: 'dynamic|mean', group: 'MLA', default: d.mla.fusion, api: 'fusion', help: 'test-time fusion: entropy-weighted per sample, or the plain mean' },
    backend: backendFlag('Training'),
    quiet: QUIET_FLAG,
    help: HELP_FLAG,
  },
  notes: COMMON_NOTES,
};

function phaseOf(p: TrainProgress): { phase: string; detail?: string } {
  if (p.phase === 'check') return { phase: 'checking inputs' };
  return { phase: `epoch ${p.epoch}/${p.epochs}`, detail: `batch ${p.batch}/${p.batches}${p.loss === undefined ? '' : ` loss ${p.loss.toFixed(4)}`}` };
}

export async function trainCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  return runCommand(TRAIN_SPEC, argv, context, (args) => trainBody(args, context));
}

async function trainBody(args: ParsedArgs, context: CommandContext): Promise<void> {
  const { out: write } = streams(context);
  const inputs = modalityInputs(args, 1);
  const out = args.required('out');
  const outDir = dirname(resolve(out));
  if (!(await stat(outDir).catch(() => undefined))?.isDirectory()) throw new PairpickError('E_IO', `--out ${out}: folder ${outDir} does not exist`);
  const model = args.choice('model', ['late-fusion', 'mla'] as const);
  const mlaFlag = ['momentum', 'lr-drop-at', 'no-head-projection', 'fusion'].find((f) => args.has(f));
  if (mlaFlag && model !== 'mla') throw new PairpickError('E_OPTION', `--${mlaFlag} applies to --model mla only`);
  const options: TrainClassifierOptions = {
    model,
    epochs: args.int('epochs', { min: 1 }),
    hidden: args.int('hidden', { min: 1 }),
    batch: args.int('batch', { min: 1 }),
    lr: args.float('lr', { min: 0, exclusiveMin: true }),
    weightDecay: args.float('weight-decay', { min: 0 }),
    classes: args.int('classes', { min: 2 }),
    seed: args.int('seed'),
    momentum: args.float('momentum', { min: 0 }),
    lrDropAt: args.float('lr-drop-at', { min: 0, exclusiveMin: true }),
    headProjection: args.flag('no-head-projection') ? false : undefined,
    fusion: args.choice('fusion', ['dynamic', 'mean'] as const),
    backend: args.choice('backend', BACKENDS),
  };
  for (const key of Object.keys(options) as (keyof TrainClassifierOptions)[]) if (options[key] === undefined) delete options[key];
  const labelsPath = args.required('labels');
  const labels = await readLabels(labelsPath);
  const labeledPath = args.string('labeled');
  if (labeledPath !== undefined) options.labeled = await readIndexFile(labeledPath);

  const json = args.flag('json');
  const progress = commandProgress(context, 'pairpick train', args.flag('quiet'));
  const started = performance.now();
  const pool = await openInputs(inputs);
  try {
    await refuseOverwritingInputs([{ label: `--out ${out}`, path: out }], [...poolFiles(pool, inputs), { label: `--labels ${labelsPath}`, path: labelsPath }]);
    if (labels.ids.length !== pool.rows) throw new PairpickError('E_SHAPE', `--labels ${labelsPath} has ${labels.ids.length} labels, the pool has ${pool.rows} rows (one label per row, -1 = unlabelled)`);
    if (!json) write(`pairpick train: ${options.model ?? d.model}, ${pool.rows} rows × ${pool.modalities.length} modalities (${pool.modalities.map((m) => `${m} ${pool.source(m).dim}-D`).join(', ')})\n  epoch      loss  train acc  seconds\n`);
    const onEpoch = (h: ClassifierEpochRecord) => {
      if (json) return;
      progress.clear();
      write(`  ${String(h.epoch).padStart(5)}  ${h.loss.toFixed(4).padStart(8)}  ${h.trainAccuracy.toFixed(4).padStart(9)}  ${h.seconds.toFixed(2).padStart(7)}\n`);
    };
    const clf = await withInterrupt(context.signal, async (signal) => {
      try {
        const trained = await trainClassifier(pool, labels, { ...options, signal, onEpoch, onProgress: (p) => progress.update(p.fraction, phaseOf(p).phase, phaseOf(p).detail) });
        // Written only now, atomically: an interrupted or failed run leaves no model file.
        await trained.save(out);
        return trained;
      } finally {
        progress.clear();
      }
    });
    const seconds = (performance.now() - started) / 1000;
    if (json) {
      write(`${JSON.stringify({ out, model: clf.model, rows: pool.rows, modalities: clf.modalities, classes: clf.classes, classNames: clf.classNames, options: clf.options, history: clf.history, seconds }, null, 2)}\n`);
    } else {
      write(`${clf.model} on ${clf.options.labeled} labelled rows, ${clf.classes} classes, backend ${clf.options.backend}: model written to ${out} (${seconds.toFixed(1)} s)\n`);
    }
  } finally {
    await pool.close();
  }
}
