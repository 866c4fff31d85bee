// The distance area: dense distances, the running top-k merge behind kNN, and the fused greedy
// min-update (semantics of src/backend/ops-distance.ts). DistanceEngine is the interface both
// native backends implement: the CPU engine here (native/core/distance.cc), the CUDA engine in
// cuda/engines.cc over cuda/api.h.
//
// Inputs are row-major fp32 matrices, or fp16 bit patterns when `half` is true (converted to fp32
// tile by tile; accumulation is fp32 either way). `metric` is a pp_metric (core/codes.h):
// sqeuclidean ‖a−b‖², euclidean ‖a−b‖, cosine 1 − ⟨a,b⟩/(‖a‖‖b‖) (a zero row is at distance 1
// from everything). On the CPU, distances between two matrices are ranked/computed with
// ‖a‖² + ‖b‖² − 2⟨a,b⟩ clamped at 0 (cosine 1 − ⟨a,b⟩·(1/‖a‖)(1/‖b‖) clamped to [0, 2]); that
// form cancels for near-identical rows, so every reported kNN distance, and every dense distance
// below the fast form's precision, is recomputed exactly in float64 (Σ(a−b)² from direct
// differences: 0 for a duplicate row).
// Errors (bad metric, negative sizes, a failing device) are thrown as pp::Error.
#pragma once
#include <cstdint>
#include <memory>

#include "core/codes.h"

namespace pp {

// out[i * rows_b + j] = dist(a_i, b_j).
struct DistancesArgs {
  const void* a = nullptr;
  const void* b = nullptr;
  bool half = false;
  int64_t rows_a = 0, rows_b = 0, dim = 0;
  int metric = PP_METRIC_SQEUCLIDEAN;
  float* out = nullptr;
};

// Merges the k nearest rows of `ref` into the running top-k of each query row. idx/dist are
// rows_q × k, each row sorted by ascending distance with ties broken by the lower index; unfilled
// slots hold -1 / +inf. Ref row j has global index ref_offset + j; with exclude_self, ref g is
// skipped for query q when g == query_offset + q. The result does not depend on thread timing.
// Rows an engine keeps for repeated knn_merge (as the refs) and min_update (as the points) calls
// (kernels.resident). The CPU engine reads host arrays in place and holds nothing; the CUDA engine
// keeps them in device memory. Freed when the last reference goes (calls in flight hold one).
class HeldRows {
 public:
  virtual ~HeldRows() = default;
};

struct KnnMergeArgs {
  const void* query = nullptr;
  const void* ref = nullptr;
  const HeldRows* held_ref = nullptr;  // instead of ref: its rows [ref_offset, ref_offset + rows_r)
  bool half = false;
  int64_t rows_q = 0, rows_r = 0, dim = 0, k = 0;
  int metric = PP_METRIC_SQEUCLIDEAN;
  int64_t ref_offset = 0, query_offset = 0;
  bool exclude_self = false;
  int32_t* idx = nullptr;
  float* dist = nullptr;
};

// min_dist[i] = min(min_dist[i], dist(points_i, center)) for every row, then the argmax of
// min_dist over rows with exclude[i] == 0 (exclude may be null), lowest index on ties. Distances
// to the single center are computed directly (Σ(p−c)², no norm expansion).
struct MinUpdateArgs {
  const void* points = nullptr;
  const HeldRows* held_points = nullptr;  // instead of points: all of its rows
  const void* center = nullptr;
  bool half = false;
  int64_t rows = 0, dim = 0;
  int metric = PP_METRIC_SQEUCLIDEAN;
  float* min_dist = nullptr;
  const uint8_t* exclude = nullptr;
};

struct MinUpdateResult {
  int64_t argmax;  // -1 when every row is excluded
  float max;       // -inf when argmax is -1
};

// The facility-location step over a dense host table (rows of `columns` floats): when add ≥ 0,
// cover[j] = max(cover[j], table[add·columns + j]); then gains[t] = Σ_j max(0, table[rows[t]·columns
// + j] − cover[j]), differences and sums in float64 (the order of the js backend's loop per
// 8-lane group, so results agree to float64 rounding).
struct CoverGainsArgs {
  const float* table = nullptr;
  int64_t columns = 0;
  float* cover = nullptr;
  const int32_t* rows = nullptr;
  int64_t count = 0;
  int64_t add = -1;
  double* gains = nullptr;
};

// The CPU kernel (multi-threaded over rows, AVX-512 / AVX2 by dispatch).
void cover_gains(const CoverGainsArgs& args);

class DistanceEngine {
 public:
  virtual ~DistanceEngine() = default;
  virtual void distances(const DistancesArgs& args) const = 0;
  virtual void knn_merge(const KnnMergeArgs& args) const = 0;
  virtual MinUpdateResult min_update(const MinUpdateArgs& args) const = 0;
  // Keeps rows × dim values (fp16 bits when half) for later calls; null when the engine reads
  // host arrays in place (the caller then keeps the array).
  virtual std::shared_ptr<HeldRows> hold_rows(const void* data, bool half, int64_t rows, int64_t dim) const {
    (void)data, (void)half, (void)rows, (void)dim;
    return nullptr;
  }
  // The table lives in host memory (it is built by the caller from GEMM blocks), so every engine
  // runs the CPU kernel unless it overrides this.
  virtual void cover_gains(const CoverGainsArgs& args) const { pp::cover_gains(args); }
};

const DistanceEngine& cpu_distance_engine();

}  // namespace pp
