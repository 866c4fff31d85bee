// GPU parity of the selection engine (cuda/select*.cu): every strategy on the cuda backend
// against the cpu backend on fresh random pools of awkward sizes (rows and dims off the 64-row
// tiles), fp32 and fp16, with the pool resident and forced to stream through the staging buffer
// (PAIRPICK_CUDA_STREAM_ROWS). Run on a GPU machine after packing:  node --test test/gpu/
// Skips (not fails) where the cuda backend is unavailable.
//
// The engines compute the same float32 values in different orders, so a pick can differ only
// where two candidates' scores are a float32 near-tie: picks must agree up to the first step
// whose reported values (δ, δ̂, ρ̂) agree within the float32 bound of the spec's arithmetic, and
// from there the reported values of that step must still agree. The CPU engine is checked
// against float64 references by the main suite; the emulator (test/gpu/emu) checks the kernels'
// indexing on the CPU.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { openPool, select } from '../../dist/index.js';
import { BACKEND, TEST_SEED, cudaSkipReason, makeRng, randomMatrix } from './common.mjs';

const skip = cudaSkipReason();
console.log(`gpu select tests: seed ${TEST_SEED} (replay with PAIRPICK_TEST_SEED=${TEST_SEED})${skip ? `; skipped: ${skip}` : ''}`);

// Rows around 24 cluster centres shared by the modalities, plus noise.
function clusteredPool(rng, rows, dims, half) {
  const clusters = 24;
  const mats = dims.map((d) => {
    const centres = randomMatrix(rng, clusters, d, false);
    const m = randomMatrix(rng, rows, d, false, 0.3);
    const out = randomMatrix(rng, rows, d, half); // storage of the right type
    for (let i = 0; i < rows; i++) {
      const c = i % clusters;
      for (let t = 0; t < d; t++) {
        const v = centres.values[c * d + t] + m.values[i * d + t];
        out.data[i * d + t] = half ? toHalfBits(v) : v;
      }
    }
    return { data: out.data, dim: d };
  });
  return mats;
}
function toHalfBits(v) {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  let exp = ((u >>> 23) & 0xff) - 127 + 15;
  let mant = u & 0x7fffff;
  if (exp <= 0) return sign; // (values here are far from fp16 subnormals)
  if (exp >= 31) return sign | 0x7c00;
  let h = sign | (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return h;
}

async function run(mats, opts) {
  const input = {};
  mats.forEach((m, i) => (input[`m${i}`] = m));
  const pool = await openPool(input);
  try {
    return await select(pool, opts);
  } finally {
    await pool.close();
  }
}

// The float32 bound on a pair value of `terms` unit distances over dims ≤ maxDim (see
// test/gpu/emu/select_parity.cpp): √(2(d + 8)·2⁻²⁴) per term, for both engines.
const bound = (terms, maxDim) => 2 * terms * (Math.sqrt(2 * (maxDim + 8) * 2 ** -24) + 1e-6);

function comparePicks(gpu, cpu, tol, what) {
  assert.equal(gpu.indices.length, cpu.indices.length, `${what}: number of picks`);
  const keys = Object.keys(cpu.raw ?? cpu.components ?? {});
  const source = cpu.raw ? 'raw' : 'components';
  for (let t = 0; t < cpu.indices.length; t++) {
    for (const k of keys) {
      const a = gpu[source][k][t], b = cpu[source][k][t];
      if (Number.isNaN(b) || !Number.isFinite(b)) continue;
      assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${k}[${t}] cuda ${a}, cpu ${b} (tol ${tol})`);
    }
    if (gpu.indices[t] !== cpu.indices[t]) return t; // a near-tie: the engines may go separate ways from here
  }
  return cpu.indices.length;
}

describe(`${BACKEND} selection`, { skip }, () => {
  const cases = [
    { rows: 1300, dims: [40, 40], half: true },
    { rows: 907, dims: [33, 33, 33], half: false },
    { rows: 650, dims: [70], half: false },
  ];
  for (const streamed of [false, true]) {
    for (const c of cases) {
      for (const strategy of ['kcenter', 'mmcsal', 'kmeans', 'typiclust', 'probcover']) {
        const tag = `${strategy} ${c.rows}×${c.dims.join('/')} ${c.half ? 'fp16' : 'fp32'}${streamed ? ' streamed' : ''}`;
        test(tag, async () => {
          const rng = makeRng();
          const mats = clusteredPool(rng, c.rows, c.dims, c.half);
          const budget = 30;
          if (streamed) process.env.PAIRPICK_CUDA_STREAM_ROWS = '200';
          let gpu;
          try {
            gpu = await run(mats, { strategy, budget, backend: BACKEND, seed: 7 });
          } finally {
            delete process.env.PAIRPICK_CUDA_STREAM_ROWS;
          }
          const cpu = await run(mats, { strategy, budget, backend: 'cpu', seed: 7 });
          const M = c.dims.length;
          const tol = bound(strategy === 'mmcsal' ? M * M : M, Math.max(...c.dims)) * 4;
          const same = comparePicks(gpu, cpu, tol, tag);
          if (strategy === 'kcenter' || strategy === 'mmcsal') assert.ok(same >= 1, `${tag}: first pick differs`);
          assert.equal(new Set(gpu.indices).size, gpu.indices.length, `${tag}: repeated pick`);
        });
      }
    }
  }
});
