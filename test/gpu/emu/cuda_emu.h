// Host emulation of the CUDA subset used by pairpick's kernels: every GPU thread is a fiber
// (ucontext), blocks run one after another, __syncthreads and warp collectives are rendezvous
// points. Deliberately strict: a barrier or warp op that cannot be completed by every thread
// (divergence, exited threads) aborts with a message.
//
// Schedules (EMU_SCHEDULE=<seed>, or emu::set_schedule): 0 runs blocks in grid order and threads
// round-robin from thread 0; any other seed runs the blocks in a seeded random order and, at every
// sweep of the scheduler, the threads in a fresh seeded order, so code that relies on an order
// the device does not promise (a race between barriers, float atomics summed in block order)
// gives different results under different seeds. Static shared memory is refilled with garbage
// at every block (transform.py). Bad launch configurations are not run: they set the error that
// cudaGetLastError reports, as on the device.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <type_traits>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

template <class T>
inline cudaError_t cudaFuncSetAttribute(T* f, cudaFuncAttribute a, int v) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(f), a, v);
}

using std::isfinite;
using std::isinf;
using std::isnan;
using std::max;
using std::min;

namespace emu {

// Context switch between fibers. On x86-64 a few instructions (callee-saved registers and the
// stack pointer): glibc's swapcontext makes two signal-mask system calls per switch, and the
// emulator switches at every barrier and warp collective of every thread.
#if defined(__x86_64__)
struct Context {
  void* sp = nullptr;
};
extern "C" void emu_switch_stack(void** save_sp, void* load_sp);
asm(R"(
.text
.weak emu_switch_stack
.type emu_switch_stack,@function
emu_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size emu_switch_stack, .-emu_switch_stack
)");
inline void switch_to(Context& from, Context& to) { emu_switch_stack(&from.sp, to.sp); }
// A fresh context that starts `entry` (which never returns) on the given stack.
inline void make_context(Context& c, char* stack, size_t size, void (*entry)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                          // entry's (never used) return address: rsp ≡ 8 mod 16 at entry
  *--sp = reinterpret_cast<void*>(entry);   // where the first switch's `ret` goes
  for (int r = 0; r < 6; ++r) *--sp = nullptr;  // rbp, rbx, r12–r15
  c.sp = sp;
}
#else
struct Context {
  ucontext_t uc;
};
inline void switch_to(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
inline void make_context(Context& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

// cp.async copies a thread has issued and not yet waited for (see "cp.async" below).
struct AsyncCopy {
  unsigned char* dst;
  unsigned char data[16];  // taken from global memory at issue
  size_t n;
  long batch;  // -1 until __pipeline_commit closes the batch
};

struct Fiber {
  std::vector<AsyncCopy> copies;
  long batches = 0;  // batches committed so far
  Context ctx;
  std::vector<char> stack;
  uint3 tid;
  int linear;
  bool done = false;
};

// Stream capture and graphs. While a stream captures (cudaStreamBeginCapture), kernel launches
// and async copies/memsets issued on it are recorded, not run: a launch's arguments are copied
// when it is issued, as the device copies kernel parameters, so a value that changes per replay
// must live in device memory. cudaGraphLaunch replays the recorded operations in order. Calls
// that a real capture refuses (a synchronous copy, a stream/device/event synchronisation, a
// blocking allocation from the capturing thread, a synchronisation of the capturing stream) return
// cudaErrorStreamCaptureUnsupported and invalidate the capture, so cudaStreamEndCapture then
// fails with cudaErrorStreamCaptureInvalidated, as on the device.
struct GraphOp {
  bool kernel = false;
  dim3 grid, block;
  size_t smem = 0;
  std::function<void()> run;  // the kernel body with its copied arguments, or the copy/memset
};
struct Capture {
  std::vector<GraphOp> ops;
  bool invalidated = false;
};

struct State {
  std::vector<Fiber> fibers;
  Context sched;
  int current = -1;
  int alive = 0;
  // block barrier
  long blockGen = 0;
  int blockArrived = 0;
  // warp rendezvous
  struct Warp {
    long gen = 0;
    int arrived = 0;
    uint64_t vals[2][32];
    int kind[2];
    float mma[16 * 16];  // one WMMA result being assembled (mma_sync)
  };
  std::vector<Warp> warps;
  unsigned char* smem = nullptr;
  std::function<void()> body;
  dim3 grid, block, blockIdx;
  size_t smemBytes = 0;
  long long launches = 0;
  long long progress = 0;
  unsigned long long schedule = 0;  // 0: grid order / round-robin; else the seed of the shuffles
  std::mt19937_64 rng;
  long long block_serial = 0;  // blocks run so far (static shared memory is poisoned per block)
  std::map<const void*, long long> poisoned;
  // Graphs (see "Stream capture and graphs" below).
  std::map<cudaStream_t, Capture> captures;  // streams capturing now
  long long direct_launches = 0;   // kernel launches from host code run at once (not recorded)
  long long captures_begun = 0;    // cudaStreamBeginCapture calls that began a capture
  long long graph_launches = 0;    // cudaGraphLaunch calls
  long long replayed_kernels = 0;  // kernels run by graph replays
};

inline State& S() {
  static State s;
  return s;
}
inline Fiber& cur() { return S().fibers[S().current]; }

// The error cudaGetLastError reports next (per host thread, as the runtime keeps it).
inline cudaError_t& pending_error() {
  thread_local cudaError_t e = cudaSuccess;
  return e;
}

inline void set_schedule(unsigned long long seed) {
  S().schedule = seed;
  S().rng.seed(seed);
}

// First use of a static shared array in a block: fill it with garbage (NaN for floats when the
// schedule seed is odd, 0xCD bytes otherwise).
inline void shared_poison(const void* p, size_t n) {
  State& s = S();
  long long& at = s.poisoned[p];
  if (at == s.block_serial + 1) return;
  at = s.block_serial + 1;
  std::memset(const_cast<void*>(p), (s.schedule & 1) ? 0xFF : 0xCD, n);
}

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "EMU FATAL: %s (block %u,%u thread %d)\n", what, S().blockIdx.x, S().blockIdx.y,
               S().current);
  std::abort();
}

inline void yield() { switch_to(cur().ctx, S().sched); }

// A thread must not exit with cp.async copies in flight (see "cp.async" below). Out of line: the
// frame of fiber_entry never returns, so it must hold no locals (AddressSanitizer would leave
// their redzones poisoned on the reused stack).
[[gnu::noinline]] inline void check_copies_landed() {
  if (!cur().copies.empty()) die("cp.async copies never waited for (__pipeline_wait_prior) when the thread exits");
}

inline void fiber_entry() {
  S().body();
  check_copies_landed();
  cur().done = true;
  S().alive--;
  S().progress++;
  switch_to(cur().ctx, S().sched);
  die("a finished fiber was resumed");
}

inline void syncthreads() {
  State& s = S();
  if (s.alive != (int)s.fibers.size()) die("__syncthreads after some threads exited");
  long gen = s.blockGen;
  s.progress++;
  if (++s.blockArrived == s.alive) {
    s.blockArrived = 0;
    s.blockGen++;
    return;
  }
  while (s.blockGen == gen) yield();
}

// Warp collective: every lane contributes `v`; returns all 32 lanes' values.
inline const uint64_t* warp_collective(uint64_t v, int kind) {
  State& s = S();
  Fiber& f = cur();
  const int lane = f.linear % 32;
  if ((f.linear / 32 + 1) * 32 > (int)s.fibers.size()) die("warp collective in a warp of fewer than 32 threads");
  State::Warp& w = s.warps[f.linear / 32];
  const long gen = w.gen;
  const int slot = gen & 1;
  w.vals[slot][lane] = v;
  s.progress++;
  if (w.arrived == 0) w.kind[slot] = kind;
  else if (w.kind[slot] != kind) die("warp lanes reached different collectives");
  if (++w.arrived == 32) {
    w.arrived = 0;
    w.gen++;
  } else {
    while (w.gen == gen) {
      yield();
    }
  }
  return w.vals[slot];
}

template <class T>
inline uint64_t bits(T v) {
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T unbits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

inline void run_kernel(dim3 grid, dim3 block, size_t smemBytes, const std::function<void()>& body);

// The capture `stream` belongs to (nullptr when it is not capturing).
inline Capture* capturing(cudaStream_t stream) {
  auto it = S().captures.find(stream);
  return it == S().captures.end() ? nullptr : &it->second;
}
// A call that a capture in progress on this thread forbids: fails and invalidates the capture(s).
inline bool refused_during_capture() {
  if (S().captures.empty()) return false;
  for (auto& c : S().captures) c.second.invalidated = true;
  return true;
}

// A kernel launch from host code: configurations the device refuses are not run (the error is
// left for cudaGetLastError, and a capture in progress is invalidated); on a capturing stream the
// launch is recorded; otherwise it runs now.
inline void launch_impl(dim3 grid, dim3 block, size_t smemBytes, cudaStream_t stream, std::function<void()> body) {
  State& s = S();
  Capture* capture = capturing(stream);
  const unsigned long long n_threads = 1ull * block.x * block.y * block.z;
  const char* optin = getenv("EMU_SMEM_OPTIN");
  cudaError_t refused = cudaSuccess;
  if (n_threads == 0 || n_threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    refused = cudaErrorInvalidConfiguration;
  else if (smemBytes > (optin ? size_t(atoi(optin)) : size_t(227 * 1024)))
    refused = cudaErrorInvalidValue;
  if (refused != cudaSuccess) {
    if (pending_error() == cudaSuccess) pending_error() = refused;
    if (capture) capture->invalidated = true;
    return;
  }
  if (capture) {
    GraphOp op;
    op.kernel = true;
    op.grid = grid;
    op.block = block;
    op.smem = smemBytes;
    op.run = std::move(body);
    capture->ops.push_back(std::move(op));
    return;
  }
  s.direct_launches++;
  run_kernel(grid, block, smemBytes, body);
}

inline void run_kernel(dim3 grid, dim3 block, size_t smemBytes, const std::function<void()>& body) {
  State& s = S();
  s.launches++;
  static bool seeded = false;
  if (!seeded) {
    seeded = true;
    if (const char* e = getenv("EMU_SCHEDULE")) set_schedule(strtoull(e, nullptr, 10));
  }
  const int n = (int)(1ull * block.x * block.y * block.z);
  s.grid = grid;
  s.block = block;
  s.body = body;
  free(s.smem);  // exact size (ASan sees overflows), 128-aligned like the device's
  if (posix_memalign(reinterpret_cast<void**>(&s.smem), 128, smemBytes ? smemBytes : 1)) die("smem alloc");
  const long long nblocks = 1ll * grid.x * grid.y * grid.z;
  std::vector<long long> order((size_t)nblocks);
  for (long long b = 0; b < nblocks; ++b) order[(size_t)b] = b;
  if (s.schedule) std::shuffle(order.begin(), order.end(), s.rng);
  std::vector<int> sweep(n);
  for (int t = 0; t < n; ++t) sweep[t] = t;
  for (long long ob : order) {
        const unsigned bx = unsigned(ob % grid.x), by = unsigned(ob / grid.x % grid.y), bz = unsigned(ob / (1ll * grid.x * grid.y));
        s.blockIdx = dim3(bx, by, bz);
        s.block_serial++;
        if ((int)s.fibers.size() != n) s.fibers.resize(n);  // stacks are kept between blocks
        s.warps.assign((n + 31) / 32, State::Warp());
        s.alive = n;
        s.blockArrived = 0;
        memset(s.smem, (s.schedule & 1) ? 0xFF : 0xCD, smemBytes);
        for (int t = 0; t < n; ++t) {
          Fiber& f = s.fibers[t];
          f.linear = t;
          f.done = false;
          f.copies.clear();
          f.batches = 0;
          f.tid = make_uint3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
          if (f.stack.size() != 256 * 1024) f.stack.resize(256 * 1024);
          make_context(f.ctx, f.stack.data(), f.stack.size(), fiber_entry);
        }
        // Round-robin until all done; a sweep without any arrival or completion is a deadlock.
        while (s.alive > 0) {
          const long long before = s.progress;
          if (s.schedule) std::shuffle(sweep.begin(), sweep.end(), s.rng);
          for (int t : sweep) {
            if (s.fibers[t].done) continue;
            s.current = t;
            switch_to(s.sched, s.fibers[t].ctx);
          }
          if (s.alive > 0 && s.progress == before) die("deadlock: threads wait at barriers that cannot complete");
        }
        s.current = -1;
      }
}

// `k<<<grid, block, smem, stream>>>(args)` becomes launch(config(grid, block, smem, stream),
// [](auto... a) { k(a...); }, args) (transform.py): the arguments are evaluated and copied at the
// launch, as the device does, whether the kernel runs now or is recorded into a graph.
struct Config {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
};
inline Config config(dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) { return Config{grid, block, smem, stream}; }
template <class K, class... A>
inline void launch(Config c, K kernel, A... args) {
  launch_impl(c.grid, c.block, c.smem, c.stream, [kernel, args...]() { kernel(args...); });
}

inline unsigned char* dynamic_smem() {
  return S().smem;
}

}  // namespace emu

#define threadIdx (::emu::cur().tid)
#define blockIdx (::emu::S().blockIdx)
#define blockDim (::emu::S().block)
#define gridDim (::emu::S().grid)

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp_collective(0, 1); }
inline unsigned __ballot_sync(unsigned mask, int pred) {
  if (mask != 0xffffffffu) emu::die("partial ballot mask");
  const uint64_t* v = emu::warp_collective(pred ? 1 : 0, 2);
  unsigned r = 0;
  for (int i = 0; i < 32; ++i)
    if (v[i]) r |= 1u << i;
  return r;
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src) {
  if (mask != 0xffffffffu) emu::die("partial shfl mask");
  const uint64_t* all = emu::warp_collective(emu::bits(v), 3);
  return emu::unbits<T>(all[src & 31]);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int offset) {
  if (mask != 0xffffffffu) emu::die("partial shfl mask");
  const uint64_t* all = emu::warp_collective(emu::bits(v), 4);
  const int lane = emu::cur().linear % 32;
  return emu::unbits<T>(all[(lane ^ offset) & 31]);
}
// Lanes past the end of the warp read their own value, as on the device (width 32).
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned offset) {
  if (mask != 0xffffffffu) emu::die("partial shfl mask");
  const uint64_t* all = emu::warp_collective(emu::bits(v), 5);
  const unsigned lane = emu::cur().linear % 32;
  return emu::unbits<T>(all[lane + offset < 32 ? lane + offset : lane]);
}
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == 0xffffffffu; }
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0u; }
// Atomics: one fiber runs at a time, so a plain read-modify-write is atomic.
template <class T>
inline T atomicAdd(T* p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
template <class T>
inline T atomicMin(T* p, T v) {
  T old = *p;
  if (v < old) *p = v;
  return old;
}
template <class T>
inline T atomicMax(T* p, T v) {
  T old = *p;
  if (v > old) *p = v;
  return old;
}
template <class T>
inline T atomicExch(T* p, T v) {
  T old = *p;
  *p = v;
  return old;
}
template <class T>
inline T atomicCAS(T* p, T cmp, T v) {
  T old = *p;
  if (old == cmp) *p = v;
  return old;
}
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
inline void __trap() { emu::die("__trap"); }

// ---- WMMA ----
namespace nvcuda {
namespace wmma {
struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int R = std::is_same<Use, matrix_b>::value ? K : M;
  static constexpr int C = std::is_same<Use, matrix_a>::value ? K : N;
  float v[R * C];
};
template <class Use, int M, int N, int K, class T, class L>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, float x) {
  for (auto& e : f.v) e = x;
}
inline float to_float(float x) { return x; }
inline float to_float(__half x) { return __half2float(x); }
template <class Use, int M, int N, int K, class T, class L, class P>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const P* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, T, L>;
  if (reinterpret_cast<uintptr_t>(p) % 32) emu::die("wmma load: pointer not 32-byte aligned");
  if (std::is_same<P, __half>::value ? ldm % 8 : ldm % 4) emu::die("wmma load: bad ldm");
  for (int r = 0; r < F::R; ++r)
    for (int c = 0; c < F::C; ++c) f.v[r * F::C + c] = to_float(std::is_same<L, row_major>::value ? p[r * ldm + c] : p[c * ldm + r]);
  __syncwarp();
}
template <int M, int N, int K, class TA, class LA, class TB, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  // Every lane holds the same fragments: each computes 1/32 of the outputs into the warp's
  // scratch, then all copy the whole result (32× less work than every lane doing all of it).
  static_assert(M * N % 32 == 0, "fragment size");
  float* out = emu::S().warps[emu::cur().linear / 32].mma;
  const int lane = emu::cur().linear % 32;
  for (int e = lane * (M * N / 32); e < (lane + 1) * (M * N / 32); ++e) {
    const int i = e / N, j = e % N;
    float s = c.v[i * N + j];
    for (int k = 0; k < K; ++k) s += a.v[i * K + k] * b.v[k * N + j];
    out[e] = s;
  }
  __syncwarp();
  std::memcpy(d.v, out, sizeof(float) * M * N);
  __syncwarp();
}
template <int M, int N, int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  if (reinterpret_cast<uintptr_t>(p) % 32) emu::die("wmma store: pointer not 32-byte aligned");
  if (ldm % 4) emu::die("wmma store: bad ldm");
  __syncwarp();
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) (layout == mem_row_major ? p[i * ldm + j] : p[j * ldm + i]) = f.v[i * N + j];
  __syncwarp();
}
inline float __float_to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) {
    u += 0x1000u;  // round to nearest, ties away (cvt.rna)
    u &= 0xffffe000u;
  }
  std::memcpy(&x, &u, 4);
  return x;
}
}  // namespace wmma
}  // namespace nvcuda

// ---- cp.async: the pipeline primitives of <cuda_pipeline.h> ----
// A copy reads global memory when issued but lands in shared memory only when the issuing thread
// waits for its batch (__pipeline_wait_prior); until then the destination holds garbage (0xFF:
// NaN as fp16 or float). So a read of the data before the wait (or before the barrier after it,
// under a varied schedule), a wait that leaves the needed batch in flight, or a copy into a buffer
// that other threads still read, gives wrong values here as it may on the device. Sizes and
// alignment are checked as the device requires; copies never waited for are an error at exit.
inline void __pipeline_memcpy_async(void* dst, const void* src, size_t size_and_align, size_t zfill = 0) {
  if (size_and_align != 4 && size_and_align != 8 && size_and_align != 16) emu::die("cp.async: size must be 4, 8 or 16");
  if (zfill > size_and_align) emu::die("cp.async: zero-fill larger than the copy");
  if (reinterpret_cast<uintptr_t>(dst) % size_and_align || reinterpret_cast<uintptr_t>(src) % size_and_align)
    emu::die("cp.async: source or destination not aligned to the copy size");
  emu::AsyncCopy c{static_cast<unsigned char*>(dst), {}, size_and_align, -1};
  std::memcpy(c.data, src, size_and_align - zfill);
  std::memset(c.data + (size_and_align - zfill), 0, zfill);
  std::memset(dst, 0xFF, size_and_align);
  emu::cur().copies.push_back(c);
}
inline void __pipeline_commit() {
  emu::Fiber& f = emu::cur();
  for (emu::AsyncCopy& c : f.copies)
    if (c.batch < 0) c.batch = f.batches;
  f.batches++;
}
// Lands every copy of the batches older than the `prior` most recent ones (uncommitted copies stay
// in flight, as with cp.async.wait_group).
inline void __pipeline_wait_prior(size_t prior) {
  emu::Fiber& f = emu::cur();
  std::vector<emu::AsyncCopy> still;
  for (const emu::AsyncCopy& c : f.copies) {
    if (c.batch >= 0 && c.batch < f.batches - (long)prior)
      std::memcpy(c.dst, c.data, c.n);
    else
      still.push_back(c);
  }
  f.copies.swap(still);
}

#define __CUDA_ARCH__ 900
