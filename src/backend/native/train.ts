// Adapter: addon.{cpu,cuda} downstream-classifier ops → TrainOps. Outputs are allocated here and
// filled by the addon (native/binding/train.cc).
import type { TrainOps } from '../ops-train.js';
import { callNative } from '../../native/addon.js';
import { NATIVE_CODES } from '../../native/codes.js';
import type { NativeOps } from './ops.js';

export function nativeTrainOps(ops: NativeOps, name: 'cpu' | 'cuda'): TrainOps {
  return {
    async softmaxCrossEntropy(logits, labels, p) {
      const grad = new Float32Array(p.rows * p.classes);
      const stats = new Float64Array(2);
      await callNative(() => ops.softmaxCrossEntropy(logits, labels, p, grad, stats), `${name} softmaxCrossEntropy`);
      return { loss: stats[0], grad, correct: stats[1] };
    },
    headProjection: (P, hbar, gradW, p) => callNative(() => ops.headProjection(P, hbar, gradW, p), `${name} headProjection`),
    async entropyFusion(logits, present, p) {
      const { rows, classes, modalities } = p;
      const fused = new Float32Array(rows * classes);
      const weights = new Float32Array(rows * modalities);
      const entropy = new Float32Array(rows * modalities);
      const probs = new Float32Array(modalities * rows * classes);
      const coded = { rows, classes, modalities, mode: NATIVE_CODES.fusionModes[p.mode] };
      await callNative(() => ops.entropyFusion(logits, present, coded, fused, weights, entropy, probs), `${name} entropyFusion`);
      return { fused, weights, entropy, probs };
    },
  };
}
