// Build and hardware facts for `backends()` / `pairpick info`.
#include "api.h"
#include "common.h"
#include "core/parallel.h"
#include "core/simd.h"

#ifndef PAIRPICK_BUILD_FLAVOUR
#define PAIRPICK_BUILD_FLAVOUR "unknown"
#endif

namespace pp::binding {

static Napi::Value CudaProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  char name[256] = {0}, err[512] = {0};
  size_t mem = 0;
  int major = 0, minor = 0;
  int rc = pp_cuda_probe(name, sizeof name, &mem, &major, &minor, err, sizeof err);
  out.Set("built", Napi::Boolean::New(env, pp_cuda_built() != 0));
  out.Set("available", Napi::Boolean::New(env, rc == 0));
  if (rc == 0) {
    out.Set("name", Napi::String::New(env, name));
    out.Set("memory", Napi::Number::New(env, static_cast<double>(mem)));
    out.Set("computeCapability", Napi::String::New(env, std::to_string(major) + "." + std::to_string(minor)));
  } else {
    out.Set("reason", Napi::String::New(env, err));
  }
  return out;
}

void RegisterInfo(Napi::Env env, Napi::Object exports) {
  Napi::Object build = Napi::Object::New(env);
  build.Set("flavour", Napi::String::New(env, PAIRPICK_BUILD_FLAVOUR));
  build.Set("cudaBuilt", Napi::Boolean::New(env, pp_cuda_built() != 0));
  exports.Set("build", build);
  exports.Set("threads", Napi::Number::New(env, worker_threads()));
  exports.Set("simd", Napi::String::New(env, simd_level()));
  // Probing touches the CUDA driver, so it runs only when asked (lazily, from native.ts).
  exports.Set("cudaProbe", Napi::Function::New(env, CudaProbe, "cudaProbe"));
}

}  // namespace pp::binding
