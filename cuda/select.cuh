// The selection engine on the GPU (C ABI in api.h, semantics of native/core/select.h and
// src/backend/ops-select.ts): what its .cu files share. One file per op group:
//   select.cu         open/close, residency, prepare (inverse norms, bad rows, alignment, sums), gather
//   select_pair.cu    the tiled pairwise reductions (kNN density, counts, gains, …)
//   select_rows.cu    row-vs-centre values (distances_from) and k-means (set_centroids, assign)
//   select_greedy.cu  the greedy loop (MMCSAL, k-center, k-means++ seeding); on resident pools
//                     each pick is one launch of a captured CUDA graph
//
// * Residency. open() keeps the whole pool (every modality, its stored dtype) plus the per-row
//   state in device memory when it fits in what is free (counting what idle workspaces hold and
//   would give back); prepare() uploads the rows chunk by chunk. Otherwise the context runs
//   "streamed": rows stay in the caller's host arrays and every pass copies them through a
//   device staging buffer block by block. Per-row state (inverse norms, δ, owners, centres) is
//   device-resident in both modes. PAIRPICK_CUDA_STREAM_ROWS=<n> forces the streamed mode with
//   blocks of n rows (for tests). The streamed greedy δ update uploads only the rows of a block
//   that pruning cannot skip (select_greedy.cu, k_needed_rows).
// * Memory. The selection holds one workspace (pp_cuda::Workspace: its stream and cached scratch
//   buffers) for its lifetime; persistent arrays are stream-ordered allocations on that stream
//   (cudaMallocAsync/cudaFreeAsync), so growing or freeing them, and close() itself — which runs
//   on the JS thread and in the GC finalizer — never waits for the device.
// * Errors: pp_cuda::check / guarded (common.cuh); allocation failures are cleared so later
//   calls on the thread work.
//
// Limits: at most 8 modalities; knnMean k ≤ 128; cross-modal terms (multimodal, γ ≠ 0) need
// equal dims (checked here as well as in TypeScript: the kernels index one modality's rows with
// another's dim).
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "api.h"
#include "common.cuh"
#include "core/select.h"

namespace pp_cuda::sel {

constexpr int kMaxM = 8;
constexpr int kKnnMax = 128;
constexpr int kThreads = 256;

// A set of rows as kernels see it: row r's values are data[m] + (local ? local[r] : r) * dim[m];
// its global index (inverse norms, masks, labels, self tests) is global ? global[r] : start + r.
struct View {
  const void* data[kMaxM];
  const int* local;
  const int* global;
  long long start;
  long long count;
};

struct Shape {
  int M;
  int half[kMaxM];
  int dim[kMaxM];
  const float* inv[kMaxM];  // device, indexed by global row
};

// A normalised concatenated centre and the metric it is compared with.
struct Centre {
  const float* cv;
  int off[kMaxM];
  int form;
  float gamma;
};

__device__ __forceinline__ float load_value(const void* base, int half, long long index) {
  return half ? __half2float(static_cast<const __half*>(base)[index]) : static_cast<const float*>(base)[index];
}
__device__ __forceinline__ long long view_local(const View& v, long long r) { return v.local ? v.local[r] : r; }
__device__ __forceinline__ long long view_global(const View& v, long long r) { return v.global ? v.global[r] : v.start + r; }
__device__ __forceinline__ float unit_distance(float c) { return sqrtf(fmaxf(0.f, 2.f - 2.f * c)); }

// ⟨row, centre part⟩ over d values, this lane's share (a warp covers the row): 16-byte loads
// (8 fp16 or 4 fp32 values per lane per load, two loads in flight) when the row and the centre
// part are 16-byte aligned and d allows, else one value per lane per step.
//
// Roofline of the greedy δ update (the per-pick scan, k_update): 1M rows × 2 modalities × 512
// fp16 = 2 GB per unpruned pass and 2 FLOPs per 2 bytes — bandwidth-bound: at 3.35 TB/s (H100
// HBM3) the floor is 0.6 ms per pick; pruned rows cost 9 bytes (δ, owner, taken). One fp16 per
// lane per step (64 bytes per warp request, one in flight) reached ~10–20% of that; 16-byte
// lanes give full 512-byte warp requests and two in flight per lane.
__device__ __forceinline__ float lane_dot(const void* row, int half, int d, const float* cv) {
  const int lane = threadIdx.x & 31;
  float acc = 0.f;
  const bool aligned = ((reinterpret_cast<uintptr_t>(row) | reinterpret_cast<uintptr_t>(cv)) & 15) == 0;
  if (half && aligned && (d & 7) == 0) {
    const uint4* r4 = static_cast<const uint4*>(row);
    const float4* c4 = reinterpret_cast<const float4*>(cv);
    const int n = d / 8;
    float acc2 = 0.f;
    int t = lane;
    for (; t + 32 < n; t += 64) {
      const uint4 u0 = r4[t], u1 = r4[t + 32];
      const float4 a0 = c4[2 * t], b0 = c4[2 * t + 1], a1 = c4[2 * t + 64], b1 = c4[2 * t + 65];
      const __half2* h0 = reinterpret_cast<const __half2*>(&u0);
      const __half2* h1 = reinterpret_cast<const __half2*>(&u1);
      float2 f;
      f = __half22float2(h0[0]); acc = fmaf(f.x, a0.x, acc); acc = fmaf(f.y, a0.y, acc);
      f = __half22float2(h0[1]); acc = fmaf(f.x, a0.z, acc); acc = fmaf(f.y, a0.w, acc);
      f = __half22float2(h0[2]); acc = fmaf(f.x, b0.x, acc); acc = fmaf(f.y, b0.y, acc);
      f = __half22float2(h0[3]); acc = fmaf(f.x, b0.z, acc); acc = fmaf(f.y, b0.w, acc);
      f = __half22float2(h1[0]); acc2 = fmaf(f.x, a1.x, acc2); acc2 = fmaf(f.y, a1.y, acc2);
      f = __half22float2(h1[1]); acc2 = fmaf(f.x, a1.z, acc2); acc2 = fmaf(f.y, a1.w, acc2);
      f = __half22float2(h1[2]); acc2 = fmaf(f.x, b1.x, acc2); acc2 = fmaf(f.y, b1.y, acc2);
      f = __half22float2(h1[3]); acc2 = fmaf(f.x, b1.z, acc2); acc2 = fmaf(f.y, b1.w, acc2);
    }
    for (; t < n; t += 32) {
      const uint4 u0 = r4[t];
      const float4 a0 = c4[2 * t], b0 = c4[2 * t + 1];
      const __half2* h0 = reinterpret_cast<const __half2*>(&u0);
      float2 f;
      f = __half22float2(h0[0]); acc = fmaf(f.x, a0.x, acc); acc = fmaf(f.y, a0.y, acc);
      f = __half22float2(h0[1]); acc = fmaf(f.x, a0.z, acc); acc = fmaf(f.y, a0.w, acc);
      f = __half22float2(h0[2]); acc = fmaf(f.x, b0.x, acc); acc = fmaf(f.y, b0.y, acc);
      f = __half22float2(h0[3]); acc = fmaf(f.x, b0.z, acc); acc = fmaf(f.y, b0.w, acc);
    }
    return acc + acc2;
  }
  if (!half && aligned && (d & 3) == 0) {
    const float4* r4 = static_cast<const float4*>(row);
    const float4* c4 = reinterpret_cast<const float4*>(cv);
    const int n = d / 4;
    float acc2 = 0.f;
    int t = lane;
    for (; t + 32 < n; t += 64) {
      const float4 x0 = r4[t], x1 = r4[t + 32], a0 = c4[t], a1 = c4[t + 32];
      acc = fmaf(x0.x, a0.x, acc); acc = fmaf(x0.y, a0.y, acc); acc = fmaf(x0.z, a0.z, acc); acc = fmaf(x0.w, a0.w, acc);
      acc2 = fmaf(x1.x, a1.x, acc2); acc2 = fmaf(x1.y, a1.y, acc2); acc2 = fmaf(x1.z, a1.z, acc2); acc2 = fmaf(x1.w, a1.w, acc2);
    }
    for (; t < n; t += 32) {
      const float4 x0 = r4[t], a0 = c4[t];
      acc = fmaf(x0.x, a0.x, acc); acc = fmaf(x0.y, a0.y, acc); acc = fmaf(x0.z, a0.z, acc); acc = fmaf(x0.w, a0.w, acc);
    }
    return acc + acc2;
  }
  for (int t = lane; t < d; t += 32) acc = fmaf(load_value(row, half, t), cv[t], acc);
  return acc;
}

// Metric value of row (data at loc, global gid) against the centre; called by a whole warp, every
// lane gets the value.
__device__ __forceinline__ float warp_row_value(const View& v, const Shape& s, const Centre& c, long long loc, long long gid) {
  const int lane = threadIdx.x & 31;
  const bool cross = c.form == PP_FORM_MULTIMODAL && c.gamma != 0.f;
  float uni = 0.f, cr = 0.f, sum = 0.f;
  if (!cross) {
    // Diagonal terms only (euclidean, similarity, multimodal with γ = 0): one scalar accumulator
    // per modality, in registers.
    for (int m = 0; m < s.M; ++m) {
      const int d = s.dim[m];
      const void* row = static_cast<const unsigned char*>(v.data[m]) + (size_t)loc * d * (s.half[m] ? 2 : 4);
      const float cos = warp_sum(lane_dot(row, s.half[m], d, c.cv + c.off[m])) * s.inv[m][gid];
      if (c.form == PP_FORM_MULTIMODAL)
        uni += unit_distance(cos);
      else
        sum += cos;
    }
    if (c.form == PP_FORM_MULTIMODAL) return uni;
    if (c.form == PP_FORM_EUCLIDEAN) return sqrtf(fmaxf(0.f, 2.f * s.M - 2.f * sum));
    return (float)((1.0 + (double)sum / s.M) / 2.0);
  }
  for (int m = 0; m < s.M; ++m) {
    float acc[kMaxM];
    for (int r = 0; r < s.M; ++r) acc[r] = 0.f;
    const int d = s.dim[m];
    for (int t = lane; t < d; t += 32) {
      const float x = load_value(v.data[m], s.half[m], loc * d + t);
      for (int r = 0; r < s.M; ++r)
        if (r == m || cross) acc[r] = fmaf(x, c.cv[c.off[r] + t], acc[r]);
    }
    const float inv = s.inv[m][gid];
    for (int r = 0; r < s.M; ++r) {
      if (r != m && !cross) continue;
      const float cos = warp_sum(acc[r]) * inv;
      if (c.form == PP_FORM_MULTIMODAL) {
        if (r == m)
          uni += unit_distance(cos);
        else
          cr += unit_distance(cos);
      } else if (r == m) {
        sum += cos;
      }
    }
  }
  if (c.form == PP_FORM_MULTIMODAL) return cross ? uni + c.gamma * cr : uni;
  if (c.form == PP_FORM_EUCLIDEAN) return sqrtf(fmaxf(0.f, 2.f * s.M - 2.f * sum));
  return (float)((1.0 + (double)sum / s.M) / 2.0);
}

inline int grid_for(long long work, int per_block, int max_blocks = 65535) {
  return (int)std::max<long long>(1, std::min<long long>(max_blocks, (work + per_block - 1) / per_block));
}

// A device array owned by a selection: stream-ordered allocation on the selection's stream, so
// neither growth nor release waits for the device. Only grows; contents undefined after growth
// unless `keep` elements are asked to be kept.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(cudaStream_t stream = nullptr) : stream_(stream) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_), stream_(o.stream_), async_(o.async_) { o.p_ = nullptr, o.n_ = 0; }
  ~DeviceBuffer() { release(); }
  void bind(cudaStream_t stream) { stream_ = stream; }
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void resize(size_t count, size_t keep = 0) {
    if (count <= n_) return;
    T* fresh = nullptr;
    const size_t bytes = std::max<size_t>(1, count) * sizeof(T);
    bool async = true;
    cudaError_t status = cudaMallocAsync(reinterpret_cast<void**>(&fresh), bytes, stream_);
    if (status == cudaErrorNotSupported) {  // a device without memory pools: plain allocations
      cudaGetLastError();
      async = false;
      status = cudaMalloc(reinterpret_cast<void**>(&fresh), bytes);
    }
    check(status, "cudaMallocAsync");
    if (keep && p_) {
      cudaError_t copied = cudaMemcpyAsync(fresh, p_, keep * sizeof(T), cudaMemcpyDeviceToDevice, stream_);
      if (copied != cudaSuccess) async ? cudaFreeAsync(fresh, stream_) : cudaFree(fresh);
      check(copied, "cudaMemcpyAsync(D2D)");
    }
    release();
    p_ = fresh;
    n_ = count;
    async_ = async;
  }
  void release() {
    if (p_) async_ ? cudaFreeAsync(p_, stream_) : cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
  cudaStream_t stream_;
  bool async_ = true;
};

// Cross-modal terms compare modality a's rows with modality b's: only defined for equal dims.
void check_cross_dims(const std::vector<int>& dims, int form, double gamma);

// The greedy loop's per-pick counters, in device memory so that a captured pick reads the
// current values at every replay (select_greedy.cu): the step within the current call (index of
// picks/diversity/uniforms) and the id of the centre being added (how many centres exist).
struct PickCounter {
  int t;
  int id;
};

// A pick of the greedy loop captured as an executable CUDA graph, with the key of everything it
// bakes in (select_greedy.cu, pick_graph_key). Destroying it never waits for the device (a graph
// in flight is freed when it completes).
class PickGraph {
 public:
  PickGraph() = default;
  PickGraph(const PickGraph&) = delete;
  PickGraph& operator=(const PickGraph&) = delete;
  ~PickGraph() { reset(); }
  bool matches(const std::vector<uint64_t>& key) const { return exec_ && key == key_; }
  cudaGraphExec_t exec() const { return exec_; }
  void set(cudaGraphExec_t exec, std::vector<uint64_t> key) {
    reset();
    exec_ = exec;
    key_ = std::move(key);
  }
  void reset() {
    if (exec_) cudaGraphExecDestroy(exec_);
    exec_ = nullptr;
    key_.clear();
  }

 private:
  cudaGraphExec_t exec_ = nullptr;
  std::vector<uint64_t> key_;
};

}  // namespace pp_cuda::sel

// One pool opened for selection (api.h). Members are destroyed in reverse order: the workspace
// (and its stream) outlives every buffer allocated on it.
struct pp_cuda_select {
  using View = pp_cuda::sel::View;
  template <class T>
  using Buffer = pp_cuda::sel::DeviceBuffer<T>;

  std::unique_ptr<pp_cuda::Workspace> ws;  // stream + cached scratch slots (see kSlot*)
  cudaStream_t stream = nullptr;
  long long rows = 0;
  int M = 0;
  std::vector<int> dims, half, offsets;
  int total = 0;
  std::vector<const void*> host;  // caller's arrays
  bool resident = false;
  std::vector<Buffer<unsigned char>> dev;    // resident rows per modality
  std::vector<Buffer<unsigned char>> stage;  // streamed: a block of rows per modality
  long long stage_rows = 0;
  std::vector<Buffer<float>> inv;
  std::vector<std::vector<float>> inv_host;
  int sms = 1;

  // k-means
  Buffer<float> centroids, cnorm;
  int k = 0;

  // greedy
  bool g_ready = false;
  int g_form = PP_FORM_EUCLIDEAN;
  float g_gamma = 0.f;
  double g_w = 1;
  int g_mode = 0;
  bool g_has_base = false;
  Buffer<float> base, delta, cv, centres, cd, part_v, delta_max;
  Buffer<int> owner, pick, picks;
  Buffer<pp_cuda::sel::PickCounter> step;  // the per-pick counters the kernels read
  pp_cuda::sel::PickGraph pick_graph;      // resident pools: one pick, captured
  Buffer<int> need_slot, need_rows;  // streamed δ update: the rows pruning cannot skip (see k_needed_rows)
  Buffer<unsigned char> taken;
  Buffer<long long> part_i, argmax, sblock_first, sblock_last;
  Buffer<double> part_s, sblock_sums, uniforms;
  Buffer<float> div, div_max;
  long long g_count = 0;
  double g_slack = 2, g_margin = 0;

  // Scratch slots of the workspace (a call asks for all it needs before issuing work).
  enum Slot { kSlotA, kSlotB, kSlotC, kSlotD, kSlotE, kSlotF, kSlotG, kSlotH };

  size_t elem(int m) const { return half[m] ? 2 : 4; }
  size_t row_bytes() const {
    size_t b = 0;
    for (int m = 0; m < M; ++m) b += (size_t)dims[m] * elem(m);
    return b;
  }
  pp_cuda::sel::Shape shape() const;
  // Rows [start, start+count) as a View: the resident arrays, or a staged copy (streamed).
  View range_view(long long start, long long count);
  // Explicit rows as a View: device index list `dev_idx` (count entries, already uploaded) on
  // resident pools, a staged gather otherwise.
  View index_view(const int* host_idx, const int* dev_idx, long long count, unsigned char* const* stage_at);
  // Rows per pass over the pool: everything when resident, a staging block otherwise.
  long long block_rows() const { return resident ? rows : stage_rows; }
  // Row `row`'s normalised values (from the caller's arrays and the host copy of the norms).
  void normalised_row(long long row, float* out) const;
  void upload(void* dst, const void* src, size_t bytes) { pp_cuda::upload(*ws, dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) { pp_cuda::download(*ws, dst, src, bytes); }
  void sync() { ws->sync(); }
};
