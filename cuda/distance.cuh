// The one tiled dot-product tile of pairpick's CUDA code, shared by the distance kernels
// (distance.cu), the loss kernels (loss.cu) and the selection engine's pairwise reductions
// (select_pair.cu; rows addressed through index lists: IndexedRows). No cuBLAS: a block of 256 threads computes a TM × 128 tile of
// ⟨x_i, y_j⟩ (or Σ (x_i − y_j)²) for TM rows of X and 128 rows of Y, walking the shared
// dimension 32 at a time through shared memory, with fp32 accumulation in registers.
//
// Thread layout (kTileThreads = 256): tx = lane (0..31), ty = warp (0..7). Thread (ty, tx) owns
// rows ty·RM … ty·RM+RM−1 (RM = TM/8) and columns tx, tx+32, tx+64, tx+96 of the tile. Strided
// columns keep every shared-memory read of the Y tile conflict-free; the X values a warp needs
// are the same for all its lanes (a broadcast).
#pragma once
#include <cuda_pipeline.h>
#include <mma.h>

#include "common.cuh"

namespace pp_cuda {

constexpr int kTileThreads = 256;
constexpr int kTileDim = 32;    // shared-dimension step
constexpr int kTileCols = 128;  // Y rows per tile
constexpr int kTileColsPerThread = kTileCols / 32;
// Row stride (floats) of a TM × 128 tile of results kept in shared memory. A multiple of 4 as
// WMMA's float stores require, and 132 ≡ 4 (mod 32) so warps reading a row hit distinct banks.
constexpr int kResultStride = kTileCols + 4;

// Where a tile's operand rows come from: row r of the tile is `dim` values (fp16 when kHalf) at
// row(r), or absent (read as zeros) when row(r) is null. DenseRows: rows first, first+1, … of a
// row-major matrix (the distance and loss kernels); IndexedRows: rows loc[0], loc[1], … (−1:
// absent), loc in shared memory (the selection engine's row views).
template <bool Half>
struct DenseRows {
  static constexpr bool kHalf = Half;
  const void* base;
  long long rows;
  int dim;
  long long first;
  __device__ __forceinline__ const void* row(int r) const {
    const long long g = first + r;
    return g < rows ? static_cast<const unsigned char*>(base) + g * dim * (Half ? 2 : 4) : nullptr;
  }
};
template <bool Half>
struct IndexedRows {
  static constexpr bool kHalf = Half;
  const void* base;
  const long long* loc;
  int dim;
  __device__ __forceinline__ const void* row(int r) const {
    return loc[r] >= 0 ? static_cast<const unsigned char*>(base) + loc[r] * dim * (Half ? 2 : 4) : nullptr;
  }
};

// True when rows of `dim` elements starting at `p` can be read `width` elements (16 bytes) at a time.
__device__ __forceinline__ bool vector_ok(const void* p, int dim, int width) {
  return dim % width == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// fp32 staging of one 32-wide slice of the shared dimension. `a` is stored dimension-major and
// padded by 4 so a row group can be read as float4; `b` is padded by 1 so the transposing
// stores and the strided reads are both conflict-free.
template <int TM>
struct DotTiles {
  float a[kTileDim][TM + 4];
  float b[kTileDim][kTileCols + 1];
};

// Loads the tile rows of `src`, dims [d0, d0+32), as floats; zero outside the matrix so padding
// adds nothing to dots or squared differences. Warp w loads rows w, w+8, w+16, … of the tile;
// lane l loads dimension d0+l (coalesced along the row).
template <int Rows, int Stride, class Src>
__device__ __forceinline__ void load_rows_transposed(float (*dst)[Stride], const Src& src, int d0) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int col = d0 + lane;
#pragma unroll
  for (int it = 0; it < Rows / 8; ++it) {
    const void* p = col < src.dim ? src.row(warp + 8 * it) : nullptr;
    dst[lane][warp + 8 * it] = p ? load<Src::kHalf>(p, col) : 0.f;
  }
}

// The same with 16-byte loads: fp32 rows 4 values at a time (lanes 8 per row, 128 contiguous
// bytes). Needs dim % 4 == 0 and a 16-byte aligned base, so a load never straddles a row end.
template <int Rows, int Stride, class Src>
__device__ __forceinline__ void load_rows_transposed_vec(float (*dst)[Stride], const Src& src, int d0) {
  const int chunk = threadIdx.x % 8, sub = threadIdx.x / 8;  // 8 float4 per 32 dims; 32 rows per pass
  const int col = d0 + chunk * 4;
#pragma unroll
  for (int it = 0; it < Rows / 32; ++it) {
    const int r = sub + 32 * it;
    const void* p = col < src.dim ? src.row(r) : nullptr;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (p) v = *reinterpret_cast<const float4*>(static_cast<const float*>(p) + col);
    dst[chunk * 4][r] = v.x;
    dst[chunk * 4 + 1][r] = v.y;
    dst[chunk * 4 + 2][r] = v.z;
    dst[chunk * 4 + 3][r] = v.w;
  }
}

template <int TM, class SrcX, class SrcY>
__device__ __forceinline__ void load_dot_tiles(DotTiles<TM>& s, const SrcX& x, const SrcY& y, int d0) {
  static_assert(kTileDim == 32 && kTileThreads == 256, "loader assumes 8 warps × 32 lanes");
  if (!SrcX::kHalf && vector_ok(x.base, x.dim, 4))
    load_rows_transposed_vec<TM, TM + 4>(s.a, x, d0);
  else
    load_rows_transposed<TM, TM + 4>(s.a, x, d0);
  if (!SrcY::kHalf && vector_ok(y.base, y.dim, 4))
    load_rows_transposed_vec<kTileCols, kTileCols + 1>(s.b, y, d0);
  else
    load_rows_transposed<kTileCols, kTileCols + 1>(s.b, y, d0);
}

// acc[i][j] += Σ_d a·b (dot) or Σ_d (a − b)² (SqDiff) over the 32 staged dimensions.
template <int TM, bool SqDiff>
__device__ __forceinline__ void accumulate_tiles(const DotTiles<TM>& s, float (&acc)[TM / 8][kTileColsPerThread],
                                                 int ty, int tx) {
  constexpr int RM = TM / 8;
  static_assert(RM % 4 == 0, "rows per thread must be a multiple of 4");
#pragma unroll 8
  for (int d = 0; d < kTileDim; ++d) {
    float a[RM];
#pragma unroll
    for (int q = 0; q < RM / 4; ++q) {
      const float4 v = *reinterpret_cast<const float4*>(&s.a[d][ty * RM + 4 * q]);
      a[4 * q] = v.x;
      a[4 * q + 1] = v.y;
      a[4 * q + 2] = v.z;
      a[4 * q + 3] = v.w;
    }
    float b[kTileColsPerThread];
#pragma unroll
    for (int j = 0; j < kTileColsPerThread; ++j) b[j] = s.b[d][tx + 32 * j];
#pragma unroll
    for (int i = 0; i < RM; ++i) {
#pragma unroll
      for (int j = 0; j < kTileColsPerThread; ++j) {
        if constexpr (SqDiff) {
          const float diff = a[i] - b[j];
          acc[i][j] = fmaf(diff, diff, acc[i][j]);
        } else {
          acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
      }
    }
  }
}

// The whole shared dimension (`dim`) for one tile of rows of x against rows of y. Ends with a
// barrier, so `s` may be reused at once.
template <int TM, bool SqDiff, class SrcX, class SrcY>
__device__ __forceinline__ void tile_dot_rows(DotTiles<TM>& s, const SrcX& x, const SrcY& y, int dim,
                                              float (&acc)[TM / 8][kTileColsPerThread]) {
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
#pragma unroll
  for (int i = 0; i < TM / 8; ++i)
#pragma unroll
    for (int j = 0; j < kTileColsPerThread; ++j) acc[i][j] = 0.f;
  for (int d0 = 0; d0 < dim; d0 += kTileDim) {
    load_dot_tiles<TM>(s, x, y, d0);
    __syncthreads();
    accumulate_tiles<TM, SqDiff>(s, acc, ty, tx);
    __syncthreads();
  }
}

// Dense operands: rows [x0, x0+TM) of X against [y0, y0+128) of Y.
template <bool Half, int TM, bool SqDiff>
__device__ __forceinline__ void tile_dot(DotTiles<TM>& s, const void* X, long long rowsX, const void* Y, long long rowsY,
                                         int dim, long long x0, long long y0,
                                         float (&acc)[TM / 8][kTileColsPerThread]) {
  tile_dot_rows<TM, SqDiff>(s, DenseRows<Half>{X, rowsX, dim, x0}, DenseRows<Half>{Y, rowsY, dim, y0}, dim, acc);
}

// ------------------------------------------------------------------------------------------
// Tensor-core variant for fp16 inputs (WMMA m16n16k16, fp16 × fp16 products are exact in fp32,
// accumulation in fp32): the same TM × 128 tile, written to a shared-memory result tile.
//
// With 16-byte aligned rows (dim % 8 == 0) the operands are staged by cp.async (the
// <cuda_pipeline.h> primitives: hardware asynchronous copies on sm_80+, plain copies on sm_75)
// into two buffers, so the copy of step c+1 overlaps the MMAs of step c and each 32-deep step
// has one barrier; otherwise by 2-byte loads into one buffer, two barriers per step.
// ------------------------------------------------------------------------------------------

constexpr int kHalfStride = kTileDim + 8;  // halves; a multiple of 8 as WMMA requires, 80 bytes

template <int TM>
struct HalfTiles {
  __half a[TM][kHalfStride];         // row-major: X row, dim
  __half b[kTileCols][kHalfStride];  // Y row, dim (= Yᵀ as a column-major matrix_b)
};

template <int Rows, class Src>
__device__ __forceinline__ void load_half_rows(__half (*dst)[kHalfStride], const Src& src, int d0) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int col = d0 + lane;
  const __half zero = __float2half(0.f);
#pragma unroll
  for (int it = 0; it < Rows / 8; ++it) {
    const void* p = col < src.dim ? src.row(warp + 8 * it) : nullptr;
    dst[warp + 8 * it][lane] = p ? static_cast<const __half*>(p)[col] : zero;
  }
}

// 16-byte copies of 8 halves (4 threads per row's 32 dims, 64 rows per pass), issued as cp.async
// (one batch per call of the caller's) or as plain loads; dim % 8 == 0 and 16-byte aligned rows.
template <int Rows, bool Async, class Src>
__device__ __forceinline__ void load_half_rows_vec(__half (*dst)[kHalfStride], const Src& src, int d0) {
  const int chunk = threadIdx.x % 4, sub = threadIdx.x / 4;
  const int col = d0 + chunk * 8;
#pragma unroll
  for (int it = 0; it < (Rows + 63) / 64; ++it) {
    const int r = sub + 64 * it;
    if (Rows % 64 != 0 && r >= Rows) break;
    const void* p = col < src.dim ? src.row(r) : nullptr;
    if constexpr (Async) {
      // Absent rows: a zero-filling copy (nothing is read from the source).
      __pipeline_memcpy_async(&dst[r][chunk * 8], p ? static_cast<const __half*>(p) + col : static_cast<const __half*>(src.base),
                              16, p ? 0 : 16);
    } else {
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (p) v = *reinterpret_cast<const uint4*>(static_cast<const __half*>(p) + col);
      *reinterpret_cast<uint4*>(&dst[r][chunk * 8]) = v;
    }
  }
}

// Dots of the tile into `result` (TM × kResultStride floats, 32-byte aligned). `s` is one
// HalfTiles, or two (s[0], s[1]) when Async; `result` may alias them. Ends with a barrier.
template <int TM, bool Async, class SrcX, class SrcY>
__device__ __forceinline__ void tile_dot_half_tc_rows(HalfTiles<TM>* s, const SrcX& x, const SrcY& y, int dim, float* result) {
  using namespace nvcuda;
  constexpr int kWarpRows = TM / 16;              // warps along the rows
  constexpr int kWarpCols = 8 / kWarpRows;        // warps along the columns
  constexpr int kCols = kTileCols / kWarpCols;    // columns per warp
  constexpr int kFrags = kCols / 16;              // 16×16 accumulators per warp
  static_assert(kWarpRows * kWarpCols == 8 && kFrags >= 1, "tile shape");
  static_assert(SrcX::kHalf && SrcY::kHalf, "fp16 operands");
  const int warp = threadIdx.x / 32;
  const int wr = warp / kWarpCols, wc = warp % kWarpCols;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kFrags];
#pragma unroll
  for (int f = 0; f < kFrags; ++f) wmma::fill_fragment(acc[f], 0.f);
  const bool vec = vector_ok(x.base, x.dim, 8) && vector_ok(y.base, y.dim, 8);  // the same in every thread
  const bool async = Async && vec;
  const int chunks = (dim + kTileDim - 1) / kTileDim;
  auto stage_async = [&](int c) {
    load_half_rows_vec<TM, true>(s[c & 1].a, x, c * kTileDim);
    load_half_rows_vec<kTileCols, true>(s[c & 1].b, y, c * kTileDim);
    __pipeline_commit();
  };
  if (async) stage_async(0);
  for (int c = 0; c < chunks; ++c) {
    HalfTiles<TM>& t = s[async ? c & 1 : 0];
    if (async) {
      __pipeline_wait_prior(0);  // this thread's copies of step c have landed …
      __syncthreads();           // … and everyone's; everyone is done with the other buffer too
      if (c + 1 < chunks) stage_async(c + 1);
    } else {
      if (vec) {
        load_half_rows_vec<TM, false>(t.a, x, c * kTileDim);
        load_half_rows_vec<kTileCols, false>(t.b, y, c * kTileDim);
      } else {
        load_half_rows<TM>(t.a, x, c * kTileDim);
        load_half_rows<kTileCols>(t.b, y, c * kTileDim);
      }
      __syncthreads();
    }
#pragma unroll
    for (int kk = 0; kk < kTileDim; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
      wmma::load_matrix_sync(a, &t.a[wr * 16][kk], kHalfStride);
#pragma unroll
      for (int f = 0; f < kFrags; ++f) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b;
        wmma::load_matrix_sync(b, &t.b[wc * kCols + f * 16][kk], kHalfStride);
        wmma::mma_sync(acc[f], a, b, acc[f]);
      }
    }
    if (!async) __syncthreads();
  }
  if (async) __syncthreads();  // `result` may alias the buffer of the last step
#pragma unroll
  for (int f = 0; f < kFrags; ++f)
    wmma::store_matrix_sync(result + (wr * 16) * kResultStride + wc * kCols + f * 16, acc[f], kResultStride,
                            wmma::mem_row_major);
  __syncthreads();
}

// ------------------------------------------------------------------------------------------
// Row auxiliaries: squared norms (sqeuclidean/euclidean) or inverse norms (cosine; 0 for a zero
// row, which makes its cosine distance 1 to everything). One warp per row.
// ------------------------------------------------------------------------------------------

template <bool Half>
__global__ void row_aux_kernel(const void* x, long long rows, int dim, int metric, float* aux) {
  const int lane = threadIdx.x % 32;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  for (long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; row < rows; row += warps) {
    float s = 0.f;
    for (int d = lane; d < dim; d += 32) {
      const float v = load<Half>(x, row * dim + d);
      s = fmaf(v, v, s);
    }
    s = warp_sum(s);
    if (lane == 0) aux[row] = metric == PP_METRIC_COSINE ? (s > 0.f ? 1.f / sqrtf(s) : 0.f) : s;
  }
}

inline void launch_row_aux(Workspace& ws, const void* x, bool half, long long rows, int dim, int metric, float* aux) {
  if (rows <= 0) return;
  const long long blocks = std::min<long long>(ceil_div(rows, 8), (long long)device_info().sms * 32);
  if (half)
    row_aux_kernel<true><<<(unsigned)blocks, 256, 0, ws.stream()>>>(x, rows, dim, metric, aux);
  else
    row_aux_kernel<false><<<(unsigned)blocks, 256, 0, ws.stream()>>>(x, rows, dim, metric, aux);
  check_launch("row_aux_kernel");
}

}  // namespace pp_cuda
