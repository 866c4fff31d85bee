// CPU kernels of the warm-start area (core/warm.h). The loops mirror src/backend/js/warm.ts.
#include "core/warm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/matmul.h"
#include "core/parallel.h"
#include "core/simd.h"

namespace pp::warm {
namespace {

double combine(const double* l) { return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])); }

double dot_lanes_scalar(const float* a, const float* b, int64_t n) {
  double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t j = 0; j < n; ++j) l[j & 7] += static_cast<double>(a[j]) * static_cast<double>(b[j]);
  return combine(l);
}

#ifdef PP_SIMD_X86
// A float × float product is exact in double, so the fused multiply-add rounds exactly like the
// scalar (and JS) multiply-then-add.
PP_AVX2 double dot_lanes_avx2(const float* a, const float* b, int64_t n) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 va = _mm256_loadu_ps(a + j), vb = _mm256_loadu_ps(b + j);
    acc0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(va)), _mm256_cvtps_pd(_mm256_castps256_ps128(vb)), acc0);
    acc1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(va, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(vb, 1)), acc1);
  }
  alignas(32) double l[8];
  _mm256_store_pd(l, acc0);
  _mm256_store_pd(l + 4, acc1);
  for (int64_t t = 0; j < n; ++j, ++t) l[t] += static_cast<double>(a[j]) * static_cast<double>(b[j]);
  return combine(l);
}
#endif

using DotFn = double (*)(const float*, const float*, int64_t);

DotFn pick_dot() {
#ifdef PP_SIMD_X86
  if (cpu_has_avx2()) return dot_lanes_avx2;
#endif
  return dot_lanes_scalar;
}

// ⟨row idx[k], centre⟩ for count rows of a float32 store (row stride `stride`) against a float64
// centre zero-padded to a multiple of 8, n values each: out[k], each in the 8-lane order of
// dot_lanes (the centre's float64 copy is exact and a zero product never changes a lane). The
// SIMD variants run 4 rows at once: a lane's additions are sequential by definition, so one row
// alone is bound by the add latency; 4 independent rows keep the FMA units busy.
void dot_rows_scalar(const float* base, int64_t stride, const int32_t* idx, int64_t count, const double* centre, int64_t n,
                     double* out) {
  for (int64_t k = 0; k < count; ++k) {
    const float* a = base + idx[k] * stride;
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = 0; j < n; ++j) l[j & 7] += static_cast<double>(a[j]) * centre[j];
    out[k] = combine(l);
  }
}

#ifdef PP_SIMD_X86
PP_AVX512 void dot_rows_avx512(const float* base, int64_t stride, const int32_t* idx, int64_t count, const double* centre,
                               int64_t n, double* out) {
  const int64_t full = n & ~int64_t(7);
  const __mmask8 tail = static_cast<__mmask8>((1u << (n - full)) - 1);
  alignas(64) double l[8];
  int64_t k = 0;
  for (; k + 4 <= count; k += 4) {
    const float* a0 = base + idx[k] * stride;
    const float* a1 = base + idx[k + 1] * stride;
    const float* a2 = base + idx[k + 2] * stride;
    const float* a3 = base + idx[k + 3] * stride;
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd(), s2 = _mm512_setzero_pd(), s3 = _mm512_setzero_pd();
    for (int64_t j = 0; j < full; j += 8) {
      const __m512d c = _mm512_loadu_pd(centre + j);
      s0 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a0 + j)), c, s0);
      s1 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a1 + j)), c, s1);
      s2 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a2 + j)), c, s2);
      s3 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a3 + j)), c, s3);
    }
    if (tail) {
      const __m512d c = _mm512_loadu_pd(centre + full);
      s0 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(tail, a0 + full)), c, s0);
      s1 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(tail, a1 + full)), c, s1);
      s2 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(tail, a2 + full)), c, s2);
      s3 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(tail, a3 + full)), c, s3);
    }
    _mm512_store_pd(l, s0);
    out[k] = combine(l);
    _mm512_store_pd(l, s1);
    out[k + 1] = combine(l);
    _mm512_store_pd(l, s2);
    out[k + 2] = combine(l);
    _mm512_store_pd(l, s3);
    out[k + 3] = combine(l);
  }
  for (; k < count; ++k) {
    const float* a0 = base + idx[k] * stride;
    __m512d s0 = _mm512_setzero_pd();
    for (int64_t j = 0; j < full; j += 8) s0 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a0 + j)), _mm512_loadu_pd(centre + j), s0);
    if (tail) s0 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(tail, a0 + full)), _mm512_loadu_pd(centre + full), s0);
    _mm512_store_pd(l, s0);
    out[k] = combine(l);
  }
}

// Lanes 0–3 in one register, 4–7 in another; the tail through a scalar copy padded with zeros.
PP_AVX2 void dot_rows_avx2(const float* base, int64_t stride, const int32_t* idx, int64_t count, const double* centre,
                           int64_t n, double* out) {
  const int64_t full = n & ~int64_t(7);
  alignas(32) double l[8];
  alignas(32) float pad[4][8];
  int64_t k = 0;
  for (; k < count; k += 4) {
    const int rows = static_cast<int>(std::min<int64_t>(4, count - k));
    const float* a[4];
    for (int q = 0; q < 4; ++q) a[q] = base + idx[k + (q < rows ? q : 0)] * stride;
    __m256d lo[4], hi[4];
    for (int q = 0; q < 4; ++q) lo[q] = hi[q] = _mm256_setzero_pd();
    for (int64_t j = 0; j < full; j += 8) {
      const __m256d c0 = _mm256_loadu_pd(centre + j), c1 = _mm256_loadu_pd(centre + j + 4);
      for (int q = 0; q < 4; ++q) {
        const __m256 v = _mm256_loadu_ps(a[q] + j);
        lo[q] = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), c0, lo[q]);
        hi[q] = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), c1, hi[q]);
      }
    }
    if (full < n) {
      const __m256d c0 = _mm256_loadu_pd(centre + full), c1 = _mm256_loadu_pd(centre + full + 4);
      for (int q = 0; q < 4; ++q) {
        for (int t = 0; t < 8; ++t) pad[q][t] = full + t < n ? a[q][full + t] : 0.0f;
        const __m256 v = _mm256_load_ps(pad[q]);
        lo[q] = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), c0, lo[q]);
        hi[q] = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), c1, hi[q]);
      }
    }
    for (int q = 0; q < rows; ++q) {
      _mm256_store_pd(l, lo[q]);
      _mm256_store_pd(l + 4, hi[q]);
      out[k + q] = combine(l);
    }
  }
}
#endif

using DotRowsFn = void (*)(const float*, int64_t, const int32_t*, int64_t, const double*, int64_t, double*);

DotRowsFn pick_dot_rows() {
#ifdef PP_SIMD_X86
  if (cpu_has_avx512()) return dot_rows_avx512;
  if (cpu_has_avx2()) return dot_rows_avx2;
#endif
  return dot_rows_scalar;
}

int popcount(int t) {
  int n = 0;
  for (; t; t &= t - 1) ++n;
  return n;
}

double shapley_weight(int size, int blocks) {
  auto f = [](int n) {
    double r = 1;
    for (int i = 2; i <= n; ++i) r *= i;
    return r;
  };
  return (f(size) * f(blocks - size - 1)) / f(blocks);
}

// softmax(v)[at] in float64, the maximum subtracted (as js/warm.ts softmaxInto).
void softmax(const double* v, int64_t n, double* out) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t c = 0; c < n; ++c)
    if (v[c] > m) m = v[c];
  double sum = 0;
  for (int64_t c = 0; c < n; ++c) {
    out[c] = std::exp(v[c] - m);
    sum += out[c];
  }
  for (int64_t c = 0; c < n; ++c) out[c] /= sum;
}

}  // namespace

RowBounds row_bounds(const float* r, int64_t classes, int32_t pred) {
  RowBounds b;
  for (int64_t c = 0; c < classes; ++c) {
    if (c == pred) continue;
    b.pos += r[c];
    b.top = std::max(b.top, static_cast<double>(r[c]));
  }
  b.neg = r[pred];
  return b;
}

ForwardPass::ForwardPass(const GradientSpec& s)
    : C_(s.classes), K_(s.blocks), bd_(s.block_dim), F_(s.blocks * s.block_dim), balance_(s.balance),
      weight_(s.weight, s.weight + s.classes * s.blocks * s.block_dim), bias_(s.bias, s.bias + s.classes) {
  if (balance_ && K_ > kMaxBalanceBlocks)
    throw Error(PP_E_OPTION, "gradient embedding: modality balance is exact over all subsets for at most " +
                                 std::to_string(kMaxBalanceBlocks) + " modalities (got " + std::to_string(K_) + ")");
}

// Per-block partial logits, softmax, residual, Shapley scales (balance) and scaled features.
bool ForwardPass::run(int64_t count, const float* const* features, int32_t* pred, double* norm2, float* contributions,
                    float* scales, float* r_out, float* x_out, double* xnorm) const {
  // Per-block partial logits z_k = x^k W_kᵀ (count × C each), one GEMM per block.
  std::vector<float> z(static_cast<size_t>(K_ * count * C_));
  for (int64_t k = 0; k < K_; ++k) {
    GemmArgs g;
    g.m = count;
    g.n = C_;
    g.k = bd_;
    g.a = features[k];
    g.lda = bd_;
    g.b = weight_.data() + k * bd_;
    g.trans_b = true;
    g.ldb = F_;
    g.c = z.data() + k * count * C_;
    g.ldc = C_;
    gemm(g);
  }
  std::atomic<bool> negative{false};
  const int subsets = 1 << K_;
  parallel_for(count, 64, [&](int64_t b, int64_t e) {
    std::vector<double> logits(C_), p(C_), v(subsets), phi(K_);
    std::vector<float> s(K_);
    bool neg = false;
    for (int64_t i = b; i < e; ++i) {
      int64_t yhat = 0;
      for (int64_t c = 0; c < C_; ++c) {
        double l = bias_[c];
        for (int64_t k = 0; k < K_; ++k) l += z[(k * count + i) * C_ + c];
        logits[c] = l;
        if (l > logits[yhat]) yhat = c;
      }
      pred[i] = static_cast<int32_t>(yhat);
      const double top = logits[yhat];
      softmax(logits.data(), C_, p.data());
      float* r = r_out + i * C_;
      double rr = 0;
      for (int64_t c = 0; c < C_; ++c) {
        const float rc = static_cast<float>(p[c] - (c == yhat ? 1.0 : 0.0));
        r[c] = rc;
        rr += static_cast<double>(rc) * rc;
      }
      std::fill(s.begin(), s.end(), 1.0f);
      if (balance_) {
        for (int t = 0; t < subsets; ++t) {
          for (int64_t c = 0; c < C_; ++c) {
            double l = bias_[c];
            for (int64_t k = 0; k < K_; ++k)
              if (t & (1 << k)) l += z[(k * count + i) * C_ + c];
            logits[c] = l;
          }
          softmax(logits.data(), C_, p.data());
          v[t] = p[yhat];
        }
        double total = 0;
        for (int k = 0; k < K_; ++k) {
          double f = 0;
          for (int t = 0; t < subsets; ++t) {
            if (t & (1 << k)) continue;
            f += shapley_weight(popcount(t), static_cast<int>(K_)) * (v[t | (1 << k)] - v[t]);
          }
          phi[k] = std::fabs(f);
          total += phi[k];
        }
        double cmax = -std::numeric_limits<double>::infinity();
        for (int k = 0; k < K_; ++k) {
          const double c = total > 0 ? phi[k] / total : 1.0 / static_cast<double>(K_);
          contributions[i * K_ + k] = static_cast<float>(c);
          if (c > cmax) cmax = c;
          phi[k] = c;
        }
        for (int k = 0; k < K_; ++k) {
          s[k] = static_cast<float>(1 - (cmax - phi[k]));
          scales[i * K_ + k] = s[k];
        }
      }
      float* x = x_out + i * F_;
      double xx = 0;
      for (int64_t k = 0; k < K_; ++k) {
        const float* xk = features[k] + i * bd_;
        for (int64_t j = 0; j < bd_; ++j) {
          const float val = s[k] * xk[j];
          x[k * bd_ + j] = val;
          xx += static_cast<double>(val) * val;
          if (val < 0) neg = true;
        }
      }
      norm2[i] = std::isfinite(top) && std::isfinite(rr) ? rr * xx : std::numeric_limits<double>::quiet_NaN();
      xnorm[i] = std::sqrt(xx);
    }
    if (neg) negative.store(true);
  });
  return !negative.load();
}

namespace {

class CpuGradient final : public Gradient {
 public:
  explicit CpuGradient(const GradientSpec& s)
      : rows_(s.rows), C_(s.classes), F_(s.blocks * s.block_dim), forward_(s), r_(static_cast<size_t>(rows_ * C_)),
        x_(static_cast<size_t>(rows_ * F_)), norm2_(rows_), xnorm_(rows_), gnorm_(rows_), mind_(rows_), yhat_(rows_), rpos_(rows_),
        rtop_(rows_), rneg_(rows_), taken_(rows_),
        blocks_((rows_ + kSampleBlockRows - 1) / kSampleBlockRows), sums_(blocks_), first_in_(blocks_),
        last_pos_in_(blocks_), rcd_((C_ + 7) / 8 * 8), xcd_((F_ + 7) / 8 * 8), dot_(pick_dot()), dot_rows_(pick_dot_rows()) {}

  void load(int64_t start, int64_t count, const float* const* features, int32_t* pred, double* norm2,
            float* contributions, float* scales) override {
    if (!forward_.run(count, features, pred, norm2, contributions, scales, r_.data() + start * C_,
                      x_.data() + start * F_, xnorm_.data() + start))
      nonnegative_ = false;
    std::copy(norm2, norm2 + count, norm2_.begin() + start);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t g = start + i;
      gnorm_[g] = std::sqrt(norm2[i]);
      const RowBounds rb = row_bounds(r_.data() + g * C_, C_, pred[i]);
      yhat_[g] = pred[i];
      rpos_[g] = rb.pos;
      rtop_[g] = rb.top;
      rneg_[g] = rb.neg;
    }
  }

  void dots(const int32_t* a, const int32_t* b, int64_t n, double* out) override {
    for (int64_t t = 0; t < n; ++t) out[t] = dot(a[t], b[t]);
  }

  void sample_init(const uint8_t* exclude) override {
    std::copy(exclude, exclude + rows_, taken_.begin());
    std::fill(mind_.begin(), mind_.end(), std::numeric_limits<double>::infinity());
    centres_ = 0;
  }

  int64_t sample_step(int64_t steps, const double* uniforms, int32_t* picks, double* distance2) override {
    int64_t made = 0;
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t pick = centres_ == 0 ? largest_norm() : draw(uniforms[t]);
      if (pick < 0) break;
      picks[made] = static_cast<int32_t>(pick);
      distance2[made] = mind_[pick];
      ++made;
      taken_[pick] = 1;
      update(pick);
      ++centres_;
    }
    return made;
  }

 private:
  double dot(int64_t i, int64_t j) const {
    return dot_(r_.data() + i * C_, r_.data() + j * C_, C_) * dot_(x_.data() + i * F_, x_.data() + j * F_, F_);
  }

  int64_t largest_norm() const {
    int64_t best = -1;
    for (int64_t i = 0; i < rows_; ++i) {
      if (taken_[i]) continue;
      if (best < 0 || norm2_[i] > norm2_[best]) best = i;
    }
    return best;
  }

  // D²(i) ← min(D²(i), ‖g_i − g_c‖²); block sums rebuilt. Exact pruning levels (see
  // PRUNE_RELATIVE_MARGIN), none of which changes a result:
  //  1. from per-row scalars only, no r or x̂ read (shortcuts of this engine and the CUDA one):
  //     |⟨g_i, g_c⟩| ≤ ‖g_i‖‖g_c‖, then bounds on ⟨r_i, r_c⟩ from the sign pattern of r (one
  //     entry ≤ 0, at the prediction) with Cauchy–Schwarz on ⟨x̂_i, x̂_c⟩ — on isotropic data
  //     this skips ~95 % of the rows' r reads, which dominated the pass;
  //  2. the js twin's test: with a = ⟨r_i, r_c⟩ exact, Cauchy–Schwarz on ⟨x̂_i, x̂_c⟩.
  // Per block: candidates of level 1 are gathered, their a computed 4 rows at a time, then the
  // survivors of level 2 get ⟨x̂_i, x̂_c⟩ the same way, then the block is summed in row order.
  void update(int64_t c) {
    const double nc = norm2_[c], xc = xnorm_[c], gc = gnorm_[c];
    const double rpos_c = rpos_[c], rtop_c = rtop_[c], rneg_c = rneg_[c];
    const int32_t yhat_c = yhat_[c];
    std::fill(rcd_.begin(), rcd_.end(), 0.0);
    std::fill(xcd_.begin(), xcd_.end(), 0.0);
    std::copy(r_.data() + c * C_, r_.data() + (c + 1) * C_, rcd_.begin());
    std::copy(x_.data() + c * F_, x_.data() + (c + 1) * F_, xcd_.begin());
    parallel_for(blocks_, 1, [&](int64_t b, int64_t e) {
      thread_local std::vector<int32_t> cand, need;
      thread_local std::vector<double> av, aneed, dx;
      cand.resize(kSampleBlockRows);
      need.resize(kSampleBlockRows);
      av.resize(kSampleBlockRows);
      aneed.resize(kSampleBlockRows);
      dx.resize(kSampleBlockRows);
      for (int64_t bl = b; bl < e; ++bl) {
        const int64_t begin = bl * kSampleBlockRows, end = std::min(rows_, (bl + 1) * kSampleBlockRows);
        int64_t nc_rows = 0;
        for (int64_t i = begin; i < end; ++i) {
          if (taken_[i]) continue;
          const double scale = norm2_[i] + nc, margin = kPruneRelativeMargin * scale, m = mind_[i];
          if (scale - 2 * gnorm_[i] * gc - margin > m) continue;
          {
            // Bounds L ≤ ⟨r_i, r_c⟩ ≤ U from per-row scalars. Off both predictions the products
            // are ≥ 0 and at most r_ij · max_{j≠ŷ_c} r_cj (or symmetrically). At ŷ_i ≠ ŷ_c the two
            // remaining products have one factor ≤ 0 (≤ 0, and ≥ r_i[ŷ_i] · max r_c + …); at
            // ŷ_i = ŷ_c it is the product of the two negative entries (≥ 0). With x̂ ≥ 0,
            // ⟨x̂_i, x̂_c⟩ ≥ 0 and only U matters (the level-2 test's max(a, 0)); else max(U, −L).
            const bool same = yhat_[i] == yhat_c;
            const double u = std::min(rpos_[i] * rtop_c, rpos_c * rtop_[i]) + (same ? rneg_[i] * rneg_c : 0.0);
            const double reach = nonnegative_ ? std::max(u, 0.0) : std::max(u, same ? 0.0 : -(rneg_[i] * rtop_c + rtop_[i] * rneg_c));
            if (scale - 2 * reach * xnorm_[i] * xc - margin > m) continue;
          }
          cand[nc_rows++] = static_cast<int32_t>(i);
        }
        dot_rows_(r_.data(), C_, cand.data(), nc_rows, rcd_.data(), C_, av.data());
        int64_t nn = 0;
        for (int64_t k = 0; k < nc_rows; ++k) {
          const int64_t i = cand[k];
          const double a = av[k];
          const double scale = norm2_[i] + nc;
          const double bound = scale - 2 * (nonnegative_ ? std::max(a, 0.0) : std::fabs(a)) * xnorm_[i] * xc;
          if (!(bound - kPruneRelativeMargin * scale > mind_[i])) {
            need[nn] = static_cast<int32_t>(i);
            aneed[nn++] = a;
          }
        }
        dot_rows_(x_.data(), F_, need.data(), nn, xcd_.data(), F_, dx.data());
        for (int64_t k = 0; k < nn; ++k) {
          const int64_t i = need[k];
          double d = (norm2_[i] + nc) - 2 * aneed[k] * dx[k];
          if (d < 0) d = 0;
          if (d < mind_[i]) mind_[i] = d;
        }
        double sum = 0;
        int64_t first = -1, last_positive = -1;
        for (int64_t i = begin; i < end; ++i) {
          if (taken_[i]) continue;
          if (first < 0) first = i;
          if (mind_[i] > 0) last_positive = i;
          sum += mind_[i];
        }
        sums_[bl] = sum;
        first_in_[bl] = first;
        last_pos_in_[bl] = last_positive;
      }
    });
  }

  int64_t draw(double uniform) const {
    int64_t first = -1, last_positive = -1;
    double total = 0;
    for (int64_t b = 0; b < blocks_; ++b) {
      if (first < 0) first = first_in_[b];
      if (last_pos_in_[b] >= 0) last_positive = last_pos_in_[b];
      total += sums_[b];
    }
    if (first < 0) return -1;
    if (!(total > 0) || !std::isfinite(total)) return first;
    const double target = uniform * total;
    double acc = 0;
    int64_t b = 0;
    for (; b < blocks_; ++b) {
      if (acc + sums_[b] > target) break;
      acc += sums_[b];
    }
    if (b == blocks_) return last_positive;
    int64_t last_in_block = -1;
    const int64_t end = std::min(rows_, (b + 1) * kSampleBlockRows);
    for (int64_t i = b * kSampleBlockRows; i < end; ++i) {
      if (taken_[i]) continue;
      if (mind_[i] > 0) last_in_block = i;
      acc += mind_[i];
      if (acc > target) return i;
    }
    return last_in_block >= 0 ? last_in_block : last_positive;
  }

  const int64_t rows_, C_, F_;
  const ForwardPass forward_;
  std::vector<float> r_, x_;
  std::vector<double> norm2_, xnorm_, gnorm_, mind_;  // ‖g_i‖², ‖x̂_i‖, ‖g_i‖, D²(i)
  // Per row, for the bound on ⟨r_i, r_c⟩ that needs no r: the prediction ŷ_i, the sum and the
  // largest of r_i's entries off ŷ_i (all ≥ 0) and the entry at ŷ_i (≤ 0).
  std::vector<int32_t> yhat_;
  std::vector<double> rpos_, rtop_, rneg_;
  std::vector<uint8_t> taken_;
  const int64_t blocks_;
  std::vector<double> sums_;
  std::vector<int64_t> first_in_, last_pos_in_;
  std::vector<double> rcd_, xcd_;  // the current centre's r and x̂ in float64, zero-padded to 8
  const DotFn dot_;
  const DotRowsFn dot_rows_;
  bool nonnegative_ = true;
  int64_t centres_ = 0;
};

class CpuWarmEngine final : public WarmEngine {
 public:
  std::unique_ptr<Gradient> open(const GradientSpec& spec) const override { return std::make_unique<CpuGradient>(spec); }
};

}  // namespace

double dot_lanes(const float* a, const float* b, int64_t n) { return pick_dot()(a, b, n); }

const WarmEngine& cpu_warm_engine() {
  static const CpuWarmEngine engine;
  return engine;
}

}  // namespace pp::warm
