// The CPU distance core: dense distances, the running top-k merge behind kNN, and the fused greedy
// min-update. Plain C++17; semantics match src/backend/ops-distance.ts and cuda/api.h.
//
// Inputs are row-major fp32 matrices, or fp16 bit patterns when `half` is true (converted to fp32
// tile by tile; accumulation is fp32 either way). Metric codes: 0 = sqeuclidean ‖a−b‖²,
// 1 = euclidean ‖a−b‖, 2 = cosine 1 − ⟨a,b⟩/(‖a‖‖b‖) (a zero row is at distance 1 from everything).
// Distances between two matrices are ranked/computed with ‖a‖² + ‖b‖² − 2⟨a,b⟩ clamped at 0 (cosine
// 1 − ⟨a,b⟩·(1/‖a‖)(1/‖b‖) clamped to [0, 2]); that form cancels for near-identical rows, so every
// reported kNN distance, and every dense distance below the fast form's precision, is recomputed
// exactly in float64 (Σ(a−b)² from direct differences: 0 for a duplicate row).
// Errors (bad metric, negative sizes) are thrown as pp::Error.
#pragma once
#include <cstdint>

namespace pp {

enum MetricCode : int { kSqEuclidean = 0, kEuclidean = 1, kCosine = 2 };

// out[i * rows_b + j] = dist(a_i, b_j).
void distances(const void* a, const void* b, bool half, int64_t rows_a, int64_t rows_b, int64_t dim, int metric,
               float* out);

// Merges the k nearest rows of `ref` into the running top-k of each query row. idx/dist are
// rows_q × k, each row sorted by ascending distance with ties broken by the lower index; unfilled
// slots hold -1 / +inf. Ref row j has global index ref_offset + j; with exclude_self, ref g is
// skipped for query q when g == query_offset + q. The result does not depend on thread timing.
void knn_merge(const void* query, const void* ref, bool half, int64_t rows_q, int64_t rows_r, int64_t dim, int64_t k,
               int metric, int64_t ref_offset, int64_t query_offset, bool exclude_self, int32_t* idx, float* dist);

struct MinUpdateResult {
  int64_t argmax;  // -1 when every row is excluded
  float max;       // -inf when argmax is -1
};

// min_dist[i] = min(min_dist[i], dist(points_i, center)) for every row, then the argmax of
// min_dist over rows with exclude[i] == 0 (exclude may be null), lowest index on ties. Distances
// to the single center are computed directly (Σ(p−c)², no norm expansion).
MinUpdateResult min_update(const void* points, const void* center, bool half, int64_t rows, int64_t dim, int metric,
                           float* min_dist, const uint8_t* exclude);

}  // namespace pp
