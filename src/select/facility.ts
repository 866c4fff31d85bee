// Facility location (spec §3.6): maximise F(S) = Σ_i max_{s ∈ S ∪ L} sim(i, s), sim = (1 + cos)/2 on u.
// `lazy` — exact lazy greedy: stale upper bounds in a heap, re-evaluated in small batches (one
// blocked backend reduction per batch). `stochastic` — Mirzasoleiman et al.: each step evaluates a
// seeded random sample of (N/B)·ln(1/ε) remaining candidates (ε = 0.01) and takes the best.
import { Rng } from '../util/rng.js';
import { oneOf } from '../util/validate.js';
import { candidates, Heap, reduceAll, SIMILARITY, type Run } from './common.js';
import { defineStrategy, option } from './strategy.js';

/** ε of the stochastic sample size (spec §3.6). */
export const STOCHASTIC_EPSILON = 0.01;
/** Stale bounds re-evaluated together by the lazy greedy: the first batch of a step, doubled while
 * the top stays stale (on unstructured data most bounds go stale at once), up to the cap. */
const LAZY_BATCH = 16;
const LAZY_BATCH_MAX = 4096;

/**
 * Gains within this of the best count as tied, and the lowest index wins: exact ties are
 * structural here (two isolated rows that only cover each other have equal gains) and float32
 * rounding of the similarities must not decide them. tol(g) = 1e-5·g + 1e-6.
 */
export function gainTolerance(best: number): number {
  return 1e-5 * Math.abs(best) + 1e-6;
}

export const FACILITY_OPTIMIZERS = ['lazy', 'stochastic'] as const;
export type FacilityOptimizer = (typeof FACILITY_OPTIMIZERS)[number];

/**
 * `exclude` (1 = never picked, still covered) narrows the candidates, e.g. to the well-aligned
 * pairs of MMCSAL's alignment filter.
 */
export async function facility(
  run: Run,
  budget: number,
  optimizer: FacilityOptimizer,
  exclude?: Uint8Array,
): Promise<{ indices: Int32Array; gains: Float64Array }> {
  const N = run.rows;
  // cover[i] = max over S ∪ L of sim(i, s) (0 while empty: sim ≥ 0).
  const cover = new Float32Array(N);
  if (run.labeled.length) cover.set(await reduceAll(run, { start: 0, count: N }, run.labeled, SIMILARITY, { kind: 'max' }));
  const gain = (rows: Int32Array, report?: (d: number, t: number) => void) => reduceAll(run, rows, undefined, SIMILARITY, { kind: 'gain', cover }, report);
  const addPick = async (i: number) => {
    const sim = await run.ctx.distancesFrom(i, SIMILARITY);
    for (let j = 0; j < N; j++) if (sim[j] > cover[j]) cover[j] = sim[j];
  };

  const cand = exclude ? candidates(run).filter((i) => !exclude[i]) : candidates(run);
  const out = new Int32Array(budget);
  const gains = new Float64Array(budget);
  if (optimizer === 'lazy') {
    const first = await gain(cand, (d, t) => run.report('coverage', d, t));
    type Entry = { i: number; g: number; stamp: number };
    const heap = new Heap<Entry>((a, b) => a.g > b.g || (a.g === b.g && a.i < b.i));
    cand.forEach((i, j) => heap.push({ i, g: first[j], stamp: 0 }));
    let batch = LAZY_BATCH;
    for (let n = 0; n < budget; ) {
      run.checkAbort();
      const top = heap.peek()!;
      if (top.stamp === n) {
        // top.g is the best gain. Every row whose bound comes within the tolerance may tie with
        // it: bring those up to date, then the lowest index among the tied wins.
        const tol = gainTolerance(top.g);
        const near: Entry[] = [];
        while (heap.size && heap.peek()!.g >= top.g - tol) near.push(heap.pop()!);
        const stale = near.filter((e) => e.stamp !== n);
        if (stale.length) {
          const fresh = await gain(Int32Array.from(stale, (e) => e.i));
          stale.forEach((e, j) => {
            e.g = fresh[j];
            e.stamp = n;
          });
        }
        let win: Entry | undefined;
        for (const e of near) if (e.g >= top.g - tol && (!win || e.i < win.i)) win = e;
        for (const e of near) if (e !== win) heap.push(e);
        out[n] = win!.i;
        gains[n] = win!.g;
        n++;
        await addPick(win!.i);
        run.report('select', n, budget);
        batch = LAZY_BATCH;
        continue;
      }
      const stale: Entry[] = [];
      while (stale.length < batch && heap.size && heap.peek()!.stamp !== n) stale.push(heap.pop()!);
      batch = Math.min(LAZY_BATCH_MAX, batch * 2);
      const fresh = await gain(Int32Array.from(stale, (e) => e.i));
      stale.forEach((e, j) => heap.push({ i: e.i, g: fresh[j], stamp: n }));
    }
  } else {
    const rng = new Rng(run.seed);
    const rest = Int32Array.from(cand);
    let remaining = rest.length;
    const sample = Math.max(1, Math.ceil((N / budget) * Math.log(1 / STOCHASTIC_EPSILON)));
    for (let n = 0; n < budget; n++) {
      run.checkAbort();
      const s = Math.min(sample, remaining);
      // A seeded sample without replacement: partial Fisher–Yates over the remaining candidates.
      for (let t = 0; t < s; t++) {
        const j = t + rng.int(remaining - t);
        const x = rest[t];
        rest[t] = rest[j];
        rest[j] = x;
      }
      const picked = rest.slice(0, s);
      const g = await gain(picked);
      let max = -Infinity;
      for (let t = 0; t < s; t++) if (g[t] > max) max = g[t];
      // The lowest index among the gains tied with the best (see gainTolerance).
      let best = -1;
      for (let t = 0; t < s; t++) if (g[t] >= max - gainTolerance(max) && (best < 0 || picked[t] < picked[best])) best = t;
      out[n] = picked[best];
      gains[n] = g[best];
      // Remove the pick from the remaining candidates (swap with the last).
      rest[best] = rest[remaining - 1];
      rest[remaining - 1] = picked[best];
      remaining--;
      await addPick(out[n]);
      run.report('select', n + 1, budget);
    }
  }
  return { indices: out, gains };
}

export const facilityStrategy = defineStrategy({
  name: 'facility',
  kind: 'cold',
  doc: 'facility location: greedily maximise how well the picks and labelled rows represent every row, by similarity (1 + cos) / 2',
  options: {
    optimizer: option(oneOf(FACILITY_OPTIMIZERS), { default: 'lazy', value: 'lazy|stochastic', doc: 'exact lazy greedy, or stochastic greedy' }),
  },
  weights: { coverage: 4, select: 6 },
  async run(run, budget, params) {
    const out = await facility(run, budget, params.optimizer);
    return { indices: out.indices };
  },
});
