#!/usr/bin/env python3
"""Screening prototype for MMCSAL stage-2 variants (numpy), on the stage-1 embeddings cached by
bench/mmcsal-embed-cache.mjs (validation pools of the TRAIN splits; test splits never touched).
Every variant is a lazy-greedy facility location (coverage) with a choice of candidates (alignment
filter), ground rows, kernel, and extra static terms; scored by the same ridge probe as
bench/mmcsal-search.mjs (kernel ridge, lambda 1, standardised raw features, mean over B).
Only for screening: the winner is implemented in the engine and confirmed by mmcsal-search.mjs.
  python3 bench/mmcsal_proto.py [--seeds 0,1,2,3,4] [--sets ...] [--variants name,...]
"""
import argparse
import heapq
import json
import os
import time

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument('--cache', default='bench/cache')
ap.add_argument('--seeds', default='0,1,2,3,4')
ap.add_argument('--sets', default='av-digits-m0,av-digits-m20,clipart-it-m0,clipart-it-m20')
ap.add_argument('--variants', default='')
ap.add_argument('--out', default='')
args = ap.parse_args()
BUDGETS = [10, 20, 50, 100]


def load(path):
    return np.load(path)


def probe_acc(feat, labels, classes, train, ev):
    X = feat[train].astype(np.float64)
    mu = X.mean(0)
    X = X - mu
    b = len(train)
    K = X @ X.T + np.eye(b)
    prior = np.bincount(labels[train], minlength=classes) / b
    Y = np.eye(classes)[labels[train]] - prior
    alpha = np.linalg.solve(K, Y)
    W = X.T @ alpha
    S = prior + (feat[ev] - mu) @ W
    return float((S.argmax(1) == labels[ev]).mean())


def lazy_facility(sim, cands, budget, ground=None, bonus=None, noself=False, weights=None):
    """Greedy max of sum_{j in ground} w_j max_s sim(j, s) (+ sum of modular bonus) over cands; exact lazy.
    sim may be a list of similarity matrices: the objective is then the sum of their facility terms
    (each keeps its own cover), i.e. the matrices side by side over a repeated ground set.
    noself: a candidate's gain leaves out its own ground term (no head start for ground rows)."""
    if isinstance(sim, list):
        n = sim[0].shape[0]
        G0 = np.arange(n) if ground is None else ground
        sim = np.concatenate([m[:, G0] for m in sim], axis=1)
        if weights is not None:
            weights = np.tile(weights, len(sim[0]) // len(G0))
        ground = None
    G = np.arange(sim.shape[1]) if ground is None else ground
    S = sim[:, G].copy()
    if weights is not None:
        S *= weights[None, :]
    cover = np.zeros(len(G), dtype=np.float64)
    if noself:
        pos = {int(g): t for t, g in enumerate(G)}
        Sg = S.copy()
        for g, t in pos.items():
            Sg[g, t] = 0
    else:
        Sg = S
    g0 = np.maximum(Sg[cands], 0).sum(1)
    if bonus is not None:
        g0 = g0 + bonus[cands]
    heap = [(-g, i, 0) for g, i in zip(g0, cands)]
    heapq.heapify(heap)
    picks = []
    while len(picks) < budget:
        ng, i, stamp = heapq.heappop(heap)
        if stamp == len(picks):
            picks.append(i)
            cover = np.maximum(cover, S[i])
            continue
        g = np.maximum(Sg[i] - cover, 0).sum() + (bonus[i] if bonus is not None else 0)
        heapq.heappush(heap, (-g, i, len(picks)))
    return picks


def kmeans_pp(x, k, rng, iters=30):
    n = len(x)
    c = [rng.integers(n)]
    d2 = ((x - x[c[0]]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum()
        c.append(rng.choice(n, p=p))
        d2 = np.minimum(d2, ((x - x[c[-1]]) ** 2).sum(1))
    C = x[c].copy()
    for _ in range(iters):
        D = (x ** 2).sum(1)[:, None] - 2 * x @ C.T + (C ** 2).sum(1)[None]
        a = D.argmin(1)
        for j in range(k):
            m = a == j
            if m.any():
                C[j] = x[m].mean(0)
    return a


def kernel_of(kernel, cos):
    if kernel == 'lin':
        return (1 + cos) / 2
    if kernel.startswith('pow'):
        return ((1 + cos) / 2) ** float(kernel[3:])
    if kernel.startswith('exp'):
        return np.exp((cos - 1) / float(kernel[3:]))
    if kernel.startswith('relu'):
        return np.maximum(cos - float(kernel[4:]), 0)
    raise ValueError(kernel)


def run_variant(v, ctx):
    n = ctx['n']
    a = ctx['cross'] if v.get('cross') else ctx['align']
    order = np.argsort(a, kind='stable')
    q = v.get('q', 0.1)
    cut = int(np.floor(q * n))
    keep = np.ones(n, bool)
    keep[order[:cut]] = False
    if v.get('oracle'):
        # upper bound only: the truly mismatched pairs are never picked (needs ground truth)
        keep = ctx['mismatched'] == 0
    cands = np.nonzero(keep)[0]
    kernel = v.get('kernel', 'lin')
    cos = ctx['cos']
    space = v.get('space', 'u')
    if space == 'd':
        # coverage on the multimodal distance d of spec section 2 (uni-modal + gamma cross-modal
        # Euclidean distances of unit vectors), as the linear similarity 1 - d / max d
        z = ctx['z']
        e = lambda A, B: np.sqrt(np.maximum(0, 2 - 2 * (A @ B.T)))
        g = v.get('gamma', 1.0)
        d = e(z[:, 0], z[:, 0]) + e(z[:, 1], z[:, 1])
        if g:
            d += g * (e(z[:, 0], z[:, 1]) + e(z[:, 1], z[:, 0]))
        cos = 1 - d / (2 * (1 + g))  # in [-1, 1], 1 at d = 0: the kernels below apply unchanged
    elif space == 'dcos':
        # the same with cosines in place of distances: a linear kernel on a transformed concatenation
        z = ctx['z']
        g = v.get('gamma', 1.0)
        c = z[:, 0] @ z[:, 0].T + z[:, 1] @ z[:, 1].T + g * (z[:, 0] @ z[:, 1].T + z[:, 1] @ z[:, 0].T)
        cos = c / (2 * (1 + g))
    sim = kernel_of(kernel, cos)
    if space == 'cat':
        # one space: the stage-1 embedding and the input features concatenated (each half unit norm)
        r = ctx['rawu']
        w = v.get('rawWeight', 0.5)
        cos = (1 - w) * cos + w * (r @ r.T)
        sim = kernel_of(kernel, cos)
    if space in ('raw', 'u+raw'):
        # the input features (standardised, each modality L2-normalised, concatenated)
        r = ctx['rawu']
        rs = (1 + r @ r.T) / 2
        sim = rs if space == 'raw' else [sim, rs]
    if space in ('permod', 'u+permod'):
        z = ctx['z']
        sims = [(1 + z[:, m] @ z[:, m].T) / 2 for m in range(z.shape[1])]
        if space == 'u+permod':
            sims = [sim] + sims
        sim = sims
    weights = None
    if v.get('groundWeight'):
        # ground rows weighted by typicality (inverse mean cosine distance to the 10 nearest rows)
        dist = 1 - ctx['cos']
        np.fill_diagonal(dist, np.inf)
        rho = 1 / np.maximum(np.partition(dist, 10, axis=1)[:, :10].mean(1), 1e-12)
        weights = (rho / rho.mean()) ** v['groundWeight']
    ground = None
    if v.get('groundFilter'):
        gq = v.get('groundQ', q)
        gk = np.ones(n, bool)
        gk[order[: int(np.floor(gq * n))]] = False
        ground = np.nonzero(gk)[0]
    if v.get('ground'):
        rng = np.random.default_rng(1000 + ctx['seed'])
        ground = np.sort(rng.permutation(n)[: v['ground']])
    bonus = None
    if v.get('wAlign'):
        ah = (a - a.min()) / (a.max() - a.min())
        gsize = n if ground is None else len(ground)
        bonus = v['wAlign'] * ah * gsize / 100.0
    if v.get('wDensity'):
        # typicality: 1 / mean cosine distance to the 10 nearest rows (u space), min-max normalised
        dist = 1 - cos
        np.fill_diagonal(dist, np.inf)
        knn = np.partition(dist, 10, axis=1)[:, :10].mean(1)
        rho = 1 / np.maximum(knn, 1e-12)
        rh = (rho - rho.min()) / (rho.max() - rho.min())
        gsize = n if ground is None else len(ground)
        bonus = (bonus if bonus is not None else 0) + v['wDensity'] * rh * gsize / 100.0
    if v.get('clusters'):
        out = {}
        for B in BUDGETS:
            lab = kmeans_pp(ctx['u'], B, np.random.default_rng(ctx['seed']))
            picks = []
            sizes = np.bincount(lab, minlength=B)
            for c in np.argsort(-sizes, kind='stable'):
                mem = np.nonzero((lab == c) & keep)[0]
                if len(mem) == 0:
                    continue
                # argmax of within-cluster coverage (the cluster's facility-location medoid)
                sub = sim[np.ix_(mem, mem)].sum(1)
                picks.append(mem[sub.argmax()])
            out[B] = picks[:B]
        return out
    picks = lazy_facility(sim, cands, max(BUDGETS), ground, bonus, v.get('noself', False), weights)
    return {B: picks[:B] for B in BUDGETS}


VARIANTS = {
    'facility': dict(q=0.0),
    'cov q0.1': dict(q=0.1),
    'cov q0.2': dict(q=0.2),
    'cov q0.1 gf': dict(q=0.1, groundFilter=True),
    'cov q0.2 gf': dict(q=0.2, groundFilter=True),
    'cov q0.1 pow2': dict(q=0.1, kernel='pow2'),
    'cov q0.1 pow4': dict(q=0.1, kernel='pow4'),
    'cov q0.1 pow8': dict(q=0.1, kernel='pow8'),
    'cov q0.1 exp0.5': dict(q=0.1, kernel='exp0.5'),
    'cov q0.1 exp0.2': dict(q=0.1, kernel='exp0.2'),
    'cov q0.1 relu0': dict(q=0.1, kernel='relu0'),
    'cov q0.1 relu0.3': dict(q=0.1, kernel='relu0.3'),
    'cov q0.1 g1000': dict(q=0.1, ground=1000),
    'cov q0.1 g2000': dict(q=0.1, ground=2000),
    'cov q0.1 g500': dict(q=0.1, ground=500),
    'cov q0.1 g500 noself': dict(q=0.1, ground=500, noself=True),
    'cov q0.1 g1000 noself': dict(q=0.1, ground=1000, noself=True),
    'cov q0.1 g2000 noself': dict(q=0.1, ground=2000, noself=True),
    'cov q0.1 noself': dict(q=0.1, noself=True),
    'clusters medoid q0.1': dict(q=0.1, clusters=True),
    'cov q0.1 dens1': dict(q=0.1, wDensity=1),
    'cov q0.05 cross': dict(q=0.05, cross=True),
    'cov q0.1 cross': dict(q=0.1, cross=True),
    'cov q0.2 cross': dict(q=0.2, cross=True),
    'cov q0.1 cross gf': dict(q=0.1, cross=True, groundFilter=True),
    'cov q0.1 dens5': dict(q=0.1, wDensity=5),
    'oracle': dict(oracle=True),
    'raw': dict(q=0.0, space='raw'),
    'u+raw': dict(q=0.0, space='u+raw'),
    'cat': dict(q=0.0, space='cat'),
    'cat q0.1': dict(q=0.1, space='cat'),
    'cat w0.3': dict(q=0.0, space='cat', rawWeight=0.3),
    'cat q0.1 w0.7': dict(q=0.1, space='cat', rawWeight=0.7),
    'cat q0.1 w0.6': dict(q=0.1, space='cat', rawWeight=0.6),
    'cat q0.1 w0.4': dict(q=0.1, space='cat', rawWeight=0.4),
    'cat q0.2': dict(q=0.2, space='cat'),
    'cat q0.1 pow2': dict(q=0.1, space='cat', kernel='pow2'),
    'cat q0.1 pow4': dict(q=0.1, space='cat', kernel='pow4'),
    'cat q0.05': dict(q=0.05, space='cat'),
    'u+raw q0.1': dict(q=0.1, space='u+raw'),
    'permod': dict(q=0.0, space='permod'),
    'permod q0.1': dict(q=0.1, space='permod'),
    'permod q0.2': dict(q=0.2, space='permod'),
    'permod q0.05': dict(q=0.05, space='permod'),
    'u+permod q0.1': dict(q=0.1, space='u+permod'),
    'd g1 q0.1': dict(q=0.1, space='d', gamma=1.0),
    'd g0 q0.1': dict(q=0.1, space='d', gamma=0.0),
    'd g0.5 q0.1': dict(q=0.1, space='d', gamma=0.5),
    'dcos g1 q0.1': dict(q=0.1, space='dcos', gamma=1.0),
    'dcos g0.5 q0.1': dict(q=0.1, space='dcos', gamma=0.5),
    'cov q0.1 gw0.5': dict(q=0.1, groundWeight=0.5),
    'cov q0.1 gw1': dict(q=0.1, groundWeight=1.0),
    'cov q0.1 gw2': dict(q=0.1, groundWeight=2.0),
}
names = [s for s in args.variants.split(',') if s] or list(VARIANTS)
seeds = [int(s) for s in args.seeds.split(',')]
sets = args.sets.split(',')
acc = {nm: {s: {B: [] for B in BUDGETS} for s in sets} for nm in names}
mis = {nm: {s: [] for s in sets} for nm in names}
t0 = time.time()
for st in sets:
    base = os.path.join(args.cache, st)
    raw = load(base + '-raw.npy').astype(np.float64)
    feat = (raw - raw.mean(0)) / np.where(raw.std(0) > 0, raw.std(0), np.inf)
    labels = load(base + '-labels.npy').astype(np.int64)
    mismatched = load(base + '-mismatched.npy')
    classes = labels.max() + 1
    dims = json.load(open(base + '-dims.json'))
    parts, o = [], 0
    for dm in dims:
        x = feat[:, o:o + dm]
        parts.append(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) / np.sqrt(len(dims)))
        o += dm
    rawu = np.concatenate(parts, axis=1)
    for seed in seeds:
        emb = load(f'{base}-b1-s{seed}-emb.npy').astype(np.float64)
        z = emb / np.linalg.norm(emb, axis=2, keepdims=True)
        M = z.shape[1]
        u = z.reshape(len(z), -1) / np.sqrt(M)
        cos = u @ u.T
        align = (z[:, 0] * z[:, 1]).sum(1)
        pool = load(f'{base}-s{seed}-pool.npy')
        ev = load(f'{base}-s{seed}-eval.npy')
        # Cross-modal neighbourhood consistency: how similar a row's modality-2 embedding is to
        # those of its modality-1 neighbours (k = 10), and the converse.
        A1 = z[:, 0] @ z[:, 0].T
        A2 = z[:, 1] @ z[:, 1].T
        np.fill_diagonal(A1, -9)
        np.fill_diagonal(A2, -9)
        n1 = np.argpartition(-A1, 10, 1)[:, :10]
        n2 = np.argpartition(-A2, 10, 1)[:, :10]
        rows_ = np.arange(len(z))[:, None]
        cross = A2[rows_, n1].mean(1) + A1[rows_, n2].mean(1)
        del A1, A2
        ctx = dict(n=len(z), cos=cos, u=u, z=z, rawu=rawu[pool], mismatched=mismatched[pool], align=align, cross=cross, seed=seed)
        for nm in names:
            picks = run_variant(VARIANTS[nm], ctx)
            for B in BUDGETS:
                rows = pool[np.array(picks[B])]
                acc[nm][st][B].append(probe_acc(feat, labels, classes, rows, ev))
                mis[nm][st].append(float(mismatched[rows].mean()))
        print(f'{st} seed {seed} ({time.time() - t0:.0f} s)', flush=True)

res = []
for nm in names:
    per = {s: float(np.mean([np.mean(acc[nm][s][B]) for B in BUDGETS])) for s in sets}
    res.append((float(np.mean(list(per.values()))), nm, per))
res.sort(key=lambda r: -r[0])
print('| variant | mean | ' + ' | '.join(sets) + ' |')
for m, nm, per in res:
    print(f'| {nm} | {100 * m:.1f} | ' + ' | '.join(f'{100 * per[s]:.1f}' for s in sets) + ' |')
if args.out:
    with open(args.out, 'w') as f:
        json.dump({'seeds': seeds, 'sets': sets, 'budgets': BUDGETS, 'results': [dict(variant=nm, options=VARIANTS[nm], mean=m, perSet=per) for m, nm, per in res], 'acc': acc, 'mismatchRate': mis}, f, indent=1)
