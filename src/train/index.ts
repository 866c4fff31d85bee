// Downstream classifiers (spec §4 late fusion, §6 MLA). The Classifier contract is in types.ts.
//
// PLACEHOLDER: `trainClassifier` and `loadClassifier` are implemented on another branch; these
// declarations only let the warm-start code (src/select/rounds.ts, `pairpick select --model`)
// compile against their signatures, and fail with E_BACKEND until that branch is merged over them.
import type { BackendChoice } from '../backend/index.js';
import { PairpickError } from '../errors.js';
import type { Pool } from '../io/pool.js';
import type { Classifier, ClassifierModel } from './types.js';

export * from './types.js';

/** trainClassifier's options (defaults from the spec; model options pass through). */
export interface TrainClassifierOptions {
  model?: ClassifierModel;
  /** Rows whose labels are used (default: every row with a label ≥ 0). */
  labeled?: ArrayLike<number>;
  hidden?: number;
  epochs?: number;
  batch?: number;
  lr?: number;
  weightDecay?: number;
  seed?: number;
  backend?: BackendChoice;
  signal?: AbortSignal;
  onProgress?: (progress: unknown) => void;
  [option: string]: unknown;
}

/** Trains a downstream classifier on the labelled rows of a pool (labels: class ids, −1 = unlabelled, or class names). */
export async function trainClassifier(_pool: Pool, _labels: ArrayLike<number> | readonly string[], _options: TrainClassifierOptions = {}): Promise<Classifier> {
  throw new PairpickError('E_BACKEND', 'trainClassifier: not built yet');
}

/** Reads a classifier written by Classifier.save() (safetensors). */
export async function loadClassifier(path: string): Promise<Classifier> {
  throw new PairpickError('E_BACKEND', `loadClassifier(${path}): not built yet`);
}
