// Downstream-classifier kernels on the CPU. Rows are processed in blocks on the worker pool;
// per-block partial sums are kept in block order and added at the end, so results do not depend
// on the thread count. Per-row sums (log-sum-exp, entropy) are float64: C is small, it is cheap.
#include "core/train.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/codes.h"
#include "core/matmul.h"
#include "core/parallel.h"

namespace pp {
namespace {

constexpr int64_t kRowBlock = 512;

class CpuTrainEngine final : public TrainEngine {
 public:
  SoftmaxCrossEntropyResult softmax_cross_entropy(const SoftmaxCrossEntropyArgs& a) const override {
    const int64_t C = a.classes;
    const int64_t blocks = (a.rows + kRowBlock - 1) / kRowBlock;
    std::vector<double> loss(static_cast<size_t>(blocks), 0.0);
    std::vector<int64_t> correct(static_cast<size_t>(blocks), 0);
    parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t end = std::min(a.rows, (b + 1) * kRowBlock);
        double block_loss = 0;
        int64_t block_correct = 0;
        for (int64_t i = b * kRowBlock; i < end; ++i) {
          const float* x = a.logits + i * C;
          float* g = a.grad + i * C;
          const int32_t y = a.labels[i];
          if (y < 0) {
            std::fill(g, g + C, 0.0f);
            continue;
          }
          float max = -std::numeric_limits<float>::infinity();
          int64_t arg = 0;
          for (int64_t k = 0; k < C; ++k) {
            if (x[k] > max) {
              max = x[k];
              arg = k;
            }
          }
          double sum = 0;
          for (int64_t k = 0; k < C; ++k) sum += std::exp(static_cast<double>(x[k]) - max);
          const double lse = max + std::log(sum);
          block_loss += lse - x[y];
          if (arg == y) ++block_correct;
          for (int64_t k = 0; k < C; ++k)
            g[k] = static_cast<float>(a.scale * (std::exp(static_cast<double>(x[k]) - lse) - (k == y ? 1.0 : 0.0)));
        }
        loss[static_cast<size_t>(b)] = block_loss;
        correct[static_cast<size_t>(b)] = block_correct;
      }
    });
    SoftmaxCrossEntropyResult r;
    for (int64_t b = 0; b < blocks; ++b) {
      r.loss += loss[static_cast<size_t>(b)];
      r.correct += correct[static_cast<size_t>(b)];
    }
    r.loss *= a.scale;
    return r;
  }

  void head_projection(const HeadProjectionArgs& a) const override {
    const int64_t h = a.hidden;
    float* P = a.projection;
    const float* hbar = a.mean_feature;
    std::vector<double> k(static_cast<size_t>(h));
    for (int64_t r = 0; r < h; ++r) {
      double s = 0;
      for (int64_t c = 0; c < h; ++c) s += static_cast<double>(P[r * h + c]) * hbar[c];
      k[static_cast<size_t>(r)] = s;
    }
    double denom = a.alpha;
    for (int64_t c = 0; c < h; ++c) denom += hbar[c] * k[static_cast<size_t>(c)];
    double norm2 = 0;
    for (int64_t r = 0; r < h; ++r) {
      const double kr = k[static_cast<size_t>(r)] / denom;
      for (int64_t c = 0; c < h; ++c) {
        const double v = P[r * h + c] - kr * k[static_cast<size_t>(c)];
        norm2 += v * v;
        P[r * h + c] = static_cast<float>(v);
      }
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(norm2));
    for (int64_t t = 0; t < h * h; ++t) P[t] *= inv;
    std::vector<float> out(static_cast<size_t>(a.classes * h));
    matmul(a.grad_weight, false, P, out.data(), a.classes, h, h, false, false, false);
    std::copy(out.begin(), out.end(), a.grad_weight);
  }

  void entropy_fusion(const EntropyFusionArgs& a) const override {
    const int64_t C = a.classes, M = a.modalities, N = a.rows;
    const bool dynamic = a.mode == PP_FUSION_DYNAMIC;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    parallel_for(N, kRowBlock, [&](int64_t r0, int64_t r1) {
      std::vector<double> e(static_cast<size_t>(M)), acc(static_cast<size_t>(C));
      for (int64_t i = r0; i < r1; ++i) {
        double max_e = -std::numeric_limits<double>::infinity();
        int64_t count = 0;
        for (int64_t m = 0; m < M; ++m) {
          const float* x = a.logits + (m * N + i) * C;
          float* q = a.probs + (m * N + i) * C;
          if (!a.present[i * M + m]) {
            a.entropy[i * M + m] = nan;
            std::fill(q, q + C, nan);
            continue;
          }
          ++count;
          float max = -std::numeric_limits<float>::infinity();
          for (int64_t k = 0; k < C; ++k) max = std::max(max, x[k]);
          double sum = 0;
          for (int64_t k = 0; k < C; ++k) sum += std::exp(static_cast<double>(x[k]) - max);
          const double lse = max + std::log(sum);
          double ent = 0;
          for (int64_t k = 0; k < C; ++k) {
            const double lp = x[k] - lse;
            const double p = std::exp(lp);
            q[k] = static_cast<float>(p);
            ent -= p * lp;
          }
          e[static_cast<size_t>(m)] = ent;
          a.entropy[i * M + m] = static_cast<float>(ent);
          max_e = std::max(max_e, ent);
        }
        float* out = a.fused + i * C;
        if (count == 0) {
          std::fill(out, out + C, nan);
          for (int64_t m = 0; m < M; ++m) a.weights[i * M + m] = 0.0f;
          continue;
        }
        double z = 0;
        for (int64_t m = 0; m < M; ++m)
          if (a.present[i * M + m]) z += dynamic ? std::exp(max_e - e[static_cast<size_t>(m)]) : 1.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t m = 0; m < M; ++m) {
          if (!a.present[i * M + m]) {
            a.weights[i * M + m] = 0.0f;
            continue;
          }
          const double w = (dynamic ? std::exp(max_e - e[static_cast<size_t>(m)]) : 1.0) / z;
          a.weights[i * M + m] = static_cast<float>(w);
          const float* x = a.logits + (m * N + i) * C;
          for (int64_t k = 0; k < C; ++k) acc[static_cast<size_t>(k)] += w * x[k];
        }
        for (int64_t k = 0; k < C; ++k) out[k] = static_cast<float>(acc[static_cast<size_t>(k)]);
      }
    });
  }
};

}  // namespace

const TrainEngine& cpu_train_engine() {
  static const CpuTrainEngine engine;
  return engine;
}

}  // namespace pp
