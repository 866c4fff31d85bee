/**
 * The distance core as a validated public API (`kernels.distances`, `kernels.knn`,
 * `kernels.minUpdate`, `kernels.resident`), usable by any Node ML tool. Each call checks its inputs, picks a backend
 * (`cuda` → `cpu` → `js` unless told otherwise) and returns a Promise. Long calls run in blocks,
 * check their AbortSignal and report progress between blocks.
 *
 * Matrices are dense row-major `Float32Array`s, or `Uint16Array`s of fp16 bit patterns (computed
 * in fp32), or 2-D float32/float16 tensors (onnxruntime-node, transformers.js, tfjs; read without
 * copying), whose dims stand in for the size options. When one operand is fp16 and the other
 * fp32, the fp16 one is widened to fp32 first.
 */
import { getBackend, type BackendChoice } from '../backend/index.js';
import { METRICS, type HeldRows, type MatrixData, type Metric, type MinUpdateResult, type TopK } from '../backend/ops-distance.js';
import type { Backend, BackendName } from '../backend/types.js';
import { PairpickError, throwIfAborted } from '../errors.js';
import { BACKEND, BOOLEAN, checkTensorSizes, count, FUNCTION, matrix, MAX_TENSOR_VALUES, oneOf, optionName, readOptions, refuse, SIGNAL, type Schema } from '../util/validate.js';
import { floatArrayToHalf, halfArrayToFloat } from '../util/half.js';
import { operand, size, type MatrixInput, type Operand } from './operands.js';

export type { Metric, MatrixData, MinUpdateResult } from '../backend/ops-distance.js';
export type { MatrixInput } from './operands.js';

/** Progress of a blocked kernel: `done` of `total` (query, reference) pairs processed. */
export interface KernelProgress {
  done: number;
  total: number;
}

/** Largest dense result `distances` will build (2^28 floats = 1 GiB). Use `knn` beyond that. */
export const MAX_DENSE_VALUES = MAX_TENSOR_VALUES;

// Work per backend call, in multiply-adds (rows × rows × dim): about 20–100 ms each, so
// cancellation and progress stay responsive without per-call overhead showing.
const CALL_WORK: Record<BackendName, number> = { js: 2 ** 25, cpu: 2 ** 32, cuda: 2 ** 37 };
// Fewest query rows per call, so a native call has enough rows to spread over its threads.
const MIN_QUERY_ROWS: Record<BackendName, number> = { js: 64, cpu: 512, cuda: 8192 };

export interface DistancesOptions {
  /** Rows of `a` (required unless `a` is a tensor). */
  rowsA?: number;
  /** Rows of `b` (required unless `b` is a tensor). */
  rowsB?: number;
  /** Values per row of both matrices (required unless one is a tensor). */
  dim?: number;
  /** Distance: `sqeuclidean` ‖a−b‖², `euclidean` ‖a−b‖, `cosine` 1 − cos(a, b). Default `sqeuclidean`. */
  metric?: Metric;
  /** Backend name, `'auto'` (default: cuda → cpu → js, or PAIRPICK_BACKEND) or a Backend. */
  backend?: BackendChoice;
  /** Cancels the computation between blocks (rejects with `E_ABORTED`). */
  signal?: AbortSignal;
  /** Called after each block of rows. */
  onProgress?: (p: KernelProgress) => void;
}

export interface KnnOptions {
  /** Rows of `query` (required unless `query` is a tensor). */
  rowsQ?: number;
  /** Rows of `ref` (required unless `ref` is a tensor). */
  rowsR?: number;
  /** Values per row of both matrices (required unless one is a tensor). */
  dim?: number;
  /** Neighbours per query row (required, ≥ 1). More than the reference rows available pads with −1 / +Infinity. */
  k: number;
  /** Distance: `sqeuclidean` (default), `euclidean` or `cosine`. */
  metric?: Metric;
  /** Skip ref row i for query row i (query and ref are the same set). Default false. */
  excludeSelf?: boolean;
  /** Backend name, `'auto'` (default: cuda → cpu → js, or PAIRPICK_BACKEND) or a Backend. */
  backend?: BackendChoice;
  /** Cancels the search between blocks (rejects with `E_ABORTED`). */
  signal?: AbortSignal;
  /** Called after each block of (query, ref) pairs. */
  onProgress?: (p: KernelProgress) => void;
}

/** `rowsQ × k` nearest neighbours: row q holds query q's neighbours by ascending distance, ties by lower index. */
export interface KnnResult {
  /** Ref row indices; −1 where fewer than k reference rows exist. */
  indices: Int32Array;
  /** Their distances in the chosen metric; +Infinity where the index is −1. */
  distances: Float32Array;
}

export interface MinUpdateOptions {
  /** Rows of `points` (required unless `points` is a tensor). */
  rows?: number;
  /** Values per row (required unless `points` or `center` is a tensor). */
  dim?: number;
  /** Distance: `sqeuclidean` (default), `euclidean` or `cosine`. */
  metric?: Metric;
  /** Rows whose byte is nonzero are left out of the argmax (their minDist is still updated). Default: none. */
  exclude?: Uint8Array;
  /** Backend name, `'auto'` (default: cuda → cpu → js, or PAIRPICK_BACKEND) or a Backend. */
  backend?: BackendChoice;
}

export interface ResidentOptions {
  /** Rows of `data` (required unless `data` is a tensor). */
  rows?: number;
  /** Values per row (required unless `data` is a tensor). */
  dim?: number;
  /** Backend that keeps the rows (and runs the calls that use them): a name, `'auto'` (default) or a Backend. */
  backend?: BackendChoice;
}

const METRIC = oneOf(METRICS);
const RESIDENT_OPTIONS = { rows: count(1), dim: count(1), backend: BACKEND } satisfies Schema;
const DISTANCES_OPTIONS = {
  rowsA: count(1),
  rowsB: count(1),
  dim: count(1),
  metric: METRIC,
  backend: BACKEND,
  signal: SIGNAL,
  onProgress: FUNCTION,
} satisfies Schema;
const KNN_OPTIONS = {
  rowsQ: count(1),
  rowsR: count(1),
  dim: count(1),
  k: count(1),
  metric: METRIC,
  excludeSelf: BOOLEAN,
  backend: BACKEND,
  signal: SIGNAL,
  onProgress: FUNCTION,
} satisfies Schema;
const MIN_UPDATE_OPTIONS = { rows: count(1), dim: count(1), metric: METRIC, exclude: { expected: 'a Uint8Array', accepts: (v: unknown): v is Uint8Array => v instanceof Uint8Array }, backend: BACKEND } satisfies Schema;

/**
 * The dense `rowsA × rowsB` distance matrix (`out[i * rowsB + j] = dist(a_i, b_j)`), for modest
 * sizes: results above {@link MAX_DENSE_VALUES} values are refused with `E_SHAPE` — use
 * {@link knn} (or a reduction) instead.
 */
export async function distances(aInput: MatrixInput, bInput: MatrixInput, options: DistancesOptions): Promise<Float32Array> {
  const where = 'kernels.distances';
  const o = readOptions(options, DISTANCES_OPTIONS, where);
  const A = operand(aInput, 'a', where);
  const B = operand(bInput, 'b', where);
  const rowsA = size(where, 'rowsA', o.rowsA, [[A, 'rows']]);
  const rowsB = size(where, 'rowsB', o.rowsB, [[B, 'rows']]);
  const dim = size(where, 'dim', o.dim, [[A, 'cols'], [B, 'cols']]);
  const metric = o.metric ?? 'sqeuclidean';
  let a = matrix(A.data, 'a', where, rowsA, dim, { half: true, shape: 'rowsA × dim' });
  let b = matrix(B.data, 'b', where, rowsB, dim, { half: true, shape: 'rowsB × dim' });
  if (rowsA * rowsB > MAX_DENSE_VALUES) {
    throw new PairpickError(
      'E_SHAPE',
      `${where}: a ${rowsA} × ${rowsB} result (${rowsA * rowsB} values) is larger than ${MAX_DENSE_VALUES}; use kernels.knn for nearest neighbours, or split the rows`,
    );
  }
  const backend = getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend'));
  throwIfAborted(o.signal, where);
  [a, b] = sameDtype(a, b);

  const blockRows = blockSize(backend, rowsA, rowsB, dim);
  const total = rowsA * rowsB;
  if (blockRows >= rowsA) {
    const out = await backend.distances(a, b, { rowsA, rowsB, dim, metric });
    o.onProgress?.({ done: total, total });
    return out;
  }
  const out = new Float32Array(rowsA * rowsB);
  for (let r0 = 0; r0 < rowsA; r0 += blockRows) {
    throwIfAborted(o.signal, where);
    const r1 = Math.min(rowsA, r0 + blockRows);
    const part = await backend.distances(a.subarray(r0 * dim, r1 * dim), b, { rowsA: r1 - r0, rowsB, dim, metric });
    out.set(part, r0 * rowsB);
    o.onProgress?.({ done: r1 * rowsB, total });
    if (backend.name === 'js') await yieldToEventLoop();
  }
  return out;
}

/**
 * Exact k nearest neighbours of every query row among the ref rows, in blocks: memory stays
 * O((rowsQ + rowsR)·dim + rowsQ·k), never rowsQ × rowsR. With `excludeSelf`, ref row i is not a
 * neighbour of query row i. When fewer than k ref rows are available (k > rowsR, or k ≥ rowsR
 * with excludeSelf) the missing slots are index −1, distance +Infinity. `ref` may be a
 * {@link ResidentMatrix} (kept by {@link resident}: not uploaded again; the call runs on its
 * backend; fp16 queries are widened for fp32 resident refs, fp32 queries with fp16 ones are
 * refused).
 */
export async function knn(queryInput: MatrixInput, refInput: MatrixInput | ResidentMatrix, options: KnnOptions): Promise<KnnResult> {
  const where = 'kernels.knn';
  const o = readOptions(options, KNN_OPTIONS, where, ['k']);
  const Q = operand(queryInput, 'query', where);
  const kept = refInput instanceof ResidentMatrix ? refInput : undefined;
  const R = kept ? residentOperand(kept, 'ref') : operand(refInput, 'ref', where);
  const rowsQ = size(where, 'rowsQ', o.rowsQ, [[Q, 'rows']]);
  const rowsR = size(where, 'rowsR', o.rowsR, [[R, 'rows']]);
  const dim = size(where, 'dim', o.dim, [[Q, 'cols'], [R, 'cols']]);
  const { k } = o;
  const metric = o.metric ?? 'sqeuclidean';
  const excludeSelf = o.excludeSelf ?? false;
  checkTensorSizes(where, [[`the result (options 'rowsQ' × 'k' = ${rowsQ} × ${k})`, rowsQ * k]], 'E_SHAPE');
  let query = matrix(Q.data, 'query', where, rowsQ, dim, { half: true, shape: 'rowsQ × dim' });
  let ref: HeldRows;
  let backend: Backend;
  if (kept) {
    ref = kept.heldFor(where, 'ref');
    backend = residentBackend(kept, o.backend, where, 'ref');
    if (query instanceof Uint16Array && kept.dtype === 'float32') query = halfArrayToFloat(query);
    else if (query instanceof Float32Array && kept.dtype === 'float16') {
      throw new PairpickError('E_SHAPE', `${where}: query is float32 but the resident ref is float16 (pass fp16 queries, or make the resident ref from float32 rows)`);
    }
  } else {
    let refRows = matrix(R.data, 'ref', where, rowsR, dim, { half: true, shape: 'rowsR × dim' });
    backend = getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend'));
    [query, refRows] = sameDtype(query, refRows);
    ref = refRows;
  }
  throwIfAborted(o.signal, where);

  const state: TopK = { indices: new Int32Array(rowsQ * k).fill(-1), distances: new Float32Array(rowsQ * k).fill(Infinity) };
  const queryRows = blockSize(backend, rowsQ, rowsR, dim);
  const refRows = Math.max(1, Math.min(rowsR, Math.floor(CALL_WORK[backend.name] / (queryRows * dim))));
  const total = rowsQ * rowsR;
  let done = 0;
  for (let q0 = 0; q0 < rowsQ; q0 += queryRows) {
    const q1 = Math.min(rowsQ, q0 + queryRows);
    const q = query.subarray(q0 * dim, q1 * dim);
    const rows = { indices: state.indices.subarray(q0 * k, q1 * k), distances: state.distances.subarray(q0 * k, q1 * k) };
    for (let r0 = 0; r0 < rowsR; r0 += refRows) {
      throwIfAborted(o.signal, where);
      const r1 = Math.min(rowsR, r0 + refRows);
      await backend.knnMerge(
        q,
        // Held device rows stand for their rows r0 … r1 − 1 (refOffset, rowsR).
        r0 === 0 && r1 === rowsR || !ArrayBuffer.isView(ref) ? ref : ref.subarray(r0 * dim, r1 * dim),
        { rowsQ: q1 - q0, rowsR: r1 - r0, dim, k, metric, refOffset: r0, queryOffset: q0, excludeSelf },
        rows,
      );
      done += (q1 - q0) * (r1 - r0);
      o.onProgress?.({ done, total });
      if (backend.name === 'js') await yieldToEventLoop();
    }
  }
  throwIfAborted(o.signal, where);
  return state;
}

/**
 * Rows kept by a backend for repeated {@link knn} (as `ref`) and {@link minUpdate} (as `points`)
 * calls, made by {@link resident}. On cuda they are uploaded to device memory once, so a loop of
 * calls against the same data uploads only each call's queries / center (and minDist); js and cpu
 * keep a private copy of the array. The rows are a snapshot: later changes to the array passed
 * in are not seen. They were checked for NaN/±Inf once, when made.
 *
 * `close()` frees them (device memory goes once no call in flight uses it); a handle that is
 * garbage-collected unclosed is freed then. A closed handle is refused with `E_STATE`.
 */
export class ResidentMatrix {
  /** Rows held. */
  readonly rows: number;
  /** Values per row. */
  readonly dim: number;
  /** How the values are stored (an fp16 `data` stays fp16). */
  readonly dtype: 'float32' | 'float16';
  /** The backend holding them; calls that use them run there. */
  readonly backend: Backend;
  #held: HeldRows | undefined;

  /** @internal Made by {@link resident}. */
  constructor(held: HeldRows, backend: Backend, rows: number, dim: number, dtype: 'float32' | 'float16') {
    this.#held = held;
    this.backend = backend;
    this.rows = rows;
    this.dim = dim;
    this.dtype = dtype;
    residentFinalizer.register(this, { backend, held }, this);
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#held === undefined;
  }

  /** Frees the rows (idempotent). */
  close(): void {
    if (this.#held === undefined) return;
    const held = this.#held;
    this.#held = undefined;
    residentFinalizer.unregister(this);
    this.backend.releaseRows(held);
  }

  /** @internal The backend's rows, for a call at `where` taking this as `name`. */
  heldFor(where: string, name: string): HeldRows {
    if (this.#held === undefined) throw new PairpickError('E_STATE', `${where}: ${name} is a closed kernels.resident handle`);
    return this.#held;
  }
}

// Unclosed handles are freed when collected.
const residentFinalizer = new FinalizationRegistry<{ backend: Backend; held: HeldRows }>(({ backend, held }) => backend.releaseRows(held));

/**
 * Keeps `data` (rows × dim, fp32 or fp16) on a backend for repeated {@link knn} / {@link minUpdate}
 * calls (see {@link ResidentMatrix}). Checks it for NaN/±Inf (`E_NAN` naming the row). Do not
 * modify `data` until the promise settles.
 */
export async function resident(dataInput: MatrixInput, options: ResidentOptions = {}): Promise<ResidentMatrix> {
  const where = 'kernels.resident';
  const o = readOptions(options, RESIDENT_OPTIONS, where);
  const D = operand(dataInput, 'data', where);
  const rows = size(where, 'rows', o.rows, [[D, 'rows']]);
  const dim = size(where, 'dim', o.dim, [[D, 'cols']]);
  const data = matrix(D.data, 'data', where, rows, dim, { half: true, shape: 'rows × dim' });
  const backend = getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend'));
  const held = await backend.holdRows(data, rows, dim);
  // Backends that read arrays in place get a private copy (a snapshot, validated once).
  return new ResidentMatrix(held === data ? data.slice() : held, backend, rows, dim, data instanceof Uint16Array ? 'float16' : 'float32');
}

/** A resident operand as a sized operand (its rows and dim must agree with the options and tensors). */
function residentOperand(r: ResidentMatrix, name: string): Operand {
  return { name, data: new Float32Array(0), rows: r.rows, cols: r.dim };
}

/**
 * The backend of a call that uses resident rows: theirs. An explicit `backend` option must name
 * the same one (`E_BACKEND` otherwise).
 */
function residentBackend(r: ResidentMatrix, choice: unknown, where: string, name: string): Backend {
  if (choice !== undefined) {
    const asked = getBackend(choice as BackendChoice, optionName(where, 'backend'));
    if (asked.name !== r.backend.name) {
      throw new PairpickError('E_BACKEND', `${where}: ${name} is resident on the ${r.backend.name} backend, but option 'backend' asks for ${asked.name}`);
    }
  }
  return r.backend;
}

const validatedPoints = new WeakSet<object>();

/**
 * The fused greedy step of k-center / farthest-point selection: for every row,
 * `minDist[i] = min(minDist[i], dist(points_i, center))` (updated in place), then returns the row
 * with the largest `minDist` among rows not excluded (lowest index on ties) and that value;
 * `{ argmax: −1, max: −Infinity }` when every row is excluded. Start `minDist` at +Infinity.
 * `center` is one row of `dim` values; it is converted to the dtype of `points` (an fp32 center
 * with fp16 points is rounded to fp16). `points` is checked for NaN/Inf the first time a given
 * array object is seen (greedy loops pass the same array at every step). `points` may be a
 * {@link ResidentMatrix} (kept by {@link resident}: not uploaded again, the call runs on its backend).
 */
export async function minUpdate(
  pointsInput: MatrixInput | ResidentMatrix,
  centerInput: MatrixInput,
  minDist: Float32Array,
  options: MinUpdateOptions,
): Promise<MinUpdateResult> {
  const where = 'kernels.minUpdate';
  const o = readOptions(options, MIN_UPDATE_OPTIONS, where);
  const kept = pointsInput instanceof ResidentMatrix ? pointsInput : undefined;
  const P = kept ? residentOperand(kept, 'points') : operand(pointsInput, 'points', where);
  const C = operand(centerInput, 'center', where);
  const rows = size(where, 'rows', o.rows, [[P, 'rows']]);
  const dim = size(where, 'dim', o.dim, [[P, 'cols'], [C, 'cols']]);
  let center = C.data;
  const metric = o.metric ?? 'sqeuclidean';
  let points: HeldRows;
  if (kept) {
    points = kept.heldFor(where, 'points');  // checked when it was made
  } else {
    // Greedy loops pass the same tensor at every step: its data array is what the scan cache keys on.
    const data = P.data;
    const scan = !(typeof data === 'object' && data !== null && validatedPoints.has(data));
    points = matrix(data, 'points', where, rows, dim, { half: true, scan, shape: 'rows × dim' });
    if (scan) validatedPoints.add(data);
  }
  matrix(center, 'center', where, 1, dim, { half: true, shape: '1 × dim' });
  if (!(minDist instanceof Float32Array)) refuse(`${where}: minDist`, 'a Float32Array', minDist);
  if (minDist.length !== rows) throw new PairpickError('E_SHAPE', `${where}: minDist has ${minDist.length} values but rows = ${rows}`);
  for (let i = 0; i < rows; i++) {
    if (minDist[i] !== minDist[i]) throw new PairpickError('E_NAN', `${where}: minDist[${i}] is NaN (start it at +Infinity)`);
  }
  const exclude = o.exclude;
  if (exclude !== undefined && exclude.length !== rows) {
    throw new PairpickError('E_SHAPE', `${where}: exclude has ${exclude.length} values but rows = ${rows}`);
  }
  const backend = kept ? residentBackend(kept, o.backend, where, 'points') : getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend'));
  const halfPoints = kept ? kept.dtype === 'float16' : points instanceof Uint16Array;
  if (halfPoints && center instanceof Float32Array) center = floatArrayToHalf(center);
  else if (!halfPoints && center instanceof Uint16Array) center = halfArrayToFloat(center);
  return backend.minUpdate(points, center, minDist, { rows, dim, metric }, exclude);
}

// ---------------------------------------------------------------------------------------------

/** Query rows per backend call: about CALL_WORK multiply-adds, at least MIN_QUERY_ROWS. */
function blockSize(backend: Backend, rows: number, otherRows: number, dim: number): number {
  const byWork = Math.floor(CALL_WORK[backend.name] / (otherRows * dim));
  return Math.max(1, Math.min(rows, Math.max(byWork, MIN_QUERY_ROWS[backend.name])));
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Both operands in one dtype: an fp16 operand next to an fp32 one is widened to fp32. */
function sameDtype(a: MatrixData, b: MatrixData): [MatrixData, MatrixData] {
  if (a instanceof Uint16Array && b instanceof Float32Array) return [halfArrayToFloat(a), b];
  if (a instanceof Float32Array && b instanceof Uint16Array) return [a, halfArrayToFloat(b)];
  return [a, b];
}
