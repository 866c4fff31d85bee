#include "common.h"

namespace pp::binding {
void RegisterLoss(Napi::Env env, Napi::Object exports) {}
}  // namespace pp::binding
