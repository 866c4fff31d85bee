// AdamW (Loshchilov & Hutter), exactly as torch.optim.AdamW with amsgrad = false:
//   p ← p − lr·wd·p                      (decoupled weight decay, only on tensors marked `decay`)
//   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//   p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)
// Our choice: biases and prototypes are not decayed (weight matrices are). The arithmetic is the
// backend's adamwStep op (adamwStepJs for the classifiers' separate tensors).
import type { Backend } from '../backend/types.js';
import { adamwStepJs } from '../backend/js/loss.js';

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

/** The resolved hyper-parameters (defaults of spec/methods.md §1). */
function resolve(options: AdamWOptions): { lr: number; weightDecay: number; beta1: number; beta2: number; eps: number } {
  const [beta1, beta2] = options.betas ?? [0.9, 0.999];
  return { lr: options.lr ?? 1e-3, weightDecay: options.weightDecay ?? 1e-4, beta1, beta2, eps: options.eps ?? 1e-8 };
}

/** AdamW over separate tensors (the downstream classifiers), in TypeScript. */
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
    ({ lr: this.lr, weightDecay: this.weightDecay, beta1: this.beta1, beta2: this.beta2, eps: this.eps } = resolve(options));
    this.m = params.map((p) => new Float32Array(p.value.length));
    this.v = params.map((p) => new Float32Array(p.value.length));
  }

  /** One update with `grads[i]` the gradient of `params[i]`. */
  update(grads: readonly Float32Array[]): void {
    this.step++;
    const { lr, weightDecay, beta1, beta2, eps, step } = this;
    for (let t = 0; t < this.params.length; t++) {
      const p = this.params[t].value;
      adamwStepJs(p, grads[t], this.m[t], this.v[t], { lr, weightDecay, beta1, beta2, eps, step, decayed: this.params[t].decay ? p.length : 0 });
    }
  }
}

/**
 * AdamW over one flat buffer (stage 1): the tensors are copied into it at construction, decayed
 * ones first, and used afterwards through `values` (views, in the order given); gradients are
 * written into the views `grads`. One backend op updates everything.
 */
export class FlatAdamW {
  readonly lr: number;
  readonly weightDecay: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  step = 0;
  /** Views into the flat parameters, in the order of the constructor's tensors. */
  readonly values: Float32Array[];
  /** Views into the flat gradients, same order and shapes. */
  readonly grads: Float32Array[];
  private readonly flat: { params: Float32Array; grads: Float32Array; m: Float32Array; v: Float32Array; decayed: number };

  constructor(
    private readonly backend: Backend,
    params: readonly AdamWParam[],
    options: AdamWOptions = {},
  ) {
    ({ lr: this.lr, weightDecay: this.weightDecay, beta1: this.beta1, beta2: this.beta2, eps: this.eps } = resolve(options));
    const total = params.reduce((n, p) => n + p.value.length, 0);
    const flat = { params: new Float32Array(total), grads: new Float32Array(total), m: new Float32Array(total), v: new Float32Array(total), decayed: 0 };
    this.values = new Array(params.length);
    this.grads = new Array(params.length);
    let at = 0;
    for (const decayed of [true, false]) {
      params.forEach((p, i) => {
        if (p.decay !== decayed) return;
        const n = p.value.length;
        flat.params.set(p.value, at);
        this.values[i] = flat.params.subarray(at, at + n);
        this.grads[i] = flat.grads.subarray(at, at + n);
        at += n;
      });
      if (decayed) flat.decayed = at;
    }
    this.flat = flat;
  }

  /** One update from the gradients currently in `grads`. */
  async update(): Promise<void> {
    this.step++;
    const { params, grads, m, v, decayed } = this.flat;
    await this.backend.adamwStep(params, grads, m, v, { lr: this.lr, weightDecay: this.weightDecay, beta1: this.beta1, beta2: this.beta2, eps: this.eps, decayed, step: this.step });
  }
}
