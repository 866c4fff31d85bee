// The distance core on the GPU (C ABI in api.h): dense distances, the running top-k merge and
// the fused greedy min-update. Custom tiled kernels, no cuBLAS, fp32 accumulation, fp16 inputs.
//
// kNN design. A block owns TM queries and one "split" (a contiguous range) of the ref rows; it
// walks its refs 128 at a time, computes the TM × 128 tile of ranking values in shared memory
// (fp32: CUDA-core FMA tile; fp16: tensor-core WMMA with fp32 accumulation) and folds it at once
// into a per-query sorted top-k list kept in shared memory (one warp per query: filter against
// the list's tail, insert the few survivors). No rows_q × rows_r matrix exists anywhere: a block
// writes only its k best per query, a second kernel merges the splits, a third recomputes the
// distances of the survivors exactly (direct differences, no cancellation), and a last one sorts
// them and merges them into the caller's running state. Ranking uses ‖q‖² + ‖r‖² − 2⟨q,r⟩, so
// candidates closer than ~1e-6·‖q‖² may be ordered differently from an exact computation.
//
// k limit: the fused list holds at most 64 entries per query (32 when k ≤ 32, which allows a
// 64-query tile). Larger k runs ⌈k/64⌉ passes over the refs, each collecting the next 64
// neighbours strictly after the previous pass's last one in (distance, index) order.
//
// Memory: inputs are streamed in row chunks sized from cudaMemGetInfo, so pools larger than the
// device work (refs are uploaded once when they fit). Device buffers and the stream come from
// the per-process workspace pool (common.cuh), which makes concurrent calls safe.
#include <cmath>
#include <climits>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "api.h"
#include "distance.cuh"

namespace pp_cuda {
namespace {

// (distance, index) order: ascending distance, then lower index. Indices compare as unsigned,
// so an unfilled slot (−1) sorts after every real index at an equal distance.
__device__ __forceinline__ bool before(float d1, int i1, float d2, int i2) {
  return d1 < d2 || (d1 == d2 && static_cast<unsigned>(i1) < static_cast<unsigned>(i2));
}

void check_common(const char* op, int64_t rows_a, int64_t rows_b, int64_t dim, int metric) {
  const std::string name(op);
  if (rows_a < 0 || rows_b < 0) fail(name + ": row counts must be >= 0");
  if (dim < 1 || dim > INT_MAX) fail(name + ": dim must be in 1.." + std::to_string(INT_MAX));
  if (metric < 0 || metric >= PP_METRIC_COUNT) fail(name + ": unknown metric " + std::to_string(metric));
}

// Plans and allocates with a device budget, retrying with smaller budgets when an allocation
// fails (another process or thread may have taken memory since cudaMemGetInfo).
template <class PlanFn>
void plan_with_retry(Workspace& ws, PlanFn&& plan) {
  const double fractions[] = {0.6, 0.3, 0.1};
  for (int attempt = 0;; ++attempt) {
    try {
      plan(device_budget(ws, fractions[attempt]));
      return;
    } catch (const OutOfMemory&) {
      if (attempt == 2) throw;
      ws.free_all();  // nothing was issued yet: start the plan from scratch
      trim_idle_workspaces();
    }
  }
}

// ==========================================================================================
// Dense distances
// ==========================================================================================

constexpr int kDenseRows = 32;

template <bool Half, bool SqDiff>
__global__ void __launch_bounds__(kTileThreads, 2)
    distances_kernel(const void* a, const void* b, long long rowsA, long long rowsB, int dim, const float* auxA,
                     const float* auxB, int metric, float* out) {
  __shared__ __align__(16) DotTiles<kDenseRows> tiles;
  const long long x0 = (long long)blockIdx.y * kDenseRows;
  const long long y0 = (long long)blockIdx.x * kTileCols;
  float acc[kDenseRows / 8][kTileColsPerThread];
  tile_dot<Half, kDenseRows, SqDiff>(tiles, a, rowsA, b, rowsB, dim, x0, y0, acc);
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
#pragma unroll
  for (int i = 0; i < kDenseRows / 8; ++i) {
    const long long row = x0 + ty * (kDenseRows / 8) + i;
    if (row >= rowsA) continue;
#pragma unroll
    for (int j = 0; j < kTileColsPerThread; ++j) {
      const long long col = y0 + tx + 32 * j;
      if (col >= rowsB) continue;
      float v = acc[i][j];
      if (metric == PP_METRIC_EUCLIDEAN) {
        v = sqrtf(v);
      } else if (metric == PP_METRIC_COSINE) {
        v = 1.f - v * auxA[row] * auxB[col];
      }
      out[row * rowsB + col] = v;
    }
  }
}

void launch_distances(Workspace& ws, bool half, const void* a, const void* b, long long na, long long nb, int dim,
                      const float* auxA, const float* auxB, int metric, float* out) {
  const dim3 grid((unsigned)ceil_div(nb, kTileCols), (unsigned)ceil_div(na, kDenseRows));
  // sqeuclidean / euclidean: direct squared differences (exact for near-duplicates);
  // cosine: dots scaled by the inverse norms.
  const bool sq = metric != PP_METRIC_COSINE;
  if (half) {
    if (sq)
      distances_kernel<true, true><<<grid, kTileThreads, 0, ws.stream()>>>(a, b, na, nb, dim, auxA, auxB, metric, out);
    else
      distances_kernel<true, false><<<grid, kTileThreads, 0, ws.stream()>>>(a, b, na, nb, dim, auxA, auxB, metric, out);
  } else {
    if (sq)
      distances_kernel<false, true><<<grid, kTileThreads, 0, ws.stream()>>>(a, b, na, nb, dim, auxA, auxB, metric, out);
    else
      distances_kernel<false, false><<<grid, kTileThreads, 0, ws.stream()>>>(a, b, na, nb, dim, auxA, auxB, metric, out);
  }
  check_launch("distances_kernel");
}

// ==========================================================================================
// kNN merge
// ==========================================================================================

struct KnnTileArgs {
  const void* q;
  const void* r;
  long long rowsQ;
  long long rowsR;
  int dim;
  int metric;
  const float* qAux;  // squared norms, or inverse norms for cosine
  const float* rAux;
  long long refGlobalBase;    // global index of local ref row 0
  long long queryGlobalBase;  // global index of local query row 0
  int excludeSelf;
  int kp;                     // list length this pass (≤ KMAX)
  long long refsPerSplit;     // multiple of kTileCols
  const float* lbD;           // pass > 0: keep only candidates strictly after (lbD[q], lbI[q])
  const int* lbI;
  float* partD;               // [split][rowsQ][kp]
  int* partI;
};

template <int TM>
constexpr size_t knn_region_bytes() {
  constexpr size_t dot = sizeof(DotTiles<TM>);
  constexpr size_t half = 2 * sizeof(HalfTiles<TM>);  // double-buffered (cp.async)
  constexpr size_t result = sizeof(float) * TM * kResultStride;
  constexpr size_t m = dot > half ? (dot > result ? dot : result) : (half > result ? half : result);
  return (m + 127) / 128 * 128;
}

template <int TM, int KMAX>
constexpr size_t knn_smem_bytes() {
  return knn_region_bytes<TM>() + size_t(TM) * (KMAX + 1) * (sizeof(float) + sizeof(int));
}

// Inserts (d, g) into the warp's sorted list `ld/li` of length kp if it beats the tail. All 32
// lanes call it with the same arguments; each lane owns slots lane, lane+32, ….
template <int KMAX>
__device__ __forceinline__ void warp_insert(float* ld, int* li, int kp, float d, int g, int lane) {
  constexpr int kSlots = KMAX / 32;
  if (!before(d, g, ld[kp - 1], li[kp - 1])) return;  // same decision on every lane
  float od[kSlots];
  int oi[kSlots];
  int pos = 0;  // entries before the candidate: a prefix, since the list is sorted
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int j = s * 32 + lane;
    const bool in = j < kp;
    od[s] = in ? ld[j] : INFINITY;
    oi[s] = in ? li[j] : -1;
    pos += __popc(__ballot_sync(kFullMask, in && before(od[s], oi[s], d, g)));
  }
  __syncwarp();
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int j = s * 32 + lane;
    if (j >= pos && j + 1 < kp) {
      ld[j + 1] = od[s];
      li[j + 1] = oi[s];
    }
  }
  if (lane == 0) {
    ld[pos] = d;
    li[pos] = g;
  }
  __syncwarp();
}

// Folds up to 32 candidates (one per lane, `ok` = eligible) into the warp's list.
template <int KMAX>
__device__ __forceinline__ void warp_offer(float* ld, int* li, int kp, bool ok, float d, int g, int lane) {
  ok = ok && before(d, g, ld[kp - 1], li[kp - 1]);
  unsigned pending = __ballot_sync(kFullMask, ok);
  while (pending) {
    const int src = __ffs(pending) - 1;
    pending &= pending - 1;
    const float cd = __shfl_sync(kFullMask, d, src);
    const int cg = __shfl_sync(kFullMask, g, src);
    warp_insert<KMAX>(ld, li, kp, cd, cg, lane);
  }
}

// Ranking value from a dot product: ‖q‖² + ‖r‖² − 2⟨q,r⟩ (euclidean ranks by it too), or the
// cosine distance 1 − ⟨q,r⟩/(‖q‖‖r‖).
__device__ __forceinline__ float rank_value(float dot, float qa, float ra, int metric) {
  return metric == PP_METRIC_COSINE ? 1.f - dot * qa * ra : fmaxf(qa + ra - 2.f * dot, 0.f);
}

template <int TM, int KMAX, bool Half>
__global__ void __launch_bounds__(kTileThreads, 2) knn_tile_kernel(KnnTileArgs p) {
  extern __shared__ __align__(128) unsigned char smem[];
  float* result = reinterpret_cast<float*>(smem);  // TM × kResultStride, aliases the dot tiles
  float* listD = reinterpret_cast<float*>(smem + knn_region_bytes<TM>());
  int* listI = reinterpret_cast<int*>(listD + TM * KMAX);
  float* boundD = reinterpret_cast<float*>(listI + TM * KMAX);  // per query, pass > 0
  int* boundI = reinterpret_cast<int*>(boundD + TM);
  constexpr int kQueriesPerWarp = TM / 8;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const long long q0 = (long long)blockIdx.x * TM;
  const long long rBegin = (long long)blockIdx.y * p.refsPerSplit;
  const long long rEnd = min(p.rowsR, rBegin + p.refsPerSplit);
  const bool hasBound = p.lbD != nullptr;

  for (int i = threadIdx.x; i < TM * KMAX; i += kTileThreads) {
    listD[i] = INFINITY;
    listI[i] = -1;
  }
  for (int i = threadIdx.x; i < TM; i += kTileThreads) {
    const bool valid = hasBound && q0 + i < p.rowsQ;
    boundD[i] = valid ? p.lbD[q0 + i] : -INFINITY;
    boundI[i] = valid ? p.lbI[q0 + i] : -1;
  }
  __syncthreads();

  for (long long r0 = rBegin; r0 < rEnd; r0 += kTileCols) {
    // 1. The TM × 128 tile of ranking values, in shared memory.
    if constexpr (Half) {
      tile_dot_half_tc_rows<TM, true>(reinterpret_cast<HalfTiles<TM>*>(smem), DenseRows<true>{p.q, p.rowsQ, p.dim, q0},
                                      DenseRows<true>{p.r, p.rowsR, p.dim, r0}, p.dim, result);
      for (int e = threadIdx.x; e < TM * kTileCols; e += kTileThreads) {
        const int row = e / kTileCols, col = e % kTileCols;
        const long long q = q0 + row, r = r0 + col;
        float* cell = result + row * kResultStride + col;
        *cell = (q < p.rowsQ && r < p.rowsR) ? rank_value(*cell, p.qAux[q], p.rAux[r], p.metric) : INFINITY;
      }
    } else {
      float acc[TM / 8][kTileColsPerThread];
      tile_dot<false, TM, false>(*reinterpret_cast<DotTiles<TM>*>(smem), p.q, p.rowsQ, p.r, p.rowsR, p.dim, q0, r0,
                                 acc);
      const int tx = lane, ty = warp;
#pragma unroll
      for (int i = 0; i < TM / 8; ++i) {
        const int row = ty * (TM / 8) + i;
        const long long q = q0 + row;
#pragma unroll
        for (int j = 0; j < kTileColsPerThread; ++j) {
          const int col = tx + 32 * j;
          const long long r = r0 + col;
          result[row * kResultStride + col] =
              (q < p.rowsQ && r < p.rowsR) ? rank_value(acc[i][j], p.qAux[q], p.rAux[r], p.metric) : INFINITY;
        }
      }
    }
    __syncthreads();

    // 2. Fold the tile into each query's list: warp w owns queries w·QPW … w·QPW+QPW−1.
#pragma unroll 1
    for (int qi = 0; qi < kQueriesPerWarp; ++qi) {
      const int ql = warp * kQueriesPerWarp + qi;
      const long long q = q0 + ql;
      if (q >= p.rowsQ) break;
      float* ld = listD + ql * KMAX;
      int* li = listI + ql * KMAX;
      const long long self = p.queryGlobalBase + q;
#pragma unroll
      for (int c = 0; c < kTileColsPerThread; ++c) {
        const int col = c * 32 + lane;
        const long long r = r0 + col;
        bool ok = r < rEnd;
        const float d = ok ? result[ql * kResultStride + col] : INFINITY;
        const long long global = p.refGlobalBase + r;
        const int g = static_cast<int>(global);
        if (ok && p.excludeSelf && global == self) ok = false;
        if (ok && hasBound && !before(boundD[ql], boundI[ql], d, g)) ok = false;
        warp_offer<KMAX>(ld, li, p.kp, ok, d, g, lane);
      }
    }
    __syncthreads();  // the next tile overwrites `result`
  }

#pragma unroll
  for (int qi = 0; qi < kQueriesPerWarp; ++qi) {
    const int ql = warp * kQueriesPerWarp + qi;
    const long long q = q0 + ql;
    if (q >= p.rowsQ) break;
    const long long base = ((long long)blockIdx.y * p.rowsQ + q) * p.kp;
    for (int j = lane; j < p.kp; j += 32) {
      p.partD[base + j] = listD[ql * KMAX + j];
      p.partI[base + j] = listI[ql * KMAX + j];
    }
  }
}

// Merges the splits' lists of one pass into cand[q][offset … offset+kp) and records each
// query's last entry as the next pass's lower bound ((+inf, −1) when the list ran dry, which
// excludes everything). One warp per query.
template <int KMAX>
__global__ void knn_reduce_kernel(const float* partD, const int* partI, int splits, long long rowsQ, int kp, int k,
                                  int offset, float* candD, int* candI, float* lbD, int* lbI) {
  __shared__ float sD[8][KMAX];
  __shared__ int sI[8][KMAX];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const long long q = (long long)blockIdx.x * 8 + warp;
  if (q >= rowsQ) return;  // whole warp; no block-wide barrier follows
  float* ld = sD[warp];
  int* li = sI[warp];
  for (int j = lane; j < KMAX; j += 32) {
    ld[j] = INFINITY;
    li[j] = -1;
  }
  __syncwarp();
  for (int s = 0; s < splits; ++s) {
    const long long base = ((long long)s * rowsQ + q) * kp;
    for (int j0 = 0; j0 < kp; j0 += 32) {
      const int j = j0 + lane;
      const bool in = j < kp;
      const float d = in ? partD[base + j] : INFINITY;
      const int g = in ? partI[base + j] : -1;
      warp_offer<KMAX>(ld, li, kp, in && g >= 0, d, g, lane);
    }
  }
  const long long out = q * k + offset;
  for (int j = lane; j < kp; j += 32) {
    candD[out + j] = ld[j];
    candI[out + j] = li[j];
  }
  if (lane == 0) {
    lbD[q] = ld[kp - 1];
    lbI[q] = li[kp - 1];
  }
}

// Exact distance (metric units) of every candidate: direct squared differences, or the cosine
// distance from float64 dots and norms. One warp per entry.
template <bool Half>
__global__ void knn_exact_kernel(const void* q, const void* r, int dim, int metric, long long entries, int k,
                                 long long refGlobalBase, float* candD, const int* candI) {
  const int lane = threadIdx.x % 32;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  for (long long e = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; e < entries; e += warps) {
    const int g = candI[e];
    if (g < 0) continue;
    const long long ql = e / k;
    const long long rl = g - refGlobalBase;
    if (metric == PP_METRIC_COSINE) {
      // Cosine in float64 from fresh dots and norms: near-duplicates sit at 1 − cos ≈ 1e-7, which
      // fp32 (or the fp32 inverse norms used for ranking) cannot resolve to the 1e-5 relative contract.
      double dot = 0.0, qq = 0.0, rr = 0.0;
      for (int d = lane; d < dim; d += 32) {
        const double qv = load<Half>(q, ql * dim + d);
        const double rv = load<Half>(r, rl * dim + d);
        dot = fma(qv, rv, dot);
        qq = fma(qv, qv, qq);
        rr = fma(rv, rv, rr);
      }
      for (int off = 16; off > 0; off >>= 1) {
        dot += __shfl_down_sync(0xffffffffu, dot, off);
        qq += __shfl_down_sync(0xffffffffu, qq, off);
        rr += __shfl_down_sync(0xffffffffu, rr, off);
      }
      if (lane == 0) candD[e] = (qq > 0.0 && rr > 0.0) ? (float)(1.0 - dot / sqrt(qq * rr)) : 1.f;
      continue;
    }
    float acc = 0.f;
    for (int d = lane; d < dim; d += 32) {
      const float diff = load<Half>(q, ql * dim + d) - load<Half>(r, rl * dim + d);
      acc = fmaf(diff, diff, acc);
    }
    acc = warp_sum(acc);
    if (lane == 0) candD[e] = metric == PP_METRIC_SQEUCLIDEAN ? acc : sqrtf(acc);
  }
}

// Per query: sort the k candidates by exact (distance, index) — insertion sort, the input is
// already ordered up to ranking round-off — then merge them with the running state.
__global__ void knn_finalize_kernel(float* candD, int* candI, const float* stateD, const int* stateI, float* outD,
                                    int* outI, long long rowsQ, int k) {
  const long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= rowsQ) return;
  float* cd = candD + q * k;
  int* ci = candI + q * k;
  for (int j = 1; j < k; ++j) {
    const float d = cd[j];
    const int g = ci[j];
    int m = j;
    while (m > 0 && before(d, g, cd[m - 1], ci[m - 1])) {
      cd[m] = cd[m - 1];
      ci[m] = ci[m - 1];
      --m;
    }
    cd[m] = d;
    ci[m] = g;
  }
  const float* sd = stateD + q * k;
  const int* si = stateI + q * k;
  float* od = outD + q * k;
  int* oi = outI + q * k;
  int a = 0, b = 0;  // a + b = j < k, so both stay in range
  for (int j = 0; j < k; ++j) {
    if (before(cd[b], ci[b], sd[a], si[a])) {
      od[j] = cd[b];
      oi[j] = ci[b];
      ++b;
    } else {
      od[j] = sd[a];
      oi[j] = si[a];
      ++a;
    }
  }
}

template <int TM, int KMAX, bool Half>
void launch_knn_tile(Workspace& ws, dim3 grid, const KnnTileArgs& args) {
  constexpr size_t bytes = knn_smem_bytes<TM, KMAX>();
  static std::once_flag once;
  static cudaError_t status = cudaSuccess;
  std::call_once(once, [] {
    if (bytes > 48 * 1024)
      status = cudaFuncSetAttribute(knn_tile_kernel<TM, KMAX, Half>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(bytes));
  });
  check(status, "cudaFuncSetAttribute(knn_tile_kernel)");
  knn_tile_kernel<TM, KMAX, Half><<<grid, kTileThreads, bytes, ws.stream()>>>(args);
  check_launch("knn_tile_kernel");
}

template <int TM, int KMAX>
// dev_ref: the refs already in device memory (held rows, kernels.resident), else null and the
// refs are uploaded from `ref`.
void knn_merge_impl(const void* query, const void* ref, const void* dev_ref, bool half, int64_t rows_q, int64_t rows_r,
                    int dim, int k, int metric, int64_t ref_offset, int64_t query_offset, bool exclude_self,
                    int32_t* idx, float* dist) {
  Lease lease;
  Workspace& ws = *lease;
  const DeviceInfo& dev = device_info();
  const size_t elem = half ? 2 : 4;
  const size_t rowBytes = size_t(dim) * elem;
  const int passes = static_cast<int>(ceil_div(k, KMAX));
  const long long targetBlocks = (long long)dev.sms * 4;

  // Buffer plan: query chunk qc rows, ref chunk rc rows.
  long long qc = 0, rc = 0;
  void *dQ = nullptr, *dR = nullptr;
  float *qAux = nullptr, *rAux = nullptr, *stD[2] = {nullptr, nullptr}, *candD = nullptr, *lbD = nullptr,
        *partD = nullptr;
  int *stI[2] = {nullptr, nullptr}, *candI = nullptr, *lbI = nullptr, *partI = nullptr;
  long long partCapacity = 0;  // entries
  plan_with_retry(ws, [&](size_t budget) {
    // Per query row: its values, aux, two state copies, the candidates, the bound, and one
    // split's partial list. Extra splits (more parallelism for few queries) get up to a quarter
    // of the budget.
    const size_t perQuery = rowBytes + 4 + size_t(k) * 8 * 3 + 8 + size_t(KMAX) * 8;
    const size_t perRef = (dev_ref ? 0 : rowBytes) + 4;  // held refs: only their aux
    qc = std::min<long long>(rows_q, 1 << 17);
    while (qc > TM && size_t(qc) * perQuery > budget / 2) qc = std::max<long long>(TM, qc / 2);
    const long long wanted = (targetBlocks + ceil_div(qc, TM)) * TM * KMAX;  // enough for any split count
    partCapacity = std::max<long long>(qc * KMAX, std::min<long long>(wanted, static_cast<long long>(budget / 4 / 8)));
    const size_t fixed = size_t(qc) * (perQuery - size_t(KMAX) * 8) + size_t(partCapacity) * 8;
    const size_t left = budget > fixed ? budget - fixed : 0;
    rc = std::min<long long>(rows_r, std::max<long long>(kTileCols, static_cast<long long>(left / perRef)));
    dQ = ws.get_bytes(0, size_t(qc) * rowBytes);
    dR = dev_ref ? nullptr : ws.get_bytes(1, size_t(rc) * rowBytes);
    qAux = ws.get<float>(2, qc);
    rAux = ws.get<float>(3, rc);
    stD[0] = ws.get<float>(4, size_t(qc) * k);
    stI[0] = ws.get<int>(5, size_t(qc) * k);
    stD[1] = ws.get<float>(6, size_t(qc) * k);
    stI[1] = ws.get<int>(7, size_t(qc) * k);
    candD = ws.get<float>(8, size_t(qc) * k);
    candI = ws.get<int>(9, size_t(qc) * k);
    lbD = ws.get<float>(10, qc);
    lbI = ws.get<int>(11, qc);
    partD = ws.get<float>(12, partCapacity);
    partI = ws.get<int>(13, partCapacity);
  });

  const bool refsResident = rc >= rows_r;
  // Ref rows [rs, rs + nr) on the device: in the held rows, or uploaded into dR.
  auto refs_at = [&](long long rs, long long nr) -> const void* {
    if (dev_ref) return static_cast<const char*>(dev_ref) + size_t(rs) * rowBytes;
    upload(ws, dR, static_cast<const char*>(ref) + size_t(rs) * rowBytes, size_t(nr) * rowBytes);
    return dR;
  };
  const void* dRefs = nullptr;
  if (refsResident) {
    dRefs = refs_at(0, rows_r);
    launch_row_aux(ws, dRefs, half, rows_r, dim, metric, rAux);
  }
  for (long long qs = 0; qs < rows_q; qs += qc) {
    const long long nq = std::min<long long>(qc, rows_q - qs);
    upload(ws, dQ, static_cast<const char*>(query) + size_t(qs) * rowBytes, size_t(nq) * rowBytes);
    launch_row_aux(ws, dQ, half, nq, dim, metric, qAux);
    int cur = 0;
    upload(ws, stD[cur], dist + size_t(qs) * k, size_t(nq) * k * sizeof(float));
    upload(ws, stI[cur], idx + size_t(qs) * k, size_t(nq) * k * sizeof(int32_t));
    const long long qTiles = ceil_div(nq, TM);
    for (long long rs = 0; rs < rows_r; rs += rc) {
      const long long nr = std::min<long long>(rc, rows_r - rs);
      if (!refsResident) {
        dRefs = refs_at(rs, nr);
        launch_row_aux(ws, dRefs, half, nr, dim, metric, rAux);
      }
      // Splits of the ref range so that small query sets still fill the device.
      const long long refTiles = ceil_div(nr, kTileCols);
      long long splits = std::max<long long>(1, std::min<long long>(ceil_div(targetBlocks, qTiles), refTiles));
      splits = std::max<long long>(1, std::min<long long>(splits, partCapacity / (nq * KMAX)));
      const long long refsPerSplit = ceil_div(refTiles, splits) * kTileCols;
      splits = ceil_div(nr, refsPerSplit);
      if (splits * nq * KMAX > partCapacity) fail("knn: internal error (partial buffer too small)");

      KnnTileArgs args{};
      args.q = dQ;
      args.r = dRefs;
      args.rowsQ = nq;
      args.rowsR = nr;
      args.dim = dim;
      args.metric = metric;
      args.qAux = qAux;
      args.rAux = rAux;
      args.refGlobalBase = ref_offset + rs;
      args.queryGlobalBase = query_offset + qs;
      args.excludeSelf = exclude_self ? 1 : 0;
      args.refsPerSplit = refsPerSplit;
      args.partD = partD;
      args.partI = partI;
      for (int pass = 0; pass < passes; ++pass) {
        const int kp = std::min(KMAX, k - pass * KMAX);
        args.kp = kp;
        args.lbD = pass ? lbD : nullptr;
        args.lbI = pass ? lbI : nullptr;
        const dim3 grid((unsigned)qTiles, (unsigned)splits);
        if (half)
          launch_knn_tile<TM, KMAX, true>(ws, grid, args);
        else
          launch_knn_tile<TM, KMAX, false>(ws, grid, args);
        knn_reduce_kernel<KMAX><<<(unsigned)ceil_div(nq, 8), 256, 0, ws.stream()>>>(
            partD, partI, (int)splits, nq, kp, k, pass * KMAX, candD, candI, lbD, lbI);
        check_launch("knn_reduce_kernel");
      }
      const long long entries = nq * k;
      const unsigned exactBlocks = (unsigned)std::min<long long>(ceil_div(entries, 8), (long long)dev.sms * 64);
      if (half)
        knn_exact_kernel<true><<<exactBlocks, 256, 0, ws.stream()>>>(dQ, dRefs, dim, metric, entries, k, ref_offset + rs,
                                                                     candD, candI);
      else
        knn_exact_kernel<false><<<exactBlocks, 256, 0, ws.stream()>>>(dQ, dRefs, dim, metric, entries, k,
                                                                      ref_offset + rs, candD, candI);
      check_launch("knn_exact_kernel");
      knn_finalize_kernel<<<(unsigned)ceil_div(nq, 128), 128, 0, ws.stream()>>>(candD, candI, stD[cur], stI[cur],
                                                                                 stD[1 - cur], stI[1 - cur], nq, k);
      check_launch("knn_finalize_kernel");
      cur = 1 - cur;
    }
    download(ws, dist + size_t(qs) * k, stD[cur], size_t(nq) * k * sizeof(float));
    download(ws, idx + size_t(qs) * k, stI[cur], size_t(nq) * k * sizeof(int32_t));
  }
  ws.sync();
}

// ==========================================================================================
// Greedy min-update with device-side argmax
// ==========================================================================================

// Larger value first, then lower index; an index of −1 means "nothing yet".
__device__ __forceinline__ bool better_max(float v, long long i, float bv, long long bi) {
  return i >= 0 && (bi < 0 || v > bv || (v == bv && i < bi));
}

template <bool Half, int Vec>
__device__ __forceinline__ void load_vec(const void* p, long long i, float (&out)[Vec]) {
  if constexpr (Vec == 1) {
    out[0] = load<Half>(p, i);
  } else if constexpr (Half) {
    static_assert(Vec == 8, "fp16 vectors are 8 wide");
    const uint4 raw = *reinterpret_cast<const uint4*>(static_cast<const __half*>(p) + i);
    const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      __half2 pair;
      memcpy(&pair, &words[k], sizeof(pair));  // bit copy without type punning
      const float2 f = __half22float2(pair);
      out[2 * k] = f.x;
      out[2 * k + 1] = f.y;
    }
  } else {
    static_assert(Vec == 4, "fp32 vectors are 4 wide");
    const float4 v = *reinterpret_cast<const float4*>(static_cast<const float*>(p) + i);
    out[0] = v.x;
    out[1] = v.y;
    out[2] = v.z;
    out[3] = v.w;
  }
}

// One warp per row: distance to the center (direct differences; dots for cosine), min into
// minDist, and the block's best non-excluded (value, index) into part*[slot].
template <bool Half, int Vec>
__global__ void __launch_bounds__(256)
    min_update_kernel(const void* points, const void* center, long long rows, int dim, int metric,
                      float centerInvNorm, float* minDist, const uint8_t* exclude, long long rowBase, float* partV,
                      long long* partI, long long partOffset) {
  __shared__ float warpV[8];
  __shared__ long long warpI[8];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float bestV = -INFINITY;
  long long bestI = -1;
  const long long warps = (long long)gridDim.x * 8;
  for (long long row = (long long)blockIdx.x * 8 + warp; row < rows; row += warps) {
    float s1 = 0.f, s2 = 0.f;  // Σ(p−c)² — or, for cosine, Σ p·c and Σ p²
    for (int d = lane * Vec; d < dim; d += 32 * Vec) {
      float pv[Vec], cv[Vec];
      load_vec<Half, Vec>(points, row * dim + d, pv);
      load_vec<Half, Vec>(center, d, cv);
#pragma unroll
      for (int e = 0; e < Vec; ++e) {
        if (metric == PP_METRIC_COSINE) {
          s1 = fmaf(pv[e], cv[e], s1);
          s2 = fmaf(pv[e], pv[e], s2);
        } else {
          const float diff = pv[e] - cv[e];
          s1 = fmaf(diff, diff, s1);
        }
      }
    }
    s1 = warp_sum(s1);
    if (metric == PP_METRIC_COSINE) s2 = warp_sum(s2);
    if (lane == 0) {
      const float v = metric == PP_METRIC_SQEUCLIDEAN   ? s1
                      : metric == PP_METRIC_EUCLIDEAN ? sqrtf(s1)
                                    : (s2 > 0.f ? 1.f - s1 * centerInvNorm * (1.f / sqrtf(s2)) : 1.f);
      const float old = minDist[row];
      const float m = v < old ? v : old;
      minDist[row] = m;
      if ((exclude == nullptr || exclude[row] == 0) && better_max(m, rowBase + row, bestV, bestI)) {
        bestV = m;
        bestI = rowBase + row;
      }
    }
  }
  if (lane == 0) {
    warpV[warp] = bestV;
    warpI[warp] = bestI;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < 8; ++w)
      if (better_max(warpV[w], warpI[w], bestV, bestI)) {
        bestV = warpV[w];
        bestI = warpI[w];
      }
    partV[partOffset + blockIdx.x] = bestV;
    partI[partOffset + blockIdx.x] = bestI;
  }
}

__global__ void argmax_final_kernel(const float* partV, const long long* partI, long long n, float* outV,
                                    long long* outI) {
  __shared__ float sv[256];
  __shared__ long long si[256];
  float bv = -INFINITY;
  long long bi = -1;
  for (long long i = threadIdx.x; i < n; i += 256)
    if (better_max(partV[i], partI[i], bv, bi)) {
      bv = partV[i];
      bi = partI[i];
    }
  sv[threadIdx.x] = bv;
  si[threadIdx.x] = bi;
  __syncthreads();
  for (int stride = 128; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride && better_max(sv[threadIdx.x + stride], si[threadIdx.x + stride], sv[threadIdx.x],
                                           si[threadIdx.x])) {
      sv[threadIdx.x] = sv[threadIdx.x + stride];
      si[threadIdx.x] = si[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    *outV = sv[0];
    *outI = si[0];
  }
}

template <bool Half>
void launch_min_update(Workspace& ws, int vec, unsigned blocks, const void* points, const void* center, long long rows,
                       int dim, int metric, float centerInvNorm, float* minDist, const uint8_t* exclude,
                       long long rowBase, float* partV, long long* partI, long long partOffset) {
  constexpr int kWide = Half ? 8 : 4;
  if (vec == kWide)
    min_update_kernel<Half, kWide><<<blocks, 256, 0, ws.stream()>>>(points, center, rows, dim, metric, centerInvNorm,
                                                                    minDist, exclude, rowBase, partV, partI,
                                                                    partOffset);
  else
    min_update_kernel<Half, 1><<<blocks, 256, 0, ws.stream()>>>(points, center, rows, dim, metric, centerInvNorm,
                                                                minDist, exclude, rowBase, partV, partI, partOffset);
  check_launch("min_update_kernel");
}

}  // namespace
}  // namespace pp_cuda

using namespace pp_cuda;

extern "C" int pp_cuda_distances(const void* a, const void* b, int half, int64_t rows_a, int64_t rows_b, int64_t dim,
                                 int metric, float* out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    check_common("distances", rows_a, rows_b, dim, metric);
    if (rows_a == 0 || rows_b == 0) return;
    if (!a || !b || !out) fail("distances: null input or output pointer");
    Lease lease;
    Workspace& ws = *lease;
    const size_t rowBytes = size_t(dim) * (half ? 2 : 4);
    const size_t perRow = rowBytes + 4;
    long long ca = 0, cb = 0;
    void *dA = nullptr, *dB = nullptr;
    float *auxA = nullptr, *auxB = nullptr, *dOut = nullptr;
    plan_with_retry(ws, [&](size_t budget) {
      cb = std::min<long long>(rows_b, std::max<long long>(kTileCols, static_cast<long long>(budget / 3 / perRow)));
      const size_t usedB = size_t(cb) * perRow;
      const size_t left = budget > usedB ? budget - usedB : 0;
      ca = std::min<long long>(std::min<long long>(rows_a, 1 << 20),
                               std::max<long long>(kDenseRows, static_cast<long long>(left / (perRow + size_t(cb) * 4))));
      dA = ws.get_bytes(0, size_t(ca) * rowBytes);
      dB = ws.get_bytes(1, size_t(cb) * rowBytes);
      auxA = ws.get<float>(2, ca);
      auxB = ws.get<float>(3, cb);
      dOut = ws.get<float>(4, size_t(ca) * cb);
    });
    const bool aResident = ca >= rows_a;
    for (long long bs = 0; bs < rows_b; bs += cb) {
      const long long nb = std::min<long long>(cb, rows_b - bs);
      upload(ws, dB, static_cast<const char*>(b) + size_t(bs) * rowBytes, size_t(nb) * rowBytes);
      if (metric == PP_METRIC_COSINE) launch_row_aux(ws, dB, half, nb, (int)dim, metric, auxB);
      for (long long as = 0; as < rows_a; as += ca) {
        const long long na = std::min<long long>(ca, rows_a - as);
        if (!aResident || bs == 0) {
          upload(ws, dA, static_cast<const char*>(a) + size_t(as) * rowBytes, size_t(na) * rowBytes);
          if (metric == PP_METRIC_COSINE) launch_row_aux(ws, dA, half, na, (int)dim, metric, auxA);
        }
        launch_distances(ws, half, dA, dB, na, nb, (int)dim, auxA, auxB, metric, dOut);
        check(cudaMemcpy2DAsync(out + size_t(as) * rows_b + bs, size_t(rows_b) * sizeof(float), dOut,
                                size_t(nb) * sizeof(float), size_t(nb) * sizeof(float), size_t(na),
                                cudaMemcpyDeviceToHost, ws.stream()),
              "cudaMemcpy2DAsync(D2H)");
      }
    }
    ws.sync();
  });
}

// ==========================================================================================
// Held rows (kernels.resident): uploaded once, read in place by knn_merge and min_update.
// ==========================================================================================

struct pp_cuda_rows {
  void* data = nullptr;
  int half = 0;
  int64_t rows = 0, dim = 0;
  bool async = true;  // from cudaMallocAsync (else cudaMalloc: a device without memory pools)
};

namespace {
// The device rows a call reads from held rows: [first, first + count) of `held`, checked against
// the call's dtype and dim.
const void* held_range(const char* op, const pp_cuda_rows* held, int half, int64_t first, int64_t count, int64_t dim) {
  if (!held->data) fail(std::string(op) + ": the held rows were freed");
  if (held->half != half) fail(std::string(op) + ": the held rows are " + (held->half ? "fp16" : "fp32") + " but the other operand is not");
  if (held->dim != dim) fail(std::string(op) + ": the held rows have dim " + std::to_string(held->dim) + ", not " + std::to_string(dim));
  if (first < 0 || count < 0 || first + count > held->rows)
    fail(std::string(op) + ": rows [" + std::to_string(first) + ", " + std::to_string(first + count) + ") are not all among the " +
         std::to_string(held->rows) + " held rows");
  return static_cast<const char*>(held->data) + size_t(first) * size_t(dim) * (half ? 2 : 4);
}
}  // namespace

extern "C" int pp_cuda_rows_upload(const void* data, int half, int64_t rows, int64_t dim, pp_cuda_rows** out, char* err,
                                   size_t err_len) {
  *out = nullptr;
  return guarded(err, err_len, [&] {
    if (rows < 1 || dim < 1) fail("resident: rows and dim must be at least 1");
    if (!data) fail("resident: null data");
    const size_t bytes = size_t(rows) * size_t(dim) * (half ? 2 : 4);
    Lease lease;
    Workspace& ws = *lease;
    auto held = std::make_unique<pp_cuda_rows>();
    held->half = half;
    held->rows = rows;
    held->dim = dim;
    auto allocate = [&] {
      cudaError_t status = cudaMallocAsync(&held->data, bytes, ws.stream());
      if (status == cudaErrorNotSupported) {
        cudaGetLastError();
        held->async = false;
        status = cudaMalloc(&held->data, bytes);
      }
      return status;
    };
    cudaError_t status = allocate();
    if (status == cudaErrorMemoryAllocation) {  // idle workspaces' cached buffers go first
      cudaGetLastError();
      trim_idle_workspaces();
      status = allocate();
    }
    check(status, "cudaMallocAsync (resident rows)");
    try {
      upload(ws, held->data, data, bytes);
      ws.sync();
    } catch (...) {
      held->async ? cudaFreeAsync(held->data, ws.stream()) : cudaFree(held->data);
      throw;
    }
    *out = held.release();
  });
}

extern "C" void pp_cuda_rows_free(pp_cuda_rows* held) {
  if (!held) return;
  try {
    Lease lease;  // its stream orders the free; nothing else waits
    if (held->data) held->async ? cudaFreeAsync(held->data, lease->stream()) : cudaFree(held->data);
  } catch (...) {
    // no device to give the memory back to
  }
  delete held;
}

extern "C" int pp_cuda_knn_merge(const void* query, const void* ref, const pp_cuda_rows* held_ref, int half, int64_t rows_q,
                                 int64_t rows_r, int64_t dim, int64_t k, int metric, int64_t ref_offset, int64_t query_offset,
                                 int exclude_self, int32_t* idx, float* dist, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    check_common("knn", rows_q, rows_r, dim, metric);
    if (k < 1 || k > (1 << 24)) fail("knn: k must be in 1..16777216");
    if (ref_offset < 0 || ref_offset + rows_r > INT32_MAX)
      fail("knn: ref indices (refOffset + rowsR) must fit in int32");
    const void* dev_ref = held_ref ? held_range("knn", held_ref, half, ref_offset, rows_r, dim) : nullptr;
    if (rows_q == 0 || rows_r == 0) return;
    if (!query || !(ref || dev_ref) || !idx || !dist) fail("knn: null input or state pointer");
    const int kk = static_cast<int>(k);
    const bool wide = kk <= 32 && device_info().smem_optin >= knn_smem_bytes<64, 32>();
    if (wide)
      knn_merge_impl<64, 32>(query, ref, dev_ref, half != 0, rows_q, rows_r, (int)dim, kk, metric, ref_offset, query_offset,
                             exclude_self != 0, idx, dist);
    else if (kk <= 32)
      knn_merge_impl<32, 32>(query, ref, dev_ref, half != 0, rows_q, rows_r, (int)dim, kk, metric, ref_offset, query_offset,
                             exclude_self != 0, idx, dist);
    else
      knn_merge_impl<32, 64>(query, ref, dev_ref, half != 0, rows_q, rows_r, (int)dim, kk, metric, ref_offset, query_offset,
                             exclude_self != 0, idx, dist);
  });
}

extern "C" int pp_cuda_min_update(const void* points, const pp_cuda_rows* held_points, const void* center, int half,
                                  int64_t rows, int64_t dim, int metric, float* min_dist, const uint8_t* exclude,
                                  int64_t* argmax, float* max, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    check_common("minUpdate", rows, 1, dim, metric);
    if (!argmax || !max) fail("minUpdate: null result pointer");
    *argmax = -1;
    *max = -INFINITY;
    const void* dev_points = held_points ? held_range("minUpdate", held_points, half, 0, rows, dim) : nullptr;
    if (held_points && rows != held_points->rows)
      fail("minUpdate: rows = " + std::to_string(rows) + " but the held points have " + std::to_string(held_points->rows));
    if (rows == 0) return;
    if (!(points || dev_points) || !center || !min_dist) fail("minUpdate: null input pointer");

    // The center's inverse norm, on the host in double (cosine only).
    double centerSq = 0;
    for (int64_t d = 0; d < dim; ++d) {
      const double v = half ? static_cast<double>(__half2float(static_cast<const __half*>(center)[d]))
                            : static_cast<double>(static_cast<const float*>(center)[d]);
      centerSq += v * v;
    }
    const float centerInvNorm = centerSq > 0 ? static_cast<float>(1.0 / std::sqrt(centerSq)) : 0.f;

    Lease lease;
    Workspace& ws = *lease;
    const DeviceInfo& dev = device_info();
    const size_t rowBytes = size_t(dim) * (half ? 2 : 4);
    const int vec = half ? (dim % 8 == 0 ? 8 : 1) : (dim % 4 == 0 ? 4 : 1);
    const long long maxBlocks = (long long)dev.sms * 16;
    long long rc = 0, partSlots = 0;
    void *dPts = nullptr, *dCenter = nullptr;
    float *dMin = nullptr, *partV = nullptr, *dMax = nullptr;
    uint8_t* dEx = nullptr;
    long long *partI = nullptr, *dArg = nullptr;
    plan_with_retry(ws, [&](size_t budget) {
      const size_t perRow = (dev_points ? 0 : rowBytes) + 4 + (exclude ? 1 : 0);  // held points stay where they are
      rc = std::min<long long>(rows, std::max<long long>(64, static_cast<long long>(budget / perRow)));
      partSlots = ceil_div(rows, rc) * maxBlocks;
      dPts = dev_points ? nullptr : ws.get_bytes(0, size_t(rc) * rowBytes);
      dCenter = ws.get_bytes(1, rowBytes);
      dMin = ws.get<float>(2, rc);
      if (exclude) dEx = ws.get<uint8_t>(3, rc);
      partV = ws.get<float>(4, partSlots);
      partI = ws.get<long long>(5, partSlots);
      dMax = ws.get<float>(6, 1);
      dArg = ws.get<long long>(7, 1);
    });
    upload(ws, dCenter, center, rowBytes);
    long long used = 0;
    for (long long rs = 0; rs < rows; rs += rc) {
      const long long nr = std::min<long long>(rc, rows - rs);
      const void* pts = dPts;
      if (dev_points)
        pts = static_cast<const char*>(dev_points) + size_t(rs) * rowBytes;
      else
        upload(ws, dPts, static_cast<const char*>(points) + size_t(rs) * rowBytes, size_t(nr) * rowBytes);
      upload(ws, dMin, min_dist + rs, size_t(nr) * sizeof(float));
      if (exclude) upload(ws, dEx, exclude + rs, size_t(nr));
      const long long blocks = std::min<long long>(ceil_div(nr, 8), maxBlocks);
      if (half)
        launch_min_update<true>(ws, vec, (unsigned)blocks, pts, dCenter, nr, (int)dim, metric, centerInvNorm, dMin,
                                exclude ? dEx : nullptr, rs, partV, partI, used);
      else
        launch_min_update<false>(ws, vec, (unsigned)blocks, pts, dCenter, nr, (int)dim, metric, centerInvNorm, dMin,
                                 exclude ? dEx : nullptr, rs, partV, partI, used);
      used += blocks;
      download(ws, min_dist + rs, dMin, size_t(nr) * sizeof(float));
    }
    argmax_final_kernel<<<1, 256, 0, ws.stream()>>>(partV, partI, used, dMax, dArg);
    check_launch("argmax_final_kernel");
    long long arg = -1;
    float best = -INFINITY;
    download(ws, &best, dMax, sizeof(float));
    download(ws, &arg, dArg, sizeof(long long));
    ws.sync();
    *argmax = arg;
    *max = arg >= 0 ? best : -INFINITY;
  });
}
