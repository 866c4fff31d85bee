// CUDA runtime API stand-ins for the emulator (run.sh): device memory is host memory (exactly
// sized, so AddressSanitizer sees overruns), copies are synchronous memcpy, and the device is a
// fake one whose size and shape come from the environment (see run.sh).
#include <map>

#include "cuda_emu.h"

long emu_copies = 0;  // host ↔ device copies so far (parity.cpp prints it: shows the chunking)

namespace {
std::map<void*, size_t> g_allocs;
size_t g_used = 0;

size_t total_mem() {
  const char* e = getenv("EMU_MEM");
  return e ? strtoull(e, nullptr, 10) : (size_t(1) << 30);
}
int env_int(const char* name, int fallback) {
  const char* e = getenv(name);
  return e ? atoi(e) : fallback;
}
}  // namespace

extern "C" {
cudaError_t cudaMalloc(void** p, size_t n) {
  *p = nullptr;
  if (g_used + n > total_mem()) return cudaErrorMemoryAllocation;
  if (posix_memalign(p, 256, n ? n : 1)) return cudaErrorMemoryAllocation;
  memset(*p, 0xAB, n);  // garbage, like fresh device memory
  g_allocs[*p] = n;
  g_used += n;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  auto it = g_allocs.find(p);
  if (it == g_allocs.end()) {
    fprintf(stderr, "EMU FATAL: cudaFree of an unknown pointer\n");
    abort();
  }
  g_used -= it->second;
  g_allocs.erase(it);
  free(p);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *total = total_mem();
  *free_bytes = total_mem() - g_used;
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind, cudaStream_t) {
  emu_copies++;
  memcpy(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind, cudaStream_t) {
  emu_copies++;
  for (size_t r = 0; r < height; ++r) memcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  static int token;
  *s = reinterpret_cast<cudaStream_t>(&token);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaErrorMemoryAllocation ? "out of memory (emulated)" : "error (emulated)";
}
cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int value) {
  return value > env_int("EMU_SMEM_OPTIN", 227 * 1024) ? cudaErrorInvalidValue : cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  memset(p, 0, sizeof(*p));
  strcpy(p->name, "emulated");
  p->multiProcessorCount = env_int("EMU_SMS", 3);
  p->major = env_int("EMU_MAJOR", 9);
  p->minor = 0;
  p->sharedMemPerBlockOptin = env_int("EMU_SMEM_OPTIN", 227 * 1024);
  p->totalGlobalMem = total_mem();
  return cudaSuccess;
}
}
