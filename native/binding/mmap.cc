#include "common.h"

namespace pp::binding {
void RegisterMmap(Napi::Env env, Napi::Object exports) {}
}  // namespace pp::binding
