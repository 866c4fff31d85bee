// Stand-in for the CUDA kernels in builds without nvcc: every entry point reports why.
#include <cstdio>

#include "api.h"

namespace {
int unavailable(char* err, size_t err_len) {
  if (err && err_len) std::snprintf(err, err_len, "pairpick was built without CUDA (no nvcc found at build time)");
  return PP_E_BACKEND;
}
}  // namespace

extern "C" {
int pp_cuda_built(void) { return 0; }
int pp_cuda_probe(char*, size_t, size_t*, int*, int*, char* err, size_t err_len) { return unavailable(err, err_len); }
int pp_cuda_distances(const void*, const void*, int, int64_t, int64_t, int64_t, int, float*, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_rows_upload(const void*, int, int64_t, int64_t, pp_cuda_rows** out, char* err, size_t err_len) {
  *out = nullptr;
  return unavailable(err, err_len);
}
void pp_cuda_rows_free(pp_cuda_rows*) {}
int pp_cuda_knn_merge(const void*, const void*, const pp_cuda_rows*, int, int64_t, int64_t, int64_t, int64_t, int, int64_t,
                      int64_t, int, int32_t*, float*, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_min_update(const void*, const pp_cuda_rows*, const void*, int, int64_t, int64_t, int, float*, const uint8_t*,
                       int64_t*, float*, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
// ---- stage 1 (losses, matmul) ----
int pp_cuda_infonce(const float*, const float*, int64_t, int64_t, float, float*, float*, float*, char* err,
                    size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_sinkhorn(const float*, int64_t, int64_t, float, int, float*, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_prototype_loss(const float*, const float*, const float*, int64_t, int64_t, int64_t, float, float*, float*,
                           float*, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_matmul(const void*, int, const float*, float*, int64_t, int64_t, int64_t, int, int, int, char* err,
                   size_t err_len) {
  return unavailable(err, err_len);
}

// ---- selection ----
int pp_cuda_select_open(int64_t, int, const int64_t*, const int*, const void* const*, pp_cuda_select** out, char* err,
                        size_t err_len) {
  if (out) *out = nullptr;
  return unavailable(err, err_len);
}
void pp_cuda_select_close(pp_cuda_select*) {}
int pp_cuda_select_prepare(pp_cuda_select*, int64_t, int64_t, int64_t*, float*, double*, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_select_pair_reduce(pp_cuda_select*, const int32_t*, int64_t, int64_t, const int32_t*, int64_t, int64_t, int,
                               double, int, int64_t, double, const uint8_t*, const int32_t*, const float*, double*,
                               char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_select_distances_from(pp_cuda_select*, int64_t, int, double, float*, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_select_gather(pp_cuda_select*, const int32_t*, int64_t, float*, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_select_set_centroids(pp_cuda_select*, const float*, int64_t, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_select_assign(pp_cuda_select*, int64_t, int64_t, int32_t*, float*, double*, double*, int64_t*, char* err,
                          size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_select_greedy_init(pp_cuda_select*, int, double, const float*, double, const uint8_t*, int, char* err,
                               size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_select_greedy_add(pp_cuda_select*, const int32_t*, int64_t, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_select_greedy_step(pp_cuda_select*, int64_t, const double*, int32_t*, float*, float*, int64_t*, char* err,
                               size_t err_len) {
  return unavailable(err, err_len);
}

// ---- warm start ----
int pp_cuda_warm_open(int64_t, int64_t, int64_t, pp_cuda_warm** out, char* err, size_t err_len) {
  if (out) *out = nullptr;
  return unavailable(err, err_len);
}
void pp_cuda_warm_close(pp_cuda_warm*) {}
int pp_cuda_warm_upload(pp_cuda_warm*, int64_t, int64_t, const float*, const float*, const double*, const double*,
                        const int32_t*, const double*, const double*, const double*, int, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_warm_dots(pp_cuda_warm*, const int32_t*, const int32_t*, int64_t, double*, char* err, size_t err_len) {
  return unavailable(err, err_len);
}
int pp_cuda_warm_sample_init(pp_cuda_warm*, const uint8_t*, char* err, size_t err_len) { return unavailable(err, err_len); }
int pp_cuda_warm_sample_step(pp_cuda_warm*, int64_t, const double*, int32_t, int32_t*, double*, int64_t*, char* err,
                             size_t err_len) {
  return unavailable(err, err_len);
}
}
