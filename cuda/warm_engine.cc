// The warm-start engine of the cuda backend (core/warm.h) over the C ABI of cuda/warm.cu: the
// forward pass runs on the host (ForwardPass, the CPU engine's code: identical factors), the
// factors are uploaded and k-means++ seeding runs on the device, `steps` picks per call. A pool
// whose factors do not fit in device memory runs on the CPU engine instead (host memory, same
// picks). Host C++, compiled in every build; without CUDA the calls fail (cuda/stub.cc).
#include <algorithm>
#include <memory>
#include <vector>

#include "call.h"
#include "core/warm.h"

namespace pp::warm {
namespace {

using pp::cuda::Call;

class CudaGradient final : public Gradient {
 public:
  CudaGradient(const GradientSpec& s, ForwardPass forward, pp_cuda_warm* w)
      : rows_(s.rows), C_(s.classes), F_(s.blocks * s.block_dim), forward_(std::move(forward)), w_(w), norm2_(rows_),
        excluded_(rows_) {}
  ~CudaGradient() override { pp_cuda_warm_close(w_); }

  void load(int64_t start, int64_t count, const float* const* features, int32_t* pred, double* norm2,
            float* contributions, float* scales) override {
    std::vector<float> r(static_cast<size_t>(count * C_)), x(static_cast<size_t>(count * F_));
    std::vector<double> xnorm(static_cast<size_t>(count));
    const bool nonnegative = forward_.run(count, features, pred, norm2, contributions, scales, r.data(), x.data(), xnorm.data());
    std::copy(norm2, norm2 + count, norm2_.begin() + start);
    std::vector<double> pos(static_cast<size_t>(count)), top(static_cast<size_t>(count)), neg(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      const RowBounds b = row_bounds(r.data() + i * C_, C_, pred[i]);
      pos[i] = b.pos;
      top[i] = b.top;
      neg[i] = b.neg;
    }
    Call([&](char* err, size_t n) {
      return pp_cuda_warm_upload(w_, start, count, r.data(), x.data(), norm2, xnorm.data(), pred, pos.data(), top.data(),
                                 neg.data(), nonnegative ? 1 : 0, err, n);
    });
  }

  void dots(const int32_t* a, const int32_t* b, int64_t n, double* out) override {
    Call([&](char* err, size_t len) { return pp_cuda_warm_dots(w_, a, b, n, out, err, len); });
  }

  void sample_init(const uint8_t* exclude) override {
    std::copy(exclude, exclude + rows_, excluded_.begin());
    centres_ = 0;
    Call([&](char* err, size_t n) { return pp_cuda_warm_sample_init(w_, exclude, err, n); });
  }

  int64_t sample_step(int64_t steps, const double* uniforms, int32_t* picks, double* distance2) override {
    if (steps <= 0) return 0;
    // The first centre is the candidate of largest ‖g_i‖² (the CPU engine's rule, first on ties),
    // found here from the norms the forward pass returned.
    int64_t first = -1;
    if (centres_ == 0) {
      for (int64_t i = 0; i < rows_; ++i) {
        if (excluded_[i]) continue;
        if (first < 0 || norm2_[i] > norm2_[first]) first = i;
      }
      if (first < 0) return 0;
    }
    int64_t made = 0;
    Call([&](char* err, size_t n) {
      return pp_cuda_warm_sample_step(w_, steps, uniforms, static_cast<int32_t>(first), picks, distance2, &made, err, n);
    });
    centres_ += made;
    return made;
  }

 private:
  const int64_t rows_, C_, F_;
  const ForwardPass forward_;
  pp_cuda_warm* const w_;
  std::vector<double> norm2_;
  std::vector<uint8_t> excluded_;  // the sample_init mask (the first pick's candidates)
  int64_t centres_ = 0;
};

class CudaWarmEngine final : public WarmEngine {
 public:
  std::unique_ptr<Gradient> open(const GradientSpec& spec) const override {
    char name[256] = {0};
    size_t memory = 0;
    int major = 0, minor = 0;
    Call([&](char* err, size_t n) { return pp_cuda_probe(name, sizeof name, &memory, &major, &minor, err, n); });
    ForwardPass forward(spec);  // checks the spec before any device memory is taken
    pp_cuda_warm* w = nullptr;
    Call([&](char* err, size_t n) {
      return pp_cuda_warm_open(spec.rows, spec.classes, spec.blocks * spec.block_dim, &w, err, n);
    });
    if (!w) return cpu_warm_engine().open(spec);  // the factors do not fit in device memory
    try {
      return std::make_unique<CudaGradient>(spec, std::move(forward), w);
    } catch (...) {
      pp_cuda_warm_close(w);
      throw;
    }
  }
};

}  // namespace

const WarmEngine& cuda_warm_engine() {
  static const CudaWarmEngine engine;
  return engine;
}

}  // namespace pp::warm
