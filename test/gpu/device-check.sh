#!/usr/bin/env bash
# Every check pairpick owes a GPU, in one command that fits 8 minutes on an H100/H200 (each step
# has its own time limit; the limits add up to 460 s):
#   1. node --test test/gpu/ (≤ 90 s): distances, kNN, losses, the selection engine resident and
#      streamed — the cuda backend against float64 references and the cpu backend;
#   2. vitest on the cuda backend (≤ 100 s): the suite files whose backend loops include cuda when
#      it is available (selection, distances, losses, tensors, warm ops) — needs vitest packed;
#   3. bench/select-gpu.mjs (≤ 270 s): 1M pairs × 2 × 512 fp16, B = 10,000 — kcenter and mmcsal
#      times, per-pick time and GB/s against the measured HBM (device copy) bandwidth, and
#      PyTorch's greedy on the same GPU (bench/peers/torch_kcenter.py).
# The CUDA emulator's verdict needs no GPU (CI runs it). Results go to $1 (default $OUT):
# gpu-tests.txt, vitest-cuda.txt, select-gpu.json, select-gpu.log, nvidia-smi.txt, backends.json.
#
# Prepare on a machine with nvcc (see /work/shared/gpu/README.md), from the project root:
#   CUDAARCHS=90 npm run build && bash ../shared/gpu/pack.sh test bench src vitest.config.ts tsconfig.json
# (add node_modules/vitest and its dependencies for step 2, else it is reported as not run), then
# one device call, carry [".device"], timeout 600:
#   bash .device/run.sh 'cd .device/pkg && bash test/gpu/device-check.sh $OUT'
# Before spending device time, check the bench's arguments here:
#   node bench/select-gpu.mjs --check-args && python3 bench/peers/torch_kcenter.py A.npy B.npy --budget 10 --check-args
# Copy the figures kept into bench/results/ (device, date, commit) and the README.
set -uo pipefail
out=${1:-${OUT:-/tmp/pairpick-device-check}}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
status=0
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
node -e "const p=require('./dist/index.cjs');console.log(JSON.stringify(p.backends()))" > "$out/backends.json" 2>&1 || true
node bench/select-gpu.mjs --check-args > "$out/select-gpu-plan.json" 2>&1 || { echo "bench arguments refused"; status=1; }

echo "== GPU parity tests (≤ 90 s)"
timeout 90 node --test test/gpu/ > "$out/gpu-tests.txt" 2>&1 || status=1
tail -12 "$out/gpu-tests.txt"

echo "== vitest on cuda (≤ 100 s)"
if [[ -f node_modules/vitest/vitest.mjs ]]; then
  timeout 100 node node_modules/vitest/vitest.mjs run test/select.test.ts test/distance.test.ts test/loss.test.ts \
    test/tensor.test.ts test/warm.test.ts > "$out/vitest-cuda.txt" 2>&1 || status=1
  tail -12 "$out/vitest-cuda.txt"
else
  echo "not run: vitest is not packed (node_modules/vitest)" | tee "$out/vitest-cuda.txt"
  status=1
fi

echo "== selection at scale (≤ 270 s)"
timeout 270 node bench/select-gpu.mjs --out "$out/select-gpu.json" > "$out/select-gpu.log" 2>&1 || status=1
tail -12 "$out/select-gpu.log"
exit $status
