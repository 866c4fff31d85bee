// Projection heads of stage 1 (spec/methods.md §1): per modality a linear map or a 2-layer MLP
// Linear(D,h) → ReLU → Linear(h,d), followed by L2 normalisation — forward and backward.
//
// Weights are stored input-major (in × out, i.e. the transpose of PyTorch's Linear.weight) so
// that every product the heads need puts the frozen input batch X in the `a` slot of
// backend.matmul: forward X·W, weight gradient Xᵀ·G. Checkpoints store PyTorch's layout.
import type { Backend } from '../backend/types.js';
import { addBias, columnSums } from '../util/dense.js';
import { Rng } from '../util/rng.js';

/** One modality's head. `hidden = 0` means a linear head (then only w1/b1 exist). */
export interface Head {
  inputDim: number;
  /** Hidden width h of the MLP; 0 for a linear head. */
  hidden: number;
  /** Output dimension d. */
  dim: number;
  /** inputDim × (hidden || dim), input-major. */
  w1: Float32Array;
  b1: Float32Array;
  /** hidden × dim, input-major (MLP only). */
  w2?: Float32Array;
  b2?: Float32Array;
}

/** Gradients of a head, same shapes as its parameters. */
export interface HeadGrads {
  w1: Float32Array;
  b1: Float32Array;
  w2?: Float32Array;
  b2?: Float32Array;
}

/** What the forward pass keeps for the backward pass. */
export interface HeadCache {
  rows: number;
  x: Float32Array;
  /** Post-ReLU hidden activations (MLP only), rows × hidden. */
  h?: Float32Array;
  /** Normalised outputs, rows × dim. */
  z: Float32Array;
  /** 1 / max(‖y_i‖, NORM_EPS) per row. */
  invNorm: Float32Array;
}

/** Rows whose pre-normalisation norm is below this are divided by it instead (as torch's F.normalize). */
export const NORM_EPS = 1e-12;

/** Parameter tensors of a head in a fixed order (the optimiser and checkpoints rely on it). */
export function headParams(head: Head): { name: 'w1' | 'b1' | 'w2' | 'b2'; value: Float32Array; isBias: boolean }[] {
  const out: { name: 'w1' | 'b1' | 'w2' | 'b2'; value: Float32Array; isBias: boolean }[] = [
    { name: 'w1', value: head.w1, isBias: false },
    { name: 'b1', value: head.b1, isBias: true },
  ];
  if (head.hidden > 0) {
    out.push({ name: 'w2', value: head.w2!, isBias: false }, { name: 'b2', value: head.b2!, isBias: true });
  }
  return out;
}

export function zeroGrads(head: Head): HeadGrads {
  const g: HeadGrads = { w1: new Float32Array(head.w1.length), b1: new Float32Array(head.b1.length) };
  if (head.hidden > 0) {
    g.w2 = new Float32Array(head.w2!.length);
    g.b2 = new Float32Array(head.b2!.length);
  }
  return g;
}

/**
 * A freshly initialised head, like PyTorch's nn.Linear default: weight and bias uniform in
 * ±1/√fan_in (kaiming_uniform with a = √5). Values are drawn in PyTorch's out × in order.
 */
export function initHead(rng: Rng, inputDim: number, hidden: number, dim: number): Head {
  const layer = (fanIn: number, fanOut: number) => {
    const bound = 1 / Math.sqrt(fanIn);
    const w = new Float32Array(fanIn * fanOut);
    for (let o = 0; o < fanOut; o++) for (let i = 0; i < fanIn; i++) w[i * fanOut + o] = (2 * rng.next() - 1) * bound;
    const b = new Float32Array(fanOut);
    for (let o = 0; o < fanOut; o++) b[o] = (2 * rng.next() - 1) * bound;
    return { w, b };
  };
  if (hidden > 0) {
    const l1 = layer(inputDim, hidden);
    const l2 = layer(hidden, dim);
    return { inputDim, hidden, dim, w1: l1.w, b1: l1.b, w2: l2.w, b2: l2.b };
  }
  const l1 = layer(inputDim, dim);
  return { inputDim, hidden: 0, dim, w1: l1.w, b1: l1.b };
}

/** Normalises rows of y in place (y becomes z) and returns 1/‖y_i‖. */
export function normalizeRows(y: Float32Array, rows: number, dim: number): Float32Array {
  const invNorm = new Float32Array(rows);
  for (let r = 0, o = 0; r < rows; r++, o += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += y[o + j] * y[o + j];
    const inv = 1 / Math.max(Math.sqrt(s), NORM_EPS);
    invNorm[r] = inv;
    for (let j = 0; j < dim; j++) y[o + j] *= inv;
  }
  return invNorm;
}

/** z = normalise(g(x)) for `rows` rows of x (rows × inputDim, float32). */
export async function headForward(backend: Backend, head: Head, x: Float32Array, rows: number): Promise<HeadCache> {
  const { inputDim, hidden, dim } = head;
  if (hidden > 0) {
    const h = new Float32Array(rows * hidden);
    await backend.matmul(x, head.w1, h, { m: rows, n: hidden, inner: inputDim, transA: false, transB: false, accumulate: false });
    addBias(h, head.b1, rows);
    for (let i = 0; i < h.length; i++) if (h[i] < 0) h[i] = 0; // NaN stays NaN (bad rows surface)
    const y = new Float32Array(rows * dim);
    await backend.matmul(h, head.w2!, y, { m: rows, n: dim, inner: hidden, transA: false, transB: false, accumulate: false });
    addBias(y, head.b2!, rows);
    const invNorm = normalizeRows(y, rows, dim);
    return { rows, x, h, z: y, invNorm };
  }
  const y = new Float32Array(rows * dim);
  await backend.matmul(x, head.w1, y, { m: rows, n: dim, inner: inputDim, transA: false, transB: false, accumulate: false });
  addBias(y, head.b1, rows);
  const invNorm = normalizeRows(y, rows, dim);
  return { rows, x, z: y, invNorm };
}

/**
 * Backward through L2 normalisation: with z = y/‖y‖, ∂L/∂y = (g − z⟨z,g⟩)/‖y‖.
 * Overwrites `gz` with ∂L/∂y and returns it.
 */
export function normalizeBackward(z: Float32Array, invNorm: Float32Array, gz: Float32Array, rows: number, dim: number): Float32Array {
  for (let r = 0, o = 0; r < rows; r++, o += dim) {
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += z[o + j] * gz[o + j];
    const inv = invNorm[r];
    for (let j = 0; j < dim; j++) gz[o + j] = (gz[o + j] - z[o + j] * dot) * inv;
  }
  return gz;
}

/**
 * Gradients of the head's parameters given ∂L/∂z (rows × dim), written into `grads`
 * (overwritten, not accumulated). `gz` is consumed (used as scratch).
 */
export async function headBackward(backend: Backend, head: Head, cache: HeadCache, gz: Float32Array, grads: HeadGrads): Promise<void> {
  const { inputDim, hidden, dim } = head;
  const { rows, x } = cache;
  const gy = normalizeBackward(cache.z, cache.invNorm, gz, rows, dim);
  if (hidden > 0) {
    const h = cache.h!;
    await backend.matmul(h, gy, grads.w2!, { m: hidden, n: dim, inner: rows, transA: true, transB: false, accumulate: false });
    columnSums(gy, rows, dim, grads.b2!);
    const gh = new Float32Array(rows * hidden);
    await backend.matmul(gy, head.w2!, gh, { m: rows, n: hidden, inner: dim, transA: false, transB: true, accumulate: false });
    for (let i = 0; i < gh.length; i++) if (!(h[i] > 0)) gh[i] = 0;
    await backend.matmul(x, gh, grads.w1, { m: inputDim, n: hidden, inner: rows, transA: true, transB: false, accumulate: false });
    columnSums(gh, rows, hidden, grads.b1);
  } else {
    await backend.matmul(x, gy, grads.w1, { m: inputDim, n: dim, inner: rows, transA: true, transB: false, accumulate: false });
    columnSums(gy, rows, dim, grads.b1);
  }
}

/** Parameter count of a head. */
export function headSize(head: Head): number {
  return head.w1.length + head.b1.length + (head.w2?.length ?? 0) + (head.b2?.length ?? 0);
}
