// The downstream classifier as the rest of pairpick sees it (spec/methods.md §4 late fusion, §6 MLA):
// what `trainClassifier` returns and `loadClassifier` reads back, and what the warm-start
// strategies (uncertainty, BADGE, BMMAL — spec §5) consume. Both models share one shape: a
// `Linear(D_m, h) → ReLU` encoder per modality whose outputs h^m feed a linear output layer, so
// every warm strategy can be written once against `forward()` and `head()`.
import type { Pool } from '../io/pool.js';
import type { EmbeddingSource } from '../io/types.js';

/** Which downstream model: late fusion (spec §4, the default) or MLA (spec §6). */
export type ClassifierModel = 'late-fusion' | 'mla';

/** Per-modality view of a prediction. */
export interface ModalityPrediction {
  /** Modality name, as in the pool. */
  name: string;
  /** Class probabilities of this modality alone (rows × classes): late fusion → softmax of its
   * auxiliary head; MLA → softmax(g(f_m(x^m))). NaN rows where the modality is missing. */
  probs: Float32Array;
  /** Entropy (nats) of `probs` per row; NaN where the modality is missing. */
  entropy: Float32Array;
}

/** `Classifier.predict()` output for `rows` rows. */
export interface Prediction {
  rows: number;
  classes: number;
  /** Fused class probabilities (rows × classes). */
  probs: Float32Array;
  /** argmax of `probs` per row (lowest class index on exact ties). */
  pred: Int32Array;
  perModality: ModalityPrediction[];
  /** Per-row weight of each modality in the fusion (rows × modalities; 0 for a missing modality):
   * MLA dynamic → softmax(−entropy) over the present modalities, MLA mean → uniform over them;
   * late fusion → 1 for present, 0 for missing (zero-filled) modalities. */
  fusionWeights: Float32Array;
}

/** Everything one forward pass over rows [start, start + count) gives, for the warm strategies. */
export interface ForwardResult {
  start: number;
  rows: number;
  classes: number;
  /** Fused logits (rows × classes); softmax of them is `Prediction.probs`. */
  logits: Float32Array;
  /** Encoder outputs h^m = ReLU(x^m W_mᵀ + b_m), one rows × hidden array per modality (zeros for a
   * missing modality's rows). */
  features: Float32Array[];
  /** 1 where modality m of row i is present, 0 where missing (rows × modalities). */
  present: Uint8Array;
  /** Logits of each modality alone (rows × classes each), see ModalityPrediction.probs. */
  modalityLogits: Float32Array[];
  /** As `Prediction.fusionWeights`. */
  fusionWeights: Float32Array;
}

/**
 * The output layer the warm strategies differentiate (BADGE's last layer, spec §5.2/5.3):
 * * late fusion: `weight` is the fused head, classes × (modalities · hidden), and
 *   fused logits = bias + Σ_m weight[:, m·hidden : (m+1)·hidden] · h^m  (h^m = 0 when missing);
 * * MLA: `weight` is the shared head, classes × hidden, and
 *   fused logits = bias + weight · (Σ_m λ_m h^m), λ = fusionWeights (Σ_m λ_m = 1), i.e. the
 *   penultimate feature of a row is Σ_m λ_m h^m.
 */
export interface OutputLayer {
  model: ClassifierModel;
  classes: number;
  hidden: number;
  modalities: number;
  weight: Float32Array;
  bias: Float32Array;
}

/** Loss parts and train accuracy of one epoch. */
export interface EpochRecord {
  epoch: number;
  /** Mean training loss over the epoch (late fusion: the mean of fused + auxiliary CEs; MLA: mean
   * over modality steps). */
  loss: number;
  /** Named loss parts (late fusion: `fused`, `aux:<modality>`; MLA: `ce:<modality>`). */
  parts: Record<string, number>;
  /** Accuracy of the fused prediction on the labelled rows at the end of the epoch. */
  trainAccuracy: number;
  seconds: number;
}

/** A trained downstream classifier. */
export interface Classifier {
  readonly model: ClassifierModel;
  /** Modalities (name, input dim) in the order the model was trained with. */
  readonly modalities: readonly { name: string; dim: number }[];
  readonly classes: number;
  /** Class names when the labels were strings (index = class id), else undefined. */
  readonly classNames?: readonly string[];
  readonly hidden: number;
  /** The resolved training options (defaults filled in). */
  readonly options: Readonly<Record<string, unknown>>;
  readonly history: readonly EpochRecord[];
  /** Predictions for every row of the pool (or of one source per modality, same order). */
  predict(pool: Pool | Record<string, EmbeddingSource>, options?: ForwardOptions): Promise<Prediction>;
  /** One forward pass over rows [range.start, range.start + range.count) (default: all rows). */
  forward(pool: Pool, range?: { start: number; count: number }, options?: ForwardOptions): Promise<ForwardResult>;
  /** Penultimate per-modality activations h^m for every row (one rows × hidden array per modality). */
  features(pool: Pool, options?: ForwardOptions): Promise<Float32Array[]>;
  /** The output layer's weights (copies). */
  head(): OutputLayer;
  /** Writes the model as safetensors (weights + options and class names in the metadata), atomically. */
  save(path: string): Promise<void>;
}

export interface ForwardOptions {
  /** Optional per-modality missing mask: missing[m][i] = 1 marks row i of modality m as missing
   * (in addition to rows that are all NaN). */
  missing?: Record<string, Uint8Array>;
  signal?: AbortSignal;
  onProgress?: (p: { done: number; total: number }) => void;
}
