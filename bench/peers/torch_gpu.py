#!/usr/bin/env python3
"""PyTorch peer of bench/gpu.mjs: the same cases on the same GPU, written the way a PyTorch user
would, timed with CUDA events (median of --runs after a warm-up).

  knn-2k     2,000 × 20,000 × 256 fp32, k = 20: ‖q‖² + ‖r‖² − 2·q·rᵀ (torch.addmm) + topk
  knn-100k   100,000 × 1,000,000 × 512 fp16, k = 20: the same per block of queries (the full
             distance matrix would be 200 GB), fp16 GEMM with fp32 output
  minUpdate  1,000,000 × 1,024 (fp32 and fp16): the greedy step with the row norms precomputed
             once, as a greedy loop would — d = ‖x‖² − 2·x·c + ‖c‖² (one GEMV pass over x),
             minimum into min_dist, argmax
  infoNCE    b = 4,096, d = 128, τ = 0.07: logits = za·zbᵀ/τ, (cross_entropy(logits, i) +
             cross_entropy(logitsᵀ, i)) / 2, backward to za and zb; fp32 (TF32 off, PyTorch's
             default for matmul) and with TF32 allowed

Two timings per case: "device" (inputs already on the GPU — PyTorch's usual setting) and, for
the knn and minUpdate cases, "from host" (inputs copied from pageable CPU tensors inside the
timed region, which is what pairpick's host-pointer C ABI pays on every call).

    python3 bench/peers/torch_gpu.py --out torch.json [--scale 0.1] [--runs 7] [--quick]
"""
import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="write the JSON results here (atomically)")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the big cases (0 < s ≤ 1)")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    a = p.parse_args()
    if a.quick:
        a.scale = min(a.scale, 0.02)
        a.runs = min(a.runs, 3)
    if not (0 < a.scale <= 1) or a.runs < 1:
        p.error("--scale must be in (0, 1] and --runs ≥ 1")
    return a


def cuda_timer(torch, fn, runs):
    """Median milliseconds of fn() over `runs` runs (after one warm-up), by CUDA events."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return {"medianMs": statistics.median(times), "minMs": times[0], "maxMs": times[-1], "runs": runs}


def knn_blocked(torch, q, r, r_norms, k, block):
    """k nearest refs (squared euclidean) of every query, a block of queries at a time."""
    out_d = torch.empty((q.shape[0], k), device=q.device, dtype=torch.float32)
    out_i = torch.empty((q.shape[0], k), device=q.device, dtype=torch.int64)
    for s in range(0, q.shape[0], block):
        qb = q[s : s + block]
        qn = qb.float().square().sum(1, keepdim=True)
        # fp16 inputs: the GEMM accumulates in fp32; the result is cast up before the norms.
        d = torch.mm(qb, r.t()).float()
        d.mul_(-2).add_(qn).add_(r_norms)
        d.clamp_(min=0)
        vals, idx = torch.topk(d, k, dim=1, largest=False, sorted=True)
        out_d[s : s + block] = vals
        out_i[s : s + block] = idx
    return out_d, out_i


def main():
    args = parse_args()
    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        print("torch_gpu: no CUDA device", file=sys.stderr)
        sys.exit(1)
    dev = torch.device("cuda")
    torch.manual_seed(1234)
    props = torch.cuda.get_device_properties(0)
    results = []

    def report(name, shape, timing, notes=""):
        entry = {"name": name, "shape": shape, **timing, "notes": notes}
        results.append(entry)
        print(f"{name:34s} median {timing['medianMs']:9.3f} ms  {notes}")

    free_bytes = torch.cuda.mem_get_info()[0]

    # ---- kNN ----
    def knn_case(name, nq, nr, dim, k, dtype):
        q_host = torch.randn(nq, dim).to(dtype)
        r_host = torch.randn(nr, dim).to(dtype)
        q, r = q_host.to(dev), r_host.to(dev)
        # Query block so the block's distance matrix uses at most ~1/4 of free memory.
        block = max(1, min(nq, int(free_bytes / 4 / (nr * 4 * 2))))
        r_norms = r.float().square().sum(1)[None, :]
        # Correctness spot check against float64 on the CPU.
        d, i = knn_blocked(torch, q[:3], r, r_norms, k, block)
        ref = torch.cdist(q_host[:3].double(), r_host.double()).square()
        rv, _ = torch.topk(ref, k, dim=1, largest=False)
        tol = 2e-3 if dtype == torch.float16 else 1e-4
        if not torch.allclose(d.double().cpu(), rv, rtol=tol, atol=0):
            raise SystemExit(f"torch_gpu: {name} spot check failed")
        shape = {"rowsQ": nq, "rowsR": nr, "dim": dim, "k": k, "dtype": str(dtype).replace("torch.", "")}

        def on_device():
            r_norms_ = r.float().square().sum(1)[None, :]
            knn_blocked(torch, q, r, r_norms_, k, block)

        def from_host():
            q_, r_ = q_host.to(dev), r_host.to(dev)
            r_norms_ = r_.float().square().sum(1)[None, :]
            d_, i_ = knn_blocked(torch, q_, r_, r_norms_, k, block)
            d_.cpu(), i_.cpu()

        runs = args.runs if nq * nr <= 1e9 else min(args.runs, 3)
        report(f"{name} device", shape, cuda_timer(torch, on_device, runs), f"addmm + topk, {block}-query blocks")
        report(f"{name} from host", shape, cuda_timer(torch, from_host, runs), "incl. H2D of q, r and D2H of the result")
        del q, r, r_norms
        torch.cuda.empty_cache()

    s = args.scale
    knn_case("knn-2k", max(64, round(2000 * math.sqrt(s))), max(256, round(20000 * math.sqrt(s))), 256, 20, torch.float32)
    knn_case("knn-100k", max(256, round(100000 * s)), max(1024, round(1000000 * s)), 512, 20, torch.float16)

    # ---- minUpdate ----
    def min_update_case(name, rows, dim, dtype):
        x_host = torch.randn(rows, dim).to(dtype)
        x = x_host.to(dev)
        c = x[7].clone()
        x_norms = x.float().square().sum(1)  # once per greedy run, not per step
        min_dist = torch.full((rows,), float("inf"), device=dev)

        def step(xx, norms):
            d = norms - 2 * torch.mv(xx, c).float() + c.float().dot(c.float())
            torch.minimum(min_dist, d, out=min_dist)
            return torch.argmax(min_dist)

        arg = step(x, x_norms).item()
        center = x_host[7].double()
        ref = torch.cat([(x_host[i : i + 65536].double() - center).square().sum(1) for i in range(0, rows, 65536)])
        if abs(ref[arg].item() - ref.max().item()) > 1e-3 * ref.max().item():
            raise SystemExit(f"torch_gpu: {name} argmax check failed")
        shape = {"rows": rows, "dim": dim, "dtype": str(dtype).replace("torch.", "")}
        report(f"{name} device", shape, cuda_timer(torch, lambda: step(x, x_norms), args.runs), "GEMV + minimum + argmax, norms precomputed")

        def from_host():
            xx = x_host.to(dev)
            step(xx, x_norms)
            min_dist.cpu()

        report(f"{name} from host", shape, cuda_timer(torch, from_host, min(args.runs, 3)), "incl. H2D of the points")
        del x, x_norms, min_dist
        torch.cuda.empty_cache()

    rows = max(1024, round(1000000 * s))
    min_update_case("minUpdate fp32", rows, 1024, torch.float32)
    min_update_case("minUpdate fp16", rows, 1024, torch.float16)

    # ---- InfoNCE ----
    b, dim, tau = (512 if args.quick else 4096), 128, 0.07
    za0 = F.normalize(torch.randn(b, dim, device=dev), dim=1)
    zb0 = F.normalize(torch.randn(b, dim, device=dev), dim=1)
    labels = torch.arange(b, device=dev)

    def infonce():
        za = za0.detach().requires_grad_(True)
        zb = zb0.detach().requires_grad_(True)
        logits = za @ zb.t() / tau
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
        loss.backward()
        return loss

    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        report(
            f"infoNCE fwd+bwd{' tf32' if tf32 else ''}",
            {"rows": b, "dim": dim, "temperature": tau},
            cuda_timer(torch, infonce, args.runs),
            "cross_entropy over za@zb.T both ways + backward" + (" (TF32 matmul)" if tf32 else " (fp32 matmul)"),
        )
    torch.backends.cuda.matmul.allow_tf32 = False

    summary = {
        "peer": "pytorch",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": props.name,
        "deviceMemory": props.total_memory,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scale": s,
        "method": "CUDA events, median of runs after one warm-up",
        "cases": results,
    }
    text = json.dumps(summary, indent=2)
    if args.out:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)) or ".", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
