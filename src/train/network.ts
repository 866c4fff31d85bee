// The downstream networks (spec/methods.md §4 late fusion, §6 MLA) as parameters plus the batch
// forward and backward passes, chained through backend ops. Layouts: an encoder Linear(D, h) is
// stored input-major (D × h, as stage 1's heads, so the frozen batch X sits in matmul's `a` slot);
// the output layers are stored as PyTorch's Linear.weight (out × in), which is what
// `Classifier.head()` hands the warm-start strategies.
import type { Backend } from '../backend/types.js';
import { initHead } from '../ssl/projection.js';
import { addBias, columnSums, transpose } from '../util/dense.js';
import type { Rng } from '../util/rng.js';
import type { ClassifierModel } from './types.js';

/** Linear(D, h) → ReLU; w is D × h (input-major). */
export interface Encoder {
  w: Float32Array;
  b: Float32Array;
}

/** A linear output layer; w is out × in (PyTorch layout). */
export interface OutputLinear {
  w: Float32Array;
  b: Float32Array;
}

export interface Network {
  model: ClassifierModel;
  modalities: { name: string; dim: number }[];
  hidden: number;
  classes: number;
  encoders: Encoder[];
  /** Late fusion: the fused head C × (M·h). MLA: the shared head C × h. */
  head: OutputLinear;
  /** Late fusion: one auxiliary head C × h per modality. MLA: none. */
  aux: OutputLinear[];
}

/**
 * A fresh network, PyTorch's nn.Linear initialisation (uniform ±1/√fan_in for weight and bias),
 * drawn in a fixed order from `rng`: every encoder, then the head, then the auxiliary heads.
 */
export function initNetwork(rng: Rng, model: ClassifierModel, modalities: { name: string; dim: number }[], hidden: number, classes: number): Network {
  const encoders = modalities.map(({ dim }) => {
    const l = initHead(rng, dim, 0, hidden);
    return { w: l.w1, b: l.b1 };
  });
  const output = (fanIn: number): OutputLinear => {
    const l = initHead(rng, fanIn, 0, classes);
    return { w: transpose(l.w1, fanIn, classes), b: l.b1 };
  };
  const M = modalities.length;
  const head = output(model === 'late-fusion' ? M * hidden : hidden);
  const aux = model === 'late-fusion' ? modalities.map(() => output(hidden)) : [];
  return { model, modalities, hidden, classes, encoders, head, aux };
}

/** Parameter tensors in a fixed order (the optimisers and checkpoints rely on it). */
export function networkTensors(net: Network): { name: string; value: Float32Array; isBias: boolean }[] {
  const out: { name: string; value: Float32Array; isBias: boolean }[] = [];
  net.modalities.forEach((m, i) => {
    out.push({ name: `${m.name}.encoder.weight`, value: net.encoders[i].w, isBias: false });
    out.push({ name: `${m.name}.encoder.bias`, value: net.encoders[i].b, isBias: true });
  });
  out.push({ name: 'head.weight', value: net.head.w, isBias: false }, { name: 'head.bias', value: net.head.b, isBias: true });
  net.aux.forEach((a, i) => {
    out.push({ name: `${net.modalities[i].name}.aux.weight`, value: a.w, isBias: false });
    out.push({ name: `${net.modalities[i].name}.aux.bias`, value: a.b, isBias: true });
  });
  return out;
}

/** h = ReLU(x·W + b) for `rows` rows; rows with present[r·M + m] = 0 stay 0. */
export async function encode(backend: Backend, enc: Encoder, x: Float32Array, rows: number, dim: number, hidden: number, present?: { mask: Uint8Array; m: number; M: number }): Promise<Float32Array> {
  const h = new Float32Array(rows * hidden);
  await backend.matmul(x, enc.w, h, { m: rows, n: hidden, inner: dim, transA: false, transB: false, accumulate: false });
  addBias(h, enc.b, rows);
  for (let i = 0; i < h.length; i++) if (!(h[i] > 0)) h[i] = 0;
  if (present) {
    for (let r = 0; r < rows; r++) if (!present.mask[r * present.M + present.m]) h.fill(0, r * hidden, (r + 1) * hidden);
  }
  return h;
}

/** Gradients of an encoder from ∂L/∂h (consumed: ReLU-masked in place). */
export async function encodeBackward(backend: Backend, x: Float32Array, h: Float32Array, gh: Float32Array, rows: number, dim: number, hidden: number, grad: Encoder): Promise<void> {
  for (let i = 0; i < gh.length; i++) if (!(h[i] > 0)) gh[i] = 0;
  await backend.matmul(x, gh, grad.w, { m: dim, n: hidden, inner: rows, transA: true, transB: false, accumulate: false });
  columnSums(gh, rows, hidden, grad.b);
}

/** logits = input·Wᵀ + b (rows × out). */
export async function outputForward(backend: Backend, layer: OutputLinear, input: Float32Array, rows: number, inDim: number, outDim: number): Promise<Float32Array> {
  const y = new Float32Array(rows * outDim);
  await backend.matmul(input, layer.w, y, { m: rows, n: outDim, inner: inDim, transA: false, transB: true, accumulate: false });
  addBias(y, layer.b, rows);
  return y;
}

/** ∂L/∂W = Gᵀ·input, ∂L/∂b = Σ_rows G, and (when wanted) ∂L/∂input = G·W. */
export async function outputBackward(
  backend: Backend,
  layer: OutputLinear,
  input: Float32Array,
  g: Float32Array,
  rows: number,
  inDim: number,
  outDim: number,
  grad: OutputLinear,
  gradInput?: Float32Array,
): Promise<void> {
  await backend.matmul(g, input, grad.w, { m: outDim, n: inDim, inner: rows, transA: true, transB: false, accumulate: false });
  columnSums(g, rows, outDim, grad.b);
  if (gradInput) await backend.matmul(g, layer.w, gradInput, { m: rows, n: inDim, inner: outDim, transA: false, transB: false, accumulate: false });
}

/** Zero gradients shaped like the network. */
export function zeroNetworkGrads(net: Network): Network {
  const z = (l: { w: Float32Array; b: Float32Array }) => ({ w: new Float32Array(l.w.length), b: new Float32Array(l.b.length) });
  return { ...net, encoders: net.encoders.map(z), head: z(net.head), aux: net.aux.map(z) };
}

/** [h_1 | h_2 | …] (rows × M·h) from per-modality rows × h blocks. */
export function concatFeatures(hs: readonly Float32Array[], rows: number, hidden: number): Float32Array {
  const M = hs.length;
  const out = new Float32Array(rows * M * hidden);
  for (let r = 0; r < rows; r++) for (let m = 0; m < M; m++) out.set(hs[m].subarray(r * hidden, (r + 1) * hidden), (r * M + m) * hidden);
  return out;
}

/** Column block m (rows × h) of a rows × (M·h) matrix. */
export function featureBlock(all: Float32Array, rows: number, hidden: number, M: number, m: number): Float32Array {
  const out = new Float32Array(rows * hidden);
  for (let r = 0; r < rows; r++) out.set(all.subarray((r * M + m) * hidden, (r * M + m + 1) * hidden), r * hidden);
  return out;
}

/** Result of one late-fusion batch: loss (mean of the fused and the auxiliary CEs) and gradients. */
export interface LateFusionStep {
  loss: number;
  fused: number;
  aux: number[];
  correct: number;
  grads: Network;
}

/**
 * Late fusion (spec §4) on one batch: loss = (CE_fused + Σ_m CE_aux_m) / (1 + M); each CE is a
 * mean over its rows (an auxiliary CE over the rows where its modality is present; a missing
 * modality's encoder output is zero in the fused input).
 */
export async function lateFusionStep(backend: Backend, net: Network, x: readonly Float32Array[], present: Uint8Array, labels: Int32Array, rows: number): Promise<LateFusionStep> {
  const { hidden: h, classes: C } = net;
  const M = net.modalities.length;
  const grads = zeroNetworkGrads(net);
  const hs: Float32Array[] = [];
  for (let m = 0; m < M; m++) hs.push(await encode(backend, net.encoders[m], x[m], rows, net.modalities[m].dim, h, { mask: present, m, M }));
  const H = concatFeatures(hs, rows, h);
  const logits = await outputForward(backend, net.head, H, rows, M * h, C);
  const share = 1 / (1 + M);
  const fused = await backend.softmaxCrossEntropy(logits, labels, { rows, classes: C, scale: share / rows });
  const gH = new Float32Array(rows * M * h);
  await outputBackward(backend, net.head, H, fused.grad, rows, M * h, C, grads.head, gH);
  let loss = fused.loss;
  const aux: number[] = [];
  for (let m = 0; m < M; m++) {
    const gh = featureBlock(gH, rows, h, M, m);
    const auxLabels = new Int32Array(rows);
    let count = 0;
    for (let r = 0; r < rows; r++) {
      auxLabels[r] = present[r * M + m] ? labels[r] : -1;
      if (auxLabels[r] >= 0) count++;
    }
    if (count > 0) {
      const auxLogits = await outputForward(backend, net.aux[m], hs[m], rows, h, C);
      const ce = await backend.softmaxCrossEntropy(auxLogits, auxLabels, { rows, classes: C, scale: share / count });
      const ghAux = new Float32Array(rows * h);
      await outputBackward(backend, net.aux[m], hs[m], ce.grad, rows, h, C, grads.aux[m], ghAux);
      for (let i = 0; i < gh.length; i++) gh[i] += ghAux[i];
      loss += ce.loss;
      aux.push(ce.loss / share);
    } else {
      aux.push(NaN);
    }
    await encodeBackward(backend, x[m], hs[m], gh, rows, net.modalities[m].dim, h, grads.encoders[m]);
  }
  return { loss, fused: fused.loss / share, aux, correct: fused.correct, grads };
}

/** One MLA modality step's loss and gradients (encoder m and the shared head) and h̄. */
export interface MlaStep {
  loss: number;
  correct: number;
  encoder: Encoder;
  head: OutputLinear;
  /** Batch mean of f_m(x^m) (h values). */
  meanFeature: Float32Array;
}

/** MLA (spec §6) on modality m: CE of g(f_m(x^m)) averaged over the batch's `rows` rows (all present). */
export async function mlaStep(backend: Backend, net: Network, m: number, x: Float32Array, labels: Int32Array, rows: number): Promise<MlaStep> {
  const { hidden: h, classes: C } = net;
  const D = net.modalities[m].dim;
  const hm = await encode(backend, net.encoders[m], x, rows, D, h);
  const logits = await outputForward(backend, net.head, hm, rows, h, C);
  const ce = await backend.softmaxCrossEntropy(logits, labels, { rows, classes: C, scale: 1 / rows });
  const head = { w: new Float32Array(net.head.w.length), b: new Float32Array(C) };
  const gh = new Float32Array(rows * h);
  await outputBackward(backend, net.head, hm, ce.grad, rows, h, C, head, gh);
  const encoder = { w: new Float32Array(net.encoders[m].w.length), b: new Float32Array(h) };
  const meanFeature = new Float32Array(h);
  columnSums(hm, rows, h, meanFeature);
  for (let j = 0; j < h; j++) meanFeature[j] /= rows;
  await encodeBackward(backend, x, hm, gh, rows, D, h, encoder);
  return { loss: ce.loss, correct: ce.correct, encoder, head, meanFeature };
}
