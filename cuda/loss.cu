// Stage-1 kernels on the GPU (C ABI in api.h, math in spec/methods.md §1): symmetric InfoNCE
// with gradients, Sinkhorn-Knopp codes, the prototype loss, and the projection heads' matrix
// products. All host pointers; fp32 accumulation throughout.
//
// InfoNCE never materialises the b × b logits. With s_ij = ⟨za_i, zb_j⟩/τ,
//   r_i = LSE_j s_ij (rows), c_j = LSE_i s_ij (columns), L = (1/2b) Σ_i (r_i + c_i − 2 s_ii),
//   ∂L/∂s_ij = (1/2b)(P_ij + P'_ij − 2δ_ij), P = exp(s − r_i), P' = exp(s − c_j), so
//   ∂L/∂za_i = (1/2bτ) Σ_j (P_ij + P'_ij − 2δ_ij) zb_j and ∂L/∂zb_j = (1/2bτ) Σ_i (…) za_i.
// Both directions are the same computation with the roles of za and zb swapped (the columns of
// s are the rows of sᵀ = zb·zaᵀ/τ), so one kernel serves each: lse pass (online softmax over
// 128-column tiles: a running max and sum per row, combined across splits), then a gradient pass
// that recomputes the logits tile by tile, turns them into G = ∂L/∂s with the saved
// log-sum-exps, and multiplies G by the other side's rows — all in shared memory/registers.
//
// Matmul: tensor cores through WMMA with TF32 inputs (fp16 A converts exactly to TF32) and fp32
// accumulation on sm_80+; relative error per product ≈ 2⁻¹¹ (like PyTorch with TF32 enabled).
// On sm_75 (no TF32) and inside the prototype loss, a CUDA-core fp32 kernel is used instead.
#include <mma.h>

#include <climits>
#include <cmath>
#include <vector>

#include "api.h"
#include "distance.cuh"

namespace pp_cuda {
namespace {

void check_positive(const char* op, const char* what, int64_t v) {
  if (v < 1 || v > INT_MAX) fail(std::string(op) + ": " + what + " must be in 1.." + std::to_string(INT_MAX));
}

// ==========================================================================================
// Block reductions (fixed order for a given launch shape, hence deterministic)
// ==========================================================================================

__device__ __forceinline__ float block_sum(float v, float* scratch /* 32 */) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) / 32;
  float total = 0.f;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  return total;
}

__device__ __forceinline__ float block_max(float v, float* scratch /* 32 */) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) / 32;
  float total = -INFINITY;
  for (int w = 0; w < warps; ++w) total = fmaxf(total, scratch[w]);
  return total;
}

// ==========================================================================================
// Generic fp32 GEMM on CUDA cores: C (m×n) = op(A)·op(B) (+ C). A fp32 or fp16, row-major.
// Tile 64 × 64 × 16, 256 threads, 4 × 4 outputs per thread (columns strided by 16).
// ==========================================================================================

constexpr int kGemmTile = 64;
constexpr int kGemmK = 16;

template <bool HalfA>
__global__ void __launch_bounds__(256)
    gemm_fp32_kernel(const void* A, const float* B, float* C, long long m, long long n, long long inner, int transA,
                     int transB, int accumulate) {
  __shared__ __align__(16) float as[kGemmK][kGemmTile + 4];
  __shared__ float bs[kGemmK][kGemmTile + 1];
  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const long long m0 = (long long)blockIdx.x * kGemmTile, n0 = (long long)blockIdx.y * kGemmTile;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
  for (long long k0 = 0; k0 < inner; k0 += kGemmK) {
#pragma unroll
    for (int it = 0; it < kGemmTile * kGemmK / 256; ++it) {
      const int lin = it * 256 + t;
      // Consecutive threads walk the contiguous direction of the stored matrix.
      const int i = transA ? lin % kGemmTile : lin / kGemmK;
      const int kk = transA ? lin / kGemmTile : lin % kGemmK;
      const long long gm = m0 + i, gk = k0 + kk;
      float v = 0.f;
      if (gm < m && gk < inner) v = load<HalfA>(A, transA ? gk * m + gm : gm * inner + gk);
      as[kk][i] = v;
    }
#pragma unroll
    for (int it = 0; it < kGemmTile * kGemmK / 256; ++it) {
      const int lin = it * 256 + t;
      const int j = transB ? lin / kGemmK : lin % kGemmTile;
      const int kk = transB ? lin % kGemmK : lin / kGemmTile;
      const long long gn = n0 + j, gk = k0 + kk;
      float v = 0.f;
      if (gn < n && gk < inner) v = transB ? B[gn * inner + gk] : B[gk * n + gn];
      bs[kk][j] = v;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kGemmK; ++kk) {
      const float4 a4 = *reinterpret_cast<const float4*>(&as[kk][ty * 4]);
      const float a[4] = {a4.x, a4.y, a4.z, a4.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float bv = bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[i][j] = fmaf(a[i], bv, acc[i][j]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const long long row = m0 + ty * 4 + i;
    if (row >= m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const long long col = n0 + tx + 16 * j;
      if (col >= n) continue;
      const long long at = row * n + col;
      C[at] = accumulate ? C[at] + acc[i][j] : acc[i][j];
    }
  }
}

// Tensor-core GEMM (sm_80+): WMMA m16n16k8 TF32, fp32 accumulation. Tile 64 × 64 × 32,
// 4 warps, each 32 × 32 (2 × 2 fragments). Operands are rounded to TF32 as they are staged.
constexpr int kTcM = 64, kTcN = 64;

template <bool HalfA>
__global__ void __launch_bounds__(128)
    gemm_tf32_kernel(const void* A, const float* B, float* C, long long m, long long n, long long inner, int transA,
                     int transB, int accumulate) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  constexpr int kTcK = 32;
  constexpr int kTcLda = kTcK + 4;  // floats; multiples of 4 as WMMA requires
  constexpr int kTcLdb = kTcN + 4;
  constexpr int kTcLdc = kTcN + 4;
  constexpr int kTcSmemFloats =
      (kTcM * kTcLda + kTcK * kTcLdb) > (kTcM * kTcLdc) ? (kTcM * kTcLda + kTcK * kTcLdb) : (kTcM * kTcLdc);
  __shared__ __align__(128) float smem[kTcSmemFloats];
  float* as = smem;                 // [m][k], row-major
  float* bs = smem + kTcM * kTcLda;  // [k][n], row-major
  const int t = threadIdx.x, warp = t / 32;
  const int wm = warp / 2, wn = warp % 2;
  const long long m0 = (long long)blockIdx.x * kTcM, n0 = (long long)blockIdx.y * kTcN;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
#pragma unroll
  for (int f = 0; f < 2; ++f)
#pragma unroll
    for (int g = 0; g < 2; ++g) wmma::fill_fragment(acc[f][g], 0.f);
  for (long long k0 = 0; k0 < inner; k0 += kTcK) {
#pragma unroll 4
    for (int it = 0; it < kTcM * kTcK / 128; ++it) {
      const int lin = it * 128 + t;
      const int i = transA ? lin % kTcM : lin / kTcK;
      const int kk = transA ? lin / kTcM : lin % kTcK;
      const long long gm = m0 + i, gk = k0 + kk;
      float v = 0.f;
      if (gm < m && gk < inner) v = load<HalfA>(A, transA ? gk * m + gm : gm * inner + gk);
      as[i * kTcLda + kk] = wmma::__float_to_tf32(v);
    }
#pragma unroll 4
    for (int it = 0; it < kTcK * kTcN / 128; ++it) {
      const int lin = it * 128 + t;
      const int j = transB ? lin / kTcK : lin % kTcN;
      const int kk = transB ? lin % kTcK : lin / kTcN;
      const long long gn = n0 + j, gk = k0 + kk;
      float v = 0.f;
      if (gn < n && gk < inner) v = transB ? B[gn * inner + gk] : B[gk * n + gn];
      bs[kk * kTcLdb + j] = wmma::__float_to_tf32(v);
    }
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < kTcK; ks += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b[2];
#pragma unroll
      for (int f = 0; f < 2; ++f) wmma::load_matrix_sync(a[f], as + (wm * 32 + f * 16) * kTcLda + ks, kTcLda);
#pragma unroll
      for (int g = 0; g < 2; ++g) wmma::load_matrix_sync(b[g], bs + ks * kTcLdb + wn * 32 + g * 16, kTcLdb);
#pragma unroll
      for (int f = 0; f < 2; ++f)
#pragma unroll
        for (int g = 0; g < 2; ++g) wmma::mma_sync(acc[f][g], a[f], b[g], acc[f][g]);
    }
    __syncthreads();
  }
  float* cs = smem;  // [m][n], reuses the operand tiles (the loop ended with a barrier)
#pragma unroll
  for (int f = 0; f < 2; ++f)
#pragma unroll
    for (int g = 0; g < 2; ++g)
      wmma::store_matrix_sync(cs + (wm * 32 + f * 16) * kTcLdc + wn * 32 + g * 16, acc[f][g], kTcLdc,
                              wmma::mem_row_major);
  __syncthreads();
  for (int e = t; e < kTcM * kTcN; e += 128) {
    const int i = e / kTcN, j = e % kTcN;
    const long long row = m0 + i, col = n0 + j;
    if (row < m && col < n) {
      const long long at = row * n + col;
      const float v = cs[i * kTcLdc + j];
      C[at] = accumulate ? C[at] + v : v;
    }
  }
#endif
}

void check_gemm_grid(long long m, long long n, long long tileM, long long tileN) {
  if (ceil_div(m, tileM) > INT_MAX || ceil_div(n, tileN) > 65535) fail("matmul: matrix too large for one launch");
}

// Precise product (CUDA cores), used inside the losses and as the sm_75 matmul.
void gemm_fp32(Workspace& ws, const void* A, bool halfA, const float* B, float* C, long long m, long long n,
               long long inner, bool transA, bool transB, bool accumulate) {
  check_gemm_grid(m, n, kGemmTile, kGemmTile);
  const dim3 grid((unsigned)ceil_div(m, kGemmTile), (unsigned)ceil_div(n, kGemmTile));
  if (halfA)
    gemm_fp32_kernel<true><<<grid, 256, 0, ws.stream()>>>(A, B, C, m, n, inner, transA, transB, accumulate);
  else
    gemm_fp32_kernel<false><<<grid, 256, 0, ws.stream()>>>(A, B, C, m, n, inner, transA, transB, accumulate);
  check_launch("gemm_fp32_kernel");
}

void gemm_tf32(Workspace& ws, const void* A, bool halfA, const float* B, float* C, long long m, long long n,
               long long inner, bool transA, bool transB, bool accumulate) {
  check_gemm_grid(m, n, kTcM, kTcN);
  const dim3 grid((unsigned)ceil_div(m, kTcM), (unsigned)ceil_div(n, kTcN));
  if (halfA)
    gemm_tf32_kernel<true><<<grid, 128, 0, ws.stream()>>>(A, B, C, m, n, inner, transA, transB, accumulate);
  else
    gemm_tf32_kernel<false><<<grid, 128, 0, ws.stream()>>>(A, B, C, m, n, inner, transA, transB, accumulate);
  check_launch("gemm_tf32_kernel");
}

// ==========================================================================================
// InfoNCE
// ==========================================================================================

constexpr int kLossRows = 32;  // rows of X per block

__device__ __forceinline__ void lse_merge(float& m, float& l, float om, float ol) {
  if (ol == 0.f) return;
  if (l == 0.f) {
    m = om;
    l = ol;
    return;
  }
  const float nm = fmaxf(m, om);
  l = l * expf(m - nm) + ol * expf(om - nm);
  m = nm;
}

// Online log-sum-exp over y ∈ [split range) of s_xy = ⟨X_x, Y_y⟩·invTau for 32 rows x: the
// running (max, sum) of each row, merged over the warp's lanes, into part*[split][x]. When
// `diag` is given, s_xx is stored there: the very value the max and sum saw, so each row's
// loss term (M − s_xx) + log L is ≥ 0 exactly. (Both directions compute s_ij bit-identically:
// the same sequential fmaf chain over the dimension with the operands swapped.)
__global__ void __launch_bounds__(kTileThreads, 2)
    infonce_lse_kernel(const float* X, const float* Y, long long b, int dim, float invTau, long long ysPerSplit,
                       float* partM, float* partL, float* diag) {
  __shared__ __align__(16) DotTiles<kLossRows> tiles;
  constexpr int RM = kLossRows / 8;
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const long long x0 = (long long)blockIdx.x * kLossRows;
  const long long yBegin = (long long)blockIdx.y * ysPerSplit;
  const long long yEnd = min(b, yBegin + ysPerSplit);
  float m[RM], l[RM];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.f;
  }
  for (long long y0 = yBegin; y0 < yEnd; y0 += kTileCols) {
    float acc[RM][kTileColsPerThread];
    tile_dot<false, kLossRows, false>(tiles, X, b, Y, b, dim, x0, y0, acc);
#pragma unroll
    for (int i = 0; i < RM; ++i) {
      const long long x = x0 + ty * RM + i;
      float tileMax = -INFINITY;
#pragma unroll
      for (int j = 0; j < kTileColsPerThread; ++j) {
        const long long y = y0 + tx + 32 * j;
        if (y < yEnd) tileMax = fmaxf(tileMax, acc[i][j] * invTau);
        if (diag && y == x && x < b) diag[x] = acc[i][j] * invTau;
      }
      if (tileMax == -INFINITY) continue;  // no valid column for this lane in this tile
      const float nm = fmaxf(m[i], tileMax);
      float sum = l[i] > 0.f ? l[i] * expf(m[i] - nm) : 0.f;
#pragma unroll
      for (int j = 0; j < kTileColsPerThread; ++j)
        if (y0 + tx + 32 * j < yEnd) sum += expf(acc[i][j] * invTau - nm);
      m[i] = nm;
      l[i] = sum;
    }
  }
#pragma unroll
  for (int i = 0; i < RM; ++i) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float om = __shfl_xor_sync(kFullMask, m[i], offset);
      const float ol = __shfl_xor_sync(kFullMask, l[i], offset);
      lse_merge(m[i], l[i], om, ol);
    }
    const long long x = x0 + ty * RM + i;
    if (tx == 0 && x < b) {
      partM[(long long)blockIdx.y * b + x] = m[i];
      partL[(long long)blockIdx.y * b + x] = l[i];
    }
  }
}

// Merges the splits: lse = M + log L, and keeps M and L (the host forms the loss in double).
__global__ void lse_finish_kernel(const float* partM, const float* partL, long long b, int splits, float* lse,
                                  float* outM, float* outL) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= b) return;
  float m = -INFINITY, l = 0.f;
  for (int s = 0; s < splits; ++s) lse_merge(m, l, partM[s * b + x], partL[s * b + x]);
  lse[x] = m + logf(l);
  outM[x] = m;
  outL[x] = l;
}

// grad_X[x] (columns [colBase, colBase + NC·128)) += Σ_{y in split} G_xy · Y_y with
// G_xy = coef·(exp(s_xy − lseX_x) + exp(s_xy − lseY_y) − 2δ_xy), written to out[split][x][col].
template <int NC>
__global__ void __launch_bounds__(kTileThreads)
    infonce_grad_kernel(const float* X, const float* Y, long long b, int dim, float invTau, float coef,
                        const float* lseX, const float* lseY, long long ysPerSplit, int colBase, float* out) {
  __shared__ __align__(16) DotTiles<kLossRows> tiles;           // logits; `tiles.b` also stages Y columns
  __shared__ __align__(16) float gs[kTileCols][kLossRows + 4];  // G tile, [y][x]
  constexpr int RM = kLossRows / 8;
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const long long x0 = (long long)blockIdx.x * kLossRows;
  const long long yBegin = (long long)blockIdx.y * ysPerSplit;
  const long long yEnd = min(b, yBegin + ysPerSplit);
  float lx[RM];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const long long x = x0 + ty * RM + i;
    lx[i] = x < b ? lseX[x] : 0.f;
  }
  float acc2[NC][RM][kTileColsPerThread];
#pragma unroll
  for (int c = 0; c < NC; ++c)
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < kTileColsPerThread; ++j) acc2[c][i][j] = 0.f;

  for (long long y0 = yBegin; y0 < yEnd; y0 += kTileCols) {
    float acc[RM][kTileColsPerThread];
    tile_dot<false, kLossRows, false>(tiles, X, b, Y, b, dim, x0, y0, acc);
#pragma unroll
    for (int j = 0; j < kTileColsPerThread; ++j) {
      const long long y = y0 + tx + 32 * j;
      const bool yValid = y < yEnd;
      const float ly = yValid ? lseY[y] : 0.f;
#pragma unroll
      for (int i = 0; i < RM; ++i) {
        const long long x = x0 + ty * RM + i;
        float g = 0.f;
        if (yValid && x < b) {
          const float s = acc[i][j] * invTau;
          g = coef * (expf(s - lx[i]) + expf(s - ly) - (x == y ? 2.f : 0.f));
        }
        gs[tx + 32 * j][ty * RM + i] = g;
      }
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int cBase = colBase + c * kTileCols;
      if (cBase >= dim) break;  // uniform across the block
      for (int t0 = 0; t0 < kTileCols && y0 + t0 < yEnd; t0 += kTileDim) {
        // Stage Y[y0+t0 … +32][cBase … +128] as tiles.b[t][col] (coalesced, conflict-free).
#pragma unroll 4
        for (int it = 0; it < kTileDim * kTileCols / kTileThreads; ++it) {
          const int lin = it * kTileThreads + threadIdx.x;
          const int tr = lin / kTileCols, col = lin % kTileCols;
          const long long y = y0 + t0 + tr;
          const int cc = cBase + col;
          tiles.b[tr][col] = (y < yEnd && cc < dim) ? Y[y * dim + cc] : 0.f;
        }
        __syncthreads();
#pragma unroll 8
        for (int tt = 0; tt < kTileDim; ++tt) {
          const float4 g4 = *reinterpret_cast<const float4*>(&gs[t0 + tt][ty * RM]);
          const float g[4] = {g4.x, g4.y, g4.z, g4.w};
#pragma unroll
          for (int j = 0; j < kTileColsPerThread; ++j) {
            const float yv = tiles.b[tt][tx + 32 * j];
#pragma unroll
            for (int i = 0; i < RM; ++i) acc2[c][i][j] = fmaf(g[i], yv, acc2[c][i][j]);
          }
        }
        __syncthreads();
      }
    }
  }
#pragma unroll
  for (int c = 0; c < NC; ++c)
#pragma unroll
    for (int i = 0; i < RM; ++i) {
      const long long x = x0 + ty * RM + i;
      if (x >= b) continue;
#pragma unroll
      for (int j = 0; j < kTileColsPerThread; ++j) {
        const int col = colBase + c * kTileCols + tx + 32 * j;
        if (col < dim) out[((long long)blockIdx.y * b + x) * dim + col] = acc2[c][i][j];
      }
    }
}

__global__ void sum_splits_kernel(const float* part, long long n, int splits, float* out) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    float s = 0.f;
    for (int k = 0; k < splits; ++k) s += part[k * n + i];
    out[i] = s;
  }
}

unsigned elementwise_blocks(long long n) {
  return (unsigned)std::max<long long>(1, std::min<long long>(ceil_div(n, 256), (long long)device_info().sms * 32));
}

// Splits of the y range so that about `perSm` blocks per SM run for a small batch.
long long loss_splits(long long b, int perSm, long long* ysPerSplit) {
  const long long xTiles = ceil_div(b, kLossRows), yTiles = ceil_div(b, kTileCols);
  long long splits = std::max<long long>(1, std::min<long long>(ceil_div((long long)device_info().sms * perSm, xTiles),
                                                                yTiles));
  *ysPerSplit = ceil_div(yTiles, splits) * kTileCols;
  return ceil_div(b, *ysPerSplit);
}

// Row log-sum-exps of X·Yᵀ·invTau: lse[x], and M, L with lse = M + log L.
void run_lse(Workspace& ws, const float* X, const float* Y, long long b, int dim, float invTau, float* partM,
             float* partL, float* lse, float* outM, float* outL, float* diag) {
  long long ysPerSplit = 0;
  const long long splits = loss_splits(b, 4, &ysPerSplit);
  const dim3 grid((unsigned)ceil_div(b, kLossRows), (unsigned)splits);
  infonce_lse_kernel<<<grid, kTileThreads, 0, ws.stream()>>>(X, Y, b, dim, invTau, ysPerSplit, partM, partL,
                                                              diag);
  check_launch("infonce_lse_kernel");
  lse_finish_kernel<<<(unsigned)ceil_div(b, 256), 256, 0, ws.stream()>>>(partM, partL, b, (int)splits, lse, outM,
                                                                         outL);
  check_launch("lse_finish_kernel");
}

void run_grad(Workspace& ws, const float* X, const float* Y, long long b, int dim, float invTau, float coef,
              const float* lseX, const float* lseY, float* part, float* grad) {
  long long ysPerSplit = 0;
  const long long splits = loss_splits(b, 2, &ysPerSplit);
  float* target = splits == 1 ? grad : part;
  const dim3 grid((unsigned)ceil_div(b, kLossRows), (unsigned)splits);
  for (int colBase = 0; colBase < dim; colBase += 4 * kTileCols) {
    const int cols = dim - colBase;
    if (cols <= kTileCols)
      infonce_grad_kernel<1><<<grid, kTileThreads, 0, ws.stream()>>>(X, Y, b, dim, invTau, coef, lseX, lseY,
                                                                     ysPerSplit, colBase, target);
    else if (cols <= 2 * kTileCols)
      infonce_grad_kernel<2><<<grid, kTileThreads, 0, ws.stream()>>>(X, Y, b, dim, invTau, coef, lseX, lseY,
                                                                     ysPerSplit, colBase, target);
    else
      infonce_grad_kernel<4><<<grid, kTileThreads, 0, ws.stream()>>>(X, Y, b, dim, invTau, coef, lseX, lseY,
                                                                     ysPerSplit, colBase, target);
    check_launch("infonce_grad_kernel");
  }
  if (splits > 1) {
    sum_splits_kernel<<<elementwise_blocks(b * dim), 256, 0, ws.stream()>>>(part, b * dim, (int)splits, grad);
    check_launch("sum_splits_kernel");
  }
}

// ==========================================================================================
// Sinkhorn-Knopp
// ==========================================================================================

__global__ void max_partial_kernel(const float* x, long long n, float* part) {
  __shared__ float scratch[32];
  float v = -INFINITY;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) v = fmaxf(v, x[i]);
  v = block_max(v, scratch);
  if (threadIdx.x == 0) part[blockIdx.x] = v;
}

__global__ void max_final_kernel(const float* part, int n, float* out) {
  __shared__ float scratch[32];
  float v = -INFINITY;
  for (int i = threadIdx.x; i < n; i += blockDim.x) v = fmaxf(v, part[i]);
  v = block_max(v, scratch);
  if (threadIdx.x == 0) *out = v;
}

// q = exp((p − max)/ε), and block partial sums of q.
__global__ void sinkhorn_exp_kernel(const float* p, float* q, long long n, const float* maxP, float invEps,
                                    float* part) {
  __shared__ float scratch[32];
  const float mx = *maxP;
  float s = 0.f;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = expf((p[i] - mx) * invEps);
    q[i] = v;
    s += v;
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void sum_final_kernel(const float* part, int n, float* out) {
  __shared__ float scratch[32];
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *out = s;
}

// q /= *total (when positive).
__global__ void divide_kernel(float* q, long long n, const float* total) {
  const float t = *total;
  if (!(t > 0.f)) return;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) q[i] = q[i] / t;
}

__global__ void scale_kernel(float* q, long long n, float factor) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) q[i] *= factor;
}

// Column sums over a range of rows: block (32 columns × 8 row lanes), part[blockIdx.y][col].
__global__ void colsum_partial_kernel(const float* q, long long rows, int k, long long rowsPerBlock, float* part) {
  __shared__ float s[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const long long r0 = (long long)blockIdx.y * rowsPerBlock;
  const long long r1 = min(rows, r0 + rowsPerBlock);
  float acc = 0.f;
  if (c < k)
    for (long long r = r0 + threadIdx.y; r < r1; r += 8) acc += q[r * k + c];
  s[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < k) {
    float total = 0.f;
    for (int y = 0; y < 8; ++y) total += s[y][threadIdx.x];
    part[(long long)blockIdx.y * k + c] = total;
  }
}

__global__ void colsum_finish_kernel(const float* part, int k, int parts, float* colSum) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= k) return;
  float s = 0.f;
  for (int p = 0; p < parts; ++p) s += part[(long long)p * k + c];
  colSum[c] = s;
}

// One Sinkhorn iteration's second half, one warp per row: divide each column by its sum and
// by K, then the row by its sum and by b (zero sums are left alone).
__global__ void sinkhorn_row_kernel(float* q, long long rows, int k, const float* colSum, float kf, float bf) {
  const int lane = threadIdx.x % 32;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  for (long long r = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
    float* row = q + r * k;
    float s = 0.f;
    for (int c = lane; c < k; c += 32) {
      const float cs = colSum[c];
      const float v = cs > 0.f ? row[c] / cs / kf : row[c];
      row[c] = v;
      s += v;
    }
    s = warp_sum(s);
    if (s > 0.f)
      for (int c = lane; c < k; c += 32) row[c] = row[c] / s / bf;
  }
}

// ==========================================================================================
// Prototype loss: per-row softmax statistics, loss terms and G = ∂L/∂P (in place of P).
// ==========================================================================================

__global__ void proto_row_kernel(float* P, const float* Q, long long rows, int k, float invTau, float coef,
                                 float* rowLoss) {
  const int lane = threadIdx.x % 32;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  for (long long r = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
    float* p = P + r * k;
    const float* qr = Q + r * k;
    float mx = -INFINITY;
    for (int c = lane; c < k; c += 32) mx = fmaxf(mx, p[c] * invTau);
    mx = warp_max(mx);
    float sum = 0.f, qsum = 0.f;
    for (int c = lane; c < k; c += 32) {
      sum += expf(p[c] * invTau - mx);
      qsum += qr[c];
    }
    sum = warp_sum(sum);
    qsum = warp_sum(qsum);
    const float lse = mx + logf(sum);
    float loss = 0.f;
    for (int c = lane; c < k; c += 32) {
      const float logit = p[c] * invTau;
      loss = fmaf(qr[c], lse - logit, loss);
      p[c] = coef * (qsum * expf(logit - lse) - qr[c]);
    }
    loss = warp_sum(loss);
    if (lane == 0) rowLoss[r] = loss;
  }
}

double sum_on_host(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s;
}

}  // namespace
}  // namespace pp_cuda

using namespace pp_cuda;

extern "C" int pp_cuda_infonce(const float* za, const float* zb, int64_t rows, int64_t dim, float temperature,
                               float* loss, float* grad_a, float* grad_b, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    check_positive("infoNCE", "rows", rows);
    check_positive("infoNCE", "dim", dim);
    if (!(temperature > 0.f) || !std::isfinite(temperature)) fail("infoNCE: temperature must be a positive number");
    if (!za || !zb || !loss || !grad_a || !grad_b) fail("infoNCE: null input or output pointer");
    const long long b = rows;
    const int d = static_cast<int>(dim);
    const float invTau = 1.f / temperature;
    const float coef = static_cast<float>(1.0 / (2.0 * static_cast<double>(b) * static_cast<double>(temperature)));
    Lease lease;
    Workspace& ws = *lease;
    long long lseSplitsWidth = 0, gradSplitsWidth = 0;
    const long long lseSplits = loss_splits(b, 4, &lseSplitsWidth);
    const long long gradSplits = loss_splits(b, 2, &gradSplitsWidth);
    const size_t bd = size_t(b) * d;
    float* dA = ws.get<float>(0, bd);
    float* dB = ws.get<float>(1, bd);
    float* gA = ws.get<float>(2, bd);
    float* gB = ws.get<float>(3, bd);
    float* partM = ws.get<float>(4, size_t(lseSplits) * b);
    float* partL = ws.get<float>(5, size_t(lseSplits) * b);
    float* stats = ws.get<float>(6, size_t(b) * 7);  // lseRow, lseCol, Mrow, Lrow, Mcol, Lcol, diag
    float* partG = gradSplits > 1 ? ws.get<float>(7, size_t(gradSplits) * bd) : nullptr;
    float *lseRow = stats, *lseCol = stats + b, *mRow = stats + 2 * b, *lRow = stats + 3 * b, *mCol = stats + 4 * b,
          *lCol = stats + 5 * b, *diag = stats + 6 * b;

    upload(ws, dA, za, bd * sizeof(float));
    upload(ws, dB, zb, bd * sizeof(float));
    run_lse(ws, dA, dB, b, d, invTau, partM, partL, lseRow, mRow, lRow, diag);     // rows of s
    run_lse(ws, dB, dA, b, d, invTau, partM, partL, lseCol, mCol, lCol, nullptr);  // columns of s
    run_grad(ws, dA, dB, b, d, invTau, coef, lseRow, lseCol, partG, gA);
    run_grad(ws, dB, dA, b, d, invTau, coef, lseCol, lseRow, partG, gB);

    std::vector<float> host(size_t(b) * 7);
    download(ws, host.data(), stats, host.size() * sizeof(float));
    download(ws, grad_a, gA, bd * sizeof(float));
    download(ws, grad_b, gB, bd * sizeof(float));
    ws.sync();
    // L = (1/2b) Σ_i [(r_i − s_ii) + (c_i − s_ii)], with r = M + log L formed in double.
    double total = 0;
    for (long long i = 0; i < b; ++i) {
      const double s = host[6 * b + i];
      total += (static_cast<double>(host[2 * b + i]) - s) + std::log(static_cast<double>(host[3 * b + i]));
      total += (static_cast<double>(host[4 * b + i]) - s) + std::log(static_cast<double>(host[5 * b + i]));
    }
    *loss = static_cast<float>(total / (2.0 * static_cast<double>(b)));
  });
}

extern "C" int pp_cuda_sinkhorn(const float* scores, int64_t rows, int64_t k, float epsilon, int iterations,
                                float* codes, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    check_positive("sinkhorn", "rows", rows);
    check_positive("sinkhorn", "k", k);
    if (!(epsilon > 0.f) || !std::isfinite(epsilon)) fail("sinkhorn: epsilon must be a positive number");
    if (iterations < 0) fail("sinkhorn: iterations must be >= 0");
    if (!scores || !codes) fail("sinkhorn: null input or output pointer");
    const long long n = rows * k;
    const int kk = static_cast<int>(k);
    Lease lease;
    Workspace& ws = *lease;
    const unsigned blocks = elementwise_blocks(n);
    const long long rowsPerBlock = std::max<long long>(256, ceil_div(rows, 64));
    const unsigned colParts = (unsigned)ceil_div(rows, rowsPerBlock);
    float* dP = ws.get<float>(0, n);
    float* dQ = ws.get<float>(1, n);
    float* part = ws.get<float>(2, std::max<size_t>(blocks, size_t(colParts) * kk));
    float* colSum = ws.get<float>(3, kk);
    float* scalars = ws.get<float>(4, 2);  // max, total

    upload(ws, dP, scores, size_t(n) * sizeof(float));
    max_partial_kernel<<<blocks, 256, 0, ws.stream()>>>(dP, n, part);
    max_final_kernel<<<1, 256, 0, ws.stream()>>>(part, (int)blocks, scalars);
    sinkhorn_exp_kernel<<<blocks, 256, 0, ws.stream()>>>(dP, dQ, n, scalars, 1.f / epsilon, part);
    sum_final_kernel<<<1, 256, 0, ws.stream()>>>(part, (int)blocks, scalars + 1);
    divide_kernel<<<blocks, 256, 0, ws.stream()>>>(dQ, n, scalars + 1);
    check_launch("sinkhorn init");
    const unsigned rowBlocks = (unsigned)std::min<long long>(ceil_div(rows, 8), (long long)device_info().sms * 32);
    for (int it = 0; it < iterations; ++it) {
      colsum_partial_kernel<<<dim3((unsigned)ceil_div(kk, 32), colParts), dim3(32, 8), 0, ws.stream()>>>(
          dQ, rows, kk, rowsPerBlock, part);
      colsum_finish_kernel<<<(unsigned)ceil_div(kk, 256), 256, 0, ws.stream()>>>(part, kk, (int)colParts, colSum);
      sinkhorn_row_kernel<<<rowBlocks, 256, 0, ws.stream()>>>(dQ, rows, kk, colSum, static_cast<float>(kk),
                                                               static_cast<float>(rows));
      check_launch("sinkhorn iteration");
    }
    scale_kernel<<<blocks, 256, 0, ws.stream()>>>(dQ, n, static_cast<float>(rows));
    check_launch("scale_kernel");
    download(ws, codes, dQ, size_t(n) * sizeof(float));
    ws.sync();
  });
}

extern "C" int pp_cuda_prototype_loss(const float* z, const float* prototypes, const float* targets, int64_t rows,
                                      int64_t dim, int64_t k, float temperature, float* loss, float* grad_z,
                                      float* grad_prototypes, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    check_positive("prototypeLoss", "rows", rows);
    check_positive("prototypeLoss", "dim", dim);
    check_positive("prototypeLoss", "k", k);
    if (!(temperature > 0.f) || !std::isfinite(temperature))
      fail("prototypeLoss: temperature must be a positive number");
    if (!z || !prototypes || !targets || !loss || !grad_z || !grad_prototypes)
      fail("prototypeLoss: null input or output pointer");
    const long long b = rows, d = dim, kk = k;
    Lease lease;
    Workspace& ws = *lease;
    float* dZ = ws.get<float>(0, size_t(b) * d);
    float* dC = ws.get<float>(1, size_t(kk) * d);
    float* dQ = ws.get<float>(2, size_t(b) * kk);
    float* dP = ws.get<float>(3, size_t(b) * kk);
    float* gZ = ws.get<float>(4, size_t(b) * d);
    float* gC = ws.get<float>(5, size_t(kk) * d);
    float* rowLoss = ws.get<float>(6, b);
    upload(ws, dZ, z, size_t(b) * d * sizeof(float));
    upload(ws, dC, prototypes, size_t(kk) * d * sizeof(float));
    upload(ws, dQ, targets, size_t(b) * kk * sizeof(float));
    gemm_fp32(ws, dZ, false, dC, dP, b, kk, d, false, true, false);  // P = z·Cᵀ
    const float coef = static_cast<float>(1.0 / (static_cast<double>(b) * static_cast<double>(temperature)));
    proto_row_kernel<<<(unsigned)std::min<long long>(ceil_div(b, 8), (long long)device_info().sms * 32), 256, 0,
                       ws.stream()>>>(dP, dQ, b, (int)kk, 1.f / temperature, coef, rowLoss);
    check_launch("proto_row_kernel");
    gemm_fp32(ws, dP, false, dC, gZ, b, d, kk, false, false, false);  // ∂L/∂z = G·C
    gemm_fp32(ws, dP, false, dZ, gC, kk, d, b, true, false, false);   // ∂L/∂C = Gᵀ·z
    std::vector<float> host(b);
    download(ws, host.data(), rowLoss, size_t(b) * sizeof(float));
    download(ws, grad_z, gZ, size_t(b) * d * sizeof(float));
    download(ws, grad_prototypes, gC, size_t(kk) * d * sizeof(float));
    ws.sync();
    *loss = static_cast<float>(sum_on_host(host) / static_cast<double>(b));
  });
}

extern "C" int pp_cuda_matmul(const void* a, int a_half, const float* b, float* c, int64_t m, int64_t n, int64_t inner,
                              int trans_a, int trans_b, int accumulate, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (m < 0 || n < 0 || inner < 0) fail("matmul: m, n and inner must be >= 0");
    if (m == 0 || n == 0) return;
    if (!c) fail("matmul: null output pointer");
    if (inner == 0) {
      if (!accumulate)
        for (int64_t i = 0; i < m * n; ++i) c[i] = 0.f;
      return;
    }
    if (!a || !b) fail("matmul: null input pointer");
    Lease lease;
    Workspace& ws = *lease;
    const size_t aBytes = size_t(m) * inner * (a_half ? 2 : 4);
    void* dA = ws.get_bytes(0, aBytes);
    float* dB = ws.get<float>(1, size_t(inner) * n);
    float* dC = ws.get<float>(2, size_t(m) * n);
    upload(ws, dA, a, aBytes);
    upload(ws, dB, b, size_t(inner) * n * sizeof(float));
    if (accumulate) upload(ws, dC, c, size_t(m) * n * sizeof(float));
    if (device_info().major >= 8)
      gemm_tf32(ws, dA, a_half != 0, dB, dC, m, n, inner, trans_a != 0, trans_b != 0, accumulate != 0);
    else
      gemm_fp32(ws, dA, a_half != 0, dB, dC, m, n, inner, trans_a != 0, trans_b != 0, accumulate != 0);
    download(ws, c, dC, size_t(m) * n * sizeof(float));
    ws.sync();
  });
}
