// The CUDA engines: each area's engine interface (core/engines.h) over the C ABI of api.h. Host
// C++, compiled in every build: with CUDA it calls the kernels of cuda/*.cu, without it the stub
// (cuda/stub.cc), whose every call fails with E_BACKEND "built without CUDA".
#include <memory>
#include <vector>

#include "api.h"
#include "call.h"
#include "core/engines.h"
#include "core/error.h"

namespace pp {
namespace {

using cuda::Call;

// Rows in device memory (pp_cuda_rows), freed without waiting for the device.
class CudaHeldRows final : public HeldRows {
 public:
  explicit CudaHeldRows(pp_cuda_rows* rows) : rows_(rows) {}
  ~CudaHeldRows() override { pp_cuda_rows_free(rows_); }
  const pp_cuda_rows* get() const { return rows_; }

 private:
  pp_cuda_rows* rows_;
};
const pp_cuda_rows* device_rows(const HeldRows* held) {
  if (!held) return nullptr;
  const auto* rows = dynamic_cast<const CudaHeldRows*>(held);
  if (!rows) throw Error(PP_E_BACKEND, "rows held by another backend were passed to cuda");
  return rows->get();
}

class CudaDistanceEngine final : public DistanceEngine {
 public:
  std::shared_ptr<HeldRows> hold_rows(const void* data, bool half, int64_t rows, int64_t dim) const override {
    pp_cuda_rows* held = nullptr;
    Call([&](char* err, size_t n) { return pp_cuda_rows_upload(data, half, rows, dim, &held, err, n); });
    return std::make_shared<CudaHeldRows>(held);
  }
  void distances(const DistancesArgs& a) const override {
    Call([&](char* err, size_t n) {
      return pp_cuda_distances(a.a, a.b, a.half, a.rows_a, a.rows_b, a.dim, a.metric, a.out, err, n);
    });
  }
  void knn_merge(const KnnMergeArgs& a) const override {
    Call([&](char* err, size_t n) {
      return pp_cuda_knn_merge(a.query, a.ref, device_rows(a.held_ref), a.half, a.rows_q, a.rows_r, a.dim, a.k, a.metric, a.ref_offset,
                               a.query_offset, a.exclude_self, a.idx, a.dist, err, n);
    });
  }
  MinUpdateResult min_update(const MinUpdateArgs& a) const override {
    MinUpdateResult r{-1, 0.0f};
    Call([&](char* err, size_t n) {
      return pp_cuda_min_update(a.points, device_rows(a.held_points), a.center, a.half, a.rows, a.dim, a.metric, a.min_dist, a.exclude, &r.argmax,
                                &r.max, err, n);
    });
    return r;
  }
};

// The kernels take fp32 temperatures/epsilon and return an fp32 loss.
class CudaLossEngine final : public LossEngine {
 public:
  double infonce(const InfoNceArgs& a) const override {
    float loss = 0.0f;
    Call([&](char* err, size_t n) {
      return pp_cuda_infonce(a.za, a.zb, a.rows, a.dim, static_cast<float>(a.temperature), &loss, a.grad_a, a.grad_b,
                             err, n);
    });
    return loss;
  }
  void sinkhorn(const SinkhornArgs& a) const override {
    Call([&](char* err, size_t n) {
      return pp_cuda_sinkhorn(a.scores, a.rows, a.k, static_cast<float>(a.epsilon), a.iterations, a.codes, err, n);
    });
  }
  double prototype_loss(const PrototypeLossArgs& a) const override {
    float loss = 0.0f;
    Call([&](char* err, size_t n) {
      return pp_cuda_prototype_loss(a.z, a.prototypes, a.targets, a.rows, a.dim, a.k, static_cast<float>(a.temperature),
                                    &loss, a.grad_z, a.grad_prototypes, err, n);
    });
    return loss;
  }
  void matmul(const MatmulArgs& a) const override {
    Call([&](char* err, size_t n) {
      return pp_cuda_matmul(a.a, a.a_half, a.b, a.c, a.m, a.n, a.inner, a.trans_a, a.trans_b, a.accumulate, err, n);
    });
  }
  // The layer ops: their products on the device through the CUDA matmul, the cheap epilogues
  // (bias, ReLU, mask, bias gradient) and AdamW on the host, where the operands live.
  void linear_forward(const LinearForwardArgs& a) const override {
    matmul({a.x, a.x_half, a.w, a.y, a.rows, a.outputs, a.inputs, false, false, false});
    add_bias_relu(a.y, a.bias, a.rows, a.outputs, a.relu);
  }
  void linear_backward(const LinearBackwardArgs& a) const override {
    matmul({a.x, a.x_half, a.gy, a.grad_w, a.inputs, a.outputs, a.rows, true, false, false});
    column_sums(a.gy, a.rows, a.outputs, a.grad_bias);
    if (!a.gx) return;
    matmul({a.gy, false, a.w, a.gx, a.rows, a.inputs, a.outputs, false, true, false});
    if (a.relu_input) mask_by_positive(a.gx, static_cast<const float*>(a.x), a.rows * a.inputs);
  }
  void adamw(const AdamWArgs& a) const override { adamw_step(a); }
};

// A pool opened on the device: the selection state lives in cuda/select.cu's pp_cuda_select.
class CudaSelection final : public sel::Selection {
 public:
  explicit CudaSelection(pp_cuda_select* s) : s_(s) {}
  ~CudaSelection() override { pp_cuda_select_close(s_); }

  void prepare(int64_t start, int64_t count, int64_t* bad_rows, float* alignment, double* sums) override {
    Call([&](char* err, size_t n) { return pp_cuda_select_prepare(s_, start, count, bad_rows, alignment, sums, err, n); });
  }
  void pair_reduce(const sel::RowSet& q, const sel::RowSet& r, const sel::Metric& m, const sel::Reduction& red,
                   double* out) override {
    Call([&](char* err, size_t n) {
      return pp_cuda_select_pair_reduce(s_, q.idx, q.start, q.count, r.idx, r.start, r.count, m.form, m.gamma, red.kind,
                                        red.k, red.radius, red.ref_mask, red.labels, red.cover, out, err, n);
    });
  }
  void distances_from(int64_t row, const sel::Metric& m, float* out) override {
    Call([&](char* err, size_t n) { return pp_cuda_select_distances_from(s_, row, m.form, m.gamma, out, err, n); });
  }
  void gather(const int32_t* idx, int64_t count, float* out) override {
    Call([&](char* err, size_t n) { return pp_cuda_select_gather(s_, idx, count, out, err, n); });
  }
  void set_centroids(const float* centroids, int64_t k) override {
    Call([&](char* err, size_t n) { return pp_cuda_select_set_centroids(s_, centroids, k, err, n); });
  }
  int64_t assign(int64_t start, int64_t count, int32_t* labels, float* distances, double* sums,
                 double* counts) override {
    int64_t changed = 0;
    Call([&](char* err, size_t n) {
      return pp_cuda_select_assign(s_, start, count, labels, distances, sums, counts, &changed, err, n);
    });
    return changed;
  }
  void greedy_init(const sel::Metric& m, const float* base, double w_diversity, const uint8_t* exclude,
                   int mode) override {
    Call([&](char* err, size_t n) {
      return pp_cuda_select_greedy_init(s_, m.form, m.gamma, base, w_diversity, exclude, mode, err, n);
    });
  }
  void greedy_add(const int32_t* idx, int64_t count) override {
    Call([&](char* err, size_t n) { return pp_cuda_select_greedy_add(s_, idx, count, err, n); });
  }
  int64_t greedy_step(int64_t steps, const double* uniforms, int32_t* picks, float* diversity,
                      float* diversity_max) override {
    int64_t made = 0;
    Call([&](char* err, size_t n) {
      return pp_cuda_select_greedy_step(s_, steps, uniforms, picks, diversity, diversity_max, &made, err, n);
    });
    return made;
  }

 private:
  pp_cuda_select* s_;
};

class CudaSelectEngine final : public sel::SelectEngine {
 public:
  std::unique_ptr<sel::Selection> open(int64_t rows, const std::vector<sel::Modality>& modalities) const override {
    std::vector<int64_t> dims;
    std::vector<int> half;
    std::vector<const void*> data;
    for (const auto& m : modalities) {
      dims.push_back(m.dim);
      half.push_back(m.half ? 1 : 0);
      data.push_back(m.data);
    }
    pp_cuda_select* s = nullptr;
    Call([&](char* err, size_t n) {
      return pp_cuda_select_open(rows, static_cast<int>(modalities.size()), dims.data(), half.data(), data.data(), &s,
                                 err, n);
    });
    return std::make_unique<CudaSelection>(s);
  }
};

}  // namespace

const Engines& cuda_engines() {
  static const CudaDistanceEngine distance;
  static const CudaLossEngine loss;
  static const CudaSelectEngine select;
  // The downstream-classifier ops run on the host for the cuda backend (an explicit fallback):
  // their inputs are a mini-batch of logits (batch × classes) and one h × h matrix, too small to
  // repay a device round trip; the heavy products of the classifiers go through the CUDA matmul.
  static const Engines engines{"cuda", distance, loss, select, cpu_train_engine(), warm::cuda_warm_engine()};
  return engines;
}

}  // namespace pp
