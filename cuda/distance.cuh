// Tiled dot-product building blocks shared by the distance kernels (distance.cu) and the loss
// kernels (loss.cu). No cuBLAS: a block of 256 threads computes a TM × 128 tile of
// ⟨x_i, y_j⟩ (or Σ (x_i − y_j)²) for TM rows of X and 128 rows of Y, walking the shared
// dimension 32 at a time through shared memory, with fp32 accumulation in registers.
//
// Thread layout (kTileThreads = 256): tx = lane (0..31), ty = warp (0..7). Thread (ty, tx) owns
// rows ty·RM … ty·RM+RM−1 (RM = TM/8) and columns tx, tx+32, tx+64, tx+96 of the tile. Strided
// columns keep every shared-memory read of the Y tile conflict-free; the X values a warp needs
// are the same for all its lanes (a broadcast).
#pragma once
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

// fp32 staging of one 32-wide slice of the shared dimension. `a` is stored dimension-major and
// padded by 4 so a row group can be read as float4; `b` is padded by 1 so the transposing
// stores and the strided reads are both conflict-free.
template <int TM>
struct DotTiles {
  float a[kTileDim][TM + 4];
  float b[kTileDim][kTileCols + 1];
};

// Loads rows [x0, x0+TM) of X and [y0, y0+128) of Y, dims [d0, d0+32), as floats; zero outside
// the matrices so padding adds nothing to dots or squared differences. Warp w loads rows
// w, w+8, w+16, … of each tile; lane l loads dimension d0+l (coalesced along the row).
template <bool Half, int Rows, int Stride>
__device__ __forceinline__ void load_rows_transposed(float (*dst)[Stride], const void* M, long long rowsM, int dim,
                                                     long long m0, int d0) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int col = d0 + lane;
  const long long first = m0 + warp;
  // Rows of this thread that exist: first + 8·it < rowsM.
  const long long left = rowsM - first;
  const int valid = col < dim && left > 0 ? static_cast<int>(min((long long)(Rows / 8), (left + 7) / 8)) : 0;
  const long long step = 8LL * dim;
  long long offset = first * dim + col;
#pragma unroll
  for (int it = 0; it < Rows / 8; ++it) {
    dst[lane][warp + 8 * it] = it < valid ? load<Half>(M, offset) : 0.f;
    offset += step;
  }
}

// The same with 16-byte loads: fp32 rows 4 values at a time (lanes 8 per row, 128 contiguous
// bytes). Needs dim % 4 == 0 and a 16-byte aligned base, so a load never straddles a row end.
template <int Rows, int Stride>
__device__ __forceinline__ void load_rows_transposed_vec(float (*dst)[Stride], const float* M, long long rowsM,
                                                         int dim, long long m0, int d0) {
  const int chunk = threadIdx.x % 8, sub = threadIdx.x / 8;  // 8 float4 per 32 dims; 32 rows per pass
  const int col = d0 + chunk * 4;
#pragma unroll
  for (int it = 0; it < Rows / 32; ++it) {
    const int r = sub + 32 * it;
    const long long row = m0 + r;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (row < rowsM && col < dim) v = *reinterpret_cast<const float4*>(M + row * dim + col);
    dst[chunk * 4][r] = v.x;
    dst[chunk * 4 + 1][r] = v.y;
    dst[chunk * 4 + 2][r] = v.z;
    dst[chunk * 4 + 3][r] = v.w;
  }
}

// True when rows of `dim` elements starting at `p` can be read `width` elements (16 bytes) at a time.
__device__ __forceinline__ bool vector_ok(const void* p, int dim, int width) {
  return dim % width == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

template <bool Half, int TM>
__device__ __forceinline__ void load_dot_tiles(DotTiles<TM>& s, const void* X, long long rowsX, const void* Y,
                                               long long rowsY, int dim, long long x0, long long y0, int d0) {
  static_assert(kTileDim == 32 && kTileThreads == 256, "loader assumes 8 warps × 32 lanes");
  if (!Half && vector_ok(X, dim, 4) && vector_ok(Y, dim, 4)) {
    load_rows_transposed_vec<TM, TM + 4>(s.a, static_cast<const float*>(X), rowsX, dim, x0, d0);
    load_rows_transposed_vec<kTileCols, kTileCols + 1>(s.b, static_cast<const float*>(Y), rowsY, dim, y0, d0);
  } else {
    load_rows_transposed<Half, TM, TM + 4>(s.a, X, rowsX, dim, x0, d0);
    load_rows_transposed<Half, kTileCols, kTileCols + 1>(s.b, Y, rowsY, dim, y0, d0);
  }
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

// The whole shared dimension for one tile. Ends with a barrier, so `s` may be reused at once.
template <bool Half, int TM, bool SqDiff>
__device__ __forceinline__ void tile_dot(DotTiles<TM>& s, const void* X, long long rowsX, const void* Y, long long rowsY,
                                         int dim, long long x0, long long y0,
                                         float (&acc)[TM / 8][kTileColsPerThread]) {
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
#pragma unroll
  for (int i = 0; i < TM / 8; ++i)
#pragma unroll
    for (int j = 0; j < kTileColsPerThread; ++j) acc[i][j] = 0.f;
  for (int d0 = 0; d0 < dim; d0 += kTileDim) {
    load_dot_tiles<Half, TM>(s, X, rowsX, Y, rowsY, dim, x0, y0, d0);
    __syncthreads();
    accumulate_tiles<TM, SqDiff>(s, acc, ty, tx);
    __syncthreads();
  }
}

// ------------------------------------------------------------------------------------------
// Tensor-core variant for fp16 inputs (WMMA m16n16k16, fp16 × fp16 products are exact in fp32,
// accumulation in fp32): the same TM × 128 tile, written to a shared-memory result tile.
// ------------------------------------------------------------------------------------------

constexpr int kHalfStride = kTileDim + 8;  // halves; a multiple of 8 as WMMA requires, 80 bytes

template <int TM>
struct HalfTiles {
  __half a[TM][kHalfStride];         // row-major: X row, dim
  __half b[kTileCols][kHalfStride];  // Y row, dim (= Yᵀ as a column-major matrix_b)
};

template <int Rows>
__device__ __forceinline__ void load_half_rows(__half (*dst)[kHalfStride], const __half* M, long long rowsM, int dim,
                                               long long m0, int d0) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int col = d0 + lane;
  const long long first = m0 + warp;
  const long long left = rowsM - first;
  const int valid = col < dim && left > 0 ? static_cast<int>(min((long long)(Rows / 8), (left + 7) / 8)) : 0;
  const long long step = 8LL * dim;
  long long offset = first * dim + col;
  const __half zero = __float2half(0.f);
#pragma unroll
  for (int it = 0; it < Rows / 8; ++it) {
    dst[warp + 8 * it][lane] = it < valid ? M[offset] : zero;
    offset += step;
  }
}

// 16-byte loads of 8 halves (4 threads per row's 32 dims, 64 rows per pass); dim % 8 == 0.
template <int Rows>
__device__ __forceinline__ void load_half_rows_vec(__half (*dst)[kHalfStride], const __half* M, long long rowsM,
                                                   int dim, long long m0, int d0) {
  const int chunk = threadIdx.x % 4, sub = threadIdx.x / 4;
  const int col = d0 + chunk * 8;
#pragma unroll
  for (int it = 0; it < (Rows + 63) / 64; ++it) {
    const int r = sub + 64 * it;
    if (Rows % 64 != 0 && r >= Rows) break;
    const long long row = m0 + r;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (row < rowsM && col < dim) v = *reinterpret_cast<const uint4*>(M + row * dim + col);
    *reinterpret_cast<uint4*>(&dst[r][chunk * 8]) = v;
  }
}

template <int TM>
__device__ __forceinline__ void load_half_tiles(HalfTiles<TM>& s, const __half* X, long long rowsX, const __half* Y,
                                                long long rowsY, int dim, long long x0, long long y0, int d0) {
  if (vector_ok(X, dim, 8) && vector_ok(Y, dim, 8)) {
    load_half_rows_vec<TM>(s.a, X, rowsX, dim, x0, d0);
    load_half_rows_vec<kTileCols>(s.b, Y, rowsY, dim, y0, d0);
  } else {
    load_half_rows<TM>(s.a, X, rowsX, dim, x0, d0);
    load_half_rows<kTileCols>(s.b, Y, rowsY, dim, y0, d0);
  }
}

// Dots of the tile into `result` (TM × kResultStride floats, 32-byte aligned). `result` may
// alias `s`: the last barrier of the dimension loop precedes the stores. Ends with a barrier.
template <int TM>
__device__ __forceinline__ void tile_dot_half_tc(HalfTiles<TM>& s, const __half* X, long long rowsX, const __half* Y,
                                                 long long rowsY, int dim, long long x0, long long y0, float* result) {
  using namespace nvcuda;
  constexpr int kWarpRows = TM / 16;              // warps along the rows
  constexpr int kWarpCols = 8 / kWarpRows;        // warps along the columns
  constexpr int kCols = kTileCols / kWarpCols;    // columns per warp
  constexpr int kFrags = kCols / 16;              // 16×16 accumulators per warp
  static_assert(kWarpRows * kWarpCols == 8 && kFrags >= 1, "tile shape");
  const int warp = threadIdx.x / 32;
  const int wr = warp / kWarpCols, wc = warp % kWarpCols;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kFrags];
#pragma unroll
  for (int f = 0; f < kFrags; ++f) wmma::fill_fragment(acc[f], 0.f);
  for (int d0 = 0; d0 < dim; d0 += kTileDim) {
    load_half_tiles<TM>(s, X, rowsX, Y, rowsY, dim, x0, y0, d0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileDim; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
      wmma::load_matrix_sync(a, &s.a[wr * 16][kk], kHalfStride);
#pragma unroll
      for (int f = 0; f < kFrags; ++f) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b;
        wmma::load_matrix_sync(b, &s.b[wc * kCols + f * 16][kk], kHalfStride);
        wmma::mma_sync(acc[f], a, b, acc[f]);
      }
    }
    __syncthreads();
  }
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
