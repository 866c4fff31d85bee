// Downstream-classifier ops in plain TypeScript (spec/methods.md §4, §6), accumulated in float64
// and rounded to float32 on output.
import type {
  EntropyFusionParams,
  EntropyFusionResult,
  HeadProjectionParams,
  SoftmaxCrossEntropyParams,
  SoftmaxCrossEntropyResult,
  TrainOps,
} from '../ops-train.js';

/** Fused softmax + cross-entropy + gradient, one row at a time (max, log-sum-exp, then the gradient). */
export function softmaxCrossEntropyJs(logits: Float32Array, labels: Int32Array, p: SoftmaxCrossEntropyParams): SoftmaxCrossEntropyResult {
  const { rows, classes: C, scale } = p;
  const grad = new Float32Array(rows * C);
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < rows; i++) {
    const y = labels[i];
    if (y < 0) continue;
    const o = i * C;
    let max = -Infinity;
    let arg = 0;
    for (let k = 0; k < C; k++) {
      if (logits[o + k] > max) {
        max = logits[o + k];
        arg = k;
      }
    }
    let sum = 0;
    for (let k = 0; k < C; k++) sum += Math.exp(logits[o + k] - max);
    const lse = max + Math.log(sum);
    loss += lse - logits[o + y];
    if (arg === y) correct++;
    for (let k = 0; k < C; k++) grad[o + k] = scale * (Math.exp(logits[o + k] - lse) - (k === y ? 1 : 0));
  }
  return { loss: loss * scale, grad, correct };
}

/** MLA's projection update and gradW ← gradW · P (spec §6), in float64. */
export function headProjectionJs(P: Float32Array, hbar: Float32Array, gradW: Float32Array, p: HeadProjectionParams): void {
  const { hidden: h, classes: C, alpha } = p;
  const k = new Float64Array(h);
  for (let r = 0; r < h; r++) {
    let s = 0;
    for (let c = 0; c < h; c++) s += P[r * h + c] * hbar[c];
    k[r] = s;
  }
  let denom = alpha;
  for (let c = 0; c < h; c++) denom += hbar[c] * k[c];
  const next = new Float64Array(h * h);
  let norm2 = 0;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < h; c++) {
      const v = P[r * h + c] - (k[r] * k[c]) / denom;
      next[r * h + c] = v;
      norm2 += v * v;
    }
  }
  const inv = 1 / Math.sqrt(norm2);
  for (let t = 0; t < h * h; t++) P[t] = next[t] * inv;
  const row = new Float64Array(h);
  for (let i = 0; i < C; i++) {
    row.fill(0);
    for (let t = 0; t < h; t++) {
      const g = gradW[i * h + t];
      if (g === 0) continue;
      for (let c = 0; c < h; c++) row[c] += g * P[t * h + c];
    }
    for (let c = 0; c < h; c++) gradW[i * h + c] = row[c];
  }
}

/** Entropy-weighted (or mean) fusion of per-modality logits over the present modalities. */
export function entropyFusionJs(logits: Float32Array, present: Uint8Array, p: EntropyFusionParams): EntropyFusionResult {
  const { rows, classes: C, modalities: M, mode } = p;
  const fused = new Float32Array(rows * C);
  const weights = new Float32Array(rows * M);
  const entropy = new Float32Array(rows * M);
  const probs = new Float32Array(M * rows * C);
  const e = new Float64Array(M);
  const acc = new Float64Array(C);
  for (let i = 0; i < rows; i++) {
    let maxE = -Infinity;
    let count = 0;
    for (let m = 0; m < M; m++) {
      const o = (m * rows + i) * C;
      if (!present[i * M + m]) {
        entropy[i * M + m] = NaN;
        for (let k = 0; k < C; k++) probs[o + k] = NaN;
        continue;
      }
      count++;
      let max = -Infinity;
      for (let k = 0; k < C; k++) max = Math.max(max, logits[o + k]);
      let sum = 0;
      for (let k = 0; k < C; k++) sum += Math.exp(logits[o + k] - max);
      const lse = max + Math.log(sum);
      let ent = 0;
      for (let k = 0; k < C; k++) {
        const lp = logits[o + k] - lse;
        const q = Math.exp(lp);
        probs[o + k] = q;
        ent -= q * lp;
      }
      e[m] = ent;
      entropy[i * M + m] = ent;
      if (ent > maxE) maxE = ent;
    }
    if (count === 0) {
      for (let k = 0; k < C; k++) fused[i * C + k] = NaN;
      continue;
    }
    let z = 0;
    for (let m = 0; m < M; m++) if (present[i * M + m]) z += mode === 'dynamic' ? Math.exp(maxE - e[m]) : 1;
    acc.fill(0);
    for (let m = 0; m < M; m++) {
      if (!present[i * M + m]) continue;
      const w = (mode === 'dynamic' ? Math.exp(maxE - e[m]) : 1) / z;
      weights[i * M + m] = w;
      const o = (m * rows + i) * C;
      for (let k = 0; k < C; k++) acc[k] += w * logits[o + k];
    }
    for (let k = 0; k < C; k++) fused[i * C + k] = acc[k];
  }
  return { fused, weights, entropy, probs };
}

export const jsTrainOps: TrainOps = {
  async softmaxCrossEntropy(logits, labels, p) {
    return softmaxCrossEntropyJs(logits, labels, p);
  },
  async headProjection(P, hbar, gradW, p) {
    headProjectionJs(P, hbar, gradW, p);
  },
  async entropyFusion(logits, present, p) {
    return entropyFusionJs(logits, present, p);
  },
};
