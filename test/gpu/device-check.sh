#!/usr/bin/env bash
# Every check pairpick owes a GPU, in one run (about 10 minutes on an H100/H200):
#   1. the GPU parity tests (node --test test/gpu/: distances, kNN, losses, the selection engine
#      resident and streamed) — the cuda backend against float64 references / the cpu backend;
#   2. the CUDA emulator's verdict does not need a GPU (CI runs it); nothing to do here;
#   3. bench/select-gpu.mjs: 1M pairs × 2 × 512 fp16, B = 10,000 — kcenter and mmcsal times,
#      per-pick time against the bandwidth floor, and PyTorch's greedy on the same GPU.
# Results go to $1 (default $OUT): gpu-tests.txt, select-gpu.json, select-gpu.log, nvidia-smi.txt.
#
# Prepare on a machine with nvcc (see /work/shared/gpu/README.md), from the project root:
#   CUDAARCHS=90 npm run build && bash ../shared/gpu/pack.sh test/gpu bench
# then one device call, carry [".device"], timeout 600:
#   bash .device/run.sh 'cd .device/pkg && bash test/gpu/device-check.sh $OUT'
# Copy the figures kept into bench/results/ (device, date, commit) and the README.
set -uo pipefail
out=${1:-${OUT:-/tmp/pairpick-device-check}}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
status=0
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
node -e "const p=require('./dist/index.cjs');console.log(JSON.stringify(p.backends()))" > "$out/backends.json" 2>&1 || true

echo "== GPU parity tests"
timeout 240 node --test test/gpu/ > "$out/gpu-tests.txt" 2>&1 || status=1
tail -12 "$out/gpu-tests.txt"

echo "== selection at scale (≤ 6 minutes)"
timeout 360 node bench/select-gpu.mjs --out "$out/select-gpu.json" > "$out/select-gpu.log" 2>&1 || status=1
tail -12 "$out/select-gpu.log"
exit $status
