"""scikit-learn KMeans (greedy k-means++ seeding, n_init=1, Lloyd) on the normalised rows, timed, for
bench/peers.mjs: the same algorithm as pairpick's default seeding (2 + ⌊ln K⌋ candidates per centre).

The rows are L2-normalised first, as pairpick clusters the unit rows u, and kept in float32 (as
pairpick computes). Lloyd runs at most ITERATIONS iterations with tol=0, so, like pairpick, it stops
when no label changes. The objective Σ‖u − c_nearest‖² is recomputed in float64 from the centres.

usage: sklearn_kmeans_timed.py X.npy K ITERATIONS SEED -> one JSON line
"""
import json
import sys
import time

import numpy
from sklearn.cluster import KMeans

path, k, iterations, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
X = numpy.load(path).astype('float32')
X /= numpy.maximum(numpy.linalg.norm(X, axis=1, keepdims=True), 1e-30)
t0 = time.perf_counter()
km = KMeans(n_clusters=k, init='k-means++', n_init=1, max_iter=iterations, tol=0, random_state=seed, algorithm='lloyd').fit(X)
seconds = time.perf_counter() - t0
C = km.cluster_centers_.astype('float64')
objective = 0.0
for s in range(0, len(X), 1024):
    x = X[s:s + 1024].astype('float64')
    objective += float((((x * x).sum(1)[:, None] - 2 * x @ C.T + (C * C).sum(1)[None]).min(1)).sum())
print(json.dumps({'seconds': seconds, 'objective': objective, 'iterations': int(km.n_iter_)}))
