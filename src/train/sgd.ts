// SGD with momentum, as torch.optim.SGD (dampening 0, nesterov off):
//   g ← g + wd·p                  (L2 weight decay, only on tensors marked `decay`)
//   buf ← g on the first step, else buf ← μ·buf + g
//   p ← p − lr·buf
// Our choice, as for AdamW: biases are not decayed. `lr` may change between steps (MLA's ×0.1 drop).
import type { AdamWParam } from '../ssl/adamw.js';

export interface SgdOptions {
  lr: number;
  momentum: number;
  weightDecay: number;
}

export class Sgd {
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  private readonly buffers = new Map<Float32Array, Float32Array>();

  constructor(options: SgdOptions) {
    this.lr = options.lr;
    this.momentum = options.momentum;
    this.weightDecay = options.weightDecay;
  }

  /** One update of the given tensors (others keep their momentum untouched). */
  update(params: readonly AdamWParam[], grads: readonly Float32Array[]): void {
    const { lr, momentum: mu } = this;
    params.forEach((param, t) => {
      const p = param.value;
      const g = grads[t];
      const wd = param.decay ? this.weightDecay : 0;
      let buf = this.buffers.get(p);
      const first = !buf;
      if (!buf) this.buffers.set(p, (buf = new Float32Array(p.length)));
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] + wd * p[i];
        const b = first ? gi : mu * buf[i] + gi;
        buf[i] = b;
        p[i] -= lr * b;
      }
    });
  }
}
