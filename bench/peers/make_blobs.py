"""Writes scikit-learn make_blobs data as float32 .npy (the peers' workloads read the same file).

usage: make_blobs.py OUT.npy ROWS DIM CENTERS SEED
"""
import sys

import numpy
from sklearn.datasets import make_blobs

out, rows, dim, centers, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
X, _ = make_blobs(n_samples=rows, n_features=dim, centers=centers, random_state=seed)
numpy.save(out, X.astype(numpy.float32))
