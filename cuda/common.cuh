// Helpers shared by the .cu files: error capture into the C ABI's err buffer, fp16 loads.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdio>

#define PP_CUDA_TRY(expr)                                                                     \
  do {                                                                                        \
    cudaError_t pp_status_ = (expr);                                                          \
    if (pp_status_ != cudaSuccess) {                                                          \
      if (err && err_len)                                                                     \
        std::snprintf(err, err_len, "%s failed: %s", #expr, cudaGetErrorString(pp_status_));  \
      return 1;                                                                               \
    }                                                                                         \
  } while (0)

namespace pp_cuda {

template <bool Half>
__device__ __forceinline__ float load(const void* p, long long i) {
  if constexpr (Half) {
    return __half2float(static_cast<const __half*>(p)[i]);
  } else {
    return static_cast<const float*>(p)[i];
  }
}

}  // namespace pp_cuda
