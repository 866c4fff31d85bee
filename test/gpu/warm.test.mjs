// GPU parity of the warm-start op (cuda/warm.cu, k-means++ seeding on the factorised gradient
// embeddings of spec §5): the cuda backend's openGradient against the cpu backend's on fresh
// random heads and features of awkward sizes (rows off the 4096-row sample blocks, classes and
// features off the 8-float padding), 1–3 modality blocks, balance on and off, exclusions,
// signed and nonnegative features, the picks asked for in several calls. Run on a GPU machine
// after packing:  node --test test/gpu/   Skips (not fails) where the cuda backend is unavailable.
//
// No tolerance: the device repeats the CPU engine's float64 operations in the same order and
// the forward pass is the CPU's own code, so loads, dot products, picks and D² at each pick
// must be identical (see cuda/warm.cu). The CPU engine is checked against a float64 reference
// by the main suite (test/warm.test.ts); the emulator (test/gpu/emu, group warm) checks the
// kernels on the CPU.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { getBackend } from '../../dist/index.js';
import { BACKEND, TEST_SEED, cudaSkipReason, makeRng } from './common.mjs';

const skip = cudaSkipReason();
console.log(`gpu warm tests: seed ${TEST_SEED} (replay with PAIRPICK_TEST_SEED=${TEST_SEED})${skip ? `; skipped: ${skip}` : ''}`);

function makeCase(rng, { rows, classes, blocks, blockDim, balance, nonnegative, exclude }) {
  const F = blocks * blockDim;
  const weight = Float32Array.from({ length: classes * F }, () => rng.normal() * (1.5 / Math.sqrt(F)));
  const bias = Float32Array.from({ length: classes }, () => rng.normal() * 0.3);
  const features = Array.from({ length: blocks }, () =>
    Float32Array.from({ length: rows * blockDim }, () => {
      const v = rng.normal();
      return nonnegative ? Math.abs(v) : v;
    }),
  );
  const excluded = Uint8Array.from({ length: rows }, () => (rng.uniform() < exclude ? 1 : 0));
  return { spec: { rows, classes, blocks, blockDim, weight, bias, balance }, features, excluded };
}

async function run(backend, c, calls, uniforms, pairs) {
  const ctx = await getBackend(backend).openGradient(c.spec);
  try {
    const { rows, blockDim } = c.spec;
    const loads = [];
    const chunk = 5000;
    for (let start = 0; start < rows; start += chunk) {
      const count = Math.min(chunk, rows - start);
      loads.push(await ctx.load(start, count, c.features.map((f) => f.subarray(start * blockDim, (start + count) * blockDim))));
    }
    const dots = await ctx.dots(pairs.a, pairs.b);
    await ctx.sampleInit(c.excluded);
    const picks = [];
    const distance2 = [];
    let at = 0;
    for (const steps of calls) {
      const r = await ctx.sampleStep(steps, uniforms.subarray(at, at + steps));
      picks.push(...r.picks);
      distance2.push(...r.distance2);
      at += steps;
    }
    return { loads, dots, picks, distance2 };
  } finally {
    ctx.close();
  }
}

const CASES = [
  { rows: 4096 * 3 + 77, classes: 101, blocks: 2, blockDim: 64, balance: true, nonnegative: true, exclude: 0.01, calls: [1, 40, 159] },
  { rows: 9001, classes: 10, blocks: 1, blockDim: 37, balance: false, nonnegative: false, exclude: 0.1, calls: [64, 64] },
  { rows: 2500, classes: 7, blocks: 3, blockDim: 21, balance: true, nonnegative: true, exclude: 0.3, calls: [120] },
  // More steps than candidates: the calls come back short, then empty.
  { rows: 300, classes: 5, blocks: 2, blockDim: 9, balance: false, nonnegative: true, exclude: 0.9, calls: [20, 30, 5] },
];

describe(`warm-start op on ${BACKEND} vs cpu`, { skip }, () => {
  for (const [n, k] of CASES.entries()) {
    test(`${k.rows} rows, C ${k.classes}, ${k.blocks}×${k.blockDim}, balance ${k.balance}, ${k.nonnegative ? 'nonnegative' : 'signed'} features`, async () => {
      const rng = makeRng();
      const c = makeCase(rng, k);
      const total = k.calls.reduce((a, b) => a + b, 0);
      const uniforms = Float64Array.from({ length: total }, () => rng.uniform());
      const pairs = { a: Int32Array.from({ length: 50 }, () => rng.int(k.rows)), b: Int32Array.from({ length: 50 }, () => rng.int(k.rows)) };
      const dev = await run(BACKEND, c, k.calls, uniforms, pairs);
      const cpu = await run('cpu', c, k.calls, uniforms, pairs);
      for (let q = 0; q < cpu.loads.length; q++) {
        assert.deepEqual(dev.loads[q].pred, cpu.loads[q].pred, `case ${n}: predictions of chunk ${q}`);
        assert.deepEqual(dev.loads[q].norm2, cpu.loads[q].norm2, `case ${n}: ‖g‖² of chunk ${q}`);
      }
      assert.deepEqual(dev.dots, cpu.dots, `case ${n}: dot products`);
      const candidates = k.rows - c.excluded.reduce((a, b) => a + b, 0);
      assert.equal(cpu.picks.length, Math.min(total, candidates), `case ${n}: cpu picks`);
      let same = 0;
      while (same < cpu.picks.length && dev.picks[same] === cpu.picks[same] && Object.is(dev.distance2[same], cpu.distance2[same])) same++;
      assert.equal(same, cpu.picks.length, `case ${n}: picks identical up to ${same} of ${cpu.picks.length} (${BACKEND} row ${dev.picks[same]} D² ${dev.distance2[same]}, cpu row ${cpu.picks[same]} D² ${cpu.distance2[same]})`);
      assert.equal(dev.picks.length, cpu.picks.length, `case ${n}: pick count`);
    });
  }
});
