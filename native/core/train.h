// The downstream-classifier area (spec/methods.md §4, §6; semantics of src/backend/ops-train.ts):
// fused softmax + cross-entropy with its gradient, MLA's orthogonal head-gradient projection, and
// the per-sample entropy-weighted fusion. TrainEngine is the interface both native backends
// implement: the CPU engine in native/core/train.cc (row-blocked over the worker pool, float64
// per-row sums), the CUDA engine in cuda/engines.cc. All matrices row-major fp32, outputs
// caller-allocated.
#pragma once
#include <cstdint>

namespace pp {

// loss = scale · Σ_{i: label_i ≥ 0} (lse(logits_i) − logits_i[label_i]);
// grad_i = scale · (softmax(logits_i) − e_{label_i}) (0 for rows with label_i < 0).
struct SoftmaxCrossEntropyArgs {
  const float* logits = nullptr;
  const int32_t* labels = nullptr;
  int64_t rows = 0, classes = 0;
  double scale = 0;
  float* grad = nullptr;
};

struct SoftmaxCrossEntropyResult {
  double loss = 0;
  int64_t correct = 0;  // rows whose argmax (lowest index on ties) is their label
};

// In place: k = P·h̄ᵀ, P ← P − k kᵀ/(α + h̄ k), P ← P/‖P‖_F, grad_weight ← grad_weight · P.
struct HeadProjectionArgs {
  float* projection = nullptr;          // hidden × hidden (symmetric)
  const float* mean_feature = nullptr;  // hidden
  float* grad_weight = nullptr;         // classes × hidden
  int64_t hidden = 0, classes = 0;
  double alpha = 0;
};

// Fusion of per-modality logits (modalities × rows × classes) over present[i·M + m] = 1.
struct EntropyFusionArgs {
  const float* logits = nullptr;
  const uint8_t* present = nullptr;
  int64_t rows = 0, classes = 0, modalities = 0;
  int mode = 0;  // pp_fusion_mode
  float* fused = nullptr;    // rows × classes
  float* weights = nullptr;  // rows × modalities
  float* entropy = nullptr;  // rows × modalities
  float* probs = nullptr;    // modalities × rows × classes
};

class TrainEngine {
 public:
  virtual ~TrainEngine() = default;
  virtual SoftmaxCrossEntropyResult softmax_cross_entropy(const SoftmaxCrossEntropyArgs& args) const = 0;
  virtual void head_projection(const HeadProjectionArgs& args) const = 0;
  virtual void entropy_fusion(const EntropyFusionArgs& args) const = 0;
};

const TrainEngine& cpu_train_engine();

}  // namespace pp
