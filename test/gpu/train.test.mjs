// GPU checks of the downstream classifiers: the classifier ops (softmax cross-entropy, head
// projection, entropy fusion) on the cuda backend equal the cpu backend's (the cuda engine runs
// the host kernels for them: see cuda/engines.cc), and a short late-fusion and MLA training on
// cuda follows the cpu one. The matmuls run in TF32 on sm_80+ (≈ 2⁻¹⁰ relative per product), so
// training losses are compared at 1e-2 relative after 2 epochs. Run on a GPU machine after
// packing: `node --test test/gpu/`; skips where the cuda backend is unavailable.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { getBackend, openPool, trainClassifier } from '../../dist/index.js';
import { BACKEND, TEST_SEED, cudaSkipReason, makeRng, normRelError, randomMatrix } from './common.mjs';

const skip = cudaSkipReason();
console.log(`gpu train tests: seed ${TEST_SEED}${skip ? `; skipped: ${skip}` : ''}`);

describe('classifier ops and training on cuda', { skip }, () => {
  test('ops equal the cpu backend', async () => {
    const rng = makeRng();
    const [gpu, cpu] = [getBackend(BACKEND), getBackend('cpu')];
    const rows = 300, C = 10, h = 64, M = 2;
    const logits = randomMatrix(rng, rows, C, false, 3);
    const labels = Int32Array.from({ length: rows }, (_, i) => i % C);
    const a = await gpu.softmaxCrossEntropy(logits, labels, { rows, classes: C, scale: 1 / rows });
    const b = await cpu.softmaxCrossEntropy(logits, labels, { rows, classes: C, scale: 1 / rows });
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * b.loss);
    assert.ok(normRelError(a.grad, b.grad) <= 1e-6);
    const P1 = new Float32Array(h * h), P2 = new Float32Array(h * h);
    for (let i = 0; i < h; i++) P1[i * h + i] = P2[i * h + i] = 1;
    const hbar = Float32Array.from({ length: h }, () => 0.1 + Math.abs(randomMatrix(rng, 1, 1, false)[0]));
    const g1 = randomMatrix(rng, C, h, false), g2 = Float32Array.from(g1);
    await gpu.headProjection(P1, hbar, g1, { hidden: h, classes: C, alpha: 0.05 });
    await cpu.headProjection(P2, hbar, g2, { hidden: h, classes: C, alpha: 0.05 });
    assert.ok(normRelError(P1, P2) <= 1e-6 && normRelError(g1, g2) <= 1e-5);
    const stacked = randomMatrix(rng, M * rows, C, false, 2);
    const present = Uint8Array.from({ length: rows * M }, (_, t) => (t % 7 === 0 ? 0 : 1));
    const f1 = await gpu.entropyFusion(stacked, present, { rows, classes: C, modalities: M, mode: 'dynamic' });
    const f2 = await cpu.entropyFusion(stacked, present, { rows, classes: C, modalities: M, mode: 'dynamic' });
    assert.ok(normRelError(f1.weights, f2.weights) <= 1e-6);
  });

  test('late fusion and MLA training on cuda follow cpu', async () => {
    const rng = makeRng();
    const rows = 2000, dims = [128, 32];
    const pool = await openPool({ a: { data: randomMatrix(rng, rows, dims[0], false), dim: dims[0] }, b: { data: randomMatrix(rng, rows, dims[1], false), dim: dims[1] } });
    const labels = Int32Array.from({ length: rows }, (_, i) => i % 5);
    for (const model of ['late-fusion', 'mla']) {
      const [g, c] = [await trainClassifier(pool, labels, { model, epochs: 2, backend: BACKEND }), await trainClassifier(pool, labels, { model, epochs: 2, backend: 'cpu' })];
      for (let e = 0; e < 2; e++) assert.ok(Math.abs(g.history[e].loss - c.history[e].loss) <= 1e-2 * c.history[e].loss, `${model} epoch ${e + 1}`);
    }
  });
});
