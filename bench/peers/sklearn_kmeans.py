"""scikit-learn KMeans (greedy k-means++, n_init=1, Lloyd) on pairpick's rows u, for bench/kmeans-sklearn.mjs.

The rows come already as pairpick clusters them (each modality L2-normalised, concatenated), as raw
little-endian float32. Lloyd runs at most ITERATIONS iterations with tol=0, so, like pairpick, it
stops when no label changes. The objective Σ‖u − c_nearest‖² is recomputed in float64 from the
final centres.

usage: sklearn_kmeans.py U.f32 ROWS DIM ITERATIONS K[,K…] SEED[,SEED…] -> one JSON line
  {"runs": [{"k": K, "seed": SEED, "objective": …, "iterations": …}, …]}
"""
import json
import sys

import numpy
from sklearn.cluster import KMeans

path, rows, dim, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ks = [int(v) for v in sys.argv[5].split(',')]
seeds = [int(v) for v in sys.argv[6].split(',')]
X = numpy.fromfile(path, dtype='<f4').reshape(rows, dim).astype('float64')
runs = []
for k in ks:
    for seed in seeds:
        km = KMeans(n_clusters=k, init='k-means++', n_init=1, max_iter=iterations, tol=0, random_state=seed, algorithm='lloyd').fit(X)
        d = ((X[:, None, :] - km.cluster_centers_[None, :, :]) ** 2).sum(-1).min(1) if rows * k * dim <= 5e7 else None
        if d is None:
            d = numpy.empty(rows)
            for s in range(0, rows, 256):
                d[s:s + 256] = ((X[s:s + 256, None, :] - km.cluster_centers_[None, :, :]) ** 2).sum(-1).min(1)
        runs.append({'k': k, 'seed': seed, 'objective': float(d.sum()), 'iterations': int(km.n_iter_)})
print(json.dumps({'runs': runs}))
