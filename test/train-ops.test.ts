// Classifier ops and both models' batch gradients on js and cpu (and cuda when present), against
// float64 transcriptions of spec/methods.md §4 and §6 on fresh random inputs. Gradients are
// checked against central finite differences of the float64 losses, with encoder biases built so
// that every ReLU pre-activation is at least MARGIN from its kink (asserted), far more than an FD
// step moves it.
import { describe, expect, it } from 'vitest';

import { backends, getBackend } from '../src/backend/index.js';
import type { Backend } from '../src/backend/types.js';
import { initNetwork, lateFusionStep, mlaStep, networkTensors, type Network } from '../src/train/network.js';
import type { Rng } from '../src/util/rng.js';
import { randomMatrix, testRng } from './helpers/random.js';
import { finiteDifferences, relativeError } from './reference/loss.js';
import {
  entropyFusionRef,
  headProjectionRef,
  lateFusionLossRef,
  mlaLossRef,
  type NetShape,
  preActivations,
  softmaxCrossEntropyRef,
} from './reference/train.js';

// fp32 kernels vs float64: products of ≤ 64 terms of O(1) values carry ≲ 64·2⁻²⁴ ≈ 4e-6 relative
// error; 1e-4 leaves a wide margin yet any wrong term gives an O(1) error.
const TOL = 1e-4;
// Central differences with step 1e-6 in float64: truncation ~1e-12, cancellation ~1e-10.
const FD_STEP = 1e-6;
// Smallest distance of any ReLU pre-activation from 0 (the construction gives ≥ 0.05 before fp32 rounding).
const MARGIN = 1e-3;

const BACKENDS = backends().filter((b) => b.available).map((b) => b.name);

function randomLabels(rng: Rng, rows: number, C: number): Int32Array {
  // Every class at least once when rows ≥ C, the rest random.
  return Int32Array.from({ length: rows }, (_, i) => (i < C ? i : rng.int(C)));
}

describe.each(BACKENDS)('classifier ops on %s', (name) => {
  const backend: Backend = getBackend(name);

  it('softmaxCrossEntropy: loss vs float64, gradient vs finite differences, ignored rows', async () => {
    const rng = testRng();
    const rows = 37;
    const C = 7;
    const logits = randomMatrix(rng, rows, C, 3);
    const labels = randomLabels(rng, rows, C);
    labels[5] = -1;
    labels[20] = -1;
    const scale = 1 / 35;
    const r = await backend.softmaxCrossEntropy(logits, labels, { rows, classes: C, scale });
    const ref = softmaxCrossEntropyRef(logits, labels, rows, C, scale);
    expect(Math.abs(r.loss - ref) / ref).toBeLessThan(TOL);
    const fd = finiteDifferences((z) => softmaxCrossEntropyRef(z, labels, rows, C, scale), Float64Array.from(logits), FD_STEP);
    expect(relativeError(r.grad, fd)).toBeLessThan(TOL);
    for (let k = 0; k < C; k++) expect(r.grad[5 * C + k]).toBe(0);
    let correct = 0;
    for (let i = 0; i < rows; i++) {
      if (labels[i] < 0) continue;
      let best = 0;
      for (let k = 1; k < C; k++) if (logits[i * C + k] > logits[i * C + best]) best = k;
      if (best === labels[i]) correct++;
    }
    expect(r.correct).toBe(correct);
  });

  it('headProjection follows a float64 transcription of spec §6 for 50 steps', async () => {
    const rng = testRng();
    const h = 24;
    const C = 5;
    const batchesPerEpoch = 10;
    const P = new Float32Array(h * h);
    const Pref = new Float64Array(h * h);
    for (let i = 0; i < h; i++) P[i * h + i] = Pref[i * h + i] = 1;
    for (let step = 0; step < 50; step++) {
      // h̄ is a batch mean of ReLU outputs: non-negative, here strictly positive.
      const hbar = Float32Array.from({ length: h }, () => 0.05 + rng.next());
      const gradW = randomMatrix(rng, C, h);
      const alpha = 0.1 ** (1 + (step % batchesPerEpoch) / batchesPerEpoch);
      const ref = headProjectionRef(Pref, hbar, gradW, h, C, alpha);
      await backend.headProjection(P, hbar, gradW, { hidden: h, classes: C, alpha });
      Pref.set(ref.P);
      expect(relativeError(P, ref.P), `P after step ${step + 1}`).toBeLessThan(TOL);
      expect(relativeError(gradW, ref.grad), `∇W·P at step ${step + 1}`).toBeLessThan(TOL);
    }
    let f = 0;
    for (const v of P) f += v * v;
    expect(Math.abs(Math.sqrt(f) - 1)).toBeLessThan(1e-5);
  });

  it.each(['dynamic', 'mean'] as const)('entropyFusion (%s) vs float64, missing modalities left out', async (mode) => {
    const rng = testRng();
    const rows = 29;
    const C = 6;
    const M = 3;
    const logits = randomMatrix(rng, M * rows, C, 2);
    const present = Uint8Array.from({ length: rows * M }, () => (rng.next() < 0.75 ? 1 : 0));
    for (let i = 0; i < rows; i++) present[i * M + rng.int(M)] = 1; // at least one per row
    present.fill(0, 3 * M, 4 * M); // row 3: none present
    const r = await backend.entropyFusion(logits, present, { rows, classes: C, modalities: M, mode });
    const ref = entropyFusionRef(logits, present, rows, C, M, mode);
    for (let i = 0; i < rows; i++) {
      if (i === 3) {
        expect(Array.from(r.fused.subarray(i * C, (i + 1) * C)).every(Number.isNaN)).toBe(true);
        expect(Array.from(r.weights.subarray(i * M, (i + 1) * M))).toEqual([0, 0, 0]);
        continue;
      }
      expect(relativeError(r.fused.subarray(i * C, (i + 1) * C), ref.fused.subarray(i * C, (i + 1) * C))).toBeLessThan(TOL);
      for (let m = 0; m < M; m++) {
        const at = i * M + m;
        expect(Math.abs(r.weights[at] - ref.weights[at])).toBeLessThan(TOL);
        if (present[at]) expect(Math.abs(r.entropy[at] - ref.entropy[at])).toBeLessThan(TOL);
        else expect(r.entropy[at]).toBeNaN();
      }
    }
  });

  /** A small network with inputs and encoder biases built so no ReLU sits near its kink. */
  function kinkFreeNetwork(rng: Rng, model: 'late-fusion' | 'mla', rows: number, present: Uint8Array) {
    const dims = [6, 9];
    const M = dims.length;
    const hidden = 5;
    const classes = 4;
    const net: Network = initNetwork(rng, model, dims.map((dim, m) => ({ name: `m${m}`, dim })), hidden, classes);
    const x = dims.map((D) => randomMatrix(rng, rows, D));
    for (let m = 0; m < M; m++) {
      const enc = net.encoders[m];
      for (let j = 0; j < hidden; j++) {
        // x_r·w_j over the rows that have the modality, sorted; the bias puts 0 in a wide gap.
        const v: number[] = [];
        for (let r = 0; r < rows; r++) {
          if (!present[r * M + m]) continue;
          let s = 0;
          for (let t = 0; t < dims[m]; t++) s += x[m][r * dims[m] + t] * enc.w[t * hidden + j];
          v.push(s);
        }
        v.sort((a, b) => a - b);
        const cuts = [v[0] - 0.5, v[v.length - 1] + 0.5];
        for (let t = 1; t < v.length; t++) if (v[t] - v[t - 1] >= 0.1) cuts.push((v[t] + v[t - 1]) / 2);
        enc.b[j] = -cuts[rng.int(cuts.length)];
      }
    }
    const shape: NetShape = { dims, hidden, classes, lateFusion: model === 'late-fusion' };
    const theta = Float64Array.from(networkTensors(net).flatMap((t) => Array.from(t.value)));
    let margin = Infinity;
    for (let m = 0; m < M; m++) {
      const z = preActivations(theta, shape, m, x[m], rows);
      for (let r = 0; r < rows; r++) if (present[r * M + m]) for (let j = 0; j < hidden; j++) margin = Math.min(margin, Math.abs(z[r * hidden + j]));
    }
    expect(margin, 'no ReLU pre-activation near 0').toBeGreaterThan(MARGIN);
    return { net, x, shape, theta };
  }

  it('late fusion batch gradient (with a missing modality row) vs finite differences', async () => {
    const rng = testRng();
    const rows = 9;
    const M = 2;
    const present = new Uint8Array(rows * M).fill(1);
    present[2 * M + 1] = 0; // row 2 lacks modality 1
    present[6 * M + 0] = 0; // row 6 lacks modality 0
    const { net, x, shape, theta } = kinkFreeNetwork(rng, 'late-fusion', rows, present);
    const labels = randomLabels(rng, rows, shape.classes);
    // A missing row is zero-filled before it reaches the network (src/train/data.ts).
    x[1].fill(0, 2 * shape.dims[1], 3 * shape.dims[1]);
    x[0].fill(0, 6 * shape.dims[0], 7 * shape.dims[0]);
    const s = await lateFusionStep(backend, net, x, present, labels, rows);
    const ref = (t: Float64Array) => lateFusionLossRef(t, shape, x, present, labels, rows);
    expect(Math.abs(s.loss - ref(theta)) / ref(theta)).toBeLessThan(TOL);
    const g = s.grads;
    const analytic = [...g.encoders.flatMap((e) => [...e.w, ...e.b]), ...g.head.w, ...g.head.b, ...g.aux.flatMap((a) => [...a.w, ...a.b])];
    expect(relativeError(analytic, finiteDifferences(ref, theta, FD_STEP))).toBeLessThan(TOL);
  });

  it('MLA batch gradient of each modality step vs finite differences', async () => {
    const rng = testRng();
    const rows = 8;
    const M = 2;
    const { net, x, shape, theta } = kinkFreeNetwork(rng, 'mla', rows, new Uint8Array(rows * M).fill(1));
    const labels = randomLabels(rng, rows, shape.classes);
    for (let m = 0; m < M; m++) {
      const s = await mlaStep(backend, net, m, x[m], labels, rows);
      const ref = (t: Float64Array) => mlaLossRef(t, shape, m, x[m], labels, rows);
      expect(Math.abs(s.loss - ref(theta)) / ref(theta)).toBeLessThan(TOL);
      const fd = finiteDifferences(ref, theta, FD_STEP);
      // θ layout: encoder 0, encoder 1, head; only encoder m and the head move.
      const enc = [0, 1].map((j) => shape.dims[j] * shape.hidden + shape.hidden);
      const start = m === 0 ? 0 : enc[0];
      expect(relativeError([...s.encoder.w, ...s.encoder.b], fd.subarray(start, start + enc[m]))).toBeLessThan(TOL);
      expect(relativeError([...s.head.w, ...s.head.b], fd.subarray(enc[0] + enc[1]))).toBeLessThan(TOL);
      const other = m === 0 ? fd.subarray(enc[0], enc[0] + enc[1]) : fd.subarray(0, enc[0]);
      expect(other.every((v) => v === 0)).toBe(true);
      const mean = new Float64Array(shape.hidden);
      const z = preActivations(theta, shape, m, x[m], rows);
      for (let r = 0; r < rows; r++) for (let j = 0; j < shape.hidden; j++) mean[j] += Math.max(0, z[r * shape.hidden + j]) / rows;
      expect(relativeError(s.meanFeature, mean)).toBeLessThan(TOL);
    }
  });
});
