#include "common.h"

namespace pp::binding {
void RegisterSelect(Napi::Env env, Napi::Object exports) {}
}  // namespace pp::binding
