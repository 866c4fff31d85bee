// Adapter: addon.{cpu,cuda} stage-1 ops → LossOps. The outputs are allocated here and filled by
// the addon, which returns only the scalar loss (see native/binding/loss.cc for the signatures).
import type { LossOps } from '../ops-loss.js';
import { callNative } from './addon.js';

type NativeTable = Record<string, (...args: any[]) => any>;

export function nativeLossOps(table: NativeTable, name: 'cpu' | 'cuda'): LossOps {
  return {
    async infoNCE(za, zb, p) {
      const gradA = new Float32Array(p.rows * p.dim);
      const gradB = new Float32Array(p.rows * p.dim);
      const loss: number = await callNative(() => table.infoNCE(za, zb, p.rows, p.dim, p.temperature, gradA, gradB), `${name} infoNCE`);
      return { loss, gradA, gradB };
    },
    async sinkhorn(scores, p) {
      const codes = new Float32Array(p.rows * p.k);
      await callNative(() => table.sinkhorn(scores, p.rows, p.k, p.epsilon, p.iterations, codes), `${name} sinkhorn`);
      return codes;
    },
    async prototypeLoss(z, prototypes, targets, p) {
      const gradZ = new Float32Array(p.rows * p.dim);
      const gradPrototypes = new Float32Array(p.k * p.dim);
      const loss: number = await callNative(
        () => table.prototypeLoss(z, prototypes, targets, p.rows, p.dim, p.k, p.temperature, gradZ, gradPrototypes),
        `${name} prototypeLoss`,
      );
      return { loss, gradZ, gradPrototypes };
    },
    async matmul(a, b, c, p) {
      await callNative(() => table.matmul(a, b, c, p.m, p.n, p.inner, p.transA, p.transB, p.accumulate), `${name} matmul`);
    },
  };
}
