// k-means (spec §3.3): Lloyd's algorithm on u with k-means++ seeding, and the selection of each
// cluster's sample nearest its centre, largest clusters first. The clustering is shared with
// TypiClust (§3.4) and ProbCover's automatic radius (§3.5).
// Seeding: `greedy-kmeans++` (the default: Arthur & Vassilvitskii's greedy variant, as
// scikit-learn runs it — 2 + ⌊ln k⌋ D²-draws per centre, keeping the one that lowers the
// potential most), `kmeans++` (the spec's: one D²-draw per centre, each a pass over the pool) or
// `kmeans||` (Bahmani et al.: a few oversampling rounds, each one blocked assignment pass against
// a batch of ~k sampled rows, then greedy k-means++ with 2 + ⌊ln k⌋ local trials on the weighted
// candidates). All are written once over backend ops, so every backend runs the same algorithm.
import { PairpickError } from '../errors.js';
import { integer, oneOf } from '../util/validate.js';
import { Rng } from '../util/rng.js';
import { callBudget, EUCLIDEAN, greedyPicks, Heap, inChunks, reduceAll, SIMILARITY, type Run, type SelectProgress } from './common.js';
import { defineStrategy, option } from './strategy.js';

/** Lloyd iterations at most (spec §3.3). */
export const KMEANS_MAX_ITERATIONS = 100;

export const KMEANS_SEEDINGS = ['greedy-kmeans++', 'kmeans++', 'kmeans||'] as const;
export type KmeansSeeding = (typeof KMEANS_SEEDINGS)[number];
/**
 * The seeding of every clustering pairpick runs — k-means, TypiClust, ProbCover's automatic radius
 * and MMCSAL's `distribution: 'clusters'` — unless a caller picks another. One shared default, the
 * greedy variant: each baseline then clusters at its best (greedy seeding leaves Lloyd a lower
 * objective than one draw per centre, on par with scikit-learn's KMeans), for up to 2 + ⌊ln k⌋
 * times the distance work of one-draw k-means++ (less where the rows out of every candidate's
 * reach are skipped).
 */
export const DEFAULT_KMEANS_SEEDING: KmeansSeeding = 'greedy-kmeans++';

/** k-means|| oversampling rounds, and the expected rows each round samples (as a multiple of k). */
export const PARALLEL_ROUNDS = 3;
export const PARALLEL_OVERSAMPLING = 1;
/** Candidate pairs up to which k-means|| computes the C × C distances at once (256 MiB). */
const PARALLEL_PAIR_TABLE = 2 ** 26;

export interface ClusterOptions {
  /** Default DEFAULT_KMEANS_SEEDING. */
  seeding?: KmeansSeeding;
  /** Lloyd iterations at most (default KMEANS_MAX_ITERATIONS). */
  iterations?: number;
}

export interface Clustering {
  k: number;
  /** Cluster of every row. */
  labels: Int32Array;
  /** ‖u_i − c_label(i)‖² to the centre used in the last assignment. */
  distances: Float32Array;
  /** Members per cluster. */
  sizes: Int32Array;
  iterations: number;
  converged: boolean;
}

/**
 * Seeding (DEFAULT_KMEANS_SEEDING unless `options.seeding` says otherwise; the first centre
 * uniform, the others by D², seeded), then Lloyd until no label changes or the iteration cap; an
 * empty cluster is re-seeded with the row farthest from its centre.
 */
export async function cluster(
  run: Run,
  k: number,
  seed: number,
  phase: SelectProgress['phase'] = 'kmeans',
  options: ClusterOptions = {},
): Promise<Clustering> {
  const N = run.rows;
  const D = run.total;
  if (k < 1 || k > N) throw new PairpickError('E_INTERNAL', `k-means: k = ${k} for ${N} rows`);
  const rng = new Rng(seed);
  const maxIterations = options.iterations ?? KMEANS_MAX_ITERATIONS;
  const units = k - 1 + maxIterations;

  const centres = await seedCentres(run, k, rng, options.seeding ?? DEFAULT_KMEANS_SEEDING, phase, units);
  let centroids = await run.ctx.gather(centres);

  const labels = new Int32Array(N).fill(-1);
  const distances = new Float32Array(N);
  const sizes = new Int32Array(k);
  let iterations = 0;
  let converged = false;
  for (; iterations < maxIterations; ) {
    run.checkAbort();
    await run.ctx.setCentroids(centroids, k);
    const sums = new Float64Array(k * D);
    const counts = new Float64Array(k);
    let changed = 0;
    await inChunks(run, N, Math.max(1, callBudget(run.backend) / (k * D)), async (start, count) => {
      changed += await run.ctx.assign(start, count, labels.subarray(start, start + count), distances.subarray(start, start + count), sums, counts);
    });
    iterations++;
    for (let c = 0; c < k; c++) sizes[c] = counts[c];
    run.report(phase, k - 1 + iterations, units);
    if (changed === 0) {
      converged = true;
      break;
    }
    if (iterations === maxIterations) break;
    const next = new Float32Array(k * D);
    const empty: number[] = [];
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) {
        empty.push(c);
        continue;
      }
      for (let t = 0; t < D; t++) next[c * D + t] = sums[c * D + t] / counts[c];
    }
    if (empty.length) {
      const far = farthest(distances, empty.length);
      const rows = await run.ctx.gather(far);
      empty.forEach((c, e) => next.set(rows.subarray(e * D, e * D + D), c * D));
    }
    centroids = next;
  }
  run.report(phase, units, units);
  return { k, labels, distances, sizes, iterations, converged };
}

/** The k seed rows of a seeding (drawing from `rng`); progress reports go up to k − 1 of `units`. */
export async function seedCentres(
  run: Run,
  k: number,
  rng: Rng,
  seeding: KmeansSeeding,
  phase: SelectProgress['phase'] = 'kmeans',
  units = k - 1,
): Promise<Int32Array> {
  if (seeding === 'kmeans||') return parallelSeeding(run, k, rng, phase, units);
  if (seeding === 'kmeans++') return plusPlusSeeding(run, k, rng, phase, units);
  return greedySeeding(run, k, rng, phase, units);
}

/** k-means++ on the backend's greedy loop (sampleSquared mode): the first centre uniform, then one
 * D²-draw per centre. */
async function plusPlusSeeding(run: Run, k: number, rng: Rng, phase: SelectProgress['phase'], units: number): Promise<Int32Array> {
  const N = run.rows;
  const first = rng.int(N);
  await run.ctx.greedyInit({ metric: EUCLIDEAN, wDiversity: 1, exclude: new Uint8Array(N), mode: 'sampleSquared' });
  await run.ctx.greedyAddCenters(Int32Array.of(first));
  const uniforms = new Float64Array(k - 1);
  for (let t = 0; t < k - 1; t++) uniforms[t] = rng.next();
  const seeded = await greedyPicks(run, k - 1, EUCLIDEAN, { uniforms, phase, reportTotal: units });
  if (seeded.picks.length < k - 1) throw new PairpickError('E_INTERNAL', 'k-means++ seeding ran out of rows');
  const centres = new Int32Array(k);
  centres[0] = first;
  centres.set(seeded.picks, 1);
  return centres;
}

/**
 * Greedy k-means++ (Arthur & Vassilvitskii 2007, the variant scikit-learn runs). The first centre
 * is rng.int(N). For each next centre, with D²(i) the squared distance from row i to its nearest
 * centre: L = 2 + ⌊ln k⌋ candidates are drawn with L uniforms u_t (rng.next(), in order), each the
 * first row whose running Σ D² (float64, rows in order) exceeds u_t·Σ D² (the last row with
 * D² > 0 if rounding runs past the end; the lowest non-centre row when Σ D² = 0); the candidate
 * kept is the one leaving the smallest potential Σ_i min(D²(i), d²(i, c)), the earliest on ties.
 *
 * Everything runs over backend ops in the similarity space s = (1 + cos(u_i, u_j)) / 2, where
 * ‖u_i − u_j‖² = 4M(1 − s) (M modalities, unit-norm parts): the state is cover(i) = max over
 * centres of s (float32, as the backend computes it; 1 at a centre) and D²(i) = 4M(1 − cover(i)).
 * Then Σ_i min(D², d²(i, c)) = Σ D² − 4M·Σ_i max(0, s(c, i) − cover(i)): a candidate's potential
 * is a facility-location gain reduction over the pool (largest gain = smallest potential), and
 * the kept centre raises cover where it is nearer.
 *
 * Both passes skip the rows no candidate can get nearer to (triangle inequality): with o the
 * nearest centre of row i, d(i, c) ≥ d(o, c) − D(i), so row i adds nothing to c's gain when
 * d(o, c) ≥ 2·D(i) + greedyPruneMargin — the margin covering the float32 error of every distance
 * involved, so that skipping never changes a gain. The centre-to-candidate distances cost k·L·D
 * per centre (one dense distances call on a copy of the centres' rows), against N·L·D for a full
 * pass. Work is O(N·L·D) per centre at most, memory O(N + k·D) (the copy is capped by
 * GREEDY_MAX_CENTRE_BYTES; past it every pass runs over the whole pool).
 */
async function greedySeeding(run: Run, k: number, rng: Rng, phase: SelectProgress['phase'], units: number): Promise<Int32Array> {
  const N = run.rows;
  const D = run.total;
  const M = run.dims.length;
  const scale = 4 * M;
  const margin = greedyPruneMargin(run.dims);
  const centres = new Int32Array(k);
  const isCentre = new Uint8Array(N);
  const cover = new Float32Array(N);
  const owner = new Int32Array(N);
  // The centres' rows u (for the centre-to-candidate distances of the skip test), while they fit.
  const pruning = k * D * 4 <= GREEDY_MAX_CENTRE_BYTES;
  const centreRows = new Float32Array(pruning ? k * D : 0);
  const addCentre = async (n: number, row: number) => {
    centres[n] = row;
    isCentre[row] = 1;
    if (pruning) centreRows.set(await run.ctx.gather(Int32Array.of(row)), n * D);
  };

  await addCentre(0, rng.int(N));
  cover.set(await run.ctx.distancesFrom(centres[0], SIMILARITY));
  cover[centres[0]] = 1;

  const trials = 2 + Math.floor(Math.log(k));
  const running = new Float64Array(N);
  const threshold = new Float64Array(N);
  const candidates = new Int32Array(trials);
  const reach = new Int32Array(N);
  for (let n = 1; n < k; n++) {
    run.checkAbort();
    let total = 0;
    let lastPositive = -1;
    for (let i = 0; i < N; i++) {
      const d2 = Math.max(0, scale * (1 - cover[i]));
      if (d2 > 0) lastPositive = i;
      running[i] = total += d2;
      threshold[i] = 2 * Math.sqrt(d2) + margin;
    }
    for (let t = 0; t < trials; t++) candidates[t] = drawBySquares(running, total, rng.next(), lastPositive, isCentre);

    // toCentre[o·L + t] = ‖u_o − u_c_t‖ for every centre o so far; row i may get nearer to c_t only
    // when toCentre[owner(i)·L + t] < threshold(i). The gains then run over the rows some
    // candidate may reach (or the whole pool once that is past half of it).
    let toCentre: Float32Array | undefined;
    let count = N;
    if (pruning) {
      const squared = await run.backend.distances(centreRows.subarray(0, n * D), await run.ctx.gather(candidates), { rowsA: n, rowsB: trials, dim: D, metric: 'sqeuclidean' });
      toCentre = squared.map(Math.sqrt);
      count = 0;
      for (let i = 0; i < N; i++) {
        const o = owner[i] * trials;
        const limit = threshold[i];
        for (let t = 0; t < trials; t++) {
          if (toCentre[o + t] < limit) {
            reach[count++] = i;
            break;
          }
        }
      }
    }
    const refs = count > N / 2 ? undefined : reach.slice(0, count);
    const gains = await reduceAll(run, candidates, refs, SIMILARITY, { kind: 'gain', cover });
    let best = 0;
    for (let t = 1; t < trials; t++) if (gains[t] > gains[best]) best = t;
    const kept = candidates[best];
    await addCentre(n, kept);

    // Raise cover where the kept centre is nearer: over the rows it may reach, or the whole pool.
    let rows: Int32Array | undefined;
    if (toCentre && refs) {
      let m = 0;
      for (const i of refs) if (toCentre[owner[i] * trials + best] < threshold[i]) reach[m++] = i;
      rows = reach.subarray(0, m);
    }
    if (rows) {
      const s = await run.ctx.pairReduce(rows, Int32Array.of(kept), SIMILARITY, { kind: 'max' });
      rows.forEach((i, r) => {
        if (s[r] > cover[i]) {
          cover[i] = s[r];
          owner[i] = n;
        }
      });
    } else {
      const s = await run.ctx.distancesFrom(kept, SIMILARITY);
      for (let i = 0; i < N; i++) {
        if (s[i] > cover[i]) {
          cover[i] = s[i];
          owner[i] = n;
        }
      }
    }
    cover[kept] = 1;
    owner[kept] = n;
    run.report(phase, n, units);
  }
  return centres;
}

/** Memory for the greedy seeding's copy of the centres' rows at most (bytes); past it, no skipping. */
export const GREEDY_MAX_CENTRE_BYTES = 64 * 2 ** 20;

/**
 * Margin of the greedy seeding's row skipping (Σ dims D, M modalities, u = 2⁻²⁴). A backend's
 * similarity is within ε_s = ((D + 8)/2 + M/2 + 1)·u of the exact one, so a distance derived from
 * it, √(4M(1 − s)), is within e_s = √(4M·ε_s); a squared distance between two gathered float32
 * rows (‖a‖² + ‖b‖² − 2⟨a, b⟩ on rows of norm √M, each rounded) is within (4M(D + 16) + M²)·u, its
 * root within e_d = the root of that. Then d(o, c) ≥ 2·D(i) + margin implies the backend's
 * s(c, i) ≤ cover(i) when margin ≥ e_d + 3·e_s; we take twice that.
 */
export function greedyPruneMargin(dims: readonly number[]): number {
  const M = dims.length;
  const D = dims.reduce((a, d) => a + d, 0);
  const u = 2 ** -24;
  const similarity = Math.sqrt(4 * M * ((D + 8) / 2 + M / 2 + 1) * u);
  const rows = Math.sqrt((4 * M * (D + 16) + M * M) * u);
  return 2 * (rows + 3 * similarity);
}

/** The first row whose running sum exceeds u·total (binary search; `running` is non-decreasing),
 * `lastPositive` if rounding runs past the end, the lowest non-centre row when the total is 0. */
function drawBySquares(running: Float64Array, total: number, u: number, lastPositive: number, isCentre: Uint8Array): number {
  if (!(total > 0)) return isCentre.indexOf(0);
  const target = u * total;
  let lo = 0;
  let hi = running.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (running[mid] > target) hi = mid;
    else lo = mid + 1;
  }
  return lo < running.length ? lo : lastPositive;
}

/**
 * k-means|| (Bahmani et al. 2012). Candidates C start with one uniform row; D²(i) is the squared
 * distance to the nearest candidate and owner(i) that candidate. Each of PARALLEL_ROUNDS rounds
 * draws one uniform u_i per row, in row order, and adds every row with u_i·Σ D² < ℓ·D²(i)
 * (ℓ = PARALLEL_OVERSAMPLING·k), then one assignment pass against the new rows updates D² and
 * owner (a strictly smaller distance wins; the lowest index within a batch). Rounds continue while
 * |C| < k and Σ D² > 0. Weights w_c = rows owned. Then greedy k-means++ on C: the first centre
 * drawn ∝ w, each next one the best of 2 + ⌊ln k⌋ trials drawn ∝ w·D² (the trial leaving the
 * smallest Σ w·min(D², d²), the earliest on ties). When C has no more than k rows they are all
 * centres, completed by the lowest rows not yet in C.
 */
async function parallelSeeding(run: Run, k: number, rng: Rng, phase: SelectProgress['phase'], units: number): Promise<Int32Array> {
  const N = run.rows;
  const D = run.total;
  const d2 = new Float64Array(N).fill(Infinity);
  const owner = new Int32Array(N).fill(-1);
  const candidates: number[] = [];
  const inC = new Uint8Array(N);
  const labels = new Int32Array(N);
  const dist = new Float32Array(N);
  const addBatch = async (batch: number[]) => {
    const offset = candidates.length;
    for (const i of batch) {
      candidates.push(i);
      inC[i] = 1;
    }
    await run.ctx.setCentroids(await run.ctx.gather(Int32Array.from(batch)), batch.length);
    const sums = new Float64Array(batch.length * D);
    const counts = new Float64Array(batch.length);
    await inChunks(run, N, Math.max(1, callBudget(run.backend) / (batch.length * D)), async (start, count) => {
      await run.ctx.assign(start, count, labels.subarray(start, start + count), dist.subarray(start, start + count), sums, counts);
    });
    for (let i = 0; i < N; i++) {
      const v = dist[i];
      if (v < d2[i]) {
        d2[i] = v;
        owner[i] = offset + labels[i];
      }
    }
    for (const i of batch) d2[i] = 0; // a candidate is its own nearest candidate
    for (let t = 0; t < batch.length; t++) owner[batch[t]] = offset + t;
  };
  await addBatch([rng.int(N)]);
  const ell = PARALLEL_OVERSAMPLING * k;
  for (let round = 0; round < PARALLEL_ROUNDS || candidates.length < k; round++) {
    run.checkAbort();
    let phi = 0;
    for (let i = 0; i < N; i++) phi += d2[i];
    if (!(phi > 0)) break;
    const batch: number[] = [];
    for (let i = 0; i < N; i++) if (rng.next() * phi < ell * d2[i] && !inC[i]) batch.push(i);
    if (batch.length) await addBatch(batch);
    run.report(phase, Math.min(k - 1, Math.round(((round + 1) / (PARALLEL_ROUNDS + 1)) * (k - 1))), units);
  }
  const C = candidates.length;
  if (C <= k) {
    const out = Int32Array.from(candidates);
    const all = new Int32Array(k);
    all.set(out);
    let n = C;
    for (let i = 0; n < k; i++) if (!inC[i]) all[n++] = i;
    return all;
  }
  const weight = new Float64Array(C);
  for (let i = 0; i < N; i++) weight[owner[i]]++;
  const points = await run.ctx.gather(Int32Array.from(candidates));
  const trials = 2 + Math.floor(Math.log(k));
  // Weighted draw: the first c whose running Σ mass exceeds u·total (float64, candidates in order;
  // the last with mass > 0 if rounding runs past the end); −1 when the total is 0.
  const mass = new Float64Array(C);
  const draw = (total: number, u: number): number => {
    if (!(total > 0)) return -1;
    const target = u * total;
    let acc = 0;
    let last = -1;
    for (let c = 0; c < C; c++) {
      const w = mass[c];
      if (!(w > 0)) continue;
      last = c;
      acc += w;
      if (acc > target) return c;
    }
    return last;
  };
  const fillMass = (key: (c: number) => number): number => {
    let total = 0;
    for (let c = 0; c < C; c++) total += mass[c] = weight[c] * key(c);
    return total;
  };
  const chosen = new Int32Array(k);
  const isCentre = new Uint8Array(C);
  const cd2 = new Float64Array(C).fill(Infinity);
  // d²(x, trial t) = d[at(t) + x·stride]. All candidate pairs come in one call when the C × C
  // table is small (read by rows: row c is column c), else the trials' columns per step.
  const pairs = C * C <= PARALLEL_PAIR_TABLE ? await run.backend.distances(points, points, { rowsA: C, rowsB: C, dim: D, metric: 'sqeuclidean' }) : undefined;
  const trialDistances = async (picks: number[]): Promise<{ d: Float32Array; stride: number; at: (t: number) => number }> => {
    if (pairs) return { d: pairs, stride: 1, at: (t) => picks[t] * C };
    const rowsB = new Float32Array(picks.length * D);
    picks.forEach((c, t) => rowsB.set(points.subarray(c * D, c * D + D), t * D));
    const d = await run.backend.distances(points, rowsB, { rowsA: C, rowsB: picks.length, dim: D, metric: 'sqeuclidean' });
    return { d, stride: picks.length, at: (t) => t };
  };
  const addCentre = (n: number, c: number, d: Float32Array, stride: number, at: number) => {
    chosen[n] = candidates[c];
    isCentre[c] = 1;
    for (let x = 0; x < C; x++) cd2[x] = Math.min(cd2[x], d[at + x * stride]);
    cd2[c] = 0;
  };
  const first = [draw(fillMass(() => 1), rng.next())];
  const f = await trialDistances(first);
  addCentre(0, first[0], f.d, f.stride, f.at(0));
  for (let n = 1; n < k; n++) {
    if (n % 64 === 0) {
      run.checkAbort();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    let picks: number[] = [];
    const total = fillMass((x) => (isCentre[x] ? 0 : cd2[x]));
    for (let t = 0; t < trials; t++) {
      const c = draw(total, rng.next());
      if (c >= 0) picks.push(c);
    }
    // Every remaining candidate coincides with a centre: the lowest one not yet taken.
    if (!picks.length) picks = [isCentre.indexOf(0)];
    const { d, stride, at } = await trialDistances(picks);
    let best = 0;
    let bestPot = Infinity;
    for (let t = 0; t < picks.length; t++) {
      let pot = 0;
      const o = at(t);
      for (let x = 0; x < C; x++) pot += weight[x] * Math.min(cd2[x], d[o + x * stride]);
      if (pot < bestPot) {
        bestPot = pot;
        best = t;
      }
    }
    addCentre(n, picks[best], d, stride, at(best));
  }
  run.report(phase, k - 1, units);
  return chosen;
}

/** The n rows with the largest distance to their centre (lowest index first among equals). */
function farthest(distances: Float32Array, n: number): Int32Array {
  const heap = new Heap<number>((a, b) => distances[a] < distances[b] || (distances[a] === distances[b] && a > b));
  for (let i = 0; i < distances.length; i++) {
    heap.push(i);
    if (heap.size > n) heap.pop();
  }
  const out = new Int32Array(heap.size);
  for (let j = out.length - 1; j >= 0; j--) out[j] = heap.pop()!;
  return out;
}

/** Members of every cluster, grouped: members.subarray(offsets[c], offsets[c+1]), ascending. */
export function groupMembers(labels: Int32Array, k: number): { offsets: Int32Array; members: Int32Array } {
  const offsets = new Int32Array(k + 1);
  for (const c of labels) offsets[c + 1]++;
  for (let c = 0; c < k; c++) offsets[c + 1] += offsets[c];
  const fill = offsets.slice(0, k);
  const members = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) members[fill[labels[i]]++] = i;
  return { offsets, members };
}

/**
 * Picks one candidate per cluster: repeatedly the cluster with the fewest labelled-or-picked
 * members, then the largest, then the lowest id, takes its best remaining candidate by `rank`
 * (best first). The first round is exactly "largest cluster with no labelled or selected member";
 * further rounds (our choice) only happen when such clusters run out before the budget.
 */
export async function pickPerCluster(
  run: Run,
  clustering: Clustering,
  budget: number,
  rank: (cluster: number, members: Int32Array) => Promise<Int32Array>,
): Promise<Int32Array> {
  const { k, labels } = clustering;
  const { offsets, members } = groupMembers(labels, k);
  const taken = new Int32Array(k);
  for (const l of run.labeled) taken[labels[l]]++;
  const size = (c: number) => offsets[c + 1] - offsets[c];
  const heap = new Heap<number>((a, b) => taken[a] < taken[b] || (taken[a] === taken[b] && (size(a) > size(b) || (size(a) === size(b) && a < b))));
  for (let c = 0; c < k; c++) if (size(c) > 0) heap.push(c);
  const ranked: (Int32Array | undefined)[] = new Array(k);
  const cursor = new Int32Array(k);
  const picked = new Uint8Array(run.rows);
  const out = new Int32Array(budget);
  let n = 0;
  while (n < budget && heap.size) {
    run.checkAbort();
    const c = heap.pop()!;
    ranked[c] ??= await rank(c, members.subarray(offsets[c], offsets[c + 1]));
    const order = ranked[c]!;
    while (cursor[c] < order.length && (run.labeledMask[order[cursor[c]]] || picked[order[cursor[c]]])) cursor[c]++;
    if (cursor[c] >= order.length) continue;
    const i = order[cursor[c]++];
    picked[i] = 1;
    out[n++] = i;
    taken[c]++;
    run.report('select', n, budget);
    heap.push(c);
  }
  return out.subarray(0, n);
}

/** Gap (relative, plus the same absolute) below which two float32 keys count as tied, their order
 * then being by index: exact ties are common here (the two members of a 2-row cluster are equally
 * far from its mean) and rounding — ‖u−c‖² = M − 2⟨u,c⟩ + ‖c‖² loses ~1e-6 absolute — must not
 * decide them. */
export const TIE_TOLERANCE = 1e-5;

/**
 * Rows ordered by ascending key, lowest index first among (near-)ties: after sorting by key, each
 * run of consecutive keys within TIE_TOLERANCE of each other is reordered by index.
 */
export function rankAscending(rows: ArrayLike<number>, key: (row: number) => number): Int32Array {
  const out = Int32Array.from(rows).sort((a, b) => key(a) - key(b) || a - b);
  for (let lo = 0; lo < out.length; ) {
    let hi = lo + 1;
    while (hi < out.length && key(out[hi]) - key(out[hi - 1]) <= TIE_TOLERANCE * (1 + Math.abs(key(out[hi - 1])))) hi++;
    if (hi - lo > 1) out.subarray(lo, hi).sort();
    lo = hi;
  }
  return out;
}

/** Members ordered by their distance to the centre (lowest index among near-equals). */
export function byDistance(distances: Float32Array): (c: number, members: Int32Array) => Promise<Int32Array> {
  return async (_c, members) => rankAscending(members, (i) => distances[i]);
}

export async function kmeans(run: Run, budget: number, options: ClusterOptions = {}): Promise<{ indices: Int32Array; clustering: Clustering }> {
  const clustering = await cluster(run, run.labeled.length + budget, run.seed, 'kmeans', options);
  const indices = await pickPerCluster(run, clustering, budget, byDistance(clustering.distances));
  return { indices, clustering };
}

export const kmeansStrategy = defineStrategy({
  name: 'kmeans',
  kind: 'cold',
  doc: 'k-means with |labelled| + B clusters; from each of the largest clusters without a labelled or picked row, the row nearest its centre',
  options: {
    seeding: option(oneOf(KMEANS_SEEDINGS), {
      default: DEFAULT_KMEANS_SEEDING,
      value: KMEANS_SEEDINGS.join('|'),
      doc: "greedy k-means++ (2 + ⌊ln k⌋ D² draws per centre, keeping the one that lowers the potential most; TypiClust, ProbCover's radius and MMCSAL's clusters always seed this way), k-means++ (one draw per centre), or k-means|| (a few blocked passes, then greedy k-means++ on the sampled rows)",
    }),
    iterations: option(integer({ min: 1, max: KMEANS_MAX_ITERATIONS }), {
      default: KMEANS_MAX_ITERATIONS,
      value: 'N',
      doc: `Lloyd iterations at most (stops earlier when no label changes; ≤ ${KMEANS_MAX_ITERATIONS})`,
    }),
  },
  weights: { kmeans: 8, select: 1 },
  async run(run, budget, params) {
    const out = await kmeans(run, budget, { seeding: params.seeding, iterations: params.iterations });
    let objective = 0;
    for (const d of out.clustering.distances) objective += d;
    return { indices: out.indices, params: { iterations: out.clustering.iterations, objective } };
  },
});
