"""F(S) = Σ_i max_{s ∈ S} (1 + cos(x_i, x_s)) / 2 in float64 for picks given as a JSON list.

usage: facility_objective.py X.npy picks.json -> one JSON line {objective}
"""
import json
import sys

import numpy

X = numpy.load(sys.argv[1]).astype('float64')
picks = json.load(open(sys.argv[2]))
Xn = X / numpy.maximum(numpy.linalg.norm(X, axis=1, keepdims=True), 1e-300)
best = numpy.zeros(X.shape[0])
for s in range(0, len(picks), 256):
    sim = (1.0 + Xn @ Xn[picks[s:s + 256]].T) / 2.0
    best = numpy.maximum(best, sim.max(axis=1))
print(json.dumps({'objective': float(best.sum())}))
