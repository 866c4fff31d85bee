"""Facility location as apricot (jmschrei/apricot at 962f597) runs it on a precomputed table.

apricot is not packaged for Debian, so this is a line-for-line numpy/numba transcription of the
parts it executes for FacilityLocationSelection(k, metric='precomputed', optimizer='lazy' |
'stochastic'): the numba gain kernel `calculate_gains` (numpy.maximum(X[idx], current).sum(),
parallel=False for lazy, True otherwise, fastmath=True), the LazyGreedy loop (a priority queue
of stale gains, one re-evaluation per pop, select when the popped row is the last evaluated best)
and the StochasticGreedy loop (random_state.choice without replacement of -ln(ε)·n/k remaining
rows per step, lexsort by gain then index). The table is what apricot is handed:
sim = (1 + cos) / 2 in float64, computed here from the rows (the 'distances' time).

usage: apricot_facility.py X.npy k lazy|stochastic [epsilon] [seed] -> one JSON line
"""
import heapq
import json
import sys
import time

import numpy

try:
    from numba import njit, prange
except ImportError:  # plain numpy: the same arithmetic, slower
    njit = None


def calculate_gains(parallel):
    def calculate_gains_(X, gains, current_values, idxs):
        for i in prange(idxs.shape[0]):
            idx = idxs[i]
            gains[i] = numpy.maximum(X[idx], current_values).sum()

    if njit is None:
        def plain(X, gains, current_values, idxs):
            gains[:] = numpy.maximum(X[idxs], current_values).sum(axis=1)
        return plain
    return njit('void(float64[:,:], float64[:], float64[:], int64[:])', parallel=parallel, fastmath=True, cache=False)(calculate_gains_)


class Facility:
    def __init__(self, X, parallel):
        self.X = X
        self.current_values = numpy.zeros(X.shape[0], dtype='float64')
        self.current_values_sum = 0.0
        self.mask = numpy.zeros(X.shape[0], dtype='int8')
        self.idxs = numpy.arange(X.shape[0])
        self.ranking = []
        self.gains = []
        self.kernel = calculate_gains(parallel)

    def _calculate_gains(self, idxs=None):
        idxs = idxs if idxs is not None else self.idxs
        gains = numpy.zeros(idxs.shape[0], dtype='float64')
        self.kernel(self.X, gains, self.current_values, idxs)
        gains -= self.current_values_sum
        return gains

    def _select_next(self, row, gain, idx):
        self.current_values = numpy.maximum(row, self.current_values)
        self.current_values_sum = self.current_values.sum()
        self.ranking.append(int(idx))
        self.gains.append(float(gain))
        self.mask[idx] = 1
        self.idxs = numpy.where(self.mask == 0)[0]


class PriorityQueue:  # apricot.utils.PriorityQueue: heapq with lazy deletion
    def __init__(self, items, weights):
        self.pq = []
        self.lookup = {}
        for item, weight in zip(items, weights):
            entry = [weight, item]
            self.lookup[item] = entry
            self.pq.append(entry)
        heapq.heapify(self.pq)

    def add(self, item, weight):
        entry = [weight, item]
        self.lookup[item] = entry
        heapq.heappush(self.pq, entry)

    def pop(self):
        while self.pq:
            weight, item = heapq.heappop(self.pq)
            if item != -1:
                del self.lookup[item]
                return weight, item


def lazy(f, k):
    gains = f._calculate_gains()
    pq = PriorityQueue(f.idxs, -gains)
    for _ in range(k):
        best_gain, best_idx = float('-inf'), None
        while True:
            if len(pq.pq) == 0:
                return
            prev_gain, idx = pq.pop()
            if best_idx == idx:
                break
            gain = f._calculate_gains(numpy.array([idx]))[0]
            pq.add(idx, -gain)
            if gain > best_gain:
                best_gain, best_idx = gain, idx
            elif gain == best_gain and best_gain == 0.0:
                best_gain, best_idx = gain, idx
                break
        f._select_next(f.X[best_idx], best_gain, best_idx)


def stochastic(f, k, epsilon, random_state):
    n = f.X.shape[0]
    subset_size = max(int(-numpy.log(epsilon) * n / k), 1)
    for _ in range(k):
        idxs = random_state.choice(f.idxs, replace=False, size=min(subset_size, f.idxs.shape[0]))
        gains = f._calculate_gains(idxs)
        order = numpy.lexsort((numpy.arange(gains.shape[0]), -gains))
        idx = order[0]
        f._select_next(f.X[idxs[idx]], gains[idx], idxs[idx])


def main():
    path, k, optimizer = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    epsilon = float(sys.argv[4]) if len(sys.argv) > 4 else 0.01
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    X = numpy.load(path).astype('float32')
    t0 = time.perf_counter()
    Xn = X / numpy.maximum(numpy.linalg.norm(X, axis=1, keepdims=True), 1e-30)
    S = Xn @ Xn.T
    S = ((1.0 + S.astype('float64')) / 2.0)
    numpy.fill_diagonal(S, 1.0)
    t1 = time.perf_counter()
    f = Facility(S, parallel=optimizer != 'lazy')
    # Compile outside the timing, as apricot's benchmarks warm numba up.
    f._calculate_gains(numpy.array([0]))
    t2 = time.perf_counter()
    if optimizer == 'lazy':
        lazy(f, k)
    else:
        stochastic(f, k, epsilon, numpy.random.RandomState(seed))
    t3 = time.perf_counter()
    print(json.dumps({'distances_s': t1 - t0, 'greedy_s': t3 - t2, 'seconds': (t1 - t0) + (t3 - t2), 'picks': f.ranking,
                      'objective': float(f.current_values.sum()), 'numba': njit is not None, 'peak_bytes': int(S.nbytes + X.nbytes * 2)}))


if __name__ == '__main__':
    main()
