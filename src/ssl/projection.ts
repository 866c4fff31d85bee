// Projection heads of stage 1 (spec/methods.md §1): per modality a linear map or a 2-layer MLP
// Linear(D,h) → ReLU → Linear(h,d), followed by L2 normalisation — forward and backward.
//
// Weights are stored input-major (in × out, i.e. the transpose of PyTorch's Linear.weight) so
// that every product the heads need puts the frozen input batch X in the `a` slot of
// backend.matmul: forward X·W, weight gradient Xᵀ·G. Checkpoints store PyTorch's layout.
import type { Backend } from '../backend/types.js';
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

/**
 * Reusable activation buffers for the training loop: `take(key, n)` returns the same memory for
 * the same key on every step (its first n values), so a step allocates no batch-sized arrays.
 */
export class Workspace {
  private readonly buffers = new Map<string, Float32Array>();
  take(key: string, n: number): Float32Array {
    let b = this.buffers.get(key);
    if (!b || b.length < n) {
      b = new Float32Array(n);
      this.buffers.set(key, b);
    }
    return b.length === n ? b : b.subarray(0, n);
  }
}

/**
 * z = normalise(g(x)) for `rows` rows of x (rows × inputDim, float32). With a workspace the
 * activations live in its buffers under `key` (valid until the next call with that key).
 */
export async function headForward(backend: Backend, head: Head, x: Float32Array, rows: number, ws?: Workspace, key = ''): Promise<HeadCache> {
  const { inputDim, hidden, dim } = head;
  const take = (name: string, n: number) => (ws ? ws.take(`${key}.${name}`, n) : new Float32Array(n));
  const y = take('y', rows * dim);
  if (hidden > 0) {
    const h = take('h', rows * hidden);
    await backend.linearForward(x, head.w1, head.b1, h, { rows, inputs: inputDim, outputs: hidden, relu: true });
    await backend.linearForward(h, head.w2!, head.b2!, y, { rows, inputs: hidden, outputs: dim, relu: false });
    const invNorm = normalizeRows(y, rows, dim);
    return { rows, x, h, z: y, invNorm };
  }
  await backend.linearForward(x, head.w1, head.b1, y, { rows, inputs: inputDim, outputs: dim, relu: false });
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
export async function headBackward(backend: Backend, head: Head, cache: HeadCache, gz: Float32Array, grads: HeadGrads, ws?: Workspace, key = ''): Promise<void> {
  const { inputDim, hidden, dim } = head;
  const { rows, x } = cache;
  const gy = normalizeBackward(cache.z, cache.invNorm, gz, rows, dim);
  if (hidden > 0) {
    const h = cache.h!;
    const gh = ws ? ws.take(`${key}.gh`, rows * hidden) : new Float32Array(rows * hidden);
    await backend.linearBackward(h, head.w2!, gy, grads.w2!, grads.b2!, gh, { rows, inputs: hidden, outputs: dim, reluInput: true });
    await backend.linearBackward(x, head.w1, gh, grads.w1, grads.b1, null, { rows, inputs: inputDim, outputs: hidden, reluInput: false });
  } else {
    await backend.linearBackward(x, head.w1, gy, grads.w1, grads.b1, null, { rows, inputs: inputDim, outputs: dim, reluInput: false });
  }
}

/** Parameter count of a head. */
export function headSize(head: Head): number {
  return head.w1.length + head.b1.length + (head.w2?.length ?? 0) + (head.b2?.length ?? 0);
}
