// One round of the usual active-learning loop in code: train the downstream classifier on the
// rows labelled so far, pick `budget` more with a strategy (a warm one runs that classifier over
// the pool), and hand back the picks, the grown labelled set and the classifier.
import type { BackendChoice } from '../backend/index.js';
import { PairpickError } from '../errors.js';
import type { Labels } from '../io/labels.js';
import type { Pool } from '../io/pool.js';
import { trainClassifier, type TrainClassifierOptions } from '../train/index.js';
import type { Classifier, ClassifierModel } from '../train/types.js';
import { findStrategy } from './registry.js';
import { select, validateLabeled, type Selection, type SelectOptions, type SelectProgress, type Strategy } from './select.js';

export interface ActiveLearningRoundOptions {
  pool: Pool;
  /** The class of every row (−1 = unknown), or readLabels()' { ids, classNames }: only the
   * labelled rows' are read, for training. */
  labels: ArrayLike<number> | Labels;
  /** Rows labelled so far (trained on, never picked). */
  labeled: ArrayLike<number>;
  strategy: Strategy;
  budget: number;
  /** The classifier to train ('late-fusion', the default, or 'mla'), or all of trainClassifier's
   * options; a trained Classifier is used as it is (no training). */
  model?: ClassifierModel | TrainClassifierOptions | Classifier;
  /** The strategy's own options (e.g. { k: 20 } for mmcsal). */
  strategyOptions?: Record<string, unknown>;
  seed?: number;
  backend?: BackendChoice;
  signal?: AbortSignal;
  onProgress?: (progress: { stage: 'train' | 'select'; detail: unknown }) => void;
}

export interface ActiveLearningRound {
  /** The new picks, in pick order. */
  picks: Int32Array;
  /** The labelled set after the round (the old one and the picks, sorted). */
  labeled: Int32Array;
  /** The classifier trained on the labelled set before the round (what a warm strategy picked with). */
  classifier: Classifier;
  selection: Selection;
}

function isClassifier(m: unknown): m is Classifier {
  return typeof m === 'object' && m !== null && typeof (m as Classifier).forward === 'function' && typeof (m as Classifier).head === 'function';
}

export async function activeLearningRound(o: ActiveLearningRoundOptions): Promise<ActiveLearningRound> {
  if (typeof o !== 'object' || o === null) throw new PairpickError('E_OPTION', 'activeLearningRound: options must be an object');
  const labeled = validateLabeled(o.labeled, o.pool.rows);
  const labelCount = 'ids' in o.labels ? o.labels.ids.length : o.labels.length;
  if (labelCount !== o.pool.rows) {
    throw new PairpickError('E_SHAPE', `activeLearningRound: option 'labels' has ${labelCount} values, the pool has ${o.pool.rows} rows`);
  }
  let classifier: Classifier;
  if (isClassifier(o.model)) {
    classifier = o.model;
  } else {
    const train: TrainClassifierOptions = typeof o.model === 'string' ? { model: o.model } : { ...(o.model ?? {}) };
    classifier = await trainClassifier(o.pool, o.labels, {
      ...train,
      labeled,
      seed: train.seed ?? o.seed,
      backend: train.backend ?? o.backend,
      signal: o.signal,
      onProgress: (detail) => o.onProgress?.({ stage: 'train', detail }),
    });
  }
  const warm = findStrategy(o.strategy)?.model !== undefined;
  const selection = await select(o.pool, {
    ...(o.strategyOptions ?? {}),
    strategy: o.strategy,
    budget: o.budget,
    labeled,
    ...(warm && { model: classifier }),
    seed: o.seed,
    backend: o.backend,
    signal: o.signal,
    onProgress: (detail: SelectProgress) => o.onProgress?.({ stage: 'select', detail }),
  } as SelectOptions);
  const grown = new Int32Array(labeled.length + selection.indices.length);
  grown.set(labeled);
  grown.set(selection.indices, labeled.length);
  return { picks: selection.indices, labeled: grown.sort(), classifier, selection };
}
