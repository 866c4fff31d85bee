// The selection engine, part 2 (see select.cuh): pairwise reductions. One tiled kernel: a block
// owns 64 or 128 query rows and walks its share of the refs 64 at a time, computing the dot tiles
// of every needed modality pair (raw values; inverse norms applied afterwards, so fp16 inputs are
// used exactly — on tensor cores when every modality is fp16), turning them into metric values
// in shared memory and folding them, one warp per query, into per-query state (a sorted top-k
// list, a count, a min/max, a gain sum). Nothing N×N exists; the state is written back per launch
// so streamed ref blocks continue it, and the shares are merged on the host in order.
#include <cuda_pipeline.h>
#include <mma.h>

#include "select.cuh"

namespace pp_cuda::sel {
namespace {

constexpr int kRefTile = 64;            // ref rows per tile (every path)
constexpr int kKChunk = 32;             // depth of one shared-memory step
constexpr int kHalfLd = kKChunk + 8;    // padded fp16 staging row: 80 bytes, 8 rows hit distinct banks
constexpr int kValueLd = kRefTile + 4;  // value tile row (a multiple of 4 floats for wmma stores)
constexpr int kWarps = kThreads / 32;

// How a tile's dot products are computed:
//   Fma        CUDA-core FMAs (fp32 or mixed pools), 64 queries × 64 refs
//   Wmma       tensor cores, operands staged by plain loads (sm_75, or fp16 dims not a multiple
//              of 8), 64 × 64
//   WmmaAsync  tensor cores, operands staged by 16-byte cp.async into two buffers (sm_80+, every
//              dim a multiple of 8), 128 × 64
//
// Roofline (1M × 2 × 512 fp16, exact kNN density, γ = 0): N²·Σd·2 = 10¹²·1024·2 ≈ 2.0 PFLOP, on
// an H100 SXM (≈ 990 dense fp16 TFLOP/s) a 2.1 s floor from the tensor cores. A tile reads
// (QT + 64)·d·2 bytes of operands from L2 for 2·QT·64·d FLOPs: 32 FLOP/byte at 64 × 64,
// 43 FLOP/byte at 128 × 64; with ~5.5 TB/s of L2 bandwidth that caps the 64 × 64 tile at ≈ 175
// TFLOP/s (11.7 s) and the 128 × 64 tile at ≈ 235 TFLOP/s (8.7 s). HBM is not the limit: the
// blocks of one share walk the same refs together, so each ref tile comes from HBM about once per
// wave. Every pair value then costs one unit distance (sqrt) per term and one compare against
// the query's k-th best (the top-k threshold): ≈ 2·10¹² MUFU ops ≈ 0.6 s at 16/clk/SM. The old
// fold (one thread per query walking 64 values through a local-memory insertion sort, 64 of 256
// threads busy) cost more than the GEMM; the warp-parallel fold below tests 64 values per warp
// instruction against the threshold and only inserts the rare survivors (≈ k·ln(N/k) per query).
enum class Dots { Fma, Wmma, WmmaAsync };
template <Dots D>
constexpr int query_tile() {
  return D == Dots::WmmaAsync ? 128 : 64;
}
// The tile's shared scratch: the operand staging of the dot products and the value tile are
// never live at once, so they share one array.
template <int QT>
constexpr size_t pair_smem_bytes() {
  constexpr size_t value = sizeof(float) * QT * kValueLd;
  constexpr size_t half = sizeof(__half) * 2 * (QT + kRefTile) * kHalfLd;
  constexpr size_t fma = sizeof(float) * kKChunk * (QT + 1 + kRefTile + 1);
  return value > half ? (value > fma ? value : fma) : (half > fma ? half : fma);
}

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
  // Per (query, share) state, continued across launches.
  float* knn;     // [nq * shares * k] sorted ascending, knn_n[] of them filled
  int* knn_n;     // [nq * shares]
  double* val;    // [nq * shares]
};

// Raw dots ⟨x_q^mq, x_r^mr⟩ of the tile, handed to emit(i, j, dot) for this thread's outputs
// (query ty + 16i, ref tx + 16j). qloc/rloc: local row of each tile row, -1 past the end.
// Called by the whole block, which must have synchronised since smem was last used.
template <int QT, class Emit>
__device__ __forceinline__ void dots_fma(const PairArgs& a, int mq, int mr, int K, unsigned char* smem, const long long* qloc,
                                         const long long* rloc, Emit emit) {
  constexpr int QI = QT / 16;
  float (*As)[QT + 1] = reinterpret_cast<float (*)[QT + 1]>(smem);
  float (*Bs)[kRefTile + 1] = reinterpret_cast<float (*)[kRefTile + 1]>(smem + sizeof(float) * kKChunk * (QT + 1));
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  float dot[QI][4];
#pragma unroll
  for (int i = 0; i < QI; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) dot[i][j] = 0.f;
  for (int k0 = 0; k0 < K; k0 += kKChunk) {
    // Consecutive threads on consecutive values of a row.
    for (int e = tid; e < (QT + kRefTile) * kKChunk; e += kThreads) {
      const int row = e / kKChunk, kk = e % kKChunk;
      const bool isq = row < QT;
      const long long loc = isq ? qloc[row] : rloc[row - QT];
      const float x = loc >= 0 && k0 + kk < K
                          ? (isq ? load_value(a.q.data[mq], a.s.half[mq], loc * K + k0 + kk)
                                 : load_value(a.r.data[mr], a.s.half[mr], loc * K + k0 + kk))
                          : 0.f;
      if (isq)
        As[kk][row] = x;
      else
        Bs[kk][row - QT] = x;
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kKChunk; ++kk) {
      float av[QI], bv[4];
#pragma unroll
      for (int i = 0; i < QI; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < QI; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) dot[i][j] = fmaf(av[i], bv[j], dot[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < QI; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) emit(i, j, dot[i][j]);
}

// Tensor cores: 16×16×16 fp16 fragments, fp32 accumulation. The fp16 inputs go in unchanged (the
// inverse norms are applied to the fp32 dot afterwards), so products are exact. Warp w owns the
// 16·(QT/64) × 32 block at rows (w/2)·16·(QT/64), cols (w%2)·32. Async: operands arrive by
// 16-byte cp.async (K a multiple of 8, rows 16-byte aligned) into two buffers, so the copy of
// step c+1 overlaps the MMAs of step c and each step has one barrier.
template <int QT, bool Async, class Emit>
__device__ __forceinline__ void dots_wmma(const PairArgs& a, int mq, int mr, int K, unsigned char* smem, const long long* qloc,
                                          const long long* rloc, Emit emit) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  namespace wmma = nvcuda::wmma;
  constexpr int FI = QT / 64;  // fragment rows per warp (2 fragment columns)
  __half (*A)[QT][kHalfLd] = reinterpret_cast<__half (*)[QT][kHalfLd]>(smem);
  __half (*B)[kRefTile][kHalfLd] = reinterpret_cast<__half (*)[kRefTile][kHalfLd]>(smem + sizeof(__half) * 2 * QT * kHalfLd);
  float (*value)[kValueLd] = reinterpret_cast<float (*)[kValueLd]>(smem);
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16, warp = tid / 32;
  const int row0 = (warp / 2) * 16 * FI, col0 = (warp % 2) * 32;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FI][2];
#pragma unroll
  for (int i = 0; i < FI; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);
  const __half* qd = static_cast<const __half*>(a.q.data[mq]);
  const __half* rd = static_cast<const __half*>(a.r.data[mr]);
  const int chunks = (K + kKChunk - 1) / kKChunk;
  // Stages step c's operands into buffer c % 2 (rows past the end and values past K are zeros).
  auto stage = [&](int c) {
    const int k0 = c * kKChunk, buf = c & 1;
    if constexpr (Async) {
      for (int e = tid; e < (QT + kRefTile) * (kKChunk / 8); e += kThreads) {
        const int row = e / (kKChunk / 8), seg = e % (kKChunk / 8);
        const bool isq = row < QT;
        const int r = isq ? row : row - QT;
        const long long loc = isq ? qloc[r] : rloc[r];
        const int kk = k0 + seg * 8;
        const bool in = loc >= 0 && kk < K;
        const __half* base = isq ? qd : rd;
        __half* dst = isq ? &A[buf][r][seg * 8] : &B[buf][r][seg * 8];
        __pipeline_memcpy_async(dst, in ? base + loc * K + kk : base, 16, in ? 0 : 16);
      }
      __pipeline_commit();
    } else {
      for (int e = tid; e < (QT + kRefTile) * kKChunk; e += kThreads) {
        const int row = e / kKChunk, kk = e % kKChunk;
        const bool isq = row < QT;
        const int r = isq ? row : row - QT;
        const long long loc = isq ? qloc[r] : rloc[r];
        const __half x = loc >= 0 && k0 + kk < K ? (isq ? qd : rd)[loc * K + k0 + kk] : __float2half(0.f);
        if (isq)
          A[buf][r][kk] = x;
        else
          B[buf][r][kk] = x;
      }
    }
  };
  if constexpr (Async) stage(0);
  for (int c = 0; c < chunks; ++c) {
    if constexpr (Async) {
      __pipeline_wait_prior(0);  // this thread's copies of step c have landed …
      __syncthreads();           // … and everyone's; everyone is also done with buffer (c+1) % 2
      if (c + 1 < chunks) stage(c + 1);
    } else {
      stage(c);
      __syncthreads();
    }
    const int buf = c & 1;
#pragma unroll
    for (int ks = 0; ks < kKChunk; ks += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[FI];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[2];
#pragma unroll
      for (int i = 0; i < FI; ++i) wmma::load_matrix_sync(fa[i], &A[buf][row0 + 16 * i][ks], kHalfLd);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &B[buf][col0 + 16 * j][ks], kHalfLd);
#pragma unroll
      for (int i = 0; i < FI; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    if constexpr (!Async) __syncthreads();
  }
  __syncthreads();  // the value tile overlays the staging buffers
#pragma unroll
  for (int i = 0; i < FI; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&value[row0 + 16 * i][col0 + 16 * j], acc[i][j], kValueLd, wmma::mem_row_major);
  __syncthreads();
#pragma unroll
  for (int i = 0; i < QT / 16; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) emit(i, j, value[ty + 16 * i][tx + 16 * j]);
  __syncthreads();
#endif
}

template <Dots D, class Emit>
__device__ __forceinline__ void tile_dots(const PairArgs& a, int mq, int mr, int K, unsigned char* smem, const long long* qloc,
                                          const long long* rloc, Emit emit) {
  if constexpr (D == Dots::Fma)
    dots_fma<query_tile<D>()>(a, mq, mr, K, smem, qloc, rloc, emit);
  else
    dots_wmma<query_tile<D>(), D == Dots::WmmaAsync>(a, mq, mr, K, smem, qloc, rloc, emit);
}

__device__ __forceinline__ double warp_sum_double(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}
__device__ __forceinline__ float warp_min(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fminf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Folds one query's 64 new values (v0: ref `lane`, v1: ref `lane + 32`; +∞ for none) into its
// sorted top-k list (global memory, this warp's alone) with the whole warp: one ballot finds the
// values below the current k-th best (tau), and only those are inserted, in ref order, each by
// a warp-wide rank (ballots over the list) and a parallel shift. fill/tau are warp-uniform.
__device__ __forceinline__ void knn_fold(float* list, int k, int& fill, float& tau, float v0, float v1) {
  const int lane = threadIdx.x & 31;
  for (int h = 0; h < 2; ++h) {
    const float v = h ? v1 : v0;
    unsigned cand = __ballot_sync(kFullMask, v < tau);
    while (cand) {
      const int src = __ffs(cand) - 1;
      cand &= cand - 1;
      const float x = __shfl_sync(kFullMask, v, src);
      if (!(x < tau)) continue;  // an earlier insertion of this tile tightened tau
      int rank = 0;              // entries ≤ x: a prefix of the sorted list
      for (int t0 = 0; t0 < fill; t0 += 32) rank += __popc(__ballot_sync(kFullMask, t0 + lane < fill && list[t0 + lane] <= x));
      const int n = fill < k ? fill + 1 : k;
      float moved[kKnnMax / 32];
#pragma unroll
      for (int i = 0; i < kKnnMax / 32; ++i) {
        const int t = rank + 1 + lane + 32 * i;
        moved[i] = t < n ? list[t - 1] : 0.f;
      }
      __syncwarp();
#pragma unroll
      for (int i = 0; i < kKnnMax / 32; ++i) {
        const int t = rank + 1 + lane + 32 * i;
        if (t < n) list[t] = moved[i];
      }
      if (lane == 0) list[rank] = x;
      __syncwarp();
      fill = n;
      tau = n == k ? list[k - 1] : INFINITY;
    }
  }
}

template <Dots D>
__global__ void __launch_bounds__(kThreads, 1) k_pair(PairArgs a) {
  constexpr int QT = query_tile<D>(), QI = QT / 16;
  __shared__ __align__(128) unsigned char tile_smem[pair_smem_bytes<QT>()];
  __shared__ long long qgid[QT], qloc[QT], rgid[kRefTile], rloc[kRefTile];
  __shared__ float qinv[kMaxM][QT], rinv[kMaxM][kRefTile];
  __shared__ double qval[QT];
  __shared__ float qtau[QT];
  __shared__ int qfill[QT], qlabel[QT];
  float (*value)[kValueLd] = reinterpret_cast<float (*)[kValueLd]>(tile_smem);

  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16, warp = tid / 32, lane = tid % 32;
  const long long nq = a.q.count, nr = a.r.count;
  const long long q0 = (long long)blockIdx.x * QT;
  const int share = blockIdx.y;
  const long long rtiles = (nr + kRefTile - 1) / kRefTile;
  const long long rt0 = share * rtiles / a.shares, rt1 = (share + 1) * rtiles / a.shares;
  const bool knn = a.kind == PP_REDUCE_KNN_MEAN;

  // Per-query state (continued from the previous launch).
  for (int t = tid; t < QT; t += kThreads) {
    const long long q = q0 + t, slot = q * a.shares + share;
    const bool in = q < nq;
    const long long g = in ? view_global(a.q, q) : -1;
    qgid[t] = g;
    qloc[t] = in ? view_local(a.q, q) : -1;
    for (int m = 0; m < a.s.M; ++m) qinv[m][t] = in ? a.s.inv[m][g] : 0.f;
    qlabel[t] = in && a.labels ? a.labels[g] : 0;
    if (in && knn) {
      qfill[t] = a.knn_n[slot];
      qtau[t] = qfill[t] == a.k ? a.knn[slot * a.k + a.k - 1] : INFINITY;
    } else if (in) {
      qval[t] = a.val[slot];
    }
  }

  const float self = knn ? INFINITY : (a.form == PP_FORM_SIMILARITY ? 1.f : 0.f);
  const int nterms = a.form == PP_FORM_MULTIMODAL ? a.nterms : a.s.M;
  for (long long rt = rt0; rt < rt1; ++rt) {
    const long long r0 = rt * kRefTile;
    const int rn = (int)min((long long)kRefTile, nr - r0);
    __syncthreads();  // the previous tile's fold is done with the value tile and the ref rows
    if (tid < kRefTile) {
      const bool in = tid < rn;
      const long long g = in ? view_global(a.r, r0 + tid) : -1;
      rgid[tid] = g;
      rloc[tid] = in ? view_local(a.r, r0 + tid) : -1;
      for (int m = 0; m < a.s.M; ++m) rinv[m][tid] = in ? a.s.inv[m][g] : 0.f;
    }
    __syncthreads();

    // Σ over the terms: cosines (euclidean/similarity) or weighted unit distances (multimodal:
    // weight 1 on a modality's own term, γ on cross terms).
    float acc[QI][4];
#pragma unroll
    for (int i = 0; i < QI; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
    for (int term = 0; term < nterms; ++term) {
      const int mq = a.form == PP_FORM_MULTIMODAL ? a.tq[term] : term;
      const int mr = a.form == PP_FORM_MULTIMODAL ? a.tr[term] : term;
      const float w = mq == mr ? 1.f : a.gamma;
      tile_dots<D>(a, mq, mr, a.s.dim[mq], tile_smem, qloc, rloc, [&](int i, int j, float dot) {
        const float c = dot * qinv[mq][ty + 16 * i] * rinv[mr][tx + 16 * j];
        acc[i][j] += a.form == PP_FORM_MULTIMODAL ? w * unit_distance(c) : c;
      });
    }
#pragma unroll
    for (int i = 0; i < QI; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int qi = ty + 16 * i, rj = tx + 16 * j;
        float v;
        if (a.form == PP_FORM_MULTIMODAL)
          v = acc[i][j];
        else if (a.form == PP_FORM_EUCLIDEAN)
          v = sqrtf(fmaxf(0.f, 2.f * a.s.M - 2.f * acc[i][j]));
        else
          v = (float)((1.0 + (double)acc[i][j] / a.s.M) / 2.0);
        if (qgid[qi] >= 0 && qgid[qi] == rgid[rj]) v = self;
        value[qi][rj] = v;
      }
    __syncthreads();

    // The fold: warp w takes queries w, w + 8, …; lane l the refs l and l + 32.
    for (int qi = warp; qi < QT; qi += kWarps) {
      if (qgid[qi] < 0) continue;  // warp-uniform
      const bool in0 = lane < rn, in1 = lane + 32 < rn;
      const float v0 = in0 ? value[qi][lane] : INFINITY, v1 = in1 ? value[qi][lane + 32] : INFINITY;
      switch (a.kind) {
        case PP_REDUCE_KNN_MEAN: {
          int fill = qfill[qi];
          float tau = qtau[qi];
          knn_fold(a.knn + ((q0 + qi) * a.shares + share) * a.k, a.k, fill, tau, v0, v1);
          if (lane == 0) qfill[qi] = fill, qtau[qi] = tau;
          break;
        }
        case PP_REDUCE_COUNT_WITHIN: {
          const bool c0 = in0 && (!a.mask || a.mask[rgid[lane]]) && (double)v0 < a.radius;
          const bool c1 = in1 && (!a.mask || a.mask[rgid[lane + 32]]) && (double)v1 < a.radius;
          const int n = __popc(__ballot_sync(kFullMask, c0)) + __popc(__ballot_sync(kFullMask, c1));
          if (lane == 0) qval[qi] += n;
          break;
        }
        case PP_REDUCE_MIN_OTHER_LABEL: {
          float m = INFINITY;
          if (in0 && a.labels[rgid[lane]] != qlabel[qi]) m = v0;
          if (in1 && a.labels[rgid[lane + 32]] != qlabel[qi]) m = fminf(m, v1);
          m = warp_min(m);
          if (lane == 0 && m < qval[qi]) qval[qi] = m;
          break;
        }
        case PP_REDUCE_MAX: {
          const float m = warp_max(fmaxf(in0 ? v0 : -INFINITY, in1 ? v1 : -INFINITY));
          if (lane == 0 && m > qval[qi]) qval[qi] = m;
          break;
        }
        case PP_REDUCE_GAIN: {
          double g = 0;
          if (in0 && v0 - a.cover[rgid[lane]] > 0.f) g += (double)(v0 - a.cover[rgid[lane]]);
          if (in1 && v1 - a.cover[rgid[lane + 32]] > 0.f) g += (double)(v1 - a.cover[rgid[lane + 32]]);
          g = warp_sum_double(g);  // a fixed tree: the same sum on every run
          if (lane == 0) qval[qi] += g;
          break;
        }
      }
    }
  }
  __syncthreads();
  for (int t = tid; t < QT; t += kThreads) {
    const long long q = q0 + t, slot = q * a.shares + share;
    if (q >= nq) continue;
    if (knn)
      a.knn_n[slot] = qfill[t];
    else
      a.val[slot] = qval[t];
  }
}

Dots choose_dots(const pp_cuda_select* s) {
  if (!std::all_of(s->half.begin(), s->half.end(), [](int h) { return h != 0; })) return Dots::Fma;
  // Every row of a dim that is a multiple of 8 starts 16-byte aligned: the resident arrays and the
  // staging halves are 256-byte aligned allocations (or offsets of whole rows into them).
  const bool dims8 = std::all_of(s->dims.begin(), s->dims.end(), [](int d) { return d % 8 == 0; });
  return device_info().major >= 8 && dims8 ? Dots::WmmaAsync : Dots::Wmma;
}

long long query_tiles(Dots d, long long nq) { return ceil_div(nq, d == Dots::WmmaAsync ? query_tile<Dots::WmmaAsync>() : 64); }

void launch_pair(const PairArgs& a, Dots dots, cudaStream_t stream) {
  const dim3 grid((unsigned)query_tiles(dots, a.q.count), (unsigned)a.shares);
  switch (dots) {
    case Dots::Fma: k_pair<Dots::Fma><<<grid, kThreads, 0, stream>>>(a); break;
    case Dots::Wmma: k_pair<Dots::Wmma><<<grid, kThreads, 0, stream>>>(a); break;
    case Dots::WmmaAsync: k_pair<Dots::WmmaAsync><<<grid, kThreads, 0, stream>>>(a); break;
  }
  check_launch("k_pair");
}

// Merges the per-share states of every query into out[] (in share order: deterministic).
void merge_shares(const PairArgs& a, long long nq, int64_t k, const std::vector<int>& hn, const std::vector<double>& hv,
                  const std::vector<float>& hk, double* out) {
  std::vector<float> merged((size_t)std::max<int64_t>(1, k));
  for (long long q = 0; q < nq; ++q) {
    const size_t s0 = (size_t)q * a.shares;
    if (a.kind == PP_REDUCE_KNN_MEAN) {
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
    } else if (a.kind == PP_REDUCE_COUNT_WITHIN || a.kind == PP_REDUCE_GAIN) {
      double sum = 0;
      for (int sh = 0; sh < a.shares; ++sh) sum += hv[s0 + sh];
      out[q] = sum;
    } else if (a.kind == PP_REDUCE_MIN_OTHER_LABEL) {
      double m = INFINITY;
      for (int sh = 0; sh < a.shares; ++sh) m = std::min(m, hv[s0 + sh]);
      out[q] = m;
    } else {
      double m = -INFINITY;
      for (int sh = 0; sh < a.shares; ++sh) m = std::max(m, hv[s0 + sh]);
      out[q] = m;
    }
  }
}

}  // namespace
}  // namespace pp_cuda::sel

using namespace pp_cuda;
using namespace pp_cuda::sel;

extern "C" int pp_cuda_select_pair_reduce(pp_cuda_select* s, const int32_t* query_idx, int64_t query_start, int64_t query_count,
                                          const int32_t* ref_idx, int64_t ref_start, int64_t ref_count, int form, double gamma,
                                          int kind, int64_t k, double radius, const uint8_t* ref_mask, const int32_t* labels,
                                          const float* cover, double* out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (kind < 0 || kind >= PP_REDUCTION_COUNT) fail("pair_reduce: unknown reduction " + std::to_string(kind));
    if (kind == PP_REDUCE_KNN_MEAN && (k < 1 || k > kKnnMax)) fail("knnMean on CUDA supports 1 ≤ k ≤ 128");
    check_cross_dims(s->dims, form, gamma);
    const long long nq = query_count, nr = ref_count;
    if (nq == 0) return;
    if (!s->resident && nq > s->stage_rows / 2) fail("streamed pool: too many queries in one call");
    PairArgs a{};
    a.s = s->shape();
    a.form = form;
    a.gamma = (float)gamma;
    if (form == PP_FORM_MULTIMODAL)
      for (int x = 0; x < s->M; ++x)
        for (int y = 0; y < s->M; ++y)
          if (x == y || gamma != 0) {
            a.tq[a.nterms] = x;
            a.tr[a.nterms] = y;
            ++a.nterms;
          }
    a.kind = kind;
    a.k = (int)k;
    a.radius = radius;
    const Dots dots = choose_dots(s);
    const long long qtiles = query_tiles(dots, nq);
    const long long rtiles_all = std::max<long long>(1, ceil_div(nr, kRefTile));
    a.shares = (int)std::min<long long>(rtiles_all, std::max<long long>(1, ceil_div(4LL * s->sms, qtiles)));
    const size_t rows = (size_t)s->rows, slots = (size_t)nq * a.shares;
    const long long half_rows = s->stage_rows / 2;
    const long long ref_block = s->resident ? nr : std::min<long long>(nr, half_rows);
    // Every scratch slot first (a later request may move an earlier one).
    Workspace& ws = *s->ws;
    auto* dmask = ref_mask ? ws.get<unsigned char>(pp_cuda_select::kSlotA, rows) : nullptr;
    auto* dlabels = labels ? ws.get<int>(pp_cuda_select::kSlotB, rows) : nullptr;
    auto* dcover = cover ? ws.get<float>(pp_cuda_select::kSlotC, rows) : nullptr;
    auto* qidx = ws.get<int>(pp_cuda_select::kSlotD, (size_t)nq);
    auto* ridx = ws.get<int>(pp_cuda_select::kSlotE, (size_t)std::max<long long>(1, ref_block));
    a.knn = kind == PP_REDUCE_KNN_MEAN ? ws.get<float>(pp_cuda_select::kSlotF, slots * k) : nullptr;
    a.knn_n = ws.get<int>(pp_cuda_select::kSlotG, slots);
    a.val = ws.get<double>(pp_cuda_select::kSlotH, slots);
    a.mask = dmask;
    a.labels = dlabels;
    a.cover = dcover;
    if (dmask) s->upload(dmask, ref_mask, rows);
    if (dlabels) s->upload(dlabels, labels, rows * sizeof(int));
    if (dcover) s->upload(dcover, cover, rows * sizeof(float));
    check(cudaMemsetAsync(a.knn_n, 0, slots * sizeof(int), s->stream), "cudaMemsetAsync");
    const double init = kind == PP_REDUCE_MIN_OTHER_LABEL ? INFINITY : kind == PP_REDUCE_MAX ? -INFINITY : 0.0;
    std::vector<double> hinit(slots, init);
    s->upload(a.val, hinit.data(), slots * sizeof(double));
    std::vector<int> qlist((size_t)nq);
    for (long long i = 0; i < nq; ++i) qlist[i] = query_idx ? query_idx[i] : (int)(query_start + i);
    s->upload(qidx, qlist.data(), nq * sizeof(int));

    if (s->resident) {
      a.q = query_idx ? s->index_view(query_idx, qidx, nq, nullptr) : s->range_view(query_start, nq);
      if (ref_idx) s->upload(ridx, ref_idx, nr * sizeof(int));
      a.r = ref_idx ? s->index_view(ref_idx, ridx, nr, nullptr) : s->range_view(ref_start, nr);
      launch_pair(a, dots, s->stream);
    } else {
      // Streamed: the queries are gathered into the second half of the staging buffers, the refs
      // stream through the first half block by block (every launch continues the state).
      std::vector<unsigned char*> first(s->M), second(s->M);
      for (int m = 0; m < s->M; ++m) {
        first[m] = s->stage[m].get();
        second[m] = first[m] + (size_t)half_rows * s->dims[m] * s->elem(m);
      }
      a.q = s->index_view(qlist.data(), qidx, nq, second.data());
      for (long long b0 = 0; b0 < nr; b0 += half_rows) {
        const long long n = std::min(half_rows, nr - b0);
        View rv{};
        if (ref_idx) {
          s->upload(ridx, ref_idx + b0, n * sizeof(int));
          rv = s->index_view(ref_idx + b0, ridx, n, first.data());
        } else {
          rv.start = ref_start + b0;
          rv.count = n;
          for (int m = 0; m < s->M; ++m) {
            const size_t rb = (size_t)s->dims[m] * s->elem(m);
            s->upload(first[m], static_cast<const unsigned char*>(s->host[m]) + (size_t)(ref_start + b0) * rb, (size_t)n * rb);
            rv.data[m] = first[m];
          }
        }
        a.r = rv;
        // The share count stays fixed across blocks (the state is indexed by it); shares beyond a
        // small block's tiles simply get no tiles.
        launch_pair(a, dots, s->stream);
        s->sync();  // the staging half is reused by the next block
      }
    }
    std::vector<int> hn(slots);
    std::vector<double> hv(slots);
    std::vector<float> hk;
    s->download(hn.data(), a.knn_n, slots * sizeof(int));
    s->download(hv.data(), a.val, slots * sizeof(double));
    if (kind == PP_REDUCE_KNN_MEAN) {
      hk.resize(slots * k);
      s->download(hk.data(), a.knn, slots * k * sizeof(float));
    }
    s->sync();
    merge_shares(a, nq, k, hn, hv, hk, out);
  });
}
