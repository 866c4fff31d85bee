// Downstream-classifier ops (spec/methods.md §4 late fusion, §6 MLA): the fused softmax +
// cross-entropy with its gradient, MLA's orthogonal head-gradient projection, and the per-sample
// entropy-weighted fusion of per-modality logits. The encoders' and heads' products use `matmul`.

export interface SoftmaxCrossEntropyParams {
  rows: number;
  classes: number;
  /** Multiplies the loss and the gradient (e.g. 1 / labelled rows for a mean). */
  scale: number;
}

export interface SoftmaxCrossEntropyResult {
  /** scale · Σ_i −log softmax(logits_i)[label_i] over rows with label_i ≥ 0. */
  loss: number;
  /** ∂loss/∂logits (rows × classes): scale · (softmax(logits_i) − e_{label_i}); 0 on rows with label_i < 0. */
  grad: Float32Array;
  /** Rows whose argmax (lowest class on exact ties) equals their label. */
  correct: number;
}

export interface HeadProjectionParams {
  /** h: P is h × h, h̄ has h values. */
  hidden: number;
  /** C: the head gradient is C × h. */
  classes: number;
  /** α of spec §6 (> 0). */
  alpha: number;
}

export type FusionMode = 'dynamic' | 'mean';

export interface EntropyFusionParams {
  rows: number;
  classes: number;
  modalities: number;
  mode: FusionMode;
}

export interface EntropyFusionResult {
  /** Σ_m λ_im · logits_im over present modalities (rows × classes); NaN on rows with none present. */
  fused: Float32Array;
  /** λ (rows × modalities): softmax(−entropy) over the present modalities ('dynamic'), uniform over them ('mean'); 0 where missing. */
  weights: Float32Array;
  /** Entropy (nats) of softmax(logits_im) (rows × modalities); NaN where missing. */
  entropy: Float32Array;
  /** softmax(logits_im) per modality (modalities × rows × classes); NaN rows where missing. */
  probs: Float32Array;
}

export interface TrainOps {
  /**
   * Softmax cross-entropy over rows × classes logits and int32 labels (label < 0: row ignored),
   * fused with its gradient, row-blocked (one pass over each row).
   */
  softmaxCrossEntropy(logits: Float32Array, labels: Int32Array, p: SoftmaxCrossEntropyParams): Promise<SoftmaxCrossEntropyResult>;
  /**
   * MLA's head-gradient projection (spec §6), in place: with k = P h̄ᵀ,
   * P ← P − k kᵀ / (α + h̄ k), P ← P / ‖P‖_F, then gradW ← gradW · P (gradW is C × h).
   */
  headProjection(projection: Float32Array, meanFeature: Float32Array, gradWeight: Float32Array, p: HeadProjectionParams): Promise<void>;
  /**
   * Per-sample fusion of per-modality logits (modalities × rows × classes, contiguous per
   * modality) over the modalities with present[i·M + m] = 1 (spec §6, test-time dynamic fusion).
   */
  entropyFusion(logits: Float32Array, present: Uint8Array, p: EntropyFusionParams): Promise<EntropyFusionResult>;
}
