// `kernels.*` for stage 1 (spec/methods.md §1.1–1.2): the fused losses and the matrix product of
// the projection heads, validated, on any backend. Inputs are row-major; nothing is copied.
import { getBackend, type BackendChoice } from '../backend/index.js';
import type { InfoNCEResult, MatrixData, PrototypeLossResult } from '../backend/types.js';
import { PairpickError, checkOptions } from '../errors.js';

export type { InfoNCEResult, PrototypeLossResult } from '../backend/types.js';

/** Options of {@link infoNCE}. */
export interface InfoNCEOptions {
  /** Batch size b: rows of `za` and of `zb` (row i of each is one pair). */
  rows: number;
  /** Embedding dimension d. */
  dim: number;
  /** Temperature τ of the logits ⟨za_i, zb_j⟩/τ (default 0.07, spec §1.1). */
  temperature?: number;
  /** Backend: 'auto' (default: cuda → cpu → js), 'cuda', 'cpu', 'js', or a Backend object. */
  backend?: BackendChoice;
}

/** Options of {@link sinkhorn}. */
export interface SinkhornOptions {
  /** Rows b of the score matrix. */
  rows: number;
  /** Columns K (prototypes). */
  k: number;
  /** Entropic regularisation ε: the codes start from exp(P/ε) (default 0.05, spec §1.2). */
  epsilon?: number;
  /** Sinkhorn-Knopp iterations, ≥ 1 (default 3, spec §1.2). */
  iterations?: number;
  /** Backend: 'auto' (default: cuda → cpu → js), 'cuda', 'cpu', 'js', or a Backend object. */
  backend?: BackendChoice;
}

/** Options of {@link prototypeLoss}. */
export interface PrototypeLossOptions {
  /** Batch size b: rows of `z` and of `targets`. */
  rows: number;
  /** Embedding dimension d (columns of `z` and of `prototypes`). */
  dim: number;
  /** Number of prototypes K (rows of `prototypes`, columns of `targets`). */
  k: number;
  /** Temperature τ_p of the prototype logits ⟨z_i, c_k⟩/τ_p (default 0.1, spec §1.2). */
  temperature?: number;
  /** Backend: 'auto' (default: cuda → cpu → js), 'cuda', 'cpu', 'js', or a Backend object. */
  backend?: BackendChoice;
}

/** Options of {@link matmul}: `c (m × n) = op(a) · op(b)`, inner dimension `inner`. */
export interface MatmulOptions {
  /** Rows of c and of op(a). */
  m: number;
  /** Columns of c and of op(b). */
  n: number;
  /** The summed dimension: columns of op(a), rows of op(b). */
  inner: number;
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
 * Symmetric cross-modal InfoNCE over one batch of pairs (spec §1.1), with ∂loss/∂za and ∂loss/∂zb.
 * `za`, `zb`: rows × dim float32. Gradients through any L2 normalisation are the caller's job.
 */
export async function infoNCE(za: Float32Array, zb: Float32Array, options: InfoNCEOptions): Promise<InfoNCEResult> {
  const where = 'infoNCE';
  checkOptions(options, ['rows', 'dim', 'temperature', 'backend'], where);
  const o = requireOptions(options, where);
  const rows = positiveInt(o.rows, 'rows', where);
  const dim = positiveInt(o.dim, 'dim', where);
  const temperature = positiveNumber(o.temperature ?? LOSS_DEFAULTS.temperature, 'temperature', where);
  checkMatrix(za, 'za', rows, dim, where);
  checkMatrix(zb, 'zb', rows, dim, where);
  return getBackend(o.backend).infoNCE(za, zb, { rows, dim, temperature });
}

/**
 * Sinkhorn-Knopp equal-partition codes Q (rows × k) from scores P (rows × k), spec §1.2: rows of Q
 * sum to 1 and columns to rows/k (up to the finite number of iterations).
 */
export async function sinkhorn(scores: Float32Array, options: SinkhornOptions): Promise<Float32Array> {
  const where = 'sinkhorn';
  checkOptions(options, ['rows', 'k', 'epsilon', 'iterations', 'backend'], where);
  const o = requireOptions(options, where);
  const rows = positiveInt(o.rows, 'rows', where);
  const k = positiveInt(o.k, 'k', where);
  const epsilon = positiveNumber(o.epsilon ?? LOSS_DEFAULTS.epsilon, 'epsilon', where);
  const iterations = positiveInt(o.iterations ?? LOSS_DEFAULTS.iterations, 'iterations', where);
  checkMatrix(scores, 'scores', rows, k, where);
  return getBackend(o.backend).sinkhorn(scores, { rows, k, epsilon, iterations });
}

/**
 * Prototype loss −(1/b) Σ_i Σ_k Q_ik log softmax_k(⟨z_i, c_k⟩/τ_p) (spec §1.2) with ∂loss/∂z and
 * ∂loss/∂prototypes; `targets` Q (rows × k, typically from {@link sinkhorn}) are constants.
 */
export async function prototypeLoss(
  z: Float32Array,
  prototypes: Float32Array,
  targets: Float32Array,
  options: PrototypeLossOptions,
): Promise<PrototypeLossResult> {
  const where = 'prototypeLoss';
  checkOptions(options, ['rows', 'dim', 'k', 'temperature', 'backend'], where);
  const o = requireOptions(options, where);
  const rows = positiveInt(o.rows, 'rows', where);
  const dim = positiveInt(o.dim, 'dim', where);
  const k = positiveInt(o.k, 'k', where);
  const temperature = positiveNumber(o.temperature ?? LOSS_DEFAULTS.prototypeTemperature, 'temperature', where);
  checkMatrix(z, 'z', rows, dim, where);
  checkMatrix(prototypes, 'prototypes', k, dim, where);
  checkMatrix(targets, 'targets', rows, k, where);
  return getBackend(o.backend).prototypeLoss(z, prototypes, targets, { rows, dim, k, temperature });
}

/**
 * `c = op(a)·op(b)` (or `c += …` with `accumulate`), fp32 accumulation; `a` may hold fp16 bit
 * patterns (Uint16Array). Writes into `c` (m × n, which must not share memory with a or b) and
 * returns it.
 */
export async function matmul(a: MatrixData, b: Float32Array, c: Float32Array, options: MatmulOptions): Promise<Float32Array> {
  const where = 'matmul';
  checkOptions(options, ['m', 'n', 'inner', 'transA', 'transB', 'accumulate', 'backend'], where);
  const o = requireOptions(options, where);
  const m = positiveInt(o.m, 'm', where);
  const n = positiveInt(o.n, 'n', where);
  const inner = positiveInt(o.inner, 'inner', where);
  const transA = flag(o.transA, 'transA', where);
  const transB = flag(o.transB, 'transB', where);
  const accumulate = flag(o.accumulate, 'accumulate', where);
  checkMatrix(a, 'a', transA ? inner : m, transA ? m : inner, where, true);
  checkMatrix(b, 'b', transB ? n : inner, transB ? inner : n, where);
  checkMatrix(c, 'c', m, n, where, false, accumulate);
  if (overlaps(c, a) || overlaps(c, b)) {
    throw new PairpickError('E_OPTION', `${where}: c must not share memory with ${overlaps(c, a) ? 'a' : 'b'}`);
  }
  await getBackend(o.backend).matmul(a, b, c, { m, n, inner, transA, transB, accumulate });
  return c;
}

// ---- validation --------------------------------------------------------------------------------

function requireOptions<T extends object>(options: T | undefined, where: string): T {
  if (!options || typeof options !== 'object') throw new PairpickError('E_OPTION', `${where}: an options object with the shape is required`);
  return options;
}

function positiveInt(v: unknown, name: string, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw new PairpickError('E_OPTION', `${where}: ${name} must be a positive integer (got ${String(v)})`);
  }
  return v;
}

function positiveNumber(v: unknown, name: string, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new PairpickError('E_OPTION', `${where}: ${name} must be a finite number > 0 (got ${String(v)})`);
  }
  return v;
}

function flag(v: unknown, name: string, where: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new PairpickError('E_OPTION', `${where}: ${name} must be a boolean (got ${String(v)})`);
  return v;
}

/** Type, length (rows × cols) and finiteness of one matrix argument; E_NAN names its row and column. */
function checkMatrix(x: unknown, name: string, rows: number, cols: number, where: string, allowHalf = false, checkValues = true): void {
  const isF32 = x instanceof Float32Array;
  const isF16 = allowHalf && x instanceof Uint16Array;
  if (!isF32 && !isF16) {
    const want = allowHalf ? 'a Float32Array or a Uint16Array of fp16 bits' : 'a Float32Array';
    throw new PairpickError('E_OPTION', `${where}: ${name} must be ${want}`);
  }
  const data = x as Float32Array | Uint16Array;
  if (data.length !== rows * cols) {
    throw new PairpickError('E_SHAPE', `${where}: ${name} has ${data.length} values, expected ${rows} × ${cols} = ${rows * cols}`);
  }
  if (!checkValues) return;
  let bad = -1;
  if (isF32) {
    const f = data as Float32Array;
    for (let i = 0; i < f.length; i++) {
      // v − v is NaN exactly when v is NaN or ±Inf.
      if (f[i] - f[i] !== 0) {
        bad = i;
        break;
      }
    }
  } else {
    const h = data as Uint16Array;
    for (let i = 0; i < h.length; i++) {
      if ((h[i] & 0x7c00) === 0x7c00) {
        bad = i;
        break;
      }
    }
  }
  if (bad >= 0) {
    const value = isF32 ? (data as Float32Array)[bad] : 'an fp16 NaN/Inf';
    throw new PairpickError('E_NAN', `${where}: ${name} row ${Math.floor(bad / cols)}, column ${bad % cols} is ${value}`);
  }
}

function overlaps(x: ArrayBufferView, y: ArrayBufferView): boolean {
  if (x.buffer !== y.buffer) return false;
  return x.byteOffset < y.byteOffset + y.byteLength && y.byteOffset < x.byteOffset + x.byteLength;
}
