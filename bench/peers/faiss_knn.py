"""The faiss peer of pairpick's exact kNN, for bench/peers.mjs: IndexFlatL2 over the reference rows,
searched with every query row (squared Euclidean, exact, the way faiss users write it).

usage: faiss_knn.py Q.npy R.npy K -> one JSON line (seconds of add + search, indices of the first rows)
"""
import json
import sys
import time

import faiss
import numpy

qpath, rpath, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
Q = numpy.ascontiguousarray(numpy.load(qpath), dtype='float32')
R = numpy.ascontiguousarray(numpy.load(rpath), dtype='float32')
t0 = time.perf_counter()
index = faiss.IndexFlatL2(R.shape[1])
index.add(R)
_, I = index.search(Q, k)
seconds = time.perf_counter() - t0
print(json.dumps({'seconds': seconds, 'indices': I[:200].reshape(-1).tolist(), 'threads': faiss.omp_get_max_threads()}))
