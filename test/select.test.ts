// Selection strategies on every available backend against the float64 reference of spec §3
// (test/reference/select.ts), on fresh random pools of awkward sizes; labelled sets, seeds,
// fp16 inputs, bad input and cancellation.
import { describe, expect, it } from 'vitest';

import { backends, getBackend } from '../src/backend/index.js';
import type { BackendName } from '../src/backend/types.js';
import { PairpickError } from '../src/errors.js';
import { openPool, type Pool } from '../src/io/pool.js';
import { DEFAULT_PROBCOVER_CLASSES } from '../src/select/probcover.js';
import {
  AUTO_LAMBDA_ALIGN,
  DEFAULT_ALIGN_QUANTILE,
  DEFAULT_COVERAGE_SAMPLE,
  SELECT_DEFAULTS,
  select,
  type SelectOptions,
  type SelectPool,
  type SelectProgress,
  type Strategy,
} from '../src/select/index.js';
import { floatArrayToHalf, halfArrayToFloat } from '../src/util/half.js';
import type { Rng } from '../src/util/rng.js';
import { rejectsWith } from './helpers/errors.js';
import { randomMatrix, testRng } from './helpers/random.js';
import {
  RefSpace,
  drawClear,
  refFacility,
  refFacilityStochastic,
  refKcenter,
  refKmeans,
  refMmcsal,
  refMmcsalCoverage,
  refMmcsalCoverageJoint,
  refProbcover,
  refProbcoverRadius,
  refRandom,
  refTypiclust,
  type Bounded,
  type RefPool,
} from './reference/select.js';

const BACKENDS: BackendName[] = backends()
  .filter((b) => b.available)
  .map((b) => b.name);

/** Continuous random rows without structure. Tests draw them through drawClear, which redraws the
 * rare pool where some choice is closer than the backends' float32 rounding. */
function scattered(rng: Rng, rows: number, dims: number[]): RefPool {
  return { rows, dims, data: dims.map((d) => randomMatrix(rng, rows, d, 1 + rng.next())) };
}

/**
 * Rows around `clusters` well-separated centres shared by the modalities (a paired pool). With
 * `centred`, row c < clusters sits exactly at centre c: each cluster then has one member clearly
 * nearest its mean and clearly most typical.
 */
function clustered(rng: Rng, rows: number, dims: number[], clusters: number, centred = false): RefPool {
  const centres = dims.map((d) => randomMatrix(rng, clusters, d, 1));
  const of = Int32Array.from({ length: rows }, () => rng.int(clusters));
  if (centred) for (let c = 0; c < clusters; c++) of[c] = c;
  const data = dims.map((d, m) => {
    const x = randomMatrix(rng, rows, d, 0.12);
    if (centred) x.fill(0, 0, clusters * d);
    for (let i = 0; i < rows; i++) for (let t = 0; t < d; t++) x[i * d + t] += centres[m][of[i] * d + t];
    return x;
  });
  return { rows, dims, data };
}

/**
 * Input features as stage 1 would read them: per column a random offset (|·| ≤ 5) and scale (0.2 to
 * 5), so standardising changes the geometry; column 0 of the first modality is constant (left at 0).
 */
function rawFeatures(rng: Rng, rows: number, dims: number[]): RefPool {
  const data = dims.map((d, m) => {
    const x = randomMatrix(rng, rows, d, 1);
    const offset = Array.from({ length: d }, () => 10 * rng.next() - 5);
    const scale = Array.from({ length: d }, () => 0.2 * 25 ** rng.next());
    for (let i = 0; i < rows; i++) for (let j = 0; j < d; j++) x[i * d + j] = m === 0 && j === 0 ? 3.25 : offset[j] + scale[j] * x[i * d + j];
    return x;
  });
  return { rows, dims, data };
}

async function poolOf(p: RefPool, half = false): Promise<Pool> {
  const input: Record<string, { data: Float32Array | Uint16Array; dim: number }> = {};
  p.data.forEach((x, m) => {
    const f = x as Float32Array;
    input[`m${m}`] = { data: half ? floatArrayToHalf(f) : f, dim: p.dims[m] };
  });
  return openPool(input);
}

/** The pool as the backend sees it after fp16 rounding (for the reference). */
function roundedToHalf(p: RefPool): RefPool {
  return { ...p, data: p.data.map((x) => halfArrayToFloat(floatArrayToHalf(x as Float32Array))) };
}

function sample(rng: Rng, n: number, count: number): number[] {
  return Array.from(rng.permutation(n).subarray(0, count));
}

async function run(p: RefPool, opts: SelectOptions, half = false) {
  const pool = await poolOf(p, half);
  try {
    return await select(pool, opts);
  } finally {
    await pool.close();
  }
}

function expectPicks(got: Int32Array, want: number[], what: string): void {
  expect(Array.from(got), what).toEqual(want);
}

/** Each reported per-pick term within the reference's float32 bounds for it. */
function expectWithin(got: ArrayLike<number>, want: Bounded, what: string): void {
  expect(got.length, what).toBe(want.value.length);
  for (let t = 0; t < got.length; t++) {
    const v = got[t];
    if (!(v >= want.lo[t] && v <= want.hi[t])) expect.fail(`${what}[${t}] = ${v} outside [${want.lo[t]}, ${want.hi[t]}] (exact ${want.value[t]})`);
  }
}

describe.each(BACKENDS)('select on %s', (backend) => {
  for (const withLabels of [false, true]) {
    const tag = withLabels ? 'with a labelled set' : 'cold start';

    it(`mmcsal matches the reference (${tag}), components included`, async () => {
      const rng = testRng();
      const rows = 53 + rng.int(40);
      const dim = 5 + rng.int(6);
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(6)) : [];
      const budget = 7 + rng.int(9);
      const k = 3 + rng.int(8);
      const o = { k, gamma: 1, lambdaAlign: AUTO_LAMBDA_ALIGN, wDensity: 1, wDiversity: SELECT_DEFAULTS.wDiversity };
      const { input: p, ref } = drawClear(
        rng,
        (r) => scattered(r, rows, [dim, dim]),
        (p, margins) => refMmcsal(new RefSpace(p), budget, labeled, o, margins),
      );
      const sel = await run(p, { strategy: 'mmcsal', distribution: 'density', alignment: 'linear', budget, labeled, backend, k });
      expect(sel.params).toMatchObject(o);
      expectPicks(sel.indices, ref.picks, 'mmcsal picks');
      for (const key of ['density', 'diversity', 'alignment'] as const) expectWithin(sel.components![key]!, ref.components[key], key);
      expect(sel.backend).toBe(backend);
      expect(sel.seconds).toBeGreaterThan(0);
    });

    it(`mmcsal with unequal dims (γ = λ = 0 by auto), weights and M = 3 (${tag})`, async () => {
      const rng = testRng();
      const rows = 41 + rng.int(30);
      const dims = [4 + rng.int(3), 8 + rng.int(4), 3];
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 5 + rng.int(6);
      const o = { k: SELECT_DEFAULTS.k, gamma: 0, lambdaAlign: 0, wDensity: 0.5, wDiversity: 2.5 };
      const { input: p, ref } = drawClear(
        rng,
        (r) => scattered(r, rows, dims),
        (p, margins) => refMmcsal(new RefSpace(p), budget, labeled, o, margins),
      );
      const sel = await run(p, { strategy: 'mmcsal', distribution: 'density', alignment: 'linear', budget, labeled, backend, wDiversity: 2.5, wDensity: 0.5 });
      expect(sel.params).toMatchObject({ gamma: 0, lambdaAlign: 0 });
      expectPicks(sel.indices, ref.picks, 'mmcsal picks');
    });

    it(`mmcsal with M = 3 equal dims, explicit γ, λ and a density sample (${tag})`, async () => {
      const rng = testRng();
      const rows = 47 + rng.int(30);
      const labeled = withLabels ? sample(rng, rows, 2 + rng.int(4)) : [];
      const budget = 6 + rng.int(6);
      const seed = rng.int(1000);
      const o = { k: 5, gamma: 0.3, lambdaAlign: 1.5, wDensity: 1, wDiversity: 1, densitySample: 20 + rng.int(10), seed };
      const { input: p, ref } = drawClear(
        rng,
        (r) => scattered(r, rows, [6, 6, 6]),
        (p, margins) => refMmcsal(new RefSpace(p), budget, labeled, o, margins),
      );
      const sel = await run(p, { strategy: 'mmcsal', distribution: 'density', alignment: 'linear', budget, labeled, backend, ...o });
      expectPicks(sel.indices, ref.picks, 'mmcsal picks');
    });

    it(`kcenter matches the reference (${tag})`, async () => {
      const rng = testRng();
      const rows = 60 + rng.int(80);
      const dims = [3 + rng.int(5), 4 + rng.int(5)];
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(8)) : [];
      const budget = 10 + rng.int(20);
      const { input: p, ref } = drawClear(
        rng,
        (r) => scattered(r, rows, dims),
        (p, margins) => refKcenter(new RefSpace(p), budget, labeled, margins),
      );
      const sel = await run(p, { strategy: 'kcenter', budget, labeled, backend });
      expectPicks(sel.indices, ref, 'kcenter picks');
    });

    // The default seeding (greedy k-means++) and the spec's one-draw k-means++.
    for (const seeding of [undefined, 'kmeans++'] as const) {
      it(`kmeans${seeding ? ` with ${seeding} seeding` : ''} matches the reference (${tag})`, async () => {
        const rng = testRng();
        const rows = 70 + rng.int(60);
        const dims = [4 + rng.int(4), 5];
        const clusters = 6 + rng.int(5);
        const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
        const budget = 4 + rng.int(6);
        const seed = rng.int(1 << 20);
        const { input: p, ref } = drawClear(
          rng,
          (r) => clustered(r, rows, dims, clusters),
          (p, margins) => refKmeans(new RefSpace(p), budget, labeled, seed, margins, seeding ? { seeding } : undefined),
        );
        const sel = await run(p, { strategy: 'kmeans', budget, labeled, backend, seed, ...(seeding && { seeding }) });
        expectPicks(sel.indices, ref, `kmeans picks${seeding ? ` (${seeding})` : ''}`);
      });
    }

    it(`kmeans with k-means|| seeding and an iteration cap matches the reference (${tag})`, async () => {
      const rng = testRng();
      const rows = 70 + rng.int(60);
      const dims = [4 + rng.int(4), 5];
      const clusters = 6 + rng.int(5);
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 4 + rng.int(6);
      const seed = rng.int(1 << 20);
      const iterations = 1 + rng.int(4);
      const { input: p, ref } = drawClear(
        rng,
        (r) => clustered(r, rows, dims, clusters),
        (p, margins) => refKmeans(new RefSpace(p), budget, labeled, seed, margins, { seeding: 'kmeans||', iterations }),
      );
      const sel = await run(p, { strategy: 'kmeans', budget, labeled, backend, seed, seeding: 'kmeans||', iterations });
      expectPicks(sel.indices, ref, 'kmeans|| picks');
      expect(sel.params.iterations).toBeLessThanOrEqual(iterations);
    });

    it(`typiclust matches the reference (${tag})`, async () => {
      const rng = testRng();
      const rows = 70 + rng.int(60);
      const dims = [6, 3 + rng.int(5)];
      const clusters = 5 + rng.int(5);
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 4 + rng.int(6);
      const seed = rng.int(1 << 20);
      const { input: p, ref } = drawClear(
        rng,
        (r) => clustered(r, rows, dims, clusters),
        (p, margins) => refTypiclust(new RefSpace(p), budget, labeled, seed, margins),
      );
      const sel = await run(p, { strategy: 'typiclust', budget, labeled, backend, seed });
      expectPicks(sel.indices, ref, 'typiclust picks');
    });

    it(`probcover with a given radius matches the reference (${tag})`, async () => {
      const rng = testRng();
      const rows = 60 + rng.int(50);
      const clusters = 4 + rng.int(4);
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(3)) : [];
      const budget = 8 + rng.int(8);
      const seed = rng.int(1000);
      const radius = 0.25 + 0.1 * rng.next();
      const { input: p, ref } = drawClear(
        rng,
        (r) => clustered(r, rows, [5, 5], clusters),
        (p, margins) => refProbcover(new RefSpace(p), budget, labeled, radius, seed, margins),
      );
      const sel = await run(p, { strategy: 'probcover', budget, labeled, backend, radius, seed });
      expectPicks(sel.indices, ref, 'probcover picks');
    });

    it(`mmcsal's default, coverage of the well-aligned pairs, matches the reference (${tag}); same seed, same picks`, async () => {
      const rng = testRng();
      const rows = 50 + rng.int(50);
      const dim = 4 + rng.int(6);
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 5 + rng.int(8);
      const { input: p, ref } = drawClear(
        rng,
        (r) => scattered(r, rows, [dim, dim]),
        (p, margins) => refMmcsalCoverage(new RefSpace(p), budget, labeled, DEFAULT_ALIGN_QUANTILE, margins),
      );
      const coverage = { distribution: 'coverage', alignment: 'filter' } as const;
      // Every row of a pool this small is a ground row.
      const sel = await run(p, { strategy: 'mmcsal', ...coverage, budget, labeled, backend });
      expect(sel.params).toMatchObject({ distribution: 'coverage', alignment: 'filter', alignQuantile: DEFAULT_ALIGN_QUANTILE, coverageSample: DEFAULT_COVERAGE_SAMPLE });
      expectPicks(sel.indices, ref, 'mmcsal picks');
      // The default is coverage + filter: same picks, asked for by nothing.
      const again = await run(p, { strategy: 'mmcsal', budget, labeled, backend });
      expectPicks(again.indices, ref, 'mmcsal picks, default options, second run');
      // Other quantiles follow the same rule.
      const q = 0.05 + 0.4 * rng.next();
      const other = drawClear(rng, (r) => scattered(r, rows, [dim, dim]), (p, margins) => refMmcsalCoverage(new RefSpace(p), budget, labeled, q, margins));
      const selQ = await run(other.input, { strategy: 'mmcsal', ...coverage, alignQuantile: q, budget, labeled, backend });
      expectPicks(selQ.indices, other.ref, `mmcsal picks, alignQuantile ${q}`);
      // A ground sample smaller than the pool: coverage counts at the seeded sample's rows only.
      const groundRows = 10 + rng.int(rows - 20);
      const seed = rng.int(1000);
      const sampled = drawClear(
        rng,
        (r) => scattered(r, rows, [dim, dim]),
        (p, margins) => refMmcsalCoverage(new RefSpace(p), budget, labeled, DEFAULT_ALIGN_QUANTILE, margins, { sample: groundRows, seed }),
      );
      const selS = await run(sampled.input, { strategy: 'mmcsal', ...coverage, coverageSample: groundRows, seed, budget, labeled, backend });
      expectPicks(selS.indices, sampled.ref, `mmcsal picks, coverageSample ${groundRows} of ${rows}`);
      // memoryBudget 0: no similarity rows kept, every re-evaluation recomputed — the same picks.
      const selR = await run(sampled.input, { strategy: 'mmcsal', ...coverage, coverageSample: groundRows, seed, budget, labeled, backend, memoryBudget: 0 });
      expectPicks(selR.indices, sampled.ref, `mmcsal picks, coverageSample ${groundRows} of ${rows}, memoryBudget 0`);
    });

    it(`mmcsal coverage with a ground sample and a full similarity cache (kept rows and recomputed rows mixed) matches the reference (${tag})`, async () => {
      const rng = testRng();
      // 1 MiB holds (2^20 − 4·|G|·Σdim) / (4·|G|) kept rows: about 170 rows of similarities to the
      // 1,500–1,600 ground rows here, fewer than the candidates the lazy greedy re-evaluates over
      // 30–40 picks, so later re-evaluations mix kept rows and recomputed ones.
      const coverage = { distribution: 'coverage', alignment: 'filter' } as const;
      const rows = 1800 + rng.int(200);
      const dim = 3;
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 30 + rng.int(10);
      const groundRows = 1500 + rng.int(100);
      const seed = rng.int(1000);
      const drawn = drawClear(
        rng,
        (r) => scattered(r, rows, [dim, dim]),
        (p, margins) => refMmcsalCoverage(new RefSpace(p), budget, labeled, DEFAULT_ALIGN_QUANTILE, margins, { sample: groundRows, seed }),
      );
      const sel = await run(drawn.input, { strategy: 'mmcsal', ...coverage, coverageSample: groundRows, seed, budget, labeled, backend, memoryBudget: 1 });
      expectPicks(sel.indices, drawn.ref, `mmcsal picks, coverageSample ${groundRows} of ${rows}, memoryBudget 1 MiB`);
    });

    it(`mmcsal's default with input features, coverage on the embedding + standardised inputs, matches the reference (${tag}); same seed, same picks`, async () => {
      const rng = testRng();
      const rows = 50 + rng.int(50);
      const dim = 4 + rng.int(6);
      const inputDims = [3 + rng.int(4), 7 + rng.int(6)];
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 5 + rng.int(8);
      const draw = (r: Rng) => ({ embedding: scattered(r, rows, [dim, dim]), inputs: rawFeatures(r, rows, inputDims) });
      const { input, ref } = drawClear(rng, draw, (p, margins) => refMmcsalCoverageJoint(p.embedding, p.inputs, budget, labeled, DEFAULT_ALIGN_QUANTILE, margins));
      const pool = await poolOf(input.embedding);
      const inputs = await poolOf(input.inputs);
      try {
        // Every row of a pool this small is a ground row.
        const sel = await select(pool, { budget, labeled, backend, inputs });
        expect(sel.params).toMatchObject({ distribution: 'coverage', space: 'embedding+inputs', alignment: 'filter', alignQuantile: DEFAULT_ALIGN_QUANTILE });
        expectPicks(sel.indices, ref, 'mmcsal picks with inputs');
        // Same seed, same picks; the inputs given as what openPool accepts (opened and closed by select).
        const given = Object.fromEntries(input.inputs.data.map((x, m) => [`m${m}`, { data: x as Float32Array, dim: inputDims[m] }]));
        const again = await select(pool, { budget, labeled, backend, inputs: given, space: 'embedding+inputs' });
        expectPicks(again.indices, ref, 'mmcsal picks with inputs, second run');
        // A ground sample smaller than the pool: coverage counts at the seeded sample's rows only.
        const groundRows = 10 + rng.int(rows - 20);
        const seed = rng.int(1000);
        const sampled = drawClear(rng, draw, (p, margins) =>
          refMmcsalCoverageJoint(p.embedding, p.inputs, budget, labeled, DEFAULT_ALIGN_QUANTILE, margins, { sample: groundRows, seed }),
        );
        const [pool2, inputs2] = [await poolOf(sampled.input.embedding), await poolOf(sampled.input.inputs)];
        try {
          const selS = await select(pool2, { budget, labeled, backend, inputs: inputs2, coverageSample: groundRows, seed });
          expectPicks(selS.indices, sampled.ref, `mmcsal picks with inputs, coverageSample ${groundRows} of ${rows}`);
        } finally {
          await Promise.all([pool2.close(), inputs2.close()]);
        }
      } finally {
        await Promise.all([pool.close(), inputs.close()]);
      }
    });

    it(`facility (lazy and stochastic) matches the reference (${tag})`, async () => {
      const rng = testRng();
      const rows = 50 + rng.int(50);
      const dims = [4 + rng.int(4), 6];
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 5 + rng.int(8);
      const seed = rng.int(1000);
      const { input: p, ref } = drawClear(
        rng,
        (r) => scattered(r, rows, dims),
        (p, margins) => {
          const s = new RefSpace(p);
          return { lazy: refFacility(s, budget, labeled, margins), stochastic: refFacilityStochastic(s, budget, labeled, seed, margins) };
        },
      );
      const lazy = await run(p, { strategy: 'facility', budget, labeled, backend });
      expectPicks(lazy.indices, ref.lazy, 'lazy facility picks');
      const stochastic = await run(p, { strategy: 'facility', optimizer: 'stochastic', budget, labeled, backend, seed });
      expectPicks(stochastic.indices, ref.stochastic, 'stochastic facility picks');
      // The table above was cached (a small pool fits any budget); with none, the similarities are
      // recomputed by fused backend reductions — the same picks.
      expect(lazy.params.cached).toBe('table');
      const lazyRecomputed = await run(p, { strategy: 'facility', budget, labeled, backend, memoryBudget: 0 });
      expect(lazyRecomputed.params.cached).toBe('recompute');
      expectPicks(lazyRecomputed.indices, ref.lazy, 'lazy facility picks (recomputed)');
      const stochasticRecomputed = await run(p, { strategy: 'facility', optimizer: 'stochastic', budget, labeled, backend, seed, memoryBudget: 0 });
      expectPicks(stochasticRecomputed.indices, ref.stochastic, 'stochastic facility picks (recomputed)');
    });

    it(`random matches the documented seeded sample (${tag})`, async () => {
      const rng = testRng();
      const rows = 30 + rng.int(50);
      const p = scattered(rng, rows, [3, 3]);
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(10)) : [];
      const budget = 1 + rng.int(15);
      const seed = rng.int(1 << 30);
      const sel = await run(p, { strategy: 'random', budget, labeled, backend, seed });
      expectPicks(sel.indices, refRandom(rows, budget, labeled, seed), 'random picks');
    });
  }

  it('probcover picks its radius automatically (≥ 95% pure balls on the 0.01 grid, 2 pseudo-classes whatever the budget)', async () => {
    const rng = testRng();
    const rows = 60 + rng.int(40);
    const budget = 6 + rng.int(4);
    const seed = rng.int(1000);
    const { input: p, ref } = drawClear(
      rng,
      (r) => clustered(r, rows, [5, 4], 5),
      (p, margins) => {
        const s = new RefSpace(p);
        const radius = refProbcoverRadius(s, DEFAULT_PROBCOVER_CLASSES, seed, margins);
        return { radius, picks: refProbcover(s, budget, [], radius, seed, margins) };
      },
    );
    const sel = await run(p, { strategy: 'probcover', budget, backend, seed });
    expect(sel.params.radius).toBeCloseTo(ref.radius, 9);
    expect(sel.params.purity as number).toBeGreaterThanOrEqual(0.95);
    expectPicks(sel.indices, ref.picks, 'probcover picks');
  });

  it('probcover with classes = K takes its radius from K pseudo-classes, not the budget', async () => {
    const rng = testRng();
    const rows = 60 + rng.int(40);
    const classes = 3 + rng.int(3);
    const budget = classes + 4 + rng.int(4);
    const seed = rng.int(1000);
    const { input: p, ref } = drawClear(
      rng,
      (r) => clustered(r, rows, [5, 4], classes),
      (p, margins) => {
        const s = new RefSpace(p);
        const radius = refProbcoverRadius(s, classes, seed, margins);
        return { radius, picks: refProbcover(s, budget, [], radius, seed, margins) };
      },
    );
    const sel = await run(p, { strategy: 'probcover', budget, classes, backend, seed });
    expect(sel.params.radius).toBeCloseTo(ref.radius, 9);
    expectPicks(sel.indices, ref.picks, 'probcover picks');
  });

  it('a large labelled set (added as centres in one blocked pass) matches the reference', async () => {
    const rng = testRng();
    const rows = 150 + rng.int(100);
    const labeled = sample(rng, rows, 20 + rng.int(30));
    const budget = 15 + rng.int(10);
    const o = { k: 7, gamma: 1, lambdaAlign: AUTO_LAMBDA_ALIGN, wDensity: 1, wDiversity: SELECT_DEFAULTS.wDiversity };
    const { input: p, ref } = drawClear(
      rng,
      (r) => clustered(r, rows, [6, 6], 12),
      (p, margins) => {
        const s = new RefSpace(p);
        return { kcenter: refKcenter(s, budget, labeled, margins), mmcsal: refMmcsal(s, budget, labeled, o, margins).picks };
      },
    );
    const kc = await run(p, { strategy: 'kcenter', budget, labeled, backend });
    expectPicks(kc.indices, ref.kcenter, 'kcenter picks');
    const mm = await run(p, { strategy: 'mmcsal', distribution: 'density', alignment: 'linear', budget, labeled, backend, k: 7 });
    expectPicks(mm.indices, ref.mmcsal, 'mmcsal picks');
  });

  it('fp16 pools give the reference picks of the rounded values', async () => {
    const rng = testRng();
    const rows = 60 + rng.int(40);
    const budget = 9;
    const o = { k: 6, gamma: 1, lambdaAlign: AUTO_LAMBDA_ALIGN, wDensity: 1, wDiversity: SELECT_DEFAULTS.wDiversity };
    const { input: p, ref } = drawClear(
      rng,
      (r) => roundedToHalf(scattered(r, rows, [7, 7])),
      (p, margins) => {
        const s = new RefSpace(p);
        return { kcenter: refKcenter(s, budget, [], margins), mmcsal: refMmcsal(s, budget, [], o, margins).picks };
      },
    );
    const km = await run(p, { strategy: 'kcenter', budget, backend }, true);
    expectPicks(km.indices, ref.kcenter, 'kcenter fp16');
    const mm = await run(p, { strategy: 'mmcsal', distribution: 'density', alignment: 'linear', budget, backend, k: 6 }, true);
    expectPicks(mm.indices, ref.mmcsal, 'mmcsal fp16');
  });

  it('same seed → same picks; labelled rows are never picked', async () => {
    const rng = testRng();
    const rows = 90 + rng.int(40);
    const p = clustered(rng, rows, [5, 5], 7);
    const labeled = sample(rng, rows, 12);
    for (const strategy of ['mmcsal', 'kcenter', 'kmeans', 'typiclust', 'probcover', 'facility', 'random'] as Strategy[]) {
      const seed = rng.int(1000);
      const a = await run(p, { strategy, budget: 10, labeled, backend, seed });
      const b = await run(p, { strategy, budget: 10, labeled, backend, seed });
      expect(Array.from(a.indices), strategy).toEqual(Array.from(b.indices));
      expect(new Set(a.indices).size, strategy).toBe(10);
      for (const i of a.indices) expect(labeled.includes(i), `${strategy} picked labelled row ${i}`).toBe(false);
    }
  });

  it('a budget of every selectable row picks each candidate once, on every strategy', async () => {
    const rng = testRng();
    const rows = 17 + rng.int(10);
    const p = clustered(rng, rows, [4, 4], 3);
    const labeled = sample(rng, rows, 3);
    for (const strategy of ['mmcsal', 'kcenter', 'kmeans', 'typiclust', 'probcover', 'facility', 'random'] as Strategy[]) {
      const sel = await run(p, { strategy, budget: rows - 3, labeled, backend, seed: 1 });
      const got = Array.from(sel.indices).sort((a, b) => a - b);
      const want = Array.from({ length: rows }, (_, i) => i).filter((i) => !labeled.includes(i));
      expect(got, strategy).toEqual(want);
    }
  });

  it('cancelling mid-selection rejects with E_ABORTED', async () => {
    const rng = testRng();
    const p = scattered(rng, 300, [6, 6]);
    for (const strategy of ['mmcsal', 'kcenter', 'kmeans', 'facility'] as Strategy[]) {
      const ac = new AbortController();
      const pool = await poolOf(p);
      let phase = '';
      const promise = select(pool, {
        strategy,
        budget: 150,
        backend,
        signal: ac.signal,
        onProgress: (pr) => {
          expect(pr.fraction).toBeGreaterThanOrEqual(0);
          expect(pr.fraction).toBeLessThanOrEqual(1);
          // Abort once the work past opening the pool has started.
          if (pr.phase !== 'prepare' && !phase) {
            phase = pr.phase;
            ac.abort();
          }
        },
      });
      await expect(promise, strategy).rejects.toMatchObject({ code: 'E_ABORTED' });
      expect(phase, strategy).not.toBe('');
      await pool.close();
    }
    const ac = new AbortController();
    ac.abort();
    await expect(run(p, { budget: 3, backend, signal: ac.signal })).rejects.toMatchObject({ code: 'E_ABORTED' });
  });
});

describe.each(BACKENDS)('selection ops on %s', (backend) => {
  async function context(p: RefPool) {
    const ctx = await getBackend(backend).openSelection({ rows: p.rows, modalities: p.data.map((d, m) => ({ data: d as Float32Array, dim: p.dims[m] })) });
    for (let s = 0; s < p.rows; s += 37) await ctx.prepare(s, Math.min(37, p.rows - s));
    return ctx;
  }

  it('knnMean over the whole pool: one call, consecutive uneven chunks (symmetric pass) and an explicit ref list agree with the reference', async () => {
    const rng = testRng();
    const rows = 300 + rng.int(200);
    const p = scattered(rng, rows, [9, 9]);
    const s = new RefSpace(p);
    const gamma = 0.5 + rng.next();
    const k = 3 + rng.int(12);
    const metric = { form: 'multimodal' as const, gamma };
    // The exact mean of the k smallest d(i, ·), and the bounds of the backends' value: a mean of
    // computed order statistics lies between the means of the bounds' order statistics.
    const table = s.multimodalTable(gamma);
    const meanOfSmallest = (i: number, sign: number) => {
      const d = [];
      for (let j = 0; j < rows; j++) if (j !== i) d.push(table.value[i * rows + j] + sign * table.err[i * rows + j]);
      d.sort((a, b) => a - b);
      return d.slice(0, k).reduce((a, b) => a + b, 0) / k;
    };
    const want = Array.from({ length: rows }, (_, i) => meanOfSmallest(i, 0));
    const lo = Array.from({ length: rows }, (_, i) => meanOfSmallest(i, -1) * (1 - 1e-12));
    const hi = Array.from({ length: rows }, (_, i) => meanOfSmallest(i, +1) * (1 + 1e-12));
    const ctx = await context(p);
    try {
      const whole = await ctx.pairReduce({ start: 0, count: rows }, undefined, metric, { kind: 'knnMean', k });
      const chunked = new Float64Array(rows);
      const cuts = [0, 1 + rng.int(90), 120 + rng.int(60), rows];
      for (let c = 0; c + 1 < cuts.length; c++) {
        chunked.set(await ctx.pairReduce({ start: cuts[c], count: cuts[c + 1] - cuts[c] }, undefined, metric, { kind: 'knnMean', k }), cuts[c]);
      }
      const listed = await ctx.pairReduce({ start: 0, count: rows }, Int32Array.from({ length: rows }, (_, i) => i), metric, { kind: 'knnMean', k });
      for (const [name, got] of [['whole', whole], ['chunked', chunked], ['listed', listed]] as const) {
        for (let i = 0; i < rows; i++) if (!(got[i] >= lo[i] && got[i] <= hi[i])) expect.fail(`${name}[${i}] = ${got[i]} outside [${lo[i]}, ${hi[i]}] (exact ${want[i]})`);
      }
    } finally {
      ctx.close();
    }
  });

  // The knife-edge logic of reference/select.ts rests on its float32 error bounds: check them here.
  it('distances, k-means assignments and alignments stay within the float32 error bounds the reference uses', async () => {
    const rng = testRng();
    const rows = 150 + rng.int(100);
    const dim = 3 + rng.int(30);
    const p = scattered(rng, rows, [dim, dim]);
    const s = new RefSpace(p);
    const ctx = await context(p);
    const outside = (what: string, got: number, want: number, err: number) => {
      if (!(Math.abs(got - want) <= err)) expect.fail(`${what} = ${got}, exact ${want} ± ${err}`);
    };
    try {
      const gamma = 0.5 + rng.next();
      const cases = [
        [{ form: 'euclidean' as const, gamma: 0 }, s.euclideanTable()],
        [{ form: 'similarity' as const, gamma: 0 }, s.similarityTable()],
        [{ form: 'multimodal' as const, gamma }, s.multimodalTable(gamma)],
        [{ form: 'multimodal' as const, gamma: 0 }, s.multimodalTable(0)],
      ] as const;
      for (const [metric, table] of cases) {
        for (const row of sample(rng, rows, 8)) {
          const got = await ctx.distancesFrom(row, metric);
          for (let j = 0; j < rows; j++) outside(`${metric.form}(γ=${metric.gamma}) ${row}–${j}`, got[j], table.value[row * rows + j], table.err[row * rows + j]);
        }
      }
      // k-means distances ‖u − c‖² to float32 centres with ‖c_m‖ ≤ 1 (means of a few rows).
      const D = 2 * dim;
      const k = 4 + rng.int(8);
      const centroids = new Float32Array(k * D);
      for (let c = 0; c < k; c++) {
        const members = sample(rng, rows, 1 + rng.int(4));
        for (const i of members) for (let t = 0; t < D; t++) centroids[c * D + t] += s.u[i][t] / members.length;
      }
      await ctx.setCentroids(centroids, k);
      const labels = new Int32Array(rows).fill(-1);
      const distances = new Float32Array(rows);
      await ctx.assign(0, rows, labels, distances, new Float64Array(k * D), new Float64Array(k));
      const err = s.errors.centreSquared();
      for (let i = 0; i < rows; i++) {
        const d = Array.from({ length: k }, (_, c) => s.u[i].reduce((acc, v, t) => acc + (v - centroids[c * D + t]) ** 2, 0));
        outside(`‖u_${i} − c_${labels[i]}‖²`, distances[i], d[labels[i]], err);
        expect(d[labels[i]], `row ${i}: centre ${labels[i]} is not a possible nearest`).toBeLessThanOrEqual(Math.min(...d) + 2 * err);
      }
      const { alignment } = await ctx.prepare(0, rows);
      for (let i = 0; i < rows; i++) outside(`a(${i})`, alignment![i], s.alignment(i), s.errors.alignment(dim));
    } finally {
      ctx.close();
    }
  });

  it('countWithin, minOtherLabel, max and gain match the reference on index-list queries and refs', async () => {
    const rng = testRng();
    const rows = 150 + rng.int(100);
    const p = scattered(rng, rows, [5, 7]);
    const s = new RefSpace(p);
    const queries = Int32Array.from(rng.permutation(rows).subarray(0, 40 + rng.int(40)));
    const refs = Int32Array.from(rng.permutation(rows).subarray(0, 60 + rng.int(60)));
    const labels = Int32Array.from({ length: rows }, () => rng.int(4));
    const mask = Uint8Array.from({ length: rows }, () => (rng.next() < 0.6 ? 1 : 0));
    const cover = Float32Array.from({ length: rows }, () => 0.3 + 0.5 * rng.next());
    const radius = 1.6 + 0.3 * rng.next();
    const eu = { form: 'euclidean' as const, gamma: 0 };
    const sim = { form: 'similarity' as const, gamma: 0 };
    const ctx = await context(p);
    try {
      const count = await ctx.pairReduce(queries, refs, eu, { kind: 'countWithin', radius, refMask: mask });
      const other = await ctx.pairReduce(queries, undefined, eu, { kind: 'minOtherLabel', labels });
      const max = await ctx.pairReduce(queries, refs, sim, { kind: 'max' });
      const gain = await ctx.pairReduce(queries, undefined, sim, { kind: 'gain', cover });
      // Each result against the bounds of what float32 arithmetic can give (reference/select.ts):
      // a count between the surely-inside and the possibly-inside pairs, a min or max between those
      // of the pairs' bounds, a gain between the sums of the terms' bounds.
      const euTable = s.euclideanTable();
      const siTable = s.similarityTable();
      const within = (what: string, got: number, lo: number, hi: number) => {
        if (!(got >= lo && got <= hi)) expect.fail(`${what} = ${got} outside [${lo}, ${hi}]`);
      };
      queries.forEach((i, a) => {
        const at = (t: { value: Float64Array; err: Float64Array }, j: number, sign: number) => t.value[i * rows + j] + sign * t.err[i * rows + j];
        let nLo = 0;
        let nHi = 0;
        let moLo = Infinity;
        let moHi = Infinity;
        let mxLo = -Infinity;
        let mxHi = -Infinity;
        let gLo = 0;
        let gHi = 0;
        for (const j of refs) {
          if (mask[j] && at(euTable, j, +1) < radius) nLo++;
          if (mask[j] && at(euTable, j, -1) < radius) nHi++;
          mxLo = Math.max(mxLo, at(siTable, j, -1));
          mxHi = Math.max(mxHi, at(siTable, j, +1));
        }
        for (let j = 0; j < rows; j++) {
          if (labels[j] !== labels[i]) {
            moLo = Math.min(moLo, at(euTable, j, -1));
            moHi = Math.min(moHi, at(euTable, j, +1));
          }
          gLo += Math.max(0, at(siTable, j, -1) - cover[j]) * (1 - 2 ** -24);
          gHi += Math.max(0, at(siTable, j, +1) - cover[j]) * (1 + 2 ** -24);
        }
        within(`count[${a}]`, count[a], nLo, nHi);
        within(`minOtherLabel[${a}]`, other[a], moLo, moHi);
        within(`max[${a}]`, max[a], mxLo, mxHi);
        within(`gain[${a}]`, gain[a], gLo * (1 - 1e-12), gHi * (1 + 1e-12));
      });
    } finally {
      ctx.close();
    }
  });
});

describe('backends agree', () => {
  // A pool large enough for several tiles of the native kernels. Drawn clear of knife edges, so
  // every backend must give exactly the reference's picks (hence each other's).
  it('every strategy gives the reference picks on every backend (larger pool)', async () => {
    const rng = testRng();
    const rows = 500 + rng.int(300);
    const labeled = sample(rng, rows, 9);
    const seed = rng.int(1000);
    const o = { k: SELECT_DEFAULTS.k, gamma: 1, lambdaAlign: AUTO_LAMBDA_ALIGN, wDensity: 1, wDiversity: SELECT_DEFAULTS.wDiversity };
    // Greedy strategies: many candidates close to each other in score.
    const greedyBudget = 16;
    const greedy = drawClear(
      rng,
      (r) => clustered(r, rows, [16, 16], 25),
      (p, margins): Partial<Record<Strategy, number[]>> => {
        const s = new RefSpace(p);
        return {
          mmcsal: refMmcsalCoverage(s, greedyBudget, labeled, DEFAULT_ALIGN_QUANTILE, margins),
          kcenter: refKcenter(s, greedyBudget, labeled, margins),
          facility: refFacility(s, greedyBudget, labeled, margins),
        };
      },
    );
    // Clustering strategies: one true cluster per k-means cluster (|L| + B), each with a member at
    // its centre (with more clusters than that, k-means splits one and rows sit on the boundary).
    const clusterBudget = 12;
    const clusters = drawClear(
      rng,
      (r) => clustered(r, rows, [16, 16], labeled.length + clusterBudget, true),
      (p, margins): Partial<Record<Strategy, number[]>> => {
        const s = new RefSpace(p);
        return { kmeans: refKmeans(s, clusterBudget, labeled, seed, margins), typiclust: refTypiclust(s, clusterBudget, labeled, seed, margins) };
      },
    );
    for (const [draw, budget] of [
      [greedy, greedyBudget],
      [clusters, clusterBudget],
    ] as const) {
      for (const strategy of Object.keys(draw.ref) as Strategy[]) {
        for (const backend of BACKENDS) {
          const modes = strategy === 'mmcsal' ? ({ distribution: 'coverage', alignment: 'filter' } as const) : {};
          const picks = (await run(draw.input, { strategy, budget, labeled, backend, seed, ...modes })).indices;
          expectPicks(picks, draw.ref[strategy]!, `${strategy} on ${backend}`);
        }
      }
    }
  }, 120_000);
});

describe('select: bad input', () => {
  const backend = BACKENDS.includes('cpu') ? 'cpu' : 'js';
  const rng = testRng();
  const p = scattered(rng, 40, [4, 4]);

  async function fails(opts: Partial<SelectOptions>, code: string, message: RegExp, pool: RefPool = p) {
    const err = await run(pool, { budget: 5, backend, ...opts } as SelectOptions).catch((e) => e);
    expect(err).toBeInstanceOf(PairpickError);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  }

  it('impossible budgets → E_BUDGET', async () => {
    await fails({ budget: 0 }, 'E_BUDGET', /≥ 1/);
    await fails({ budget: -3 }, 'E_BUDGET', /≥ 1/);
    await fails({ budget: 41 }, 'E_BUDGET', /41 exceeds the 40 selectable/);
    await fails({ budget: 38, labeled: [1, 2, 3] }, 'E_BUDGET', /38 exceeds the 37 selectable rows \(40 rows, 3 labelled\)/);
    await fails({ budget: 2.5 }, 'E_BUDGET', /integer/);
  });

  it('bad labelled indices → E_OPTION naming the index', async () => {
    await fails({ labeled: [3, -1] }, 'E_OPTION', /labeled\[1\] = -1 is negative/);
    await fails({ labeled: [3, 40] }, 'E_OPTION', /labeled\[1\] = 40 is out of range \(the pool has 40 rows\)/);
    await fails({ labeled: [7, 3, 7] }, 'E_OPTION', /labeled index 7 appears twice/);
    await fails({ labeled: [1.5] }, 'E_OPTION', /labeled\[0\] = 1.5 is not an integer/);
  });

  it('unknown strategy or option, or an option of another strategy → E_OPTION naming it', async () => {
    await fails({ strategy: 'coreset' as Strategy }, 'E_OPTION', /unknown strategy 'coreset'/);
    await fails({ bogus: 1 } as Partial<SelectOptions>, 'E_OPTION', /unknown option 'bogus'/);
    await fails({ strategy: 'kcenter', radius: 0.3 }, 'E_OPTION', /'radius' does not apply to strategy 'kcenter'/);
    await fails({ k: 0 }, 'E_OPTION', /'k' must be an integer ≥ 1/);
    await fails({ gamma: -1 }, 'E_OPTION', /'gamma'/);
    await fails({ strategy: 'facility', optimizer: 'greedy' as 'lazy' }, 'E_OPTION', /'optimizer' must be 'lazy' or 'stochastic'/);
    await fails({ strategy: 'probcover', radius: 0 }, 'E_OPTION', /'radius' must be a finite number > 0/);
    await fails({ backend: 'tpu' as BackendName }, 'E_OPTION', /unknown backend 'tpu'/);
  });

  it('NaN or Inf rows → E_NAN naming the modality and row', async () => {
    const bad = scattered(testRng(), 30, [4, 5]);
    (bad.data[1] as Float32Array)[17 * 5 + 2] = NaN;
    await fails({ strategy: 'kcenter' }, 'E_NAN', /modality 'm1'.*row 17/, bad);
    (bad.data[1] as Float32Array)[17 * 5 + 2] = 1;
    (bad.data[0] as Float32Array)[22 * 4] = -Infinity;
    await fails({ strategy: 'mmcsal' }, 'E_NAN', /modality 'm0'.*row 22/, bad);
  });

  it("mmcsal's inputs: mismatched rows, NaN/Inf, options that would ignore them, not a pool → refused naming the culprit", async () => {
    const raw = rawFeatures(testRng(), 40, [3, 6]);
    const inputs = (x: RefPool) => Object.fromEntries(x.data.map((d, m) => [`m${m}`, { data: d as Float32Array, dim: x.dims[m] }]));
    await fails({ inputs: inputs(rawFeatures(testRng(), 39, [3, 6])) }, 'E_SHAPE', /option 'inputs' has 39 rows, the pool has 40/);
    const short = inputs(raw);
    short.m1 = { data: (raw.data[1] as Float32Array).subarray(0, 39 * 6), dim: 6 };
    await fails({ inputs: short }, 'E_SHAPE', /option 'inputs'.*'m0'.*40.*'m1'.*39/);
    const nan = rawFeatures(testRng(), 40, [3, 6]);
    (nan.data[1] as Float32Array)[17 * 6 + 4] = NaN;
    await fails({ inputs: inputs(nan) }, 'E_NAN', /option 'inputs': modality 'm1' .*NaN in row 17 \(column 4\)/);
    (nan.data[1] as Float32Array)[17 * 6 + 4] = 0;
    (nan.data[0] as Float32Array)[3 * 3] = Infinity;
    await fails({ inputs: inputs(nan) }, 'E_NAN', /option 'inputs': modality 'm0' .*Infinity in row 3 \(column 0\)/);
    await fails({ inputs: inputs(raw), distribution: 'density' }, 'E_OPTION', /option 'inputs' is read by space 'embedding\+inputs' with distribution 'coverage' only/);
    await fails({ inputs: inputs(raw), distribution: 'clusters' }, 'E_OPTION', /option 'inputs' is read by space/);
    await fails({ inputs: inputs(raw), space: 'concat' }, 'E_OPTION', /option 'inputs' is read by space.*space 'concat'/);
    await fails({ space: 'embedding+inputs' }, 'E_OPTION', /space 'embedding\+inputs' needs option 'inputs'/);
    await fails({ space: 'embedding+inputs', distribution: 'density', inputs: inputs(raw) }, 'E_OPTION', /space 'embedding\+inputs' works with distribution 'coverage' only/);
    await fails({ strategy: 'facility', inputs: inputs(raw) } as Partial<SelectOptions>, 'E_OPTION', /'inputs' does not apply to strategy 'facility' \(it is a mmcsal option\)/);
    await fails({ inputs: 7 as never }, 'E_OPTION', /option 'inputs' must be a pool/);
    await fails({ inputs: new Float32Array(40) as never }, 'E_OPTION', /option 'inputs' must be a pool/);
    await fails({ inputs: {} }, 'E_OPTION', /option 'inputs'.*no modalities/);
  });

  it("mmcsal's inputs: progress rises to 1 through the input pass; cancelling while the inputs are read rejects with E_ABORTED", async () => {
    const raw = rawFeatures(testRng(), 40, [3, 6]);
    const inputs = await poolOf(raw);
    const pool = await poolOf(p);
    try {
      const reports: SelectProgress[] = [];
      await select(pool, { budget: 5, backend, inputs, onProgress: (r) => reports.push({ ...r }) });
      const fractions = reports.map((r) => r.fraction);
      for (let t = 1; t < fractions.length; t++) expect(fractions[t], `report ${t}`).toBeGreaterThanOrEqual(fractions[t - 1]);
      expect(fractions.at(-1)).toBe(1);
      expect(new Set(reports.map((r) => r.phase))).toEqual(new Set(['prepare', 'coverage', 'select']));
      // An input source that fires the signal on its first read: the selection stops there.
      const controller = new AbortController();
      const firing: SelectPool = {
        rows: inputs.rows,
        modalities: inputs.modalities,
        source: (name) => {
          const s = inputs.source(name);
          return {
            rows: s.rows,
            dim: s.dim,
            dtype: s.dtype,
            name: s.name,
            read: (start: number, count: number) => (controller.abort(), s.read(start, count)),
            readRows: (indices: ArrayLike<number>) => s.readRows(indices),
            chunks: (rowsPerChunk: number) => s.chunks(rowsPerChunk),
            close: () => undefined,
          };
        },
      };
      await rejectsWith(select(pool, { budget: 5, backend, inputs: firing, signal: controller.signal }), 'E_ABORTED');
    } finally {
      await Promise.all([pool.close(), inputs.close()]);
    }
  });

  it('γ or λ_align > 0 with unequal dimensions → E_SHAPE', async () => {
    const uneq = scattered(testRng(), 30, [4, 6]);
    await fails({ gamma: 0.5 }, 'E_SHAPE', /gamma = 0.5 needs every modality in one dimension.*m0 has 4, m1 has 6/, uneq);
    await fails({ lambdaAlign: 0.2, gamma: 0 }, 'E_SHAPE', /lambdaAlign = 0.2/, uneq);
    const ok = await run(uneq, { budget: 3, backend });
    expect(ok.params).toMatchObject({ gamma: 0, lambdaAlign: 0 });
  });
});
