// Independent float64 reference for the distance core, written from spec/methods.md §2 and the
// op contracts in src/backend/ops-distance.ts: direct formulas (Σ(a−b)², no norm expansion), full
// sorts instead of running top-k, plain loops everywhere.
import { halfToFloat } from '../../src/util/half.js';

export type RefMetric = 'sqeuclidean' | 'euclidean' | 'cosine';

/** Values of a Float32Array, or of fp16 bit patterns decoded exactly, as float64. */
export function toFloat64(m: Float32Array | Uint16Array): Float64Array {
  const out = new Float64Array(m.length);
  if (m instanceof Uint16Array) for (let i = 0; i < m.length; i++) out[i] = halfToFloat(m[i]);
  else for (let i = 0; i < m.length; i++) out[i] = m[i];
  return out;
}

/** dist(a_i, b_j) in float64. A zero row has cosine distance 1 to every row. */
export function refDistance(a: Float64Array, i: number, b: Float64Array, j: number, dim: number, metric: RefMetric): number {
  if (metric === 'cosine') {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let p = 0; p < dim; p++) {
      const x = a[i * dim + p];
      const y = b[j * dim + p];
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    if (na === 0 || nb === 0) return 1;
    return 1 - dot / Math.sqrt(na * nb);
  }
  let s = 0;
  for (let p = 0; p < dim; p++) {
    const t = a[i * dim + p] - b[j * dim + p];
    s += t * t;
  }
  return metric === 'euclidean' ? Math.sqrt(s) : s;
}

/** The error scale of a distance between rows i and j: ‖a_i‖² + ‖b_j‖² for the euclidean metrics, 1 for cosine. */
export function refScale(a: Float64Array, i: number, b: Float64Array, j: number, dim: number, metric: RefMetric): number {
  if (metric === 'cosine') return 1;
  let s = 0;
  for (let p = 0; p < dim; p++) s += a[i * dim + p] ** 2 + b[j * dim + p] ** 2;
  return s;
}

export function refDistances(a: Float64Array, b: Float64Array, rowsA: number, rowsB: number, dim: number, metric: RefMetric): Float64Array {
  const out = new Float64Array(rowsA * rowsB);
  for (let i = 0; i < rowsA; i++) for (let j = 0; j < rowsB; j++) out[i * rowsB + j] = refDistance(a, i, b, j, dim, metric);
  return out;
}

/** k nearest ref rows of each query row by full sort on (distance, index); −1 / +Infinity padding. */
export function refKnn(
  q: Float64Array,
  r: Float64Array,
  rowsQ: number,
  rowsR: number,
  dim: number,
  k: number,
  metric: RefMetric,
  excludeSelf: boolean,
): { indices: Int32Array; distances: Float64Array } {
  const indices = new Int32Array(rowsQ * k).fill(-1);
  const distances = new Float64Array(rowsQ * k).fill(Infinity);
  for (let i = 0; i < rowsQ; i++) {
    const cands: { d: number; j: number }[] = [];
    for (let j = 0; j < rowsR; j++) if (!(excludeSelf && j === i)) cands.push({ d: refDistance(q, i, r, j, dim, metric), j });
    cands.sort((x, y) => x.d - y.d || x.j - y.j);
    for (let s = 0; s < Math.min(k, cands.length); s++) {
      indices[i * k + s] = cands[s].j;
      distances[i * k + s] = cands[s].d;
    }
  }
  return { indices, distances };
}

/** minDist ← min(minDist, dist(points_i, center)); argmax over non-excluded rows, lowest index on ties. */
export function refMinUpdate(
  points: Float64Array,
  center: Float64Array,
  minDist: Float64Array,
  rows: number,
  dim: number,
  metric: RefMetric,
  exclude?: Uint8Array,
): { minDist: Float64Array; argmax: number; max: number } {
  const out = Float64Array.from(minDist);
  let argmax = -1;
  let max = -Infinity;
  for (let i = 0; i < rows; i++) {
    out[i] = Math.min(out[i], refDistance(points, i, center, 0, dim, metric));
    if (!(exclude && exclude[i]) && out[i] > max) {
      max = out[i];
      argmax = i;
    }
  }
  return { minDist: out, argmax, max };
}
