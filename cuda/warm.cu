// The warm-start area on the GPU (C ABI in api.h, semantics of native/core/warm.h): a pool's
// gradient embeddings kept factorised on the device — r_i (classes floats) and x̂_i (blocks ·
// block_dim floats) per row — and k-means++ D² seeding over them with `steps` picks per call on
// the device: per pick the fused factorised D² to the new centre for every row, the running
// minimum, the per-block sums and the seeded draw; picks and distances come back once per call.
//
// The forward pass (p_i, r_i, Shapley scales, x̂_i) runs on the host (core/warm.h ForwardPass,
// called by cuda/warm_engine.cc): it is one pass per row, cheap next to B picks over the pool,
// and running the CPU code keeps the stored factors bit-identical to the cpu backend's.
//
// Same picks as the CPU engine, bit for bit: every float64 operation of its per-pick loop is
// repeated in the same order —
// * ⟨a, b⟩ in 8 float64 lanes (element j in lane j mod 8, lanes summed ((0+1)+(2+3))+((4+5)+(6+7))):
//   two threads per row, thread u holding lanes 4u…4u+3 (float4 loads), their halves added with
//   one shuffle (a + b = b + a exactly). Rows are stored padded with zeros to a multiple of 8
//   floats (16-byte aligned rows): adding +0 to a lane never changes it (a lane is never -0).
//   float × float is exact in float64, so fma equals the CPU's multiply-then-add;
// * D² = (‖g_i‖² + ‖g_c‖²) − (2a)·dx and the pruning bound with explicitly rounded operations
//   (mul_rn/sub_rn: nvcc would otherwise fuse them into FMAs, which round differently);
// * the per-block sums (kSampleBlockRows rows) added sequentially in row order by one thread
//   from shared memory, the blocks' totals sequentially, and the draw's walk sequentially — the
//   CPU loops, so the same uniform lands on the same row.
// The first pick (largest ‖g_i‖², before any centre) is found by the host from the norms it
// already holds; it is passed to the first sample_step.
//
// Residency: the factors and per-row state (‖g_i‖², ‖x̂_i‖, D², taken) must fit in device
// memory; open() reports when they do not and the engine then runs the CPU engine instead
// (warm_engine.cc). Bandwidth per pick: ~70 bytes a row for the per-row state and bounds, plus
// classes · 4 bytes for the rows past the first pruning level and blocks·block_dim · 4 for those
// past the second.
#include "select.cuh"  // DeviceBuffer: stream-ordered device arrays

#include "core/warm.h"

namespace pp_cuda::warm {
namespace {

using pp_cuda::sel::DeviceBuffer;

constexpr long long kBlockRows = pp::warm::kSampleBlockRows;
constexpr int kThreads = 256;
constexpr int kDrawThreads = 256;

// Operations nvcc must not contract into FMAs (the CPU engine rounds the product first).
__device__ __forceinline__ double mul_rn(double a, double b) {
#ifdef __CUDACC__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
__device__ __forceinline__ double sub_rn(double a, double b) {
#ifdef __CUDACC__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
__device__ __forceinline__ double add_rn(double a, double b) {
#ifdef __CUDACC__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

// This thread's half (lanes 4u…4u+3) of the 8-lane dot over n8 (a multiple of 8) padded values.
__device__ __forceinline__ double half_dot(const float* a, const float* b, int n8, int u) {
  const float4* a4 = reinterpret_cast<const float4*>(a);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  double l0 = 0, l1 = 0, l2 = 0, l3 = 0;
  for (int k = u; k < n8 / 4; k += 2) {
    const float4 p = a4[k], q = b4[k];
    l0 = fma((double)p.x, (double)q.x, l0);
    l1 = fma((double)p.y, (double)q.y, l1);
    l2 = fma((double)p.z, (double)q.z, l2);
    l3 = fma((double)p.w, (double)q.w, l3);
  }
  return add_rn(add_rn(l0, l1), add_rn(l2, l3));
}

// The whole 8-lane dot by one thread (dots()).
__device__ double full_dot(const float* a, const float* b, int n8) {
  double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int j = 0; j < n8; ++j) l[j & 7] = fma((double)a[j], (double)b[j], l[j & 7]);
  return add_rn(add_rn(add_rn(l[0], l[1]), add_rn(l[2], l[3])), add_rn(add_rn(l[4], l[5]), add_rn(l[6], l[7])));
}

struct Store {
  const float* r;  // rows × cp
  const float* x;  // rows × fp
  int cp, fp;      // padded row lengths (multiples of 8)
  long long rows;
  const double* norm2;
  const double* xnorm;
  // core/warm.h RowBounds per row and the prediction: the pruning that reads no r.
  const int* yhat;
  const double* rpos;
  const double* rtop;
  const double* rneg;
};

// D²(i) ← min(D²(i), ‖g_i − g_c‖²) for the centre c = *pick, the CPU engine's update() row by
// row, its exact pruning levels included: first from per-row scalars (no r or x̂ read: on
// isotropic data ~95 % of the rows stop there), then with a = ⟨r_i, r_c⟩. Pruning never changes
// a value, so it need not match the CPU's decisions bit for bit; D² itself does. Two threads per
// row; every lane of a warp runs the same number of loop trips, so the shuffles see the whole warp.
__global__ void __launch_bounds__(kThreads) k_update(Store s, int nonnegative, double margin_rel, const int* pick, double* mind,
                                                     const unsigned char* taken) {
  const int c = *pick;
  if (c < 0) return;
  const int u = threadIdx.x & 1;
  const double nc = s.norm2[c], xc = s.xnorm[c], gc = sqrt(nc);
  const double rpos_c = s.rpos[c], rtop_c = s.rtop[c], rneg_c = s.rneg[c];
  const int yhat_c = s.yhat[c];
  const float* rc = s.r + (long long)c * s.cp;
  const float* xcv = s.x + (long long)c * s.fp;
  const long long pairs = (long long)gridDim.x * (blockDim.x / 2);
  const long long warp_base = ((long long)blockIdx.x * blockDim.x + (threadIdx.x & ~31)) / 2;
  for (long long base = warp_base; base < s.rows; base += pairs) {
    const long long i = base + (threadIdx.x & 31) / 2;
    bool live = i < s.rows && !taken[i];
    if (live) {
      const double scale = s.norm2[i] + nc, margin = margin_rel * scale, m = mind[i];
      const bool same = s.yhat[i] == yhat_c;
      const double up = fmin(s.rpos[i] * rtop_c, rpos_c * s.rtop[i]) + (same ? s.rneg[i] * rneg_c : 0.0);
      const double reach = nonnegative ? fmax(up, 0.0) : fmax(fmax(up, 0.0), same ? 0.0 : -(s.rneg[i] * rtop_c + s.rtop[i] * rneg_c));
      if (scale - 2 * sqrt(s.norm2[i]) * gc - margin > m || scale - 2 * reach * s.xnorm[i] * xc - margin > m) live = false;
    }
    const double a_half = live ? half_dot(s.r + i * s.cp, rc, s.cp, u) : 0.0;
    const double a = add_rn(a_half, __shfl_xor_sync(kFullMask, a_half, 1));
    bool need = false;
    double scale = 0, m = 0;
    if (live) {
      m = mind[i];
      scale = add_rn(s.norm2[i], nc);
      const double clipped = nonnegative ? (a < 0.0 ? 0.0 : a) : fabs(a);  // std::max(a, 0.0), NaN kept
      const double bound = sub_rn(scale, mul_rn(mul_rn(mul_rn(2.0, clipped), s.xnorm[i]), xc));
      need = !(sub_rn(bound, mul_rn(margin_rel, scale)) > m);
    }
    const double x_half = need ? half_dot(s.x + i * s.fp, xcv, s.fp, u) : 0.0;
    const double dx = add_rn(x_half, __shfl_xor_sync(kFullMask, x_half, 1));
    if (need && u == 0) {
      double d = sub_rn(scale, mul_rn(mul_rn(2.0, a), dx));
      if (d < 0) d = 0;
      if (d < m) mind[i] = d;
    }
  }
}

// Per block of kBlockRows rows: the sum of D² over candidates in row order, the first candidate
// and the last candidate with D² > 0 (update()'s bookkeeping). Staged through shared memory so
// the sequential sum reads on-chip.
__global__ void __launch_bounds__(kThreads) k_block_sums(const double* mind, const unsigned char* taken, long long rows,
                                                         double* sums, long long* first_in, long long* last_pos_in) {
  __shared__ double sd[kBlockRows];
  __shared__ unsigned char st[kBlockRows];
  const long long r0 = (long long)blockIdx.x * kBlockRows;
  const int n = (int)(rows - r0 < kBlockRows ? rows - r0 : kBlockRows);
  for (int k = threadIdx.x; k < n; k += blockDim.x) {
    st[k] = taken[r0 + k];
    sd[k] = st[k] ? 0.0 : mind[r0 + k];
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  double sum = 0;
  long long first = -1, last = -1;
  for (int k = 0; k < n; ++k) {
    if (st[k]) continue;
    if (first < 0) first = r0 + k;
    if (sd[k] > 0) last = r0 + k;
    sum = add_rn(sum, sd[k]);
  }
  sums[blockIdx.x] = sum;
  first_in[blockIdx.x] = first;
  last_pos_in[blockIdx.x] = last;
}

// Step t's pick: `forced` (≥ 0: the host's largest-norm row) or the draw of u = uniforms[t]
// from the D² distribution (the CPU engine's draw()); records it (pick, D² at the pick, taken).
// A pick of -1 (no candidate left) ends the call: later steps do nothing.
__global__ void __launch_bounds__(kDrawThreads) k_draw(const double* mind, unsigned char* taken, long long rows, long long blocks,
                                                       const double* sums, const long long* first_in,
                                                       const long long* last_pos_in, const double* uniforms, int t,
                                                       int forced, int* pick, int* picks, double* distance2) {
  __shared__ double sd[kBlockRows];
  __shared__ unsigned char st[kBlockRows];
  __shared__ long long chosen;
  __shared__ double acc0, target;
  __shared__ long long last_positive;
  __shared__ int result;
  if (threadIdx.x == 0) {
    chosen = -1;
    if (t > 0 && picks[t - 1] < 0) {
      result = -1;
    } else if (forced >= 0) {
      result = forced;
    } else {
      long long first = -1;
      last_positive = -1;
      double total = 0;
      for (long long b = 0; b < blocks; ++b) {
        if (first < 0) first = first_in[b];
        if (last_pos_in[b] >= 0) last_positive = last_pos_in[b];
        total = add_rn(total, sums[b]);
      }
      if (first < 0) {
        result = -1;
      } else if (!(total > 0) || !isfinite(total)) {
        result = (int)first;
      } else {
        target = mul_rn(uniforms[t], total);
        double acc = 0;
        long long b = 0;
        for (; b < blocks; ++b) {
          if (add_rn(acc, sums[b]) > target) break;
          acc = add_rn(acc, sums[b]);
        }
        if (b == blocks) {
          result = (int)last_positive;
        } else {
          chosen = b;
          acc0 = acc;
        }
      }
    }
  }
  __syncthreads();
  if (chosen >= 0) {
    const long long r0 = chosen * kBlockRows;
    const int n = (int)(rows - r0 < kBlockRows ? rows - r0 : kBlockRows);
    for (int k = threadIdx.x; k < n; k += blockDim.x) {
      st[k] = taken[r0 + k];
      sd[k] = mind[r0 + k];
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      long long last_in_block = -1, hit = -1;
      double acc = acc0;
      for (int k = 0; k < n; ++k) {
        if (st[k]) continue;
        if (sd[k] > 0) last_in_block = r0 + k;
        acc = add_rn(acc, sd[k]);
        if (acc > target) {
          hit = r0 + k;
          break;
        }
      }
      result = (int)(hit >= 0 ? hit : last_in_block >= 0 ? last_in_block : last_positive);
    }
  }
  if (threadIdx.x == 0) {
    const int p = result;
    *pick = p;
    picks[t] = p;
    if (p >= 0) {
      distance2[t] = mind[p];
      taken[p] = 1;
    }
  }
}

// out[k] = ⟨r_a, r_b⟩ · ⟨x̂_a, x̂_b⟩, one thread per pair.
__global__ void k_dots(Store s, const int* a, const int* b, long long n, double* out) {
  for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += (long long)gridDim.x * blockDim.x) {
    const long long i = a[k], j = b[k];
    out[k] = mul_rn(full_dot(s.r + i * s.cp, s.r + j * s.cp, s.cp), full_dot(s.x + i * s.fp, s.x + j * s.fp, s.fp));
  }
}

__global__ void k_fill(double* p, long long n, double v) {
  for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += (long long)gridDim.x * blockDim.x) p[k] = v;
}

int grid_for(long long work, int per_block, int max_blocks) {
  return (int)std::max<long long>(1, std::min<long long>(max_blocks, (work + per_block - 1) / per_block));
}

long long pad8(long long n) { return (n + 7) / 8 * 8; }

}  // namespace
}  // namespace pp_cuda::warm

// One gradient store on the device. Members are destroyed in reverse order: the workspace (and
// its stream) outlives every buffer allocated on it.
struct pp_cuda_warm {
  template <class T>
  using Buffer = pp_cuda::sel::DeviceBuffer<T>;
  std::unique_ptr<pp_cuda::Workspace> ws;
  cudaStream_t stream = nullptr;
  long long rows = 0, classes = 0, features = 0, cp = 0, fp = 0, blocks = 0;
  int sms = 1;
  Buffer<float> r, x;
  Buffer<double> norm2, xnorm, mind, sums, distance2, uniforms, rpos, rtop, rneg;
  Buffer<int> yhat;
  Buffer<unsigned char> taken;
  Buffer<long long> first_in, last_pos_in;
  Buffer<int> pick, picks, pair_a, pair_b;
  Buffer<double> pair_out;
  bool nonnegative = true;

  pp_cuda::warm::Store store() const {
    return pp_cuda::warm::Store{r.get(), x.get(), (int)cp, (int)fp, rows, norm2.get(), xnorm.get(),
                                yhat.get(), rpos.get(), rtop.get(), rneg.get()};
  }
  void upload(void* dst, const void* src, size_t bytes) { pp_cuda::upload(*ws, dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) { pp_cuda::download(*ws, dst, src, bytes); }
  void sync() { ws->sync(); }
};

using namespace pp_cuda;
using namespace pp_cuda::warm;

extern "C" {

int pp_cuda_warm_open(int64_t rows, int64_t classes, int64_t features, pp_cuda_warm** out, char* err, size_t err_len) {
  *out = nullptr;
  return guarded(err, err_len, [&] {
    if (rows < 1 || rows > INT32_MAX || classes < 1 || features < 1) fail("gradient store: shape out of range");
    check(cudaSetDevice(0), "cudaSetDevice");
    const long long cp = pad8(classes), fp = pad8(features);
    const long long blocks = (rows + kBlockRows - 1) / kBlockRows;
    // Factors, per-row state (norm², ‖x̂‖, D², bounds, prediction, taken) and per-block state.
    const double need = (double)rows * (4.0 * (cp + fp) + 8 * 6 + 4 + 1) + (double)blocks * 24 + (1 << 20);
    size_t free_mem = 0, total_mem = 0;
    check(cudaMemGetInfo(&free_mem, &total_mem), "cudaMemGetInfo");
    if (need > 0.9 * (double)(free_mem + workspace_pool().idle_bytes())) return;  // does not fit: the caller runs the CPU engine
    if (need > 0.9 * (double)free_mem) trim_idle_workspaces();
    auto w = std::make_unique<pp_cuda_warm>();
    w->ws = workspace_pool().acquire();
    w->stream = w->ws->stream();
    w->rows = rows;
    w->classes = classes;
    w->features = features;
    w->cp = cp;
    w->fp = fp;
    w->blocks = blocks;
    w->sms = device_info().sms;
    for (auto* b : {&w->r, &w->x}) b->bind(w->stream);
    for (auto* b : {&w->norm2, &w->xnorm, &w->mind, &w->sums, &w->distance2, &w->uniforms, &w->pair_out, &w->rpos, &w->rtop, &w->rneg})
      b->bind(w->stream);
    w->taken.bind(w->stream);
    for (auto* b : {&w->first_in, &w->last_pos_in}) b->bind(w->stream);
    for (auto* b : {&w->pick, &w->picks, &w->pair_a, &w->pair_b, &w->yhat}) b->bind(w->stream);
    try {
      w->r.resize((size_t)(rows * cp));
      w->x.resize((size_t)(rows * fp));
      w->norm2.resize((size_t)rows);
      w->xnorm.resize((size_t)rows);
      w->mind.resize((size_t)rows);
      for (auto* b : {&w->rpos, &w->rtop, &w->rneg}) b->resize((size_t)rows);
      w->yhat.resize((size_t)rows);
      w->taken.resize((size_t)rows);
      w->sums.resize((size_t)blocks);
      w->first_in.resize((size_t)blocks);
      w->last_pos_in.resize((size_t)blocks);
      w->pick.resize(1);
    } catch (const OutOfMemory&) {
      return;  // lost a race for the memory: the caller runs the CPU engine
    }
    // The padding columns must read as zeros.
    if (cp != classes) check(cudaMemsetAsync(w->r.get(), 0, (size_t)(rows * cp) * sizeof(float), w->stream), "cudaMemsetAsync");
    if (fp != features) check(cudaMemsetAsync(w->x.get(), 0, (size_t)(rows * fp) * sizeof(float), w->stream), "cudaMemsetAsync");
    *out = w.release();
  });
}

// Never waits for the device: buffers are freed in stream order, the workspace goes back to the pool.
void pp_cuda_warm_close(pp_cuda_warm* w) {
  if (!w) return;
  std::unique_ptr<Workspace> ws = std::move(w->ws);
  delete w;
  if (ws) workspace_pool().release(std::move(ws));
}

int pp_cuda_warm_upload(pp_cuda_warm* w, int64_t start, int64_t count, const float* r, const float* x, const double* norm2,
                        const double* xnorm, const int32_t* pred, const double* rpos, const double* rtop,
                        const double* rneg, int nonnegative, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (start < 0 || count < 0 || start + count > w->rows) fail("gradient store: rows out of range");
    if (count == 0) return;
    check(cudaMemcpy2DAsync(w->r.get() + start * w->cp, w->cp * sizeof(float), r, w->classes * sizeof(float),
                            w->classes * sizeof(float), (size_t)count, cudaMemcpyHostToDevice, w->stream),
          "cudaMemcpy2DAsync(r)");
    check(cudaMemcpy2DAsync(w->x.get() + start * w->fp, w->fp * sizeof(float), x, w->features * sizeof(float),
                            w->features * sizeof(float), (size_t)count, cudaMemcpyHostToDevice, w->stream),
          "cudaMemcpy2DAsync(x)");
    w->upload(w->norm2.get() + start, norm2, (size_t)count * sizeof(double));
    w->upload(w->xnorm.get() + start, xnorm, (size_t)count * sizeof(double));
    w->upload(w->yhat.get() + start, pred, (size_t)count * sizeof(int));
    w->upload(w->rpos.get() + start, rpos, (size_t)count * sizeof(double));
    w->upload(w->rtop.get() + start, rtop, (size_t)count * sizeof(double));
    w->upload(w->rneg.get() + start, rneg, (size_t)count * sizeof(double));
    if (!nonnegative) w->nonnegative = false;
    w->sync();  // the caller's buffers are pageable and reused
  });
}

int pp_cuda_warm_dots(pp_cuda_warm* w, const int32_t* a, const int32_t* b, int64_t n, double* out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (n <= 0) return;
    for (int64_t k = 0; k < n; ++k)
      if (a[k] < 0 || a[k] >= w->rows || b[k] < 0 || b[k] >= w->rows) fail("gradient dots: row out of range");
    w->pair_a.resize((size_t)n);
    w->pair_b.resize((size_t)n);
    w->pair_out.resize((size_t)n);
    w->upload(w->pair_a.get(), a, (size_t)n * sizeof(int));
    w->upload(w->pair_b.get(), b, (size_t)n * sizeof(int));
    k_dots<<<grid_for(n, kThreads, 8 * w->sms), kThreads, 0, w->stream>>>(w->store(), w->pair_a.get(), w->pair_b.get(), n,
                                                                         w->pair_out.get());
    check_launch("k_dots");
    w->download(out, w->pair_out.get(), (size_t)n * sizeof(double));
    w->sync();
  });
}

int pp_cuda_warm_sample_init(pp_cuda_warm* w, const uint8_t* exclude, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    w->upload(w->taken.get(), exclude, (size_t)w->rows);
    k_fill<<<grid_for(w->rows, kThreads, 8 * w->sms), kThreads, 0, w->stream>>>(w->mind.get(), w->rows, INFINITY);
    check_launch("k_fill");
    w->sync();  // exclude is the caller's
  });
}

int pp_cuda_warm_sample_step(pp_cuda_warm* w, int64_t steps, const double* uniforms, int32_t first, int32_t* picks,
                             double* distance2, int64_t* made, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    *made = 0;
    if (steps <= 0) return;
    if (steps > INT32_MAX) fail("gradient sampling: too many steps in one call");
    if (!uniforms) fail("gradient sampling needs uniforms");
    if (first >= w->rows) fail("gradient sampling: first row out of range");
    w->uniforms.resize((size_t)steps);
    w->picks.resize((size_t)steps);
    w->distance2.resize((size_t)steps);
    w->upload(w->uniforms.get(), uniforms, (size_t)steps * sizeof(double));
    const Store store = w->store();
    const int update_blocks = grid_for(w->rows, kThreads / 2, 16 * w->sms);
    for (int64_t t = 0; t < steps; ++t) {
      k_draw<<<1, kDrawThreads, 0, w->stream>>>(w->mind.get(), w->taken.get(), w->rows, w->blocks, w->sums.get(),
                                                w->first_in.get(), w->last_pos_in.get(), w->uniforms.get(), (int)t,
                                                t == 0 ? first : -1, w->pick.get(), w->picks.get(),
                                                w->distance2.get());
      check_launch("k_draw");
      k_update<<<update_blocks, kThreads, 0, w->stream>>>(store, w->nonnegative ? 1 : 0, pp::warm::kPruneRelativeMargin,
                                                          w->pick.get(), w->mind.get(), w->taken.get());
      check_launch("k_update");
      k_block_sums<<<(unsigned)w->blocks, kThreads, 0, w->stream>>>(w->mind.get(), w->taken.get(), w->rows, w->sums.get(),
                                                                     w->first_in.get(), w->last_pos_in.get());
      check_launch("k_block_sums");
    }
    std::vector<int32_t> hp((size_t)steps);
    std::vector<double> hd((size_t)steps);
    w->download(hp.data(), w->picks.get(), (size_t)steps * sizeof(int));
    w->download(hd.data(), w->distance2.get(), (size_t)steps * sizeof(double));
    w->sync();
    int64_t n = 0;
    while (n < steps && hp[n] >= 0) {
      picks[n] = hp[n];
      distance2[n] = hd[n];
      ++n;
    }
    *made = n;
  });
}

}  // extern "C"
