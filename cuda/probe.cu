#include <cstring>

#include "api.h"
#include "common.cuh"

extern "C" int pp_cuda_built(void) { return 1; }

extern "C" int pp_cuda_probe(char* name, size_t name_len, size_t* total_mem, int* cc_major, int* cc_minor, char* err,
                             size_t err_len) {
  int count = 0;
  cudaError_t st = cudaGetDeviceCount(&count);
  if (st != cudaSuccess) {
    // No driver (libcuda missing) or no device: the backend is simply unavailable.
    std::snprintf(err, err_len, "no usable CUDA device: %s", cudaGetErrorString(st));
    cudaGetLastError();
    return PP_E_BACKEND;
  }
  if (count == 0) {
    std::snprintf(err, err_len, "no CUDA device found");
    return PP_E_BACKEND;
  }
  cudaDeviceProp prop;
  PP_CUDA_TRY(cudaGetDeviceProperties(&prop, 0));
  if (name && name_len) {
    std::strncpy(name, prop.name, name_len - 1);
    name[name_len - 1] = 0;
  }
  if (total_mem) *total_mem = prop.totalGlobalMem;
  if (cc_major) *cc_major = prop.major;
  if (cc_minor) *cc_minor = prop.minor;
  return PP_OK;
}
