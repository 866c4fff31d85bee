// Stage-1 losses on the CPU. InfoNCE walks the b × b logits in square tiles computed by the
// packed GEMM; each tile updates the running log-sum-exp of its rows and of its columns (pass 1),
// then, recomputed, contributes G·zb to its rows' ∂za and Gᵀ·za to its columns' ∂zb (pass 2).
// Tiles are scheduled in "waves" — wave w gives task p the tile (p, (p + w) mod P) — so that no
// two tasks of a wave touch the same rows or columns: no locks, no per-thread copies of the
// gradients, and a deterministic summation order.
#include "core/loss.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/matmul.h"
#include "core/parallel.h"
#include "core/simd.h"

namespace pp {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Side of the logit tiles InfoNCE works on (a 256 KB tile per thread stays in L2).
constexpr int64_t kTile = 256;
// Up to this many logits (16 MiB: b ≤ 2,048) InfoNCE keeps its tiles between the two passes.
constexpr int64_t kInfoNceStashValues = int64_t(1) << 22;

// ---- elementwise row kernels -----------------------------------------------------------------

struct RowOps {
  // max_j x_j
  float (*max)(const float* x, int64_t n);
  // Σ_j exp(x_j − shift), accumulated in fp32 (n is at most a tile or a prototype count)
  float (*sum_exp)(const float* x, int64_t n, float shift);
  // m_j = max(m_j, x_j)
  void (*col_max)(const float* x, int64_t n, float* m);
  // acc_j += exp(x_j − shift_j)
  void (*col_sum_exp)(const float* x, int64_t n, const float* shift, float* acc);
  // x_j ← (exp(x_j − row_shift) + exp(x_j − col_shift_j)) · scale
  void (*nce_grad)(float* x, int64_t n, float row_shift, const float* col_shift, float scale);
  // x_j ← exp(x_j − shift) · scale − q_j · q_scale
  void (*softmax_grad)(float* x, int64_t n, float shift, float scale, const float* q, float q_scale);
};

float max_scalar(const float* x, int64_t n) {
  float m = kNegInf;
  for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j]);
  return m;
}
float sum_exp_scalar(const float* x, int64_t n, float shift) {
  float s = 0.0f;
  for (int64_t j = 0; j < n; ++j) s += std::exp(x[j] - shift);
  return s;
}
void col_max_scalar(const float* x, int64_t n, float* m) {
  for (int64_t j = 0; j < n; ++j) m[j] = std::max(m[j], x[j]);
}
void col_sum_exp_scalar(const float* x, int64_t n, const float* shift, float* acc) {
  for (int64_t j = 0; j < n; ++j) acc[j] += std::exp(x[j] - shift[j]);
}
void nce_grad_scalar(float* x, int64_t n, float row_shift, const float* col_shift, float scale) {
  for (int64_t j = 0; j < n; ++j) x[j] = (std::exp(x[j] - row_shift) + std::exp(x[j] - col_shift[j])) * scale;
}
void softmax_grad_scalar(float* x, int64_t n, float shift, float scale, const float* q, float q_scale) {
  for (int64_t j = 0; j < n; ++j) x[j] = std::exp(x[j] - shift) * scale - q[j] * q_scale;
}

#ifdef PP_SIMD_X86
// exp(x) for 8 floats: x = n·ln2 + r with |r| ≤ ln2/2, a degree-7 polynomial for e^r (≈1 ulp),
// 2^n through the exponent bits. Arguments below −87.3 give 0 (the only range these kernels
// feed it, shifted logits ≤ 0, needs no overflow handling beyond the clamp).
PP_AVX2 inline __m256 exp8(__m256 x) {
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.33654f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln 2 split in two so that n·ln2_hi is exact.
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
  return _mm256_andnot_ps(underflow, y);
}

PP_AVX2 inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

PP_AVX2 float max_avx2(const float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(kNegInf);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + j));
  float r = hmax8(m);
  for (; j < n; ++j) r = std::max(r, x[j]);
  return r;
}
PP_AVX2 float sum_exp_avx2(const float* x, int64_t n, float shift) {
  const __m256 sh = _mm256_set1_ps(shift);
  __m256 s = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) s = _mm256_add_ps(s, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), sh)));
  float r = hsum(s);
  for (; j < n; ++j) r += std::exp(x[j] - shift);
  return r;
}
PP_AVX2 void col_max_avx2(const float* x, int64_t n, float* m) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(m + j, _mm256_max_ps(_mm256_loadu_ps(m + j), _mm256_loadu_ps(x + j)));
  for (; j < n; ++j) m[j] = std::max(m[j], x[j]);
}
PP_AVX2 void col_sum_exp_avx2(const float* x, int64_t n, const float* shift, float* acc) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(shift + j)));
    _mm256_storeu_ps(acc + j, _mm256_add_ps(_mm256_loadu_ps(acc + j), e));
  }
  for (; j < n; ++j) acc[j] += std::exp(x[j] - shift[j]);
}
PP_AVX2 void nce_grad_avx2(float* x, int64_t n, float row_shift, const float* col_shift, float scale) {
  const __m256 rs = _mm256_set1_ps(row_shift), sc = _mm256_set1_ps(scale);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_loadu_ps(x + j);
    const __m256 e = _mm256_add_ps(exp8(_mm256_sub_ps(v, rs)), exp8(_mm256_sub_ps(v, _mm256_loadu_ps(col_shift + j))));
    _mm256_storeu_ps(x + j, _mm256_mul_ps(e, sc));
  }
  for (; j < n; ++j) x[j] = (std::exp(x[j] - row_shift) + std::exp(x[j] - col_shift[j])) * scale;
}
PP_AVX2 void softmax_grad_avx2(float* x, int64_t n, float shift, float scale, const float* q, float q_scale) {
  const __m256 sh = _mm256_set1_ps(shift), sc = _mm256_set1_ps(scale), qs = _mm256_set1_ps(q_scale);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), sh));
    _mm256_storeu_ps(x + j, _mm256_fmsub_ps(e, sc, _mm256_mul_ps(_mm256_loadu_ps(q + j), qs)));
  }
  for (; j < n; ++j) x[j] = std::exp(x[j] - shift) * scale - q[j] * q_scale;
}
#endif

const RowOps& row_ops() {
  static const RowOps scalar{max_scalar, sum_exp_scalar, col_max_scalar, col_sum_exp_scalar, nce_grad_scalar,
                             softmax_grad_scalar};
#ifdef PP_SIMD_X86
  static const RowOps avx2{max_avx2, sum_exp_avx2, col_max_avx2, col_sum_exp_avx2, nce_grad_avx2, softmax_grad_avx2};
  if (cpu_has_avx2()) return avx2;
#endif
  return scalar;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

thread_local std::vector<float> tl_tile, tl_cols, tl_stash;

float* tile_buffer(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Rows of the A operand as a GemmArgs for a product with the rows of B transposed.
GemmArgs product_abt(const float* a, const float* b, int64_t m, int64_t n, int64_t k, float alpha, float* c,
                     int64_t ldc) {
  GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a;
  g.lda = k;
  g.b = b;
  g.trans_b = true;
  g.ldb = k;
  g.c = c;
  g.ldc = ldc;
  g.alpha = alpha;
  return g;
}

double infonce(const float* za, const float* zb, int64_t b, int64_t d, double tau, float* grad_a, float* grad_b) {
  const RowOps& ops = row_ops();
  const int64_t threads = worker_threads();
  // Tiles of about kTile²; the block count is a multiple of the thread count so that every
  // wave splits evenly.
  int64_t blocks = ceil_div(b, kTile);
  if (threads > 1) {
    blocks = std::max(blocks, std::min<int64_t>(threads, b / 64));  // small batches still use every thread
    if (blocks > 1) blocks = ceil_div(blocks, threads) * threads;
  }
  const int64_t bs = (ceil_div(b, blocks) + 7) / 8 * 8;
  blocks = ceil_div(b, bs);
  const float inv_tau = static_cast<float>(1.0 / tau);

  std::vector<float> row_max(b, kNegInf), col_max(b, kNegInf);
  std::vector<double> row_sum(b, 0.0), col_sum(b, 0.0);
  // Small batches keep pass 1's tiles for pass 2 instead of computing them again (a quarter of
  // the products); the stash is at most kInfoNceStashValues floats.
  const bool stash_tiles = blocks * blocks * bs * bs <= kInfoNceStashValues;
  float* stash = stash_tiles ? tile_buffer(tl_stash, static_cast<size_t>(blocks * blocks * bs * bs)) : nullptr;
  auto stashed = [&](int64_t I, int64_t J) { return stash + (I * blocks + J) * bs * bs; };

  auto logits = [&](int64_t I, int64_t J, float* s, int64_t* ni, int64_t* nj) {
    *ni = std::min(bs, b - I * bs);
    *nj = std::min(bs, b - J * bs);
    gemm_serial(product_abt(za + I * bs * d, zb + J * bs * d, *ni, *nj, d, inv_tau, s, bs));
  };

  // Pass 1: running (max, Σ exp(· − max)) of every row and column.
  for (int64_t w = 0; w < blocks; ++w) {
    parallel_for(blocks, 1, [&](int64_t pb, int64_t pe) {
      float* tile = stash_tiles ? nullptr : tile_buffer(tl_tile, bs * bs);
      float* cols = tile_buffer(tl_cols, 2 * bs);
      float* cmax = cols;
      float* csum = cols + bs;
      for (int64_t p = pb; p < pe; ++p) {
        const int64_t I = p, J = (p + w) % blocks;
        float* s = tile ? tile : stashed(I, J);
        int64_t ni, nj;
        logits(I, J, s, &ni, &nj);
        for (int64_t i = 0; i < ni; ++i) {
          const float* row = s + i * bs;
          const int64_t gi = I * bs + i;
          const float m = std::max(row_max[gi], ops.max(row, nj));
          const double part = ops.sum_exp(row, nj, m);
          row_sum[gi] = row_sum[gi] * std::exp(static_cast<double>(row_max[gi]) - m) + part;
          row_max[gi] = m;
        }
        std::fill(cmax, cmax + nj, kNegInf);
        for (int64_t i = 0; i < ni; ++i) ops.col_max(s + i * bs, nj, cmax);
        for (int64_t j = 0; j < nj; ++j) cmax[j] = std::max(cmax[j], col_max[J * bs + j]);
        std::fill(csum, csum + nj, 0.0f);
        for (int64_t i = 0; i < ni; ++i) ops.col_sum_exp(s + i * bs, nj, cmax, csum);
        for (int64_t j = 0; j < nj; ++j) {
          const int64_t gj = J * bs + j;
          col_sum[gj] = col_sum[gj] * std::exp(static_cast<double>(col_max[gj]) - cmax[j]) + csum[j];
          col_max[gj] = cmax[j];
        }
      }
    });
  }

  std::vector<float> row_lse(b), col_lse(b);
  double total = 0.0;
  for (int64_t i = 0; i < b; ++i) {
    const double rl = row_max[i] + std::log(row_sum[i]);
    const double cl = col_max[i] + std::log(col_sum[i]);
    row_lse[i] = static_cast<float>(rl);
    col_lse[i] = static_cast<float>(cl);
    double diag = 0.0;  // s_ii in float64: the loss's only direct use of the logits
    for (int64_t t = 0; t < d; ++t) diag += static_cast<double>(za[i * d + t]) * zb[i * d + t];
    total += rl + cl - 2.0 * diag / tau;
  }

  // Pass 2: ∂L/∂s_ij = (softmax_row + softmax_col − 2·[i=j]) / 2b, and 1/τ for ∂s/∂z.
  std::memset(grad_a, 0, sizeof(float) * b * d);
  std::memset(grad_b, 0, sizeof(float) * b * d);
  const float scale = static_cast<float>(1.0 / (2.0 * static_cast<double>(b) * tau));
  for (int64_t w = 0; w < blocks; ++w) {
    parallel_for(blocks, 1, [&](int64_t pb, int64_t pe) {
      float* tile = stash_tiles ? nullptr : tile_buffer(tl_tile, bs * bs);
      for (int64_t p = pb; p < pe; ++p) {
        const int64_t I = p, J = (p + w) % blocks;
        float* s = tile ? tile : stashed(I, J);
        int64_t ni = std::min(bs, b - I * bs), nj = std::min(bs, b - J * bs);
        if (tile) logits(I, J, s, &ni, &nj);
        for (int64_t i = 0; i < ni; ++i) ops.nce_grad(s + i * bs, nj, row_lse[I * bs + i], col_lse.data() + J * bs, scale);
        if (I == J) {
          for (int64_t i = 0; i < ni; ++i) s[i * bs + i] -= 2.0f * scale;
        }
        GemmArgs ga;  // ∂za_I += G · zb_J
        ga.m = ni;
        ga.n = d;
        ga.k = nj;
        ga.a = s;
        ga.lda = bs;
        ga.b = zb + J * bs * d;
        ga.ldb = d;
        ga.c = grad_a + I * bs * d;
        ga.ldc = d;
        ga.accumulate = true;
        gemm_serial(ga);
        GemmArgs gb;  // ∂zb_J += Gᵀ · za_I
        gb.m = nj;
        gb.n = d;
        gb.k = ni;
        gb.a = s;
        gb.trans_a = true;
        gb.lda = bs;
        gb.b = za + I * bs * d;
        gb.ldb = d;
        gb.c = grad_b + J * bs * d;
        gb.ldc = d;
        gb.accumulate = true;
        gemm_serial(gb);
      }
    });
  }
  return total / (2.0 * static_cast<double>(b));
}

// ---- Sinkhorn-Knopp ----------------------------------------------------------------------------

// Beyond this spread of P/ε the multiplicative form could underflow in float64.
constexpr double kSinkhornLogDomainSpread = 600.0;

double log_sum_exp(const double* x, int64_t n, int64_t stride) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t t = 0; t < n; ++t) m = std::max(m, x[t * stride]);
  double s = 0.0;
  for (int64_t t = 0; t < n; ++t) s += std::exp(x[t * stride] - m);
  return m + std::log(s);
}

void sinkhorn_log_domain(std::vector<double>& lq, int64_t b, int64_t k, int iterations, float* codes) {
  const int64_t n = b * k;
  const double total = log_sum_exp(lq.data(), n, 1);
  for (auto& v : lq) v -= total;
  const double log_k = std::log(static_cast<double>(k)), log_b = std::log(static_cast<double>(b));
  for (int it = 0; it < iterations; ++it) {
    for (int64_t c = 0; c < k; ++c) {
      const double sub = log_sum_exp(lq.data() + c, b, k) + log_k;
      for (int64_t i = 0; i < b; ++i) lq[i * k + c] -= sub;
    }
    parallel_for(b, 256, [&](int64_t rb, int64_t re) {
      for (int64_t i = rb; i < re; ++i) {
        double* row = lq.data() + i * k;
        const double sub = log_sum_exp(row, k, 1) + log_b;
        for (int64_t c = 0; c < k; ++c) row[c] -= sub;
      }
    });
  }
  parallel_for(n, 4096, [&](int64_t bgn, int64_t end) {
    for (int64_t i = bgn; i < end; ++i) codes[i] = static_cast<float>(std::exp(lq[i] + log_b));
  });
}

void sinkhorn(const float* scores, int64_t b, int64_t k, double epsilon, int iterations, float* codes) {
  const int64_t n = b * k;
  const double inv_eps = 1.0 / epsilon;
  double hi = -std::numeric_limits<double>::infinity(), lo = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    const double v = scores[i] * inv_eps;
    hi = std::max(hi, v);
    lo = std::min(lo, v);
  }
  std::vector<double> q(n);
  if (hi - lo > kSinkhornLogDomainSpread) {
    for (int64_t i = 0; i < n; ++i) q[i] = scores[i] * inv_eps;
    return sinkhorn_log_domain(q, b, k, iterations, codes);
  }
  // Rows in fixed chunks, each with its own partial column sums (summed in chunk order, so the
  // result does not depend on the thread count). Every pass over the rows also produces the
  // column sums the next column normalisation needs.
  constexpr int64_t kRows = 128;
  const int64_t chunks = ceil_div(b, kRows);
  std::vector<double> partial(chunks * k), col(k);
  auto column_sums = [&] {
    std::fill(col.begin(), col.end(), 0.0);
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t t = 0; t < k; ++t) col[t] += partial[c * k + t];
  };
  // exp(P/ε − max): the constant factor disappears in the normalisations.
  parallel_for(b, kRows, [&](int64_t rb, int64_t re) {
    double* part = partial.data() + (rb / kRows) * k;
    std::fill(part, part + k, 0.0);
    for (int64_t i = rb; i < re; ++i) {
      double* row = q.data() + i * k;
      for (int64_t t = 0; t < k; ++t) part[t] += row[t] = std::exp(scores[i * k + t] * inv_eps - hi);
    }
  });
  column_sums();
  double total = 0.0;
  for (double v : col) total += v;
  // Normalising to sum 1 only rescales everything before the first column step; it matters
  // for the result only when there are no iterations.
  double scale = 1.0 / total;
  const double rows = static_cast<double>(b), cols = static_cast<double>(k);
  for (int it = 0; it < iterations; ++it) {
    for (auto& v : col) v = 1.0 / (v * cols);
    parallel_for(b, kRows, [&](int64_t rb, int64_t re) {
      double* part = partial.data() + (rb / kRows) * k;
      std::fill(part, part + k, 0.0);
      for (int64_t i = rb; i < re; ++i) {
        double* row = q.data() + i * k;
        double r = 0.0;
        for (int64_t t = 0; t < k; ++t) r += row[t] *= col[t];
        const double inv = 1.0 / (r * rows);
        for (int64_t t = 0; t < k; ++t) part[t] += row[t] *= inv;
      }
    });
    column_sums();
    scale = 1.0;
  }
  parallel_for(n, 4096, [&](int64_t bgn, int64_t end) {
    for (int64_t i = bgn; i < end; ++i) codes[i] = static_cast<float>(q[i] * scale * rows);
  });
}

// ---- prototype loss ----------------------------------------------------------------------------

double prototype_loss(const float* z, const float* prototypes, const float* targets, int64_t b, int64_t d, int64_t k,
                      double tau, float* grad_z, float* grad_prototypes) {
  const RowOps& ops = row_ops();
  // Logits l = z·Cᵀ/τ (b × k), then overwritten in place by ∂L/∂l · (1/τ).
  std::vector<float> l(b * k);
  gemm(product_abt(z, prototypes, b, k, d, static_cast<float>(1.0 / tau), l.data(), k));
  constexpr int64_t kGrain = 64;
  std::vector<double> partial(ceil_div(b, kGrain), 0.0);
  const double inv_b = 1.0 / static_cast<double>(b);
  const float q_scale = static_cast<float>(inv_b / tau);
  parallel_for(b, kGrain, [&](int64_t rb, int64_t re) {
    double loss = 0.0;
    for (int64_t i = rb; i < re; ++i) {
      float* row = l.data() + i * k;
      const float* q = targets + i * k;
      const float m = ops.max(row, k);
      const double lse = m + std::log(static_cast<double>(ops.sum_exp(row, k, m)));
      double q_sum = 0.0;
      for (int64_t c = 0; c < k; ++c) {
        q_sum += q[c];
        loss -= q[c] * (row[c] - lse);
      }
      // ∂L/∂l_ik = (softmax_ik · Σ_k' Q_ik' − Q_ik) / b (targets need not sum to 1)
      ops.softmax_grad(row, k, static_cast<float>(lse), static_cast<float>(q_sum * inv_b / tau), q, q_scale);
    }
    partial[rb / kGrain] = loss;
  });
  double loss = 0.0;
  for (double v : partial) loss += v;

  GemmArgs gz;  // ∂z = ∂l · C
  gz.m = b;
  gz.n = d;
  gz.k = k;
  gz.a = l.data();
  gz.lda = k;
  gz.b = prototypes;
  gz.ldb = d;
  gz.c = grad_z;
  gz.ldc = d;
  gemm(gz);
  GemmArgs gc;  // ∂C = ∂lᵀ · z
  gc.m = k;
  gc.n = d;
  gc.k = b;
  gc.a = l.data();
  gc.trans_a = true;
  gc.lda = k;
  gc.b = z;
  gc.ldb = d;
  gc.c = grad_prototypes;
  gc.ldc = d;
  gemm(gc);
  return loss * inv_b;
}

void linear_forward(const LinearForwardArgs& a) {
  GemmArgs g;  // y = x·w, bias and ReLU applied per tile
  g.m = a.rows;
  g.n = a.outputs;
  g.k = a.inputs;
  g.a = a.x;
  g.a_half = a.x_half;
  g.lda = a.inputs;
  g.b = a.w;
  g.ldb = a.outputs;
  g.c = a.y;
  g.ldc = a.outputs;
  g.bias = a.bias;
  g.relu = a.relu;
  gemm(g);
}

void linear_backward(const LinearBackwardArgs& a) {
  GemmArgs gw;  // ∂w = xᵀ·gy
  gw.m = a.inputs;
  gw.n = a.outputs;
  gw.k = a.rows;
  gw.a = a.x;
  gw.a_half = a.x_half;
  gw.trans_a = true;
  gw.lda = a.inputs;
  gw.b = a.gy;
  gw.ldb = a.outputs;
  gw.c = a.grad_w;
  gw.ldc = a.outputs;
  gemm(gw);
  column_sums(a.gy, a.rows, a.outputs, a.grad_bias);
  if (!a.gx) return;
  GemmArgs gx;  // ∂x = (gy·wᵀ) ⊙ [x > 0]
  gx.m = a.rows;
  gx.n = a.inputs;
  gx.k = a.outputs;
  gx.a = a.gy;
  gx.lda = a.outputs;
  gx.b = a.w;
  gx.trans_b = true;
  gx.ldb = a.outputs;
  gx.c = a.gx;
  gx.ldc = a.inputs;
  if (a.relu_input) {
    gx.mask = static_cast<const float*>(a.x);
    gx.ldmask = a.inputs;
  }
  gemm(gx);
}

class CpuLossEngine final : public LossEngine {
 public:
  double infonce(const InfoNceArgs& a) const override {
    return pp::infonce(a.za, a.zb, a.rows, a.dim, a.temperature, a.grad_a, a.grad_b);
  }
  void sinkhorn(const SinkhornArgs& a) const override { pp::sinkhorn(a.scores, a.rows, a.k, a.epsilon, a.iterations, a.codes); }
  double prototype_loss(const PrototypeLossArgs& a) const override {
    return pp::prototype_loss(a.z, a.prototypes, a.targets, a.rows, a.dim, a.k, a.temperature, a.grad_z,
                              a.grad_prototypes);
  }
  void matmul(const MatmulArgs& a) const override {
    pp::matmul(a.a, a.a_half, a.b, a.c, a.m, a.n, a.inner, a.trans_a, a.trans_b, a.accumulate);
  }
  void linear_forward(const LinearForwardArgs& a) const override { pp::linear_forward(a); }
  void linear_backward(const LinearBackwardArgs& a) const override { pp::linear_backward(a); }
  void adamw(const AdamWArgs& a) const override { adamw_step(a); }
};

}  // namespace

void column_sums(const float* g, int64_t rows, int64_t cols, float* out) {
  constexpr int64_t kCols = 64;  // one block of float64 sums per task
  const int64_t blocks = (cols + kCols - 1) / kCols;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * kCols, nc = std::min(kCols, cols - j0);
      double acc[kCols] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = g + r * cols + j0;
        for (int64_t j = 0; j < nc; ++j) acc[j] += row[j];
      }
      for (int64_t j = 0; j < nc; ++j) out[j0 + j] = static_cast<float>(acc[j]);
    }
  });
}

void add_bias_relu(float* y, const float* bias, int64_t rows, int64_t cols, bool relu) {
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = y + r * cols;
      for (int64_t j = 0; j < cols; ++j) {
        const float v = row[j] + bias[j];
        row[j] = relu && v < 0.0f ? 0.0f : v;
      }
    }
  });
}

void mask_by_positive(float* g, const float* x, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) g[i] = x[i] > 0.0f ? g[i] : 0.0f;
  });
}

void adamw_step(const AdamWArgs& a) {
  const double t = static_cast<double>(a.step);
  // 1 − β in float64 first (as torch does): float(0.999) is 1.3e-9 off, but 1 − float(0.999) is 1.3e-5 off.
  const float b1 = static_cast<float>(a.beta1), b2 = static_cast<float>(a.beta2);
  const float c1 = static_cast<float>(1.0 - a.beta1), c2 = static_cast<float>(1.0 - a.beta2);
  const float step_size = static_cast<float>(a.lr / (1.0 - std::pow(a.beta1, t)));
  const float inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(a.beta2, t)));
  const float eps = static_cast<float>(a.eps);
  const float shrink = static_cast<float>(1.0 - a.lr * a.weight_decay);
  parallel_for(a.n, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float g = a.grads[i];
      const float m = b1 * a.m[i] + c1 * g;
      const float v = b2 * a.v[i] + c2 * g * g;
      a.m[i] = m;
      a.v[i] = v;
      const float p = i < a.decayed ? a.params[i] * shrink : a.params[i];
      a.params[i] = p - step_size * m / (std::sqrt(v) * inv_sqrt_c2 + eps);
    }
  });
}

const LossEngine& cpu_loss_engine() {
  static const CpuLossEngine engine;
  return engine;
}

}  // namespace pp
