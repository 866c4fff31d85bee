// The selection engine (spec/methods.md §2–3): one pool opened for selection, with the fused ops
// the strategy drivers in src/select/ call. Semantics match src/backend/ops-select.ts exactly.
//
// Rows are L2-normalised on the fly: `prepare` computes inverse norms, kernels scale dot products
// (a zero row stays the zero vector). Pairwise reductions are blocked GEMM tiles (packed panels,
// an AVX2/FMA micro-kernel) reduced in place — nothing N×N is stored. The greedy loop keeps δ,
// the owning centre of every row and the centres themselves in the engine, and prunes the δ
// update with the triangle inequality (exactly: see the margin in select.cc).
//
// The same interface is implemented for CUDA by native/binding/select.cc over the C ABI of
// cuda/api.h (state resident on the device).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace pp::sel {

enum Form : int { kMultimodal = 0, kEuclidean = 1, kSimilarity = 2 };
enum ReductionKind : int { kKnnMean = 0, kCountWithin = 1, kMinOtherLabel = 2, kMax = 3, kGain = 4 };
enum Mode : int { kArgmax = 0, kSampleSquared = 1 };

// Rows SAMPLE_BLOCK_ROWS of ops-select.ts: Σ δ² is summed in float64 over blocks of this many rows.
constexpr int64_t kSampleBlockRows = 4096;

struct RowSet {
  const int32_t* idx = nullptr;  // explicit global rows, or null for the range [start, start+count)
  int64_t start = 0;
  int64_t count = 0;
  int64_t at(int64_t i) const { return idx ? idx[i] : start + i; }
};

struct Metric {
  int form = kEuclidean;
  double gamma = 0;  // multimodal only
};

struct Reduction {
  int kind = kKnnMean;
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

class Engine {
 public:
  virtual ~Engine() = default;
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

// The CPU engine over host data (which must outlive it).
std::unique_ptr<Engine> make_cpu_engine(int64_t rows, const std::vector<Modality>& modalities);

// ---- shared rules (also used by the CUDA engine's host code) ----

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
