// Module entry: build facts and codes (info.cc), the memory mapping (mmap.cc), and one op table
// per native backend — addon.cpu.* and addon.cuda.*, the same functions over each backend's
// engines (core/engines.h).
#include <napi.h>

#include "core/engines.h"

namespace pp::binding {
void RegisterInfo(Napi::Env env, Napi::Object exports);
void RegisterMmap(Napi::Env env, Napi::Object exports);
void RegisterDistance(Napi::Env env, Napi::Object table, const DistanceEngine& engine);
void RegisterLoss(Napi::Env env, Napi::Object table, const LossEngine& engine);
void RegisterSelect(Napi::Env env, Napi::Object table, const sel::SelectEngine& engine);
void RegisterTrain(Napi::Env env, Napi::Object table, const TrainEngine& engine);
void RegisterWarm(Napi::Env env, Napi::Object table, const warm::WarmEngine& engine);
}  // namespace pp::binding

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  pp::binding::RegisterInfo(env, exports);
  pp::binding::RegisterMmap(env, exports);
  for (const pp::Engines* engines : {&pp::cpu_engines(), &pp::cuda_engines()}) {
    Napi::Object table = Napi::Object::New(env);
    pp::binding::RegisterDistance(env, table, engines->distance);
    pp::binding::RegisterLoss(env, table, engines->loss);
    pp::binding::RegisterSelect(env, table, engines->select);
    pp::binding::RegisterTrain(env, table, engines->train);
    pp::binding::RegisterWarm(env, table, engines->warm);
    exports.Set(engines->name, table);
  }
  return exports;
}

NODE_API_MODULE(pairpick, Init)
