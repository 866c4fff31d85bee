#!/usr/bin/env bash
# Every check pairpick owes a GPU, in one run (about 15 minutes on an H100/H200; PAIRPICK_DEVICE_CHECK=warm: about 5):
#   1. the GPU parity tests (node --test test/gpu/: distances, kNN, losses, the selection engine
#      resident and streamed, the warm-start op) — the cuda backend against float64 references /
#      the cpu backend;
#   2. the CUDA emulator's verdict does not need a GPU (CI runs it); nothing to do here;
#   3. bench/select-gpu.mjs: 1M pairs × 2 × 512 fp16, B = 10,000 — kcenter and mmcsal times,
#      per-pick time against the bandwidth floor, and PyTorch's greedy on the same GPU;
#   4. bench/warm-scale.mjs --backend cuda: 1M pairs × 2 × 512 fp16, C = 309, B = 2,000 — badge
#      and bmmal (forward pass on the host, seeding on the device), per-pick time against the
#      bandwidth floor (target: picks ≤ 3 s).
# Results go to $1 (default $OUT): gpu-tests.txt, select-gpu.json, select-gpu.log, warm-gpu.json,
# warm-gpu.log, nvidia-smi.txt. PAIRPICK_DEVICE_CHECK=warm runs only the warm-start parts (1 and 4
# restricted to test/gpu/warm.test.mjs).
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

only=${PAIRPICK_DEVICE_CHECK:-all}

echo "== GPU parity tests"
if [[ "$only" == warm ]]; then tests=test/gpu/warm.test.mjs; else tests=test/gpu/; fi
timeout 240 node --test $tests > "$out/gpu-tests.txt" 2>&1 || status=1
tail -12 "$out/gpu-tests.txt"

if [[ "$only" != warm ]]; then
  echo "== selection at scale (≤ 6 minutes)"
  timeout 360 node bench/select-gpu.mjs --out "$out/select-gpu.json" > "$out/select-gpu.log" 2>&1 || status=1
  tail -12 "$out/select-gpu.log"
fi

echo "== warm start at scale (≤ 5 minutes; most of it generating the 2 GB pool and the host forward pass)"
timeout 300 node bench/warm-scale.mjs --backend cuda --half --data isotropic --rows 1000000 --dim 512 --hidden 512 \
  --classes 309 --budget 2000 --peer none --out "$out/warm-gpu.json" > "$out/warm-gpu.log" 2>&1 || status=1
tail -12 "$out/warm-gpu.log"
exit $status
