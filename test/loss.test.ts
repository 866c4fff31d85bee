// Stage-1 ops on every backend (spec §1.1–1.2): gradients against finite differences of a float64
// reference, every backend against the reference and against each other, and input validation.
import { describe, expect, it } from 'vitest';

import { backends, getBackend } from '../src/backend/index.js';
import type { Backend, BackendName } from '../src/backend/types.js';
import { PairpickError } from '../src/errors.js';
import { infoNCE, matmul, prototypeLoss, sinkhorn } from '../src/kernels/loss.js';
import { floatArrayToHalf, halfArrayToFloat } from '../src/util/half.js';
import type { Rng } from '../src/util/rng.js';
import { randomMatrix, randomUnitRows, testRng } from './helpers/random.js';
import {
  finiteDifferences,
  infoNCELossRef,
  infoNCERef,
  matmulRef,
  prototypeLossRef,
  relativeError,
  sinkhornRef,
} from './reference/loss.js';

// fp32 tolerances: backend vs float64 reference, and analytic gradient vs finite differences.
const AGREE = 1e-5;
const GRAD_CHECK = 1e-3;
// The CUDA matmul runs on tensor cores in TF32 (inputs rounded to 10 mantissa bits, fp32
// accumulation; cuda/loss.cu): products then carry ≈ 2⁻¹¹ relative error instead of fp32's.
const TF32 = 4e-3;
const matmulTolerance = (...names: BackendName[]): number => (names.includes('cuda') ? TF32 : AGREE);

const INFOS = backends();

/** Random positive targets, rows normalised to 1 (like Sinkhorn codes) or left unnormalised. */
function randomTargets(rng: Rng, rows: number, k: number, normalise: boolean): Float32Array {
  const q = new Float32Array(rows * k);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let c = 0; c < k; c++) s += q[i * k + c] = 0.05 + rng.next();
    if (normalise) for (let c = 0; c < k; c++) q[i * k + c] /= s;
  }
  return q;
}

/** max_ij |⟨za_i, zb_j⟩| / τ: the size of the largest logit. */
function maxAbsLogit(za: Float32Array, zb: Float32Array, rows: number, dim: number, temperature: number): number {
  let m = 0;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < rows; j++) {
      let s = 0;
      for (let t = 0; t < dim; t++) s += za[i * dim + t] * zb[j * dim + t];
      m = Math.max(m, Math.abs(s));
    }
  }
  return m / temperature;
}

function sizeBetween(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

function relLoss(x: number, ref: number): number {
  return Math.abs(x - ref) / Math.max(Math.abs(ref), 1e-12);
}

async function expectCode(p: Promise<unknown>, code: string, ...fragments: string[]): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected a PairpickError ${code}`).toBeInstanceOf(PairpickError);
  expect((err as PairpickError).code).toBe(code);
  for (const f of fragments) expect((err as PairpickError).message).toContain(f);
}

for (const info of INFOS) {
  const label = info.available ? `${info.name} backend` : `${info.name} backend (skipped: ${info.reason})`;
  describe.skipIf(!info.available)(label, () => {
    const backend = (): Backend => getBackend(info.name);

    describe('infoNCE', () => {
      it('gradients match central finite differences of the float64 loss', async () => {
        const rng = testRng();
        for (const temperature of [0.07, 0.5]) {
          const rows = sizeBetween(rng, 5, 11);
          const dim = sizeBetween(rng, 3, 7) | 1;
          const za = randomUnitRows(rng, rows, dim);
          const zb = randomUnitRows(rng, rows, dim);
          const r = await backend().infoNCE(za, zb, { rows, dim, temperature });
          const A = Float64Array.from(za);
          const B = Float64Array.from(zb);
          const fdA = finiteDifferences((x) => infoNCELossRef(x, B, rows, dim, temperature), A);
          const fdB = finiteDifferences((x) => infoNCELossRef(A, x, rows, dim, temperature), B);
          expect(relativeError(r.gradA, fdA)).toBeLessThanOrEqual(GRAD_CHECK);
          expect(relativeError(r.gradB, fdB)).toBeLessThanOrEqual(GRAD_CHECK);
          expect(relLoss(r.loss, infoNCELossRef(A, B, rows, dim, temperature))).toBeLessThanOrEqual(AGREE);
        }
      });

      it('matches the float64 reference at awkward sizes, including τ = 0.01 and unnormalised rows', async () => {
        const rng = testRng();
        const cases = [
          { rows: 37, dim: 33, temperature: 0.07, unit: true },
          { rows: 13, dim: 5, temperature: 1.3, unit: false },
          { rows: 150, dim: 127, temperature: 0.01, unit: true }, // logits up to 100: e^100 overflows fp32
          { rows: 301, dim: 65, temperature: 0.07, unit: true }, // several row blocks and column tiles
          { rows: 45, dim: 17, temperature: 0.01, unit: false }, // |logits| in the hundreds
          { rows: 2100, dim: 9, temperature: 0.07, unit: true }, // b > 2,048: the CPU recomputes its tiles instead of keeping them
        ];
        for (const c of cases) {
          const za = c.unit ? randomUnitRows(rng, c.rows, c.dim) : randomMatrix(rng, c.rows, c.dim, 1.5);
          const zb = c.unit ? randomUnitRows(rng, c.rows, c.dim) : randomMatrix(rng, c.rows, c.dim, 1.5);
          // Half the pairs strongly aligned, so the softmaxes are far from uniform.
          for (let i = 0; i < c.rows; i += 2) for (let t = 0; t < c.dim; t++) zb[i * c.dim + t] = 0.8 * za[i * c.dim + t] + 0.2 * zb[i * c.dim + t];
          const ref = infoNCERef(za, zb, c.rows, c.dim, c.temperature);
          const r = await backend().infoNCE(za, zb, c);
          // An fp32 logit s carries an absolute rounding error ∝ |s|, which becomes the relative
          // error of its softmax: beyond |s| = 100 (unit rows at τ = 0.01) the bound grows with it.
          const tol = AGREE * Math.max(1, maxAbsLogit(za, zb, c.rows, c.dim, c.temperature) / 100);
          const what = JSON.stringify({ ...c, tol });
          expect(Number.isFinite(r.loss), what).toBe(true);
          expect(relLoss(r.loss, ref.loss), what).toBeLessThanOrEqual(tol);
          expect(relativeError(r.gradA, ref.gradA), what).toBeLessThanOrEqual(tol);
          expect(relativeError(r.gradB, ref.gradB), what).toBeLessThanOrEqual(tol);
        }
      });
    });

    describe('sinkhorn', () => {
      it('matches the spec iteration; rows sum to 1', async () => {
        const rng = testRng();
        for (const [rows, k] of [
          [37, 2],
          [129, 300],
          [250, 64],
        ]) {
          const scores = randomMatrix(rng, rows, k, 0.4);
          const codes = await backend().sinkhorn(scores, { rows, k, epsilon: 0.05, iterations: 3 });
          const ref = sinkhornRef(scores, rows, k, 0.05, 3);
          expect(relativeError(codes, ref), `${rows}×${k}`).toBeLessThanOrEqual(AGREE);
          for (let i = 0; i < rows; i++) {
            let s = 0;
            for (let c = 0; c < k; c++) s += codes[i * k + c];
            expect(Math.abs(s - 1)).toBeLessThan(1e-5);
          }
        }
      });

      it('converges to equal partitions: columns sum to b/K', async () => {
        const rng = testRng();
        const rows = 203;
        const k = 7;
        const scores = randomMatrix(rng, rows, k, 0.3);
        const codes = await backend().sinkhorn(scores, { rows, k, epsilon: 0.5, iterations: 200 });
        expect(relativeError(codes, sinkhornRef(scores, rows, k, 0.5, 200))).toBeLessThanOrEqual(AGREE);
        for (let c = 0; c < k; c++) {
          let s = 0;
          for (let i = 0; i < rows; i++) s += codes[i * k + c];
          expect(Math.abs(s - rows / k) / (rows / k)).toBeLessThan(1e-4);
        }
      });

      it('stays finite when exp(P/ε) spans more than the float64 range', async () => {
        const rng = testRng();
        const rows = 41;
        const k = 9;
        const scores = randomMatrix(rng, rows, k, 1);
        // P/ε spans thousands of nats: the multiplicative form would underflow whole columns.
        const codes = await backend().sinkhorn(scores, { rows, k, epsilon: 0.002, iterations: 3 });
        const ref = sinkhornRef(scores, rows, k, 0.002, 3);
        for (const v of codes) expect(Number.isFinite(v)).toBe(true);
        expect(relativeError(codes, ref)).toBeLessThanOrEqual(AGREE);
      });
    });

    describe('prototypeLoss', () => {
      it('gradients match central finite differences of the float64 loss', async () => {
        const rng = testRng();
        for (const normalise of [true, false]) {
          const rows = sizeBetween(rng, 4, 9);
          const dim = sizeBetween(rng, 3, 7) | 1;
          const k = sizeBetween(rng, 2, 6);
          const z = randomUnitRows(rng, rows, dim);
          const protos = randomUnitRows(rng, k, dim);
          const targets = randomTargets(rng, rows, k, normalise);
          const temperature = 0.1;
          const r = await backend().prototypeLoss(z, protos, targets, { rows, dim, k, temperature });
          const Z = Float64Array.from(z);
          const C = Float64Array.from(protos);
          const fdZ = finiteDifferences((x) => prototypeLossRef(x, C, targets, rows, dim, k, temperature, false).loss, Z);
          const fdC = finiteDifferences((x) => prototypeLossRef(Z, x, targets, rows, dim, k, temperature, false).loss, C);
          expect(relativeError(r.gradZ, fdZ)).toBeLessThanOrEqual(GRAD_CHECK);
          expect(relativeError(r.gradPrototypes, fdC)).toBeLessThanOrEqual(GRAD_CHECK);
        }
      });

      it('matches the float64 reference with Sinkhorn targets, K small and large', async () => {
        const rng = testRng();
        for (const [rows, dim, k, temperature] of [
          [37, 33, 2, 0.1],
          [129, 65, 300, 0.1],
          [61, 17, 11, 0.01],
        ]) {
          const z = randomUnitRows(rng, rows, dim);
          const protos = randomUnitRows(rng, k, dim);
          const scores = new Float32Array(matmulRef(z, protos, rows, k, dim, false, true));
          const targets = new Float32Array(sinkhornRef(scores, rows, k, 0.05, 3));
          const ref = prototypeLossRef(z, protos, targets, rows, dim, k, temperature);
          const r = await backend().prototypeLoss(z, protos, targets, { rows, dim, k, temperature });
          // The fp32 logits ⟨z, c⟩/τ of unit rows are off by ≤ dim·u/τ (u = 2⁻²⁴), which is the
          // softmax's relative error, doubled by its normalisation and again by the gradients'
          // p − q (these targets are not close to p). At τ = 0.01 that exceeds AGREE.
          const tol = Math.max(AGREE, (4 * dim * 2 ** -24) / temperature);
          const what = `${rows}×${dim}, K=${k}, τ=${temperature}, tol ${tol}`;
          expect(relLoss(r.loss, ref.loss), what).toBeLessThanOrEqual(tol);
          expect(relativeError(r.gradZ, ref.gradZ), what).toBeLessThanOrEqual(tol);
          expect(relativeError(r.gradPrototypes, ref.gradPrototypes), what).toBeLessThanOrEqual(tol);
        }
      });
    });

    describe('matmul', () => {
      it('all transpose combinations, overwrite and accumulate, fp32 and fp16 a', async () => {
        const rng = testRng();
        const shapes = [
          { m: 37, n: 29, inner: 131, every: true },
          { m: 3, n: 1, inner: 5, every: true },
          // Crosses the native kernel's blocking in every dimension; one accumulate/fp16 variant
          // per transpose combination keeps the float64 reference affordable.
          { m: 301, n: 270, inner: 333, every: false },
        ];
        for (const { m, n, inner, every } of shapes) {
          for (const transA of [false, true]) {
            for (const transB of [false, true]) {
              for (const accumulate of [false, true]) {
                for (const half of [false, true]) {
                  if (!every && (accumulate !== transB || half !== transA)) continue;
                  const a32 = randomMatrix(rng, transA ? inner : m, transA ? m : inner);
                  const aData = half ? floatArrayToHalf(a32) : a32;
                  const aValues = half ? halfArrayToFloat(aData as Uint16Array) : a32;
                  const b = randomMatrix(rng, transB ? n : inner, transB ? inner : n);
                  const c = randomMatrix(rng, m, n);
                  const ref = matmulRef(aValues, b, m, n, inner, transA, transB, accumulate ? c : undefined);
                  await backend().matmul(aData, b, c, { m, n, inner, transA, transB, accumulate });
                  const what = JSON.stringify({ m, n, inner, transA, transB, accumulate, half });
                  expect(relativeError(c, ref), what).toBeLessThanOrEqual(matmulTolerance(info.name));
                }
              }
            }
          }
        }
      });
    });
  });
}

describe('backends agree with each other', () => {
  const available = INFOS.filter((b) => b.available).map((b) => b.name);
  const pairs: [BackendName, BackendName][] = [];
  for (let i = 0; i < available.length; i++) for (let j = i + 1; j < available.length; j++) pairs.push([available[i], available[j]]);

  it.skipIf(pairs.length === 0)(`on the same fresh inputs (${available.join(', ')})`, async () => {
    const rng = testRng();
    const rows = 97;
    const dim = 31;
    const k = 13;
    const za = randomUnitRows(rng, rows, dim);
    const zb = randomUnitRows(rng, rows, dim);
    const protos = randomUnitRows(rng, k, dim);
    const scores = randomMatrix(rng, rows, k, 0.5);
    const a = floatArrayToHalf(randomMatrix(rng, dim, rows));
    const out: Record<string, { nce: Awaited<ReturnType<Backend['infoNCE']>>; q: Float32Array; proto: Awaited<ReturnType<Backend['prototypeLoss']>>; c: Float32Array }> = {};
    for (const name of available) {
      const be = getBackend(name);
      const nce = await be.infoNCE(za, zb, { rows, dim, temperature: 0.05 });
      const q = await be.sinkhorn(scores, { rows, k, epsilon: 0.05, iterations: 3 });
      const proto = await be.prototypeLoss(za, protos, q, { rows, dim, k, temperature: 0.1 });
      const c = new Float32Array(rows * k);
      await be.matmul(a, protos, c, { m: rows, n: k, inner: dim, transA: true, transB: true, accumulate: false });
      out[name] = { nce, q, proto, c };
    }
    for (const [x, y] of pairs) {
      const X = out[x];
      const Y = out[y];
      expect(relLoss(X.nce.loss, Y.nce.loss), `${x}/${y} infoNCE`).toBeLessThanOrEqual(AGREE);
      expect(relativeError(X.nce.gradA, Y.nce.gradA)).toBeLessThanOrEqual(AGREE);
      expect(relativeError(X.nce.gradB, Y.nce.gradB)).toBeLessThanOrEqual(AGREE);
      expect(relativeError(X.q, Y.q), `${x}/${y} sinkhorn`).toBeLessThanOrEqual(AGREE);
      expect(relLoss(X.proto.loss, Y.proto.loss), `${x}/${y} prototypeLoss`).toBeLessThanOrEqual(AGREE);
      expect(relativeError(X.proto.gradZ, Y.proto.gradZ)).toBeLessThanOrEqual(AGREE);
      expect(relativeError(X.proto.gradPrototypes, Y.proto.gradPrototypes)).toBeLessThanOrEqual(AGREE);
      expect(relativeError(X.c, Y.c), `${x}/${y} matmul`).toBeLessThanOrEqual(matmulTolerance(x, y));
    }
  });
});

describe('kernels.* (validated public API)', () => {
  it('applies the spec defaults (τ = 0.07, ε = 0.05, 3 iterations, τ_p = 0.1)', async () => {
    const rng = testRng();
    const rows = 19;
    const dim = 9;
    const k = 5;
    const za = randomUnitRows(rng, rows, dim);
    const zb = randomUnitRows(rng, rows, dim);
    const nce = await infoNCE(za, zb, { rows, dim, backend: 'js' });
    expect(relLoss(nce.loss, infoNCELossRef(za, zb, rows, dim, 0.07))).toBeLessThanOrEqual(AGREE);
    const scores = randomMatrix(rng, rows, k, 0.5);
    const q = await sinkhorn(scores, { rows, k, backend: 'js' });
    expect(relativeError(q, sinkhornRef(scores, rows, k, 0.05, 3))).toBeLessThanOrEqual(AGREE);
    const protos = randomUnitRows(rng, k, dim);
    const pl = await prototypeLoss(za, protos, q, { rows, dim, k, backend: 'js' });
    expect(relLoss(pl.loss, prototypeLossRef(za, protos, q, rows, dim, k, 0.1).loss)).toBeLessThanOrEqual(AGREE);
    const c = new Float32Array(rows * k);
    const ret = await matmul(za, protos, c, { m: rows, n: k, inner: dim, transB: true });
    expect(ret).toBe(c);
    expect(relativeError(c, matmulRef(za, protos, rows, k, dim, false, true))).toBeLessThanOrEqual(AGREE);
  });

  it('rejects bad input with codes that name the culprit', async () => {
    const rng = testRng();
    const rows = 7;
    const dim = 5;
    const za = randomUnitRows(rng, rows, dim);
    const zb = randomUnitRows(rng, rows, dim);
    await expectCode(infoNCE(za, zb.subarray(0, 30), { rows, dim }), 'E_SHAPE', 'zb');
    const nan = za.slice();
    nan[3 * dim + 2] = NaN;
    await expectCode(infoNCE(nan, zb, { rows, dim }), 'E_NAN', 'za', 'row 3');
    const inf = zb.slice();
    inf[6 * dim] = -Infinity;
    await expectCode(infoNCE(za, inf, { rows, dim }), 'E_NAN', 'zb', 'row 6');
    await expectCode(infoNCE(za, zb, { rows, dim, temperature: 0 }), 'E_OPTION', 'temperature');
    await expectCode(infoNCE(za, zb, { rows, dim, temprature: 0.1 } as never), 'E_OPTION', 'temprature');
    await expectCode(infoNCE(za, zb, { rows, dim: 0 }), 'E_OPTION', 'dim');
    await expectCode(infoNCE(za, zb, { rows: 3.5, dim }), 'E_OPTION', 'rows');
    await expectCode(infoNCE(za, zb, { rows, dim, backend: 'tpu' as never }), 'E_OPTION', 'tpu');
    if (!INFOS.find((b) => b.name === 'cuda')?.available) {
      await expectCode(infoNCE(za, zb, { rows, dim, backend: 'cuda' }), 'E_BACKEND', 'cuda');
    }
    await expectCode(sinkhorn(za, { rows, k: dim, epsilon: -1 }), 'E_OPTION', 'epsilon');
    await expectCode(sinkhorn(za, { rows, k: dim, iterations: 0 }), 'E_OPTION', 'iterations');
    await expectCode(sinkhorn(za, { rows, k: 4 }), 'E_SHAPE', 'scores');
    const protos = randomUnitRows(rng, 3, dim);
    const targets = randomTargets(rng, rows, 3, true);
    targets[2 * 3 + 1] = NaN;
    await expectCode(prototypeLoss(za, protos, targets, { rows, dim, k: 3 }), 'E_NAN', 'targets', 'row 2');
    await expectCode(prototypeLoss(za, protos, targets.subarray(1), { rows, dim, k: 3 }), 'E_SHAPE', 'targets');
    await expectCode(prototypeLoss(za, protos, randomTargets(rng, rows, 3, true), { rows, dim, k: 4 }), 'E_SHAPE', 'prototypes');
    const half = floatArrayToHalf(randomMatrix(rng, rows, dim));
    half[4 * dim + 1] = 0x7e00; // fp16 NaN
    await expectCode(matmul(half, zb, new Float32Array(rows * rows), { m: rows, n: rows, inner: dim, transB: true }), 'E_NAN', 'a', 'row 4');
    await expectCode(matmul(za, zb, new Float32Array(rows * 6), { m: rows, n: 6, inner: dim }), 'E_SHAPE', 'b has 35');
    await expectCode(matmul(za, zb, new Float32Array(rows * rows - 1), { m: rows, n: rows, inner: dim, transB: true }), 'E_SHAPE', 'c has');
    const shared = new Float32Array(rows * dim + rows * rows);
    await expectCode(
      matmul(shared.subarray(0, rows * dim), zb, shared.subarray(rows * dim - 1, rows * dim - 1 + rows * rows), { m: rows, n: rows, inner: dim, transB: true }),
      'E_OPTION',
      'share',
    );
    await expectCode(matmul(za, zb, new Float32Array(rows * rows), { m: rows, n: rows, inner: dim, transB: 1 as never }), 'E_OPTION', 'transB');
    const c = new Float32Array(rows * rows);
    c[5] = Infinity;
    await expectCode(matmul(za, zb, c, { m: rows, n: rows, inner: dim, transB: true, accumulate: true }), 'E_NAN', 'c', 'row 0');
  });
});
