"""The PyTorch CPU peer of pairpick's fused InfoNCE (spec §1.1), for bench/peers.mjs: the symmetric
cross-modal loss written the way PyTorch users write it (logits = za·zbᵀ/τ, two cross-entropies,
autograd for ∂za and ∂zb), on random unit rows. The fastest of REPEAT forward + backward passes.

usage: torch_infonce.py B DIM REPEAT -> one JSON line
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

b, d, repeat = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
torch.manual_seed(0)
za0 = F.normalize(torch.randn(b, d), dim=1)
zb0 = F.normalize(torch.randn(b, d), dim=1)
best = float('inf')
loss_value = None
for _ in range(repeat):
    za = za0.clone().requires_grad_(True)
    zb = zb0.clone().requires_grad_(True)
    t = time.perf_counter()
    logits = za @ zb.t() / 0.07
    target = torch.arange(b)
    loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
    loss.backward()
    best = min(best, time.perf_counter() - t)
    loss_value = float(loss)
print(json.dumps({'seconds': best, 'loss': loss_value, 'threads': torch.get_num_threads()}))
