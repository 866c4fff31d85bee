// addon.{cpu,cuda}.distances / knnMerge / minUpdate. Same signatures on both tables:
//   distances(a, b, rowsA, rowsB, dim, metricCode)                      → Promise<Float32Array>
//   knnMerge(q, r, rowsQ, rowsR, dim, k, metricCode, refOffset, queryOffset, excludeSelf,
//            idx: Int32Array, dist: Float32Array)                       → Promise<void> (state updated)
//   minUpdate(points, center, rows, dim, metricCode, minDist, exclude | null)
//                                                                       → Promise<{ argmax, max }>
// Matrices are Float32Array or Uint16Array (fp16 bits), both operands of one call the same type.
// The cpu table runs native/core; the cuda table calls the C ABI of cuda/api.h.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "api.h"
#include "common.h"
#include "core/distance.h"

namespace pp::binding {
namespace {

enum class Target { kCpu, kCuda };

// Turns a nonzero return of a pp_cuda_* call into a pp::Error (the Promise rejects with E_BACKEND).
void CudaCheck(int rc, const char* err) {
  if (rc != 0) throw pp::Error("E_BACKEND", err[0] ? err : "CUDA call failed");
}

void CheckSize(Napi::Env env, const char* name, size_t have, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) Throw(env, "E_SHAPE", std::string(name) + ": negative size");
  if (static_cast<double>(have) < static_cast<double>(rows) * static_cast<double>(cols))
    Throw(env, "E_SHAPE",
          std::string(name) + ": has " + std::to_string(have) + " values, needs " + std::to_string(rows) + " × " +
              std::to_string(cols));
}

void CheckSameType(Napi::Env env, const MatrixArg& a, const MatrixArg& b, const char* an, const char* bn) {
  if (a.half != b.half)
    Throw(env, "E_SHAPE", std::string(an) + " and " + bn + " must have the same dtype (both fp32 or both fp16)");
}

void CheckMetric(Napi::Env env, int metric) {
  if (metric < 0 || metric > 2) Throw(env, "E_OPTION", "unknown metric code " + std::to_string(metric));
}

template <Target T>
Napi::Value Distances(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MatrixArg a = ArgMatrix(info, 0, "a"), b = ArgMatrix(info, 1, "b");
  const int64_t rows_a = ArgInt(info, 2, "rowsA"), rows_b = ArgInt(info, 3, "rowsB"), dim = ArgInt(info, 4, "dim");
  const int metric = static_cast<int>(ArgInt(info, 5, "metric"));
  CheckSameType(env, a, b, "a", "b");
  CheckMetric(env, metric);
  if (dim < 1) Throw(env, "E_SHAPE", "dim must be at least 1");
  CheckSize(env, "a", a.length, rows_a, dim);
  CheckSize(env, "b", b.length, rows_b, dim);
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(rows_a * rows_b));
  float* out_data = out.Data();
  // The result array is allocated here (JS heap) and filled on the worker thread.
  auto out_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(out.As<Napi::Object>()));
  auto* w = new PromiseWorker(
      env,
      [=] {
        if (T == Target::kCpu) {
          pp::distances(a.data, b.data, a.half, rows_a, rows_b, dim, metric, out_data);
        } else {
          char err[512] = {0};
          CudaCheck(pp_cuda_distances(a.data, b.data, a.half ? 1 : 0, rows_a, rows_b, dim, metric, out_data, err,
                                      sizeof err),
                    err);
        }
      },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
  w->KeepArgs(info);
  return w->Start();
}

template <Target T>
Napi::Value KnnMerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MatrixArg q = ArgMatrix(info, 0, "query"), r = ArgMatrix(info, 1, "ref");
  const int64_t rows_q = ArgInt(info, 2, "rowsQ"), rows_r = ArgInt(info, 3, "rowsR"), dim = ArgInt(info, 4, "dim");
  const int64_t k = ArgInt(info, 5, "k");
  const int metric = static_cast<int>(ArgInt(info, 6, "metric"));
  const int64_t ref_offset = ArgInt(info, 7, "refOffset"), query_offset = ArgInt(info, 8, "queryOffset");
  const bool exclude_self = info.Length() > 9 && info[9].ToBoolean().Value();
  size_t idx_len = 0, dist_len = 0;
  int32_t* idx = ArgI32(info, 10, "idx", &idx_len);
  float* dist = ArgF32(info, 11, "dist", &dist_len);
  CheckSameType(env, q, r, "query", "ref");
  CheckMetric(env, metric);
  if (dim < 1) Throw(env, "E_SHAPE", "dim must be at least 1");
  if (k < 1) Throw(env, "E_OPTION", "k must be at least 1");
  if (ref_offset < 0 || ref_offset + rows_r > INT32_MAX) Throw(env, "E_SHAPE", "ref indices must fit in int32");
  CheckSize(env, "query", q.length, rows_q, dim);
  CheckSize(env, "ref", r.length, rows_r, dim);
  CheckSize(env, "idx", idx_len, rows_q, k);
  CheckSize(env, "dist", dist_len, rows_q, k);
  auto* w = new PromiseWorker(env, [=] {
    if (T == Target::kCpu) {
      pp::knn_merge(q.data, r.data, q.half, rows_q, rows_r, dim, k, metric, ref_offset, query_offset, exclude_self,
                    idx, dist);
    } else {
      char err[512] = {0};
      CudaCheck(pp_cuda_knn_merge(q.data, r.data, q.half ? 1 : 0, rows_q, rows_r, dim, k, metric, ref_offset,
                                  query_offset, exclude_self ? 1 : 0, idx, dist, err, sizeof err),
                err);
    }
  });
  w->KeepArgs(info);
  return w->Start();
}

template <Target T>
Napi::Value MinUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MatrixArg points = ArgMatrix(info, 0, "points"), center = ArgMatrix(info, 1, "center");
  const int64_t rows = ArgInt(info, 2, "rows"), dim = ArgInt(info, 3, "dim");
  const int metric = static_cast<int>(ArgInt(info, 4, "metric"));
  size_t min_len = 0, excl_len = 0;
  float* min_dist = ArgF32(info, 5, "minDist", &min_len);
  const uint8_t* exclude = HasArg(info, 6) ? ArgU8(info, 6, "exclude", &excl_len) : nullptr;
  CheckSameType(env, points, center, "points", "center");
  CheckMetric(env, metric);
  if (dim < 1) Throw(env, "E_SHAPE", "dim must be at least 1");
  CheckSize(env, "points", points.length, rows, dim);
  CheckSize(env, "center", center.length, 1, dim);
  CheckSize(env, "minDist", min_len, rows, 1);
  if (exclude) CheckSize(env, "exclude", excl_len, rows, 1);
  auto result = std::make_shared<pp::MinUpdateResult>();
  auto* w = new PromiseWorker(
      env,
      [=] {
        if (T == Target::kCpu) {
          *result = pp::min_update(points.data, center.data, points.half, rows, dim, metric, min_dist, exclude);
        } else {
          char err[512] = {0};
          int64_t argmax = -1;
          float max = 0;
          CudaCheck(pp_cuda_min_update(points.data, center.data, points.half ? 1 : 0, rows, dim, metric, min_dist,
                                       exclude, &argmax, &max, err, sizeof err),
                    err);
          *result = {argmax, max};
        }
      },
      [result](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("argmax", Napi::Number::New(e, static_cast<double>(result->argmax)));
        o.Set("max", Napi::Number::New(e, result->argmax < 0 ? -INFINITY : result->max));
        return o;
      });
  w->KeepArgs(info);
  return w->Start();
}

template <Target T>
void RegisterOn(Napi::Env env, Napi::Object table) {
  table.Set("distances", Napi::Function::New(env, Distances<T>, "distances"));
  table.Set("knnMerge", Napi::Function::New(env, KnnMerge<T>, "knnMerge"));
  table.Set("minUpdate", Napi::Function::New(env, MinUpdate<T>, "minUpdate"));
}

}  // namespace

void RegisterDistance(Napi::Env env, Napi::Object exports) {
  RegisterOn<Target::kCpu>(env, exports.Get("cpu").As<Napi::Object>());
  RegisterOn<Target::kCuda>(env, exports.Get("cuda").As<Napi::Object>());
}

}  // namespace pp::binding
