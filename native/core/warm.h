// The warm-start area (spec/methods.md §5.2 BADGE, §5.3 BMMAL): a pool's gradient embeddings
// kept factorised — per row the residual r_i (classes floats) and the scaled penultimate feature
// x̂_i (blocks · block_dim floats) — and k-means++ seeding over them with a running minimum D²,
// one fused pass per pick. Semantics match src/backend/ops-warm.ts and its plain-TS twin
// src/backend/js/warm.ts exactly: float32 storage, float64 dot products accumulated in 8 lanes
// (element j in lane j mod 8, lanes summed as ((0+1)+(2+3))+((4+5)+(6+7))), the same pruning
// test and the same draw — so js and cpu pick identically given the same stored factors.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace pp::warm {

// GRADIENT_SAMPLE_BLOCK_ROWS of ops-warm.ts.
constexpr int64_t kSampleBlockRows = 4096;
// MAX_BALANCE_BLOCKS of ops-warm.ts.
constexpr int kMaxBalanceBlocks = 4;
// PRUNE_RELATIVE_MARGIN of js/warm.ts.
constexpr double kPruneRelativeMargin = 1e-10;

struct GradientSpec {
  int64_t rows = 0;
  int64_t classes = 0;
  int64_t blocks = 0;
  int64_t block_dim = 0;
  const float* weight = nullptr;  // classes × (blocks · block_dim); copied by open()
  const float* bias = nullptr;    // classes; copied by open()
  bool balance = false;
};

// One gradient store. One op at a time (the binding serialises them).
class Gradient {
 public:
  virtual ~Gradient() = default;
  // features[k]: count × block_dim. Outputs are count long (contributions/scales count × blocks,
  // null unless balance).
  virtual void load(int64_t start, int64_t count, const float* const* features, int32_t* pred, double* norm2,
                    float* contributions, float* scales) = 0;
  virtual void dots(const int32_t* a, const int32_t* b, int64_t n, double* out) = 0;
  virtual void sample_init(const uint8_t* exclude) = 0;
  // Returns the picks made (≤ steps).
  virtual int64_t sample_step(int64_t steps, const double* uniforms, int32_t* picks, double* distance2) = 0;
};

class WarmEngine {
 public:
  virtual ~WarmEngine() = default;
  virtual std::unique_ptr<Gradient> open(const GradientSpec& spec) const = 0;
};

const WarmEngine& cpu_warm_engine();
// cuda/warm_engine.cc: k-means++ seeding on the device (the CPU engine when the pool does not fit).
const WarmEngine& cuda_warm_engine();

// Per-row scalars of r_i for the pruning bounds on ⟨r_i, r_c⟩ that read no r (warm.cc update()):
// r_i = p_i − e_ŷ has one entry ≤ 0, at the prediction ŷ_i; the others are p ≥ 0.
struct RowBounds {
  double pos = 0;  // Σ_{j≠ŷ_i} r_ij
  double top = 0;  // max_{j≠ŷ_i} r_ij (0 with one class)
  double neg = 0;  // r_i[ŷ_i]
};
RowBounds row_bounds(const float* r, int64_t classes, int32_t pred);

// The forward pass of a chunk of rows (p_i, r_i, the Shapley scales and x̂_i), shared by the
// engines: the CPU engine writes the factors into its own store, the CUDA engine into a staging
// buffer it uploads. Bit-identical wherever it runs (same GEMM, same float64 loops).
class ForwardPass {
 public:
  // Throws E_OPTION when balance is asked for more than kMaxBalanceBlocks blocks.
  explicit ForwardPass(const GradientSpec& spec);
  // features[k]: count × block_dim. Writes pred/norm2 (count), contributions/scales (count ×
  // blocks, balance only), r (count × classes), x (count × blocks·block_dim) and xnorm = ‖x̂_i‖
  // (count). Returns false when some x̂ value is negative (the pruning bound then uses |⟨r_i,r_c⟩|).
  bool run(int64_t count, const float* const* features, int32_t* pred, double* norm2, float* contributions,
           float* scales, float* r, float* x, double* xnorm) const;

 private:
  int64_t C_, K_, bd_, F_;
  bool balance_;
  std::vector<float> weight_, bias_;
};

// ⟨a, b⟩ of two float vectors accumulated in float64 in the 8-lane order above.
double dot_lanes(const float* a, const float* b, int64_t n);

}  // namespace pp::warm
