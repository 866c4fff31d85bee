#!/usr/bin/env bash
# Runs pairpick's CUDA kernels on the CPU: cuda/*.cu are rewritten into host C++ (transform.py),
# every GPU thread becomes a fiber (cuda_emu.h: __syncthreads, warp shuffles/ballots and WMMA
# emulated, strict about divergence and alignment, static shared memory poisoned per block,
# seeded thread/block schedules, launch errors reported), the CUDA runtime is replaced by host
# memory (emu_runtime.cpp; stream capture records launches and copies into graphs that
# cudaGraphLaunch replays, and refuses what a real capture refuses). Three checkers: parity.cpp (distances, kNN, losses, matmul against
# float64 references), select_parity.cpp (every pp_cuda_select_* entry point against the CPU
# selection engine native/core/select.cc and float64 references) and warm_parity.cpp (the cuda
# warm-start engine, cuda/warm_engine.cc over cuda/warm.cu, against native/core/warm.cc: identical
# picks). Built with AddressSanitizer,
# so out-of-bounds shared/global accesses fail loudly. Slow (minutes for knn); for logic and
# indexing, not speed. Needs g++ and the CUDA headers (nvcc's include dir). Objects are cached
# under $TMPDIR/pairpick-cuda-emu-<checkout hash> (or $PAIRPICK_EMU_DIR) by a hash of their inputs.
#
#   bash test/gpu/emu/run.sh [group] [seed]
#     kernels groups: all (default), dist, knn, knnchunk, min, infonce, sinkhorn, proto, matmul, errors
#     selection groups: select (everything), quick (the subset CI runs: .ci/run; also runs warm's quick
#                       subset), or one of: prepare, pair, rows, kmeans, greedy, streamed, faults, tiles
#     warm-start group: warm (every case; quick runs the smaller ones)
# Emulated device (env): EMU_MEM bytes of device memory (default 1 GiB; small values force the
# row chunking), EMU_SMS SM count (default 3; changes the split counts), EMU_MAJOR compute
# capability major (default 9; 7 takes the sm_75 paths), EMU_SMEM_OPTIN shared memory per block,
# EMU_SCHEDULE schedule seed (0: in order; select_parity runs several seeds itself).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
group=${1:-all}
# The CUDA headers: $CUDA_INCLUDE, else the usual install places.
cuda_inc=${CUDA_INCLUDE:-}
for dir in "${CUDA_HOME:-/nonexistent}/include" /usr/local/cuda/include /opt/cuda/include /usr/include; do
  [[ -z "$cuda_inc" && -f "$dir/cuda_fp16.h" ]] && cuda_inc=$dir
done
[[ -n "$cuda_inc" ]] || { echo "run.sh: CUDA headers not found (set CUDA_INCLUDE)" >&2; exit 1; }
# One cache per checkout (runs from two checkouts at once must not rebuild each other's sources).
out=${PAIRPICK_EMU_DIR:-${TMPDIR:-/tmp}/pairpick-cuda-emu-$(echo "$repo" | sha1sum | cut -c1-8)}
rm -rf "$out/src" && mkdir -p "$out/src"
python3 "$here/transform.py" "$repo/cuda" "$out/src"
flags=(-std=c++17 -O1 -g -fsanitize=address -fno-omit-frame-pointer -I"$cuda_inc" -I"$repo/native")
headers=$(cat "$here"/*.h "$repo"/cuda/*.cuh "$repo"/cuda/*.h "$repo"/native/core/*.h "$out"/src/*.cuh 2>/dev/null | sha1sum)
# compile OBJ SRC ARGS...: skipped when the source, the headers and the flags are unchanged.
pids=()
compile() {
  local obj=$1 src=$2; shift 2
  local key; key=$( (echo "$headers"; cat "$src"; echo "${flags[*]} $*") | sha1sum | cut -c1-40)
  if [[ -f "$out/$obj" && "$(cat "$out/$obj.key" 2>/dev/null)" == "$key" ]]; then return; fi
  ( g++ "${flags[@]}" "$@" -c "$src" -o "$out/$obj" && echo "$key" > "$out/$obj.key" ) & pids+=($!)
}
wait_all() { local ok=0; for pid in "${pids[@]}"; do wait "$pid" || ok=1; done; pids=(); return $ok; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=0:detect_leaks=0}
# The warm-start checker: warm.cu and probe.cu emulated, the engine adapter and the CPU engine native.
run_warm() {
  compile warm.o "$out/src/warm.cu.cpp" -include "$here/cuda_emu.h" -I"$out/src"
  compile probe.o "$out/src/probe.cu.cpp" -include "$here/cuda_emu.h" -I"$out/src"
  compile runtime.o "$here/emu_runtime.cpp" -I"$here"
  compile warm_engine.o "$repo/cuda/warm_engine.cc" -I"$repo/cuda"
  compile warm_parity.o "$here/warm_parity.cpp" -I"$repo/cuda"
  for f in warm matmul parallel simd; do compile "core_$f.o" "$repo/native/core/$f.cc"; done
  wait_all
  g++ -fsanitize=address -pthread -o "$out/warm_parity" "$out/warm.o" "$out/probe.o" "$out/runtime.o" "$out/warm_engine.o" \
    "$out/warm_parity.o" "$out/core_warm.o" "$out/core_matmul.o" "$out/core_parallel.o" "$out/core_simd.o"
  "$out/warm_parity" "$@"
}
case "$group" in
  warm)
    run_warm "$@"
    ;;
  select | quick | prepare | pair | rows | kmeans | greedy | streamed | faults | tiles)
    engine=()
    for src in "$out"/src/select*.cu.cpp; do
      f=$(basename "$src" .cu.cpp)
      compile "$f.o" "$src" -include "$here/cuda_emu.h" -I"$out/src"
      engine+=("$out/$f.o")
    done
    compile distance.o "$out/src/distance.cu.cpp" -include "$here/cuda_emu.h" -I"$out/src"
    compile runtime.o "$here/emu_runtime.cpp" -I"$here"
    compile select_parity.o "$here/select_parity.cpp" -I"$repo/cuda"
    for f in select matmul parallel simd; do compile "core_$f.o" "$repo/native/core/$f.cc"; done
    wait_all
    g++ -fsanitize=address -pthread -o "$out/select_parity" "${engine[@]}" "$out/distance.o" "$out/runtime.o" \
      "$out/select_parity.o" "$out"/core_*.o
    "$out/select_parity" "$@"
    if [[ "$group" == quick ]]; then run_warm "$@"; fi
    ;;
  *)
    for f in distance loss; do compile "$f.o" "$out/src/$f.cu.cpp" -include "$here/cuda_emu.h" -I"$out/src"; done
    compile runtime.o "$here/emu_runtime.cpp" -I"$here"
    compile parity.o "$here/parity.cpp" -I"$repo/cuda"
    wait_all
    g++ -fsanitize=address -o "$out/parity" "$out/distance.o" "$out/loss.o" "$out/runtime.o" "$out/parity.o"
    "$out/parity" "$@"
    ;;
esac
