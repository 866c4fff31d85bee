// The selection engine on the GPU (C ABI in api.h, semantics of native/core/select.h and
// src/backend/ops-select.ts). One pp_cuda_select per opened pool:
//
// * Residency. open() tries to allocate the whole pool (every modality, its stored dtype) plus the
//   per-row state in device memory; prepare() then uploads the rows chunk by chunk. When the pool
//   does not fit (allocation fails or it exceeds ~70% of free memory) the context runs "streamed":
//   the rows stay in the caller's host arrays and every pass copies them through a device staging
//   buffer block by block (the greedy loop then also reads each pick back to the host). Per-row
//   state (inverse norms, δ, owners, centres) is device-resident in both modes.
// * Pairwise reductions (kNN density, coverage counts, facility gains, …) use one tiled kernel: a
//   block owns 64 query rows and walks its share of the refs 64 at a time, computing the 64×64 dot
//   tiles of every needed modality pair (raw values in shared memory, fp32 FMA; inverse norms
//   applied afterwards, so fp16 inputs are used exactly), turning them into metric values and
//   folding them into per-query state (a sorted top-k list in registers/local memory, a count, a
//   min/max, a gain sum). Nothing N×N exists; the state is written back per launch so streamed
//   ref blocks continue it.
// * The greedy loop (MMCSAL, k-center, k-means++) runs `steps` picks per call entirely on the
//   device: choose (argmax of the score, or the sampleSquared rule) → record → centre-to-centre
//   distances → the fused δ update with triangle-inequality pruning (the rule of select.cc) and a
//   block-level max/argmax → final reduce. The host synchronises once per call.
//
// Limits: at most 8 modalities; knnMean k ≤ 128.
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "api.h"
#include "common.cuh"
#include "core/select.h"

namespace {

constexpr int kMaxM = 8;
constexpr int kKnnMax = 128;
constexpr int kTile = 64;      // query rows and ref rows per tile
constexpr int kKChunk = 32;    // depth of one shared-memory step
constexpr int kThreads = 256;  // 16 × 16 threads, 4 × 4 outputs each
constexpr long long kSampleBlock = pp::sel::kSampleBlockRows;
constexpr int kMinArg = PP_REDUCTION_COUNT;  // internal reduction of greedy_add: min value with its ref position
constexpr int kHalfLd = kKChunk + 8;  // padded row length of the fp16 tiles (multiple of 8)
constexpr int kValueLd = kTile + 4;   // row length of the value tile (multiple of 4 for wmma stores)


struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Failure(std::string(what) + ": " + cudaGetErrorString(e));
}
#define CK(expr) check((expr), #expr)

// A set of rows as kernels see it: row r's values are data[m] + (local ? local[r] : r) * dim[m];
// its global index (inverse norms, masks, labels, self tests) is global ? global[r] : start + r.
struct View {
  const void* data[kMaxM];
  const int* local;
  const int* global;
  long long start;
  long long count;
};

struct Shape {
  int M;
  int half[kMaxM];
  int dim[kMaxM];
  const float* inv[kMaxM];  // device, indexed by global row
};

__device__ __forceinline__ float load_value(const void* base, int half, long long index) {
  return half ? __half2float(static_cast<const __half*>(base)[index]) : static_cast<const float*>(base)[index];
}

__device__ __forceinline__ long long view_local(const View& v, long long r) { return v.local ? v.local[r] : r; }
__device__ __forceinline__ long long view_global(const View& v, long long r) { return v.global ? v.global[r] : v.start + r; }

__device__ __forceinline__ float unit_distance(float c) { return sqrtf(fmaxf(0.f, 2.f - 2.f * c)); }

// ------------------------------------------------------------------------------------------
// prepare: inverse norms, non-finite rows, alignment (warp per row), column sums.

struct InvOut {
  float* p[kMaxM];
};

__global__ void k_prepare(View v, Shape s, InvOut inv_out, unsigned long long* bad, float* alignment, int align) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  for (long long r = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < v.count; r += warps) {
    const long long loc = view_local(v, r), gid = view_global(v, r);
    float invs[kMaxM];
    for (int m = 0; m < s.M; ++m) {
      double ss = 0;
      int finite = 1;
      for (int t = lane; t < s.dim[m]; t += 32) {
        const float x = load_value(v.data[m], s.half[m], loc * s.dim[m] + t);
        if (!isfinite(x)) finite = 0;
        ss += (double)x * x;
      }
      for (int o = 16; o; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
      finite = __all_sync(0xffffffffu, finite);
      const float inv = finite && ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.f;
      invs[m] = inv;
      if (lane == 0) {
        inv_out.p[m][gid] = inv;
        if (!finite) atomicMin(&bad[m], (unsigned long long)gid);
      }
    }
    if (align) {
      const int d = s.dim[0];
      double acc = 0;
      for (int a = 0; a < s.M; ++a)
        for (int b = a + 1; b < s.M; ++b) {
          double dot = 0;
          for (int t = lane; t < d; t += 32)
            dot += (double)(load_value(v.data[a], s.half[a], loc * d + t) * invs[a]) *
                   (double)(load_value(v.data[b], s.half[b], loc * d + t) * invs[b]);
          for (int o = 16; o; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
          acc += (float)dot;
        }
      if (lane == 0) alignment[r] = (float)(acc / (s.M * (s.M - 1) / 2.0));
    }
  }
}

// Σ over rows of the normalised values, one column per thread, rows in chunks (double atomics).
__global__ void k_colsums(View v, Shape s, int total, long long rows_per_chunk, double* sums) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= total) return;
  int m = 0, off = 0;
  while (m < s.M && col >= off + s.dim[m]) off += s.dim[m++];
  const int t = col - off;
  const long long r0 = (long long)blockIdx.y * rows_per_chunk;
  const long long r1 = min(v.count, r0 + rows_per_chunk);
  double acc = 0;
  for (long long r = r0; r < r1; ++r) {
    const long long loc = view_local(v, r), gid = view_global(v, r);
    acc += (double)(load_value(v.data[m], s.half[m], loc * s.dim[m] + t) * s.inv[m][gid]);
  }
  atomicAdd(&sums[col], acc);
}

// ------------------------------------------------------------------------------------------
// The pairwise reduction tile kernel.

struct PairArgs {
  View q, r;
  Shape s;
  int form;
  float gamma;
  int nterms;
  int tq[kMaxM * kMaxM], tr[kMaxM * kMaxM];  // multimodal terms (query modality, ref modality)
  int kind;
  int k;
  double radius;
  const unsigned char* mask;  // by global ref row, may be null
  const int* labels;          // by global row
  const float* cover;         // by global ref row
  int shares;
  long long ref_pos0;  // position of this launch's first ref within the whole ref set
  // Per (query, share) state, continued across launches.
  float* knn;     // [nq * shares * k]
  int* knn_n;     // [nq * shares]
  double* val;    // [nq * shares]
  long long* arg; // [nq * shares]
};

__device__ void insert_sorted(float* best, int& filled, int k, float v) {
  if (filled == k && !(v < best[k - 1])) return;
  int p = filled < k ? filled++ : k - 1;
  while (p > 0 && best[p - 1] > v) {
    best[p] = best[p - 1];
    --p;
  }
  best[p] = v;
}

// dot[i][j] = ⟨x_q^mq, x_r^mr⟩ (raw values) for this thread's 4×4 outputs (query ty + 16i, ref
// tx + 16j) of the 64×64 tile. Called by the whole block; Vs may be used as scratch.
template <bool Wmma>
__device__ __forceinline__ void tile_dots(const PairArgs& a, int mq, int mr, int K, long long q0, long long nq, long long r0,
                                          int rn, float (*Vs)[kTile + 4], float (&dot)[4][4]) {
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  if constexpr (Wmma) {
    __shared__ __align__(32) __half Ah[kTile][kHalfLd];
    __shared__ __align__(32) __half Bh[kTile][kHalfLd];
    const int warp = tid / 32;
    const int fr = warp / 2, fc0 = (warp % 2) * 2;  // fragment row, first of two fragment columns
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc0, acc1;
    nvcuda::wmma::fill_fragment(acc0, 0.f);
    nvcuda::wmma::fill_fragment(acc1, 0.f);
    const __half* qd = static_cast<const __half*>(a.q.data[mq]);
    const __half* rd = static_cast<const __half*>(a.r.data[mr]);
    for (int k0 = 0; k0 < K; k0 += kKChunk) {
      for (int e = tid; e < kTile * kKChunk; e += kThreads) {
        const int row = e / kKChunk, kk = e % kKChunk;
        const long long kq = k0 + kk;
        __half xa = __float2half(0.f), xb = __float2half(0.f);
        if (kq < K) {
          if (q0 + row < nq) xa = qd[view_local(a.q, q0 + row) * K + kq];
          if (row < rn) xb = rd[view_local(a.r, r0 + row) * K + kq];
        }
        Ah[row][kk] = xa;
        Bh[row][kk] = xb;
      }
      __syncthreads();
#pragma unroll
      for (int ks = 0; ks < kKChunk; ks += 16) {
        nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __half, nvcuda::wmma::row_major> fa;
        nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __half, nvcuda::wmma::col_major> fb0, fb1;
        nvcuda::wmma::load_matrix_sync(fa, &Ah[fr * 16][ks], kHalfLd);
        nvcuda::wmma::load_matrix_sync(fb0, &Bh[fc0 * 16][ks], kHalfLd);
        nvcuda::wmma::load_matrix_sync(fb1, &Bh[(fc0 + 1) * 16][ks], kHalfLd);
        nvcuda::wmma::mma_sync(acc0, fa, fb0, acc0);
        nvcuda::wmma::mma_sync(acc1, fa, fb1, acc1);
      }
      __syncthreads();
    }
    nvcuda::wmma::store_matrix_sync(&Vs[fr * 16][fc0 * 16], acc0, kValueLd, nvcuda::wmma::mem_row_major);
    nvcuda::wmma::store_matrix_sync(&Vs[fr * 16][(fc0 + 1) * 16], acc1, kValueLd, nvcuda::wmma::mem_row_major);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) dot[i][j] = Vs[ty + 16 * i][tx + 16 * j];
    __syncthreads();
  } else
#endif
  {
  __shared__ float As[kKChunk][kTile + 1];
  __shared__ float Bs[kKChunk][kTile + 1];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) dot[i][j] = 0.f;
  for (int k0 = 0; k0 < K; k0 += kKChunk) {
    // 64 rows × 32 values per operand: 8 per thread, consecutive threads on consecutive values.
    for (int e = tid; e < kTile * kKChunk; e += kThreads) {
      const int row = e / kKChunk, kk = e % kKChunk;
      const long long kq = k0 + kk;
      float xa = 0.f, xb = 0.f;
      if (kq < K) {
        if (q0 + row < nq) xa = load_value(a.q.data[mq], a.s.half[mq], view_local(a.q, q0 + row) * K + kq);
        if (row < rn) xb = load_value(a.r.data[mr], a.s.half[mr], view_local(a.r, r0 + row) * K + kq);
      }
      As[kk][row] = xa;
      Bs[kk][row] = xb;
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kKChunk; ++kk) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) dot[i][j] = fmaf(av[i], bv[j], dot[i][j]);
    }
    __syncthreads();
  }
  }
}

// Tensor cores: 16×16×16 fp16 fragments, fp32 accumulation. The fp16 inputs go in unchanged (the
// inverse norms are applied to the fp32 dot afterwards), so products are exact.

// Wmma = all modalities fp16 on sm_70+: the dot tiles come from tensor cores, else from the
// CUDA-core FMA loop.
template <bool Wmma>
__global__ void __launch_bounds__(kThreads) k_pair(PairArgs a) {
  __shared__ float Vs[kTile][kValueLd];
  __shared__ long long qgid[kTile], rgid[kTile];
  __shared__ float qinv[kMaxM][kTile], rinv[kMaxM][kTile];

  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const long long nq = a.q.count, nr = a.r.count;
  const long long q0 = (long long)blockIdx.x * kTile;
  const int share = blockIdx.y;
  const long long rtiles = (nr + kTile - 1) / kTile;
  const long long rt0 = share * rtiles / a.shares, rt1 = (share + 1) * rtiles / a.shares;

  // Per-query state lives with threads 0..63 for the whole launch.
  const long long my_q = q0 + tid;
  const bool owner = tid < kTile && my_q < nq;
  const long long slot = my_q * a.shares + share;
  float best[kKnnMax];
  int filled = 0;
  double value = 0;
  long long argpos = -1;
  if (owner) {
    if (a.kind == PP_REDUCE_KNN_MEAN) {
      filled = a.knn_n[slot];
      for (int t = 0; t < filled; ++t) best[t] = a.knn[slot * a.k + t];
    } else {
      value = a.val[slot];
      if (a.kind == kMinArg) argpos = a.arg[slot];
    }
  }
  if (tid < kTile) {
    const long long q = q0 + tid;
    qgid[tid] = q < nq ? view_global(a.q, q) : -1;
    for (int m = 0; m < a.s.M; ++m) qinv[m][tid] = q < nq ? a.s.inv[m][qgid[tid]] : 0.f;
  }

  const float self = a.kind == PP_REDUCE_KNN_MEAN ? INFINITY : (a.form == PP_FORM_SIMILARITY ? 1.f : 0.f);
  for (long long rt = rt0; rt < rt1; ++rt) {
    const long long r0 = rt * kTile;
    const int rn = (int)min((long long)kTile, nr - r0);
    __syncthreads();
    if (tid < kTile) {
      const long long r = r0 + tid;
      rgid[tid] = tid < rn ? view_global(a.r, r) : -1;
      for (int m = 0; m < a.s.M; ++m) rinv[m][tid] = tid < rn ? a.s.inv[m][rgid[tid]] : 0.f;
    }
    __syncthreads();

    float uni[4][4], cross[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) uni[i][j] = cross[i][j] = 0.f;
    const int nterms = a.form == PP_FORM_MULTIMODAL ? a.nterms : a.s.M;
    for (int term = 0; term < nterms; ++term) {
      const int mq = a.form == PP_FORM_MULTIMODAL ? a.tq[term] : term;
      const int mr = a.form == PP_FORM_MULTIMODAL ? a.tr[term] : term;
      const int K = a.s.dim[mq];
      float dot[4][4];
      tile_dots<Wmma>(a, mq, mr, K, q0, nq, r0, rn, Vs, dot);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float c = dot[i][j] * qinv[mq][ty + 16 * i] * rinv[mr][tx + 16 * j];
          if (a.form == PP_FORM_MULTIMODAL) {
            if (mq == mr)
              uni[i][j] += unit_distance(c);
            else
              cross[i][j] += unit_distance(c);
          } else {
            uni[i][j] += c;  // Σ_m cos_mm
          }
        }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int qi = ty + 16 * i, rj = tx + 16 * j;
        float v;
        if (a.form == PP_FORM_MULTIMODAL)
          v = a.gamma != 0.f ? uni[i][j] + a.gamma * cross[i][j] : uni[i][j];
        else if (a.form == PP_FORM_EUCLIDEAN)
          v = sqrtf(fmaxf(0.f, 2.f * a.s.M - 2.f * uni[i][j]));
        else
          v = (float)((1.0 + (double)uni[i][j] / a.s.M) / 2.0);
        if (qgid[qi] >= 0 && qgid[qi] == rgid[rj]) v = self;
        Vs[qi][rj] = v;
      }
    __syncthreads();

    if (owner) {
      const long long g = qgid[tid];
      for (int j = 0; j < rn; ++j) {
        const float v = Vs[tid][j];
        const long long rg = rgid[j];
        switch (a.kind) {
          case PP_REDUCE_KNN_MEAN:
            if (v != INFINITY) insert_sorted(best, filled, a.k, v);
            break;
          case PP_REDUCE_COUNT_WITHIN:
            if ((!a.mask || a.mask[rg]) && (double)v < a.radius) value += 1.0;
            break;
          case PP_REDUCE_MIN_OTHER_LABEL:
            if (a.labels[rg] != a.labels[g] && v < value) value = v;
            break;
          case PP_REDUCE_MAX:
            if (v > value) value = v;
            break;
          case PP_REDUCE_GAIN: {
            const float gd = v - a.cover[rg];
            if (gd > 0.f) value += (double)gd;
            break;
          }
          case kMinArg:
            if (v < value) {
              value = v;
              argpos = a.ref_pos0 + r0 + j;
            }
            break;
        }
      }
    }
  }
  if (owner) {
    if (a.kind == PP_REDUCE_KNN_MEAN) {
      a.knn_n[slot] = filled;
      for (int t = 0; t < filled; ++t) a.knn[slot * a.k + t] = best[t];
    } else {
      a.val[slot] = value;
      if (a.kind == kMinArg) a.arg[slot] = argpos;
    }
  }
}

// ------------------------------------------------------------------------------------------
// Row-vs-centre values (greedy update, distances_from): a warp per row.

struct Centre {
  const float* cv;  // normalised concatenated centre
  int off[kMaxM];
  int form;
  float gamma;
};

// Metric value of row (data at loc, global gid) against the centre; called by a whole warp.
__device__ float warp_row_value(const View& v, const Shape& s, const Centre& c, long long loc, long long gid) {
  const int lane = threadIdx.x & 31;
  const bool cross = c.form == PP_FORM_MULTIMODAL && c.gamma != 0.f;
  float uni = 0.f, cr = 0.f, sum = 0.f;
  for (int m = 0; m < s.M; ++m) {
    float acc[kMaxM];
    for (int r = 0; r < s.M; ++r) acc[r] = 0.f;
    const int d = s.dim[m];
    for (int t = lane; t < d; t += 32) {
      const float x = load_value(v.data[m], s.half[m], loc * d + t);
      for (int r = 0; r < s.M; ++r)
        if (r == m || cross) acc[r] = fmaf(x, c.cv[c.off[r] + t], acc[r]);
    }
    const float inv = s.inv[m][gid];
    for (int r = 0; r < s.M; ++r) {
      if (r != m && !cross) continue;
      float a = acc[r];
      for (int o = 16; o; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
      const float cos = a * inv;
      if (c.form == PP_FORM_MULTIMODAL) {
        if (r == m)
          uni += unit_distance(cos);
        else
          cr += unit_distance(cos);
      } else if (r == m) {
        sum += cos;
      }
    }
  }
  if (c.form == PP_FORM_MULTIMODAL) return cross ? uni + c.gamma * cr : uni;
  if (c.form == PP_FORM_EUCLIDEAN) return sqrtf(fmaxf(0.f, 2.f * s.M - 2.f * sum));
  return (float)((1.0 + (double)sum / s.M) / 2.0);
}

__global__ void k_row_values(View v, Shape s, Centre c, long long self_gid, float* out) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  for (long long r = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < v.count; r += warps) {
    const long long gid = view_global(v, r);
    const float x = warp_row_value(v, s, c, view_local(v, r), gid);
    if (lane == 0) out[r] = gid == self_gid ? (c.form == PP_FORM_SIMILARITY ? 1.f : 0.f) : x;
  }
}

// ------------------------------------------------------------------------------------------
// Greedy loop kernels. The current pick lives in device memory (*pick); every kernel of a step
// reads it and does nothing when it is negative (no candidate left).

struct Best {
  float v;
  long long i;
};

// Larger value, then lower index.
__device__ __forceinline__ Best better(Best a, Best b) {
  if (a.i < 0) return b;
  if (b.i < 0) return a;
  if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
  return a;
}

__device__ Best block_best(Best b) {
  __shared__ float sv[kThreads / 32];
  __shared__ long long si[kThreads / 32];
  for (int o = 16; o; o >>= 1) {
    Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    b = better(b, other);
  }
  const int w = threadIdx.x / 32, lane = threadIdx.x & 31;
  if (lane == 0) {
    sv[w] = b.v;
    si[w] = b.i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < (int)(blockDim.x / 32); ++k) b = better(b, Best{sv[k], si[k]});
  }
  return b;  // valid in thread 0
}

// δ update for the newest centre (pruned) and the block's max δ / argmax over candidates.
__global__ void k_update(View v, Shape s, Centre c, const float* cd, int id, double slack, double margin, int track_owner,
                         float* delta, int* owner_of, const unsigned char* taken, const int* pick, float* part_v,
                         long long* part_i) {
  if (*pick < 0) return;
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  Best mine{-INFINITY, -1};
  for (long long r = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < v.count; r += warps) {
    const long long gid = view_global(v, r);
    if (taken[gid]) continue;
    float d = delta[gid];
    const int o = owner_of[gid];
    const bool pruned = cd && o >= 0 && (double)cd[o] >= slack * d * (1 + 1e-5) + margin;
    if (!pruned) {
      const float x = warp_row_value(v, s, c, view_local(v, r), gid);
      if (x < d) {
        d = x;
        if (lane == 0) {
          delta[gid] = x;
          owner_of[gid] = track_owner ? id : -1;
        }
      }
    }
    mine = better(mine, Best{d, gid});
  }
  // Every lane of a warp saw the same rows: lane 0's copy is the warp's.
  Best b = block_best(lane == 0 ? mine : Best{-INFINITY, -1});
  if (threadIdx.x == 0) {
    part_v[blockIdx.x] = b.v;
    part_i[blockIdx.x] = b.i;
  }
}

// Max δ over candidates and its row, from the blocks' partials.
__global__ void k_final_max(const float* part_v, const long long* part_i, int parts, const int* pick, float* delta_max,
                            long long* argmax) {
  if (*pick < 0) return;
  Best b{-INFINITY, -1};
  for (int p = threadIdx.x; p < parts; p += blockDim.x) b = better(b, Best{part_v[p], part_i[p]});
  b = block_best(b);
  if (threadIdx.x == 0) {
    *delta_max = b.i >= 0 ? b.v : -INFINITY;
    *argmax = b.i;
  }
}

// Score partials: base(i) + w·δ(i)/Δ (δ̂ ≡ 0 without centres), in double.
__global__ void k_score(const float* base, const float* delta, const unsigned char* taken, long long rows, double w,
                        int has_centres, const float* delta_max, float* part_v, long long* part_i, double* part_s) {
  const double dmax = *delta_max;
  const bool use = has_centres && dmax > 0 && isfinite(dmax);
  double bs = -INFINITY;
  long long bi = -1;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < rows; i += (long long)gridDim.x * blockDim.x) {
    if (taken[i]) continue;
    const double sc = (double)base[i] + w * (use ? (double)delta[i] / dmax : 0.0);
    if (bi < 0 || sc > bs) {
      bs = sc;
      bi = i;
    }
  }
  __shared__ double ss[kThreads];
  __shared__ long long si[kThreads];
  ss[threadIdx.x] = bs;
  si[threadIdx.x] = bi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int t = 1; t < (int)blockDim.x; ++t)
      if (si[t] >= 0 && (bi < 0 || ss[t] > bs || (ss[t] == bs && si[t] < bi))) {
        bs = ss[t];
        bi = si[t];
      }
    part_s[blockIdx.x] = bs;
    part_i[blockIdx.x] = bi;
    (void)part_v;
  }
}

__global__ void k_final_score(const double* part_s, const long long* part_i, int parts, int* pick) {
  if (threadIdx.x != 0) return;
  double bs = -INFINITY;
  long long bi = -1;
  for (int p = 0; p < parts; ++p)
    if (part_i[p] >= 0 && (bi < 0 || part_s[p] > bs || (part_s[p] == bs && part_i[p] < bi))) {
      bs = part_s[p];
      bi = part_i[p];
    }
  *pick = (int)bi;
}

__global__ void k_pick_argmax(const long long* argmax, int* pick) { *pick = (int)*argmax; }

// sampleSquared, step 1: per block of kSampleBlock rows, the float64 sum of δ² over candidates in
// row order, the first candidate and the last candidate with δ > 0.
__global__ void k_sample_blocks(const float* delta, const unsigned char* taken, long long rows, long long blocks,
                                double* sums, long long* first, long long* last_pos) {
  const long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= blocks) return;
  double s = 0;
  long long f = -1, l = -1;
  for (long long i = b * kSampleBlock; i < min(rows, (b + 1) * kSampleBlock); ++i) {
    if (taken[i]) continue;
    if (f < 0) f = i;
    const double d = delta[i];
    if (d > 0) l = i;
    s += d * d;
  }
  sums[b] = s;
  first[b] = f;
  last_pos[b] = l;
}

// sampleSquared, step 2 (one thread): the rule of SelectionContext.greedyStep.
__global__ void k_sample_pick(const float* delta, const unsigned char* taken, long long rows, long long blocks,
                              const double* sums, const long long* first_in, const long long* last_in, const double* uniforms,
                              int t, int* pick) {
  long long first = -1, last_positive = -1;
  double total = 0;
  for (long long b = 0; b < blocks; ++b) {
    if (first < 0) first = first_in[b];
    if (last_in[b] >= 0) last_positive = last_in[b];
    total += sums[b];
  }
  if (first < 0) {
    *pick = -1;
    return;
  }
  if (!(total > 0) || !isfinite(total)) {
    *pick = (int)first;
    return;
  }
  const double target = uniforms[t] * total;
  double acc = 0;
  long long b = 0;
  for (; b < blocks; ++b) {
    if (acc + sums[b] > target) break;
    acc += sums[b];
  }
  if (b == blocks) {
    *pick = (int)last_positive;
    return;
  }
  long long last_in_block = -1;
  for (long long i = b * kSampleBlock; i < min(rows, (b + 1) * kSampleBlock); ++i) {
    if (taken[i]) continue;
    const double d = delta[i];
    if (d > 0) last_in_block = i;
    acc += d * d;
    if (acc > target) {
      *pick = (int)i;
      return;
    }
  }
  *pick = (int)(last_in_block >= 0 ? last_in_block : last_positive);
}

// Records step t's pick, marks it taken and writes its normalised row (resident pools) as the centre.
__global__ void k_record(const int* pick, int t, const float* delta, const float* delta_max, unsigned char* taken,
                         int* picks, float* div, float* div_max, View all, Shape s, float* cv, int write_centre) {
  const int p = *pick;
  if (threadIdx.x == 0) picks[t] = p;
  if (p < 0) return;
  if (threadIdx.x == 0) {
    div[t] = delta[p];
    div_max[t] = *delta_max;
    taken[p] = 1;
  }
  if (!write_centre) return;
  int off = 0;
  for (int m = 0; m < s.M; ++m) {
    const float inv = s.inv[m][p];
    for (int x = threadIdx.x; x < s.dim[m]; x += blockDim.x) cv[off + x] = load_value(all.data[m], s.half[m], (long long)p * s.dim[m] + x) * inv;
    off += s.dim[m];
  }
}

// Centre-to-centre values d(centre_s, newest) for s < count (warp per centre).
__global__ void k_centre_dist(const float* centres, int count, int total, Shape s, Centre c, const int* pick, float* cd) {
  if (*pick < 0) return;
  const int lane = threadIdx.x & 31;
  const int warps = gridDim.x * (blockDim.x / 32);
  const bool cross = c.form == PP_FORM_MULTIMODAL && c.gamma != 0.f;
  for (int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; w < count; w += warps) {
    const float* a = centres + (long long)w * total;
    float uni = 0.f, cr = 0.f, sum = 0.f;
    for (int x = 0; x < s.M; ++x)
      for (int y = 0; y < s.M; ++y) {
        if (x != y && !cross) continue;
        float acc = 0.f;
        for (int t = lane; t < s.dim[x]; t += 32) acc = fmaf(a[c.off[x] + t], c.cv[c.off[y] + t], acc);
        for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (c.form == PP_FORM_MULTIMODAL) {
          if (x == y)
            uni += unit_distance(acc);
          else
            cr += unit_distance(acc);
        } else if (x == y) {
          sum += acc;
        }
      }
    if (lane == 0) cd[w] = c.form == PP_FORM_MULTIMODAL ? (cross ? uni + c.gamma * cr : uni) : sqrtf(fmaxf(0.f, 2.f * s.M - 2.f * sum));
  }
}

// ------------------------------------------------------------------------------------------
// k-means assignment: 64 rows × all centres, argmin fused into the dot tile.

__global__ void __launch_bounds__(kThreads) k_assign(View v, Shape s, const float* centroids, const float* cnorm, int k,
                                                     int total, int* labels, float* dist) {
  __shared__ float As[kKChunk][kTile + 1];
  __shared__ float Bs[kKChunk][kTile + 1];
  __shared__ float Vs[kTile][kTile + 1];
  __shared__ float qinv[kMaxM][kTile];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const long long q0 = (long long)blockIdx.x * kTile;
  if (tid < kTile) {
    const long long q = q0 + tid;
    for (int m = 0; m < s.M; ++m) qinv[m][tid] = q < v.count ? s.inv[m][view_global(v, q)] : 0.f;
  }
  float best = INFINITY;
  int arg = -1;
  for (int c0 = 0; c0 < k; c0 += kTile) {
    const int cn = min(kTile, k - c0);
    float acc[4][4] = {};
    int off = 0;
    for (int m = 0; m < s.M; ++m) {
      const int K = s.dim[m];
      float dot[4][4] = {};
      for (int k0 = 0; k0 < K; k0 += kKChunk) {
        __syncthreads();
        for (int e = tid; e < kTile * kKChunk; e += kThreads) {
          const int row = e / kKChunk, kk = e % kKChunk;
          const long long kq = k0 + kk;
          float xa = 0.f, xb = 0.f;
          if (kq < K) {
            if (q0 + row < v.count) xa = load_value(v.data[m], s.half[m], view_local(v, q0 + row) * K + kq);
            if (row < cn) xb = centroids[(long long)(c0 + row) * total + off + kq];
          }
          As[kk][row] = xa;
          Bs[kk][row] = xb;
        }
        __syncthreads();
        for (int kk = 0; kk < kKChunk; ++kk)
          for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) dot[i][j] = fmaf(As[kk][ty + 16 * i], Bs[kk][tx + 16 * j], dot[i][j]);
      }
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] += dot[i][j] * qinv[m][ty + 16 * i];
      off += K;
    }
    __syncthreads();
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const int cj = tx + 16 * j;
        Vs[ty + 16 * i][cj] = cj < cn ? fmaxf(0.f, ((float)s.M - 2.f * acc[i][j]) + cnorm[c0 + cj]) : INFINITY;
      }
    __syncthreads();
    if (tid < kTile)
      for (int j = 0; j < cn; ++j)
        if (Vs[tid][j] < best) {
          best = Vs[tid][j];
          arg = c0 + j;
        }
  }
  if (tid < kTile && q0 + tid < v.count) {
    labels[q0 + tid] = arg;
    dist[q0 + tid] = best;
  }
}

// ------------------------------------------------------------------------------------------
// Host side.

// A device buffer that only grows. Freeing waits for the device first: a kernel queued on the
// stream may still be reading the old buffer.
template <class T>
struct DeviceArray {
  T* p = nullptr;
  size_t n = 0;
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : p(o.p), n(o.n) {
    o.p = nullptr;
    o.n = 0;
  }
  void resize(size_t count) {
    if (count <= n) return;
    release();
    if (count) CK(cudaMalloc(&p, count * sizeof(T)));
    n = count;
  }
  void release() {
    if (p) {
      cudaDeviceSynchronize();
      cudaFree(p);
    }
    p = nullptr;
    n = 0;
  }
  ~DeviceArray() { release(); }
};

int grid_for(long long work, int per_block, int max_blocks = 65535) {
  return (int)std::max<long long>(1, std::min<long long>(max_blocks, (work + per_block - 1) / per_block));
}

}  // namespace

struct pp_cuda_select {
  long long rows = 0;
  int M = 0;
  std::vector<int> dims, half, offsets;
  int total = 0;
  std::vector<const void*> host;  // caller's arrays
  bool resident = false;
  std::vector<void*> dev;  // resident rows per modality
  std::vector<DeviceArray<unsigned char>> stage;  // streamed: a block of rows per modality
  long long stage_rows = 0;
  std::vector<DeviceArray<float>> inv;
  std::vector<std::vector<float>> inv_host;
  cudaStream_t stream = nullptr;
  int sms = 1;

  // k-means
  DeviceArray<float> centroids, cnorm;
  int k = 0;

  // greedy
  bool g_ready = false;
  int g_form = PP_FORM_EUCLIDEAN;
  float g_gamma = 0.f;
  double g_w = 1;
  int g_mode = 0;
  bool g_has_base = false;
  DeviceArray<float> base, delta, cv, centres, cd, part_v, delta_max;
  DeviceArray<int> owner, pick, picks;
  DeviceArray<unsigned char> taken;
  DeviceArray<long long> part_i, argmax, sblock_first, sblock_last;
  DeviceArray<double> part_s, sblock_sums, uniforms;
  DeviceArray<float> div, div_max;
  long long g_count = 0;
  bool g_pruning = true;
  double g_slack = 2, g_margin = 0;

  size_t elem(int m) const { return half[m] ? 2 : 4; }

  Shape shape() const {
    Shape s{};
    s.M = M;
    for (int m = 0; m < M; ++m) {
      s.half[m] = half[m];
      s.dim[m] = dims[m];
      s.inv[m] = inv[m].p;
    }
    return s;
  }

  // Rows [start, start+count) as a View: the resident arrays, or a staged copy (streamed).
  View range_view(long long start, long long count) {
    View v{};
    v.start = start;
    v.count = count;
    for (int m = 0; m < M; ++m) {
      if (resident) {
        v.data[m] = static_cast<const unsigned char*>(dev[m]) + (size_t)start * dims[m] * elem(m);
      } else {
        if (count > stage_rows) throw Failure("internal: staged block larger than the staging buffer");
        CK(cudaMemcpyAsync(stage[m].p, static_cast<const unsigned char*>(host[m]) + (size_t)start * dims[m] * elem(m),
                           (size_t)count * dims[m] * elem(m), cudaMemcpyHostToDevice, stream));
        v.data[m] = stage[m].p;
      }
    }
    return v;
  }

  // Explicit rows as a View: device index lists on resident pools, a staged gather otherwise.
  View index_view(const int* host_idx, long long count, DeviceArray<int>& dev_idx) {
    View v{};
    v.count = count;
    dev_idx.resize((size_t)std::max<long long>(1, count));
    CK(cudaMemcpyAsync(dev_idx.p, host_idx, (size_t)count * sizeof(int), cudaMemcpyHostToDevice, stream));
    v.global = dev_idx.p;
    if (resident) {
      v.local = dev_idx.p;
      for (int m = 0; m < M; ++m) v.data[m] = dev[m];
      return v;
    }
    if (count > stage_rows) throw Failure("streamed pool: an index list longer than the staging block");
    for (int m = 0; m < M; ++m) {
      std::vector<unsigned char> buf((size_t)count * dims[m] * elem(m));
      const size_t row_bytes = (size_t)dims[m] * elem(m);
      for (long long r = 0; r < count; ++r)
        std::memcpy(buf.data() + r * row_bytes, static_cast<const unsigned char*>(host[m]) + (size_t)host_idx[r] * row_bytes, row_bytes);
      CK(cudaMemcpyAsync(stage[m].p, buf.data(), buf.size(), cudaMemcpyHostToDevice, stream));
      CK(cudaStreamSynchronize(stream));  // buf is pageable and about to go away
      v.data[m] = stage[m].p;
    }
    return v;
  }

  // Rows per pass over the pool: everything when resident, a staging block otherwise.
  long long block_rows() const { return resident ? rows : stage_rows; }
};

namespace {

using pp_cuda::guarded;

Centre make_centre(const pp_cuda_select* s, const float* cv, int form, float gamma) {
  Centre c{};
  c.cv = cv;
  c.form = form;
  c.gamma = gamma;
  for (int m = 0; m < s->M; ++m) c.off[m] = s->offsets[m];
  return c;
}

bool all_half(const pp_cuda_select* s) {
  return std::all_of(s->half.begin(), s->half.end(), [](int h) { return h != 0; });
}

void launch_pair(const PairArgs& a, long long qtiles, bool half, cudaStream_t stream) {
  const dim3 grid((unsigned)qtiles, (unsigned)a.shares);
  if (half)
    k_pair<true><<<grid, kThreads, 0, stream>>>(a);
  else
    k_pair<false><<<grid, kThreads, 0, stream>>>(a);
  CK(cudaGetLastError());
}

}  // namespace

extern "C" {

int pp_cuda_select_open(int64_t rows, int modalities, const int64_t* dims, const int* half, const void* const* data,
                        pp_cuda_select** out, char* err, size_t err_len) {
  *out = nullptr;
  return guarded(err, err_len, [&] {
    if (modalities < 1 || modalities > kMaxM) throw Failure("the CUDA selection engine supports 1 to 8 modalities");
    auto s = std::make_unique<pp_cuda_select>();
    s->rows = rows;
    s->M = modalities;
    size_t bytes = 0;
    for (int m = 0; m < modalities; ++m) {
      if (dims[m] < 1 || dims[m] > (1 << 20)) throw Failure("modality dimension out of range");
      s->dims.push_back((int)dims[m]);
      s->half.push_back(half[m] ? 1 : 0);
      s->offsets.push_back(s->total);
      s->total += (int)dims[m];
      s->host.push_back(data[m]);
      bytes += (size_t)rows * dims[m] * (half[m] ? 2 : 4);
    }
    int device = 0;
    CK(cudaGetDevice(&device));
    CK(cudaDeviceGetAttribute(&s->sms, cudaDevAttrMultiProcessorCount, device));
    CK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    s->inv.resize(modalities);
    s->inv_host.assign(modalities, std::vector<float>((size_t)rows, 0.f));
    for (int m = 0; m < modalities; ++m) s->inv[m].resize((size_t)rows);
    size_t free_mem = 0, total_mem = 0;
    CK(cudaMemGetInfo(&free_mem, &total_mem));
    // Resident when the rows take at most 70% of what is free (the rest: state, tiles, others).
    s->resident = (double)bytes <= 0.7 * (double)free_mem;
    if (s->resident) {
      for (int m = 0; m < modalities; ++m) {
        void* p = nullptr;
        if (cudaMalloc(&p, (size_t)rows * dims[m] * (half[m] ? 2 : 4)) != cudaSuccess) {
          cudaGetLastError();
          for (void* q : s->dev) cudaFree(q);
          s->dev.clear();
          s->resident = false;
          break;
        }
        s->dev.push_back(p);
      }
    }
    if (!s->resident) {
      // Staging blocks of ~1/8 of free memory over all modalities.
      size_t row_bytes = 0;
      for (int m = 0; m < modalities; ++m) row_bytes += (size_t)dims[m] * (half[m] ? 2 : 4);
      s->stage_rows = std::max<long long>(kTile, std::min<long long>(rows, (long long)(free_mem / 8 / row_bytes)));
      s->stage.resize(modalities);
      for (int m = 0; m < modalities; ++m) s->stage[m].resize((size_t)s->stage_rows * dims[m] * (half[m] ? 2 : 4));
    }
    *out = s.release();
  });
}

void pp_cuda_select_close(pp_cuda_select* s) {
  if (!s) return;
  for (void* p : s->dev) cudaFree(p);
  if (s->stream) cudaStreamDestroy(s->stream);
  delete s;
}

int pp_cuda_select_prepare(pp_cuda_select* s, int64_t start, int64_t count, int64_t* bad_rows, float* alignment,
                           double* sums, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    const bool align = alignment && s->M >= 2 && std::all_of(s->dims.begin(), s->dims.end(), [&](int d) { return d == s->dims[0]; });
    DeviceArray<unsigned long long> bad;
    DeviceArray<double> dsums;
    DeviceArray<float> dalign;
    bad.resize(s->M);
    dsums.resize(s->total);
    dalign.resize((size_t)std::max<int64_t>(1, count));
    std::vector<unsigned long long> none(s->M, ~0ull);
    CK(cudaMemcpyAsync(bad.p, none.data(), s->M * sizeof(unsigned long long), cudaMemcpyHostToDevice, s->stream));
    CK(cudaMemsetAsync(dsums.p, 0, s->total * sizeof(double), s->stream));
    const Shape shape = s->shape();
    for (long long b0 = 0; b0 < count; b0 += s->block_rows()) {
      const long long n = std::min<long long>(s->block_rows(), count - b0);
      if (s->resident) {
        // Upload this chunk of the caller's rows into the resident arrays.
        for (int m = 0; m < s->M; ++m) {
          const size_t off = (size_t)(start + b0) * s->dims[m] * s->elem(m);
          CK(cudaMemcpyAsync(static_cast<unsigned char*>(s->dev[m]) + off, static_cast<const unsigned char*>(s->host[m]) + off,
                             (size_t)n * s->dims[m] * s->elem(m), cudaMemcpyHostToDevice, s->stream));
        }
      }
      const View v = s->range_view(start + b0, n);
      InvOut inv_out{};
      for (int m = 0; m < s->M; ++m) inv_out.p[m] = s->inv[m].p;
      k_prepare<<<grid_for(n, kThreads / 32, 16 * s->sms), kThreads, 0, s->stream>>>(v, shape, inv_out, bad.p, dalign.p + b0,
                                                                                      align ? 1 : 0);
      CK(cudaGetLastError());
      const long long chunk = 2048;
      dim3 grid((unsigned)((s->total + 255) / 256), (unsigned)((n + chunk - 1) / chunk));
      k_colsums<<<grid, 256, 0, s->stream>>>(v, shape, s->total, chunk, dsums.p);
      CK(cudaGetLastError());
      if (!s->resident) CK(cudaStreamSynchronize(s->stream));  // the staging buffer is reused
    }
    std::vector<unsigned long long> hb(s->M);
    CK(cudaMemcpyAsync(hb.data(), bad.p, s->M * sizeof(unsigned long long), cudaMemcpyDeviceToHost, s->stream));
    CK(cudaMemcpyAsync(sums, dsums.p, s->total * sizeof(double), cudaMemcpyDeviceToHost, s->stream));
    if (align) CK(cudaMemcpyAsync(alignment, dalign.p, (size_t)count * sizeof(float), cudaMemcpyDeviceToHost, s->stream));
    for (int m = 0; m < s->M; ++m)
      CK(cudaMemcpyAsync(s->inv_host[m].data() + start, s->inv[m].p + start, (size_t)count * sizeof(float), cudaMemcpyDeviceToHost,
                         s->stream));
    CK(cudaStreamSynchronize(s->stream));
    for (int m = 0; m < s->M; ++m) bad_rows[m] = hb[m] == ~0ull ? -1 : (int64_t)hb[m];
  });
}

int pp_cuda_select_pair_reduce(pp_cuda_select* s, const int32_t* query_idx, int64_t query_start, int64_t query_count,
                               const int32_t* ref_idx, int64_t ref_start, int64_t ref_count, int form, double gamma,
                               int kind, int64_t k, double radius, const uint8_t* ref_mask, const int32_t* labels,
                               const float* cover, double* out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (kind == PP_REDUCE_KNN_MEAN && (k < 1 || k > kKnnMax)) throw Failure("knnMean on CUDA supports 1 ≤ k ≤ 128");
    const long long nq = query_count, nr = ref_count;
    if (nq == 0) return;
    PairArgs a{};
    a.s = s->shape();
    a.form = form;
    a.gamma = (float)gamma;
    if (form == PP_FORM_MULTIMODAL) {
      for (int x = 0; x < s->M; ++x)
        for (int y = 0; y < s->M; ++y)
          if (x == y || gamma != 0) {
            a.tq[a.nterms] = x;
            a.tr[a.nterms] = y;
            ++a.nterms;
          }
    }
    a.kind = kind;
    a.k = (int)k;
    a.radius = radius;
    DeviceArray<unsigned char> dmask;
    DeviceArray<int> dlabels, qidx, ridx;
    DeviceArray<float> dcover;
    const size_t rows = (size_t)s->rows;
    if (ref_mask) {
      dmask.resize(rows);
      CK(cudaMemcpyAsync(dmask.p, ref_mask, rows, cudaMemcpyHostToDevice, s->stream));
      a.mask = dmask.p;
    }
    if (labels) {
      dlabels.resize(rows);
      CK(cudaMemcpyAsync(dlabels.p, labels, rows * sizeof(int), cudaMemcpyHostToDevice, s->stream));
      a.labels = dlabels.p;
    }
    if (cover) {
      dcover.resize(rows);
      CK(cudaMemcpyAsync(dcover.p, cover, rows * sizeof(float), cudaMemcpyHostToDevice, s->stream));
      a.cover = dcover.p;
    }
    // Queries: one View for the whole call (streamed pools stage at most one block of them).
    if (!s->resident && nq > s->stage_rows / 2) throw Failure("streamed pool: too many queries in one call");
    const long long qtiles = (nq + kTile - 1) / kTile;
    const long long rtiles_all = std::max<long long>(1, (nr + kTile - 1) / kTile);
    a.shares = (int)std::min<long long>(rtiles_all, std::max<long long>(1, (4LL * s->sms + qtiles - 1) / qtiles));
    DeviceArray<float> knn;
    DeviceArray<int> knn_n;
    DeviceArray<double> val;
    DeviceArray<long long> arg;
    const size_t slots = (size_t)nq * a.shares;
    knn_n.resize(slots);
    val.resize(slots);
    arg.resize(slots);
    if (kind == PP_REDUCE_KNN_MEAN) knn.resize(slots * k);
    CK(cudaMemsetAsync(knn_n.p, 0, slots * sizeof(int), s->stream));
    {
      const double init = kind == PP_REDUCE_MIN_OTHER_LABEL || kind == kMinArg ? INFINITY : kind == PP_REDUCE_MAX ? -INFINITY : 0.0;
      std::vector<double> h(slots, init);
      CK(cudaMemcpyAsync(val.p, h.data(), slots * sizeof(double), cudaMemcpyHostToDevice, s->stream));
      CK(cudaStreamSynchronize(s->stream));
    }
    a.knn = knn.p;
    a.knn_n = knn_n.p;
    a.val = val.p;
    a.arg = arg.p;

    if (s->resident) {
      a.q = query_idx ? s->index_view(query_idx, nq, qidx) : s->range_view(query_start, nq);
      a.r = ref_idx ? s->index_view(ref_idx, nr, ridx) : s->range_view(ref_start, nr);
      a.ref_pos0 = 0;
      launch_pair(a, qtiles, all_half(s), s->stream);
    } else {
      // Streamed: the queries are gathered into the second half of the staging buffers, the refs
      // stream through the first half block by block (every launch continues the state).
      std::vector<int> qlist((size_t)nq);
      for (long long i = 0; i < nq; ++i) qlist[i] = query_idx ? query_idx[i] : (int)(query_start + i);
      const long long half_rows = s->stage_rows / 2;
      // Temporarily point the staging "block" at its halves.
      std::vector<unsigned char*> base(s->M);
      for (int m = 0; m < s->M; ++m) base[m] = s->stage[m].p;
      View qv{};
      qv.count = nq;
      qidx.resize((size_t)nq);
      CK(cudaMemcpyAsync(qidx.p, qlist.data(), nq * sizeof(int), cudaMemcpyHostToDevice, s->stream));
      qv.global = qidx.p;
      for (int m = 0; m < s->M; ++m) {
        const size_t row_bytes = (size_t)s->dims[m] * s->elem(m);
        std::vector<unsigned char> buf((size_t)nq * row_bytes);
        for (long long i = 0; i < nq; ++i)
          std::memcpy(buf.data() + i * row_bytes, static_cast<const unsigned char*>(s->host[m]) + (size_t)qlist[i] * row_bytes, row_bytes);
        unsigned char* qpart = base[m] + (size_t)half_rows * row_bytes;
        CK(cudaMemcpyAsync(qpart, buf.data(), buf.size(), cudaMemcpyHostToDevice, s->stream));
        CK(cudaStreamSynchronize(s->stream));
        qv.data[m] = qpart;
      }
      a.q = qv;
      std::vector<int> rlist;
      if (ref_idx) rlist.assign(ref_idx, ref_idx + nr);
      for (long long b0 = 0; b0 < nr; b0 += half_rows) {
        const long long n = std::min(half_rows, nr - b0);
        View rv{};
        rv.count = n;
        if (ref_idx) {
          ridx.resize((size_t)n);
          CK(cudaMemcpyAsync(ridx.p, rlist.data() + b0, n * sizeof(int), cudaMemcpyHostToDevice, s->stream));
          rv.global = ridx.p;
          for (int m = 0; m < s->M; ++m) {
            const size_t row_bytes = (size_t)s->dims[m] * s->elem(m);
            std::vector<unsigned char> buf((size_t)n * row_bytes);
            for (long long i = 0; i < n; ++i)
              std::memcpy(buf.data() + i * row_bytes, static_cast<const unsigned char*>(s->host[m]) + (size_t)rlist[b0 + i] * row_bytes, row_bytes);
            CK(cudaMemcpyAsync(base[m], buf.data(), buf.size(), cudaMemcpyHostToDevice, s->stream));
            CK(cudaStreamSynchronize(s->stream));
            rv.data[m] = base[m];
          }
        } else {
          rv.start = ref_start + b0;
          for (int m = 0; m < s->M; ++m) {
            const size_t row_bytes = (size_t)s->dims[m] * s->elem(m);
            CK(cudaMemcpyAsync(base[m], static_cast<const unsigned char*>(s->host[m]) + (size_t)(ref_start + b0) * row_bytes, (size_t)n * row_bytes,
                               cudaMemcpyHostToDevice, s->stream));
            rv.data[m] = base[m];
          }
        }
        a.r = rv;
        a.ref_pos0 = b0;
        // The share count stays fixed across blocks (the state is indexed by it); shares beyond a
        // small block's tiles simply get no tiles.
        launch_pair(a, qtiles, all_half(s), s->stream);
        CK(cudaStreamSynchronize(s->stream));
      }
    }

    // Merge the shares on the host, in order.
    std::vector<int> hn(slots);
    std::vector<double> hv(slots);
    std::vector<long long> ha;
    std::vector<float> hk;
    CK(cudaMemcpyAsync(hn.data(), knn_n.p, slots * sizeof(int), cudaMemcpyDeviceToHost, s->stream));
    CK(cudaMemcpyAsync(hv.data(), val.p, slots * sizeof(double), cudaMemcpyDeviceToHost, s->stream));
    if (kind == PP_REDUCE_KNN_MEAN) {
      hk.resize(slots * k);
      CK(cudaMemcpyAsync(hk.data(), knn.p, slots * k * sizeof(float), cudaMemcpyDeviceToHost, s->stream));
    }
    CK(cudaStreamSynchronize(s->stream));
    std::vector<float> merged((size_t)k);
    for (long long q = 0; q < nq; ++q) {
      const size_t s0 = (size_t)q * a.shares;
      if (kind == PP_REDUCE_KNN_MEAN) {
        int filled = 0;
        for (int sh = 0; sh < a.shares; ++sh)
          for (int t = 0; t < hn[s0 + sh]; ++t) {
            const float v = hk[(s0 + sh) * k + t];
            if (filled == k && !(v < merged[k - 1])) continue;
            int p = filled < k ? filled++ : (int)k - 1;
            while (p > 0 && merged[p - 1] > v) {
              merged[p] = merged[p - 1];
              --p;
            }
            merged[p] = v;
          }
        double sum = 0;
        for (int t = 0; t < filled; ++t) sum += merged[t];
        out[q] = filled ? sum / filled : INFINITY;
      } else if (kind == PP_REDUCE_COUNT_WITHIN || kind == PP_REDUCE_GAIN) {
        double sum = 0;
        for (int sh = 0; sh < a.shares; ++sh) sum += hv[s0 + sh];
        out[q] = sum;
      } else if (kind == PP_REDUCE_MIN_OTHER_LABEL) {
        double m = INFINITY;
        for (int sh = 0; sh < a.shares; ++sh) m = std::min(m, hv[s0 + sh]);
        out[q] = m;
      } else {
        double m = -INFINITY;
        for (int sh = 0; sh < a.shares; ++sh) m = std::max(m, hv[s0 + sh]);
        out[q] = m;
      }
    }
  });
}

int pp_cuda_select_distances_from(pp_cuda_select* s, int64_t row, int form, double gamma, float* out, char* err,
                                  size_t err_len) {
  return guarded(err, err_len, [&] {
    const int total = s->total;
    std::vector<float> cvh((size_t)total);
    for (int m = 0; m < s->M; ++m) {
      const float inv = s->inv_host[m][(size_t)row];
      for (int t = 0; t < s->dims[m]; ++t) {
        const size_t at = (size_t)row * s->dims[m] + t;
        const float x = s->half[m] ? __half2float(__ushort_as_half(static_cast<const unsigned short*>(s->host[m])[at]))
                                   : static_cast<const float*>(s->host[m])[at];
        cvh[s->offsets[m] + t] = x * inv;
      }
    }
    DeviceArray<float> cv, dout;
    cv.resize(total);
    dout.resize((size_t)s->block_rows());
    CK(cudaMemcpyAsync(cv.p, cvh.data(), total * sizeof(float), cudaMemcpyHostToDevice, s->stream));
    const Centre c = make_centre(s, cv.p, form, (float)gamma);
    for (long long b0 = 0; b0 < s->rows; b0 += s->block_rows()) {
      const long long n = std::min(s->block_rows(), s->rows - b0);
      const View v = s->range_view(b0, n);
      k_row_values<<<grid_for(n, kThreads / 32, 16 * s->sms), kThreads, 0, s->stream>>>(v, s->shape(), c, row, dout.p);
      CK(cudaGetLastError());
      CK(cudaMemcpyAsync(out + b0, dout.p, n * sizeof(float), cudaMemcpyDeviceToHost, s->stream));
      CK(cudaStreamSynchronize(s->stream));
    }
  });
}

int pp_cuda_select_gather(pp_cuda_select* s, const int32_t* idx, int64_t n, float* out, char* err, size_t err_len) {
  // Small (centres, re-seeds): normalised on the host from the caller's rows and the norms.
  return guarded(err, err_len, [&] {
    for (int64_t a = 0; a < n; ++a)
      for (int m = 0; m < s->M; ++m) {
        const float inv = s->inv_host[m][(size_t)idx[a]];
        for (int t = 0; t < s->dims[m]; ++t) {
          const size_t at = (size_t)idx[a] * s->dims[m] + t;
          const float x = s->half[m] ? __half2float(__ushort_as_half(static_cast<const unsigned short*>(s->host[m])[at]))
                                     : static_cast<const float*>(s->host[m])[at];
          out[a * s->total + s->offsets[m] + t] = x * inv;
        }
      }
  });
}

int pp_cuda_select_set_centroids(pp_cuda_select* s, const float* c, int64_t k, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    s->k = (int)k;
    s->centroids.resize((size_t)k * s->total);
    s->cnorm.resize((size_t)k);
    std::vector<float> norms((size_t)k);
    for (int64_t j = 0; j < k; ++j) {
      double acc = 0;
      for (int t = 0; t < s->total; ++t) acc += (double)c[j * s->total + t] * c[j * s->total + t];
      norms[j] = (float)acc;
    }
    CK(cudaMemcpyAsync(s->centroids.p, c, (size_t)k * s->total * sizeof(float), cudaMemcpyHostToDevice, s->stream));
    CK(cudaMemcpyAsync(s->cnorm.p, norms.data(), (size_t)k * sizeof(float), cudaMemcpyHostToDevice, s->stream));
    CK(cudaStreamSynchronize(s->stream));
  });
}

int pp_cuda_select_assign(pp_cuda_select* s, int64_t start, int64_t count, int32_t* labels, float* distances,
                          double* sums, double* counts, int64_t* changed, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (s->k < 1) throw Failure("assign before setCentroids");
    DeviceArray<int> dl;
    DeviceArray<float> dd;
    std::vector<int32_t> fresh((size_t)count);
    const long long block = std::max<long long>(kTile, s->block_rows());
    dl.resize((size_t)std::min<long long>(block, count));
    dd.resize((size_t)std::min<long long>(block, count));
    for (long long b0 = 0; b0 < count; b0 += block) {
      const long long n = std::min(block, count - b0);
      const View v = s->range_view(start + b0, n);
      k_assign<<<(unsigned)((n + kTile - 1) / kTile), kThreads, 0, s->stream>>>(v, s->shape(), s->centroids.p, s->cnorm.p, s->k, s->total,
                                                                          dl.p, dd.p);
      CK(cudaGetLastError());
      CK(cudaMemcpyAsync(fresh.data() + b0, dl.p, n * sizeof(int), cudaMemcpyDeviceToHost, s->stream));
      CK(cudaMemcpyAsync(distances + b0, dd.p, n * sizeof(float), cudaMemcpyDeviceToHost, s->stream));
      CK(cudaStreamSynchronize(s->stream));
    }
    int64_t ch = 0;
    for (int64_t r = 0; r < count; ++r) {
      if (labels[r] != fresh[r]) ++ch;
      labels[r] = fresh[r];
    }
    *changed = ch;
    // Centre sums on the host from the caller's rows (rows in order within each cluster).
    for (int64_t r = 0; r < count; ++r) {
      const int64_t i = start + r;
      const int c = labels[r];
      counts[c] += 1;
      for (int m = 0; m < s->M; ++m) {
        const float inv = s->inv_host[m][(size_t)i];
        for (int t = 0; t < s->dims[m]; ++t) {
          const size_t at = (size_t)i * s->dims[m] + t;
          const float x = s->half[m] ? __half2float(__ushort_as_half(static_cast<const unsigned short*>(s->host[m])[at]))
                                     : static_cast<const float*>(s->host[m])[at];
          sums[(size_t)c * s->total + s->offsets[m] + t] += (double)(x * inv);
        }
      }
    }
  });
}

int pp_cuda_select_greedy_init(pp_cuda_select* s, int form, double gamma, const float* base, double w_diversity,
                               const uint8_t* exclude, int mode, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (form == PP_FORM_SIMILARITY) throw Failure("greedy: the similarity form is not a distance");
    const size_t rows = (size_t)s->rows;
    s->g_form = form;
    s->g_gamma = (float)gamma;
    s->g_w = w_diversity;
    s->g_mode = mode;
    s->g_has_base = base != nullptr;
    s->delta.resize(rows);
    s->owner.resize(rows);
    s->taken.resize(rows);
    s->cv.resize(s->total);
    s->pick.resize(1);
    s->delta_max.resize(1);
    s->argmax.resize(1);
    if (base) {
      s->base.resize(rows);
      CK(cudaMemcpyAsync(s->base.p, base, rows * sizeof(float), cudaMemcpyHostToDevice, s->stream));
    }
    std::vector<float> inf(rows, INFINITY);
    std::vector<int> none(rows, -1);
    CK(cudaMemcpyAsync(s->delta.p, inf.data(), rows * sizeof(float), cudaMemcpyHostToDevice, s->stream));
    CK(cudaMemcpyAsync(s->owner.p, none.data(), rows * sizeof(int), cudaMemcpyHostToDevice, s->stream));
    CK(cudaMemcpyAsync(s->taken.p, exclude, rows, cudaMemcpyHostToDevice, s->stream));
    // Max δ / argmax over candidates with no centre: +inf at the first candidate.
    long long first = -1;
    for (size_t i = 0; i < rows && first < 0; ++i)
      if (!exclude[i]) first = (long long)i;
    const float dmax = first >= 0 ? INFINITY : -INFINITY;
    CK(cudaMemcpyAsync(s->delta_max.p, &dmax, sizeof(float), cudaMemcpyHostToDevice, s->stream));
    CK(cudaMemcpyAsync(s->argmax.p, &first, sizeof(long long), cudaMemcpyHostToDevice, s->stream));
    CK(cudaStreamSynchronize(s->stream));
    s->g_count = 0;
    s->g_pruning = true;
    const pp::sel::Metric metric{form, gamma};
    s->g_slack = 1.0 + pp::sel::prune_factor(metric, s->M);
    s->g_margin = pp::sel::prune_margin(metric, std::vector<int64_t>(s->dims.begin(), s->dims.end()));
    s->g_ready = true;
  });
}

namespace {

// One δ update for the centre already written to `cv` (device) whose pick index is in *pick.
void update_with_centre(pp_cuda_select* s, const float* cv_dev, long long id) {
  const Centre c = make_centre(s, cv_dev, s->g_form, s->g_gamma);
  const Shape shape = s->shape();
  const float* cd = nullptr;
  if (s->g_pruning && id > 0) {
    // Grown geometrically: a reallocation waits for the device, which must stay rare.
    if ((size_t)id > s->cd.n) s->cd.resize(std::max<size_t>({(size_t)id, 2 * s->cd.n, 1024}));
    k_centre_dist<<<grid_for(id, kThreads / 32, 8 * s->sms), kThreads, 0, s->stream>>>(s->centres.p, (int)id, s->total, shape, c,
                                                                                      s->pick.p, s->cd.p);
    CK(cudaGetLastError());
    cd = s->cd.p;
  }
  const int parts_per_block = 1;
  const long long block = s->block_rows();
  const int blocks_per_pass = grid_for(std::min(block, s->rows), kThreads / 32, 8 * s->sms);
  const long long passes = (s->rows + block - 1) / block;
  s->part_v.resize((size_t)blocks_per_pass * passes * parts_per_block);
  s->part_i.resize((size_t)blocks_per_pass * passes * parts_per_block);
  for (long long p = 0; p < passes; ++p) {
    const long long b0 = p * block, n = std::min(block, s->rows - b0);
    const View v = s->range_view(b0, n);
    k_update<<<blocks_per_pass, kThreads, 0, s->stream>>>(v, shape, c, cd, (int)id, s->g_slack, s->g_margin, s->g_pruning ? 1 : 0,
                                                          s->delta.p, s->owner.p, s->taken.p, s->pick.p,
                                                          s->part_v.p + p * blocks_per_pass, s->part_i.p + p * blocks_per_pass);
    CK(cudaGetLastError());
    if (!s->resident) CK(cudaStreamSynchronize(s->stream));
  }
  k_final_max<<<1, kThreads, 0, s->stream>>>(s->part_v.p, s->part_i.p, (int)(blocks_per_pass * passes), s->pick.p, s->delta_max.p,
                                             s->argmax.p);
  CK(cudaGetLastError());
}

// Keeps room for one more centre's normalised row when pruning (or stops pruning at the caps).
float* centre_slot(pp_cuda_select* s, long long id) {
  const long long after = id + 1;
  if (s->g_pruning && (after > pp::sel::prune_center_cap(s->rows) || after * s->total * 4LL > pp::sel::kPruneMaxCenterBytes))
    s->g_pruning = false;
  if (!s->g_pruning) return s->cv.p;
  if ((size_t)(after * s->total) > s->centres.n) {
    // Grow geometrically, keeping the centres already stored.
    DeviceArray<float> bigger;
    bigger.resize((size_t)std::max<long long>(after * s->total, 2 * (long long)s->centres.n));
    if (s->centres.p) CK(cudaMemcpyAsync(bigger.p, s->centres.p, (size_t)id * s->total * sizeof(float), cudaMemcpyDeviceToDevice, s->stream));
    CK(cudaStreamSynchronize(s->stream));
    std::swap(s->centres.p, bigger.p);
    std::swap(s->centres.n, bigger.n);
  }
  return s->centres.p + id * s->total;
}

// Writes row `row`'s normalised values (from the host copy) to the device centre slot.
void upload_centre(pp_cuda_select* s, long long row, float* slot) {
  std::vector<float> cvh((size_t)s->total);
  for (int m = 0; m < s->M; ++m) {
    const float inv = s->inv_host[m][(size_t)row];
    for (int t = 0; t < s->dims[m]; ++t) {
      const size_t at = (size_t)row * s->dims[m] + t;
      const float x = s->half[m] ? __half2float(__ushort_as_half(static_cast<const unsigned short*>(s->host[m])[at]))
                                 : static_cast<const float*>(s->host[m])[at];
      cvh[s->offsets[m] + t] = x * inv;
    }
  }
  CK(cudaMemcpyAsync(slot, cvh.data(), s->total * sizeof(float), cudaMemcpyHostToDevice, s->stream));
  CK(cudaStreamSynchronize(s->stream));
}

}  // namespace

int pp_cuda_select_greedy_add(pp_cuda_select* s, const int32_t* idx, int64_t n, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (!s->g_ready) throw Failure("greedyAddCenters before greedyInit");
    std::vector<unsigned char> one(1, 1);
    for (int64_t a = 0; a < n; ++a) {
      const long long id = s->g_count;
      const int row = idx[a];
      CK(cudaMemcpyAsync(s->pick.p, &row, sizeof(int), cudaMemcpyHostToDevice, s->stream));
      CK(cudaMemcpyAsync(s->taken.p + row, one.data(), 1, cudaMemcpyHostToDevice, s->stream));
      float* slot = centre_slot(s, id);
      upload_centre(s, row, slot);
      update_with_centre(s, slot, id);
      s->g_count = id + 1;
    }
    CK(cudaStreamSynchronize(s->stream));
  });
}

int pp_cuda_select_greedy_step(pp_cuda_select* s, int64_t steps, const double* uniforms, int32_t* picks, float* diversity,
                               float* diversity_max, int64_t* made, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (!s->g_ready) throw Failure("greedyStep before greedyInit");
    *made = 0;
    if (steps <= 0) return;
    s->picks.resize((size_t)steps);
    s->div.resize((size_t)steps);
    s->div_max.resize((size_t)steps);
    const long long rows = s->rows;
    const long long sblocks = (rows + kSampleBlock - 1) / kSampleBlock;
    if (s->g_mode == 1) {
      if (!uniforms) throw Failure("sampleSquared needs uniforms");
      s->uniforms.resize((size_t)steps);
      CK(cudaMemcpyAsync(s->uniforms.p, uniforms, steps * sizeof(double), cudaMemcpyHostToDevice, s->stream));
      s->sblock_sums.resize((size_t)sblocks);
      s->sblock_first.resize((size_t)sblocks);
      s->sblock_last.resize((size_t)sblocks);
    }
    const int score_blocks = grid_for(rows, kThreads, 4 * s->sms);
    if (s->g_has_base) {
      s->part_s.resize((size_t)score_blocks);
      s->part_i.resize(std::max(s->part_i.n, (size_t)score_blocks));
      s->part_v.resize(std::max(s->part_v.n, (size_t)score_blocks));
    }
    View all{};
    if (s->resident) all = s->range_view(0, rows);
    for (int64_t t = 0; t < steps; ++t) {
      const long long id = s->g_count + t;
      // 1. choose
      if (s->g_mode == 1) {
        k_sample_blocks<<<grid_for(sblocks, 128), 128, 0, s->stream>>>(s->delta.p, s->taken.p, rows, sblocks, s->sblock_sums.p,
                                                                        s->sblock_first.p, s->sblock_last.p);
        k_sample_pick<<<1, 1, 0, s->stream>>>(s->delta.p, s->taken.p, rows, sblocks, s->sblock_sums.p, s->sblock_first.p,
                                              s->sblock_last.p, s->uniforms.p, (int)t, s->pick.p);
      } else if (s->g_has_base) {
        k_score<<<score_blocks, kThreads, 0, s->stream>>>(s->base.p, s->delta.p, s->taken.p, rows, s->g_w, id > 0 ? 1 : 0,
                                                          s->delta_max.p, s->part_v.p, s->part_i.p, s->part_s.p);
        k_final_score<<<1, 32, 0, s->stream>>>(s->part_s.p, s->part_i.p, score_blocks, s->pick.p);
      } else {
        k_pick_argmax<<<1, 1, 0, s->stream>>>(s->argmax.p, s->pick.p);
      }
      CK(cudaGetLastError());
      // 2. record, write the centre row (resident: on the device, no host round trip)
      float* slot = centre_slot(s, id);
      k_record<<<1, kThreads, 0, s->stream>>>(s->pick.p, (int)t, s->delta.p, s->delta_max.p, s->taken.p, s->picks.p, s->div.p,
                                              s->div_max.p, all, s->shape(), slot, s->resident ? 1 : 0);
      CK(cudaGetLastError());
      if (!s->resident) {
        // Streamed pools: the pick's row is read from the caller's arrays (one sync per pick).
        int p = -1;
        CK(cudaMemcpyAsync(&p, s->pick.p, sizeof(int), cudaMemcpyDeviceToHost, s->stream));
        CK(cudaStreamSynchronize(s->stream));
        if (p < 0) break;
        upload_centre(s, p, slot);
      }
      // 3. δ update (pruned) and max/argmax for the next step
      update_with_centre(s, slot, id);
    }
    std::vector<int32_t> hp((size_t)steps);
    CK(cudaMemcpyAsync(hp.data(), s->picks.p, steps * sizeof(int), cudaMemcpyDeviceToHost, s->stream));
    CK(cudaMemcpyAsync(diversity, s->div.p, steps * sizeof(float), cudaMemcpyDeviceToHost, s->stream));
    CK(cudaMemcpyAsync(diversity_max, s->div_max.p, steps * sizeof(float), cudaMemcpyDeviceToHost, s->stream));
    CK(cudaStreamSynchronize(s->stream));
    int64_t n = 0;
    while (n < steps && hp[n] >= 0) {
      picks[n] = hp[n];
      ++n;
    }
    *made = n;
    s->g_count += n;
  });
}

}  // extern "C"
