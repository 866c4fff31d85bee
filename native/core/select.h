// The selection area (spec/methods.md §2–3): a pool opened for selection, with the fused ops
// the strategy drivers in src/select/ call. Semantics match src/backend/ops-select.ts exactly.
// SelectEngine opens a Selection; both native backends implement it: the CPU engine here
// (native/core/select.cc), the CUDA engine in cuda/engines.cc over cuda/api.h (state resident on
// the device, cuda/select.cu).
//
// On the CPU, rows are L2-normalised on the fly: `prepare` computes inverse norms, kernels scale
// dot products (a zero row stays the zero vector). Pairwise reductions are blocked GEMM tiles
// (core/matmul.h) reduced in place — nothing N×N is stored. The greedy loop keeps δ, the owning
// centre of every row and the centres themselves in the selection, and prunes the δ update with
// the triangle inequality (exactly: see the margin in select.cc).
//
// Codes (core/codes.h): Metric::form is a pp_pair_form, Reduction::kind a pp_reduction, the
// greedy mode a pp_greedy_mode.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/codes.h"

namespace pp::sel {

// Rows SAMPLE_BLOCK_ROWS of ops-select.ts: Σ δ² is summed in float64 over blocks of this many rows.
constexpr int64_t kSampleBlockRows = 4096;

struct RowSet {
  const int32_t* idx = nullptr;  // explicit global rows, or null for the range [start, start+count)
  int64_t start = 0;
  int64_t count = 0;
  int64_t at(int64_t i) const { return idx ? idx[i] : start + i; }
};

struct Metric {
  int form = PP_FORM_EUCLIDEAN;
  double gamma = 0;  // multimodal only
};

struct Reduction {
  int kind = PP_REDUCE_KNN_MEAN;
  int64_t k = 1;
  double radius = 0;
  const uint8_t* ref_mask = nullptr;  // countWithin, indexed by global row (may be null)
  const int32_t* labels = nullptr;    // minOtherLabel, indexed by global row
  const float* cover = nullptr;       // gain, indexed by global row
};

struct Modality {
  const void* data = nullptr;  // rows × dim, fp32 or fp16 bits
  int64_t dim = 0;
  bool half = false;
};

// One pool opened for selection. One op at a time (the binding serialises them).
class Selection {
 public:
  virtual ~Selection() = default;
  // bad_rows[M]: first non-finite row per modality (-1 none); alignment[count] may be null; sums[Σdim] is overwritten.
  virtual void prepare(int64_t start, int64_t count, int64_t* bad_rows, float* alignment, double* sums) = 0;
  virtual void pair_reduce(const RowSet& queries, const RowSet& refs, const Metric& metric, const Reduction& red,
                           double* out) = 0;
  virtual void distances_from(int64_t row, const Metric& metric, float* out) = 0;
  virtual void gather(const int32_t* idx, int64_t n, float* out) = 0;
  virtual void set_centroids(const float* centroids, int64_t k) = 0;
  virtual int64_t assign(int64_t start, int64_t count, int32_t* labels, float* distances, double* sums,
                         double* counts) = 0;
  // base may be null; exclude is rows long.
  virtual void greedy_init(const Metric& metric, const float* base, double w_diversity, const uint8_t* exclude,
                           int mode) = 0;
  virtual void greedy_add(const int32_t* idx, int64_t n) = 0;
  // Returns the number of picks made (≤ steps).
  virtual int64_t greedy_step(int64_t steps, const double* uniforms, int32_t* picks, float* diversity,
                              float* diversity_max) = 0;
};

class SelectEngine {
 public:
  virtual ~SelectEngine() = default;
  // Opens `rows` rows of every modality (the data must outlive the selection).
  virtual std::unique_ptr<Selection> open(int64_t rows, const std::vector<Modality>& modalities) const = 0;
};

const SelectEngine& cpu_select_engine();

// ---- rules both engines follow (cuda/select.cu calls these on the host) ----

#if defined(__CUDACC__)
#define PP_SEL_HOST_DEVICE __host__ __device__
#else
#define PP_SEL_HOST_DEVICE
#endif
// The pruning test of the greedy δ update, shared by the CPU engine and the CUDA kernels: row i
// (δ_i, owned by centre o) is skipped for the new centre c when d(o, c) ≥ slack·δ_i·(1 + 10⁻⁵) +
// margin, slack = 1 + prune_factor: by the weak triangle inequality d(i, c) ≥ (d(o, c) − δ_i)/f
// ≥ δ_i, so c cannot lower δ_i (the margin covers float32 rounding of the values compared).
PP_SEL_HOST_DEVICE inline bool prune_skips(float owner_to_new, float delta, double slack, double margin) {
  return static_cast<double>(owner_to_new) >= slack * delta * (1 + 1e-5) + margin;
}

// Most centres kept for pruning: beyond this (or kPruneMaxCenterBytes of centre rows) the greedy
// loop runs unpruned.
int64_t prune_center_cap(int64_t rows);
constexpr int64_t kPruneMaxCenterBytes = int64_t(64) << 20;
// f of the weak triangle inequality d(i,k) ≤ d(i,j) + f·d(j,k) (1 for euclidean, 1 + γ(M−1) multimodal).
double prune_factor(const Metric& metric, int modalities);
// Absolute margin covering float32 rounding of the distances the pruning test compares.
double prune_margin(const Metric& metric, const std::vector<int64_t>& dims);

// The sampleSquared rule of ops-select.ts (delta and taken are rows long). -1 when no candidate.
int64_t sample_squared(const float* delta, const uint8_t* taken, int64_t rows, double uniform);

}  // namespace pp::sel
