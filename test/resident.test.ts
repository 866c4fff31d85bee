// kernels.resident: rows kept by a backend for repeated kernels.knn (as ref) / kernels.minUpdate
// (as points) calls. On every available backend a call with the resident rows gives exactly what
// the same call with the array gives (those calls are checked against float64 references in
// distance.test.ts); the handle is a snapshot, closes, and refuses misuse with a code naming it.
// The upload counts (the rows cross to the device once) are checked on the CUDA emulator
// (test/gpu/emu/parity.cpp, errors group) and on a GPU (test/gpu/distance.test.mjs).
import { describe, expect, it } from 'vitest';

import { backends } from '../src/backend/index.js';
import type { BackendName } from '../src/backend/types.js';
import { PairpickError } from '../src/errors.js';
import * as kernels from '../src/kernels/index.js';
import { floatArrayToHalf } from '../src/util/half.js';
import { randomMatrix, testRng } from './helpers/random.js';

const METRICS = ['sqeuclidean', 'euclidean', 'cosine'] as const;
const info = new Map(backends().map((b) => [b.name, b]));

async function rejects(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected ${code}`).toBeInstanceOf(PairpickError);
  expect((e as PairpickError).code).toBe(code);
  expect((e as PairpickError).message).toMatch(message);
}

for (const name of ['js', 'cpu', 'cuda'] as BackendName[]) {
  const b = info.get(name);
  describe.skipIf(!b?.available)(`kernels.resident on ${name}${b?.available ? '' : ` (unavailable: ${b?.reason})`}`, () => {
    for (const half of [false, true]) {
      const dtype = half ? 'fp16' : 'fp32';

      it(`knn against resident refs equals knn against the array (${dtype}, refs in several blocks on js)`, async () => {
        const rng = testRng();
        // js: 5000 × 128 refs are searched in two ref blocks (refOffset 0 and 4096) per query block.
        const [rowsR, rowsQ, dim] = name === 'js' ? [5000, 64, 128] : [3000, 200, 40];
        const refF = randomMatrix(rng, rowsR, dim);
        const queryF = randomMatrix(rng, rowsQ, dim);
        const ref = half ? floatArrayToHalf(refF) : refF;
        const query = half ? floatArrayToHalf(queryF) : queryF;
        const held = await kernels.resident(ref, { rows: rowsR, dim, backend: name });
        expect([held.rows, held.dim, held.dtype, held.backend.name, held.closed]).toEqual([rowsR, dim, half ? 'float16' : 'float32', name, false]);
        for (const metric of METRICS) {
          const k = 1 + Math.floor(rng.next() * 9);
          const got = await kernels.knn(query, held, { rowsQ, dim, k, metric });
          const want = await kernels.knn(query, ref, { rowsQ, rowsR, dim, k, metric, backend: name });
          expect(got.indices).toEqual(want.indices);
          expect(got.distances).toEqual(want.distances);
        }
        // excludeSelf with the refs as their own queries (tensor-free, sizes from the handle).
        const self = await kernels.knn(ref.subarray(0, 50 * dim), held, { rowsQ: 50, k: 3, excludeSelf: true });
        const selfWant = await kernels.knn(ref.subarray(0, 50 * dim), ref, { rowsQ: 50, rowsR, dim, k: 3, excludeSelf: true, backend: name });
        expect(self.indices).toEqual(selfWant.indices);
        expect(self.distances).toEqual(selfWant.distances);
        held.close();
        expect(held.closed).toBe(true);
        held.close(); // idempotent
      });

      it(`a greedy minUpdate loop over resident points equals the loop over the array (${dtype})`, async () => {
        const rng = testRng();
        const rows = 2500;
        const dim = 36;
        const pointsF = randomMatrix(rng, rows, dim);
        const points = half ? floatArrayToHalf(pointsF) : pointsF;
        const held = await kernels.resident(points, { rows, dim, backend: name });
        const exclude = Uint8Array.from({ length: rows }, () => (rng.next() < 0.1 ? 1 : 0));
        for (const metric of METRICS) {
          const a = new Float32Array(rows).fill(Infinity);
          const c = new Float32Array(rows).fill(Infinity);
          let center = 0;
          for (let step = 0; step < 5; step++) {
            // fp32 centres (converted to the points' dtype either way)
            const row = pointsF.subarray(center * dim, (center + 1) * dim);
            const got = await kernels.minUpdate(held, row, a, { exclude, metric });
            const want = await kernels.minUpdate(points, row, c, { rows, dim, exclude, metric, backend: name });
            expect(got).toEqual(want);
            expect(a).toEqual(c);
            center = got.argmax;
          }
        }
        held.close();
      });
    }

    it('is a snapshot: later changes to the array are not seen', async () => {
      const rng = testRng();
      const rows = 400;
      const dim = 12;
      const data = randomMatrix(rng, rows, dim);
      const copy = data.slice();
      const center = randomMatrix(rng, 1, dim);
      const held = await kernels.resident(data, { rows, dim, backend: name });
      data.fill(7);
      const a = new Float32Array(rows).fill(Infinity);
      const c = new Float32Array(rows).fill(Infinity);
      expect(await kernels.minUpdate(held, center, a, {})).toEqual(await kernels.minUpdate(copy, center, c, { rows, dim, backend: name }));
      expect(a).toEqual(c);
      held.close();
    });

    it('refuses misuse with a code naming the culprit', async () => {
      const rng = testRng();
      const rows = 60;
      const dim = 8;
      const data = randomMatrix(rng, rows, dim);
      const held = await kernels.resident(data, { rows, dim, backend: name });
      const query = randomMatrix(rng, 5, dim);
      const minDist = () => new Float32Array(rows).fill(Infinity);
      await rejects(kernels.knn(query, held, { rowsQ: 5, rowsR: rows + 1, k: 2 }), 'E_SHAPE', /rowsR/);
      await rejects(kernels.knn(randomMatrix(rng, 5, dim + 1), held, { rowsQ: 5, dim: dim + 1, k: 2 }), 'E_SHAPE', /ref has 8 columns/);
      await rejects(kernels.minUpdate(held, query.subarray(0, dim), minDist(), { rows: rows - 1 }), 'E_SHAPE', /points has 60 rows/);
      await rejects(kernels.minUpdate(held, query.subarray(0, dim), new Float32Array(rows - 1), {}), 'E_SHAPE', /minDist has 59 values/);
      const halfHeld = await kernels.resident(floatArrayToHalf(data), { rows, dim, backend: name });
      expect((await kernels.knn(floatArrayToHalf(query), halfHeld, { rowsQ: 5, k: 2 })).indices.length).toBe(10);
      await rejects(kernels.knn(query, halfHeld, { rowsQ: 5, k: 2 }), 'E_SHAPE', /query is float32 but the resident ref is float16/);
      halfHeld.close();
      const other = name === 'js' ? (info.get('cpu')?.available ? 'cpu' : undefined) : 'js';
      if (other) {
        await rejects(kernels.knn(query, held, { rowsQ: 5, k: 2, backend: other }), 'E_BACKEND', new RegExp(`resident on the ${name} backend`));
        await rejects(kernels.minUpdate(held, query.subarray(0, dim), minDist(), { backend: other }), 'E_BACKEND', /points is resident/);
      }
      const bad = data.slice();
      bad[17 * dim + 3] = NaN;
      await rejects(kernels.resident(bad, { rows, dim, backend: name }), 'E_NAN', /data row 17 \(column 3\) is NaN/);
      await rejects(kernels.resident(data, { rows, dim: dim + 1, backend: name }), 'E_SHAPE', /data has 480 values/);
      await rejects(kernels.resident(data, { rows, dim, backend: name, k: 3 } as never), 'E_OPTION', /unknown option 'k'/);
      held.close();
      await rejects(kernels.knn(query, held, { rowsQ: 5, k: 2 }), 'E_STATE', /ref is a closed kernels.resident handle/);
      await rejects(kernels.minUpdate(held, query.subarray(0, dim), minDist(), {}), 'E_STATE', /points is a closed/);
    });
  });
}
