// The distance core in pure TypeScript: the fallback when no native addon could be built. Same
// semantics and tie rules as native/core/distance.cc (distances rounded to float32 before they
// are compared, ties broken by the lower index), so js and cpu pick the same neighbours.
//
// Speed comes from a 4 × 2 register block (4 query rows against 2 ref rows per pass over dim:
// 6 loads per 8 multiply-adds) over cache-sized ref tiles, with the top-k filter fused per block.
import { halfArrayToFloat, toFloat32 } from '../../util/half.js';
import type { CoverGainsParams, DistanceOps, DistancesParams, HeldRows, KnnMergeParams, MatrixData, Metric, MinUpdateParams, MinUpdateResult, TopK } from '../ops-distance.js';
import { PairpickError } from '../../errors.js';

const SQ = 0;
const EUCLID = 1;
const COSINE = 2;
const CODE: Record<Metric, number> = { sqeuclidean: SQ, euclidean: EUCLID, cosine: COSINE };
const fround = Math.fround;

/** ‖x‖² per row (sq/euclidean) or 1/‖x‖ (cosine; 0 for a zero row), rounded to float32 like the native norms. */
function normTerms(x: Float32Array, rows: number, dim: number, metric: number): Float64Array {
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const o = i * dim;
    let s0 = 0;
    let s1 = 0;
    let p = 0;
    for (; p + 2 <= dim; p += 2) {
      const a = x[o + p];
      const b = x[o + p + 1];
      s0 += a * a;
      s1 += b * b;
    }
    if (p < dim) s0 += x[o + p] * x[o + p];
    const s = s0 + s1;
    out[i] = metric === COSINE ? (s > 0 ? fround(1 / Math.sqrt(s)) : 0) : fround(s);
  }
  return out;
}

/** Distance from a dot product and the two norm terms; squared for euclidean (callers take the root). */
function fromDot(dot: number, qn: number, rn: number, metric: number): number {
  if (metric === COSINE) {
    const d = fround(1 - dot * qn * rn);
    return d < 0 ? 0 : d > 2 ? 2 : d;
  }
  const d = fround(qn + rn - 2 * dot);
  return d > 0 ? d : 0;
}

/**
 * The distance of query row q and ref row r recomputed exactly in float64, from direct
 * differences Σ(q−r)² (0 for a duplicate row) or fresh dots and norms (cosine). The fast form above
 * rounds the norms to float32, so it cancels for near-duplicates (error ≈ 3·2⁻²⁴·(‖q‖² + ‖r‖²));
 * reported distances that it cannot give to 1e-5 relative come from here instead.
 */
function exactDistance(Q: Float32Array, q: number, R: Float32Array, r: number, dim: number, metric: number): number {
  const a = q * dim;
  const b = r * dim;
  if (metric === COSINE) {
    let dot = 0;
    let qq = 0;
    let rr = 0;
    for (let p = 0; p < dim; p++) {
      const x = Q[a + p];
      const y = R[b + p];
      dot += x * y;
      qq += x * x;
      rr += y * y;
    }
    if (qq === 0 || rr === 0) return 1;
    // For q = r the three sums round identically and sqrt(qq·qq) = qq: exactly 0.
    const d = fround(1 - dot / Math.sqrt(qq * rr));
    return d < 0 ? 0 : d > 2 ? 2 : d;
  }
  let s = 0;
  for (let p = 0; p < dim; p++) {
    const t = Q[a + p] - R[b + p];
    s += t * t;
  }
  return fround(metric === EUCLID ? Math.sqrt(s) : s);
}

/**
 * Below this fraction of ‖q‖² + ‖r‖² (sqeuclidean; euclidean squared) or of 1 (cosine) the fast
 * value is recomputed exactly: 1e5 × its error bound above, with a safety factor of 2.
 */
const RECHECK_FRACTION = 0.04;

/** Extra fast-ranked kNN candidates that are rescored exactly (see knnMerge). */
const KNN_SPARE = 8;

/** Filter bound on the (squared, for euclidean) distance that can still enter a top-k row. */
function threshold(metric: number, worst: number): number {
  return metric === EUCLID ? (worst === Infinity ? Infinity : worst * worst * (1 + 1e-6)) : worst;
}

/** Inserts (d, g) into the sorted top-k row at `o` when it beats the last entry. */
function insert(D: Float32Array, I: Int32Array, o: number, k: number, d: number, g: number): boolean {
  const last = o + k - 1;
  if (!(d < D[last] || (d === D[last] && g < I[last]))) return false;
  let pos = last;
  while (pos > o && (d < D[pos - 1] || (d === D[pos - 1] && g < I[pos - 1]))) {
    D[pos] = D[pos - 1];
    I[pos] = I[pos - 1];
    pos--;
  }
  D[pos] = d;
  I[pos] = g;
  return true;
}

/**
 * Computes the dot products of query rows q0…q0+3 with ref rows r0, r0+1 into `dots`
 * (dots[2i + j]). Rows past the end are clamped to the last row (their results are ignored).
 */
function dots4x2(Q: Float32Array, R: Float32Array, dim: number, q0: number, qLast: number, r0: number, rLast: number, dots: Float64Array): void {
  const a0 = q0 * dim;
  const a1 = Math.min(q0 + 1, qLast) * dim;
  const a2 = Math.min(q0 + 2, qLast) * dim;
  const a3 = Math.min(q0 + 3, qLast) * dim;
  const b0 = r0 * dim;
  const b1 = Math.min(r0 + 1, rLast) * dim;
  let s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0; // prettier-ignore
  for (let p = 0; p < dim; p++) {
    const x0 = R[b0 + p];
    const x1 = R[b1 + p];
    const y0 = Q[a0 + p];
    const y1 = Q[a1 + p];
    const y2 = Q[a2 + p];
    const y3 = Q[a3 + p];
    s00 += y0 * x0;
    s01 += y0 * x1;
    s10 += y1 * x0;
    s11 += y1 * x1;
    s20 += y2 * x0;
    s21 += y2 * x1;
    s30 += y3 * x0;
    s31 += y3 * x1;
  }
  dots[0] = s00;
  dots[1] = s01;
  dots[2] = s10;
  dots[3] = s11;
  dots[4] = s20;
  dots[5] = s21;
  dots[6] = s30;
  dots[7] = s31;
}

/** Ref rows per tile: about 64 KiB of them, so a tile stays in cache across all query blocks. */
function tileRows(dim: number): number {
  return Math.max(2, Math.floor(16384 / dim) & ~1);
}

/**
 * Walks every (4 queries × 2 refs) block of the product and hands each finished block to `visit`
 * with its dot products; the visitor applies the metric and consumes the distances.
 */
function forEachBlock(
  Q: Float32Array,
  R: Float32Array,
  rowsQ: number,
  rowsR: number,
  dim: number,
  visit: (q0: number, nq: number, r0: number, nr: number, dots: Float64Array) => void,
): void {
  const dots = new Float64Array(8);
  const tile = tileRows(dim);
  for (let t0 = 0; t0 < rowsR; t0 += tile) {
    const t1 = Math.min(rowsR, t0 + tile);
    for (let q0 = 0; q0 < rowsQ; q0 += 4) {
      const nq = Math.min(4, rowsQ - q0);
      for (let r0 = t0; r0 < t1; r0 += 2) {
        const nr = Math.min(2, t1 - r0);
        dots4x2(Q, R, dim, q0, rowsQ - 1, r0, t1 - 1, dots);
        visit(q0, nq, r0, nr, dots);
      }
    }
  }
}

async function distances(a: MatrixData, b: MatrixData, p: DistancesParams): Promise<Float32Array> {
  const { rowsA, rowsB, dim } = p;
  const metric = CODE[p.metric];
  const A = toFloat32(a);
  const B = toFloat32(b);
  const an = normTerms(A, rowsA, dim, metric);
  const bn = normTerms(B, rowsB, dim, metric);
  const out = new Float32Array(rowsA * rowsB);
  forEachBlock(A, B, rowsA, rowsB, dim, (q0, nq, r0, nr, dots) => {
    for (let i = 0; i < nq; i++) {
      for (let j = 0; j < nr; j++) {
        const d = fromDot(dots[2 * i + j], an[q0 + i], bn[r0 + j], metric);
        const scale = metric === COSINE ? 1 : an[q0 + i] + bn[r0 + j];
        out[(q0 + i) * rowsB + r0 + j] =
          d < RECHECK_FRACTION * scale ? exactDistance(A, q0 + i, B, r0 + j, dim, metric) : metric === EUCLID ? Math.sqrt(d) : d;
      }
    }
  });
  return out;
}

/** The js backend holds rows as the arrays themselves (holdRows); device rows belong to another backend. */
function hostRows(rows: HeldRows, op: string): MatrixData {
  if (ArrayBuffer.isView(rows)) return rows;
  throw new PairpickError('E_BACKEND', `js ${op}: rows held on another backend's device were passed to the js backend`);
}

async function knnMerge(query: MatrixData, held: HeldRows, p: KnnMergeParams, state: TopK): Promise<void> {
  const { rowsQ, rowsR, dim, k, refOffset, queryOffset, excludeSelf } = p;
  const metric = CODE[p.metric];
  const ref = hostRows(held, 'knnMerge');
  if (rowsQ === 0 || rowsR === 0) return;
  const Q = toFloat32(query);
  const R = toFloat32(ref);
  const qn = normTerms(Q, rowsQ, dim, metric);
  const rn = normTerms(R, rowsR, dim, metric);
  // The fast form ranks into a fresh local list of the best k + KNN_SPARE; that list is rescored
  // exactly, re-sorted, and its best k are merged into the state. The spare candidates absorb the
  // fast form's ranking error (~2⁻²²·(‖q‖² + ‖r‖²)): a ref that belongs in the top k is missed only
  // if more than KNN_SPARE others lie within that error of the k-th distance (a near-tie; native
  // does the same).
  const kk = k + KNN_SPARE;
  const D = new Float32Array(rowsQ * kk).fill(Infinity);
  const I = new Int32Array(rowsQ * kk).fill(-1);
  const thr = new Float64Array(rowsQ).fill(Infinity);
  forEachBlock(Q, R, rowsQ, rowsR, dim, (q0, nq, r0, nr, dots) => {
    for (let i = 0; i < nq; i++) {
      const q = q0 + i;
      for (let j = 0; j < nr; j++) {
        let d = fromDot(dots[2 * i + j], qn[q], rn[r0 + j], metric);
        if (!(d <= thr[q])) continue;
        const g = refOffset + r0 + j;
        if (excludeSelf && g === queryOffset + q) continue;
        if (metric === EUCLID) d = fround(Math.sqrt(d));
        if (insert(D, I, q * kk, kk, d, g)) thr[q] = threshold(metric, D[q * kk + kk - 1]);
      }
    }
  });
  for (let q = 0; q < rowsQ; q++) {
    const o = q * kk;
    let n = 0;
    for (; n < kk && I[o + n] >= 0; n++) D[o + n] = exactDistance(Q, q, R, I[o + n] - refOffset, dim, metric);
    // Re-sort the rescored row (insertion: the fast order is nearly right), then merge its best k.
    for (let s = 1; s < n; s++) {
      const d = D[o + s];
      const g = I[o + s];
      let pos = s;
      for (; pos > 0 && (d < D[o + pos - 1] || (d === D[o + pos - 1] && g < I[o + pos - 1])); pos--) {
        D[o + pos] = D[o + pos - 1];
        I[o + pos] = I[o + pos - 1];
      }
      D[o + pos] = d;
      I[o + pos] = g;
    }
    for (let s = 0; s < Math.min(n, k); s++) if (!insert(state.distances, state.indices, q * k, k, D[o + s], I[o + s])) break;
  }
}

async function minUpdate(held: HeldRows, center: MatrixData, minDist: Float32Array, p: MinUpdateParams, exclude?: Uint8Array): Promise<MinUpdateResult> {
  const { rows, dim } = p;
  const points = hostRows(held, 'minUpdate');
  const metric = CODE[p.metric];
  const c = toFloat32(center);
  let cn = 0;
  for (let j = 0; j < dim; j++) cn += c[j] * c[j];
  // fp16 rows are converted one at a time into a scratch row (the pool may be large).
  const half = points instanceof Uint16Array ? points : null;
  const full = half ? null : (points as Float32Array);
  const row = new Float32Array(dim);
  let argmax = -1;
  let max = -Infinity;
  for (let i = 0; i < rows; i++) {
    let x: Float32Array;
    let o: number;
    if (half) {
      halfArrayToFloat(half.subarray(i * dim, (i + 1) * dim), row);
      x = row;
      o = 0;
    } else {
      x = full!;
      o = i * dim;
    }
    let d: number;
    if (metric === COSINE) {
      let dot = 0;
      let nn = 0;
      for (let j = 0; j < dim; j++) {
        const v = x[o + j];
        dot += v * c[j];
        nn += v * v;
      }
      // Float64 throughout (no rounded 1/‖c‖): exact 0 for a duplicate, no cancellation near it.
      d = nn > 0 && cn > 0 ? fround(1 - dot / Math.sqrt(nn * cn)) : 1;
      d = d < 0 ? 0 : d > 2 ? 2 : d;
    } else {
      let s0 = 0;
      let s1 = 0;
      let j = 0;
      for (; j + 2 <= dim; j += 2) {
        const t0 = x[o + j] - c[j];
        const t1 = x[o + j + 1] - c[j + 1];
        s0 += t0 * t0;
        s1 += t1 * t1;
      }
      if (j < dim) {
        const t = x[o + j] - c[j];
        s0 += t * t;
      }
      d = fround(metric === EUCLID ? Math.sqrt(s0 + s1) : s0 + s1);
    }
    let m = minDist[i];
    if (d < m || m !== m) m = d; // a NaN slot takes the new distance (as native)
    minDist[i] = m;
    if ((!exclude || !exclude[i]) && (argmax < 0 || m > max)) {
      argmax = i;
      max = m;
    }
  }
  return { argmax, max };
}

async function coverGains(table: Float32Array, cover: Float32Array, rows: Int32Array, p: CoverGainsParams): Promise<Float64Array> {
  const n = p.columns;
  if (p.add >= 0) {
    for (let j = 0, o = p.add * n; j < n; j++, o++) if (table[o] > cover[j]) cover[j] = table[o];
  }
  const out = new Float64Array(rows.length);
  for (let t = 0; t < rows.length; t++) {
    let g = 0;
    for (let j = 0, o = rows[t] * n; j < n; j++, o++) {
      const d = table[o] - cover[j];
      if (d > 0) g += d;
    }
    out[t] = g;
  }
  return out;
}

export const jsDistanceOps: DistanceOps = {
  distances,
  knnMerge,
  minUpdate,
  coverGains,
  holdRows: async (data) => data,
  releaseRows: () => {},
};
