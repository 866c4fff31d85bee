// addon.{cpu,cuda} stage-1 ops. Same signatures on both tables; outputs are allocated by the
// caller (src/backend/native/loss.ts) and filled on a worker thread:
//   infoNCE(za, zb, rows, dim, temperature, gradA, gradB)                         → Promise<number> (loss)
//   sinkhorn(scores, rows, k, epsilon, iterations, codes)                          → Promise<void>
//   prototypeLoss(z, prototypes, targets, rows, dim, k, temperature, gradZ, gradPrototypes)
//                                                                                 → Promise<number> (loss)
//   matmul(a, b, c, m, n, inner, transA, transB, accumulate)                       → Promise<void>
// `a` of matmul is a Float32Array or a Uint16Array of fp16 bits; everything else is Float32Array.
// The cpu table runs native/core; the cuda table calls the C ABI of cuda/api.h (host pointers).
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "api.h"
#include "common.h"
#include "core/loss.h"
#include "core/matmul.h"

namespace pp::binding {
namespace {

enum class Target { kCpu, kCuda };

// A nonzero pp_cuda_* return becomes a pp::Error, so the Promise rejects with E_BACKEND.
void CudaCheck(int rc, const char* err) {
  if (rc != 0) throw pp::Error("E_BACKEND", err[0] ? err : "CUDA call failed");
}

int64_t ArgPositive(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const int64_t v = ArgInt(info, i, name);
  if (v < 1) Throw(info.Env(), "E_SHAPE", std::string(name) + " must be at least 1 (got " + std::to_string(v) + ")");
  return v;
}

double ArgPositiveReal(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const double v = ArgDouble(info, i, name);
  if (!(v > 0.0) || v == std::numeric_limits<double>::infinity())
    Throw(info.Env(), "E_OPTION", std::string(name) + " must be a finite number > 0");
  return v;
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsBoolean()) Throw(info.Env(), "E_INTERNAL", std::string(name) + ": expected a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// The typed array must hold exactly rows × cols values (the kernels trust these sizes).
void CheckSize(Napi::Env env, const char* name, size_t have, int64_t rows, int64_t cols) {
  if (static_cast<double>(have) != static_cast<double>(rows) * static_cast<double>(cols))
    Throw(env, "E_SHAPE",
          std::string(name) + " has " + std::to_string(have) + " values, expected " + std::to_string(rows) + " × " +
              std::to_string(cols));
}

template <Target T>
Napi::Value InfoNCE(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n_za = 0, n_zb = 0, n_ga = 0, n_gb = 0;
  const float* za = ArgF32(info, 0, "za", &n_za);
  const float* zb = ArgF32(info, 1, "zb", &n_zb);
  const int64_t rows = ArgPositive(info, 2, "rows"), dim = ArgPositive(info, 3, "dim");
  const double temperature = ArgPositiveReal(info, 4, "temperature");
  float* grad_a = ArgF32(info, 5, "gradA", &n_ga);
  float* grad_b = ArgF32(info, 6, "gradB", &n_gb);
  CheckSize(env, "za", n_za, rows, dim);
  CheckSize(env, "zb", n_zb, rows, dim);
  CheckSize(env, "gradA", n_ga, rows, dim);
  CheckSize(env, "gradB", n_gb, rows, dim);
  auto loss = std::make_shared<double>(0.0);
  auto* w = new PromiseWorker(
      env,
      [=] {
        if (T == Target::kCpu) {
          *loss = pp::infonce(za, zb, rows, dim, temperature, grad_a, grad_b);
        } else {
          char err[512] = {0};
          float l = 0.0f;
          CudaCheck(pp_cuda_infonce(za, zb, rows, dim, static_cast<float>(temperature), &l, grad_a, grad_b, err,
                                    sizeof err),
                    err);
          *loss = l;
        }
      },
      [loss](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *loss); });
  w->KeepArgs(info);
  return w->Start();
}

template <Target T>
Napi::Value Sinkhorn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n_scores = 0, n_codes = 0;
  const float* scores = ArgF32(info, 0, "scores", &n_scores);
  const int64_t rows = ArgPositive(info, 1, "rows"), k = ArgPositive(info, 2, "k");
  const double epsilon = ArgPositiveReal(info, 3, "epsilon");
  const int64_t iterations = ArgPositive(info, 4, "iterations");
  float* codes = ArgF32(info, 5, "codes", &n_codes);
  CheckSize(env, "scores", n_scores, rows, k);
  CheckSize(env, "codes", n_codes, rows, k);
  if (iterations > (1 << 30)) Throw(env, "E_OPTION", "iterations is too large");
  auto* w = new PromiseWorker(env, [=] {
    if (T == Target::kCpu) {
      pp::sinkhorn(scores, rows, k, epsilon, static_cast<int>(iterations), codes);
    } else {
      char err[512] = {0};
      CudaCheck(pp_cuda_sinkhorn(scores, rows, k, static_cast<float>(epsilon), static_cast<int>(iterations), codes,
                                 err, sizeof err),
                err);
    }
  });
  w->KeepArgs(info);
  return w->Start();
}

template <Target T>
Napi::Value PrototypeLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n_z = 0, n_c = 0, n_q = 0, n_gz = 0, n_gc = 0;
  const float* z = ArgF32(info, 0, "z", &n_z);
  const float* prototypes = ArgF32(info, 1, "prototypes", &n_c);
  const float* targets = ArgF32(info, 2, "targets", &n_q);
  const int64_t rows = ArgPositive(info, 3, "rows"), dim = ArgPositive(info, 4, "dim"), k = ArgPositive(info, 5, "k");
  const double temperature = ArgPositiveReal(info, 6, "temperature");
  float* grad_z = ArgF32(info, 7, "gradZ", &n_gz);
  float* grad_c = ArgF32(info, 8, "gradPrototypes", &n_gc);
  CheckSize(env, "z", n_z, rows, dim);
  CheckSize(env, "prototypes", n_c, k, dim);
  CheckSize(env, "targets", n_q, rows, k);
  CheckSize(env, "gradZ", n_gz, rows, dim);
  CheckSize(env, "gradPrototypes", n_gc, k, dim);
  auto loss = std::make_shared<double>(0.0);
  auto* w = new PromiseWorker(
      env,
      [=] {
        if (T == Target::kCpu) {
          *loss = pp::prototype_loss(z, prototypes, targets, rows, dim, k, temperature, grad_z, grad_c);
        } else {
          char err[512] = {0};
          float l = 0.0f;
          CudaCheck(pp_cuda_prototype_loss(z, prototypes, targets, rows, dim, k, static_cast<float>(temperature), &l,
                                           grad_z, grad_c, err, sizeof err),
                    err);
          *loss = l;
        }
      },
      [loss](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *loss); });
  w->KeepArgs(info);
  return w->Start();
}

template <Target T>
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MatrixArg a = ArgMatrix(info, 0, "a");
  size_t n_b = 0, n_c = 0;
  const float* b = ArgF32(info, 1, "b", &n_b);
  float* c = ArgF32(info, 2, "c", &n_c);
  const int64_t m = ArgPositive(info, 3, "m"), n = ArgPositive(info, 4, "n"), inner = ArgPositive(info, 5, "inner");
  const bool trans_a = ArgBool(info, 6, "transA"), trans_b = ArgBool(info, 7, "transB");
  const bool accumulate = ArgBool(info, 8, "accumulate");
  CheckSize(env, "a", a.length, m, inner);
  CheckSize(env, "b", n_b, inner, n);
  CheckSize(env, "c", n_c, m, n);
  auto* w = new PromiseWorker(env, [=] {
    if (T == Target::kCpu) {
      pp::matmul(a.data, a.half, b, c, m, n, inner, trans_a, trans_b, accumulate);
    } else {
      char err[512] = {0};
      CudaCheck(pp_cuda_matmul(a.data, a.half ? 1 : 0, b, c, m, n, inner, trans_a ? 1 : 0, trans_b ? 1 : 0,
                               accumulate ? 1 : 0, err, sizeof err),
                err);
    }
  });
  w->KeepArgs(info);
  return w->Start();
}

template <Target T>
void RegisterOn(Napi::Env env, Napi::Object table) {
  table.Set("infoNCE", Napi::Function::New(env, InfoNCE<T>, "infoNCE"));
  table.Set("sinkhorn", Napi::Function::New(env, Sinkhorn<T>, "sinkhorn"));
  table.Set("prototypeLoss", Napi::Function::New(env, PrototypeLoss<T>, "prototypeLoss"));
  table.Set("matmul", Napi::Function::New(env, Matmul<T>, "matmul"));
}

}  // namespace

void RegisterLoss(Napi::Env env, Napi::Object exports) {
  RegisterOn<Target::kCpu>(env, exports.Get("cpu").As<Napi::Object>());
  RegisterOn<Target::kCuda>(env, exports.Get("cuda").As<Napi::Object>());
}

}  // namespace pp::binding
