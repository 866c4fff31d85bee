#include "common.h"

namespace pp::binding {
void RegisterDistance(Napi::Env env, Napi::Object exports) {}
}  // namespace pp::binding
