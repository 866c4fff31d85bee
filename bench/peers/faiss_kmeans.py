"""faiss k-means (random init, as faiss.Kmeans does) on the normalised rows, for bench/peers.mjs.

The rows are L2-normalised first, as pairpick clusters the unit rows u. max_points_per_centroid is
raised so faiss trains on every row (its default subsamples 256 per centroid), and the reported
objective is Σ‖u − c_nearest‖² over every row, recomputed here in float64 from faiss's centres.

usage: faiss_kmeans.py X.npy K ITERATIONS SEED -> one JSON line
"""
import json
import sys
import time

import faiss
import numpy

path, k, iterations, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
X = numpy.load(path).astype('float32')
X /= numpy.maximum(numpy.linalg.norm(X, axis=1, keepdims=True), 1e-30)
t0 = time.perf_counter()
km = faiss.Kmeans(X.shape[1], k, niter=iterations, seed=seed, max_points_per_centroid=X.shape[0], verbose=False)
km.train(X)
seconds = time.perf_counter() - t0
D, _ = km.index.search(X, 1)
print(json.dumps({'seconds': seconds, 'objective': float(D.astype('float64').sum()), 'iterations': iterations, 'threads': faiss.omp_get_max_threads()}))
