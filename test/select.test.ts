// Selection strategies on every available backend against the float64 reference of spec §3
// (test/reference/select.ts), on fresh random pools of awkward sizes; labelled sets, seeds,
// fp16 inputs, bad input and cancellation.
import { describe, expect, it } from 'vitest';

import { backends, getBackend } from '../src/backend/index.js';
import type { BackendName } from '../src/backend/types.js';
import { PairpickError } from '../src/errors.js';
import { openPool, type Pool } from '../src/io/pool.js';
import { AUTO_LAMBDA_ALIGN, SELECT_DEFAULTS, select, type SelectOptions, type Strategy } from '../src/select/index.js';
import { floatArrayToHalf, halfArrayToFloat } from '../src/util/half.js';
import type { Rng } from '../src/util/rng.js';
import { randomMatrix, testRng } from './helpers/random.js';
import {
  RefSpace,
  refFacility,
  refFacilityStochastic,
  refKcenter,
  refKmeans,
  refMmcsal,
  refProbcover,
  refProbcoverRadius,
  refRandom,
  refTypiclust,
  type RefPool,
} from './reference/select.js';

const BACKENDS: BackendName[] = backends()
  .filter((b) => b.available)
  .map((b) => b.name);

/** Continuous random rows (no structure: every greedy choice wins by a clear margin). */
function scattered(rng: Rng, rows: number, dims: number[]): RefPool {
  return { rows, dims, data: dims.map((d) => randomMatrix(rng, rows, d, 1 + rng.next())) };
}

/** Rows around `clusters` well-separated centres shared by the modalities (a paired pool). */
function clustered(rng: Rng, rows: number, dims: number[], clusters: number): RefPool {
  const centres = dims.map((d) => randomMatrix(rng, clusters, d, 1));
  const of = Int32Array.from({ length: rows }, () => rng.int(clusters));
  const data = dims.map((d, m) => {
    const x = randomMatrix(rng, rows, d, 0.12);
    for (let i = 0; i < rows; i++) for (let t = 0; t < d; t++) x[i * d + t] += centres[m][of[i] * d + t];
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

describe.each(BACKENDS)('select on %s', (backend) => {
  for (const withLabels of [false, true]) {
    const tag = withLabels ? 'with a labelled set' : 'cold start';

    it(`mmcsal matches the reference (${tag}), components included`, async () => {
      const rng = testRng();
      const rows = 53 + rng.int(40);
      const dim = 5 + rng.int(6);
      const p = scattered(rng, rows, [dim, dim]);
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(6)) : [];
      const budget = 7 + rng.int(9);
      const k = 3 + rng.int(8);
      const sel = await run(p, { strategy: 'mmcsal', budget, labeled, backend, k });
      expect(sel.params).toMatchObject({ gamma: 1, lambdaAlign: AUTO_LAMBDA_ALIGN, k, wDensity: 1, wDiversity: SELECT_DEFAULTS.wDiversity });
      const ref = refMmcsal(new RefSpace(p), budget, labeled, { k, gamma: 1, lambdaAlign: AUTO_LAMBDA_ALIGN, wDensity: 1, wDiversity: SELECT_DEFAULTS.wDiversity });
      expectPicks(sel.indices, ref.picks, 'mmcsal picks');
      for (const key of ['density', 'diversity', 'alignment'] as const) {
        const got = Array.from(sel.components![key]!);
        got.forEach((v, t) => expect(v, `${key}[${t}]`).toBeCloseTo(ref.components[key][t], 4));
      }
      expect(sel.backend).toBe(backend);
      expect(sel.seconds).toBeGreaterThan(0);
    });

    it(`mmcsal with unequal dims (γ = λ = 0 by auto), weights and M = 3 (${tag})`, async () => {
      const rng = testRng();
      const rows = 41 + rng.int(30);
      const p = scattered(rng, rows, [4 + rng.int(3), 8 + rng.int(4), 3]);
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 5 + rng.int(6);
      const sel = await run(p, { strategy: 'mmcsal', budget, labeled, backend, wDiversity: 2.5, wDensity: 0.5 });
      expect(sel.params).toMatchObject({ gamma: 0, lambdaAlign: 0 });
      const ref = refMmcsal(new RefSpace(p), budget, labeled, { k: SELECT_DEFAULTS.k, gamma: 0, lambdaAlign: 0, wDensity: 0.5, wDiversity: 2.5 });
      expectPicks(sel.indices, ref.picks, 'mmcsal picks');
    });

    it(`mmcsal with M = 3 equal dims, explicit γ, λ and a density sample (${tag})`, async () => {
      const rng = testRng();
      const rows = 47 + rng.int(30);
      const p = scattered(rng, rows, [6, 6, 6]);
      const labeled = withLabels ? sample(rng, rows, 2 + rng.int(4)) : [];
      const budget = 6 + rng.int(6);
      const seed = rng.int(1000);
      const o = { k: 5, gamma: 0.3, lambdaAlign: 1.5, wDensity: 1, wDiversity: 1, densitySample: 20 + rng.int(10), seed };
      const sel = await run(p, { strategy: 'mmcsal', budget, labeled, backend, ...o });
      const ref = refMmcsal(new RefSpace(p), budget, labeled, o);
      expectPicks(sel.indices, ref.picks, 'mmcsal picks');
    });

    it(`kcenter matches the reference (${tag})`, async () => {
      const rng = testRng();
      const rows = 60 + rng.int(80);
      const p = scattered(rng, rows, [3 + rng.int(5), 4 + rng.int(5)]);
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(8)) : [];
      const budget = 10 + rng.int(20);
      const sel = await run(p, { strategy: 'kcenter', budget, labeled, backend });
      expectPicks(sel.indices, refKcenter(new RefSpace(p), budget, labeled), 'kcenter picks');
    });

    it(`kmeans matches the reference (${tag})`, async () => {
      const rng = testRng();
      const rows = 70 + rng.int(60);
      const p = clustered(rng, rows, [4 + rng.int(4), 5], 6 + rng.int(5));
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 4 + rng.int(6);
      const seed = rng.int(1 << 20);
      const sel = await run(p, { strategy: 'kmeans', budget, labeled, backend, seed });
      expectPicks(sel.indices, refKmeans(new RefSpace(p), budget, labeled, seed), 'kmeans picks');
    });

    it(`typiclust matches the reference (${tag})`, async () => {
      const rng = testRng();
      const rows = 70 + rng.int(60);
      const p = clustered(rng, rows, [6, 3 + rng.int(5)], 5 + rng.int(5));
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 4 + rng.int(6);
      const seed = rng.int(1 << 20);
      const sel = await run(p, { strategy: 'typiclust', budget, labeled, backend, seed });
      expectPicks(sel.indices, refTypiclust(new RefSpace(p), budget, labeled, seed), 'typiclust picks');
    });

    it(`probcover with a given radius matches the reference (${tag})`, async () => {
      const rng = testRng();
      const rows = 60 + rng.int(50);
      const p = clustered(rng, rows, [5, 5], 4 + rng.int(4));
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(3)) : [];
      const budget = 8 + rng.int(8);
      const seed = rng.int(1000);
      const radius = 0.25 + 0.1 * rng.next();
      const sel = await run(p, { strategy: 'probcover', budget, labeled, backend, radius, seed });
      expectPicks(sel.indices, refProbcover(new RefSpace(p), budget, labeled, radius, seed), 'probcover picks');
    });

    it(`facility (lazy and stochastic) matches the reference (${tag})`, async () => {
      const rng = testRng();
      const rows = 50 + rng.int(50);
      const p = scattered(rng, rows, [4 + rng.int(4), 6]);
      const labeled = withLabels ? sample(rng, rows, 1 + rng.int(4)) : [];
      const budget = 5 + rng.int(8);
      const seed = rng.int(1000);
      const s = new RefSpace(p);
      const lazy = await run(p, { strategy: 'facility', budget, labeled, backend });
      expectPicks(lazy.indices, refFacility(s, budget, labeled), 'lazy facility picks');
      const stochastic = await run(p, { strategy: 'facility', optimizer: 'stochastic', budget, labeled, backend, seed });
      expectPicks(stochastic.indices, refFacilityStochastic(s, budget, labeled, seed), 'stochastic facility picks');
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

  it('probcover picks its radius automatically (≥ 95% pure balls on the 0.01 grid)', async () => {
    const rng = testRng();
    const rows = 60 + rng.int(40);
    const p = clustered(rng, rows, [5, 4], 5);
    const budget = 5;
    const seed = rng.int(1000);
    const sel = await run(p, { strategy: 'probcover', budget, backend, seed });
    const s = new RefSpace(p);
    const radius = refProbcoverRadius(s, budget, seed);
    expect(sel.params.radius).toBeCloseTo(radius, 9);
    expect(sel.params.purity as number).toBeGreaterThanOrEqual(0.95);
    expectPicks(sel.indices, refProbcover(s, budget, [], radius, seed), 'probcover picks');
  });

  it('a large labelled set (added as centres in one blocked pass) matches the reference', async () => {
    const rng = testRng();
    const rows = 150 + rng.int(100);
    const p = clustered(rng, rows, [6, 6], 12);
    const labeled = sample(rng, rows, 20 + rng.int(30));
    const budget = 15 + rng.int(10);
    const s = new RefSpace(p);
    const kc = await run(p, { strategy: 'kcenter', budget, labeled, backend });
    expectPicks(kc.indices, refKcenter(s, budget, labeled), 'kcenter picks');
    const mm = await run(p, { strategy: 'mmcsal', budget, labeled, backend, k: 7 });
    expectPicks(mm.indices, refMmcsal(s, budget, labeled, { k: 7, gamma: 1, lambdaAlign: AUTO_LAMBDA_ALIGN, wDensity: 1, wDiversity: SELECT_DEFAULTS.wDiversity }).picks, 'mmcsal picks');
  });

  it('fp16 pools give the reference picks of the rounded values', async () => {
    const rng = testRng();
    const rows = 60 + rng.int(40);
    const p = roundedToHalf(scattered(rng, rows, [7, 7]));
    const s = new RefSpace(p);
    const budget = 9;
    const km = await run(p, { strategy: 'kcenter', budget, backend }, true);
    expectPicks(km.indices, refKcenter(s, budget, []), 'kcenter fp16');
    const mm = await run(p, { strategy: 'mmcsal', budget, backend, k: 6 }, true);
    expectPicks(mm.indices, refMmcsal(s, budget, [], { k: 6, gamma: 1, lambdaAlign: AUTO_LAMBDA_ALIGN, wDensity: 1, wDiversity: SELECT_DEFAULTS.wDiversity }).picks, 'mmcsal fp16');
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
    const want = Array.from({ length: rows }, (_, i) => {
      const d = [];
      for (let j = 0; j < rows; j++) if (j !== i) d.push(s.multimodal(i, j, gamma));
      d.sort((a, b) => a - b);
      return d.slice(0, k).reduce((a, b) => a + b, 0) / k;
    });
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
        for (let i = 0; i < rows; i++) expect(Math.abs(got[i] - want[i]), `${name}[${i}]`).toBeLessThan(1e-5 * (1 + want[i]));
      }
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
      queries.forEach((i, a) => {
        let n = 0;
        let mo = Infinity;
        let mx = -Infinity;
        let g = 0;
        for (const j of refs) {
          if (mask[j] && s.euclidean(i, j) < radius) n++;
          mx = Math.max(mx, s.similarity(i, j));
        }
        for (let j = 0; j < rows; j++) {
          if (labels[j] !== labels[i]) mo = Math.min(mo, s.euclidean(i, j));
          g += Math.max(0, s.similarity(i, j) - cover[j]);
        }
        expect(count[a], `count[${a}]`).toBe(n);
        expect(other[a], `minOtherLabel[${a}]`).toBeCloseTo(mo, 5);
        expect(max[a], `max[${a}]`).toBeCloseTo(mx, 5);
        expect(gain[a], `gain[${a}]`).toBeCloseTo(g, 3);
      });
    } finally {
      ctx.close();
    }
  });
});

describe('backends agree', () => {
  it.skipIf(BACKENDS.length < 2)('every strategy gives the same picks on every backend (larger pool)', async () => {
    const rng = testRng();
    const rows = 700 + rng.int(300);
    const p = clustered(rng, rows, [16, 16], 25);
    const labeled = sample(rng, rows, 9);
    const seed = rng.int(1000);
    for (const strategy of ['mmcsal', 'kcenter', 'kmeans', 'typiclust', 'facility'] as Strategy[]) {
      const picks = [];
      for (const backend of BACKENDS) picks.push(Array.from((await run(p, { strategy, budget: 30, labeled, backend, seed })).indices));
      for (let b = 1; b < picks.length; b++) expect(picks[b], `${strategy}: ${BACKENDS[b]} vs ${BACKENDS[0]}`).toEqual(picks[0]);
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

  it('γ or λ_align > 0 with unequal dimensions → E_SHAPE', async () => {
    const uneq = scattered(testRng(), 30, [4, 6]);
    await fails({ gamma: 0.5 }, 'E_SHAPE', /gamma = 0.5 needs every modality in one dimension.*m0 has 4, m1 has 6/, uneq);
    await fails({ lambdaAlign: 0.2, gamma: 0 }, 'E_SHAPE', /lambdaAlign = 0.2/, uneq);
    const ok = await run(uneq, { budget: 3, backend });
    expect(ok.params).toMatchObject({ gamma: 0, lambdaAlign: 0 });
  });
});
