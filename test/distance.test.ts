// Parity of the distance core (kernels.distances / knn / minUpdate) on every backend against the
// float64 reference in test/reference/distance.ts, on fresh random inputs of awkward sizes; at
// every native SIMD level this CPU has (PAIRPICK_SIMD forced, in a child process); input validation.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { backends, getBackend } from '../src/backend/index.js';
import { NATIVE_CODES } from '../src/native/codes.js';
import type { BackendName } from '../src/backend/types.js';
import { PairpickError } from '../src/errors.js';
import * as kernels from '../src/kernels/index.js';
import { floatArrayToHalf } from '../src/util/half.js';
import { packageRoot } from '../src/util/root.js';
import { randomMatrix, testRng } from './helpers/random.js';
import { expectedSimdLevel, simdLevels } from './helpers/simd.js';
import { refDistance, refDistances, refKnn, refMinUpdate, refScale, toFloat64, type RefMetric } from './reference/distance.js';

const METRICS: RefMetric[] = ['sqeuclidean', 'euclidean', 'cosine'];
const TOL_F32 = 1e-5;
/**
 * fp16 inputs against the original fp32 values: rounding to fp16 moves each component by ≤ u₁₆|x|
 * (u₁₆ = 2⁻¹¹). For Σ(a−b)², 2Σ|a−b|(|a|+|b|)·u₁₆ ≤ (‖a−b‖²/t + 2t(‖a‖²+‖b‖²))·u₁₆ with t = √0.05
 * makes the error ≤ u₁₆/√0.05 ≈ 4.47·u₁₆ of relErr's denominator ‖a−b‖² + 0.1·(‖a‖²+‖b‖²); for
 * cosine the angle moves by ≤ 2u₁₆, so |Δcos| ≤ 2u₁₆·sin θ, at most 2·2.18·u₁₆ of 1 − cos θ + 0.1.
 * Plus the fp32 arithmetic and second-order terms.
 */
const TOL_F16 = 4.5 * 2 ** -11 + TOL_F32;
const info = new Map(backends().map((b) => [b.name, b]));

/**
 * Relative error of a distance, relative to its own size plus a tenth of the operands' scale
 * (‖a‖² + ‖b‖², or 1 for cosine) so that distances near 0 (a row and itself) are judged by the
 * precision fp32 can give them. Euclidean is judged on its square, like sqeuclidean.
 */
function relErr(got: number, ref: number, scale: number, metric: RefMetric): number {
  if (metric === 'euclidean') {
    got *= got;
    ref *= ref;
  }
  return Math.abs(got - ref) / (Math.abs(ref) + 0.1 * scale);
}

interface Data {
  f32: Float32Array; // what the backend gets (fp32) or what was rounded to fp16
  input: Float32Array | Uint16Array;
  exact: Float64Array; // the values the backend actually sees, in float64
}

function makeData(rows: number, dim: number, half: boolean): Data {
  const rng = testRng();
  const f32 = randomMatrix(rng, rows, dim);
  const input = half ? floatArrayToHalf(f32) : f32;
  return { f32, input, exact: toFloat64(input) };
}

/** Checks a knn result against the reference: distances within tol, indices equal except at ties. */
function checkKnn(
  got: kernels.KnnResult,
  q: Float64Array,
  r: Float64Array,
  rowsQ: number,
  rowsR: number,
  dim: number,
  k: number,
  metric: RefMetric,
  excludeSelf: boolean,
  tol: number,
): void {
  const ref = refKnn(q, r, rowsQ, rowsR, dim, k, metric, excludeSelf);
  const problems: string[] = [];
  let worst = 0;
  for (let i = 0; i < rowsQ; i++) {
    const seen = new Set<number>();
    for (let s = 0; s < k; s++) {
      const gi = got.indices[i * k + s];
      const gd = got.distances[i * k + s];
      const ri = ref.indices[i * k + s];
      const rd = ref.distances[i * k + s];
      if (ri < 0) {
        if (gi !== -1 || gd !== Infinity) problems.push(`q${i} slot ${s}: expected padding, got ${gi}/${gd}`);
        continue;
      }
      if (gi < 0 || gi >= rowsR || seen.has(gi) || (excludeSelf && gi === i)) {
        problems.push(`q${i} slot ${s}: bad index ${gi}`);
        continue;
      }
      seen.add(gi);
      const err = relErr(gd, rd, refScale(q, i, r, ri, dim, metric), metric);
      worst = Math.max(worst, err);
      if (err > tol) problems.push(`q${i} slot ${s}: distance ${gd} vs ${rd} (rel ${err.toExponential(2)})`);
      if (gi !== ri) {
        // Allowed only at a tie: the returned row must truly be as near as the reference's.
        const trueD = refDistance(q, i, r, gi, dim, metric);
        const tieErr = relErr(trueD, rd, refScale(q, i, r, gi, dim, metric), metric);
        if (tieErr > tol) problems.push(`q${i} slot ${s}: index ${gi} (true distance ${trueD}) instead of ${ri} (${rd})`);
      }
    }
  }
  expect(problems.slice(0, 5), `worst rel err ${worst.toExponential(2)}`).toEqual([]);
}

function checkDense(got: Float32Array, a: Float64Array, b: Float64Array, rowsA: number, rowsB: number, dim: number, metric: RefMetric, tol: number): number {
  const ref = refDistances(a, b, rowsA, rowsB, dim, metric);
  expect(got.length).toBe(rowsA * rowsB);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < rowsA; i++) {
    for (let j = 0; j < rowsB; j++) {
      const err = relErr(got[i * rowsB + j], ref[i * rowsB + j], refScale(a, i, b, j, dim, metric), metric);
      if (!(err <= worst)) {
        worst = err;
        at = i * rowsB + j;
      }
    }
  }
  expect(worst, `worst at ${at}: ${got[at]} vs ${ref[at]}`).toBeLessThanOrEqual(tol);
  return worst;
}

const DENSE_CASES: [number, number, number][] = [
  [1, 1, 1],
  [7, 13, 3],
  [37, 201, 17],
  [101, 45, 257],
  [19, 390, 33],
];

// [rowsQ, rowsR, dim, k, excludeSelf]; with excludeSelf the queries are the first rows of ref.
const KNN_CASES: [number, number, number, number, boolean][] = [
  [1, 1, 5, 3, false], // k > rows
  [37, 37, 17, 40, true], // k > rows − self
  [5, 1000, 33, 10, false], // few queries: the native side splits the ref rows
  [211, 211, 257, 20, true], // dim crosses a 256 slice
  [70, 400, 1, 7, false], // dim 1
  [2, 3, 300, 1, false],
  [130, 389, 70, 3, true],
];

for (const name of ['js', 'cpu', 'cuda'] as BackendName[]) {
  const b = info.get(name);
  describe.skipIf(!b?.available)(`distance core on ${name}${b?.available ? '' : ` (unavailable: ${b?.reason})`}`, () => {
    for (const metric of METRICS) {
      for (const half of [false, true]) {
        const dtype = half ? 'fp16' : 'fp32';
        it(`distances ${metric} ${dtype}`, async () => {
          for (const [rowsA, rowsB, dim] of DENSE_CASES) {
            const A = makeData(rowsA, dim, half);
            const B = makeData(rowsB, dim, half);
            const got = await kernels.distances(A.input, B.input, { rowsA, rowsB, dim, metric, backend: name });
            checkDense(got, A.exact, B.exact, rowsA, rowsB, dim, metric, TOL_F32);
            // fp16: the error against the original fp32 values stays within the fp16 budget.
            if (half) checkDense(got, toFloat64(A.f32), toFloat64(B.f32), rowsA, rowsB, dim, metric, TOL_F16);
          }
        });

        it(`knn ${metric} ${dtype}`, async () => {
          for (const [rowsQ, rowsR, dim, k, excludeSelf] of KNN_CASES) {
            const R = makeData(rowsR, dim, half);
            const query = excludeSelf ? R.input.subarray(0, rowsQ * dim) : makeData(rowsQ, dim, half).input;
            const got = await kernels.knn(query, R.input, { rowsQ, rowsR, dim, k, metric, excludeSelf, backend: name });
            expect(got.indices.length).toBe(rowsQ * k);
            checkKnn(got, toFloat64(query), R.exact, rowsQ, rowsR, dim, k, metric, excludeSelf, TOL_F32);
          }
        });

        it(`minUpdate ${metric} ${dtype} (greedy steps, exclusions)`, async () => {
          const rng = testRng();
          for (const [rows, dim] of [
            [1, 1],
            [13, 7],
            [1000, 33],
            [3001, 257],
          ]) {
            const P = makeData(rows, dim, half);
            const minDist = new Float32Array(rows).fill(Infinity);
            let refMin: Float64Array = new Float64Array(rows).fill(Infinity);
            const exclude = new Uint8Array(rows);
            for (let i = 0; i < rows; i++) exclude[i] = rng.next() < 0.3 ? 1 : 0;
            let center = rng.int(rows);
            for (let step = 0; step < 4; step++) {
              const c = P.input.subarray(center * dim, (center + 1) * dim);
              const res = await kernels.minUpdate(P.input, c, minDist, { rows, dim, metric, exclude, backend: name });
              const ref = refMinUpdate(P.exact, P.exact.subarray(center * dim, (center + 1) * dim), refMin, rows, dim, metric, exclude);
              let worst = 0;
              for (let i = 0; i < rows; i++) {
                worst = Math.max(worst, relErr(minDist[i], ref.minDist[i], refScale(P.exact, i, P.exact, center, dim, metric), metric));
              }
              expect(worst).toBeLessThanOrEqual(TOL_F32);
              if (ref.argmax < 0) {
                expect(res).toEqual({ argmax: -1, max: -Infinity });
                break;
              }
              // The pick is the reference's, or a row tied with it.
              expect(exclude[res.argmax]).toBe(0);
              expect(res.max).toBe(minDist[res.argmax]);
              if (res.argmax !== ref.argmax) {
                const scale = refScale(P.exact, res.argmax, P.exact, center, dim, metric);
                expect(relErr(ref.minDist[res.argmax], ref.max, scale, metric)).toBeLessThanOrEqual(TOL_F32);
              }
              refMin = ref.minDist;
              exclude[res.argmax] = 1;
              center = res.argmax;
            }
          }
        });
      }
    }

    it('minUpdate with every row excluded returns −1', async () => {
      const P = makeData(9, 4, false);
      const minDist = new Float32Array(9).fill(Infinity);
      const res = await kernels.minUpdate(P.input, P.input.subarray(0, 4), minDist, { rows: 9, dim: 4, exclude: new Uint8Array(9).fill(1), backend: name });
      expect(res).toEqual({ argmax: -1, max: -Infinity });
      expect(minDist[0]).toBe(0);
      expect(Number.isFinite(minDist[5])).toBe(true);
    });

    it('knn over several driver blocks (query and ref split) matches the reference', async () => {
      // Sized to span several backend calls on js (the driver splits by work per call).
      const rowsR = 9000;
      const dim = 256;
      const rowsQ = 100;
      const R = makeData(rowsR, dim, false);
      const progress: number[] = [];
      const got = await kernels.knn(R.input.subarray(0, rowsQ * dim), R.input, {
        rowsQ,
        rowsR,
        dim,
        k: 5,
        excludeSelf: true,
        backend: name,
        onProgress: (p) => progress.push(p.done / p.total),
      });
      checkKnn(got, R.exact.subarray(0, rowsQ * dim), R.exact, rowsQ, rowsR, dim, 5, 'sqeuclidean', true, TOL_F32);
      expect(progress.at(-1)).toBe(1);
      for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThan(progress[i - 1]);
    });

    it('knnMerge accumulates ref blocks (refOffset, queryOffset, excludeSelf) into a running state', async () => {
      // Ref rows arrive in three uneven blocks, queries in two; the state must end as one search.
      const rowsR = 431;
      const dim = 29;
      const k = 12;
      const R = makeData(rowsR, dim, false);
      const rowsQ = 150; // queries are ref rows 0…149, so excludeSelf applies
      const state = { indices: new Int32Array(rowsQ * k).fill(-1), distances: new Float32Array(rowsQ * k).fill(Infinity) };
      const backend = getBackend(name);
      for (const [q0, q1] of [
        [0, 61],
        [61, 150],
      ]) {
        for (const [r0, r1] of [
          [200, 431],
          [0, 7],
          [7, 200],
        ]) {
          await backend.knnMerge(
            R.f32.subarray(q0 * dim, q1 * dim),
            R.f32.subarray(r0 * dim, r1 * dim),
            { rowsQ: q1 - q0, rowsR: r1 - r0, dim, k, metric: 'euclidean', refOffset: r0, queryOffset: q0, excludeSelf: true },
            { indices: state.indices.subarray(q0 * k, q1 * k), distances: state.distances.subarray(q0 * k, q1 * k) },
          );
        }
      }
      checkKnn(state, R.exact.subarray(0, rowsQ * dim), R.exact, rowsQ, rowsR, dim, k, 'euclidean', true, TOL_F32);
    });

    it('exact ties (duplicated rows) go to the lower index, in knn and minUpdate', async () => {
      for (const half of [false, true]) {
        const n = 157;
        const dim = 37;
        const base = makeData(n, dim, half);
        // Rows i and i + n are identical, so their distances tie exactly on every backend.
        const twice = half ? new Uint16Array(2 * n * dim) : new Float32Array(2 * n * dim);
        twice.set(base.input);
        twice.set(base.input, n * dim);
        const rowsQ = 41;
        const k = 7;
        const q = makeData(rowsQ, dim, half);
        for (const metric of METRICS) {
          const got = await kernels.knn(q.input, twice, { rowsQ, rowsR: 2 * n, dim, k, metric, backend: name });
          for (let i = 0; i < rowsQ; i++) {
            const row = Array.from(got.indices.subarray(i * k, (i + 1) * k));
            row.forEach((g, s) => {
              if (g >= n) expect(row.indexOf(g - n), `query ${i}: ${g} without its twin ${g - n} before it`).toBeGreaterThanOrEqual(0);
              if (g >= n) expect(row.indexOf(g - n)).toBeLessThan(s);
            });
          }
          const minDist = new Float32Array(2 * n).fill(Infinity);
          const res = await kernels.minUpdate(twice, q.input.subarray(0, dim), minDist, { rows: 2 * n, dim, metric, backend: name });
          expect(res.argmax).toBeLessThan(n);
          expect(minDist[res.argmax + n]).toBe(res.max);
        }
      }
    });

    it('mixed fp16/fp32 operands give the fp32 result of the widened fp16 values', async () => {
      const A = makeData(11, 19, true);
      const B = makeData(23, 19, false);
      const got = await kernels.knn(A.input, B.input, { rowsQ: 11, rowsR: 23, dim: 19, k: 4, metric: 'cosine', backend: name });
      checkKnn(got, A.exact, B.exact, 11, 23, 19, 4, 'cosine', false, TOL_F32);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Every native SIMD level this CPU has (scalar, AVX2, AVX-512): a child process with PAIRPICK_SIMD
// forcing the level calls the addon directly.

const CHILD = `
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
const [addonPath, dir] = process.argv.slice(1);
const addon = createRequire(import.meta.url)(addonPath);
const spec = JSON.parse(readFileSync(dir + '/spec.json', 'utf8'));
const f32 = (name) => { const b = readFileSync(dir + '/' + name); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
const u16 = (name) => { const b = readFileSync(dir + '/' + name); return new Uint16Array(b.buffer, b.byteOffset, b.length / 2); };
const out = { simd: addon.simd, results: [] };
for (const c of spec.cases) {
  const load = c.half ? u16 : f32;
  const q = load(c.q), r = load(c.r);
  const metric = c.code;
  const dense = await addon.cpu.distances(q, r, { rowsA: c.rowsQ, rowsB: c.rowsR, dim: c.dim, metric });
  const idx = new Int32Array(c.rowsQ * c.k).fill(-1), dist = new Float32Array(c.rowsQ * c.k).fill(Infinity);
  const knn = { rowsQ: c.rowsQ, rowsR: c.rowsR, dim: c.dim, k: c.k, metric, refOffset: 0, queryOffset: 0, excludeSelf: c.excludeSelf };
  await addon.cpu.knnMerge(q, r, knn, { indices: idx, distances: dist });
  const minDist = new Float32Array(c.rowsR).fill(Infinity);
  const mu = await addon.cpu.minUpdate(r, q.subarray(0, c.dim), minDist, { rows: c.rowsR, dim: c.dim, metric }, null);
  out.results.push({ dense: Array.from(dense), idx: Array.from(idx), dist: Array.from(dist), minDist: Array.from(minDist), mu });
}
writeFileSync(dir + '/out.json', JSON.stringify(out));
`;

describe.skipIf(!info.get('cpu')?.available)('native SIMD dispatch', () => {
  it('the parity tests above ran the best kernels this CPU has (or the level PAIRPICK_SIMD forces)', () => {
    if (!existsSync('/proc/cpuinfo')) return; // not Linux: nothing to compare against
    expect(info.get('cpu')?.simd).toBe(expectedSimdLevel());
  });
});

describe.skipIf(!info.get('cpu')?.available)('native kernels at every SIMD level (PAIRPICK_SIMD forced)', () => {
  it.each(simdLevels())('PAIRPICK_SIMD=%s matches the reference on every op and metric', (level, reported) => {
    const dir = mkdtempSync(join(tmpdir(), `pairpick-${level}-`));
    try {
      const cases: { half: boolean; metric: number; code: number; rowsQ: number; rowsR: number; dim: number; k: number; excludeSelf: boolean; q: string; r: string }[] = [];
      const data: { q: Data; r: Data }[] = [];
      const shapes: [number, number, number, number][] = [
        [21, 301, 261, 9],
        [3, 500, 7, 4],
        [17, 17, 1, 20],
      ];
      for (const half of [false, true]) {
        for (let m = 0; m < 3; m++) {
          const [rowsQ, rowsR, dim, k] = shapes[(m + (half ? 1 : 0)) % shapes.length];
          const r = makeData(rowsR, dim, half);
          const q = makeData(rowsQ, dim, half);
          const n = cases.length;
          writeFileSync(join(dir, `q${n}`), Buffer.from(q.input.buffer, q.input.byteOffset, q.input.byteLength));
          writeFileSync(join(dir, `r${n}`), Buffer.from(r.input.buffer, r.input.byteOffset, r.input.byteLength));
          cases.push({ half, metric: m, code: NATIVE_CODES.metrics[METRICS[m]], rowsQ, rowsR, dim, k, excludeSelf: false, q: `q${n}`, r: `r${n}` });
          data.push({ q, r });
        }
      }
      writeFileSync(join(dir, 'spec.json'), JSON.stringify({ cases }));
      const addonPath = join(packageRoot(), 'build', 'Release', 'pairpick.node');
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, addonPath, dir], {
        env: { ...process.env, PAIRPICK_SIMD: level },
        encoding: 'utf8',
      });
      expect(child.status, child.stderr).toBe(0);
      const out = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8'));
      expect(out.simd).toBe(reported);
      cases.forEach((c, n) => {
        const metric = METRICS[c.metric];
        const { q, r } = data[n];
        const res = out.results[n];
        checkDense(Float32Array.from(res.dense), q.exact, r.exact, c.rowsQ, c.rowsR, c.dim, metric, TOL_F32);
        checkKnn(
          { indices: Int32Array.from(res.idx), distances: Float32Array.from(res.dist.map((d: number | null) => d ?? Infinity)) },
          q.exact,
          r.exact,
          c.rowsQ,
          c.rowsR,
          c.dim,
          c.k,
          metric,
          false,
          TOL_F32,
        );
        const ref = refMinUpdate(r.exact, q.exact.subarray(0, c.dim), new Float64Array(c.rowsR).fill(Infinity), c.rowsR, c.dim, metric);
        for (let i = 0; i < c.rowsR; i++) {
          expect(relErr(res.minDist[i], ref.minDist[i], refScale(r.exact, i, q.exact, 0, c.dim, metric), metric)).toBeLessThanOrEqual(TOL_F32);
        }
        expect(res.mu.max).toBe(res.minDist[res.mu.argmax]);
        expect(relErr(ref.minDist[res.mu.argmax], ref.max, 1, metric)).toBeLessThanOrEqual(TOL_F32);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------

async function rejects(p: Promise<unknown> | (() => unknown), code: string, text?: RegExp): Promise<void> {
  let error: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(error, 'expected a PairpickError').toBeInstanceOf(PairpickError);
  expect((error as PairpickError).code).toBe(code);
  if (text) expect((error as PairpickError).message).toMatch(text);
}

describe('kernels validation', () => {
  const rng = testRng();
  const a = randomMatrix(rng, 6, 5);
  const b = randomMatrix(rng, 9, 5);

  it('rejects mismatched lengths with E_SHAPE naming the argument', async () => {
    await rejects(kernels.knn(a, b, { rowsQ: 6, rowsR: 8, dim: 5, k: 2 }), 'E_SHAPE', /ref has 45 values/);
    await rejects(kernels.distances(a.subarray(1), b, { rowsA: 6, rowsB: 9, dim: 5 }), 'E_SHAPE', /\ba has 29/);
    await rejects(kernels.minUpdate(b, a.subarray(0, 4), new Float32Array(9), { rows: 9, dim: 5 }), 'E_SHAPE', /center/);
    await rejects(kernels.minUpdate(b, a.subarray(0, 5), new Float32Array(8), { rows: 9, dim: 5 }), 'E_SHAPE', /minDist/);
    await rejects(kernels.minUpdate(b, a.subarray(0, 5), new Float32Array(9), { rows: 9, dim: 5, exclude: new Uint8Array(3) }), 'E_SHAPE', /exclude/);
  });

  it('rejects bad sizes, k, metric, backend and unknown options with E_OPTION', async () => {
    await rejects(kernels.knn(a, b, { rowsQ: 6, rowsR: 9, dim: 5, k: 0 }), 'E_OPTION', /option 'k' must be an integer ≥ 1/);
    await rejects(kernels.knn(a, b, { rowsQ: 6, rowsR: 9, dim: 5.5, k: 1 }), 'E_OPTION', /dim/);
    await rejects(kernels.distances(a, b, { rowsA: 0, rowsB: 9, dim: 5 }), 'E_OPTION', /rowsA/);
    await rejects(kernels.knn(a, b, { rowsQ: 6, rowsR: 9, dim: 5, k: 1, metric: 'manhattan' as never }), 'E_OPTION', /option 'metric' must be .*got 'manhattan'/);
    await rejects(kernels.knn(a, b, { rowsQ: 6, rowsR: 9, dim: 5, k: 1, kk: 3 } as never), 'E_OPTION', /unknown option 'kk'/);
    await rejects(kernels.knn(a, b, { rowsQ: 6, rowsR: 9, dim: 5, k: 1, backend: 'tpu' as never }), 'E_OPTION', /backend/);
    await rejects(kernels.knn(a as never, [1, 2] as never, { rowsQ: 6, rowsR: 1, dim: 5, k: 1 }), 'E_OPTION', /ref must be a Float32Array/);
    if (!info.get('cuda')?.available) await rejects(kernels.knn(a, b, { rowsQ: 6, rowsR: 9, dim: 5, k: 1, backend: 'cuda' }), 'E_BACKEND', /cuda/);
  });

  it('rejects NaN/Inf with E_NAN naming the argument and row', async () => {
    const bad = Float32Array.from(b);
    bad[3 * 5 + 2] = NaN;
    await rejects(kernels.knn(a, bad, { rowsQ: 6, rowsR: 9, dim: 5, k: 1 }), 'E_NAN', /ref row 3 \(column 2\) is NaN/);
    const badHalf = floatArrayToHalf(a);
    badHalf[4 * 5] = 0x7c00; // +Inf
    await rejects(kernels.distances(badHalf, b, { rowsA: 6, rowsB: 9, dim: 5 }), 'E_NAN', /a row 4 \(column 0\) is Infinity/);
    const md = new Float32Array(9).fill(Infinity);
    md[7] = NaN;
    await rejects(kernels.minUpdate(b, b.subarray(0, 5), md, { rows: 9, dim: 5 }), 'E_NAN', /minDist\[7\]/);
    const badCenter = Float32Array.from(b.subarray(0, 5));
    badCenter[1] = -Infinity;
    await rejects(kernels.minUpdate(b, badCenter, new Float32Array(9), { rows: 9, dim: 5 }), 'E_NAN', /center row 0/);
  });

  it('refuses a dense result that is too large, pointing to knn', async () => {
    const big = new Float32Array(2 ** 15);
    await rejects(kernels.distances(big, big, { rowsA: 2 ** 15, rowsB: 2 ** 15, dim: 1 }), 'E_SHAPE', /use kernels\.knn/);
  });

  it('cancels through an AbortSignal, before and during the work', async () => {
    const ac = new AbortController();
    ac.abort();
    await rejects(kernels.knn(a, b, { rowsQ: 6, rowsR: 9, dim: 5, k: 1, signal: ac.signal }), 'E_ABORTED');
    const R = randomMatrix(rng, 4096, 256);
    const during = new AbortController();
    let calls = 0;
    await rejects(
      kernels.knn(R.subarray(0, 200 * 256), R, {
        rowsQ: 200,
        rowsR: 4096,
        dim: 256,
        k: 3,
        backend: 'js',
        signal: during.signal,
        onProgress: () => {
          calls++;
          during.abort();
        },
      }),
      'E_ABORTED',
    );
    expect(calls).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Near-duplicate rows, where the fast form ‖q‖² + ‖r‖² − 2⟨q,r⟩ cancels: every backend must still
// be within 1e-5 relative of the float64 reference — judged on the distance itself, with no slack
// proportional to the norms (unlike relErr above) — and give exactly 0 for a duplicate row.

/**
 * The one floor: cosine distances below 1e-9 are judged against 1e-9. The reference (and the exact
 * paths of the backends) form 1 − ⟨a,b⟩/√(‖a‖²‖b‖²) in float64; that difference has an absolute
 * rounding error of ~1e-16 up to ~3e-14 (sums of 257 terms), so the reference itself is only good
 * to 1e-5 relative above ~1e-9 (seen: 1.1e-11 values disagreeing by 2e-16). fp32 arithmetic is
 * ~1e-7 off there, so the check still tells exact from fast. Squared differences have no
 * cancellation: sqeuclidean/euclidean get no floor at all.
 */
const COSINE_FLOOR = 1e-9;

function strictErr(got: number, ref: number, metric: RefMetric): number {
  if (got === ref) return 0;
  return Math.abs(got - ref) / Math.max(Math.abs(ref), metric === 'cosine' ? COSINE_FLOOR : 0);
}

const NEAR_NOISE = [0, 1e-4, 1e-2, 0.3, 1];
const NEAR_NOISE_DIM1 = [0, 1e-4, 1e-2];

/**
 * rows = 3·base rows: `base` random rows, then two copies of each one, each an exact duplicate or
 * the row times (1 + noise·N(0,1)) per element, noise from NEAR_NOISE (1e-4: near-duplicates;
 * 1e-2 … 1: distances around the point where the native code stops rechecking). Clusters of
 * near-identical rows have 3 members, fewer than the k used below, so the k-th neighbour is never a
 * near-tie inside a cluster. At dim 1 the base values sit on a jittered grid (spacing ≥ 0.06) for the
 * same reason, and copies stay within 1%.
 */
function nearDuplicatePool(base: number, dim: number, half: boolean): Data {
  const rng = testRng();
  const rows = 3 * base;
  const f32 = new Float32Array(rows * dim);
  if (dim === 1) {
    for (let i = 0; i < base; i++) f32[i] = (i - base / 2 + 0.5) * 0.1 + (rng.next() - 0.5) * 0.04;
  } else {
    f32.set(randomMatrix(rng, base, dim));
  }
  const levels = dim === 1 ? NEAR_NOISE_DIM1 : NEAR_NOISE;
  for (let r = base; r < rows; r++) {
    const src = r % base;
    const noise = levels[rng.int(levels.length)];
    for (let p = 0; p < dim; p++) f32[r * dim + p] = f32[src * dim + p] * (1 + noise * rng.normal());
  }
  const input = half ? floatArrayToHalf(f32) : f32;
  return { f32, input, exact: toFloat64(input) };
}

/** Queries: copies of random pool rows (exact, 1e-4 or 1e-2 noise) and a few fresh rows. */
function nearDuplicateQueries(pool: Data, poolRows: number, rows: number, dim: number, half: boolean): Data {
  const rng = testRng();
  const f32 = new Float32Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    const kind = rng.int(4);
    const src = rng.int(poolRows);
    for (let p = 0; p < dim; p++) {
      const x = pool.f32[src * dim + p];
      f32[i * dim + p] = kind === 3 && dim > 1 ? rng.normal() : x * (1 + [0, 1e-4, 1e-2, 0][kind] * rng.normal());
    }
  }
  const input = half ? floatArrayToHalf(f32) : f32;
  return { f32, input, exact: toFloat64(input) };
}

function checkDenseStrict(got: Float32Array, a: Float64Array, b: Float64Array, rowsA: number, rowsB: number, dim: number, metric: RefMetric): void {
  const ref = refDistances(a, b, rowsA, rowsB, dim, metric);
  let worst = 0;
  let at = 0;
  let zeros = 0;
  for (let i = 0; i < rowsA * rowsB; i++) {
    const err = strictErr(got[i], ref[i], metric);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
    if (ref[i] === 0 && metric !== 'cosine') {
      zeros++;
      expect(got[i], `duplicate pair ${Math.floor(i / rowsB)}/${i % rowsB} must be exactly 0`).toBe(0);
    }
  }
  if (metric !== 'cosine') expect(zeros, 'the data has exact duplicates').toBeGreaterThan(0);
  expect(worst, `worst at ${Math.floor(at / rowsB)}/${at % rowsB}: ${got[at]} vs ${ref[at]}`).toBeLessThanOrEqual(TOL_F32);
}

/**
 * Distances strictly within 1e-5 of the reference slot by slot; indices equal to the reference's
 * except where the returned row is exactly as near (a tie: equal within that same tolerance —
 * e.g. every same-sign row at cosine distance 0 in dim 1).
 */
function checkKnnStrict(got: kernels.KnnResult, q: Float64Array, r: Float64Array, rowsQ: number, rowsR: number, dim: number, k: number, metric: RefMetric, excludeSelf: boolean): void {
  const ref = refKnn(q, r, rowsQ, rowsR, dim, k, metric, excludeSelf);
  const problems: string[] = [];
  let worst = 0;
  for (let i = 0; i < rowsQ; i++) {
    const seen = new Set<number>();
    for (let s = 0; s < k; s++) {
      const gi = got.indices[i * k + s];
      const gd = got.distances[i * k + s];
      const ri = ref.indices[i * k + s];
      const rd = ref.distances[i * k + s];
      if (ri < 0) {
        if (gi !== -1 || gd !== Infinity) problems.push(`q${i} slot ${s}: expected padding, got ${gi}/${gd}`);
        continue;
      }
      if (gi < 0 || gi >= rowsR || seen.has(gi) || (excludeSelf && gi === i)) {
        problems.push(`q${i} slot ${s}: bad index ${gi}`);
        continue;
      }
      seen.add(gi);
      const err = strictErr(gd, rd, metric);
      worst = Math.max(worst, err);
      if (err > TOL_F32) problems.push(`q${i} slot ${s}: distance ${gd} vs ${rd} (rel ${err.toExponential(2)})`);
      if (rd === 0 && metric !== 'cosine' && gd !== 0) problems.push(`q${i} slot ${s}: duplicate row at distance ${gd}, not 0`);
      if (gi !== ri && strictErr(refDistance(q, i, r, gi, dim, metric), rd, metric) > TOL_F32) {
        problems.push(`q${i} slot ${s}: index ${gi} (true ${refDistance(q, i, r, gi, dim, metric)}) instead of ${ri} (${rd})`);
      }
    }
  }
  expect(problems.slice(0, 5), `worst rel err ${worst.toExponential(2)}`).toEqual([]);
}

// [pool base rows (pool = 3×), queries, dim, k]: the 800-row pool with 30 queries makes the native
// side split the ref rows into parts (each rescored, then merged).
const NEAR_CASES: [number, number, number, number][] = [
  [20, 23, 1, 5],
  [101, 41, 3, 5],
  [267, 30, 3, 6],
  [67, 37, 257, 5],
];

for (const name of ['js', 'cpu', 'cuda'] as BackendName[]) {
  const b = info.get(name);
  describe.skipIf(!b?.available)(`near-duplicate rows on ${name}${b?.available ? '' : ` (unavailable: ${b?.reason})`}`, () => {
    for (const metric of METRICS) {
      for (const half of [false, true]) {
        const dtype = half ? 'fp16' : 'fp32';
        it(`distances and knn ${metric} ${dtype}: exact for duplicates and near-duplicates`, async () => {
          for (const [base, rowsQ, dim, k] of NEAR_CASES) {
            const rowsR = 3 * base;
            const P = nearDuplicatePool(base, dim, half);
            const Q = nearDuplicateQueries(P, rowsR, rowsQ, dim, half);
            const dense = await kernels.distances(Q.input, P.input, { rowsA: rowsQ, rowsB: rowsR, dim, metric, backend: name });
            checkDenseStrict(dense, Q.exact, P.exact, rowsQ, rowsR, dim, metric);
            const got = await kernels.knn(Q.input, P.input, { rowsQ, rowsR, dim, k, metric, backend: name });
            checkKnnStrict(got, Q.exact, P.exact, rowsQ, rowsR, dim, k, metric, false);
            // The pool against itself: each row's duplicate (not itself) must come back at 0.
            const self = await kernels.knn(P.input, P.input, { rowsQ: rowsR, rowsR, dim, k, metric, excludeSelf: true, backend: name });
            checkKnnStrict(self, P.exact, P.exact, rowsR, rowsR, dim, k, metric, true);
          }
        });

        it(`minUpdate ${metric} ${dtype}: exact for duplicates and near-duplicates of the center`, async () => {
          const rng = testRng();
          for (const [base, , dim] of NEAR_CASES) {
            const rows = 3 * base;
            const P = nearDuplicatePool(base, dim, half);
            const minDist = new Float32Array(rows).fill(Infinity);
            const center = rng.int(base); // a base row: it has two copies in the pool
            const c = P.input.subarray(center * dim, (center + 1) * dim);
            await kernels.minUpdate(P.input, c, minDist, { rows, dim, metric, backend: name });
            const ref = refMinUpdate(P.exact, P.exact.subarray(center * dim, (center + 1) * dim), new Float64Array(rows).fill(Infinity), rows, dim, metric);
            let worst = 0;
            for (let i = 0; i < rows; i++) {
              worst = Math.max(worst, strictErr(minDist[i], ref.minDist[i], metric));
              if (ref.minDist[i] === 0 && metric !== 'cosine') expect(minDist[i]).toBe(0);
            }
            expect(minDist[center]).toBe(0);
            expect(worst).toBeLessThanOrEqual(TOL_F32);
          }
        });
      }
    }
  });
}
