// k-center greedy (Coreset, spec §3.2) on the concatenated normalised rows u, Euclidean metric:
// the first pick is the row nearest the pool mean (when nothing is labelled), then repeatedly the
// row farthest from everything picked or labelled. The loop runs on the backend (fused distance →
// min update → argmax, pruned by the triangle inequality).
import { addCenters, greedyPicks, inChunks, callBudget, EUCLIDEAN, type Run } from './common.js';
import { defineStrategy } from './strategy.js';

/** The candidate nearest to the pool mean of u (lowest index on ties), by ‖u_i − μ‖². */
export async function nearestToMean(run: Run): Promise<number> {
  const mean = new Float32Array(run.total);
  for (let t = 0; t < run.total; t++) mean[t] = run.sums[t] / run.rows;
  await run.ctx.setCentroids(mean, 1);
  const labels = new Int32Array(run.rows).fill(-1);
  const dist = new Float32Array(run.rows);
  const sums = new Float64Array(run.total);
  const counts = new Float64Array(1);
  await inChunks(run, run.rows, Math.max(1, callBudget(run.backend) / run.total), async (start, count) => {
    await run.ctx.assign(start, count, labels.subarray(start, start + count), dist.subarray(start, start + count), sums, counts);
  });
  let best = -1;
  for (let i = 0; i < run.rows; i++) {
    if (run.labeledMask[i]) continue;
    if (best < 0 || dist[i] < dist[best]) best = i;
  }
  return best;
}

export async function kcenter(run: Run, budget: number): Promise<{ indices: Int32Array; diversity: Float32Array }> {
  await run.ctx.greedyInit({ metric: EUCLIDEAN, wDiversity: 1, exclude: run.labeledMask, mode: 'argmax' });
  const indices = new Int32Array(budget);
  const diversity = new Float32Array(budget);
  let made = 0;
  if (run.labeled.length) {
    await addCenters(run, run.labeled, EUCLIDEAN);
  } else {
    const first = await nearestToMean(run);
    await run.ctx.greedyAddCenters(Int32Array.of(first));
    indices[0] = first;
    diversity[0] = Infinity;
    made = 1;
  }
  const r = await greedyPicks(run, budget - made, EUCLIDEAN, { reportTotal: budget, reportOffset: made });
  indices.set(r.picks, made);
  diversity.set(r.diversity, made);
  made += r.picks.length;
  return { indices: indices.slice(0, made), diversity: diversity.slice(0, made) };
}

export const kcenterStrategy = defineStrategy({
  name: 'kcenter',
  kind: 'cold',
  doc: 'k-center greedy (Coreset): the row nearest the pool mean, then repeatedly the row farthest from every pick and labelled row',
  options: {},
  weights: { select: 6 },
  async run(run, budget) {
    const out = await kcenter(run, budget);
    return { indices: out.indices, components: { diversity: out.diversity } };
  },
});
