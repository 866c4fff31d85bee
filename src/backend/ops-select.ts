// Selection ops (spec/methods.md §2–3). A strategy opens one SelectionContext over the pool and
// drives it with a few coarse, fused ops; all per-row state (inverse norms, greedy min-distances,
// centres) lives inside the context — in device memory on CUDA — so a greedy loop of many picks
// needs no per-pick host round trip.
//
// Every op works on the L2-normalised rows z_i^m = x_i^m / ‖x_i^m‖ without materialising them:
// `prepare` computes the inverse norms, and kernels scale dot products on the fly. A zero row is
// kept as the zero vector (its cosine to everything is 0).
import type { MatrixData } from './ops-distance.js';

/**
 * How two pool rows are compared. All forms are functions of the per-modality cosines
 * c_mm'(i,j) = ⟨z_i^m, z_j^m'⟩, with the unit-norm identity ‖z‖ = 1:
 * * `multimodal` — spec §2: d(i,j) = Σ_m e(z_i^m, z_j^m) + γ Σ_{m≠m'} e(z_i^m, z_j^m'), with
 *   e = sqrt(max(0, 2 − 2c)). Cross terms (γ > 0) need every modality in the same dimension.
 * * `euclidean` — ‖u_i − u_j‖ on the concatenation u = [z^1; …; z^M]: sqrt(max(0, Σ_m (2 − 2c_mm))).
 * * `similarity` — (1 + cos(u_i, u_j)) / 2 = (1 + Σ_m c_mm / M) / 2 (facility location).
 * A row compared with itself (same global index) is at distance exactly 0 (similarity 1).
 */
export type PairForm = 'multimodal' | 'euclidean' | 'similarity';

export interface PairMetric {
  form: PairForm;
  /** γ of the multimodal form (ignored by the others). */
  gamma: number;
}

/** Rows of the pool: a contiguous range, or explicit global indices (any order). */
export type RowSet = { start: number; count: number } | Int32Array;

/** What a pairwise reduction computes for each query row q over the reference rows j. */
export type PairReduction =
  /** Mean of the k smallest distances to refs j ≠ q (fewer when fewer refs exist; +Infinity with none). */
  | { kind: 'knnMean'; k: number }
  /** Number of refs with distance < radius (and refMask[j] = 1 when given; refMask is indexed by global row). */
  | { kind: 'countWithin'; radius: number; refMask?: Uint8Array }
  /** Smallest distance to a ref whose label differs from q's (labels indexed by global row); +Infinity when none. */
  | { kind: 'minOtherLabel'; labels: Int32Array }
  /** Largest value over refs (−Infinity when there are none). */
  | { kind: 'max' }
  /** Facility-location gain Σ_j max(0, value(q,j) − cover[j]) (cover indexed by global row). */
  | { kind: 'gain'; cover: Float32Array };

/** Whole-pool data of one modality. */
export interface SelectModality {
  /** rows × dim values, fp32 or fp16 bit patterns; not normalised (the context normalises on the fly). */
  data: MatrixData;
  dim: number;
}

export interface SelectPoolSpec {
  rows: number;
  modalities: SelectModality[];
}

export interface PrepareResult {
  /** Per modality, the first row of the chunk (global index) holding NaN or ±Inf; −1 when none. */
  badRows: number[];
  /** Alignment a(i) of the chunk's rows: mean over unordered modality pairs of ⟨z_i^m, z_i^m'⟩;
   * present only when there are ≥ 2 modalities, all of one dimension. */
  alignment?: Float32Array;
  /** Σ over the chunk's rows of the normalised rows, modalities concatenated (length Σ dim). */
  sums: Float64Array;
}

export interface GreedyConfig {
  /** `multimodal` (MMCSAL) or `euclidean` (k-center, k-means++). */
  metric: PairMetric;
  /**
   * Static part of each row's score (MMCSAL: w_ρ·ρ̂ + λ·â), length rows. When given, the score is
   * base(i) + wDiversity · δ(i) / max_candidates δ (δ̂ ≡ 0 while no centre exists); when omitted
   * the score is δ(i) itself (k-center).
   */
  base?: Float32Array;
  wDiversity: number;
  /** 1 = never pick this row (the labelled set); length rows. */
  exclude: Uint8Array;
  /**
   * `argmax` — pick the highest score, lowest index on ties.
   * `sampleSquared` — k-means++: pick row i with probability δ(i)² / Σ δ², drawing with the
   * uniforms passed to greedyStep (see there for the exact, backend-independent rule).
   */
  mode: 'argmax' | 'sampleSquared';
}

export interface GreedyStepResult {
  /** Rows picked by this call, in order. */
  picks: Int32Array;
  /** δ(pick) at pick time: its distance to the nearest centre (+Infinity when there was none). */
  diversity: Float32Array;
  /** max δ over the candidates at pick time (+Infinity when there was no centre). */
  diversityMax: Float32Array;
}

/** Rows per block of the sampleSquared rule: Σ δ² is summed in float64 over blocks of this many rows. */
export const SAMPLE_BLOCK_ROWS = 4096;

/**
 * One pool opened for selection on one backend. Ops must be awaited one at a time.
 * Call `prepare` over every row (in chunks, in any order) before any other op.
 */
export interface SelectionContext {
  readonly rows: number;
  readonly dims: readonly number[];

  /** Computes and keeps the inverse norms of rows [start, start+count) (uploading them on CUDA). */
  prepare(start: number, count: number): Promise<PrepareResult>;

  /**
   * For each query row, a reduction over the refs (all rows when `refs` is undefined) of the
   * metric — blocked, never materialising the queries × refs matrix. Returns one float64 per query.
   */
  pairReduce(queries: RowSet, refs: RowSet | undefined, metric: PairMetric, reduction: PairReduction): Promise<Float64Array>;

  /**
   * For progress only: true when this context runs a whole-pool knnMean pass (queries asked as
   * consecutive ranges from row 0, refs = every row) symmetrically, computing each pair once —
   * the range [s, e) then costs the pairs (i ∈ [s, e), j ≥ s), so the early ranges cost the most.
   * Absent or false: every query costs the same.
   */
  symmetricKnn?(k: number): boolean;

  /** Metric values from one row to every row (length rows). */
  distancesFrom(row: number, metric: PairMetric): Promise<Float32Array>;

  /** The normalised concatenated rows u_i of the given rows (n × Σ dim, fp32). */
  gather(indices: Int32Array): Promise<Float32Array>;

  /** Sets the k-means centres (k × Σ dim, fp32, modalities concatenated like u). */
  setCentroids(centroids: Float32Array, k: number): Promise<void>;

  /**
   * k-means assignment of rows [start, start+count) with the argmin fused into the distance tile:
   * labels[r] ← nearest centre (lowest index on ties) by ‖u − c‖², distances[r] ← that squared
   * distance; then sums[label·Σdim + …] += u and counts[label] += 1. `labels`/`distances` are
   * `count` long (the chunk's slice). Returns how many labels changed.
   */
  assign(start: number, count: number, labels: Int32Array, distances: Float32Array, sums: Float64Array, counts: Float64Array): Promise<number>;

  /** Starts a greedy selection (resets δ to +Infinity, forgets previous centres). */
  greedyInit(config: GreedyConfig): Promise<void>;

  /** Adds centres without picking them (the labelled set, a first pick): δ ← min(δ, d(·, c)); they become unpickable. */
  greedyAddCenters(indices: Int32Array): Promise<void>;

  /**
   * Performs up to `steps` picks: i* = the best candidate (mode), record it, add it as a centre,
   * update δ. Stops early when no candidate is left. For `sampleSquared`, `uniforms[t]` ∈ [0, 1)
   * draws step t: with block sums S_b = Σ_{i in block b, candidate} δ(i)² (float64, rows in order,
   * blocks of SAMPLE_BLOCK_ROWS) and T = Σ_b S_b, target u·T is located by walking the blocks and
   * then the rows, taking the first candidate whose running sum exceeds the target (the last
   * candidate with δ > 0 if rounding runs past the end; the lowest candidate when T = 0).
   */
  greedyStep(steps: number, uniforms?: Float64Array): Promise<GreedyStepResult>;

  /** Frees the context's memory (waits for nothing: call after the last op has settled). */
  close(): void;
}

export interface SelectOps {
  /** Opens a pool for selection. The data arrays must stay alive and unchanged until close(). */
  openSelection(spec: SelectPoolSpec): Promise<SelectionContext>;
}
