// The downstream model `evaluate()` retrains on every labelled set, behind one seam:
// `trainModel(kind, data, labeled, { seed, backend, signal })` → the test split's predictions, fused and per
// modality. 'ridge' is the ridge probe (src/eval/probe.ts) on the z-scored raw features;
// 'late-fusion' and 'mla' are the classifiers of src/train/ (spec §4, §6), wired in `TRAINERS`.
import type { BackendChoice } from '../backend/index.js';
import { PairpickError, throwIfAborted } from '../errors.js';
import { openPool, type Pool } from '../io/pool.js';
import { trainClassifier } from '../train/trainer.js';
import type { Classifier, ClassifierModel } from '../train/types.js';
import { ridgeProbePredict } from './probe.js';

/** Which downstream model is trained on each labelled set. */
export type DownstreamModel = 'ridge' | 'late-fusion' | 'mla';
export const DOWNSTREAM_MODELS: readonly DownstreamModel[] = ['ridge', 'late-fusion', 'mla'];

/**
 * Features and labels of an experiment: the train split (the pool the picks come from) and the
 * test split, per modality, raw (as in the pool) and z-scored with the train split's statistics.
 */
export interface ModelData {
  modalities: readonly string[];
  dims: readonly number[];
  classes: number;
  /** Per modality: train-split rows × dim, raw values. */
  trainRaw: Float32Array[];
  /** Per modality: test-split rows × dim, raw values. */
  testRaw: Float32Array[];
  /** Per modality: the same, z-scored per feature with the train split's mean and deviation. */
  train: Float32Array[];
  test: Float32Array[];
  trainLabels: Int32Array;
  testLabels: Int32Array;
}

/** A model trained on one labelled set. */
export interface TrainedModel {
  /** Predicted class of every test row (fused over modalities). */
  pred: Int32Array;
  /** Predicted class of every test row from each modality alone, by modality name. */
  perModality: Record<string, Int32Array>;
  /** The classifier, for the warm strategies that read one (absent for 'ridge'). */
  classifier?: Classifier;
}

/** How one model is trained: its seed (initialisation, batch order), backend and cancellation. */
export interface TrainRun {
  seed: number;
  backend?: BackendChoice;
  signal?: AbortSignal;
}

interface Trainer {
  /** Throws E_OPTION when this model cannot run (checked with the plan, before any work). */
  check(where: string): void;
  train(data: ModelData, labeled: Int32Array, run: TrainRun): Promise<TrainedModel>;
}

/** Ridge penalty of the probe (spec §7 quick probe; probe.ts's default). */
const RIDGE_LAMBDA = 1;

const ridge: Trainer = {
  check() {},
  async train(data, labeled, { signal }) {
    throwIfAborted(signal, 'evaluate');
    const perModality: Record<string, Int32Array> = {};
    data.modalities.forEach((name, m) => {
      perModality[name] = ridgeOn([data.train[m]], [data.test[m]], [data.dims[m]], data, labeled);
    });
    const pred = ridgeOn(data.train, data.test, data.dims, data, labeled);
    return { pred, perModality };
  },
};

/** Ridge on the concatenation of the given modalities' z-scored features: train on the labelled rows, predict the test rows. */
function ridgeOn(train: Float32Array[], test: Float32Array[], dims: readonly number[], data: ModelData, labeled: Int32Array): Int32Array {
  const dim = dims.reduce((s, d) => s + d, 0);
  const b = labeled.length;
  const t = data.testLabels.length;
  const features = new Float32Array((b + t) * dim);
  const labels = new Int32Array(b + t);
  const put = (source: Float32Array[], row: number, at: number) => {
    let offset = at * dim;
    source.forEach((x, m) => {
      features.set(x.subarray(row * dims[m], (row + 1) * dims[m]), offset);
      offset += dims[m];
    });
  };
  for (let i = 0; i < b; i++) {
    put(train, labeled[i], i);
    labels[i] = data.trainLabels[labeled[i]];
  }
  for (let i = 0; i < t; i++) {
    put(test, i, b + i);
    labels[b + i] = data.testLabels[i];
  }
  const trainRows = Int32Array.from({ length: b }, (_, i) => i);
  const evalRows = Int32Array.from({ length: t }, (_, i) => b + i);
  return ridgeProbePredict({ features, dim, labels, classes: data.classes }, trainRows, evalRows, { lambda: RIDGE_LAMBDA });
}

/** A pool over the z-scored train or test rows: what a classifier is trained on, selects from and predicts. */
export function modelPool(data: ModelData, part: 'train' | 'test'): Promise<Pool> {
  return openPool(Object.fromEntries(data.modalities.map((m, i) => [m, { data: data[part][i], dim: data.dims[i] }])));
}

/** Late fusion or MLA (src/train/, spec §4, §6) with their default options, seeded by the cell's seed. */
function classifierTrainer(model: ClassifierModel): Trainer {
  return {
    check() {},
    async train(data, labeled, { seed, backend, signal }) {
      // A labelled set of a single class trains no classifier: every row is that class (a warm
      // strategy then has no model to read; evaluate() picks that round at random).
      const only = singleClass(data.trainLabels, labeled);
      if (only !== undefined) {
        throwIfAborted(signal, 'evaluate');
        const constant = () => new Int32Array(data.testLabels.length).fill(only);
        return { pred: constant(), perModality: Object.fromEntries(data.modalities.map((m) => [m, constant()])) };
      }
      const pools = { train: await modelPool(data, 'train'), test: await modelPool(data, 'test') };
      try {
        // Labels of every train row are given; only the `labeled` rows are trained on.
        const classifier = await trainClassifier(pools.train, data.trainLabels, { model, labeled, seed, backend, signal });
        const p = await classifier.predict(pools.test, { backend, signal });
        const perModality: Record<string, Int32Array> = {};
        for (const m of p.perModality) {
          const pred = new Int32Array(p.rows);
          for (let r = 0; r < p.rows; r++) {
            let best = 0;
            for (let c = 1; c < p.classes; c++) if (m.probs[r * p.classes + c] > m.probs[r * p.classes + best]) best = c;
            pred[r] = best;
          }
          perModality[m.name] = pred;
        }
        return { pred: p.pred, perModality, classifier };
      } finally {
        await pools.train.close();
        await pools.test.close();
      }
    },
  };
}

/** The class of every labelled row when they are all one class (or none: class 0), else undefined. */
function singleClass(labels: Int32Array, labeled: Int32Array): number | undefined {
  const first = labeled.length ? labels[labeled[0]] : 0;
  for (const r of labeled) if (labels[r] !== first) return undefined;
  return first;
}

const TRAINERS: Record<DownstreamModel, Trainer> = {
  ridge,
  'late-fusion': classifierTrainer('late-fusion'),
  mla: classifierTrainer('mla'),
};

/** Checks that `kind` can be trained here (E_OPTION otherwise), before any work. */
export function checkModel(kind: DownstreamModel, where: string): void {
  TRAINERS[kind].check(where);
}

/** Trains the downstream model `kind` on the labelled rows (positions in the train split) and predicts the test split. */
export function trainModel(kind: DownstreamModel, data: ModelData, labeled: Int32Array, run: TrainRun): Promise<TrainedModel> {
  return TRAINERS[kind].train(data, labeled, run);
}

/**
 * What a warm strategy of the registry gets from the current model besides the pool and the
 * labelled set, as select() options. Warm strategies (entropy, margin, leastConfidence, badge,
 * bmmal) read the trained classifier — and select from the pool the classifier reads (the
 * z-scored train rows, `modelPool(data, 'train')`, see evaluate()); cold strategies used in warm
 * rounds read nothing more and select from the stage-1 embedding.
 */
export function warmSelectOptions(strategy: { name: string; kind: string }, trained: TrainedModel): Record<string, unknown> {
  if (strategy.kind !== 'warm') return {};
  if (!trained.classifier) {
    throw new PairpickError('E_OPTION', `evaluate: warm strategy '${strategy.name}' reads a trained classifier; option 'model' must be 'late-fusion' or 'mla'`);
  }
  return { model: trained.classifier };
}
