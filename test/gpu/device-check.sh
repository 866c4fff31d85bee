#!/usr/bin/env bash
# Every check pairpick owes a GPU. PAIRPICK_DEVICE_CHECK picks the part, so that each fits one
# 10-minute device call (both together: about 13 minutes on an H100/H200):
#   select (≤ 460 s, each step with its own limit):
#     1. node --test test/gpu/ (≤ 90 s): distances, kNN, losses, the selection engine resident and
#        streamed, the warm-start op — the cuda backend against float64 references and the cpu backend;
#     2. vitest on the cuda backend (≤ 100 s): the suite files whose backend loops include cuda when
#        it is available (selection, distances, losses, tensors, warm ops) — needs vitest packed;
#     3. bench/select-gpu.mjs (≤ 270 s): 1M pairs × 2 × 512 fp16, B = 10,000 — kcenter and mmcsal
#        times, per-pick time and GB/s against the measured HBM (device copy) bandwidth, and
#        PyTorch's greedy on the same GPU (bench/peers/torch_kcenter.py);
#   warm (≤ 390 s):
#     1. node --test test/gpu/warm.test.mjs (≤ 90 s);
#     4. bench/warm-scale.mjs --backend cuda (≤ 300 s): 1M pairs × 2 × 512 fp16, C = 309, B = 2,000 —
#        badge and bmmal (forward pass on the host, seeding on the device), per-pick time against the
#        bandwidth floor (target: picks ≤ 3 s);
#   all (the default): both, in that order.
# The CUDA emulator's verdict needs no GPU (CI runs it). Results go to $1 (default $OUT):
# gpu-tests.txt, vitest-cuda.txt, select-gpu.json, select-gpu.log, warm-gpu.json, warm-gpu.log,
# nvidia-smi.txt, backends.json.
#
# Prepare on a machine with nvcc (see /work/shared/gpu/README.md), from the project root:
#   CUDAARCHS=90 npm run build && bash ../shared/gpu/pack.sh test bench src vitest.config.ts tsconfig.json
# (add node_modules/vitest and its dependencies for step 2, else it is reported as not run), then
# one device call per part, carry [".device"], timeout 600:
#   bash .device/run.sh 'cd .device/pkg && PAIRPICK_DEVICE_CHECK=select bash test/gpu/device-check.sh $OUT'
#   bash .device/run.sh 'cd .device/pkg && PAIRPICK_DEVICE_CHECK=warm bash test/gpu/device-check.sh $OUT'
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

only=${PAIRPICK_DEVICE_CHECK:-all}
case "$only" in all | select | warm) ;; *) echo "PAIRPICK_DEVICE_CHECK must be all, select or warm (got '$only')" >&2; exit 2 ;; esac

echo "== GPU parity tests (≤ 90 s)"
if [[ "$only" == warm ]]; then tests=test/gpu/warm.test.mjs; else tests=test/gpu/; fi
timeout 90 node --test $tests > "$out/gpu-tests.txt" 2>&1 || status=1
tail -12 "$out/gpu-tests.txt"

if [[ "$only" != warm ]]; then
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
fi

if [[ "$only" != select ]]; then
  echo "== warm start at scale (≤ 300 s; most of it generating the 2 GB pool and the host forward pass)"
  timeout 300 node bench/warm-scale.mjs --backend cuda --half --data isotropic --rows 1000000 --dim 512 --hidden 512 \
    --classes 309 --budget 2000 --peer none --out "$out/warm-gpu.json" > "$out/warm-gpu.log" 2>&1 || status=1
  tail -12 "$out/warm-gpu.log"
fi
exit $status
