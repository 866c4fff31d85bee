// `kernels.*` for stage 1 (spec/methods.md §1.1–1.2): the fused losses and the matrix product of
// the projection heads, validated, on any backend. Inputs are row-major typed arrays or 2-D
// tensors (whose dims stand in for the size options); nothing is copied.
import { getBackend, type BackendChoice } from '../backend/index.js';
import type { InfoNCEResult, PrototypeLossResult } from '../backend/types.js';
import type { TensorLike } from '../io/tensor.js';
import { PairpickError } from '../errors.js';
import { BACKEND, BOOLEAN, count, integer, matrix, number, optionName, readOptions, type Schema } from '../util/validate.js';
import { operand, size, type MatrixInput } from './operands.js';

export type { InfoNCEResult, PrototypeLossResult } from '../backend/types.js';

/** Options of {@link infoNCE}. */
export interface InfoNCEOptions {
  /** Batch size b: rows of `za` and of `zb` (row i of each is one pair); required unless one is a tensor. */
  rows?: number;
  /** Embedding dimension d; required unless `za` or `zb` is a tensor. */
  dim?: number;
  /** Temperature τ of the logits ⟨za_i, zb_j⟩/τ (default 0.07, spec §1.1). */
  temperature?: number;
  /** Backend: 'auto' (default: cuda → cpu → js), 'cuda', 'cpu', 'js', or a Backend object. */
  backend?: BackendChoice;
}

/** Options of {@link sinkhorn}. */
export interface SinkhornOptions {
  /** Rows b of the score matrix (required unless `scores` is a tensor). */
  rows?: number;
  /** Columns K, the prototypes (required unless `scores` is a tensor). */
  k?: number;
  /** Entropic regularisation ε: the codes start from exp(P/ε) (default 0.05, spec §1.2). */
  epsilon?: number;
  /** Sinkhorn-Knopp iterations, ≥ 1 (default 3, spec §1.2). */
  iterations?: number;
  /** Backend: 'auto' (default: cuda → cpu → js), 'cuda', 'cpu', 'js', or a Backend object. */
  backend?: BackendChoice;
}

/** Options of {@link prototypeLoss}. */
export interface PrototypeLossOptions {
  /** Batch size b: rows of `z` and of `targets` (required unless one is a tensor). */
  rows?: number;
  /** Embedding dimension d, columns of `z` and of `prototypes` (required unless one is a tensor). */
  dim?: number;
  /** Number of prototypes K, rows of `prototypes` and columns of `targets` (required unless one is a tensor). */
  k?: number;
  /** Temperature τ_p of the prototype logits ⟨z_i, c_k⟩/τ_p (default 0.1, spec §1.2). */
  temperature?: number;
  /** Backend: 'auto' (default: cuda → cpu → js), 'cuda', 'cpu', 'js', or a Backend object. */
  backend?: BackendChoice;
}

/** Options of {@link matmul}: `c (m × n) = op(a) · op(b)`, inner dimension `inner`. */
export interface MatmulOptions {
  /** Rows of c and of op(a) (required unless a or c is a tensor). */
  m?: number;
  /** Columns of c and of op(b) (required unless b or c is a tensor). */
  n?: number;
  /** The summed dimension: columns of op(a), rows of op(b) (required unless a or b is a tensor). */
  inner?: number;
  /** op(a) = aᵀ, with `a` stored inner × m (default false: `a` stored m × inner). */
  transA?: boolean;
  /** op(b) = bᵀ, with `b` stored n × inner (default false: `b` stored inner × n). */
  transB?: boolean;
  /** Add the product to the existing contents of c instead of overwriting them (default false). */
  accumulate?: boolean;
  /** Backend: 'auto' (default: cuda → cpu → js), 'cuda', 'cpu', 'js', or a Backend object. */
  backend?: BackendChoice;
}

/** Defaults from spec/methods.md §1. */
export const LOSS_DEFAULTS = { temperature: 0.07, prototypeTemperature: 0.1, epsilon: 0.05, iterations: 3 } as const;

/**
 * Most Sinkhorn-Knopp iterations one call runs: a native call cannot be cancelled midway, and the
 * codes have long converged after a few hundred (the spec uses 3).
 */
export const MAX_SINKHORN_ITERATIONS = 10_000;

const INFONCE_OPTIONS = { rows: count(1), dim: count(1), temperature: number({ above: 0 }), backend: BACKEND } satisfies Schema;
const SINKHORN_OPTIONS = {
  rows: count(1),
  k: count(1),
  epsilon: number({ above: 0 }),
  iterations: integer({ min: 1, max: MAX_SINKHORN_ITERATIONS }),
  backend: BACKEND,
} satisfies Schema;
const PROTOTYPE_LOSS_OPTIONS = { rows: count(1), dim: count(1), k: count(1), temperature: number({ above: 0 }), backend: BACKEND } satisfies Schema;
const MATMUL_OPTIONS = { m: count(1), n: count(1), inner: count(1), transA: BOOLEAN, transB: BOOLEAN, accumulate: BOOLEAN, backend: BACKEND } satisfies Schema;

/**
 * Symmetric cross-modal InfoNCE over one batch of pairs (spec §1.1), with ∂loss/∂za and ∂loss/∂zb.
 * `za`, `zb`: rows × dim float32. Gradients through any L2 normalisation are the caller's job.
 */
export async function infoNCE(zaInput: Float32Array | TensorLike, zbInput: Float32Array | TensorLike, options: InfoNCEOptions): Promise<InfoNCEResult> {
  const where = 'kernels.infoNCE';
  const o = readOptions(options, INFONCE_OPTIONS, where);
  const A = operand(zaInput, 'za', where, 'float32');
  const B = operand(zbInput, 'zb', where, 'float32');
  const rows = size(where, 'rows', o.rows, [[A, 'rows'], [B, 'rows']]);
  const dim = size(where, 'dim', o.dim, [[A, 'cols'], [B, 'cols']]);
  const temperature = o.temperature ?? LOSS_DEFAULTS.temperature;
  const za = matrix(A.data, 'za', where, rows, dim, { shape: 'rows × dim' }) as Float32Array;
  const zb = matrix(B.data, 'zb', where, rows, dim, { shape: 'rows × dim' }) as Float32Array;
  return getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend')).infoNCE(za, zb, { rows, dim, temperature });
}

/**
 * Sinkhorn-Knopp equal-partition codes Q (rows × k) from scores P (rows × k), spec §1.2: rows of Q
 * sum to 1 and columns to rows/k (up to the finite number of iterations).
 */
export async function sinkhorn(scoresInput: Float32Array | TensorLike, options: SinkhornOptions): Promise<Float32Array> {
  const where = 'kernels.sinkhorn';
  const o = readOptions(options, SINKHORN_OPTIONS, where);
  const S = operand(scoresInput, 'scores', where, 'float32');
  const rows = size(where, 'rows', o.rows, [[S, 'rows']]);
  const k = size(where, 'k', o.k, [[S, 'cols']]);
  const epsilon = o.epsilon ?? LOSS_DEFAULTS.epsilon;
  const iterations = o.iterations ?? LOSS_DEFAULTS.iterations;
  const scores = matrix(S.data, 'scores', where, rows, k, { shape: 'rows × k' }) as Float32Array;
  return getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend')).sinkhorn(scores, { rows, k, epsilon, iterations });
}

/**
 * Prototype loss −(1/b) Σ_i Σ_k Q_ik log softmax_k(⟨z_i, c_k⟩/τ_p) (spec §1.2) with ∂loss/∂z and
 * ∂loss/∂prototypes; `targets` Q (rows × k, typically from {@link sinkhorn}) are constants.
 */
export async function prototypeLoss(
  zInput: Float32Array | TensorLike,
  prototypesInput: Float32Array | TensorLike,
  targetsInput: Float32Array | TensorLike,
  options: PrototypeLossOptions,
): Promise<PrototypeLossResult> {
  const where = 'kernels.prototypeLoss';
  const o = readOptions(options, PROTOTYPE_LOSS_OPTIONS, where);
  const Z = operand(zInput, 'z', where, 'float32');
  const P = operand(prototypesInput, 'prototypes', where, 'float32');
  const T = operand(targetsInput, 'targets', where, 'float32');
  const rows = size(where, 'rows', o.rows, [[Z, 'rows'], [T, 'rows']]);
  const dim = size(where, 'dim', o.dim, [[Z, 'cols'], [P, 'cols']]);
  const k = size(where, 'k', o.k, [[P, 'rows'], [T, 'cols']]);
  const temperature = o.temperature ?? LOSS_DEFAULTS.prototypeTemperature;
  const z = matrix(Z.data, 'z', where, rows, dim, { shape: 'rows × dim' }) as Float32Array;
  const prototypes = matrix(P.data, 'prototypes', where, k, dim, { shape: 'k × dim' }) as Float32Array;
  const targets = matrix(T.data, 'targets', where, rows, k, { shape: 'rows × k' }) as Float32Array;
  return getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend')).prototypeLoss(z, prototypes, targets, { rows, dim, k, temperature });
}

/**
 * `c = op(a)·op(b)` (or `c += …` with `accumulate`), fp32 accumulation; `a` may hold fp16 bit
 * patterns (Uint16Array). Writes into `c` (m × n, which must not share memory with a or b) and
 * returns it.
 */
export async function matmul(aInput: MatrixInput, bInput: Float32Array | TensorLike, cInput: Float32Array | TensorLike, options: MatmulOptions): Promise<Float32Array> {
  const where = 'kernels.matmul';
  const o = readOptions(options, MATMUL_OPTIONS, where);
  const transA = o.transA ?? false;
  const transB = o.transB ?? false;
  const accumulate = o.accumulate ?? false;
  const A = operand(aInput, 'a', where);
  const B = operand(bInput, 'b', where, 'float32');
  const C = operand(cInput, 'c', where, 'output');
  const m = size(where, 'm', o.m, [[A, transA ? 'cols' : 'rows'], [C, 'rows']]);
  const n = size(where, 'n', o.n, [[B, transB ? 'rows' : 'cols'], [C, 'cols']]);
  const inner = size(where, 'inner', o.inner, [[A, transA ? 'rows' : 'cols'], [B, transB ? 'cols' : 'rows']]);
  const a = matrix(A.data, 'a', where, transA ? inner : m, transA ? m : inner, { half: true, shape: transA ? 'inner × m' : 'm × inner' });
  const b = matrix(B.data, 'b', where, transB ? n : inner, transB ? inner : n, { shape: transB ? 'n × inner' : 'inner × n' }) as Float32Array;
  const c = matrix(C.data, 'c', where, m, n, { scan: accumulate, shape: 'm × n' }) as Float32Array;
  if (overlaps(c, a) || overlaps(c, b)) {
    throw new PairpickError('E_OPTION', `${where}: c must not share memory with ${overlaps(c, a) ? 'a' : 'b'}`);
  }
  await getBackend(o.backend as BackendChoice | undefined, optionName(where, 'backend')).matmul(a, b, c, { m, n, inner, transA, transB, accumulate });
  return c;
}

// ---- validation --------------------------------------------------------------------------------

function overlaps(x: ArrayBufferView, y: ArrayBufferView): boolean {
  if (x.buffer !== y.buffer) return false;
  return x.byteOffset < y.byteOffset + y.byteLength && y.byteOffset < x.byteOffset + x.byteLength;
}
