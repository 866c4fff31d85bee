#!/usr/bin/env python3
"""The PyTorch peer of pairpick's late-fusion classifier (spec §4; bench/classifier-peer.mjs).

The same model written the way a PyTorch user writes it: per modality nn.Linear(D, h) → ReLU,
the concatenation into a fused nn.Linear(M·h, C), one auxiliary nn.Linear(h, C) per modality,
loss = mean of the fused and auxiliary cross-entropies, torch.optim.AdamW (weight decay on the
weight matrices only, as pairpick), float32 on the CPU. It starts from the initial weights pairpick
wrote (safetensors, PyTorch layout) and follows the batch order pairpick recorded, so the per-epoch
mean losses must agree.

usage: torch_late_fusion.py DIR --threads 2
DIR holds init.safetensors, labels.npy, batches.json ({"epochs": [[[rows…], …], …], "lr", "weight_decay"})
and one <modality>.npy per modality (named in batches.json "modalities").
Prints one JSON line: losses (per epoch), seconds (per epoch), threads, torch version.
"""
import argparse
import json
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[begin:end], dtype=np.float32).reshape(e["shape"]).copy())
    return out


class LateFusion(torch.nn.Module):
    def __init__(self, dims, hidden, classes):
        super().__init__()
        self.encoders = torch.nn.ModuleList([torch.nn.Linear(d, hidden) for d in dims])
        self.head = torch.nn.Linear(len(dims) * hidden, classes)
        self.aux = torch.nn.ModuleList([torch.nn.Linear(hidden, classes) for _ in dims])

    def forward(self, xs, y):
        hs = [F.relu(enc(x)) for enc, x in zip(self.encoders, xs)]
        loss = F.cross_entropy(self.head(torch.cat(hs, dim=1)), y)
        for aux, h in zip(self.aux, hs):
            loss = loss + F.cross_entropy(aux(h), y)
        return loss / (1 + len(hs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = json.load(open(f"{args.dir}/batches.json"))
    names = spec["modalities"]
    xs = [torch.from_numpy(np.load(f"{args.dir}/{n}.npy")) for n in names]
    y = torch.from_numpy(np.load(f"{args.dir}/labels.npy").astype(np.int64))
    w = read_safetensors(f"{args.dir}/init.safetensors")
    hidden = w[f"{names[0]}.encoder.weight"].shape[0]
    classes = w["head.weight"].shape[0]
    model = LateFusion([x.shape[1] for x in xs], hidden, classes)
    with torch.no_grad():
        for m, n in enumerate(names):
            model.encoders[m].weight.copy_(w[f"{n}.encoder.weight"])
            model.encoders[m].bias.copy_(w[f"{n}.encoder.bias"])
            model.aux[m].weight.copy_(w[f"{n}.aux.weight"])
            model.aux[m].bias.copy_(w[f"{n}.aux.bias"])
        model.head.weight.copy_(w["head.weight"])
        model.head.bias.copy_(w["head.bias"])
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": spec["weight_decay"]}, {"params": rest, "weight_decay": 0.0}], lr=spec["lr"])
    losses, seconds = [], []
    for batches in spec["epochs"]:
        t0 = time.perf_counter()
        total = 0.0
        for rows in batches:
            idx = torch.tensor(rows, dtype=torch.int64)
            opt.zero_grad()
            loss = model([x[idx] for x in xs], y[idx])
            loss.backward()
            opt.step()
            total += loss.item()
        seconds.append(time.perf_counter() - t0)
        losses.append(total / len(batches))
    print(json.dumps({"losses": losses, "seconds": seconds, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
