// Facility location (spec §3.6): maximise F(S) = Σ_i max_{s ∈ S ∪ L} sim(i, s), sim = (1 + cos)/2 on u.
// `lazy` — exact lazy greedy: stale upper bounds in a heap, re-evaluated in batches. `stochastic` —
// Mirzasoleiman et al.: each step evaluates a seeded random sample of (N/B)·ln(1/ε) remaining
// candidates (ε = 0.01) and takes the best.
// Gains come from one of two sources with the same values up to float32 rounding: a cached N × N
// similarity table when it fits `memoryBudget` (built once from symmetric GEMM blocks; a gain or a
// cover update is then one pass over a row), else fused backend reductions that recompute the
// similarities they need (memory O(N)).
import { Rng } from '../util/rng.js';
import { integer, oneOf } from '../util/validate.js';
import { candidates, Heap, reduceAll, SIMILARITY, type Run } from './common.js';
import { defineStrategy, option } from './strategy.js';

/** ε of the stochastic sample size (spec §3.6). */
export const STOCHASTIC_EPSILON = 0.01;
/** Stale bounds re-evaluated together by the lazy greedy when similarities are recomputed: the
 * first batch of a step, doubled while the top stays stale (on unstructured data most bounds go
 * stale at once), up to the cap. */
const LAZY_BATCH = 16;
const LAZY_BATCH_MAX = 4096;
/** Kept ground-similarity rows (see groundSource): allocated KEPT_CHUNK rows at a time, filled
 * KEEP_TILE rows per GEMM. */
const KEPT_CHUNK = 1024;
const KEEP_TILE = 256;

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

/** Default memory for the cached similarity table, MiB (a 16k-row pool fits). */
export const FACILITY_MEMORY_MIB = 1024;
/** `memoryBudget`, shared by facility location and MMCSAL's coverage (one option, one meaning). */
export const MEMORY_BUDGET_OPTION = option(integer({ min: 0, max: 2 ** 30 }), {
  default: FACILITY_MEMORY_MIB,
  value: 'MIB',
  doc: 'MiB for cached similarities: the N × N table (4·(N² + N·Σdim + 1024²) bytes), or with a ground sample the rows of re-evaluated candidates (4·|G| bytes each); beyond it similarities are recomputed',
});
/** The same on a cached table, where a row costs a pass over 4·N bytes, not a recomputation. */
const TABLE_LAZY_BATCH = 8;
const TABLE_LAZY_BATCH_MAX = 64;
/** Rows and columns of one GEMM tile while the table is built. */
const TABLE_TILE = 1024;

/** Bytes the cached path holds at its peak for N rows of Σdim = D: the table, the gathered rows u
 * and one GEMM tile. */
export function facilityTableBytes(N: number, D: number): number {
  const tile = Math.min(N, TABLE_TILE);
  return 4 * (N * N + N * D + tile * tile);
}

/** Where the gains and cover updates come from. */
interface GainSource {
  /** gains[t] = Σ_j max(0, sim(rows[t], j) − cover[j]). */
  gains(rows: Int32Array, report?: (done: number, total: number) => void): Promise<Float64Array>;
  /** cover[j] ← max(cover[j], sim(i, j)). */
  add(i: number): Promise<void>;
  /** Stale bounds the lazy greedy re-evaluates together: `batch` first in a step, doubled while
   * the top stays stale, up to `batchMax`. A batch amortises one backend call; its size trades
   * that against re-evaluating rows the exact lazy greedy would not have needed. */
  batch: number;
  batchMax: number;
}

/**
 * The N × N table sim(i, j) (row-major float32) from GEMM tiles over the gathered normalised rows:
 * only the tiles on and above the diagonal are multiplied, each copied into place and transposed
 * into its mirror. sim = (1 + ⟨u_i,u_j⟩/M)/2 comes out of the GEMM itself: the rows are scaled by
 * 1/√(2M) and each tile accumulates onto 0.5. sim(i, i) = 1.
 */
async function similarityTable(run: Run): Promise<Float32Array> {
  const N = run.rows;
  const D = run.total;
  const u = new Float32Array(N * D);
  const step = Math.max(1, Math.floor((1 << 22) / Math.max(1, D)));
  for (let s = 0; s < N; s += step) {
    run.checkAbort();
    const e = Math.min(N, s + step);
    const idx = new Int32Array(e - s);
    for (let t = 0; t < idx.length; t++) idx[t] = s + t;
    u.set(await run.ctx.gather(idx), s * D);
  }
  const scale = Math.sqrt(1 / (2 * run.dims.length));
  for (let t = 0; t < u.length; t++) u[t] *= scale;
  const table = new Float32Array(N * N);
  const B = Math.min(N, TABLE_TILE);
  const tile = new Float32Array(B * B);
  const tiles = Math.ceil(N / B);
  const total = (tiles * (tiles + 1)) / 2;
  let done = 0;
  for (let i0 = 0; i0 < N; i0 += B) {
    const m = Math.min(B, N - i0);
    for (let j0 = i0; j0 < N; j0 += B) {
      run.checkAbort();
      const n = Math.min(B, N - j0);
      const c = tile.subarray(0, m * n);
      c.fill(0.5);
      await run.backend.matmul(u.subarray(i0 * D, (i0 + m) * D), u.subarray(j0 * D, (j0 + n) * D), c, { m, n, inner: D, transA: false, transB: true, accumulate: true });
      for (let r = 0; r < m; r++) table.set(c.subarray(r * n, r * n + n), (i0 + r) * N + j0);
      if (j0 > i0) {
        // The mirror tile: contiguous writes, strided reads (the tile stays in cache).
        for (let q = 0; q < n; q++) {
          const dst = (j0 + q) * N + i0;
          for (let r = 0; r < m; r++) table[dst + r] = c[r * n + q];
        }
      }
      run.report('coverage', ++done, total * 2, 0.5 * (done / total));
    }
  }
  for (let i = 0; i < N; i++) table[i * N + i] = 1;
  return table;
}

function tableSource(run: Run, table: Float32Array, cover: Float32Array): GainSource {
  const N = run.rows;
  const none = new Int32Array(0);
  return {
    // One backend call re-evaluates a few rows (a row is a cheap pass over the table; the call
    // itself costs as much as a few rows).
    batch: TABLE_LAZY_BATCH,
    batchMax: TABLE_LAZY_BATCH_MAX,
    async gains(rows, report) {
      const out = new Float64Array(rows.length);
      const step = Math.max(1, Math.floor(2e8 / Math.max(1, N)));
      for (let s = 0; s < rows.length; s += step) {
        run.checkAbort();
        const e = Math.min(rows.length, s + step);
        out.set(await run.backend.coverGains(table, cover, rows.subarray(s, e), { columns: N, add: -1 }), s);
        report?.(e, rows.length);
      }
      return out;
    },
    async add(i) {
      await run.backend.coverGains(table, cover, none, { columns: N, add: i });
    },
  };
}

function recomputeSource(run: Run, cover: Float32Array): GainSource {
  const N = run.rows;
  return {
    batch: LAZY_BATCH,
    batchMax: LAZY_BATCH_MAX,
    gains: (rows, report) => reduceAll(run, rows, undefined, SIMILARITY, { kind: 'gain', cover }, report),
    async add(i) {
      const sim = await run.ctx.distancesFrom(i, SIMILARITY);
      for (let j = 0; j < N; j++) if (sim[j] > cover[j]) cover[j] = sim[j];
    },
  };
}

/**
 * Facility location summed over a ground set G of rows only, F(S) = Σ_{j ∈ G} max_s sim(j, s):
 * a gain costs |G| similarities, a cover update too, so the greedy is O(N·|G|) time, O(N) memory.
 * cover is kept (and read by the gain reduction) at the rows of G only.
 *
 * The lazy greedy re-evaluates the same strong candidates again and again, and each recomputation
 * is |G|·Σdim multiply-adds. So a re-evaluated candidate's similarities to G are kept — one row of
 * a (candidates × |G|) table, filled from GEMM tiles against the gathered ground rows, up to
 * `memoryMiB` — and its later gains are one pass over |G| floats (`coverGains`), as on the dense
 * table. A row is kept from its second evaluation on (the first pass over every candidate stays a
 * reduction); rows beyond the budget are recomputed as before.
 */
async function groundSource(run: Run, cover: Float32Array, ground: Int32Array, memoryMiB: number): Promise<GainSource> {
  const N = run.rows;
  const G = ground.length;
  const D = run.total;
  const update = async (i: Int32Array) => {
    const sim = await reduceAll(run, ground, i, SIMILARITY, { kind: 'max' });
    for (let t = 0; t < G; t++) if (sim[t] > cover[ground[t]]) cover[ground[t]] = sim[t];
  };
  if (run.labeled.length) await update(Int32Array.from(run.labeled));
  // Rows of kept similarities that fit the budget beside the gathered ground rows.
  const capacity = Math.min(N, Math.floor(Math.max(0, memoryMiB * 2 ** 20 - 4 * G * D) / (4 * G)));
  if (capacity < LAZY_BATCH) {
    return {
      batch: LAZY_BATCH,
      batchMax: LAZY_BATCH_MAX,
      gains: (rows, report) => reduceAll(run, rows, ground, SIMILARITY, { kind: 'gain', cover }, report),
      add: (i) => update(Int32Array.of(i)),
    };
  }
  // The ground rows, scaled by 1/√(2M) so that a GEMM tile accumulated onto 0.5 is sim (as in
  // similarityTable).
  const scale = Math.sqrt(1 / (2 * run.dims.length));
  const groundRows = await run.ctx.gather(ground);
  for (let t = 0; t < groundRows.length; t++) groundRows[t] *= scale;
  const position = new Map<number, number>();
  ground.forEach((g, t) => position.set(g, t));
  // cover at the ground rows, packed (the table's columns).
  const packed = new Float32Array(G);
  const syncPacked = () => {
    for (let t = 0; t < G; t++) packed[t] = cover[ground[t]];
  };
  syncPacked();
  // The table is allocated in chunks of KEPT_CHUNK rows as it fills: no copies, no more than needed.
  const chunks: Float32Array[] = [];
  const slot = new Int32Array(N).fill(-1);
  const evaluated = new Uint8Array(N);
  let used = 0;
  // Keeps ≤ KEEP_TILE rows that fit the current chunk (the caller splits at chunk ends).
  const keep = async (rows: Int32Array) => {
    const local = used % KEPT_CHUNK;
    if (local === 0) chunks.push(new Float32Array(Math.min(KEPT_CHUNK, capacity - used) * G));
    const x = await run.ctx.gather(rows);
    for (let t = 0; t < x.length; t++) x[t] *= scale;
    const c = chunks[chunks.length - 1].subarray(local * G, (local + rows.length) * G);
    c.fill(0.5);
    await run.backend.matmul(x, groundRows, c, { m: rows.length, n: G, inner: D, transA: false, transB: true, accumulate: true });
    rows.forEach((i, r) => {
      slot[i] = used + r;
      const t = position.get(i);
      if (t !== undefined) c[r * G + t] = 1;
    });
    used += rows.length;
  };
  const none = new Int32Array(0);
  return {
    batch: LAZY_BATCH,
    batchMax: LAZY_BATCH_MAX,
    async gains(rows, report) {
      // Rows not kept yet are kept while there is room (a GEMM tile is far cheaper than the
      // reduction's per-pair work); the rest are recomputed.
      // A row's first evaluation (the first pass) is not kept: most rows are never looked at again.
      const fresh: number[] = [];
      for (const i of rows) {
        if (slot[i] < 0 && evaluated[i] && used + fresh.length < capacity) fresh.push(i);
        evaluated[i] = 1;
      }
      for (let s = 0; s < fresh.length; ) {
        run.checkAbort();
        const e = Math.min(fresh.length, s + KEEP_TILE, s + KEPT_CHUNK - (used % KEPT_CHUNK));
        await keep(Int32Array.from(fresh.slice(s, e)));
        s = e;
      }
      const out = new Float64Array(rows.length);
      const kept: number[] = [];
      const recompute: number[] = [];
      rows.forEach((i, t) => (slot[i] >= 0 ? kept : recompute).push(t));
      // One coverGains call per chunk holding some of them.
      const byChunk = new Map<number, number[]>();
      for (const t of kept) {
        const c = Math.floor(slot[rows[t]] / KEPT_CHUNK);
        (byChunk.get(c) ?? byChunk.set(c, []).get(c)!).push(t);
      }
      for (const [c, ts] of byChunk) {
        const g = await run.backend.coverGains(chunks[c], packed, Int32Array.from(ts, (t) => slot[rows[t]] % KEPT_CHUNK), { columns: G, add: -1 });
        ts.forEach((t, q) => (out[t] = g[q]));
      }
      if (recompute.length) {
        const g = await reduceAll(run, Int32Array.from(recompute, (t) => rows[t]), ground, SIMILARITY, { kind: 'gain', cover }, report);
        recompute.forEach((t, q) => (out[t] = g[q]));
      }
      report?.(rows.length, rows.length);
      return out;
    },
    async add(i) {
      if (slot[i] >= 0) {
        await run.backend.coverGains(chunks[Math.floor(slot[i] / KEPT_CHUNK)], packed, none, { columns: G, add: slot[i] % KEPT_CHUNK });
        for (let t = 0; t < G; t++) cover[ground[t]] = packed[t];
      } else {
        await update(Int32Array.of(i));
        syncPacked();
      }
    },
  };
}

/**
 * The seeded ground set of `sample` rows (ascending) a coverage objective sums over, or undefined
 * (every row) when the pool has no more rows than that.
 */
export function groundSet(rows: number, sample: number, seed: number): Int32Array | undefined {
  return sample < rows ? new Rng(seed).permutation(rows).subarray(0, sample).sort() : undefined;
}

/**
 * `exclude` (1 = never picked, still covered) narrows the candidates, e.g. to the well-aligned
 * pairs of MMCSAL's alignment filter. `ground` (ascending rows) restricts the rows whose coverage
 * counts (see groundSource); undefined = every row.
 */
export async function facility(
  run: Run,
  budget: number,
  optimizer: FacilityOptimizer,
  memoryMiB = FACILITY_MEMORY_MIB,
  exclude?: Uint8Array,
  ground?: Int32Array,
): Promise<{ indices: Int32Array; gains: Float64Array; cached: boolean; peakBytes: number }> {
  const N = run.rows;
  // cover[i] = max over S ∪ L of sim(i, s) (0 while empty: sim ≥ 0).
  const cover = new Float32Array(N);
  const tableBytes = facilityTableBytes(N, run.total);
  // (2³⁰ values also keeps the table within what one typed array may hold.)
  const cached = !ground && tableBytes <= memoryMiB * 2 ** 20 && N * N <= 2 ** 30;
  let source: GainSource;
  if (ground) {
    source = await groundSource(run, cover, ground, memoryMiB);
  } else if (cached) {
    const table = await similarityTable(run);
    source = tableSource(run, table, cover);
    for (const l of run.labeled) await source.add(l);
  } else {
    if (run.labeled.length) cover.set(await reduceAll(run, { start: 0, count: N }, run.labeled, SIMILARITY, { kind: 'max' }));
    source = recomputeSource(run, cover);
  }
  const gain = source.gains;
  const addPick = source.add;

  const cand = exclude ? candidates(run).filter((i) => !exclude[i]) : candidates(run);
  const out = new Int32Array(budget);
  const gains = new Float64Array(budget);
  if (optimizer === 'lazy') {
    const first = await gain(cand, (d, t) => run.report('coverage', d, t, cached ? 0.5 + 0.5 * (d / t) : undefined));
    type Entry = { i: number; g: number; stamp: number };
    const heap = new Heap<Entry>((a, b) => a.g > b.g || (a.g === b.g && a.i < b.i));
    cand.forEach((i, j) => heap.push({ i, g: first[j], stamp: 0 }));
    let batch = source.batch;
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
        batch = source.batch;
        continue;
      }
      const stale: Entry[] = [];
      while (stale.length < batch && heap.size && heap.peek()!.stamp !== n) stale.push(heap.pop()!);
      batch = Math.min(source.batchMax, batch * 2);
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
  return { indices: out, gains, cached, peakBytes: cached ? tableBytes : 0 };
}


export const facilityStrategy = defineStrategy({
  name: 'facility',
  kind: 'cold',
  doc: 'facility location: greedily maximise how well the picks and labelled rows represent every row, by similarity (1 + cos) / 2',
  options: {
    optimizer: option(oneOf(FACILITY_OPTIMIZERS), { default: 'lazy', value: 'lazy|stochastic', doc: 'exact lazy greedy, or stochastic greedy' }),
    memoryBudget: MEMORY_BUDGET_OPTION,
  },
  weights: { coverage: 4, select: 6 },
  async run(run, budget, params) {
    const out = await facility(run, budget, params.optimizer, params.memoryBudget);
    return { indices: out.indices, params: { cached: out.cached ? 'table' : 'recompute', peakBytes: out.peakBytes } };
  },
});
