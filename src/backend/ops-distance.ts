// The distance core ops (foundation): dense distances, running top-k, the fused greedy min-update.

/** `sqeuclidean` = ‖a−b‖², `euclidean` = ‖a−b‖, `cosine` = 1 − ⟨a,b⟩/(‖a‖‖b‖) (a zero row has cosine 0 to every row: distance 1). */
export type Metric = 'sqeuclidean' | 'euclidean' | 'cosine';
export const METRICS: readonly Metric[] = ['sqeuclidean', 'euclidean', 'cosine'];

/** Row-major matrix data: float32, or float16 bit patterns in a Uint16Array. */
export type MatrixData = Float32Array | Uint16Array;

/** Rows held in device memory by a native backend (an opaque object of the addon). */
export interface DeviceRows {
  readonly __deviceRows: never;
}

/**
 * Rows a backend keeps for repeated knnMerge (as the refs) and minUpdate (as the points) calls
 * (`kernels.resident`): js and cpu read the array itself; cuda keeps a copy in device memory.
 */
export type HeldRows = MatrixData | DeviceRows;

/** Running top-k state of a set of queries: `rowsQ × k`, each row sorted by ascending distance
 * (ties by lower index); unfilled slots hold index −1 and distance +Infinity. */
export interface TopK {
  indices: Int32Array;
  distances: Float32Array;
}

export interface DistancesParams {
  rowsA: number;
  rowsB: number;
  dim: number;
  metric: Metric;
}

export interface KnnMergeParams {
  rowsQ: number;
  rowsR: number;
  dim: number;
  k: number;
  metric: Metric;
  /** Global index of ref row 0 (refs are numbered refOffset … refOffset+rowsR−1 in the state). */
  refOffset: number;
  /** Global index of query row 0; with `excludeSelf`, ref g is skipped for query q when g = queryOffset + q. */
  queryOffset: number;
  excludeSelf: boolean;
}

export interface MinUpdateParams {
  rows: number;
  dim: number;
  metric: Metric;
}

export interface MinUpdateResult {
  /** Row with the largest updated min-distance among rows not excluded (lowest index on ties); −1 if none. */
  argmax: number;
  /** Its min-distance. */
  max: number;
}

export interface CoverGainsParams {
  /** Columns of the table (its rows are `columns` long; cover is `columns` long). */
  columns: number;
  /** Row of the table merged into the cover first (−1: none). */
  add: number;
}

export interface DistanceOps {
  /** Dense `rowsA × rowsB` distance matrix (for modest sizes only — callers bound it). */
  distances(a: MatrixData, b: MatrixData, p: DistancesParams): Promise<Float32Array>;

  /**
   * Merges the `k` nearest rows of `ref` into the running top-k `state` of each query row. Held
   * device rows as `ref` stand for their rows refOffset … refOffset+rowsR−1.
   */
  knnMerge(query: MatrixData, ref: HeldRows, p: KnnMergeParams, state: TopK): Promise<void>;

  /**
   * The fused greedy step: `minDist[i] = min(minDist[i], dist(points[i], center))` for every row,
   * then the argmax of `minDist` over rows whose `exclude[i]` is 0 (all rows when `exclude` is
   * omitted). `center` is one row of `dim` values (same dtype as `points`).
   */
  minUpdate(
    points: HeldRows,
    center: MatrixData,
    minDist: Float32Array,
    p: MinUpdateParams,
    exclude?: Uint8Array,
  ): Promise<MinUpdateResult>;

  /**
   * The fused facility-location step over a dense similarity table (row-major, `columns` per
   * row): first, when `add` ≥ 0, `cover[j] = max(cover[j], table[add·columns + j])`; then, for each
   * listed row r, `gain = Σ_j max(0, table[r·columns + j] − cover[j])`, each difference and the sum
   * in float64. Returns one gain per listed row (none when `rows` is empty).
   */
  coverGains(table: Float32Array, cover: Float32Array, rows: Int32Array, p: CoverGainsParams): Promise<Float64Array>;

  /**
   * Keeps `data` (rows × dim) for repeated knnMerge / minUpdate calls: the array itself on
   * backends that read host arrays in place (js, cpu), a device copy on cuda (uploaded once).
   */
  holdRows(data: MatrixData, rows: number, dim: number): Promise<HeldRows>;

  /** Lets held rows go (device memory is freed once no call in flight uses it); idempotent. */
  releaseRows(held: HeldRows): void;
}

