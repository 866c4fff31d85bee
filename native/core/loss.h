// The stage-1 area (spec/methods.md §1.1–1.2; semantics of src/backend/ops-loss.ts): InfoNCE,
// Sinkhorn codes, the prototype loss and the projection heads' matmul. LossEngine is the
// interface both native backends implement: the CPU engine here (native/core/loss.cc:
// multi-threaded, fp32 with float64 where it is cheap — per-row/column log-sum-exp totals,
// Sinkhorn scalings, the loss itself), the CUDA engine in cuda/engines.cc over cuda/api.h.
// All matrices are row-major fp32 (matmul's `a` may be fp16 bits); outputs are caller-allocated.
#pragma once
#include <cstdint>

namespace pp {

// Symmetric InfoNCE over `rows` pairs (za, zb: rows × dim) at `temperature`. Writes ∂L/∂za and
// ∂L/∂zb (rows × dim each); the engine returns L. On the CPU: (block × block) tiles of the
// logits, memory beyond the inputs and outputs O(rows) plus one tile per thread.
struct InfoNceArgs {
  const float* za = nullptr;
  const float* zb = nullptr;
  int64_t rows = 0, dim = 0;
  double temperature = 0;
  float* grad_a = nullptr;
  float* grad_b = nullptr;
};

// Sinkhorn-Knopp codes (rows × k) from scores (rows × k): exp(P/ε) normalised to sum 1, then
// `iterations` column/row normalisations, times rows. On the CPU in float64 (log domain when the
// logits span too many nats for the multiplicative form).
struct SinkhornArgs {
  const float* scores = nullptr;
  int64_t rows = 0, k = 0;
  double epsilon = 0;
  int iterations = 0;
  float* codes = nullptr;
};

// −(1/rows) Σ_i Σ_k Q_ik log softmax_k(⟨z_i, c_k⟩/τ) with Q = targets (constants). Writes ∂L/∂z
// (rows × dim) and ∂L/∂prototypes (k × dim); the engine returns L.
struct PrototypeLossArgs {
  const float* z = nullptr;
  const float* prototypes = nullptr;
  const float* targets = nullptr;
  int64_t rows = 0, dim = 0, k = 0;
  double temperature = 0;
  float* grad_z = nullptr;
  float* grad_prototypes = nullptr;
};

// c (m × n) = op(a)·op(b) (+ c when accumulate), dense operands: op(a) is m × inner (a stored
// inner × m with trans_a), op(b) inner × n (b stored n × inner with trans_b).
struct MatmulArgs {
  const void* a = nullptr;
  bool a_half = false;
  const float* b = nullptr;
  float* c = nullptr;
  int64_t m = 0, n = 0, inner = 0;
  bool trans_a = false, trans_b = false, accumulate = false;
};

// A dense layer: y (rows × outputs) = x·w + bias (w: inputs × outputs, input-major), then
// max(0, ·) when relu. x may be fp16 bits.
struct LinearForwardArgs {
  const void* x = nullptr;
  bool x_half = false;
  const float* w = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
  int64_t rows = 0, inputs = 0, outputs = 0;
  bool relu = false;
};

// Its backward pass: grad_w = xᵀ·gy, grad_bias = Σ_rows gy (float64 sums) and, when gx is set,
// gx = (gy·wᵀ) ⊙ [x > 0 when relu_input] (relu_input needs fp32 x: it is a ReLU's output).
struct LinearBackwardArgs {
  const void* x = nullptr;
  bool x_half = false;
  const float* w = nullptr;
  const float* gy = nullptr;
  float* grad_w = nullptr;
  float* grad_bias = nullptr;
  float* gx = nullptr;
  int64_t rows = 0, inputs = 0, outputs = 0;
  bool relu_input = false;
};

// One AdamW update in place over n values (torch.optim.AdamW, amsgrad off); the first `decayed`
// values get the decoupled weight decay.
struct AdamWArgs {
  float* params = nullptr;
  const float* grads = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  int64_t n = 0, decayed = 0;
  double lr = 0, weight_decay = 0, beta1 = 0, beta2 = 0, eps = 0;
  int64_t step = 0;
};

// The host halves of the layer ops, shared by the engines: the bias gradient (column sums of
// gy), and the whole AdamW update (multi-threaded).
void column_sums(const float* g, int64_t rows, int64_t cols, float* out);
void adamw_step(const AdamWArgs& args);
// y[r, j] += bias[j], then max(0, ·) when relu; g[i] = 0 where !(x[i] > 0). For engines whose
// product runs elsewhere (the CUDA matmul) and the epilogue on the host.
void add_bias_relu(float* y, const float* bias, int64_t rows, int64_t cols, bool relu);
void mask_by_positive(float* g, const float* x, int64_t n);

class LossEngine {
 public:
  virtual ~LossEngine() = default;
  virtual double infonce(const InfoNceArgs& args) const = 0;
  virtual void sinkhorn(const SinkhornArgs& args) const = 0;
  virtual double prototype_loss(const PrototypeLossArgs& args) const = 0;
  virtual void matmul(const MatmulArgs& args) const = 0;
  virtual void linear_forward(const LinearForwardArgs& args) const = 0;
  virtual void linear_backward(const LinearBackwardArgs& args) const = 0;
  virtual void adamw(const AdamWArgs& args) const = 0;
};

const LossEngine& cpu_loss_engine();

}  // namespace pp
