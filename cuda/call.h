// The host side of the C ABI (api.h): a pp_cuda_* call whose failure becomes a pp::Error with
// its code. Shared by the CUDA engines (cuda/engines.cc, cuda/warm_engine.cc).
#pragma once
#include <cstddef>

#include "api.h"
#include "core/error.h"

namespace pp::cuda {

// Calls `fn(err, err_len)`, a pp_cuda_* call, and turns a failure into a pp::Error with its code.
template <typename Fn>
void Call(Fn&& fn) {
  char err[512] = {0};
  const int rc = fn(err, sizeof err);
  if (rc == PP_OK) return;
  const pp_status code = rc > PP_OK && rc < PP_STATUS_COUNT ? static_cast<pp_status>(rc) : PP_E_BACKEND;
  throw Error(code, err[0] ? err : "CUDA call failed");
}

}  // namespace pp::cuda
