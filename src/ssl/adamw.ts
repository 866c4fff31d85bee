// AdamW (Loshchilov & Hutter), exactly as torch.optim.AdamW with amsgrad = false:
//   p ← p − lr·wd·p                      (decoupled weight decay, only on tensors marked `decay`)
//   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//   p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)
// Our choice: biases and prototypes are not decayed (weight matrices are).

/** Hyper-parameters of AdamW (defaults from spec/methods.md §1). */
export interface AdamWOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** Decoupled weight decay (default 1e-4). */
  weightDecay?: number;
  /** (β1, β2) (default [0.9, 0.999]). */
  betas?: readonly [number, number];
  /** ε added to √v̂ (default 1e-8). */
  eps?: number;
}

export interface AdamWParam {
  value: Float32Array;
  /** Apply the decoupled weight decay to this tensor. */
  decay: boolean;
}

export class AdamW {
  readonly lr: number;
  readonly weightDecay: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Steps taken so far. */
  step = 0;
  private readonly params: AdamWParam[];
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  constructor(params: AdamWParam[], options: AdamWOptions = {}) {
    this.params = params;
    this.lr = options.lr ?? 1e-3;
    this.weightDecay = options.weightDecay ?? 1e-4;
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.m = params.map((p) => new Float32Array(p.value.length));
    this.v = params.map((p) => new Float32Array(p.value.length));
  }

  /** One update with `grads[i]` the gradient of `params[i]`. */
  update(grads: readonly Float32Array[]): void {
    this.step++;
    const { lr, beta1, beta2, eps } = this;
    const c1 = 1 - beta1 ** this.step;
    const c2 = 1 - beta2 ** this.step;
    const stepSize = lr / c1;
    const invSqrtC2 = 1 / Math.sqrt(c2);
    for (let t = 0; t < this.params.length; t++) {
      const p = this.params[t].value;
      const g = grads[t];
      const m = this.m[t];
      const v = this.v[t];
      const shrink = this.params[t].decay ? 1 - lr * this.weightDecay : 1;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i];
        const mi = beta1 * m[i] + (1 - beta1) * gi;
        const vi = beta2 * v[i] + (1 - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * shrink - (stepSize * mi) / (Math.sqrt(vi) * invSqrtC2 + eps);
      }
    }
  }
}
