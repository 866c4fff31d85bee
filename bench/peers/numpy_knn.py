#!/usr/bin/env python3
"""numpy peer for bench/micro.mjs: what a Python user would write for the same two cases.

  distances: D = ‖q‖² + ‖r‖² − 2·Q·Rᵀ (clamped at 0), the full matrix
  knn:       the same full matrix, then argpartition for the k smallest per row and a sort of
             those k (pairpick returns them sorted too)

Reads the float32 .npy files micro.mjs wrote, times each case (mean of --repeat runs after one
warm-up), writes the knn indices to --out-idx for a parity check, prints one JSON object.
"""
import argparse
import json
import time

import numpy as np


def sq_distances(q, r):
    qn = np.einsum("ij,ij->i", q, q)
    rn = np.einsum("ij,ij->i", r, r)
    d = q @ r.T
    d *= -2.0
    d += qn[:, None]
    d += rn[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def knn(q, r, k):
    d = sq_distances(q, r)
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    pd = np.take_along_axis(d, part, axis=1)
    order = np.argsort(pd, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def timed(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"meanSeconds": sum(times) / len(times), "minSeconds": min(times), "samples": len(times)}


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f'{blas.get("name")} {blas.get("version", "")}'.strip()
    except Exception:  # older numpy
        return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--knn-q", required=True)
    ap.add_argument("--knn-r", required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--dist-a", required=True)
    ap.add_argument("--dist-b", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out-idx", required=True)
    a = ap.parse_args()
    q, r = np.load(a.knn_q), np.load(a.knn_r)
    da, db = np.load(a.dist_a), np.load(a.dist_b)
    out = {"numpy": np.__version__, "blas": blas_name()}
    out["distances"] = timed(lambda: sq_distances(da, db), a.repeat)
    out["knn"] = timed(lambda: knn(q, r, a.k), max(1, a.repeat // 2))
    out["sgemm"] = timed(lambda: q @ r.T, a.repeat)
    np.save(a.out_idx, knn(q, r, a.k).astype(np.int32))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
