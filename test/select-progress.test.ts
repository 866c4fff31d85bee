// MMCSAL's density progress follows the work done, not the queries done. The CPU engine computes
// the exact kNN pass symmetrically (query range [s, e) against refs ≥ s: each pair once), so the
// first queries cost the most; counting queries made the bar crawl at the start (10–11 % for
// 50 s on 200k rows) and rush at the end. Reported phase fraction must be the share of pairs
// computed: Σ_{i<s} (N − i) / Σ_{i<N} (N − i) on the CPU engine, s / N where every query costs
// the same (js).
import { describe, expect, it } from 'vitest';

import { backends } from '../src/backend/index.js';
import { openPool } from '../src/io/index.js';
import { select, type SelectProgress } from '../src/select/index.js';
import { randomMatrix, testRng } from './helpers/random.js';

const cpuAvailable = backends().some((b) => b.name === 'cpu' && b.available);

/** The density reports of an MMCSAL run, as (queries done, share of the phase reported). */
async function densityReports(backend: 'cpu' | 'js', rows: number, dim: number): Promise<{ done: number; total: number; share: number }[]> {
  const rng = testRng();
  const pool = await openPool({ a: { data: randomMatrix(rng, rows, dim), dim }, b: { data: randomMatrix(rng, rows, dim), dim } });
  const reports: SelectProgress[] = [];
  try {
    await select(pool, { budget: 5, distribution: 'density', backend, onProgress: (p) => reports.push({ ...p }) });
  } finally {
    await pool.close();
  }
  // The phase's share from the overall fraction: 0 where 'prepare' ended, 1 where density ended.
  const start = reports.filter((p) => p.phase === 'prepare').at(-1)!.fraction;
  const density = reports.filter((p) => p.phase === 'density');
  const end = density.at(-1)!.fraction;
  expect(density.at(-1)!.done).toBe(rows);
  return density.map((p) => ({ done: p.done, total: p.total, share: (p.fraction - start) / (end - start) }));
}

describe('density progress', () => {
  it.skipIf(!cpuAvailable)('cpu: the reported share is the share of pairs computed by the symmetric pass', async () => {
    // Large enough for several backend calls (each is sized to ~2e9 multiply-adds).
    const N = 5000;
    const reports = await densityReports('cpu', N, 128);
    const inner = reports.filter((r) => r.done < N);
    expect(inner.length, 'several density reports before the end').toBeGreaterThanOrEqual(2);
    const pairs = (s: number) => s * N - (s * (s - 1)) / 2; // Σ_{i<s} (N − i)
    for (const r of reports) {
      expect(r.total).toBe(N);
      expect(r.share, `after ${r.done} of ${N} queries`).toBeCloseTo(pairs(r.done) / pairs(N), 9);
    }
  });

  it('js: every query costs the same, so the share is queries done / N', async () => {
    const N = 600;
    const reports = await densityReports('js', N, 8);
    for (const r of reports) expect(r.share, `after ${r.done} of ${N} queries`).toBeCloseTo(r.done / N, 9);
  });
});
