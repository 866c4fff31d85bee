#!/usr/bin/env bash
# Runs pairpick's CUDA kernels on the CPU: cuda/*.cu are rewritten into host C++ (transform.py),
# every GPU thread becomes a fiber (cuda_emu.h: __syncthreads, warp shuffles/ballots and WMMA
# emulated, strict about divergence and alignment), the CUDA runtime is replaced by host memory
# (emu_runtime.cpp), and parity.cpp checks the C ABI against float64 references. Built with
# AddressSanitizer, so out-of-bounds shared/global accesses fail loudly. Slow (minutes for knn);
# for logic and indexing, not speed. Needs g++ and the CUDA headers (nvcc's include dir).
#
#   bash test/gpu/emu/run.sh [group] [seed]      group: all (default), dist, knn, knnchunk, min,
#                                                infonce, sinkhorn, proto, matmul, errors
# Emulated device (env): EMU_MEM bytes of device memory (default 1 GiB; small values force the
# row chunking), EMU_SMS SM count (default 3; changes the split counts), EMU_MAJOR compute
# capability major (default 9; 7 takes the sm_75 paths), EMU_SMEM_OPTIN shared memory per block.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# The CUDA headers: $CUDA_INCLUDE, else the usual install places.
cuda_inc=${CUDA_INCLUDE:-}
for dir in "${CUDA_HOME:-/nonexistent}/include" /usr/local/cuda/include /opt/cuda/include /usr/include; do
  [[ -z "$cuda_inc" && -f "$dir/cuda_fp16.h" ]] && cuda_inc=$dir
done
[[ -n "$cuda_inc" ]] || { echo "run.sh: CUDA headers not found (set CUDA_INCLUDE)" >&2; exit 1; }
out=${TMPDIR:-/tmp}/pairpick-cuda-emu
mkdir -p "$out/src"
python3 "$here/transform.py" "$repo/cuda" "$out/src"
flags=(-std=c++17 -O1 -g -fsanitize=address -fno-omit-frame-pointer -I"$cuda_inc" -I"$repo/native")
pids=()
for f in distance loss; do
  g++ "${flags[@]}" -include "$here/cuda_emu.h" -I"$out/src" -c "$out/src/$f.cu.cpp" -o "$out/$f.o" & pids+=($!)
done
g++ "${flags[@]}" -I"$here" -c "$here/emu_runtime.cpp" -o "$out/runtime.o" & pids+=($!)
g++ "${flags[@]}" -I"$repo/cuda" -c "$here/parity.cpp" -o "$out/parity.o" & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done
g++ -fsanitize=address -o "$out/parity" "$out/distance.o" "$out/loss.o" "$out/runtime.o" "$out/parity.o"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=0:detect_leaks=0} "$out/parity" "$@"
