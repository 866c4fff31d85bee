// Greedy k-means++ seeding (src/select/kmeans.ts seedCentres) on every available backend against
// the float64 reference (test/reference/select.ts), on fresh clustered pools; its defining property
// (the kept draw leaves the smallest potential of the centre's draws) recomputed here in float64;
// progress and cancellation of the seeding.
import { describe, expect, it } from 'vitest';

import { backends, getBackend } from '../src/backend/index.js';
import type { BackendName } from '../src/backend/types.js';
import { PairpickError } from '../src/errors.js';
import { openPool } from '../src/io/pool.js';
import { openRun, type Run, type SelectProgress } from '../src/select/common.js';
import { DEFAULT_KMEANS_SEEDING, seedCentres } from '../src/select/kmeans.js';
import { Rng } from '../src/util/rng.js';
import { randomMatrix, testRng } from './helpers/random.js';
import { RefSpace, drawClear, refPotential, refSeedCentres, type RefPool } from './reference/select.js';

const BACKENDS: BackendName[] = backends()
  .filter((b) => b.available)
  .map((b) => b.name);

/** Rows around `clusters` random centres shared by the modalities (`spread` per coordinate). */
function clustered(rng: Rng, rows: number, dims: number[], clusters: number, spread = 0.15): RefPool {
  const centres = dims.map((d) => randomMatrix(rng, clusters, d, 1));
  const of = Int32Array.from({ length: rows }, () => rng.int(clusters));
  const data = dims.map((d, m) => {
    const x = randomMatrix(rng, rows, d, spread);
    for (let i = 0; i < rows; i++) for (let t = 0; t < d; t++) x[i * d + t] += centres[m][of[i] * d + t];
    return x;
  });
  return { rows, dims, data };
}

async function withRun<T>(p: RefPool, backend: BackendName, fn: (run: Run) => Promise<T>, extra: { signal?: AbortSignal; onProgress?: (p: SelectProgress) => void } = {}): Promise<T> {
  const input: Record<string, { data: Float32Array; dim: number }> = {};
  p.data.forEach((x, m) => (input[`m${m}`] = { data: x as Float32Array, dim: p.dims[m] }));
  const pool = await openPool(input);
  try {
    const run = await openRun(pool, { backend: getBackend(backend), labeled: new Int32Array(0), seed: 0, weights: { kmeans: 1 }, where: 'test', ...extra });
    try {
      return await fn(run);
    } finally {
      run.ctx.close();
    }
  } finally {
    await pool.close();
  }
}

/** The L = 2 + ⌊ln k⌋ draws of every centre after the first, replayed in float64 from the centres
 * chosen so far and the same uniforms (valid on a pool drawClear found clear of knife edges). */
function replayDraws(s: RefSpace, centres: number[], k: number, seed: number): { d2: Float64Array; draws: number[] }[] {
  const rng = new Rng(seed);
  expect(rng.int(s.rows)).toBe(centres[0]);
  const trials = 2 + Math.floor(Math.log(k));
  const d2 = new Float64Array(s.rows).fill(Infinity);
  const chosen = new Set<number>();
  const add = (c: number) => {
    chosen.add(c);
    for (let i = 0; i < s.rows; i++) {
      let d = 0;
      for (let t = 0; t < s.u[i].length; t++) d += (s.u[i][t] - s.u[c][t]) ** 2;
      d2[i] = i === c ? 0 : Math.min(d2[i], d);
    }
  };
  add(centres[0]);
  const out: { d2: Float64Array; draws: number[] }[] = [];
  for (let n = 1; n < k; n++) {
    let total = 0;
    for (let i = 0; i < s.rows; i++) if (!chosen.has(i)) total += d2[i];
    const draws: number[] = [];
    for (let t = 0; t < trials; t++) {
      const target = rng.next() * total;
      let acc = 0;
      let pick = -1;
      for (let i = 0; i < s.rows && pick < 0; i++) {
        if (chosen.has(i)) continue;
        acc += d2[i];
        if (acc > target) pick = i;
      }
      draws.push(pick);
    }
    out.push({ d2: Float64Array.from(d2), draws });
    add(centres[n]);
  }
  return out;
}

describe.each(BACKENDS)('greedy k-means++ seeding on %s', (backend) => {
  it('is the default seeding', () => {
    expect(DEFAULT_KMEANS_SEEDING).toBe('greedy-kmeans++');
  });

  it('matches the float64 reference, and keeps the draw with the smallest potential', async () => {
    const rng = testRng();
    for (let round = 0; round < 3; round++) {
      const rows = 80 + rng.int(80);
      const dims = [4 + rng.int(6), 3 + rng.int(5)];
      const clusters = 5 + rng.int(8);
      const k = 3 + rng.int(12);
      const seed = rng.int(1 << 20);
      const { input: p, ref } = drawClear(
        rng,
        (r) => clustered(r, rows, dims, clusters),
        (p, margins) => refSeedCentres(new RefSpace(p), k, new Rng(seed), margins, 'greedy-kmeans++'),
      );
      const got = await withRun(p, backend, (run) => seedCentres(run, k, new Rng(seed), 'greedy-kmeans++'));
      expect(Array.from(got), `centres (k = ${k}, ${rows} rows)`).toEqual(ref);

      // The defining property, recomputed independently of the reference's choice: each kept
      // centre is one of its step's draws, and no draw leaves a smaller float64 potential.
      const s = new RefSpace(p);
      const steps = replayDraws(s, ref, k, seed);
      steps.forEach(({ d2, draws }, n) => {
        const kept = ref[n + 1];
        expect(draws, `centre ${n + 1} among its draws`).toContain(kept);
        const keptPotential = refPotential(s, d2, kept);
        for (const c of draws) expect(keptPotential, `centre ${n + 1}: potential of draw ${c}`).toBeLessThanOrEqual(refPotential(s, d2, c));
      });
    }
  });

  it('skips the rows no candidate can reach without changing a centre', async () => {
    const rng = testRng();
    const rows = 150 + rng.int(60);
    const dims = [5 + rng.int(4), 4 + rng.int(4)];
    const clusters = 8 + rng.int(5);
    const k = clusters - rng.int(3);
    const seed = rng.int(1 << 20);
    // Tight, far-apart clusters: a candidate cannot reach the rows of clusters that already hold
    // a centre, so the later gain passes run over a fraction of the pool. (k ≤ clusters keeps the
    // draws' potentials far apart: centres within one tight cluster would differ by little.)
    const { input: p, ref } = drawClear(
      rng,
      (r) => clustered(r, rows, dims, clusters, 0.05),
      (p, margins) => refSeedCentres(new RefSpace(p), k, new Rng(seed), margins, 'greedy-kmeans++'),
    );
    const gainRefs: number[] = [];
    const got = await withRun(p, backend, (run) => {
      const pairReduce = run.ctx.pairReduce.bind(run.ctx);
      run.ctx.pairReduce = (queries, refs, metric, reduction) => {
        if (reduction.kind === 'gain') gainRefs.push(refs === undefined ? rows : refs instanceof Int32Array ? refs.length : refs.count);
        return pairReduce(queries, refs, metric, reduction);
      };
      return seedCentres(run, k, new Rng(seed), 'greedy-kmeans++');
    });
    expect(Array.from(got)).toEqual(ref);
    expect(gainRefs).toHaveLength(k - 1);
    expect(Math.min(...gainRefs)).toBeLessThan(rows / 2);
  });

  it('is deterministic per seed and differs from one-draw k-means++', async () => {
    const rng = testRng();
    const p = clustered(rng, 300, [8, 6], 12);
    const k = 20;
    const seed = rng.int(1 << 20);
    const [a, b, plus] = await withRun(p, backend, async (run) => [
      await seedCentres(run, k, new Rng(seed), 'greedy-kmeans++'),
      await seedCentres(run, k, new Rng(seed), 'greedy-kmeans++'),
      await seedCentres(run, k, new Rng(seed), 'kmeans++'),
    ]);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(new Set(a).size).toBe(k);
    // The same first row; after it the two read the seeded stream differently (4 uniforms per
    // centre against 1), so 19 further centres agreeing would be a coincidence of ~300⁻¹⁸.
    expect(plus[0]).toBe(a[0]);
    expect(Array.from(plus)).not.toEqual(Array.from(a));
  });

  it('reports progress per centre and stops on abort', async () => {
    const rng = testRng();
    const p = clustered(rng, 200, [6, 5], 8);
    const k = 30;
    const seen: number[] = [];
    await withRun(p, backend, (run) => seedCentres(run, k, new Rng(1), 'greedy-kmeans++', 'kmeans', k - 1), {
      onProgress: (e) => {
        if (e.phase === 'kmeans') seen.push(e.done);
      },
    });
    expect(seen).toEqual(Array.from({ length: k - 1 }, (_, n) => n + 1));

    const controller = new AbortController();
    let steps = 0;
    const aborted = withRun(p, backend, (run) => seedCentres(run, k, new Rng(1), 'greedy-kmeans++', 'kmeans', k - 1), {
      signal: controller.signal,
      onProgress: (e) => {
        if (e.phase === 'kmeans' && ++steps === 5) controller.abort();
      },
    });
    await expect(aborted).rejects.toMatchObject({ code: 'E_ABORTED' });
    await expect(aborted).rejects.toBeInstanceOf(PairpickError);
    expect(steps).toBe(5);
  });
});
