// Warm-start selection ops (spec/methods.md §5.2 BADGE, §5.3 BMMAL): a pool's gradient embeddings
// g_i = [s_1,i · r_i ⊗ x_i^1 ; … ; s_K,i · r_i ⊗ x_i^K] kept in factorised form — the residual
// r_i = p_i − e_ŷi (classes values) and the scaled penultimate feature x̂_i = [s_k,i · x_i^k]_k
// (K · blockDim values) — never as the classes × features product. Then
//   ⟨g_i, g_j⟩ = ⟨r_i, r_j⟩ · ⟨x̂_i, x̂_j⟩,   ‖g_i − g_j‖² = ‖g_i‖² + ‖g_j‖² − 2⟨g_i, g_j⟩,
// and k-means++ seeding runs over the whole pool with a running minimum D²(i) inside the context
// (in device memory on CUDA), one fused pass per pick.
//
// Numerics (the same on every backend, so js and cpu pick identically for a seed): r and x̂ are
// stored as float32; every dot product, norm and D² is accumulated in float64 from them. The
// head's logits are accumulated in float32 or better.

/** The output layer the gradient is taken of, as K feature blocks of one width each. */
export interface GradientHead {
  /** Classes C. */
  classes: number;
  /** Feature blocks K: the modalities for a late-fusion head, 1 for MLA's shared head. */
  blocks: number;
  /** Width of one block (the classifier's hidden size). */
  blockDim: number;
  /** classes × (blocks · blockDim), row-major: logits = bias + Σ_k weight[:, k·blockDim …] · x^k. */
  weight: Float32Array;
  bias: Float32Array;
}

export interface GradientSpec extends GradientHead {
  /** Pool rows (global row indices in [0, rows)). */
  rows: number;
  /**
   * BMMAL's modality balance (spec §5.3), blocks ≤ MAX_BALANCE_BLOCKS: per row the values
   * v(T) = softmax(bias + Σ_{k∈T} W_k x^k)[ŷ] of every subset T of blocks, exact Shapley values
   * φ_k = Σ_{T ∌ k} |T|!(K−|T|−1)!/K! · (v(T ∪ {k}) − v(T)), contributions c_k = |φ_k| / Σ|φ|
   * (1/K each when all are 0) and scales s_k = 1 − (max_j c_j − c_k) (the dominant block keeps 1;
   * for K = 2 the other gets 1 − |c_a − c_b|, as the spec). false: every s_k = 1 (BADGE).
   */
  balance: boolean;
}

/** Most blocks `balance` takes: 2^K subset values per row, exact Shapley. */
export const MAX_BALANCE_BLOCKS = 4;

export interface GradientLoadResult {
  /** ŷ per row (argmax of the logits, lowest class on ties). */
  pred: Int32Array;
  /** ‖g_i‖² = ‖r_i‖² · ‖x̂_i‖² (float64); NaN when the row's logits are not finite. */
  norm2: Float64Array;
  /** balance: c (rows × blocks). */
  contributions?: Float32Array;
  /** balance: s (rows × blocks). */
  scales?: Float32Array;
}

export interface GradientSampleResult {
  /** Rows picked by this call, in order. */
  picks: Int32Array;
  /** D² of each pick when it was drawn (+Infinity for the first pick, taken as the largest ‖g‖²). */
  distance2: Float64Array;
}

/** Rows per block of the D² draw (Σ D² is summed in float64 over blocks of this many rows). */
export const GRADIENT_SAMPLE_BLOCK_ROWS = 4096;

/**
 * A pool's gradient embeddings on one backend. Ops must be awaited one at a time. `load` every
 * row (in chunks, any order) before `sampleInit`.
 */
export interface GradientContext {
  readonly rows: number;
  /**
   * Computes and keeps r, x̂ and ‖g‖² of rows [start, start+count) from their penultimate
   * features: `features[k]` is count × blockDim (block k of each row).
   */
  load(start: number, count: number, features: Float32Array[]): Promise<GradientLoadResult>;
  /** ⟨g_a[t], g_b[t]⟩ for each t (float64, from the stored factors). */
  dots(a: Int32Array, b: Int32Array): Promise<Float64Array>;
  /** Starts k-means++ seeding: no centre yet, D² = +Infinity; rows with exclude[i] = 1 are never picked. */
  sampleInit(exclude: Uint8Array): Promise<void>;
  /**
   * Up to `steps` picks (fewer when no candidate is left). Without a centre the pick is the
   * candidate with the largest ‖g‖² (lowest index on ties); otherwise `uniforms[t]` ∈ [0, 1)
   * draws it with probability D²(i) / Σ D²: block sums S_b = Σ_{candidates i in block b} D²(i)
   * (float64, rows in order, blocks of GRADIENT_SAMPLE_BLOCK_ROWS), T = Σ_b S_b, the target u·T
   * located by walking the blocks and then the rows — the first candidate whose running sum
   * exceeds it (the last candidate with D² > 0 if rounding runs past the end; the lowest
   * candidate when T = 0). Each pick becomes a centre: D²(i) ← min(D²(i), ‖g_i − g_pick‖²).
   */
  sampleStep(steps: number, uniforms: Float64Array): Promise<GradientSampleResult>;
  close(): void;
}

export interface WarmOps {
  /** Opens an empty gradient-embedding store for `rows` rows and one head. */
  openGradient(spec: GradientSpec): Promise<GradientContext>;
}
