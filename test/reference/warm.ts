// Float64 references for the warm-start strategies, written from spec/methods.md §5 (and §4/§6
// for the models' fused outputs), independent of src/: plain loops, the gradient embeddings
// materialised, k-means++ by a cumulative sum.
import type { RandomClassifier } from '../helpers/classifier.js';

export interface RowReference {
  logits: Float64Array;
  p: Float64Array;
  yhat: number;
  /** Per modality h^m (zeros when missing). */
  h: Float64Array[];
  /** BMMAL (late fusion): φ, c, s per modality. */
  phi?: Float64Array;
  c?: Float64Array;
  s?: Float64Array;
  /** The gradient embedding g (BADGE: r ⊗ x; BMMAL: [s_m r ⊗ h^m]_m), classes × features, class-major. */
  g: Float64Array;
}

function softmax(l: ArrayLike<number>): Float64Array {
  const m = Math.max(...Array.from(l));
  const e = Float64Array.from(l, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function factorial(n: number): number {
  return n <= 1 ? 1 : n * factorial(n - 1);
}

/** Logits of a late-fusion head with only the modalities in `keep` (the others' h set to 0). */
function lateLogits(model: RandomClassifier, h: Float64Array[], keep: boolean[]): Float64Array {
  const { classes: C, hidden: H } = model;
  const M = h.length;
  const { weight, bias } = model.weights.head;
  const out = Float64Array.from(bias);
  for (let c = 0; c < C; c++) for (let m = 0; m < M; m++) if (keep[m]) for (let j = 0; j < H; j++) out[c] += weight[c * M * H + m * H + j] * h[m][j];
  return out;
}

/** Everything §5 defines for row i of the pool (x[m] = that modality's rows). */
export function rowReference(model: RandomClassifier, x: Float32Array[], i: number, balance: boolean): RowReference {
  const { classes: C, hidden: H } = model;
  const M = model.modalities.length;
  const h = model.modalities.map((mod, m) => model.encode(m, x[m], i * mod.dim) ?? new Float64Array(H));
  let logits: Float64Array;
  let feature: Float64Array; // the penultimate feature the head reads
  if (model.model === 'late-fusion') {
    logits = lateLogits(model, h, h.map(() => true));
    feature = new Float64Array(M * H);
    h.forEach((hm, m) => feature.set(hm, m * H));
  } else {
    // §6: λ = softmax(−e) of the modality entropies, output Σ λ_m g(h^m).
    const { weight, bias } = model.weights.head;
    const per = h.map((hm) => {
      const l = Float64Array.from(bias);
      for (let c = 0; c < C; c++) for (let j = 0; j < H; j++) l[c] += weight[c * H + j] * hm[j];
      return l;
    });
    const e = per.map((l) => -softmax(l).reduce((s, p) => s + p * Math.log(p), 0));
    const lambda = softmax(e.map((v) => -v));
    logits = new Float64Array(C);
    feature = new Float64Array(H);
    per.forEach((l, m) => {
      for (let c = 0; c < C; c++) logits[c] += lambda[m] * l[c];
      for (let j = 0; j < H; j++) feature[j] += lambda[m] * h[m][j];
    });
  }
  const p = softmax(logits);
  let yhat = 0;
  for (let c = 1; c < C; c++) if (logits[c] > logits[yhat]) yhat = c;
  const r = Float64Array.from(p, (v, c) => v - (c === yhat ? 1 : 0));
  const out: RowReference = { logits, p, yhat, h, g: new Float64Array(0) };
  const scale = new Float64Array(model.model === 'late-fusion' ? M : 1).fill(1);
  if (balance) {
    // v(T): fused softmax at ŷ with only T kept; Shapley φ_m over all subsets (for M = 2 this is
    // ½[(v_ab − v_b) + (v_a − v_∅)], the spec's formula).
    const v = (T: number) => softmax(lateLogits(model, h, h.map((_, m) => ((T >> m) & 1) === 1)))[yhat];
    const phi = new Float64Array(M);
    for (let m = 0; m < M; m++) {
      for (let T = 0; T < 1 << M; T++) {
        if ((T >> m) & 1) continue;
        let size = 0;
        for (let k = 0; k < M; k++) size += (T >> k) & 1;
        phi[m] += ((factorial(size) * factorial(M - size - 1)) / factorial(M)) * (v(T | (1 << m)) - v(T));
      }
    }
    const total = phi.reduce((a, b) => a + Math.abs(b), 0);
    const c = phi.map((f) => (total > 0 ? Math.abs(f) / total : 1 / M));
    const cmax = Math.max(...c);
    const s = c.map((cm) => 1 - (cmax - cm)); // dominant keeps 1; M = 2: the other 1 − |c_a − c_b|
    Object.assign(out, { phi, c, s });
    scale.set(s);
  }
  const F = feature.length;
  const blockDim = model.model === 'late-fusion' ? H : F;
  out.g = new Float64Array(C * F);
  for (let c = 0; c < C; c++) for (let f = 0; f < F; f++) out.g[c * F + f] = r[c] * scale[Math.floor(f / blockDim)] * feature[f];
  return out;
}

export function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export interface KmeansppReference {
  picks: number[];
  /** Smallest distance, over the draws, of the target to a cumulative-sum boundary, relative to the total. */
  drawMargin: number;
  /** Relative gap between the largest and second-largest ‖g‖² among the candidates. */
  firstMargin: number;
}

/** k-means++ seeding (§5.2) on materialised embeddings: first the largest ‖g‖, then D²-sampling with uniforms[t]. */
export function kmeansppReference(g: Float64Array[], exclude: Uint8Array, uniforms: Float64Array, budget: number): KmeansppReference {
  const N = g.length;
  const norms = g.map((v) => dot(v, v));
  const taken = Uint8Array.from(exclude);
  const order = Array.from({ length: N }, (_, i) => i).filter((i) => !taken[i]).sort((a, b) => norms[b] - norms[a] || a - b);
  const first = order[0];
  const firstMargin = order.length > 1 ? (norms[order[0]] - norms[order[1]]) / norms[order[0]] : 1;
  const picks = [first];
  taken[first] = 1;
  const d2 = new Float64Array(N).fill(Infinity);
  let drawMargin = Infinity;
  const update = (c: number) => {
    for (let i = 0; i < N; i++) {
      const diff = g[i].map((v, k) => v - g[c][k]);
      d2[i] = Math.min(d2[i], dot(diff, diff));
    }
  };
  update(first);
  for (let t = 1; t < budget; t++) {
    let total = 0;
    for (let i = 0; i < N; i++) if (!taken[i]) total += d2[i];
    const target = uniforms[t] * total;
    let acc = 0;
    let pick = -1;
    for (let i = 0; i < N; i++) {
      if (taken[i]) continue;
      acc += d2[i];
      drawMargin = Math.min(drawMargin, Math.abs(acc - target) / total);
      if (pick < 0 && acc > target) pick = i;
    }
    picks.push(pick);
    taken[pick] = 1;
    update(pick);
  }
  return { picks, drawMargin, firstMargin };
}

/** §5.1 uncertainty of one row's logits. */
export function uncertaintyReference(logits: ArrayLike<number>, measure: 'entropy' | 'margin' | 'leastConfidence'): number {
  const p = Array.from(softmax(logits)).sort((a, b) => b - a);
  if (measure === 'entropy') return -p.reduce((s, v) => s + (v > 0 ? v * Math.log(v) : 0), 0);
  if (measure === 'margin') return 1 - (p[0] - p[1]);
  return 1 - p[0];
}
