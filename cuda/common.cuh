// Helpers shared by the .cu files: error capture into the C ABI's err buffer, fp16 loads, warp
// reductions, and the per-process pool of device workspaces (a stream plus cached buffers).
//
// Thread safety: the C ABI may be called from several libuv worker threads at once. Each call
// leases a whole Workspace (its own stream and buffers) from a mutex-protected pool and gives it
// back when done, so concurrent calls never share a stream or a buffer; the pool grows to the
// number of calls in flight (libuv's thread count, 4 by default). Cached buffers only grow; when
// an allocation fails, the cached buffers of idle workspaces are freed and it is retried once.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/codes.h"

// In an extern "C" entry point: returns PP_E_BACKEND with the CUDA error when `expr` fails.
#define PP_CUDA_TRY(expr)                                                                     \
  do {                                                                                        \
    cudaError_t pp_status_ = (expr);                                                          \
    if (pp_status_ != cudaSuccess) {                                                          \
      if (err && err_len)                                                                     \
        std::snprintf(err, err_len, "%s failed: %s", #expr, cudaGetErrorString(pp_status_));  \
      return PP_E_BACKEND;                                                                    \
    }                                                                                         \
  } while (0)

namespace pp_cuda {

// ------------------------------------------------------------------------------------------
// Device-side helpers
// ------------------------------------------------------------------------------------------

constexpr unsigned kFullMask = 0xffffffffu;

template <bool Half>
__device__ __forceinline__ float load(const void* p, long long i) {
  if constexpr (Half) {
    return __half2float(static_cast<const __half*>(p)[i]);
  } else {
    return static_cast<const float*>(p)[i];
  }
}

// Butterfly sum: every lane ends with the total, summed in the same order on every call.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// ------------------------------------------------------------------------------------------
// Host-side error handling: internal code throws, each extern "C" entry point catches.
// ------------------------------------------------------------------------------------------

class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class OutOfMemory : public Failure {
 public:
  using Failure::Failure;
};

inline void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  std::string message = std::string(what) + " failed: " + cudaGetErrorString(status);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // allocation failures are not sticky: clear them so later calls work
    throw OutOfMemory(message);
  }
  throw Failure(message);
}

// Call right after a kernel launch: reports bad launch configurations (and earlier async faults).
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

[[noreturn]] inline void fail(const std::string& message) { throw Failure(message); }

inline void write_error(char* err, size_t err_len, const char* message) {
  if (err && err_len) std::snprintf(err, err_len, "%s", message);
}

// Runs `fn`, turning any exception into the C ABI's "PP_E_BACKEND + message" convention.
template <class Fn>
int guarded(char* err, size_t err_len, Fn&& fn) noexcept {
  try {
    fn();
    return PP_OK;
  } catch (const std::bad_alloc&) {
    write_error(err, err_len, "out of host memory in the CUDA backend");
  } catch (const std::exception& e) {
    write_error(err, err_len, e.what());
  } catch (...) {
    write_error(err, err_len, "unknown error in the CUDA backend");
  }
  return PP_E_BACKEND;
}

inline long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

// ------------------------------------------------------------------------------------------
// Device properties (device 0, the one pp_cuda_probe reports), read once per process.
// ------------------------------------------------------------------------------------------

struct DeviceInfo {
  int device = 0;
  int sms = 1;
  int major = 0;
  int minor = 0;
  size_t smem_optin = 48 * 1024;  // largest dynamic shared memory per block after opting in
};

inline const DeviceInfo& device_info() {
  static std::once_flag once;
  static DeviceInfo info;
  static cudaError_t status = cudaSuccess;
  std::call_once(once, [] {
    cudaDeviceProp prop;
    status = cudaGetDeviceProperties(&prop, 0);
    if (status != cudaSuccess) return;
    info.sms = prop.multiProcessorCount;
    info.major = prop.major;
    info.minor = prop.minor;
    info.smem_optin = prop.sharedMemPerBlockOptin;
  });
  check(status, "cudaGetDeviceProperties");
  return info;
}

// ------------------------------------------------------------------------------------------
// Workspaces: a stream plus numbered device buffers that are kept between calls.
// ------------------------------------------------------------------------------------------

inline void trim_idle_workspaces();

// Pinned staging (upload/download below). Copies between the caller's pageable arrays and the
// device go through two pinned buffers of the workspace, kStagingBytes each (allocated on first
// use; PAIRPICK_CUDA_STAGING_BYTES overrides, for tests): the host copy into one buffer overlaps
// the DMA out of the other, the DMA runs at full link speed (a pageable cudaMemcpyAsync goes
// through the driver's small bounce buffer and blocks the host thread), and the caller's array
// may be released as soon as upload() returns. Copies under kDirectBytes go directly.
constexpr size_t kStagingBytes = size_t(8) << 20;
constexpr size_t kDirectBytes = size_t(64) << 10;

class Workspace {
 public:
  Workspace() { check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags"); }
  ~Workspace() {
    free_all();
    for (Staging& s : staging_) {
      if (s.host) cudaFreeHost(s.host);
      if (s.done) cudaEventDestroy(s.done);
    }
    if (stream_) cudaStreamDestroy(stream_);
  }

  // Bytes per pinned staging buffer; 0 when pinned memory is unavailable (copies then go directly).
  size_t staging_bytes() {
    if (staging_state_ == 0) {
      staging_state_ = -1;
      const char* env = std::getenv("PAIRPICK_CUDA_STAGING_BYTES");
      const size_t bytes = env ? std::max<size_t>(16, std::strtoull(env, nullptr, 10) / 16 * 16) : kStagingBytes;
      for (Staging& s : staging_) {
        if (cudaMallocHost(&s.host, bytes) != cudaSuccess || cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming) != cudaSuccess) {
          cudaGetLastError();  // not sticky: copies go directly instead
          return 0;
        }
      }
      staging_size_ = bytes;
      staging_state_ = 1;
    }
    return staging_state_ > 0 ? staging_size_ : 0;
  }
  // Pinned buffer `i` (0 or 1) and the event recorded after the last copy that uses it.
  void* staging_host(int i) const { return staging_[i].host; }
  cudaEvent_t staging_done(int i) const { return staging_[i].done; }
  // The buffer the next upload chunk should use (alternating across calls).
  int next_staging() { return next_staging_ ^= 1; }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  cudaStream_t stream() const { return stream_; }

  // Device buffer `slot` with room for `count` elements of T (contents undefined). A later call
  // for the same slot may move it: ask for every slot a call needs before issuing work.
  template <class T>
  T* get(size_t slot, size_t count) {
    return static_cast<T*>(get_bytes(slot, count * sizeof(T)));
  }

  void* get_bytes(size_t slot, size_t bytes) {
    if (slot >= buffers_.size()) buffers_.resize(slot + 1);
    Buffer& buf = buffers_[slot];
    if (bytes == 0) bytes = 1;
    if (buf.bytes >= bytes) return buf.ptr;
    if (buf.ptr) {
      check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      cudaFree(buf.ptr);
      buf.ptr = nullptr;
      buf.bytes = 0;
    }
    // Round up (to 1 MiB past 1 MiB) so slightly larger requests reuse the buffer.
    const size_t mib = size_t(1) << 20;
    size_t want = bytes > mib ? (bytes + mib - 1) / mib * mib : bytes;
    void* ptr = nullptr;
    cudaError_t status = cudaMalloc(&ptr, want);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      trim_idle_workspaces();
      status = cudaMalloc(&ptr, want);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      std::string message = "cudaMalloc of " + std::to_string(want) + " bytes failed: " + cudaGetErrorString(status);
      if (status == cudaErrorMemoryAllocation) throw OutOfMemory(message);
      throw Failure(message);
    }
    buf.ptr = ptr;
    buf.bytes = want;
    return ptr;
  }

  size_t held_bytes() const {
    size_t total = 0;
    for (const Buffer& b : buffers_) total += b.bytes;
    return total;
  }

  void free_all() {
    for (Buffer& b : buffers_) {
      if (b.ptr) cudaFree(b.ptr);
      b = Buffer{};
    }
  }

  void sync() { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

 private:
  struct Buffer {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  struct Staging {
    void* host = nullptr;
    cudaEvent_t done = nullptr;
  };
  cudaStream_t stream_ = nullptr;
  std::vector<Buffer> buffers_;
  Staging staging_[2];
  size_t staging_size_ = 0;
  int staging_state_ = 0;  // 0: not tried, 1: ready, -1: unavailable
  int next_staging_ = 0;
};

class WorkspacePool {
 public:
  std::unique_ptr<Workspace> acquire() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!idle_.empty()) {
        std::unique_ptr<Workspace> ws = std::move(idle_.back());
        idle_.pop_back();
        return ws;
      }
    }
    return std::make_unique<Workspace>();
  }
  void release(std::unique_ptr<Workspace> ws) {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(std::move(ws));
  }
  void trim_idle() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& ws : idle_) ws->free_all();
  }
  // Device bytes cached by idle workspaces (what trim_idle would give back).
  size_t idle_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t total = 0;
    for (auto& ws : idle_) total += ws->held_bytes();
    return total;
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Workspace>> idle_;
};

// Never destroyed: freeing device memory from static destructors races the CUDA runtime's own
// teardown at process exit.
inline WorkspacePool& workspace_pool() {
  static WorkspacePool* pool = new WorkspacePool();
  return *pool;
}

inline void trim_idle_workspaces() { workspace_pool().trim_idle(); }

// RAII lease of one workspace for the duration of a C ABI call. On release the stream is
// drained; a workspace whose stream reports an error is dropped rather than reused.
class Lease {
 public:
  Lease() {
    check(cudaSetDevice(0), "cudaSetDevice");
    ws_ = workspace_pool().acquire();
  }
  ~Lease() {
    if (!ws_) return;
    if (cudaStreamSynchronize(ws_->stream()) == cudaSuccess) {
      workspace_pool().release(std::move(ws_));
    } else {
      cudaGetLastError();
      ws_.reset();
    }
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Workspace& operator*() { return *ws_; }
  Workspace* operator->() { return ws_.get(); }

 private:
  std::unique_ptr<Workspace> ws_;
};

// Bytes this call may plan to use on the device: a fraction of what is free now plus what the
// leased workspace already holds (it can reuse that).
inline size_t device_budget(const Workspace& ws, double fraction) {
  size_t free_bytes = 0, total_bytes = 0;
  check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  return static_cast<size_t>(static_cast<double>(free_bytes + ws.held_bytes()) * fraction);
}

// Host → device copy on the workspace's stream, through the pinned staging buffers when large
// (see kStagingBytes): `src` may be released when this returns.
inline void upload(Workspace& ws, void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  const size_t chunk = bytes < kDirectBytes ? 0 : ws.staging_bytes();
  if (!chunk) {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ws.stream()), "cudaMemcpyAsync(H2D)");
    return;
  }
  for (size_t off = 0; off < bytes; off += chunk) {
    const size_t n = std::min(chunk, bytes - off);
    const int b = ws.next_staging();
    check(cudaEventSynchronize(ws.staging_done(b)), "cudaEventSynchronize");  // its previous DMA is done
    std::memcpy(ws.staging_host(b), static_cast<const char*>(src) + off, n);
    check(cudaMemcpyAsync(static_cast<char*>(dst) + off, ws.staging_host(b), n, cudaMemcpyHostToDevice, ws.stream()),
          "cudaMemcpyAsync(H2D)");
    check(cudaEventRecord(ws.staging_done(b), ws.stream()), "cudaEventRecord");
  }
}
// Device → host copy on the workspace's stream. Large ones go through the staging buffers and
// have landed in `dst` when this returns (the DMA of chunk c+1 overlaps the host copy of chunk
// c); small ones land at the next synchronisation of the stream.
inline void download(Workspace& ws, void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  const size_t chunk = bytes < kDirectBytes ? 0 : ws.staging_bytes();
  if (!chunk) {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ws.stream()), "cudaMemcpyAsync(D2H)");
    return;
  }
  int pending = -1;  // buffer whose chunk has been issued but not yet copied out
  size_t pending_off = 0, pending_n = 0;
  auto land = [&] {
    check(cudaEventSynchronize(ws.staging_done(pending)), "cudaEventSynchronize");
    std::memcpy(static_cast<char*>(dst) + pending_off, ws.staging_host(pending), pending_n);
  };
  for (size_t off = 0; off < bytes; off += chunk) {
    const size_t n = std::min(chunk, bytes - off);
    const int b = ws.next_staging();  // stream order: its earlier DMAs finish before this one writes it
    check(cudaMemcpyAsync(ws.staging_host(b), static_cast<const char*>(src) + off, n, cudaMemcpyDeviceToHost, ws.stream()),
          "cudaMemcpyAsync(D2H)");
    check(cudaEventRecord(ws.staging_done(b), ws.stream()), "cudaEventRecord");
    if (pending >= 0) land();
    pending = b;
    pending_off = off;
    pending_n = n;
  }
  land();
}

}  // namespace pp_cuda
