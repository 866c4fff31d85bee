// Float64 transcriptions of spec/methods.md §4 and §6 for the classifier tests: the losses of both
// models as plain functions of every parameter, MLA's projection update, and the fusion.

/** Σ_{label ≥ 0} −log softmax(logits_i)[label_i] · scale. */
export function softmaxCrossEntropyRef(logits: ArrayLike<number>, labels: ArrayLike<number>, rows: number, C: number, scale: number): number {
  let loss = 0;
  for (let i = 0; i < rows; i++) {
    if (labels[i] < 0) continue;
    let max = -Infinity;
    for (let k = 0; k < C; k++) max = Math.max(max, logits[i * C + k]);
    let s = 0;
    for (let k = 0; k < C; k++) s += Math.exp(logits[i * C + k] - max);
    loss += max + Math.log(s) - logits[i * C + labels[i]];
  }
  return loss * scale;
}

/** One step of spec §6: k = P h̄ᵀ, P ← P − k kᵀ/(α + h̄ k), P ← P/‖P‖_F; returns (P, gradW·P). */
export function headProjectionRef(P: Float64Array, hbar: ArrayLike<number>, gradW: ArrayLike<number>, h: number, C: number, alpha: number): { P: Float64Array; grad: Float64Array } {
  const k = new Float64Array(h);
  for (let r = 0; r < h; r++) for (let c = 0; c < h; c++) k[r] += P[r * h + c] * hbar[c];
  let hk = 0;
  for (let c = 0; c < h; c++) hk += hbar[c] * k[c];
  const out = new Float64Array(h * h);
  let f = 0;
  for (let r = 0; r < h; r++) for (let c = 0; c < h; c++) f += (out[r * h + c] = P[r * h + c] - (k[r] * k[c]) / (alpha + hk)) ** 2;
  for (let t = 0; t < h * h; t++) out[t] /= Math.sqrt(f);
  const grad = new Float64Array(C * h);
  for (let i = 0; i < C; i++) for (let c = 0; c < h; c++) for (let t = 0; t < h; t++) grad[i * h + c] += gradW[i * h + t] * out[t * h + c];
  return { P: out, grad };
}

/** Fusion per row over present modalities: λ = softmax(−entropy) ('dynamic') or uniform ('mean'). */
export function entropyFusionRef(logits: ArrayLike<number>, present: ArrayLike<number>, rows: number, C: number, M: number, mode: 'dynamic' | 'mean') {
  const fused = new Float64Array(rows * C);
  const weights = new Float64Array(rows * M);
  const entropy = new Float64Array(rows * M).fill(NaN);
  for (let i = 0; i < rows; i++) {
    const e: number[] = [];
    for (let m = 0; m < M; m++) {
      if (!present[i * M + m]) continue;
      const o = (m * rows + i) * C;
      let z = 0;
      for (let k = 0; k < C; k++) z += Math.exp(logits[o + k]);
      let h = 0;
      for (let k = 0; k < C; k++) {
        const p = Math.exp(logits[o + k]) / z;
        h -= p * Math.log(p);
      }
      entropy[i * M + m] = h;
      e[m] = h;
    }
    let z = 0;
    for (let m = 0; m < M; m++) if (present[i * M + m]) z += mode === 'dynamic' ? Math.exp(-e[m]) : 1;
    for (let m = 0; m < M; m++) {
      if (!present[i * M + m]) continue;
      const w = (mode === 'dynamic' ? Math.exp(-e[m]) : 1) / z;
      weights[i * M + m] = w;
      for (let k = 0; k < C; k++) fused[i * C + k] += w * logits[(m * rows + i) * C + k];
    }
  }
  return { fused, weights, entropy };
}

/** A network's parameters as one float64 vector, in this order per modality: encoder W (D × h, input-major), b (h); then head W (C × in), b (C); then aux W (C × h), b (C) per modality. */
export interface NetShape {
  dims: number[];
  hidden: number;
  classes: number;
  lateFusion: boolean;
}

export function paramCount(s: NetShape): number {
  const M = s.dims.length;
  let n = 0;
  for (const D of s.dims) n += D * s.hidden + s.hidden;
  n += s.classes * (s.lateFusion ? M * s.hidden : s.hidden) + s.classes;
  if (s.lateFusion) n += M * (s.classes * s.hidden + s.classes);
  return n;
}

/** Encoder pre-activations x·W + b (rows × h) of modality m, float64. */
export function preActivations(theta: Float64Array, s: NetShape, m: number, x: ArrayLike<number>, rows: number): Float64Array {
  let at = 0;
  for (let j = 0; j < m; j++) at += s.dims[j] * s.hidden + s.hidden;
  const D = s.dims[m];
  const h = s.hidden;
  const z = new Float64Array(rows * h);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < h; j++) {
      let v = theta[at + D * h + j];
      for (let t = 0; t < D; t++) v += x[r * D + t] * theta[at + t * h + j];
      z[r * h + j] = v;
    }
  }
  return z;
}

function headOffset(s: NetShape): number {
  let at = 0;
  for (const D of s.dims) at += D * s.hidden + s.hidden;
  return at;
}

function linear(theta: Float64Array, at: number, input: Float64Array, rows: number, inDim: number, C: number): Float64Array {
  const out = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < C; k++) {
      let v = theta[at + C * inDim + k];
      for (let t = 0; t < inDim; t++) v += theta[at + k * inDim + t] * input[r * inDim + t];
      out[r * C + k] = v;
    }
  }
  return out;
}

/** Late fusion loss (spec §4): (CE_fused + Σ_m CE_aux_m)/(1 + M), aux CEs over present rows, missing h = 0. */
export function lateFusionLossRef(theta: Float64Array, s: NetShape, x: ArrayLike<number>[], present: ArrayLike<number>, labels: ArrayLike<number>, rows: number): number {
  const M = s.dims.length;
  const h = s.hidden;
  const C = s.classes;
  const hs = s.dims.map((_, m) => {
    const z = preActivations(theta, s, m, x[m], rows);
    for (let r = 0; r < rows; r++) for (let j = 0; j < h; j++) z[r * h + j] = present[r * M + m] ? Math.max(0, z[r * h + j]) : 0;
    return z;
  });
  const H = new Float64Array(rows * M * h);
  for (let r = 0; r < rows; r++) for (let m = 0; m < M; m++) for (let j = 0; j < h; j++) H[(r * M + m) * h + j] = hs[m][r * h + j];
  let at = headOffset(s);
  let loss = softmaxCrossEntropyRef(linear(theta, at, H, rows, M * h, C), labels, rows, C, 1 / rows);
  at += C * M * h + C;
  for (let m = 0; m < M; m++) {
    const lab = Array.from({ length: rows }, (_, r) => (present[r * M + m] ? labels[r] : -1));
    const n = lab.filter((v) => v >= 0).length;
    if (n > 0) loss += softmaxCrossEntropyRef(linear(theta, at, hs[m], rows, h, C), lab, rows, C, 1 / n);
    at += C * h + C;
  }
  return loss / (1 + M);
}

/** MLA loss of modality m (spec §6): mean CE of g(f_m(x^m)). */
export function mlaLossRef(theta: Float64Array, s: NetShape, m: number, x: ArrayLike<number>, labels: ArrayLike<number>, rows: number): number {
  const h = s.hidden;
  const z = preActivations(theta, s, m, x, rows);
  for (let i = 0; i < z.length; i++) z[i] = Math.max(0, z[i]);
  return softmaxCrossEntropyRef(linear(theta, headOffset(s), z, rows, h, s.classes), labels, rows, s.classes, 1 / rows);
}
