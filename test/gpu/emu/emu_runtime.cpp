// CUDA runtime API stand-ins for the emulator (run.sh): device memory is host memory (exactly
// sized, so AddressSanitizer sees overruns), copies are synchronous memcpy, and the device is a
// fake one whose size and shape come from the environment (see run.sh).
#include <map>

#include "cuda_emu.h"

long emu_copies = 0;  // host ↔ device copies so far (parity.cpp prints it: shows the chunking)
long emu_device_syncs = 0;  // cudaDeviceSynchronize calls (each stalls every stream of the process)
long emu_live_streams = 0;  // streams created and not yet destroyed
long emu_blocking_frees = 0;  // cudaFree calls (each waits for the whole device)
long emu_stream_syncs = 0;  // cudaStreamSynchronize calls
long emu_fail_mallocs_after = -1;  // ≥ 0: that many more cudaMalloc calls succeed, then all fail
long emu_pageable_large_copies = 0;  // host ↔ device copies of ≥ 64 KiB from/to pageable (not pinned) memory
long emu_pinned_copies = 0;          // host ↔ device copies from/to pinned memory
long emu_h2d_bytes = 0;              // bytes copied host → device
void emu_set_mem(size_t bytes);
size_t emu_used_mem();

namespace {
std::map<void*, size_t> g_allocs;
std::map<const char*, size_t> g_pinned;  // cudaMallocHost allocations
bool pinned(const void* p) {
  auto it = g_pinned.upper_bound(static_cast<const char*>(p));
  if (it == g_pinned.begin()) return false;
  --it;
  return static_cast<const char*>(p) < it->first + it->second;
}
// Counts a host ↔ device copy by where its host side lives.
void count_copy(const void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  const void* host = kind == cudaMemcpyHostToDevice ? src : kind == cudaMemcpyDeviceToHost ? dst : nullptr;
  if (!host) return;
  if (kind == cudaMemcpyHostToDevice) emu_h2d_bytes += (long)n;
  if (pinned(host))
    emu_pinned_copies++;
  else if (n >= (size_t(64) << 10))
    emu_pageable_large_copies++;
}
size_t g_used = 0;
size_t g_mem_override = 0;

size_t total_mem() {
  if (g_mem_override) return g_mem_override;
  const char* e = getenv("EMU_MEM");
  return e ? strtoull(e, nullptr, 10) : (size_t(1) << 30);
}
cudaError_t fail(cudaError_t e) {
  emu::pending_error() = e;  // runtime errors are also what cudaGetLastError reports next
  return e;
}
int env_int(const char* name, int fallback) {
  const char* e = getenv(name);
  return e ? atoi(e) : fallback;
}
}  // namespace

// Device memory of the emulated device (0: back to EMU_MEM / 1 GiB) and what is allocated now.
void emu_set_mem(size_t bytes) { g_mem_override = bytes; }
size_t emu_used_mem() { return g_used; }

extern "C" {
cudaError_t cudaMalloc(void** p, size_t n) {
  *p = nullptr;
  if (emu_fail_mallocs_after == 0) return fail(cudaErrorMemoryAllocation);
  if (emu_fail_mallocs_after > 0) emu_fail_mallocs_after--;
  if (g_used + n > total_mem()) return fail(cudaErrorMemoryAllocation);
  if (posix_memalign(p, 256, n ? n : 1)) return fail(cudaErrorMemoryAllocation);
  memset(*p, 0xAB, n);  // garbage, like fresh device memory
  g_allocs[*p] = n;
  g_used += n;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  emu_blocking_frees++;
  return cudaFreeAsync(p, nullptr);
}
cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) { return cudaMalloc(p, n); }
cudaError_t cudaFreeAsync(void* p, cudaStream_t) {
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
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t) {
  emu_copies++;
  count_copy(dst, src, n, kind);
  memcpy(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind, cudaStream_t) {
  emu_copies++;
  for (size_t r = 0; r < height; ++r) memcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t) {
  memset(dst, value, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  emu_copies++;
  count_copy(dst, src, n, kind);
  memcpy(dst, src, n);
  return cudaSuccess;
}
// Pinned host memory: plain host memory here, remembered (copies are counted by where their host
// side lives: emu_pinned_copies, emu_pageable_large_copies).
cudaError_t cudaMallocHost(void** p, size_t n) {
  *p = malloc(n ? n : 1);
  if (!*p) return fail(cudaErrorMemoryAllocation);
  g_pinned[static_cast<const char*>(*p)] = n ? n : 1;
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t n, unsigned) { return cudaMallocHost(p, n); }
cudaError_t cudaFreeHost(void* p) {
  g_pinned.erase(static_cast<const char*>(p));
  free(p);
  return cudaSuccess;
}
// Events: copies and kernels complete when issued, so an event is always complete.
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = reinterpret_cast<cudaEvent_t>(new int(0));
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete reinterpret_cast<int*>(e);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) { return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventQuery(cudaEvent_t e) { return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = reinterpret_cast<cudaStream_t>(new int(0));  // a distinct handle per stream
  emu_live_streams++;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s) return cudaErrorInvalidResourceHandle;
  delete reinterpret_cast<int*>(s);
  emu_live_streams--;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  emu_stream_syncs++;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
  emu_device_syncs++;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrMultiProcessorCount ? env_int("EMU_SMS", 3) : 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
  const cudaError_t e = emu::pending_error();
  emu::pending_error() = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return emu::pending_error(); }
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory (emulated)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (emulated)";
    case cudaErrorInvalidValue: return "invalid argument (emulated)";
    default: return "error (emulated)";
  }
}
cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int value) {
  return value > env_int("EMU_SMEM_OPTIN", 227 * 1024) ? fail(cudaErrorInvalidValue) : cudaSuccess;
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

// The schedule seed (cuda_emu.h) for the launches that follow, from code built without cuda_emu.h.
void emu_set_schedule(unsigned long long seed) { emu::set_schedule(seed); }
