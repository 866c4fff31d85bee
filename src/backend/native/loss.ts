// Adapter: addon.{cpu,cuda} stage-1 ops → LossOps. The outputs are allocated here and filled by
// the addon, which returns only the scalar loss (native/binding/loss.cc).
import type { LossOps } from '../ops-loss.js';
import { callNative } from '../../native/addon.js';
import type { NativeOps } from './ops.js';

export function nativeLossOps(ops: NativeOps, name: 'cpu' | 'cuda'): LossOps {
  return {
    async infoNCE(za, zb, p) {
      const gradA = new Float32Array(p.rows * p.dim);
      const gradB = new Float32Array(p.rows * p.dim);
      const loss = await callNative(() => ops.infoNCE(za, zb, p, gradA, gradB), `${name} infoNCE`);
      return { loss, gradA, gradB };
    },
    async sinkhorn(scores, p) {
      const codes = new Float32Array(p.rows * p.k);
      await callNative(() => ops.sinkhorn(scores, p, codes), `${name} sinkhorn`);
      return codes;
    },
    async prototypeLoss(z, prototypes, targets, p) {
      const gradZ = new Float32Array(p.rows * p.dim);
      const gradPrototypes = new Float32Array(p.k * p.dim);
      const loss = await callNative(() => ops.prototypeLoss(z, prototypes, targets, p, gradZ, gradPrototypes), `${name} prototypeLoss`);
      return { loss, gradZ, gradPrototypes };
    },
    matmul: (a, b, c, p) => callNative(() => ops.matmul(a, b, c, p), `${name} matmul`),
    linearForward: (x, w, bias, y, p) => callNative(() => ops.linearForward(x, w, bias, y, p), `${name} linearForward`),
    linearBackward: (x, w, gy, gradW, gradBias, gx, p) =>
      callNative(() => ops.linearBackward(x, w, gy, gradW, gradBias, gx, p), `${name} linearBackward`),
    adamwStep: (params, grads, m, v, p) => callNative(() => ops.adamwStep(params, grads, m, v, p), `${name} adamwStep`),
  };
}
