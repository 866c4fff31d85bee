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

export interface LinearForwardParams {
  rows: number;
  /** Columns of x (rows of the input-major weight matrix). */
  inputs: number;
  /** Columns of y. */
  outputs: number;
  /** y ← max(0, y) after the bias (NaN stays NaN). */
  relu: boolean;
}

export interface LinearBackwardParams {
  rows: number;
  inputs: number;
  outputs: number;
  /** x is the output of a ReLU: the input gradient is zeroed where x ≤ 0 (or NaN). */
  reluInput: boolean;
}

export interface AdamWStepParams {
  /** The first `decayed` values of the flat buffers get the decoupled weight decay. */
  decayed: number;
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1-based step count t (bias corrections 1 − βᵗ). */
  step: number;
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
  /**
   * A dense layer, fused: y = x·W + bias (W inputs × outputs, input-major), then max(0, ·) when
   * `relu`. `x` may be fp16.
   */
  linearForward(x: MatrixData, w: Float32Array, bias: Float32Array, y: Float32Array, p: LinearForwardParams): Promise<void>;
  /**
   * The layer's backward pass, fused: gradW = xᵀ·gy, gradBias = Σ_rows gy (float64 sums) and,
   * when `gx` is given, gx = (gy·Wᵀ) ⊙ [x > 0 when `reluInput`]. Outputs are overwritten.
   */
  linearBackward(
    x: MatrixData,
    w: Float32Array,
    gy: Float32Array,
    gradW: Float32Array,
    gradBias: Float32Array,
    gx: Float32Array | null,
    p: LinearBackwardParams,
  ): Promise<void>;
  /**
   * One AdamW update (torch.optim.AdamW, amsgrad off) in place over flat buffers of equal length:
   * params, their gradients and the two moment estimates.
   */
  adamwStep(params: Float32Array, grads: Float32Array, m: Float32Array, v: Float32Array, p: AdamWStepParams): Promise<void>;
}
