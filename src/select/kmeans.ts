// k-means (spec §3.3): Lloyd's algorithm on u with k-means++ seeding, and the selection of each
// cluster's sample nearest its centre, largest clusters first. The clustering is shared with
// TypiClust (§3.4) and ProbCover's automatic radius (§3.5).
import { PairpickError } from '../errors.js';
import { Rng } from '../util/rng.js';
import { callBudget, EUCLIDEAN, greedyPicks, Heap, inChunks, type Run, type SelectProgress } from './common.js';
import { defineStrategy } from './strategy.js';

/** Lloyd iterations at most (spec §3.3). */
export const KMEANS_MAX_ITERATIONS = 100;

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
 * k-means++ seeding (first centre uniform, then ∝ D², seeded), then Lloyd until no label changes
 * or KMEANS_MAX_ITERATIONS; an empty cluster is re-seeded with the row farthest from its centre.
 */
export async function cluster(run: Run, k: number, seed: number, phase: SelectProgress['phase'] = 'kmeans'): Promise<Clustering> {
  const N = run.rows;
  const D = run.total;
  if (k < 1 || k > N) throw new PairpickError('E_INTERNAL', `k-means: k = ${k} for ${N} rows`);
  const rng = new Rng(seed);
  const units = k - 1 + KMEANS_MAX_ITERATIONS;

  // k-means++ seeding on the backend's greedy loop (sampleSquared mode).
  const first = rng.int(N);
  await run.ctx.greedyInit({ metric: EUCLIDEAN, wDiversity: 1, exclude: new Uint8Array(N), mode: 'sampleSquared' });
  await run.ctx.greedyAddCenters(Int32Array.of(first));
  const uniforms = new Float64Array(k - 1);
  for (let t = 0; t < k - 1; t++) uniforms[t] = rng.next();
  const seeded = await greedyPicks(run, k - 1, EUCLIDEAN, { uniforms, phase, reportTotal: units });
  const centres = new Int32Array(k);
  centres[0] = first;
  centres.set(seeded.picks, 1);
  if (seeded.picks.length < k - 1) throw new PairpickError('E_INTERNAL', 'k-means++ seeding ran out of rows');
  let centroids = await run.ctx.gather(centres);

  const labels = new Int32Array(N).fill(-1);
  const distances = new Float32Array(N);
  const sizes = new Int32Array(k);
  let iterations = 0;
  let converged = false;
  for (; iterations < KMEANS_MAX_ITERATIONS; ) {
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
    if (iterations === KMEANS_MAX_ITERATIONS) break;
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

export async function kmeans(run: Run, budget: number): Promise<{ indices: Int32Array; clustering: Clustering }> {
  const clustering = await cluster(run, run.labeled.length + budget, run.seed);
  const indices = await pickPerCluster(run, clustering, budget, byDistance(clustering.distances));
  return { indices, clustering };
}

export const kmeansStrategy = defineStrategy({
  name: 'kmeans',
  kind: 'cold',
  doc: 'k-means with |labelled| + B clusters; from each of the largest clusters without a labelled or picked row, the row nearest its centre',
  options: {},
  weights: { kmeans: 8, select: 1 },
  async run(run, budget) {
    const out = await kmeans(run, budget);
    return { indices: out.indices, params: { iterations: out.clustering.iterations } };
  },
});
