// The fused layer ops of stage 1 (linearForward, linearBackward) and the flat AdamW step, on every
// backend, against float64 transcriptions of their definitions (src/backend/ops-loss.ts) on fresh
// random data. The ReLU mask of the backward pass reads its input x, which the test builds as a
// ReLU output (exact zeros and values ≥ 0.05), so no mask decision sits on a knife edge; the
// forward ReLU is 1-Lipschitz, so rounding near 0 stays within the product's tolerance.
import { describe, expect, it } from 'vitest';

import { backends, getBackend } from '../src/backend/index.js';
import type { Backend, BackendName } from '../src/backend/types.js';
import { AdamW, FlatAdamW } from '../src/ssl/adamw.js';
import { floatArrayToHalf, halfArrayToFloat } from '../src/util/half.js';
import type { Rng } from '../src/util/rng.js';
import { randomMatrix, testRng } from './helpers/random.js';
import { matmulRef, relativeError } from './reference/loss.js';

// fp32 products against float64 (as test/loss.test.ts); CUDA's matmul runs in TF32.
const AGREE = 1e-5;
const TF32 = 4e-3;
const tolerance = (name: BackendName): number => (name === 'cuda' ? TF32 : AGREE);

/** A ReLU output: about a third exact zeros, the rest in [0.05, 2.05). */
function reluOutput(rng: Rng, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = rng.next() < 1 / 3 ? 0 : 0.05 + 2 * rng.next();
  return out;
}

function columnSumsRef(g: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) out[j] += g[r * cols + j];
  return out;
}

/** Shapes that cross the native GEMM's blocking: tall, wide (column blocks), and tiny. */
const SHAPES = [
  { rows: 301, inputs: 133, outputs: 270 },
  { rows: 20, inputs: 300, outputs: 700 },
  { rows: 3, inputs: 5, outputs: 2 },
];

for (const info of backends()) {
  const label = info.available ? `${info.name} backend` : `${info.name} backend (skipped: ${info.reason})`;
  describe.skipIf(!info.available)(label, () => {
    const backend = (): Backend => getBackend(info.name);

    it('linearForward: y = x·W + b, with and without ReLU, fp32 and fp16 x', async () => {
      const rng = testRng();
      for (const { rows, inputs, outputs } of SHAPES) {
        for (const relu of [false, true]) {
          for (const half of [false, true]) {
            const x32 = randomMatrix(rng, rows, inputs);
            const x = half ? floatArrayToHalf(x32) : x32;
            const xValues = half ? halfArrayToFloat(x as Uint16Array) : x32;
            const w = randomMatrix(rng, inputs, outputs, 1 / Math.sqrt(inputs));
            const bias = randomMatrix(rng, 1, outputs);
            const ref = matmulRef(xValues, w, rows, outputs, inputs, false, false);
            for (let i = 0; i < ref.length; i++) {
              ref[i] += bias[i % outputs];
              if (relu && ref[i] < 0) ref[i] = 0;
            }
            const y = new Float32Array(rows * outputs).fill(Number.NaN); // every value must be written
            await backend().linearForward(x, w, bias, y, { rows, inputs, outputs, relu });
            const what = JSON.stringify({ rows, inputs, outputs, relu, half });
            expect(relativeError(y, ref), what).toBeLessThanOrEqual(tolerance(info.name));
            if (relu) expect(y.every((v) => v >= 0), what).toBe(true);
          }
        }
      }
    });

    it('linearBackward: ∂W = xᵀ·gy, ∂b = Σ gy, ∂x = (gy·Wᵀ) ⊙ [x > 0]', async () => {
      const rng = testRng();
      for (const { rows, inputs, outputs } of SHAPES) {
        for (const mode of ['relu-input', 'plain-input', 'no-gx', 'fp16-no-gx'] as const) {
          const reluInput = mode === 'relu-input';
          const half = mode === 'fp16-no-gx';
          const x32 = reluInput ? reluOutput(rng, rows, inputs) : randomMatrix(rng, rows, inputs);
          const x = half ? floatArrayToHalf(x32) : x32;
          const xValues = half ? halfArrayToFloat(x as Uint16Array) : x32;
          const w = randomMatrix(rng, inputs, outputs, 1 / Math.sqrt(inputs));
          const gy = randomMatrix(rng, rows, outputs);
          const gradW = new Float32Array(inputs * outputs).fill(Number.NaN);
          const gradBias = new Float32Array(outputs).fill(Number.NaN);
          const wantGx = mode === 'relu-input' || mode === 'plain-input';
          const gx = wantGx ? new Float32Array(rows * inputs).fill(Number.NaN) : null;
          await backend().linearBackward(x, w, gy, gradW, gradBias, gx, { rows, inputs, outputs, reluInput });
          const what = JSON.stringify({ rows, inputs, outputs, mode });
          expect(relativeError(gradW, matmulRef(xValues, gy, inputs, outputs, rows, true, false)), what).toBeLessThanOrEqual(tolerance(info.name));
          expect(relativeError(gradBias, columnSumsRef(gy, rows, outputs)), what).toBeLessThanOrEqual(AGREE);
          if (gx) {
            const ref = matmulRef(gy, w, rows, inputs, outputs, false, true);
            if (reluInput) for (let i = 0; i < ref.length; i++) if (!(x32[i] > 0)) ref[i] = 0;
            expect(relativeError(gx, ref), what).toBeLessThanOrEqual(tolerance(info.name));
            if (reluInput) for (let i = 0; i < gx.length; i++) if (x32[i] === 0) expect(gx[i], what).toBe(0);
          }
        }
      }
    });

    it('adamwStep follows torch.optim.AdamW over several steps (decay on the first values only)', async () => {
      const rng = testRng();
      const n = 5000;
      const decayed = 1234;
      const hp = { lr: 1e-2, weightDecay: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
      const params = randomMatrix(rng, 1, n);
      const m = new Float32Array(n);
      const v = new Float32Array(n);
      const ref = { p: Float64Array.from(params), m: new Float64Array(n), v: new Float64Array(n) };
      // Error budget of the fp32 op, accumulated along: p, m and v are rounded each step
      // (2⁻²⁴ relative); m may cancel, so its error is relative to Σ of the magnitudes that
      // entered it (magM); the update (lr-sized) takes ≈ 8 roundings plus m̂'s error over √v̂.
      const u = 2 ** -24;
      const magM = new Float64Array(n);
      const tolP = new Float64Array(n);
      const steps = 4;
      for (let step = 1; step <= steps; step++) {
        const grads = randomMatrix(rng, 1, n, 0.5);
        await backend().adamwStep(params, grads, m, v, { ...hp, decayed, step });
        // float64 transcription of torch.optim.AdamW (amsgrad = false)
        const c1 = 1 - hp.beta1 ** step;
        const c2 = 1 - hp.beta2 ** step;
        for (let i = 0; i < n; i++) {
          if (i < decayed) ref.p[i] *= 1 - hp.lr * hp.weightDecay;
          ref.m[i] = hp.beta1 * ref.m[i] + (1 - hp.beta1) * grads[i];
          ref.v[i] = hp.beta2 * ref.v[i] + (1 - hp.beta2) * grads[i] * grads[i];
          magM[i] = hp.beta1 * magM[i] + (1 - hp.beta1) * Math.abs(grads[i]);
          const denom = Math.sqrt(ref.v[i] / c2) + hp.eps;
          ref.p[i] -= (hp.lr * ref.m[i]) / c1 / denom;
          tolP[i] += 3 * u * Math.abs(ref.p[i]) + hp.lr * (8 * u + (4 * step * u * magM[i]) / c1 / denom);
        }
      }
      for (let i = 0; i < n; i++) {
        expect(Math.abs(params[i] - ref.p[i])).toBeLessThanOrEqual(tolP[i]);
        expect(Math.abs(m[i] - ref.m[i])).toBeLessThanOrEqual(4 * steps * u * magM[i]);
        expect(Math.abs(v[i] - ref.v[i])).toBeLessThanOrEqual(4 * steps * u * ref.v[i]);
      }
    });

    it('FlatAdamW (one buffer, decayed tensors first) equals AdamW over the separate tensors', async () => {
      const rng = testRng();
      const shapes: [number, boolean][] = [
        [300, true],
        [17, false],
        [64, true],
        [9, false],
      ];
      const separate = shapes.map(([len, decay]) => ({ value: randomMatrix(rng, 1, len), decay }));
      const opts = { lr: 3e-3, weightDecay: 0.1 };
      const flat = new FlatAdamW(backend(), separate.map((p) => ({ value: Float32Array.from(p.value), decay: p.decay })), opts);
      const plain = new AdamW(separate, opts);
      for (let step = 0; step < 3; step++) {
        const grads = shapes.map(([len]) => randomMatrix(rng, 1, len));
        grads.forEach((g, i) => flat.grads[i].set(g));
        await flat.update();
        plain.update(grads);
      }
      separate.forEach((p, i) => {
        expect(flat.values[i].length).toBe(p.value.length);
        for (let j = 0; j < p.value.length; j++) {
          expect(Math.abs(flat.values[i][j] - p.value[j])).toBeLessThanOrEqual(3 * (2 ** -23 * Math.abs(p.value[j]) + 16 * 2 ** -24 * opts.lr));
        }
      });
    });
  });
}
