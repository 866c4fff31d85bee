// CUDA runtime API stand-ins for the emulator (run.sh): device memory is host memory (exactly
// sized, so AddressSanitizer sees overruns), copies are synchronous memcpy, and the device is a
// fake one whose size and shape come from the environment (see run.sh). Stream capture records
// the capturing stream's launches, copies and memsets into a graph that cudaGraphLaunch replays
// (cuda_emu.h, "Stream capture and graphs"); calls a capture forbids fail as on the device.
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
long emu_invalidate_captures = 0;    // > 0: that many next captures are invalidated when they begin
void emu_set_mem(size_t bytes);
size_t emu_used_mem();
long long emu_direct_launches() { return emu::S().direct_launches; }
long long emu_graph_launches() { return emu::S().graph_launches; }
long long emu_captures() { return emu::S().captures_begun; }
long long emu_replayed_kernels() { return emu::S().replayed_kernels; }

struct CUgraph_st {
  std::vector<emu::GraphOp> ops;
};
struct CUgraphExec_st {
  std::vector<emu::GraphOp> ops;
};

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
// A call a capture in progress forbids on this thread (see cuda_emu.h).
#define PP_EMU_REFUSE_DURING_CAPTURE() \
  do {                                 \
    if (emu::refused_during_capture()) return fail(cudaErrorStreamCaptureUnsupported); \
  } while (0)
// Recorded when `stream` is capturing: the operation runs at every replay instead of now.
bool recorded(cudaStream_t stream, std::function<void()> op) {
  emu::Capture* capture = emu::capturing(stream);
  if (!capture) return false;
  emu::GraphOp g;
  g.run = std::move(op);
  capture->ops.push_back(std::move(g));
  return true;
}
[[noreturn]] void not_emulated(const char* what) {
  fprintf(stderr, "EMU FATAL: %s during stream capture is not emulated\n", what);
  abort();
}
cudaError_t device_alloc(void** p, size_t n) {
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
void device_free(void* p) {
  auto it = g_allocs.find(p);
  if (it == g_allocs.end()) {
    fprintf(stderr, "EMU FATAL: cudaFree of an unknown pointer\n");
    abort();
  }
  g_used -= it->second;
  g_allocs.erase(it);
  free(p);
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
  PP_EMU_REFUSE_DURING_CAPTURE();
  return device_alloc(p, n);
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  PP_EMU_REFUSE_DURING_CAPTURE();
  emu_blocking_frees++;
  device_free(p);
  return cudaSuccess;
}
// Stream-ordered allocations on a capturing stream become graph memory nodes on the device: not
// emulated (pairpick allocates before it captures).
cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t stream) {
  if (emu::capturing(stream)) not_emulated("cudaMallocAsync on the capturing stream");
  return device_alloc(p, n);
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t stream) {
  if (!p) return cudaSuccess;
  if (emu::capturing(stream)) not_emulated("cudaFreeAsync on the capturing stream");
  device_free(p);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *total = total_mem();
  *free_bytes = total_mem() - g_used;
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t stream) {
  if (recorded(stream, [=] { cudaMemcpyAsync(dst, src, n, kind, nullptr); })) return cudaSuccess;
  emu_copies++;
  count_copy(dst, src, n, kind);
  memcpy(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
  if (recorded(stream, [=] { cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind, nullptr); })) return cudaSuccess;
  emu_copies++;
  for (size_t r = 0; r < height; ++r) memcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t stream) {
  if (recorded(stream, [=] { memset(dst, value, n); })) return cudaSuccess;
  memset(dst, value, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  PP_EMU_REFUSE_DURING_CAPTURE();
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
// Events: copies and kernels complete when issued, so an event is always complete — except one
// last recorded on a capturing stream (it stands for a graph node): waiting for it is refused.
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = reinterpret_cast<cudaEvent_t>(new int(0));
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete reinterpret_cast<int*>(e);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  *reinterpret_cast<int*>(e) = emu::capturing(stream) ? 1 : 0;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  if (*reinterpret_cast<int*>(e)) {
    emu::refused_during_capture();
    return fail(cudaErrorCapturedEvent);
  }
  PP_EMU_REFUSE_DURING_CAPTURE();
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  if (*reinterpret_cast<int*>(e)) {
    emu::refused_during_capture();
    return fail(cudaErrorCapturedEvent);
  }
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = reinterpret_cast<cudaStream_t>(new int(0));  // a distinct handle per stream
  emu_live_streams++;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s) return cudaErrorInvalidResourceHandle;
  emu::S().captures.erase(s);  // a capture in progress ends with its stream
  delete reinterpret_cast<int*>(s);
  emu_live_streams--;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (emu::capturing(stream)) {
    emu::refused_during_capture();
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  emu_stream_syncs++;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
  PP_EMU_REFUSE_DURING_CAPTURE();
  emu_device_syncs++;
  return cudaSuccess;
}
// ---- stream capture and graphs ----
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  if (!stream) return fail(cudaErrorStreamCaptureUnsupported);  // the legacy default stream cannot capture
  if (emu::capturing(stream)) return fail(cudaErrorIllegalState);
  emu::S().captures[stream] = emu::Capture{};
  emu::S().captures_begun++;
  if (emu_invalidate_captures > 0) {  // a fault injected by a test
    emu_invalidate_captures--;
    emu::S().captures[stream].invalidated = true;
  }
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  *graph = nullptr;
  emu::Capture* capture = emu::capturing(stream);
  if (!capture) return fail(cudaErrorIllegalState);
  const bool invalidated = capture->invalidated;
  std::vector<emu::GraphOp> ops = std::move(capture->ops);
  emu::S().captures.erase(stream);
  if (invalidated) return fail(cudaErrorStreamCaptureInvalidated);
  *graph = new CUgraph_st{std::move(ops)};
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  emu::Capture* capture = emu::capturing(stream);
  *status = !capture ? cudaStreamCaptureStatusNone : capture->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = nullptr;
  if (!graph) return fail(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->ops};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return fail(cudaErrorInvalidValue);
  if (emu::capturing(stream)) not_emulated("cudaGraphLaunch on the capturing stream");
  emu::S().graph_launches++;
  for (const emu::GraphOp& op : exec->ops) {
    if (op.kernel) {
      emu::S().replayed_kernels++;
      emu::run_kernel(op.grid, op.block, op.smem, op.run);
    } else {
      op.run();
    }
  }
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
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
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing (emulated)";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture (emulated)";
    case cudaErrorCapturedEvent: return "operation not permitted on an event last recorded in a capturing stream (emulated)";
    case cudaErrorIllegalState: return "the stream is not capturing, or already is (emulated)";
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
