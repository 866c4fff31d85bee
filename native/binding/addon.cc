// Module entry: each binding file registers its functions on the exports object.
#include <napi.h>

namespace pp::binding {
void RegisterInfo(Napi::Env env, Napi::Object exports);
void RegisterDistance(Napi::Env env, Napi::Object exports);
void RegisterMmap(Napi::Env env, Napi::Object exports);
void RegisterLoss(Napi::Env env, Napi::Object exports);
void RegisterSelect(Napi::Env env, Napi::Object exports);
}  // namespace pp::binding

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Ops exist twice, as exports.cpu.* and exports.cuda.*, with identical signatures.
  exports.Set("cpu", Napi::Object::New(env));
  exports.Set("cuda", Napi::Object::New(env));
  pp::binding::RegisterInfo(env, exports);
  pp::binding::RegisterDistance(env, exports);
  pp::binding::RegisterMmap(env, exports);
  pp::binding::RegisterLoss(env, exports);
  pp::binding::RegisterSelect(env, exports);
  return exports;
}

NODE_API_MODULE(pairpick, Init)
