#!/usr/bin/env python3
"""The numpy peer of pairpick's badge and bmmal strategies (spec §5.2, §5.3) for bench/warm-scale.mjs.

Factorised BADGE written the way numpy users write it (LabelBench-style): a forward pass of the
late-fusion classifier in chunks gives the residuals r_i = p_i − e_ŷi (N × C) and the penultimate
features x_i (N × M·H; BMMAL scales modality block m by s_m from the Shapley contributions of
v(T) = softmax at ŷ with only the modalities in T); then k-means++ seeding with one pass per pick:

    a = R @ r_c;  b = X @ x_c;  d² = ‖g‖² + ‖g_c‖² − 2ab;  mind = minimum(mind, d²)
    cum = cumsum(mind over candidates);  pick = searchsorted(cum, u·cum[-1], 'right')

with the first pick the largest ‖g‖² and the uniforms u given (a JSON array: the ones pairpick's
select draws for the seed).

usage: numpy_badge.py DIR --mode badge|bmmal --uniforms U.json --budget B [--out picks.json]
DIR holds a.npy, b.npy (N × D float32), enc{m}_w.npy (H × D), enc{m}_b.npy, head_w.npy (C × M·H),
head_b.npy. Prints one JSON line: seconds, forward_seconds, pick_seconds, max_rss_kb, picks (first 10).
"""
import argparse
import json
import os
import resource
import time

import numpy as np


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--mode", choices=["badge", "bmmal"], required=True)
    ap.add_argument("--uniforms", required=True)
    ap.add_argument("--budget", type=int, required=True)
    ap.add_argument("--out")
    args = ap.parse_args()
    d = args.dir
    load = lambda name: np.load(os.path.join(d, name + ".npy"), mmap_mode="r")

    t0 = time.perf_counter()
    xs = [load("a"), load("b")]
    enc = [(np.asarray(load(f"enc{m}_w")), np.asarray(load(f"enc{m}_b"))) for m in range(2)]
    W = np.asarray(load("head_w"))
    bias = np.asarray(load("head_b")).astype(np.float64)
    n = xs[0].shape[0]
    M = len(xs)
    H = enc[0][0].shape[0]
    C = W.shape[0]
    R = np.empty((n, C), dtype=np.float32)
    X = np.empty((n, M * H), dtype=np.float32)
    step = 8192
    for s in range(0, n, step):
        e = min(n, s + step)
        h = [np.maximum(np.asarray(xs[m][s:e]) @ enc[m][0].T + enc[m][1], 0).astype(np.float32) for m in range(M)]
        z = [(h[m] @ W[:, m * H:(m + 1) * H].T).astype(np.float64) for m in range(M)]
        logits = bias + sum(z)
        yhat = logits.argmax(axis=1)
        p = softmax(logits)
        r = p.copy()
        r[np.arange(e - s), yhat] -= 1
        R[s:e] = r
        scale = np.ones((e - s, M))
        if args.mode == "bmmal":
            rows = np.arange(e - s)
            v = {}
            for T in range(1 << M):
                lt = bias + sum(z[m] for m in range(M) if T >> m & 1) if T else np.broadcast_to(bias, logits.shape)
                v[T] = softmax(lt)[rows, yhat]
            phi = np.zeros((e - s, M))
            for m in range(M):  # two modalities: φ_m = ½[(v_ab − v_other) + (v_m − v_∅)]
                other = 1 - m
                phi[:, m] = 0.5 * ((v[3] - v[1 << other]) + (v[1 << m] - v[0]))
            a = np.abs(phi)
            tot = a.sum(axis=1, keepdims=True)
            c = np.where(tot > 0, a / np.where(tot > 0, tot, 1), 1.0 / M)
            scale = 1 - (c.max(axis=1, keepdims=True) - c)
        for m in range(M):
            X[s:e, m * H:(m + 1) * H] = scale[:, m:m + 1].astype(np.float32) * h[m]
    norm2 = (R.astype(np.float64) ** 2).sum(axis=1) * (X.astype(np.float64) ** 2).sum(axis=1)
    t1 = time.perf_counter()

    with open(args.uniforms) as fh:
        u = np.array(json.load(fh), dtype=np.float64)
    taken = np.zeros(n, dtype=bool)
    c = int(np.argmax(norm2))
    picks = [c]
    taken[c] = True
    mind = np.full(n, np.inf)
    for t in range(1, args.budget):
        a = (R @ R[c]).astype(np.float64)
        b = (X @ X[c]).astype(np.float64)
        d2 = np.maximum(norm2 + norm2[c] - 2 * a * b, 0)
        np.minimum(mind, d2, out=mind)
        w = np.where(taken, 0.0, mind)
        cum = np.cumsum(w)
        c = int(np.searchsorted(cum, u[t] * cum[-1], side="right"))
        c = min(c, n - 1)
        picks.append(c)
        taken[c] = True
    t2 = time.perf_counter()

    if args.out:
        with open(args.out, "w") as fh:
            json.dump(picks, fh)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "seconds": t2 - t0,
        "forward_seconds": t1 - t0,
        "pick_seconds": t2 - t1,
        "cpu_seconds": ru.ru_utime + ru.ru_stime,
        "max_rss_kb": ru.ru_maxrss,
        "numpy": np.__version__,
        "picks": picks[:10],
    }))


if __name__ == "__main__":
    main()
