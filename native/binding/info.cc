// Build and hardware facts for `backends()` / `pairpick info`, and the code tables of core/codes.h
// (`addon.codes`, checked against src/backend/native/codes.ts when the addon loads).
#include "api.h"
#include "common.h"
#include "core/codes.h"
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

// { name: value } of every table in core/codes.h.
static Napi::Object Codes(Napi::Env env) {
#define PP_ENTRY(id, name) table.Set(name, Napi::Number::New(env, id));
#define PP_TABLE(key, LIST)                     \
  {                                             \
    Napi::Object table = Napi::Object::New(env); \
    LIST(PP_ENTRY)                              \
    codes.Set(key, table);                      \
  }
  Napi::Object codes = Napi::Object::New(env);
  PP_TABLE("metrics", PP_METRICS)
  PP_TABLE("pairForms", PP_PAIR_FORMS)
  PP_TABLE("reductions", PP_REDUCTIONS)
  PP_TABLE("greedyModes", PP_GREEDY_MODES)
  PP_TABLE("fusionModes", PP_FUSION_MODES)
  PP_TABLE("errors", PP_ERRORS)
#undef PP_TABLE
#undef PP_ENTRY
  return codes;
}

void RegisterInfo(Napi::Env env, Napi::Object exports) {
  Napi::Object build = Napi::Object::New(env);
  build.Set("flavour", Napi::String::New(env, PAIRPICK_BUILD_FLAVOUR));
  build.Set("cudaBuilt", Napi::Boolean::New(env, pp_cuda_built() != 0));
  exports.Set("build", build);
  exports.Set("threads", Napi::Number::New(env, worker_threads()));
  exports.Set("simd", Napi::String::New(env, simd_level()));
  exports.Set("codes", Codes(env));
  // Probing touches the CUDA driver, so it runs only when asked (lazily, from native.ts).
  exports.Set("cudaProbe", Napi::Function::New(env, CudaProbe, "cudaProbe"));
}

}  // namespace pp::binding
