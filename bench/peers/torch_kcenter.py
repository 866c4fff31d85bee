#!/usr/bin/env python3
"""The PyTorch peer of pairpick's k-center greedy on the GPU (bench/select-gpu.mjs).

The same greedy as spec §3.2 and bench/peers/numpy_kcenter.py, written the way a PyTorch user
writes it: rows L2-normalised per modality and concatenated into one fp16 matrix U on the device,
first pick = argmax U·μ (nearest the mean), then per pick one matrix-vector product (cuBLAS, fp16
in, fp32 accumulation), a minimum and an argmax, all on the device; the host reads nothing back
until the end (the pick index stays a device tensor).

Also measures the device-to-device copy bandwidth (the floor of a pass over U).

usage: torch_kcenter.py A.npy B.npy … --budget B [--out picks.json] [--check-args]
The arguments and the files' shapes are checked before PyTorch is imported (--check-args stops
there and prints {rows, dims}: what the device run will read, checked on any machine).
Prints one JSON line: seconds (load + greedy), greedy_seconds, per_pick_ms, bytes_per_pass,
copy_bandwidth_gbs, floor_ms_per_pick, device, max_memory_gb.
"""
import argparse
import json
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--budget", type=int, required=True)
    ap.add_argument("--out")
    ap.add_argument("--check-args", action="store_true", help="check the arguments and files, then stop")
    args = ap.parse_args()
    shapes = []
    for f in args.files:
        try:
            shapes.append(np.load(f, mmap_mode="r").shape)
        except (OSError, ValueError) as e:
            ap.error(f"{f}: not a readable .npy file ({e})")
        if len(shapes[-1]) != 2:
            ap.error(f"{f}: expected a 2-D array, got shape {shapes[-1]}")
    if len({s[0] for s in shapes}) != 1:
        ap.error("the files have different row counts: " + ", ".join(f"{f} {s[0]}" for f, s in zip(args.files, shapes)))
    if not 1 <= args.budget <= shapes[0][0]:
        ap.error(f"--budget must be in 1..{shapes[0][0]} (the row count), got {args.budget}")
    if args.check_args:
        print(json.dumps({"rows": shapes[0][0], "dims": [s[1] for s in shapes], "budget": args.budget}))
        return
    import torch  # only here: the checks above run without PyTorch

    dev = torch.device("cuda")

    t0 = time.perf_counter()
    parts = []
    for f in args.files:
        x = torch.from_numpy(np.load(f, mmap_mode="r")[:]).to(dev)
        xf = x.float()
        xf /= xf.norm(dim=1, keepdim=True).clamp_min(1e-30)
        parts.append(xf.half())
        del x, xf
    u = torch.cat(parts, dim=1).contiguous()
    del parts
    torch.cuda.synchronize()
    m = float(len(args.files))
    n = u.shape[0]
    t1 = time.perf_counter()

    mu = u.float().mean(dim=0).half()
    c = torch.argmax(torch.mv(u, mu).float())
    picks = torch.empty(args.budget, dtype=torch.long, device=dev)
    picks[0] = c
    mind = torch.full((n,), float("inf"), device=dev)
    for t in range(1, args.budget):
        d2 = 2 * m - 2 * torch.mv(u, u[c]).float()
        torch.minimum(mind, d2, out=mind)
        mind[c] = -float("inf")
        c = torch.argmax(mind)
        picks[t] = c
    torch.cuda.synchronize()
    t2 = time.perf_counter()

    # Copy bandwidth: read + write of a buffer the size of U, best of 5.
    buf = torch.empty_like(u)
    best = float("inf")
    for _ in range(5):
        torch.cuda.synchronize()
        s = time.perf_counter()
        buf.copy_(u)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - s)
    bytes_pass = u.numel() * u.element_size()
    bandwidth = 2 * bytes_pass / best  # bytes read and written
    picks_list = picks.tolist()
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(picks_list, fh)
    print(json.dumps({
        "seconds": t2 - t0,
        "load_seconds": t1 - t0,
        "greedy_seconds": t2 - t1,
        "per_pick_ms": 1000 * (t2 - t1) / args.budget,
        "bytes_per_pass": bytes_pass,
        "copy_bandwidth_gbs": bandwidth / 1e9,
        "floor_ms_per_pick": 1000 * bytes_pass / bandwidth,
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "max_memory_gb": torch.cuda.max_memory_allocated() / 2**30,
        "picks": picks_list[:20],
    }))


if __name__ == "__main__":
    main()
