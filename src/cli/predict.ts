// `pairpick predict`: a trained classifier applied to a pool: per row the class, its probability,
// and each modality's entropy and fusion weight, as .json, .csv or .npy.
import { extname } from 'node:path';

import { PairpickError } from '../errors.js';
import { writeNpy } from '../io/write.js';
import { loadClassifier, type Classifier, type Prediction } from '../train/index.js';
import { HELP_FLAG, QUIET_FLAG, type CommandSpec, type ParsedArgs } from './args.js';
import { commandProgress, runCommand, streams, withInterrupt, type CommandContext } from './context.js';
import { writeTextAtomically } from './files.js';
import { INPUT_FLAGS, modalityInputs, openInputs, poolFiles, refuseOverwritingInputs } from './inputs.js';
import { backendFlag, BACKENDS, COMMON_NOTES } from './shared.js';

export const PREDICT_SPEC: CommandSpec = {
  name: 'predict',
  summary: 'apply a trained classifier to a pool',
  synopsis: 'pairpick predict --model clf.safetensors --modality NAME=PATH [--modality NAME=PATH …] [--out preds.json|.csv|.npy] [options]',
  description:
    "Predicts every row of the pool with a model written by `pairpick train`. A modality may be left out, or be missing on some " +
    'rows (all NaN): the model uses the others. Without --out the predictions are printed on stdout as CSV. Progress and notes go to stderr.',
  flags: {
    model: { type: 'string', value: 'FILE', required: true, group: 'Inputs', help: 'the classifier (.safetensors from pairpick train)' },
    ...INPUT_FLAGS,
    out: {
      type: 'string',
      value: 'FILE',
      group: 'Output',
      help: 'write the predictions to FILE, by extension: .json, .csv (row,class,probability,entropy:NAME…,weight:NAME…) or .npy (float32 rows × (2 + 2·modalities), same columns, class as its id); must not be an input',
    },
    backend: backendFlag('Prediction'),
    quiet: QUIET_FLAG,
    help: HELP_FLAG,
  },
  notes: COMMON_NOTES,
};

const OUT_FORMATS = ['.json', '.csv', '.npy'];

export async function predictCommand(argv: string[], context: CommandContext = {}): Promise<void> {
  return runCommand(PREDICT_SPEC, argv, context, (args) => predictBody(args, context));
}

/** Per row: class id, its probability, entropy and fusion weight of each modality. */
function columns(clf: Classifier, p: Prediction) {
  const M = clf.modalities.length;
  const prob = Float32Array.from({ length: p.rows }, (_, i) => p.probs[i * p.classes + p.pred[i]]);
  const entropy = p.perModality.map((m) => m.entropy);
  const weight = clf.modalities.map((_, m) => Float32Array.from({ length: p.rows }, (_, i) => p.fusionWeights[i * M + m]));
  return { prob, entropy, weight };
}

function csv(clf: Classifier, p: Prediction): string {
  const { prob, entropy, weight } = columns(clf, p);
  const names = clf.modalities.map((m) => m.name);
  const quote = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const num = (v: number) => (Number.isNaN(v) ? '' : String(v));
  const lines = [['row', 'class', 'probability', ...names.map((n) => quote(`entropy:${n}`)), ...names.map((n) => quote(`weight:${n}`))].join(',')];
  for (let i = 0; i < p.rows; i++) {
    const cls = clf.classNames ? quote(clf.classNames[p.pred[i]]) : String(p.pred[i]);
    lines.push([String(i), cls, num(prob[i]), ...entropy.map((e) => num(e[i])), ...weight.map((w) => num(w[i]))].join(','));
  }
  return `${lines.join('\n')}\n`;
}

async function writePredictions(out: string, clf: Classifier, p: Prediction): Promise<void> {
  const ext = extname(out).toLowerCase();
  const { prob, entropy, weight } = columns(clf, p);
  if (ext === '.csv') return writeTextAtomically(out, csv(clf, p));
  if (ext === '.json') {
    const list = (a: Float32Array) => Array.from(a, (v) => (Number.isNaN(v) ? null : v));
    const doc = {
      model: clf.model,
      classes: clf.classes,
      classNames: clf.classNames,
      rows: p.rows,
      class: clf.classNames ? Array.from(p.pred, (c) => clf.classNames![c]) : Array.from(p.pred),
      probability: list(prob),
      modalities: Object.fromEntries(clf.modalities.map((m, k) => [m.name, { entropy: list(entropy[k]), weight: list(weight[k]) }])),
    };
    return writeTextAtomically(out, `${JSON.stringify(doc)}\n`);
  }
  const M = clf.modalities.length;
  const width = 2 + 2 * M;
  const table = new Float32Array(p.rows * width);
  for (let i = 0; i < p.rows; i++) {
    table[i * width] = p.pred[i];
    table[i * width + 1] = prob[i];
    for (let m = 0; m < M; m++) {
      table[i * width + 2 + m] = entropy[m][i];
      table[i * width + 2 + M + m] = weight[m][i];
    }
  }
  await writeNpy(out, table, [p.rows, width]);
}

async function predictBody(args: ParsedArgs, context: CommandContext): Promise<void> {
  const { out: write } = streams(context);
  const inputs = modalityInputs(args, 1);
  const modelPath = args.required('model');
  const out = args.string('out');
  if (out !== undefined && !OUT_FORMATS.includes(extname(out).toLowerCase())) throw new PairpickError('E_OPTION', `--out ${out}: unknown extension '${extname(out)}' (use .json, .csv or .npy)`);
  const backend = args.choice('backend', BACKENDS);
  const clf = await loadClassifier(modelPath);
  const progress = commandProgress(context, 'pairpick predict', args.flag('quiet'));
  const pool = await openInputs(inputs);
  try {
    if (out !== undefined) await refuseOverwritingInputs([{ label: `--out ${out}`, path: out }], [...poolFiles(pool, inputs), { label: `--model ${modelPath}`, path: modelPath }]);
    const p = await withInterrupt(context.signal, async (signal) => {
      try {
        const pred = await clf.predict(pool, { backend, signal, onProgress: ({ done, total }) => progress.update(total ? done / total : 1, 'predicting', `${done}/${total}`) });
        // Written only now, atomically: an interrupted run leaves no output file.
        if (out !== undefined) await writePredictions(out, clf, pred);
        return pred;
      } finally {
        progress.clear();
      }
    });
    if (out === undefined) write(csv(clf, p));
    else write(`predicted ${p.rows} rows with ${clf.model} (${clf.classes} classes) → ${out}\n`);
  } finally {
    await pool.close();
  }
}
