// Stage-1 ops in plain TypeScript (spec/methods.md §1.1–1.2): the reference-quality fallback.
// Everything is accumulated in float64 (JS numbers) and rounded to float32 only on output.
// InfoNCE never holds the b×b logits: it streams one row of them at a time, twice.
import type { MatrixData } from '../ops-distance.js';
import type {
  AdamWStepParams,
  InfoNCEParams,
  LinearBackwardParams,
  LinearForwardParams,
  InfoNCEResult,
  LossOps,
  MatmulParams,
  PrototypeLossParams,
  PrototypeLossResult,
  SinkhornParams,
} from '../ops-loss.js';
import { toFloat32 } from '../../util/half.js';

function toFloat64(src: Float32Array): Float64Array {
  return Float64Array.from(src);
}

/** ⟨x_i, y_j⟩ over `dim` values of two row-major float64 matrices. */
function dot(x: Float64Array, i: number, y: Float64Array, j: number, dim: number): number {
  let s = 0;
  const xo = i * dim;
  const yo = j * dim;
  for (let t = 0; t < dim; t++) s += x[xo + t] * y[yo + t];
  return s;
}

/**
 * Symmetric InfoNCE (§1.1). Pass 1 computes each row's log-sum-exp exactly and every column's
 * with an online (running max, rescaled sum) update; pass 2 recomputes the logits row by row and
 * accumulates ∂L/∂s_ij = (softmax_row + softmax_col − 2·[i=j]) / 2b into both gradients.
 */
export function infoNCEJs(za: Float32Array, zb: Float32Array, p: InfoNCEParams): InfoNCEResult {
  const { rows: b, dim: d } = p;
  const invT = 1 / p.temperature;
  const A = toFloat64(za);
  const B = toFloat64(zb);
  const rowLse = new Float64Array(b);
  const colMax = new Float64Array(b).fill(-Infinity);
  const colSum = new Float64Array(b);
  const s = new Float64Array(b);
  let diagSum = 0;
  for (let i = 0; i < b; i++) {
    let m = -Infinity;
    for (let j = 0; j < b; j++) {
      const v = dot(A, i, B, j, d) * invT;
      s[j] = v;
      if (v > m) m = v;
      // Online column log-sum-exp: rescale the running sum when the column max grows.
      if (v > colMax[j]) {
        colSum[j] = colSum[j] * Math.exp(colMax[j] - v) + 1;
        colMax[j] = v;
      } else {
        colSum[j] += Math.exp(v - colMax[j]);
      }
    }
    let sum = 0;
    for (let j = 0; j < b; j++) sum += Math.exp(s[j] - m);
    rowLse[i] = m + Math.log(sum);
    diagSum += s[i];
  }
  const colLse = new Float64Array(b);
  let lseSum = 0;
  for (let j = 0; j < b; j++) {
    colLse[j] = colMax[j] + Math.log(colSum[j]);
    lseSum += rowLse[j] + colLse[j];
  }
  const loss = (lseSum - 2 * diagSum) / (2 * b);

  const gA = new Float64Array(b * d);
  const gB = new Float64Array(b * d);
  const scale = invT / (2 * b);
  for (let i = 0; i < b; i++) {
    const io = i * d;
    for (let j = 0; j < b; j++) {
      const v = dot(A, i, B, j, d) * invT;
      let g = Math.exp(v - rowLse[i]) + Math.exp(v - colLse[j]);
      if (i === j) g -= 2;
      g *= scale;
      const jo = j * d;
      for (let t = 0; t < d; t++) {
        gA[io + t] += g * B[jo + t];
        gB[jo + t] += g * A[io + t];
      }
    }
  }
  return { loss, gradA: Float32Array.from(gA), gradB: Float32Array.from(gB) };
}

/** Beyond this spread of P/ε the multiplicative form could underflow in float64; use logs. */
const SINKHORN_LOG_DOMAIN_SPREAD = 600;

/**
 * Sinkhorn-Knopp codes (§1.2) in float64. The multiplicative form, after subtracting the global
 * max of P/ε (a constant factor the first normalisation removes), is exact in float64 unless the
 * logits span more than ~700 nats; then the same iterations run in the log domain.
 */
export function sinkhornJs(scores: Float32Array, p: SinkhornParams): Float32Array {
  const { rows: b, k: K, iterations } = p;
  const n = b * K;
  const logits = new Float64Array(n);
  let max = -Infinity;
  let min = Infinity;
  for (let i = 0; i < n; i++) {
    const v = scores[i] / p.epsilon;
    logits[i] = v;
    if (v > max) max = v;
    if (v < min) min = v;
  }
  const out = new Float32Array(n);
  if (max - min > SINKHORN_LOG_DOMAIN_SPREAD) {
    sinkhornLogDomain(logits, b, K, iterations, out);
    return out;
  }
  const q = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += q[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < n; i++) q[i] /= total;
  const col = new Float64Array(K);
  for (let it = 0; it < iterations; it++) {
    col.fill(0);
    for (let i = 0; i < b; i++) for (let k = 0; k < K; k++) col[k] += q[i * K + k];
    for (let k = 0; k < K; k++) col[k] = 1 / (col[k] * K);
    for (let i = 0; i < b; i++) {
      const o = i * K;
      let r = 0;
      for (let k = 0; k < K; k++) r += q[o + k] *= col[k];
      const inv = 1 / (r * b);
      for (let k = 0; k < K; k++) q[o + k] *= inv;
    }
  }
  for (let i = 0; i < n; i++) out[i] = q[i] * b;
  return out;
}

/** The same iterations on log Q (log-sum-exp normalisations); no underflow at any spread. */
function sinkhornLogDomain(lq: Float64Array, b: number, K: number, iterations: number, out: Float32Array): void {
  const n = b * K;
  const logSumExp = (get: (t: number) => number, count: number): number => {
    let m = -Infinity;
    for (let t = 0; t < count; t++) m = Math.max(m, get(t));
    let s = 0;
    for (let t = 0; t < count; t++) s += Math.exp(get(t) - m);
    return m + Math.log(s);
  };
  const total = logSumExp((t) => lq[t], n);
  for (let i = 0; i < n; i++) lq[i] -= total;
  const logK = Math.log(K);
  const logB = Math.log(b);
  for (let it = 0; it < iterations; it++) {
    for (let k = 0; k < K; k++) {
      const c = logSumExp((i) => lq[i * K + k], b) + logK;
      for (let i = 0; i < b; i++) lq[i * K + k] -= c;
    }
    for (let i = 0; i < b; i++) {
      const o = i * K;
      const r = logSumExp((k) => lq[o + k], K) + logB;
      for (let k = 0; k < K; k++) lq[o + k] -= r;
    }
  }
  for (let i = 0; i < n; i++) out[i] = Math.exp(lq[i] + logB);
}

/**
 * Prototype loss (§1.2) with constant targets Q:
 * L = −(1/b) Σ_i Σ_k Q_ik log softmax_k(l_i), l_ik = ⟨z_i, c_k⟩/τ_p, so
 * ∂L/∂l_ik = (softmax_k(l_i)·Σ_k' Q_ik' − Q_ik) / b (no assumption that the rows of Q sum to 1).
 */
export function prototypeLossJs(z: Float32Array, prototypes: Float32Array, targets: Float32Array, p: PrototypeLossParams): PrototypeLossResult {
  const { rows: b, dim: d, k: K } = p;
  const invT = 1 / p.temperature;
  const Z = toFloat64(z);
  const C = toFloat64(prototypes);
  const gZ = new Float64Array(b * d);
  const gC = new Float64Array(K * d);
  const l = new Float64Array(K);
  let loss = 0;
  for (let i = 0; i < b; i++) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) {
      l[k] = dot(Z, i, C, k, d) * invT;
      if (l[k] > m) m = l[k];
    }
    let sum = 0;
    for (let k = 0; k < K; k++) sum += Math.exp(l[k] - m);
    const lse = m + Math.log(sum);
    let qSum = 0;
    for (let k = 0; k < K; k++) {
      const q = targets[i * K + k];
      qSum += q;
      loss -= q * (l[k] - lse);
    }
    const io = i * d;
    for (let k = 0; k < K; k++) {
      const g = ((Math.exp(l[k] - lse) * qSum - targets[i * K + k]) / b) * invT;
      const ko = k * d;
      for (let t = 0; t < d; t++) {
        gZ[io + t] += g * C[ko + t];
        gC[ko + t] += g * Z[io + t];
      }
    }
  }
  return { loss: loss / b, gradZ: Float32Array.from(gZ), gradPrototypes: Float32Array.from(gC) };
}

/** c = op(a)·op(b) (or c += …), accumulated in float64 per output row. */
export function matmulJs(a: MatrixData, b: Float32Array, c: Float32Array, p: MatmulParams): void {
  const { m, n, inner, transA, transB, accumulate } = p;
  const A = toFloat32(a);
  const row = new Float64Array(n);
  const aRow = new Float64Array(inner);
  for (let i = 0; i < m; i++) {
    const co = i * n;
    for (let t = 0; t < inner; t++) aRow[t] = transA ? A[t * m + i] : A[i * inner + t];
    if (transB) {
      // op(B) = Bᵀ: each output is a dot product of two contiguous rows.
      for (let j = 0; j < n; j++) {
        let s = accumulate ? c[co + j] : 0;
        const bo = j * inner;
        for (let t = 0; t < inner; t++) s += aRow[t] * b[bo + t];
        row[j] = s;
      }
    } else {
      if (accumulate) for (let j = 0; j < n; j++) row[j] = c[co + j];
      else row.fill(0);
      for (let t = 0; t < inner; t++) {
        const av = aRow[t];
        const bo = t * n;
        for (let j = 0; j < n; j++) row[j] += av * b[bo + j];
      }
    }
    for (let j = 0; j < n; j++) c[co + j] = row[j];
  }
}

/** y = x·W + bias, then max(0, ·) when relu (NaN stays NaN). */
export function linearForwardJs(x: MatrixData, w: Float32Array, bias: Float32Array, y: Float32Array, p: LinearForwardParams): void {
  const { rows, inputs, outputs, relu } = p;
  matmulJs(x, w, y, { m: rows, n: outputs, inner: inputs, transA: false, transB: false, accumulate: false });
  for (let r = 0, o = 0; r < rows; r++, o += outputs) {
    for (let j = 0; j < outputs; j++) {
      const v = y[o + j] + bias[j];
      y[o + j] = relu && v < 0 ? 0 : v;
    }
  }
}

/** gradW = xᵀ·gy, gradBias = Σ_rows gy, gx = (gy·Wᵀ) ⊙ [x > 0 when reluInput]. */
export function linearBackwardJs(
  x: MatrixData,
  w: Float32Array,
  gy: Float32Array,
  gradW: Float32Array,
  gradBias: Float32Array,
  gx: Float32Array | null,
  p: LinearBackwardParams,
): void {
  const { rows, inputs, outputs, reluInput } = p;
  matmulJs(x, gy, gradW, { m: inputs, n: outputs, inner: rows, transA: true, transB: false, accumulate: false });
  const acc = new Float64Array(outputs);
  for (let r = 0, o = 0; r < rows; r++, o += outputs) for (let j = 0; j < outputs; j++) acc[j] += gy[o + j];
  gradBias.set(acc);
  if (!gx) return;
  matmulJs(gy, w, gx, { m: rows, n: inputs, inner: outputs, transA: false, transB: true, accumulate: false });
  if (reluInput) {
    const X = toFloat32(x);
    for (let i = 0; i < gx.length; i++) if (!(X[i] > 0)) gx[i] = 0;
  }
}

/** One AdamW step in place (float64 arithmetic per value), as torch.optim.AdamW. */
export function adamwStepJs(params: Float32Array, grads: Float32Array, m: Float32Array, v: Float32Array, p: AdamWStepParams): void {
  const { lr, beta1, beta2, eps, decayed } = p;
  const stepSize = lr / (1 - beta1 ** p.step);
  const invSqrtC2 = 1 / Math.sqrt(1 - beta2 ** p.step);
  const shrink = 1 - lr * p.weightDecay;
  for (let i = 0; i < params.length; i++) {
    const gi = grads[i];
    const mi = beta1 * m[i] + (1 - beta1) * gi;
    const vi = beta2 * v[i] + (1 - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] * (i < decayed ? shrink : 1) - (stepSize * mi) / (Math.sqrt(vi) * invSqrtC2 + eps);
  }
}

export const jsLossOps: LossOps = {
  async infoNCE(za, zb, p) {
    return infoNCEJs(za, zb, p);
  },
  async sinkhorn(scores, p) {
    return sinkhornJs(scores, p);
  },
  async prototypeLoss(z, prototypes, targets, p) {
    return prototypeLossJs(z, prototypes, targets, p);
  },
  async matmul(a, b, c, p) {
    matmulJs(a, b, c, p);
  },
  async linearForward(x, w, bias, y, p) {
    linearForwardJs(x, w, bias, y, p);
  },
  async linearBackward(x, w, gy, gradW, gradBias, gx, p) {
    linearBackwardJs(x, w, gy, gradW, gradBias, gx, p);
  },
  async adamwStep(params, grads, m, v, p) {
    adamwStepJs(params, grads, m, v, p);
  },
};
