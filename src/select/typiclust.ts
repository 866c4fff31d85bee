// TypiClust (spec §3.4): k-means with |L| + B clusters, then from each of the largest clusters
// without a labelled or selected member, its most typical sample: typicality = 1 / mean Euclidean
// distance to its min(20, |cluster| − 1) nearest neighbours inside the cluster.
import { EUCLIDEAN, reduceAll, type Run } from './common.js';
import { cluster, pickPerCluster, rankAscending, type Clustering } from './kmeans.js';
import { defineStrategy } from './strategy.js';

/** Neighbours of the typicality estimate (spec §3.4). */
export const TYPICALITY_NEIGHBOURS = 20;

export async function typiclust(run: Run, budget: number): Promise<{ indices: Int32Array; clustering: Clustering }> {
  const clustering = await cluster(run, run.labeled.length + budget, run.seed);
  const indices = await pickPerCluster(run, clustering, budget, async (_c, members) => {
    const ordered = Int32Array.from(members);
    if (members.length < 2) return ordered;
    const k = Math.min(TYPICALITY_NEIGHBOURS, members.length - 1);
    // Members are ascending, so refs = members visits them in index order.
    const mean = await reduceAll(run, ordered, ordered, EUCLIDEAN, { kind: 'knnMean', k });
    const pos = new Map<number, number>();
    ordered.forEach((i, j) => pos.set(i, j));
    // Most typical first: smallest mean distance (typicality 1/mean is largest), lowest index on ties.
    return rankAscending(ordered, (i) => mean[pos.get(i)!]);
  });
  return { indices, clustering };
}

export const typiclustStrategy = defineStrategy({
  name: 'typiclust',
  kind: 'cold',
  doc: `TypiClust: k-means as kmeans, but from each cluster its most typical row (densest among its ${TYPICALITY_NEIGHBOURS} nearest cluster members)`,
  options: {},
  weights: { kmeans: 8, select: 3 },
  async run(run, budget) {
    const out = await typiclust(run, budget);
    return { indices: out.indices, params: { iterations: out.clustering.iterations } };
  },
});
