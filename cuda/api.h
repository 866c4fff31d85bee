// C ABI of the CUDA kernels, called by the CUDA engines (cuda/engines.cc). Built from cuda/*.cu
// when nvcc is found, otherwise from cuda/stub.cc (every function then reports "built without
// CUDA").
//
// Conventions: pointers are HOST memory unless a name says otherwise (the implementation moves
// data to and from the device); `half` = 1 means inputs are fp16 bit patterns (uint16), else fp32.
// Every function returns PP_OK (0) on success, or a pp_status error code (PP_E_BACKEND for device
// failures) with a NUL-terminated message in `err` (at most `err_len` bytes). Codes are those of
// core/codes.h: `metric` is a pp_metric, `form` a pp_pair_form, `kind` a pp_reduction, `mode` a
// pp_greedy_mode.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "core/codes.h"

#ifdef __cplusplus
extern "C" {
#endif

// 1 when compiled with nvcc, 0 for the stub.
int pp_cuda_built(void);

// Finds the first CUDA device. Fails (nonzero) with a reason when there is no driver or device.
int pp_cuda_probe(char* name, size_t name_len, size_t* total_mem, int* cc_major, int* cc_minor, char* err,
                  size_t err_len);

// out[i*rows_b + j] = dist(a_i, b_j).
int pp_cuda_distances(const void* a, const void* b, int half, int64_t rows_a, int64_t rows_b, int64_t dim, int metric,
                      float* out, char* err, size_t err_len);

// Rows kept in device memory for repeated knn_merge (as the refs) and min_update (as the points)
// calls (kernels.resident): uploaded once by pp_cuda_rows_upload, freed by pp_cuda_rows_free
// (stream-ordered: never waits for the device). Calls using them must have returned before the free.
typedef struct pp_cuda_rows pp_cuda_rows;
int pp_cuda_rows_upload(const void* data, int half, int64_t rows, int64_t dim, pp_cuda_rows** out, char* err, size_t err_len);
void pp_cuda_rows_free(pp_cuda_rows* rows);

// Merges the k nearest ref rows into the running top-k of each query (see Backend.knnMerge):
// idx/dist are rows_q × k, sorted ascending, unfilled = -1 / +inf; updated in place. With
// `held_ref`, `ref` is NULL and the refs are its rows [ref_offset, ref_offset + rows_r).
int pp_cuda_knn_merge(const void* query, const void* ref, const pp_cuda_rows* held_ref, int half, int64_t rows_q,
                      int64_t rows_r, int64_t dim, int64_t k, int metric, int64_t ref_offset, int64_t query_offset,
                      int exclude_self, int32_t* idx, float* dist, char* err, size_t err_len);

// min_dist[i] = min(min_dist[i], dist(points_i, center)); *argmax/*max over rows with
// exclude[i] == 0 (exclude may be NULL), lowest index on ties, -1 when none. With `held_points`,
// `points` is NULL and the points are its rows (all `rows` of them).
int pp_cuda_min_update(const void* points, const pp_cuda_rows* held_points, const void* center, int half, int64_t rows,
                       int64_t dim, int metric, float* min_dist, const uint8_t* exclude, int64_t* argmax, float* max,
                       char* err, size_t err_len);

// ---- stage 1 (losses, matmul): cuda/loss.cu ----
// Shapes and math as src/backend/ops-loss.ts and spec §1. All pointers host memory.

int pp_cuda_infonce(const float* za, const float* zb, int64_t rows, int64_t dim, float temperature, float* loss,
                    float* grad_a, float* grad_b, char* err, size_t err_len);
int pp_cuda_sinkhorn(const float* scores, int64_t rows, int64_t k, float epsilon, int iterations, float* codes,
                     char* err, size_t err_len);
int pp_cuda_prototype_loss(const float* z, const float* prototypes, const float* targets, int64_t rows, int64_t dim,
                           int64_t k, float temperature, float* loss, float* grad_z, float* grad_prototypes, char* err,
                           size_t err_len);
// c (m×n) = op(a)·op(b) (+ c when accumulate); a is fp16 when a_half.
int pp_cuda_matmul(const void* a, int a_half, const float* b, float* c, int64_t m, int64_t n, int64_t inner,
                   int trans_a, int trans_b, int accumulate, char* err, size_t err_len);

// ---- selection: cuda/select.cu ----
// A pool opened for selection (spec §2–3; semantics of src/backend/ops-select.ts and
// native/core/select.h). `data[m]` are HOST pointers to rows × dims[m] values (fp16 bits when
// half[m]) that must stay valid until close: prepare() uploads them chunk by chunk into device
// memory, or — when the pool does not fit in device memory — every pass streams them through a
// device staging buffer. All per-row state (inverse norms, δ, owners, centres) stays on the device;
// greedy_step performs `steps` picks without returning to the host. Row-indexed side arrays
// (ref_mask, labels, cover, base, exclude) are host arrays of `rows` entries; null where unused.
typedef struct pp_cuda_select pp_cuda_select;
int pp_cuda_select_open(int64_t rows, int modalities, const int64_t* dims, const int* half, const void* const* data,
                        pp_cuda_select** out, char* err, size_t err_len);
void pp_cuda_select_close(pp_cuda_select* s);
int pp_cuda_select_prepare(pp_cuda_select* s, int64_t start, int64_t count, int64_t* bad_rows, float* alignment,
                           double* sums, char* err, size_t err_len);
int pp_cuda_select_pair_reduce(pp_cuda_select* s, const int32_t* query_idx, int64_t query_start, int64_t query_count,
                               const int32_t* ref_idx, int64_t ref_start, int64_t ref_count, int form, double gamma,
                               int kind, int64_t k, double radius, const uint8_t* ref_mask, const int32_t* labels,
                               const float* cover, double* out, char* err, size_t err_len);
int pp_cuda_select_distances_from(pp_cuda_select* s, int64_t row, int form, double gamma, float* out, char* err,
                                  size_t err_len);
int pp_cuda_select_gather(pp_cuda_select* s, const int32_t* idx, int64_t n, float* out, char* err, size_t err_len);
int pp_cuda_select_set_centroids(pp_cuda_select* s, const float* centroids, int64_t k, char* err, size_t err_len);
int pp_cuda_select_assign(pp_cuda_select* s, int64_t start, int64_t count, int32_t* labels, float* distances,
                          double* sums, double* counts, int64_t* changed, char* err, size_t err_len);
int pp_cuda_select_greedy_init(pp_cuda_select* s, int form, double gamma, const float* base, double w_diversity,
                               const uint8_t* exclude, int mode, char* err, size_t err_len);
int pp_cuda_select_greedy_add(pp_cuda_select* s, const int32_t* idx, int64_t n, char* err, size_t err_len);
int pp_cuda_select_greedy_step(pp_cuda_select* s, int64_t steps, const double* uniforms, int32_t* picks,
                               float* diversity, float* diversity_max, int64_t* made, char* err, size_t err_len);

// ---- warm start: cuda/warm.cu ----
// A gradient store (spec §5; semantics of native/core/warm.h): per row r_i (classes floats) and
// x̂_i (features floats) resident on the device, k-means++ D² seeding with the running minimum,
// block sums and the seeded draw on the device (one host round trip per sample_step call).
// open() leaves *out NULL (and returns PP_OK) when the store does not fit in device memory.
// upload(): rows [start, start+count) of r (count × classes), x (count × features), ‖g_i‖² and
// ‖x̂_i‖ as computed by core/warm.h ForwardPass, the prediction and the RowBounds of each row
// (pos, top, neg); nonnegative = 0 when some x̂ value is negative.
// sample_step(): `first` ≥ 0 is the first pick (the largest-norm candidate, chosen by the caller
// before any centre), -1 draws every pick from uniforms[t]; *made picks are written.
typedef struct pp_cuda_warm pp_cuda_warm;
int pp_cuda_warm_open(int64_t rows, int64_t classes, int64_t features, pp_cuda_warm** out, char* err, size_t err_len);
void pp_cuda_warm_close(pp_cuda_warm* w);
int pp_cuda_warm_upload(pp_cuda_warm* w, int64_t start, int64_t count, const float* r, const float* x, const double* norm2,
                        const double* xnorm, const int32_t* pred, const double* rpos, const double* rtop,
                        const double* rneg, int nonnegative, char* err, size_t err_len);
int pp_cuda_warm_dots(pp_cuda_warm* w, const int32_t* a, const int32_t* b, int64_t n, double* out, char* err, size_t err_len);
int pp_cuda_warm_sample_init(pp_cuda_warm* w, const uint8_t* exclude, char* err, size_t err_len);
int pp_cuda_warm_sample_step(pp_cuda_warm* w, int64_t steps, const double* uniforms, int32_t first, int32_t* picks,
                             double* distance2, int64_t* made, char* err, size_t err_len);

#ifdef __cplusplus
}
#endif
