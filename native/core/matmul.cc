// GEMM in the classic packed form: op(B) is packed into KC × NR column panels, op(A) into
// MC × KC blocks of MR-row panels, and an MR × NR register-blocked micro-kernel runs over them.
// Packing absorbs the transposes and the fp16 → fp32 conversion, so the micro-kernel only ever
// sees one layout. Threads take rectangular blocks of C, each packing its own panels (gemm()).
#include "core/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/parallel.h"
#include "core/simd.h"

namespace pp {
namespace {

// Micro-tile shapes per SIMD level (the packing follows the kernel picked at run time):
//  AVX2 / scalar: 6 × 16 — 6 × 2 ymm accumulators + 2 B + 1 A = 15 of 16 registers, KC = 256;
//  AVX-512: 12 × 32 — 12 × 2 zmm accumulators + 2 B + 1 A = 27 of 32 registers, KC = 128 so the
//  KC × 32 B panel (16 KB) still leaves L1 room for the A panel.
constexpr int64_t MC = 96;   // rows per task (a multiple of every MR): the packed A block stays in L2
constexpr int64_t NC = 4096; // columns of B packed at once (bounds the shared buffer: KC × NC floats)

// Below this many multiply-adds a product runs on the calling thread only.
constexpr double kParallelMinWork = 1 << 18;

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// Thread-local scratch that only grows: pool threads and callers keep theirs between calls.
float* scratch(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.assign(n, 0.0f);
  return v.data();
}
thread_local std::vector<float> tl_apack, tl_ahalf, tl_bpack;

// ---- packing -------------------------------------------------------------------------------

// dst[p·width + r] = src[r·ld + p] for p < kc and r < rows; zero for rows ≤ r < width. The
// transposing half of packing (A not transposed, B transposed). May write up to 8 floats past
// the last group when width is not a multiple of 8 (callers leave slack).
using PanelTranspose = void (*)(const float* src, int64_t ld, int rows, int width, int64_t kc, float* dst);

void panel_transpose_scalar(const float* src, int64_t ld, int rows, int width, int64_t kc, float* dst) {
  for (int r = 0; r < width; ++r) {
    if (r < rows) {
      const float* s = src + r * ld;
      for (int64_t p = 0; p < kc; ++p) dst[p * width + r] = s[p];
    } else {
      for (int64_t p = 0; p < kc; ++p) dst[p * width + r] = 0.0f;
    }
  }
}

#ifdef PP_SIMD_X86
// 8 × 8 blocks transposed in registers; a group narrower than 8 (width 6, or the last 4 of width
// 12) is written with overlapping 8-wide stores in increasing order, each overwriting the previous
// one's spill. Groups go from the last to the first, so a full group rewrites what the narrow one
// spilled into the next k-row.
PP_AVX2 void panel_transpose_avx2(const float* src, int64_t ld, int rows, int width, int64_t kc, float* dst) {
  const int64_t kc8 = kc / 8 * 8;
  for (int r0 = (width - 1) / 8 * 8; r0 >= 0; r0 -= 8) {
    __m256 v[8];
    for (int64_t p = 0; p < kc8; p += 8) {
      for (int r = 0; r < 8; ++r) v[r] = r0 + r < rows ? _mm256_loadu_ps(src + (r0 + r) * ld + p) : _mm256_setzero_ps();
      const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
      const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
      const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
      const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
      const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* d = dst + p * width + r0;
      _mm256_storeu_ps(d, _mm256_permute2f128_ps(s0, s4, 0x20));
      _mm256_storeu_ps(d + width, _mm256_permute2f128_ps(s1, s5, 0x20));
      _mm256_storeu_ps(d + 2 * width, _mm256_permute2f128_ps(s2, s6, 0x20));
      _mm256_storeu_ps(d + 3 * width, _mm256_permute2f128_ps(s3, s7, 0x20));
      _mm256_storeu_ps(d + 4 * width, _mm256_permute2f128_ps(s0, s4, 0x31));
      _mm256_storeu_ps(d + 5 * width, _mm256_permute2f128_ps(s1, s5, 0x31));
      _mm256_storeu_ps(d + 6 * width, _mm256_permute2f128_ps(s2, s6, 0x31));
      _mm256_storeu_ps(d + 7 * width, _mm256_permute2f128_ps(s3, s7, 0x31));
    }
    const int span = std::min(8, width - r0);
    for (int64_t p = kc8; p < kc; ++p) {
      for (int r = 0; r < span; ++r) dst[p * width + r0 + r] = r0 + r < rows ? src[(r0 + r) * ld + p] : 0.0f;
    }
  }
}
#endif

PanelTranspose pick_transpose() {
#ifdef PP_SIMD_X86
  if (cpu_has_avx2()) return panel_transpose_avx2;
#endif
  return panel_transpose_scalar;
}

// op(A)[i0 : i0+mc, p0 : p0+kc] → MR-row panels, each stored k-major (MR values per k), zero
// padded to a multiple of MR rows. fp16 sources are converted into `half_buf` first.
void pack_a(const GemmArgs& g, int MR, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* out, float* half_buf) {
  const float* src;
  int64_t ld;
  int64_t base;  // offset of op(A)[i0, p0] in src
  if (g.a_half) {
    const uint16_t* a = static_cast<const uint16_t*>(g.a);
    if (g.trans_a) {  // stored k × m: convert kc rows of mc values
      for (int64_t p = 0; p < kc; ++p) half_to_float_n(a + (p0 + p) * g.lda + i0, half_buf + p * mc, mc);
      ld = mc;
    } else {
      for (int64_t i = 0; i < mc; ++i) half_to_float_n(a + (i0 + i) * g.lda + p0, half_buf + i * kc, kc);
      ld = kc;
    }
    src = half_buf;
    base = 0;
  } else {
    src = static_cast<const float*>(g.a);
    ld = g.lda;
    base = g.trans_a ? p0 * ld + i0 : i0 * ld + p0;
  }
  const PanelTranspose transpose = pick_transpose();
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int rows = static_cast<int>(std::min<int64_t>(MR, mc - ip));
    float* dst = out + ip * kc;
    if (g.trans_a) {  // op(A) rows are columns of the stored A: a plain copy per k
      const float* s = src + base + ip;
      for (int64_t p = 0; p < kc; ++p, s += ld, dst += MR) {
        int r = 0;
        for (; r < rows; ++r) dst[r] = s[r];
        for (; r < MR; ++r) dst[r] = 0.0f;
      }
    } else {
      transpose(src + base + ip * ld, ld, rows, MR, kc, dst);
    }
  }
}

// op(B)[p0 : p0+kc, j0 : j0+nc] → NR-column panels, each stored k-major (NR values per k), zero
// padded to a multiple of NR columns. Panels [jp_begin, jp_end) (in units of NR) only.
void pack_b(const GemmArgs& g, int NR, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int64_t jp_begin, int64_t jp_end,
            float* out) {
  const PanelTranspose transpose = pick_transpose();
  for (int64_t jp = jp_begin; jp < jp_end; ++jp) {
    const int64_t j = jp * NR;
    const int cols = static_cast<int>(std::min<int64_t>(NR, nc - j));
    float* dst = out + j * kc;
    if (g.trans_b) {  // stored n × k: column j of op(B) is a contiguous row of B
      transpose(g.b + (j0 + j) * g.ldb + p0, g.ldb, cols, NR, kc, dst);
    } else {
      const float* s = g.b + p0 * g.ldb + j0 + j;
      for (int64_t p = 0; p < kc; ++p, s += g.ldb, dst += NR) {
        if (cols == NR) {
          std::memcpy(dst, s, NR * sizeof(float));
        } else {
          int c = 0;
          for (; c < cols; ++c) dst[c] = s[c];
          for (; c < NR; ++c) dst[c] = 0.0f;
        }
      }
    }
  }
}

// ---- micro-kernels: C[mr × nr] (=|+=) alpha · Apanel · Bpanel --------------------------------

using MicroKernel = void (*)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int mr, int nr,
                             float alpha, bool add);

// acc holds rows of `stride` values.
void store_tile(const float* acc, int stride, float* c, int64_t ldc, int mr, int nr, float alpha, bool add) {
  for (int r = 0; r < mr; ++r) {
    float* row = c + r * ldc;
    for (int j = 0; j < nr; ++j) row[j] = add ? row[j] + alpha * acc[r * stride + j] : alpha * acc[r * stride + j];
  }
}

constexpr int MR = 6;   // the AVX2 and scalar micro-tile
constexpr int NR = 16;

void micro_scalar(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int mr, int nr, float alpha,
                  bool add) {
  float acc[MR * NR] = {};
  for (int64_t p = 0; p < kc; ++p, ap += MR, bp += NR) {
    for (int r = 0; r < MR; ++r) {
      const float a = ap[r];
      for (int j = 0; j < NR; ++j) acc[r * NR + j] += a * bp[j];
    }
  }
  store_tile(acc, NR, c, ldc, mr, nr, alpha, add);
}

#ifdef PP_SIMD_X86

PP_AVX2 inline void put_row(float* row, __m256 lo, __m256 hi, __m256 va, bool add) {
  if (add) {
    _mm256_storeu_ps(row, _mm256_fmadd_ps(lo, va, _mm256_loadu_ps(row)));
    _mm256_storeu_ps(row + 8, _mm256_fmadd_ps(hi, va, _mm256_loadu_ps(row + 8)));
  } else {
    _mm256_storeu_ps(row, _mm256_mul_ps(lo, va));
    _mm256_storeu_ps(row + 8, _mm256_mul_ps(hi, va));
  }
}

PP_AVX2 void micro_avx2(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int mr, int nr,
                        float alpha, bool add) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(bp);
    const __m256 b1 = _mm256_load_ps(bp + 8);
    __m256 a;
    a = _mm256_broadcast_ss(ap + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(ap + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(ap + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(ap + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(ap + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(ap + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
    ap += MR;
    bp += NR;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (mr == MR && nr == NR) {
    put_row(c, c00, c01, va, add);
    put_row(c + ldc, c10, c11, va, add);
    put_row(c + 2 * ldc, c20, c21, va, add);
    put_row(c + 3 * ldc, c30, c31, va, add);
    put_row(c + 4 * ldc, c40, c41, va, add);
    put_row(c + 5 * ldc, c50, c51, va, add);
    return;
  }
  alignas(32) float acc[MR * NR];
  _mm256_store_ps(acc + 0 * NR, c00);
  _mm256_store_ps(acc + 0 * NR + 8, c01);
  _mm256_store_ps(acc + 1 * NR, c10);
  _mm256_store_ps(acc + 1 * NR + 8, c11);
  _mm256_store_ps(acc + 2 * NR, c20);
  _mm256_store_ps(acc + 2 * NR + 8, c21);
  _mm256_store_ps(acc + 3 * NR, c30);
  _mm256_store_ps(acc + 3 * NR + 8, c31);
  _mm256_store_ps(acc + 4 * NR, c40);
  _mm256_store_ps(acc + 4 * NR + 8, c41);
  _mm256_store_ps(acc + 5 * NR, c50);
  _mm256_store_ps(acc + 5 * NR + 8, c51);
  store_tile(acc, NR, c, ldc, mr, nr, alpha, add);
}

constexpr int MR512 = 12;
constexpr int NR512 = 32;

// The AVX-512 micro-kernel: 12 × 32, A values broadcast, edges by masked loads and stores.
PP_AVX512 void micro_avx512(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int mr, int nr,
                            float alpha, bool add) {
  __m512 acc[MR512][2];
#pragma GCC unroll 12
  for (int r = 0; r < MR512; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_loadu_ps(bp);
    const __m512 b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR512; ++r) {
      const __m512 a = _mm512_set1_ps(ap[r]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
    }
    ap += MR512;
    bp += NR512;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? __mmask16(0xFFFF) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1) : __mmask16(0);
#pragma GCC unroll 12
  for (int r = 0; r < MR512; ++r) {
    if (r >= mr) break;
    float* row = c + r * ldc;
    if (add) {
      _mm512_mask_storeu_ps(row, m0, _mm512_fmadd_ps(acc[r][0], va, _mm512_maskz_loadu_ps(m0, row)));
      _mm512_mask_storeu_ps(row + 16, m1, _mm512_fmadd_ps(acc[r][1], va, _mm512_maskz_loadu_ps(m1, row + 16)));
    } else {
      _mm512_mask_storeu_ps(row, m0, _mm512_mul_ps(acc[r][0], va));
      _mm512_mask_storeu_ps(row + 16, m1, _mm512_mul_ps(acc[r][1], va));
    }
  }
}
#endif

// The micro-kernel of the dispatched SIMD level and the packing shape it reads.
struct Kernel {
  MicroKernel fn;
  int mr, nr;
  int64_t kc;  // longest inner slice
};

const Kernel& pick_kernel() {
  static const Kernel scalar{micro_scalar, MR, NR, 256};
#ifdef PP_SIMD_X86
  static const Kernel avx2{micro_avx2, MR, NR, 256};
  static const Kernel avx512{micro_avx512, MR512, NR512, 128};
  if (cpu_has_avx512()) return avx512;
  if (cpu_has_avx2()) return avx2;
#endif
  return scalar;
}

// C[i0 : i0+mc, j0 : j0+nc] (=|+=) alpha · Apack · Bpack, over packed blocks.
void macro_kernel(const Kernel& kern, int64_t mc, int64_t nc, int64_t kc, const float* apack, const float* bpack,
                  float* c, int64_t ldc, float alpha, bool add) {
  for (int64_t j = 0; j < nc; j += kern.nr) {
    const int nr = static_cast<int>(std::min<int64_t>(kern.nr, nc - j));
    for (int64_t i = 0; i < mc; i += kern.mr) {
      const int mr = static_cast<int>(std::min<int64_t>(kern.mr, mc - i));
      kern.fn(kc, apack + i * kc, bpack + j * kc, c + i * ldc + j, ldc, mr, nr, alpha, add);
    }
  }
}

// The inner slices of k: as equal as possible, none longer than kc_max (avoids a thin last slice).
int64_t slice_len(int64_t k, int64_t kc_max) {
  const int64_t slices = (k + kc_max - 1) / kc_max;
  return (k + slices - 1) / slices;
}

bool has_epilogue(const GemmArgs& g) { return g.bias != nullptr || g.relu || g.mask != nullptr; }

// The epilogue of GemmArgs on C[i0 : i0+mc, j0 : j0+nc].
void epilogue(const GemmArgs& g, int64_t i0, int64_t mc, int64_t j0, int64_t nc) {
  for (int64_t i = i0; i < i0 + mc; ++i) {
    float* row = g.c + i * g.ldc + j0;
    if (g.bias) {
      const float* b = g.bias + j0;
      for (int64_t j = 0; j < nc; ++j) row[j] += b[j];
    }
    if (g.relu) {
      for (int64_t j = 0; j < nc; ++j) row[j] = row[j] < 0.0f ? 0.0f : row[j];
    }
    if (g.mask) {
      const float* mk = g.mask + i * g.ldmask + j0;
      for (int64_t j = 0; j < nc; ++j) row[j] = mk[j] > 0.0f ? row[j] : 0.0f;
    }
  }
}

void zero_or_keep(const GemmArgs& g) {
  if (!g.accumulate) {
    for (int64_t i = 0; i < g.m; ++i) std::memset(g.c + i * g.ldc, 0, sizeof(float) * g.n);
  }
  if (has_epilogue(g)) epilogue(g, 0, g.m, 0, g.n);
}

// `vector<float>` data is only 16-byte aligned; the packed panels want 64 (aligned AVX2 loads,
// whole cache lines for AVX-512).
float* align64(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

}  // namespace

void gemm_serial(const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) return zero_or_keep(g);
  const Kernel& kern = pick_kernel();
  const int64_t kcmax = slice_len(g.k, kern.kc);
  const int64_t mcmax = std::min(MC, round_up(g.m, kern.mr));
  const int64_t ncmax = std::min(NC, round_up(g.n, kern.nr));
  float* bpack = align64(scratch(tl_bpack, kcmax * ncmax + 24));
  float* apack = align64(scratch(tl_apack, kcmax * mcmax + 32));  // slack: see PanelTranspose
  float* ahalf = g.a_half ? scratch(tl_ahalf, kcmax * mcmax) : nullptr;
  for (int64_t j0 = 0; j0 < g.n; j0 += NC) {
    const int64_t nc = std::min(NC, g.n - j0);
    for (int64_t p0 = 0; p0 < g.k; p0 += kcmax) {
      const int64_t kc = std::min(kcmax, g.k - p0);
      const bool add = g.accumulate || p0 > 0;
      pack_b(g, kern.nr, p0, kc, j0, nc, 0, (nc + kern.nr - 1) / kern.nr, bpack);
      for (int64_t i0 = 0; i0 < g.m; i0 += MC) {
        const int64_t mc = std::min(MC, g.m - i0);
        pack_a(g, kern.mr, i0, mc, p0, kc, apack, ahalf);
        macro_kernel(kern, mc, nc, kc, apack, bpack, g.c + i0 * g.ldc + j0, g.ldc, g.alpha, add);
        if (p0 + kc == g.k && has_epilogue(g)) epilogue(g, i0, mc, j0, nc);
      }
    }
  }
}

namespace {

// The product restricted to C[i0 : i0+mc, j0 : j0+nc]: the same operands with their origins moved.
GemmArgs sub_block(const GemmArgs& g, int64_t i0, int64_t mc, int64_t j0, int64_t nc) {
  GemmArgs s = g;
  s.m = mc;
  s.n = nc;
  const int64_t a_at = g.trans_a ? i0 : i0 * g.lda;
  s.a = g.a_half ? static_cast<const void*>(static_cast<const uint16_t*>(g.a) + a_at)
                 : static_cast<const void*>(static_cast<const float*>(g.a) + a_at);
  s.b = g.b + (g.trans_b ? j0 * g.ldb : j0);
  s.c = g.c + i0 * g.ldc + j0;
  if (g.bias) s.bias = g.bias + j0;
  if (g.mask) s.mask = g.mask + i0 * g.ldmask + j0;
  return s;
}

}  // namespace

// Threads take whole sub-blocks of C, each running the serial algorithm (its own packing) over
// every inner slice: one fork-join per product instead of two per inner slice, so a thread the
// OS deschedules (a loaded machine) stalls only its own block. The repacking this costs is about
// 1/MC (B) and 1/block-width (A) of the multiply-adds.
void gemm(const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) return zero_or_keep(g);
  const double work = static_cast<double>(g.m) * g.n * g.k;
  const int threads = worker_threads();
  if (threads == 1 || work < kParallelMinWork) return gemm_serial(g);

  const Kernel& kern = pick_kernel();
  // About four blocks per thread (dynamic balance): rows first (a block shares its packed B
  // panels), then columns when the rows alone give too few; no block below 4 micro-tiles a side.
  const int64_t want = 4 * threads;
  const int64_t row_blocks_max = std::max<int64_t>(1, g.m / (4 * kern.mr));
  const int64_t col_blocks_max = std::max<int64_t>(1, g.n / (2 * kern.nr));
  int64_t row_blocks = std::min(want, row_blocks_max);
  int64_t col_blocks = std::min((want + row_blocks - 1) / row_blocks, col_blocks_max);
  const int64_t rows_per = round_up((g.m + row_blocks - 1) / row_blocks, kern.mr);
  const int64_t cols_per = round_up((g.n + col_blocks - 1) / col_blocks, kern.nr);
  row_blocks = (g.m + rows_per - 1) / rows_per;
  col_blocks = (g.n + cols_per - 1) / cols_per;
  parallel_for(row_blocks * col_blocks, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t i0 = (t / col_blocks) * rows_per, j0 = (t % col_blocks) * cols_per;
      gemm_serial(sub_block(g, i0, std::min(rows_per, g.m - i0), j0, std::min(cols_per, g.n - j0)));
    }
  });
}

void matmul(const void* a, bool a_half, const float* b, float* c, int64_t m, int64_t n, int64_t inner, bool trans_a,
            bool trans_b, bool accumulate) {
  GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = inner;
  g.a = a;
  g.a_half = a_half;
  g.trans_a = trans_a;
  g.lda = trans_a ? m : inner;
  g.b = b;
  g.trans_b = trans_b;
  g.ldb = trans_b ? inner : n;
  g.c = c;
  g.ldc = n;
  g.accumulate = accumulate;
  gemm(g);
}

}  // namespace pp
