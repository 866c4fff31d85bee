// Stage-1 ops (spec/methods.md §1): the fused losses and the projection heads' matrix products.
import type { MatrixData } from './ops-distance.js';

export interface InfoNCEParams {
  /** Batch size b (rows of za and zb). */
  rows: number;
  dim: number;
  /** τ (default 0.07). */
  temperature: number;
}

export interface InfoNCEResult {
  /** Symmetric cross-modal InfoNCE, spec §1.1. */
  loss: number;
  /** ∂loss/∂za (rows × dim). */
  gradA: Float32Array;
  /** ∂loss/∂zb (rows × dim). */
  gradB: Float32Array;
}

export interface SinkhornParams {
  rows: number;
  /** Number of prototypes K (columns of the scores). */
  k: number;
  /** ε (default 0.05). */
  epsilon: number;
  /** Sinkhorn-Knopp iterations (default 3). */
  iterations: number;
}

export interface PrototypeLossParams {
  rows: number;
  dim: number;
  k: number;
  /** τ_p (default 0.1). */
  temperature: number;
}

export interface PrototypeLossResult {
  loss: number;
  /** ∂loss/∂z (rows × dim). */
  gradZ: Float32Array;
  /** ∂loss/∂prototypes (k × dim). */
  gradPrototypes: Float32Array;
}

export interface MatmulParams {
  /** C is m × n; the inner dimension is `inner`. */
  m: number;
  n: number;
  inner: number;
  /** op(A) = Aᵀ when true (A stored inner × m), else A stored m × inner. */
  transA: boolean;
  /** op(B) = Bᵀ when true (B stored n × inner), else B stored inner × n. */
  transB: boolean;
  /** C += op(A)·op(B) when true, else C = op(A)·op(B). */
  accumulate: boolean;
}

export interface LossOps {
  /** Symmetric InfoNCE over one batch of pairs with its gradients (fused; no b×b matrix on CUDA for large b). */
  infoNCE(za: Float32Array, zb: Float32Array, p: InfoNCEParams): Promise<InfoNCEResult>;
  /** Sinkhorn-Knopp codes Q (rows × k) from scores P (rows × k), spec §1.2. */
  sinkhorn(scores: Float32Array, p: SinkhornParams): Promise<Float32Array>;
  /** −(1/b) Σ_i Σ_k Q_ik log softmax_k(z_i·c_k / τ_p), with gradients (targets Q are constants). */
  prototypeLoss(z: Float32Array, prototypes: Float32Array, targets: Float32Array, p: PrototypeLossParams): Promise<PrototypeLossResult>;
  /** c = op(a)·op(b) (or c += …), fp32 accumulation; `a` may be fp16 (frozen input features). */
  matmul(a: MatrixData, b: Float32Array, c: Float32Array, p: MatmulParams): Promise<void>;
}
