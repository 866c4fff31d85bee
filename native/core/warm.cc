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
        x_(static_cast<size_t>(rows_ * F_)), norm2_(rows_), xnorm_(rows_), mind_(rows_), taken_(rows_),
        blocks_((rows_ + kSampleBlockRows - 1) / kSampleBlockRows), sums_(blocks_), first_in_(blocks_),
        last_pos_in_(blocks_), dot_(pick_dot()) {}

  void load(int64_t start, int64_t count, const float* const* features, int32_t* pred, double* norm2,
            float* contributions, float* scales) override {
    if (!forward_.run(count, features, pred, norm2, contributions, scales, r_.data() + start * C_,
                      x_.data() + start * F_, xnorm_.data() + start))
      nonnegative_ = false;
    std::copy(norm2, norm2 + count, norm2_.begin() + start);
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

  // D²(i) ← min(D²(i), ‖g_i − g_c‖²), skipping the feature dot product where the Cauchy–Schwarz
  // bound on ⟨x̂_i, x̂_c⟩ already keeps the minimum (see PRUNE_RELATIVE_MARGIN); block sums rebuilt.
  void update(int64_t c) {
    const double nc = norm2_[c], xc = xnorm_[c];
    const float* rc = r_.data() + c * C_;
    const float* xcv = x_.data() + c * F_;
    parallel_for(blocks_, 1, [&](int64_t b, int64_t e) {
      for (int64_t bl = b; bl < e; ++bl) {
        double sum = 0;
        int64_t first = -1, last_positive = -1;
        const int64_t end = std::min(rows_, (bl + 1) * kSampleBlockRows);
        for (int64_t i = bl * kSampleBlockRows; i < end; ++i) {
          if (taken_[i]) continue;
          if (first < 0) first = i;
          const double a = dot_(r_.data() + i * C_, rc, C_);
          const double scale = norm2_[i] + nc;
          const double bound = scale - 2 * (nonnegative_ ? std::max(a, 0.0) : std::fabs(a)) * xnorm_[i] * xc;
          if (!(bound - kPruneRelativeMargin * scale > mind_[i])) {
            const double dx = dot_(x_.data() + i * F_, xcv, F_);
            double d = scale - 2 * a * dx;
            if (d < 0) d = 0;
            if (d < mind_[i]) mind_[i] = d;
          }
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
  std::vector<double> norm2_, xnorm_, mind_;
  std::vector<uint8_t> taken_;
  const int64_t blocks_;
  std::vector<double> sums_;
  std::vector<int64_t> first_in_, last_pos_in_;
  const DotFn dot_;
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
