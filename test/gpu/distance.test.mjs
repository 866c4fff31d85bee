// GPU parity of the distance core (issue 2): the cuda backend against a float64 reference on
// fresh random inputs of awkward sizes. Run on a GPU machine after packing:
//   node --test test/gpu/
// Skips (not fails) where the cuda backend is unavailable. Tolerances from issue 2: relative
// error ≤ 1e-5 with fp32 inputs, ≤ 2e-3 with fp16 inputs (the reference uses the fp16 values
// exactly), kNN indices identical except between (near-)exact ties.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { kernels } from '../../dist/index.js';
import { BACKEND, METRICS, TEST_SEED, copyRow, cudaSkipReason, makeRng, randomMatrix, refDistance, relError } from './common.mjs';

const skip = cudaSkipReason();
console.log(`gpu distance tests: seed ${TEST_SEED} (replay with PAIRPICK_TEST_SEED=${TEST_SEED})${skip ? `; skipped: ${skip}` : ''}`);

const tolerance = (half) => (half ? 2e-3 : 1e-5);
// Cosine distances live in [0, 2]: judge them against a scale of 1 (1 − cos near 0 has no
// meaningful relative error); squared/euclidean distances are computed from direct differences
// on the GPU, so they are held to a plain relative error (an exact duplicate must give 0).
const floorOf = (metric) => (metric === 'cosine' ? 1 : 1e-30);

describe(`${BACKEND} distances`, { skip }, () => {
  const cases = [
    [77, 301, 45],
    [5, 3, 1],
    [40, 130, 70],
    [40, 130, 64], // 16-byte loads (dim a multiple of 8)
  ];
  for (const half of [false, true]) {
    for (const metric of METRICS) {
      for (const [rowsA, rowsB, dim] of cases) {
        test(`${rowsA}×${rowsB}×${dim} ${metric} ${half ? 'fp16' : 'fp32'}`, async () => {
          const rng = makeRng();
          const a = randomMatrix(rng, rowsA, dim, half);
          const b = randomMatrix(rng, rowsB, dim, half);
          if (rowsA > 2 && rowsB > 1) {
            copyRow(b, 1, a, 0); // an exact duplicate: distance 0
            for (let j = 0; j < dim; j++) {
              a.data[dim + j] = 0; // a zero row: cosine distance 1
              a.values[dim + j] = 0;
            }
          }
          const out = await kernels.distances(a.data, b.data, { rowsA, rowsB, dim, metric, backend: BACKEND });
          assert.equal(out.length, rowsA * rowsB);
          let worst = 0, at = '';
          for (let i = 0; i < rowsA; i++) {
            for (let j = 0; j < rowsB; j++) {
              const want = refDistance(a.values, i, b.values, j, dim, metric);
              const e = relError(out[i * rowsB + j], want, floorOf(metric));
              if (!(e <= worst)) {
                worst = e;
                at = `(${i}, ${j}): got ${out[i * rowsB + j]}, want ${want}`;
              }
            }
          }
          assert.ok(worst <= tolerance(half), `worst relative error ${worst} at ${at}`);
        });
      }
    }
  }
});

/** Float64 top-k of every query: [[distance, globalIndex], …] sorted by (distance, index). */
function referenceTopK(q, r, dim, k, metric, excludeSelf) {
  const out = [];
  for (let i = 0; i < q.rows; i++) {
    const all = [];
    for (let j = 0; j < r.rows; j++) {
      if (excludeSelf && i === j) continue;
      all.push([refDistance(q.values, i, r.values, j, dim, metric), j]);
    }
    all.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    out.push(all.slice(0, k));
  }
  return out;
}

/**
 * Checks a kNN result against the reference: ascending distances, reported distances equal to
 * the true distance of the reported index and to the reference's j-th distance, indices equal
 * except where the two candidates' true distances tie within the tolerance, unique indices per
 * row, and −1 / +Infinity in the slots beyond the available refs.
 */
function checkKnn(result, q, r, dim, k, metric, excludeSelf, tol) {
  const want = referenceTopK(q, r, dim, k, metric, excludeSelf);
  const floor = floorOf(metric);
  let swaps = 0;
  for (let i = 0; i < q.rows; i++) {
    const seen = new Set();
    for (let j = 0; j < k; j++) {
      const gi = result.indices[i * k + j];
      const gd = result.distances[i * k + j];
      const where = `query ${i} slot ${j}`;
      if (j >= want[i].length) {
        assert.equal(gi, -1, `${where}: expected an unfilled slot`);
        assert.equal(gd, Infinity, `${where}: expected +Infinity`);
        continue;
      }
      assert.ok(gi >= 0 && gi < r.rows, `${where}: index ${gi} out of range`);
      assert.ok(!seen.has(gi), `${where}: index ${gi} repeated`);
      seen.add(gi);
      if (excludeSelf) assert.notEqual(gi, i, `${where}: self returned`);
      if (j > 0) assert.ok(gd >= result.distances[i * k + j - 1], `${where}: distances not ascending`);
      const [wd, wi] = want[i][j];
      const scale = Math.max(Math.abs(wd), floor);
      assert.ok(Math.abs(gd - wd) <= tol * scale, `${where}: distance ${gd}, reference ${wd}`);
      const trueOfGot = refDistance(q.values, i, r.values, gi, dim, metric);
      assert.ok(Math.abs(gd - trueOfGot) <= tol * Math.max(Math.abs(trueOfGot), floor), `${where}: reported ${gd} but the true distance of ${gi} is ${trueOfGot}`);
      if (gi !== wi) {
        assert.ok(Math.abs(trueOfGot - wd) <= tol * scale, `${where}: index ${gi} (${trueOfGot}) instead of ${wi} (${wd}) without a tie`);
        swaps++;
      }
    }
  }
  return swaps;
}

describe(`${BACKEND} knn`, { skip }, () => {
  // [rowsQ, rowsR, dim, k, metric, fp16, excludeSelf]: k around the 32/64 fused-list limits,
  // multi-pass k, k larger than the refs, awkward dims.
  const cases = [
    [133, 1001, 37, 20, 'sqeuclidean', false, false],
    [133, 1001, 37, 20, 'euclidean', true, false],
    [133, 1001, 37, 20, 'cosine', false, false],
    [133, 1001, 37, 20, 'cosine', true, false],
    [301, 301, 29, 7, 'sqeuclidean', false, true],
    [250, 250, 33, 1, 'euclidean', true, true],
    [90, 700, 20, 45, 'sqeuclidean', false, false],
    [200, 200, 20, 64, 'cosine', true, true],
    [150, 400, 19, 70, 'sqeuclidean', false, false],
    [60, 300, 9, 140, 'euclidean', true, false],
    [50, 50, 8, 60, 'sqeuclidean', false, true],
    [20, 50, 8, 1100, 'euclidean', false, false],
    [3000, 5000, 130, 20, 'sqeuclidean', true, false],
    [500, 2000, 64, 20, 'sqeuclidean', true, false], // 16-byte fp16 loads into the tensor-core tile
    [500, 2000, 64, 33, 'cosine', false, true], // 16-byte fp32 loads, the k > 32 list
  ];
  for (const [rowsQ, rowsR, dim, k, metric, half, excludeSelf] of cases) {
    test(`${rowsQ}×${rowsR}×${dim} k=${k} ${metric} ${half ? 'fp16' : 'fp32'}${excludeSelf ? ' excludeSelf' : ''}`, async () => {
      const rng = makeRng();
      const r = randomMatrix(rng, rowsR, dim, half);
      if (rowsR > 10) copyRow(r, 3, r, 9); // an exact tie: the lower index must come first
      const q = excludeSelf ? r : randomMatrix(rng, rowsQ, dim, half);
      const result = await kernels.knn(q.data, r.data, { rowsQ: q.rows, rowsR, dim, k, metric, excludeSelf, backend: BACKEND });
      assert.equal(result.indices.length, q.rows * k);
      checkKnn(result, q, r, dim, k, metric, excludeSelf, tolerance(half));
    });
  }

  test('concurrent calls share the device safely', async () => {
    const rng = makeRng();
    const dim = 23, k = 9;
    const jobs = [];
    for (let t = 0; t < 6; t++) {
      const q = randomMatrix(rng, 100 + 17 * t, dim, t % 2 === 1);
      const r = randomMatrix(rng, 900 + 31 * t, dim, t % 2 === 1);
      const metric = METRICS[t % 3];
      jobs.push({ q, r, metric, promise: kernels.knn(q.data, r.data, { rowsQ: q.rows, rowsR: r.rows, dim, k, metric, backend: BACKEND }) });
    }
    for (const job of jobs) checkKnn(await job.promise, job.q, job.r, dim, k, job.metric, false, tolerance(job.q.half));
  });
});

describe(`${BACKEND} minUpdate`, { skip }, () => {
  // dims hit the vectorised loads (fp32: multiple of 4, fp16: multiple of 8) and the scalar path.
  const cases = [
    [2003, 67, false],
    [1000, 64, false],
    [999, 72, true],
    [1234, 61, true],
  ];
  for (const [rows, dim, half] of cases) {
    for (const metric of METRICS) {
      for (const withExclude of [false, true]) {
        test(`${rows}×${dim} ${metric} ${half ? 'fp16' : 'fp32'}${withExclude ? ' with exclude' : ''}`, async () => {
          const rng = makeRng();
          const points = randomMatrix(rng, rows, dim, half);
          const center = randomMatrix(rng, 1, dim, half);
          const typical = metric === 'cosine' ? 1.5 : metric === 'euclidean' ? Math.sqrt(2 * dim) : 2 * dim;
          const minDist = new Float32Array(rows);
          for (let i = 0; i < rows; i++) minDist[i] = rng.uniform() < 0.3 ? Infinity : rng.uniform() * 1.6 * typical;
          const before = Float32Array.from(minDist);
          const exclude = withExclude ? Uint8Array.from({ length: rows }, () => (rng.uniform() < 0.2 ? 1 : 0)) : undefined;
          const got = await kernels.minUpdate(points.data, center.data, minDist, { rows, dim, metric, exclude, backend: BACKEND });
          const tol = tolerance(half);
          let best = -Infinity, bestI = -1;
          const updated = new Float64Array(rows);
          for (let i = 0; i < rows; i++) {
            updated[i] = Math.min(before[i], refDistance(points.values, i, center.values, 0, dim, metric));
            const scale = Math.max(Math.abs(updated[i]), floorOf(metric));
            assert.ok(Math.abs(minDist[i] - updated[i]) <= tol * scale, `row ${i}: minDist ${minDist[i]}, reference ${updated[i]}`);
            if (!(exclude && exclude[i]) && updated[i] > best) {
              best = updated[i];
              bestI = i;
            }
          }
          assert.ok(got.argmax >= 0 && got.argmax < rows, `argmax ${got.argmax}`);
          assert.ok(!(exclude && exclude[got.argmax]), 'argmax is an excluded row');
          assert.equal(got.max, minDist[got.argmax], 'max is the argmax row’s updated minDist');
          const scale = Math.max(best, floorOf(metric));
          assert.ok(Math.abs(updated[got.argmax] - best) <= tol * scale, `argmax ${got.argmax} (${updated[got.argmax]}) but reference ${bestI} (${best}) without a tie`);
        });
      }
    }
  }

  test('every row excluded → argmax −1, max −Infinity', async () => {
    const rng = makeRng();
    const rows = 300, dim = 16;
    const points = randomMatrix(rng, rows, dim, false);
    const center = randomMatrix(rng, 1, dim, false);
    const minDist = new Float32Array(rows).fill(Infinity);
    const got = await kernels.minUpdate(points.data, center.data, minDist, { rows, dim, exclude: new Uint8Array(rows).fill(1), backend: BACKEND });
    assert.equal(got.argmax, -1);
    assert.equal(got.max, -Infinity);
    for (let i = 0; i < rows; i++) {
      const want = refDistance(points.values, i, center.values, 0, dim, 'sqeuclidean');
      assert.ok(relError(minDist[i], want) <= 1e-5, `row ${i} still updated`);
    }
  });
});

// kernels.resident on the device: the rows are uploaded once and read in place by every call;
// each call's results equal the same call with the array (same kernels, same values), for knn
// and a greedy minUpdate loop. (Refs split over several calls, i.e. ranges of the held rows, and
// the upload counts are checked on the emulator: test/gpu/emu/parity.cpp, errors group.)
describe(`${BACKEND} resident`, { skip }, () => {
  for (const half of [false, true]) {
    test(`knn and a minUpdate loop against resident rows (${half ? 'fp16' : 'fp32'})`, async () => {
      const rng = makeRng();
      const rows = 20011, dim = half ? 64 : 61, rowsQ = 300;
      const points = randomMatrix(rng, rows, dim, half);
      const queries = randomMatrix(rng, rowsQ, dim, half);
      const held = await kernels.resident(points.data, { rows, dim, backend: BACKEND });
      assert.equal(held.backend.name, BACKEND);
      for (const metric of METRICS) {
        const got = await kernels.knn(queries.data, held, { rowsQ, k: 9, metric });
        const want = await kernels.knn(queries.data, points.data, { rowsQ, rowsR: rows, dim, k: 9, metric, backend: BACKEND });
        assert.deepEqual(got.indices, want.indices);
        assert.deepEqual(got.distances, want.distances);
        const a = new Float32Array(rows).fill(Infinity), b = new Float32Array(rows).fill(Infinity);
        let center = 0;
        for (let step = 0; step < 6; step++) {
          const row = points.data.subarray(center * dim, (center + 1) * dim);
          const r1 = await kernels.minUpdate(held, row, a, { metric });
          const r2 = await kernels.minUpdate(points.data, row, b, { rows, dim, metric, backend: BACKEND });
          assert.deepEqual(r1, r2);
          assert.deepEqual(a, b);
          center = r1.argmax;
        }
      }
      held.close();
      await assert.rejects(kernels.minUpdate(held, points.data.subarray(0, dim), new Float32Array(rows), {}), (e) => e.code === 'E_STATE');
    });
  }
});
