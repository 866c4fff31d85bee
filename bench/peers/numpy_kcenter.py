#!/usr/bin/env python3
"""The numpy peer of pairpick's k-center greedy (spec §3.2) for bench/select-scale.mjs.

The same greedy, written the way numpy users write it: L2-normalise each modality, concatenate
into u (N × Σdim float32), first pick = row nearest the pool mean (argmax u·μ, since ‖u_i‖² = M),
then per pick one matrix-vector product, a minimum and an argmax:

    d² = 2M − 2·(U @ u_c);  mind = minimum(mind, d²);  mind[picked] = −inf;  c = argmax(mind)

usage: numpy_kcenter.py A.npy B.npy … --budget B [--out picks.json]
Prints one JSON line: seconds (total), load_seconds, greedy_seconds, max_rss_kb, picks (first 20),
and writes every pick to --out when given.
"""
import argparse
import json
import resource
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--budget", type=int, required=True)
    ap.add_argument("--out")
    args = ap.parse_args()

    t0 = time.perf_counter()
    parts = []
    for f in args.files:
        x = np.load(f, mmap_mode="r")
        x = np.asarray(x, dtype=np.float32)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        norms[norms == 0] = 1
        parts.append(x / norms)
    u = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
    del parts
    m = float(len(args.files))
    n = u.shape[0]
    t1 = time.perf_counter()

    mu = u.mean(axis=0, dtype=np.float64).astype(np.float32)
    c = int(np.argmax(u @ mu))
    picks = [c]
    mind = np.full(n, np.inf, dtype=np.float32)
    for _ in range(1, args.budget):
        d2 = 2 * m - 2 * (u @ u[c])
        np.minimum(mind, d2, out=mind)
        mind[picks[-1]] = -np.inf
        mind[c] = -np.inf
        c = int(np.argmax(mind))
        picks.append(c)
    t2 = time.perf_counter()

    if args.out:
        with open(args.out, "w") as fh:
            json.dump(picks, fh)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "seconds": t2 - t0,
        "cpu_seconds": ru.ru_utime + ru.ru_stime,
        "load_seconds": t1 - t0,
        "greedy_seconds": t2 - t1,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "numpy": np.__version__,
        "picks": picks[:20],
    }))


if __name__ == "__main__":
    main()
