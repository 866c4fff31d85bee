// Float64 reference for stage 1, written straight from spec/methods.md §1.1–1.2 with whole
// matrices (test sizes only) and no shared code with any backend. The analytic gradients here
// are themselves checked against central finite differences of the loss in test/loss.test.ts.

export interface RefInfoNCE {
  loss: number;
  gradA: Float64Array;
  gradB: Float64Array;
}

function logSumExp(values: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < values.length; i++) m = Math.max(m, values[i]);
  let s = 0;
  for (let i = 0; i < values.length; i++) s += Math.exp(values[i] - m);
  return m + Math.log(s);
}

/** s_ij = ⟨za_i, zb_j⟩/τ as a full b × b matrix (array of rows). */
function logits(za: ArrayLike<number>, zb: ArrayLike<number>, rowsA: number, rowsB: number, dim: number, temperature: number): Float64Array[] {
  const s: Float64Array[] = [];
  for (let i = 0; i < rowsA; i++) {
    const row = new Float64Array(rowsB);
    for (let j = 0; j < rowsB; j++) {
      let acc = 0;
      for (let t = 0; t < dim; t++) acc += za[i * dim + t] * zb[j * dim + t];
      row[j] = acc / temperature;
    }
    s.push(row);
  }
  return s;
}

/** Symmetric InfoNCE loss only (for finite differences). */
export function infoNCELossRef(za: ArrayLike<number>, zb: ArrayLike<number>, rows: number, dim: number, temperature: number): number {
  return infoNCERef(za, zb, rows, dim, temperature, false).loss;
}

/** L_cm = (1/2b) Σ_i [−log softmax_j(s_i·)[i] − log softmax_j(s_·i)[i]] and its gradients. */
export function infoNCERef(za: ArrayLike<number>, zb: ArrayLike<number>, rows: number, dim: number, temperature: number, withGrad = true): RefInfoNCE {
  const b = rows;
  const s = logits(za, zb, b, b, dim, temperature);
  const rowLse = s.map((row) => logSumExp(row));
  const colLse: number[] = [];
  for (let j = 0; j < b; j++) colLse.push(logSumExp(s.map((row) => row[j])));
  let loss = 0;
  for (let i = 0; i < b; i++) loss += -(s[i][i] - rowLse[i]) - (s[i][i] - colLse[i]);
  loss /= 2 * b;
  const gradA = new Float64Array(b * dim);
  const gradB = new Float64Array(b * dim);
  if (withGrad) {
    // ∂L/∂s_ij = (softmax over row i at j + softmax over column j at i − 2·[i=j]) / 2b.
    for (let i = 0; i < b; i++) {
      for (let j = 0; j < b; j++) {
        const g = (Math.exp(s[i][j] - rowLse[i]) + Math.exp(s[i][j] - colLse[j]) - (i === j ? 2 : 0)) / (2 * b) / temperature;
        for (let t = 0; t < dim; t++) {
          gradA[i * dim + t] += g * zb[j * dim + t];
          gradB[j * dim + t] += g * za[i * dim + t];
        }
      }
    }
  }
  return { loss, gradA, gradB };
}

/**
 * Sinkhorn-Knopp exactly as §1.2 describes it (start from exp(P/ε) normalised to sum 1; per
 * iteration divide columns by their sum and K, rows by their sum and b; finally × b), carried
 * out on log Q so that no value under- or overflows.
 */
export function sinkhornRef(scores: ArrayLike<number>, rows: number, k: number, epsilon: number, iterations: number): Float64Array {
  const n = rows * k;
  const lq = new Float64Array(n);
  for (let i = 0; i < n; i++) lq[i] = scores[i] / epsilon;
  const total = logSumExp(lq);
  for (let i = 0; i < n; i++) lq[i] -= total;
  for (let it = 0; it < iterations; it++) {
    for (let c = 0; c < k; c++) {
      const col: number[] = [];
      for (let r = 0; r < rows; r++) col.push(lq[r * k + c]);
      const sub = logSumExp(col) + Math.log(k);
      for (let r = 0; r < rows; r++) lq[r * k + c] -= sub;
    }
    for (let r = 0; r < rows; r++) {
      const sub = logSumExp(lq.subarray(r * k, (r + 1) * k)) + Math.log(rows);
      for (let c = 0; c < k; c++) lq[r * k + c] -= sub;
    }
  }
  const q = new Float64Array(n);
  for (let i = 0; i < n; i++) q[i] = Math.exp(lq[i]) * rows;
  return q;
}

export interface RefPrototypeLoss {
  loss: number;
  gradZ: Float64Array;
  gradPrototypes: Float64Array;
}

/** L = −(1/b) Σ_i Σ_k Q_ik log softmax_k(⟨z_i, c_k⟩/τ_p), Q constant, and its gradients. */
export function prototypeLossRef(
  z: ArrayLike<number>,
  prototypes: ArrayLike<number>,
  targets: ArrayLike<number>,
  rows: number,
  dim: number,
  k: number,
  temperature: number,
  withGrad = true,
): RefPrototypeLoss {
  const l = logits(z, prototypes, rows, k, dim, temperature);
  let loss = 0;
  const gradZ = new Float64Array(rows * dim);
  const gradPrototypes = new Float64Array(k * dim);
  for (let i = 0; i < rows; i++) {
    const lse = logSumExp(l[i]);
    let qSum = 0;
    for (let c = 0; c < k; c++) {
      loss -= targets[i * k + c] * (l[i][c] - lse);
      qSum += targets[i * k + c];
    }
    if (!withGrad) continue;
    for (let c = 0; c < k; c++) {
      const g = (qSum * Math.exp(l[i][c] - lse) - targets[i * k + c]) / rows / temperature;
      for (let t = 0; t < dim; t++) {
        gradZ[i * dim + t] += g * prototypes[c * dim + t];
        gradPrototypes[c * dim + t] += g * z[i * dim + t];
      }
    }
  }
  return { loss: loss / rows, gradZ, gradPrototypes };
}

/** c = op(a)·op(b) (+ c0 when given), float64: op(a) and op(b)ᵀ are first written out row-major. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  n: number,
  inner: number,
  transA: boolean,
  transB: boolean,
  c0?: ArrayLike<number>,
): Float64Array {
  const opA = new Float64Array(m * inner); // opA[i][t] = op(a)_it
  const opBt = new Float64Array(n * inner); // opBt[j][t] = op(b)_tj
  for (let i = 0; i < m; i++) for (let t = 0; t < inner; t++) opA[i * inner + t] = transA ? a[t * m + i] : a[i * inner + t];
  for (let j = 0; j < n; j++) for (let t = 0; t < inner; t++) opBt[j * inner + t] = transB ? b[j * inner + t] : b[t * n + j];
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = c0 ? c0[i * n + j] : 0;
      for (let t = 0; t < inner; t++) acc += opA[i * inner + t] * opBt[j * inner + t];
      c[i * n + j] = acc;
    }
  }
  return c;
}

/** Central finite differences of f at x (float64), every coordinate. */
export function finiteDifferences(f: (x: Float64Array) => number, x: Float64Array, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + h;
    const up = f(x);
    x[i] = keep - h;
    const down = f(x);
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

/** max_i |x_i − y_i| / max_i |y_i|: the norm-wise relative error of x against the reference y. */
export function relativeError(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new Error(`length ${x.length} vs ${y.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    const d = Math.abs(x[i] - y[i]);
    if (Number.isNaN(d)) return Infinity;
    if (d > diff) diff = d;
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return scale === 0 ? diff : diff / scale;
}
