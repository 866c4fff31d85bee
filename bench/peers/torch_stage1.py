"""The PyTorch CPU peer of one pairpick stage-1 epoch (spec §1), for bench/peers.mjs.

The same model and step written the way PyTorch users write it: per modality an MLP
D_m → 512 → ReLU → 128 and L2 normalisation; symmetric InfoNCE (τ = 0.07); per modality 64
prototypes, Sinkhorn codes (ε = 0.05, 3 iterations, no gradient) and the prototype cross-entropy
(τ_p = 0.1, β = 1); AdamW (lr 1e-3, weight decay 1e-4); prototypes renormalised after each step;
batches of 1,024 over a shuffled epoch. Rows are standard normals of the given widths.

usage: torch_stage1.py ROWS DIM_A DIM_B EPOCHS -> one JSON line (seconds of the last epoch)
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

rows, dim_a, dim_b, epochs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(2)
torch.manual_seed(0)
xs = [torch.randn(rows, dim_a), torch.randn(rows, dim_b)]
heads = [torch.nn.Sequential(torch.nn.Linear(d, 512), torch.nn.ReLU(), torch.nn.Linear(512, 128)) for d in (dim_a, dim_b)]
protos = [torch.nn.Parameter(F.normalize(torch.randn(64, 128), dim=1)) for _ in xs]
params = [p for h in heads for p in h.parameters()] + protos
opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)


@torch.no_grad()
def sinkhorn(scores, eps=0.05, iters=3):
    q = torch.exp((scores - scores.max()) / eps).t()
    q /= q.sum()
    k, b = q.shape
    for _ in range(iters):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    return (q * b).t()


def epoch():
    order = torch.randperm(rows)
    for s in range(0, rows, 1024):
        idx = order[s:s + 1024]
        z = [F.normalize(h(x[idx]), dim=1) for h, x in zip(heads, xs)]
        logits = z[0] @ z[1].t() / 0.07
        target = torch.arange(len(idx))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        for m in range(2):
            scores = z[m] @ protos[m].t()
            q = sinkhorn(scores.detach())
            loss = loss - (q * F.log_softmax(scores / 0.1, dim=1)).sum(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p in protos:
                p.copy_(F.normalize(p, dim=1))


seconds = []
for _ in range(epochs):
    t = time.perf_counter()
    epoch()
    seconds.append(time.perf_counter() - t)
print(json.dumps({'seconds': seconds[-1], 'epochs': seconds, 'threads': torch.get_num_threads()}))
