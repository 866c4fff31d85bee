// GPU parity of the stage-1 kernels (issue 3): InfoNCE, Sinkhorn, the prototype loss and the
// matrix product on the cuda backend, against float64 references written from spec §1, float64
// central finite differences, and the cpu backend when it is available. Run on a GPU machine
// after packing: `node --test test/gpu/`; skips where the cuda backend is unavailable.
//
// Tolerances (issue 3): losses and gradients ≤ 1e-5 relative (norm-wise for gradients; losses
// below 1 absolute, since a loss near 0 has no meaningful relative error) against
// the float64 reference and the cpu backend, ≤ 1e-3 against finite differences. At τ = 0.01 the
// logits are 7× larger than at the default τ = 0.07, and so is the float32 rounding of each
// ⟨za_i, zb_j⟩/τ that every fp32 implementation carries: the gradient bar scales with 0.07/τ.
// matmul runs on tensor cores in TF32 (10-bit mantissa) on sm_80+: each product is off by up to
// ≈ 2·2⁻¹¹ relative, so it is checked against (2⁻¹⁰ + inner·2⁻²³)·Σ_k |a_ik·b_kj| per element —
// the TF32 error bound, still far below what a wrong index would produce.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { backends, kernels } from '../../dist/index.js';
import { BACKEND, TEST_SEED, cudaSkipReason, makeRng, normRelError, randomMatrix, relError, unitRows } from './common.mjs';

const skip = cudaSkipReason();
const cpuAvailable = BACKEND !== 'cpu' && backends().find((b) => b.name === 'cpu')?.available === true;
console.log(`gpu loss tests: seed ${TEST_SEED} (replay with PAIRPICK_TEST_SEED=${TEST_SEED})${skip ? `; skipped: ${skip}` : ''}`);

// ---- float64 references (spec §1.1, §1.2) ----

function logits(x, y, rowsX, rowsY, dim, scale) {
  const s = new Float64Array(rowsX * rowsY);
  for (let i = 0; i < rowsX; i++) {
    for (let j = 0; j < rowsY; j++) {
      let t = 0;
      for (let k = 0; k < dim; k++) t += x[i * dim + k] * y[j * dim + k];
      s[i * rowsY + j] = t * scale;
    }
  }
  return s;
}

/** Symmetric InfoNCE: loss, ∂/∂za, ∂/∂zb in float64. */
function refInfoNCE(za, zb, b, dim, tau) {
  const s = logits(za, zb, b, b, dim, 1 / tau);
  const r = new Float64Array(b), c = new Float64Array(b);
  for (let i = 0; i < b; i++) {
    let mr = -Infinity, mc = -Infinity;
    for (let j = 0; j < b; j++) {
      mr = Math.max(mr, s[i * b + j]);
      mc = Math.max(mc, s[j * b + i]);
    }
    let lr = 0, lc = 0;
    for (let j = 0; j < b; j++) {
      lr += Math.exp(s[i * b + j] - mr);
      lc += Math.exp(s[j * b + i] - mc);
    }
    r[i] = mr + Math.log(lr);
    c[i] = mc + Math.log(lc);
  }
  let loss = 0;
  for (let i = 0; i < b; i++) loss += r[i] + c[i] - 2 * s[i * b + i];
  loss /= 2 * b;
  const gradA = new Float64Array(b * dim), gradB = new Float64Array(b * dim);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < b; j++) {
      const g = (Math.exp(s[i * b + j] - r[i]) + Math.exp(s[i * b + j] - c[j]) - (i === j ? 2 : 0)) / (2 * b * tau);
      for (let k = 0; k < dim; k++) {
        gradA[i * dim + k] += g * zb[j * dim + k];
        gradB[j * dim + k] += g * za[i * dim + k];
      }
    }
  }
  return { loss, gradA, gradB };
}

function refSinkhorn(p, rows, k, eps, iterations) {
  let max = -Infinity;
  for (const v of p) max = Math.max(max, v);
  const q = new Float64Array(p.length);
  let total = 0;
  for (let i = 0; i < p.length; i++) total += q[i] = Math.exp((p[i] - max) / eps);
  for (let i = 0; i < q.length; i++) q[i] /= total;
  for (let it = 0; it < iterations; it++) {
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let r = 0; r < rows; r++) s += q[r * k + c];
      for (let r = 0; r < rows; r++) q[r * k + c] /= s * k;
    }
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += q[r * k + c];
      for (let c = 0; c < k; c++) q[r * k + c] /= s * rows;
    }
  }
  for (let i = 0; i < q.length; i++) q[i] *= rows;
  return q;
}

function refPrototypeLoss(z, protos, targets, b, dim, k, tau) {
  const l = logits(z, protos, b, k, dim, 1 / tau);
  let loss = 0;
  const gradZ = new Float64Array(b * dim), gradP = new Float64Array(k * dim);
  for (let i = 0; i < b; i++) {
    let m = -Infinity, qs = 0;
    for (let c = 0; c < k; c++) {
      m = Math.max(m, l[i * k + c]);
      qs += targets[i * k + c];
    }
    let se = 0;
    for (let c = 0; c < k; c++) se += Math.exp(l[i * k + c] - m);
    const lse = m + Math.log(se);
    for (let c = 0; c < k; c++) {
      loss += targets[i * k + c] * (lse - l[i * k + c]);
      const g = (qs * Math.exp(l[i * k + c] - lse) - targets[i * k + c]) / (b * tau);
      for (let d = 0; d < dim; d++) {
        gradZ[i * dim + d] += g * protos[c * dim + d];
        gradP[c * dim + d] += g * z[i * dim + d];
      }
    }
  }
  return { loss: loss / b, gradZ, gradP };
}

/**
 * Checks `grad` (float32, from the GPU) against float64 central differences of `lossOf` at a
 * few coordinates of `x`: the largest-magnitude one and some random ones.
 */
function checkFiniteDifferences(rng, x, grad, lossOf, name) {
  const base = Float64Array.from(x);
  let gmax = 0, imax = 0;
  for (let i = 0; i < grad.length; i++) if (Math.abs(grad[i]) > gmax) (gmax = Math.abs(grad[i])), (imax = i);
  const coords = [imax];
  for (let t = 0; t < 5; t++) coords.push(rng.int(x.length));
  for (const i of coords) {
    const h = 1e-5 * Math.max(1, Math.abs(base[i]));
    const xp = Float64Array.from(base), xm = Float64Array.from(base);
    xp[i] += h;
    xm[i] -= h;
    const fd = (lossOf(xp) - lossOf(xm)) / (2 * h);
    const err = Math.abs(grad[i] - fd) / Math.max(Math.abs(fd), 1e-2 * gmax, 1e-9);
    assert.ok(err <= 1e-3, `${name}[${i}]: gradient ${grad[i]}, finite difference ${fd} (relative error ${err})`);
  }
}

/**
 * Unit rows zb_r = cos·za_r + √(1−cos²)·n_r (n_r a random unit row): pair cosine ≈ `cos`. With
 * cos = 3τ the matching logit is ≈ 3, a peaked but unsaturated softmax, as in training.
 */
function pairedRows(rng, za, b, dim, cos) {
  const noise = unitRows(rng, b, dim);
  const zb = new Float32Array(b * dim);
  const w = Math.sqrt(1 - cos * cos);
  for (let r = 0; r < b; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const v = cos * za[r * dim + j] + w * noise[r * dim + j];
      zb[r * dim + j] = v;
      s += v * v;
    }
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < dim; j++) zb[r * dim + j] *= inv;
  }
  return zb;
}

describe(`${BACKEND} infoNCE`, { skip }, () => {
  // [b, dim, τ]: one row; dims below, at and past the 128/256/512 column chunks of the gradient
  // kernel; batches past the 128-column tiles and the y splits; large logits at τ = 0.01.
  const cases = [
    [77, 45, 0.07],
    [300, 130, 0.07],
    [260, 257, 0.07],
    [150, 600, 0.01],
    [1, 3, 0.07],
    [1100, 33, 0.01],
  ];
  test('saturated softmax at τ = 0.01 (near-identical pairs): finite, loss ≈ 0', async () => {
    const rng = makeRng();
    const b = 200, dim = 64, tau = 0.01;
    const za = unitRows(rng, b, dim);
    const zb = pairedRows(rng, za, b, dim, 0.9);
    const got = await kernels.infoNCE(za, zb, { rows: b, dim, temperature: tau, backend: BACKEND });
    const want = refInfoNCE(za, zb, b, dim, tau);
    assert.ok(Number.isFinite(got.loss) && Math.abs(got.loss - want.loss) <= 1e-5, `loss ${got.loss}, reference ${want.loss}`);
    for (const g of [got.gradA, got.gradB]) for (const v of g) assert.ok(Number.isFinite(v), 'non-finite gradient');
  });

  for (const [b, dim, tau] of cases) {
    test(`b=${b} d=${dim} τ=${tau}`, async () => {
      const rng = makeRng();
      const za = unitRows(rng, b, dim);
      const zb = pairedRows(rng, za, b, dim, 3 * tau);
      const got = await kernels.infoNCE(za, zb, { rows: b, dim, temperature: tau, backend: BACKEND });
      const want = refInfoNCE(za, zb, b, dim, tau);
      const gradTol = 1e-5 * Math.max(1, 0.07 / tau);
      assert.ok(relError(got.loss, want.loss, 1) <= 1e-5, `loss ${got.loss}, reference ${want.loss}`);
      assert.ok(normRelError(got.gradA, want.gradA) <= gradTol, `gradA error ${normRelError(got.gradA, want.gradA)}`);
      assert.ok(normRelError(got.gradB, want.gradB) <= gradTol, `gradB error ${normRelError(got.gradB, want.gradB)}`);
      if (b * b * dim <= 2e7) {
        checkFiniteDifferences(rng, za, got.gradA, (x) => refInfoNCE(x, zb, b, dim, tau).loss, 'gradA');
        checkFiniteDifferences(rng, zb, got.gradB, (x) => refInfoNCE(za, x, b, dim, tau).loss, 'gradB');
      }
      if (cpuAvailable) {
        const cpu = await kernels.infoNCE(za, zb, { rows: b, dim, temperature: tau, backend: 'cpu' });
        assert.ok(relError(got.loss, cpu.loss, 1) <= 1e-5, `cuda loss ${got.loss}, cpu ${cpu.loss}`);
        assert.ok(normRelError(got.gradA, cpu.gradA) <= 2 * gradTol, 'gradA differs from the cpu backend');
        assert.ok(normRelError(got.gradB, cpu.gradB) <= 2 * gradTol, 'gradB differs from the cpu backend');
      }
    });
  }
});

describe(`${BACKEND} sinkhorn`, { skip }, () => {
  const cases = [
    [77, 10, 3],
    [300, 67, 5],
    [1000, 130, 1],
    [33, 7, 3],
  ];
  for (const [rows, k, iterations] of cases) {
    test(`${rows}×${k}, ${iterations} iterations`, async () => {
      const rng = makeRng();
      const dim = 24;
      const z = unitRows(rng, rows, dim), c = unitRows(rng, k, dim);
      const scores = Float32Array.from(logits(z, c, rows, k, dim, 1)); // cosine scores in [−1, 1]
      const epsilon = 0.05;
      const got = await kernels.sinkhorn(scores, { rows, k, epsilon, iterations, backend: BACKEND });
      const want = refSinkhorn(scores, rows, k, epsilon, iterations);
      let max = 0;
      for (const v of want) max = Math.max(max, v);
      let worst = 0, at = -1;
      for (let i = 0; i < want.length; i++) {
        const e = relError(got[i], want[i], 1e-7 * max);
        if (e > worst) (worst = e), (at = i);
      }
      assert.ok(worst <= 1e-5, `worst relative error ${worst} at ${at}: ${got[at]} vs ${want[at]}`);
      if (cpuAvailable) {
        const cpu = await kernels.sinkhorn(scores, { rows, k, epsilon, iterations, backend: 'cpu' });
        assert.ok(normRelError(got, cpu) <= 1e-5, 'codes differ from the cpu backend');
      }
    });
  }
});

describe(`${BACKEND} prototypeLoss`, { skip }, () => {
  const cases = [
    [77, 45, 10],
    [300, 130, 67],
    [33, 600, 3],
  ];
  for (const [b, dim, k] of cases) {
    test(`b=${b} d=${dim} K=${k}`, async () => {
      const rng = makeRng();
      const tau = 0.1;
      const z = unitRows(rng, b, dim), protos = unitRows(rng, k, dim);
      const targets = new Float32Array(b * k);
      for (let i = 0; i < b; i++) {
        let s = 0;
        for (let c = 0; c < k; c++) s += targets[i * k + c] = rng.uniform() + 0.01;
        for (let c = 0; c < k; c++) targets[i * k + c] /= s;
      }
      const got = await kernels.prototypeLoss(z, protos, targets, { rows: b, dim, k, temperature: tau, backend: BACKEND });
      const want = refPrototypeLoss(z, protos, targets, b, dim, k, tau);
      assert.ok(relError(got.loss, want.loss, 1) <= 1e-5, `loss ${got.loss}, reference ${want.loss}`);
      assert.ok(normRelError(got.gradZ, want.gradZ) <= 1e-5, `gradZ error ${normRelError(got.gradZ, want.gradZ)}`);
      assert.ok(normRelError(got.gradPrototypes, want.gradP) <= 1e-5, `gradPrototypes error ${normRelError(got.gradPrototypes, want.gradP)}`);
      checkFiniteDifferences(rng, z, got.gradZ, (x) => refPrototypeLoss(x, protos, targets, b, dim, k, tau).loss, 'gradZ');
      checkFiniteDifferences(rng, protos, got.gradPrototypes, (x) => refPrototypeLoss(z, x, targets, b, dim, k, tau).loss, 'gradPrototypes');
      if (cpuAvailable) {
        const cpu = await kernels.prototypeLoss(z, protos, targets, { rows: b, dim, k, temperature: tau, backend: 'cpu' });
        assert.ok(relError(got.loss, cpu.loss, 1) <= 1e-5, `cuda loss ${got.loss}, cpu ${cpu.loss}`);
        assert.ok(normRelError(got.gradZ, cpu.gradZ) <= 1e-5, 'gradZ differs from the cpu backend');
        assert.ok(normRelError(got.gradPrototypes, cpu.gradPrototypes) <= 1e-5, 'gradPrototypes differs from the cpu backend');
      }
    });
  }
});

describe(`${BACKEND} matmul (TF32 tensor cores on sm_80+)`, { skip }, () => {
  const shapes = [
    [77, 45, 130],
    [1, 1, 1],
    [130, 70, 33],
    [64, 64, 64],
    [300, 129, 17],
  ];
  let n = 0;
  for (const [m, ncols, inner] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const accumulate = n % 2 === 1;
        const half = n % 3 === 0;
        n++;
        test(`${m}×${ncols}×${inner} transA=${transA} transB=${transB} accumulate=${accumulate} a=${half ? 'fp16' : 'fp32'}`, async () => {
          const rng = makeRng();
          const a = randomMatrix(rng, transA ? inner : m, transA ? m : inner, half);
          const b = randomMatrix(rng, transB ? ncols : inner, transB ? inner : ncols, false);
          const c = randomMatrix(rng, m, ncols, false);
          const c0 = Float64Array.from(c.values);
          const out = await kernels.matmul(a.data, b.data, c.data, { m, n: ncols, inner, transA, transB, accumulate, backend: BACKEND });
          assert.equal(out, c.data);
          const bound = 2 ** -10 + inner * 2 ** -23;
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < ncols; j++) {
              let s = accumulate ? c0[i * ncols + j] : 0, sa = accumulate ? Math.abs(c0[i * ncols + j]) : 0;
              for (let t = 0; t < inner; t++) {
                const av = transA ? a.values[t * m + i] : a.values[i * inner + t];
                const bv = transB ? b.values[j * inner + t] : b.values[t * ncols + j];
                s += av * bv;
                sa += Math.abs(av * bv);
              }
              const e = Math.abs(out[i * ncols + j] - s);
              assert.ok(e <= bound * sa + 1e-30, `c[${i}][${j}] = ${out[i * ncols + j]}, reference ${s} (error ${e}, bound ${bound * sa})`);
            }
          }
        });
      }
    }
  }
});
