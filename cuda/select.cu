// The selection engine, part 1 (see select.cuh): open/close and residency, prepare (inverse
// norms, non-finite rows, alignment, column sums), gather.
#include <cstdlib>

#include "select.cuh"

namespace pp_cuda::sel {

void check_cross_dims(const std::vector<int>& dims, int form, double gamma) {
  if (form != PP_FORM_MULTIMODAL || gamma == 0) return;
  for (size_t m = 1; m < dims.size(); ++m)
    if (dims[m] != dims[0])
      fail("cross-modal terms (multimodal form, gamma != 0) need modalities of equal dimension; got " +
           std::to_string(dims[0]) + " and " + std::to_string(dims[m]));
}

namespace {

struct InvOut {
  float* p[kMaxM];
};

// Inverse norms, non-finite rows, alignment: a warp per row.
__global__ void k_prepare(View v, Shape s, InvOut inv_out, unsigned long long* bad, float* alignment, int align) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  for (long long r = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < v.count; r += warps) {
    const long long loc = view_local(v, r), gid = view_global(v, r);
    float invs[kMaxM];
    for (int m = 0; m < s.M; ++m) {
      double ss = 0;
      int finite = 1;
      for (int t = lane; t < s.dim[m]; t += 32) {
        const float x = load_value(v.data[m], s.half[m], loc * s.dim[m] + t);
        if (!isfinite(x)) finite = 0;
        ss += (double)x * x;
      }
      for (int o = 16; o; o >>= 1) ss += __shfl_xor_sync(kFullMask, ss, o);
      finite = __all_sync(kFullMask, finite);
      const float inv = finite && ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.f;
      invs[m] = inv;
      if (lane == 0) {
        inv_out.p[m][gid] = inv;
        if (!finite) atomicMin(&bad[m], (unsigned long long)gid);
      }
    }
    if (align) {
      const int d = s.dim[0];
      double acc = 0;
      for (int a = 0; a < s.M; ++a)
        for (int b = a + 1; b < s.M; ++b) {
          double dot = 0;
          for (int t = lane; t < d; t += 32)
            dot += (double)(load_value(v.data[a], s.half[a], loc * d + t) * invs[a]) *
                   (double)(load_value(v.data[b], s.half[b], loc * d + t) * invs[b]);
          for (int o = 16; o; o >>= 1) dot += __shfl_xor_sync(kFullMask, dot, o);
          acc += (float)dot;
        }
      if (lane == 0) alignment[r] = (float)(acc / (s.M * (s.M - 1) / 2.0));
    }
  }
}

constexpr long long kSumChunk = 2048;  // rows per partial column sum

// Partial sums over a chunk of rows of the normalised values, one column per thread:
// part[chunk * total + col]. No atomics: the chunks are added in order by k_add_partials, so the
// sums do not depend on the order blocks run in.
__global__ void k_colsums(View v, Shape s, int total, double* part) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= total) return;
  int m = 0, off = 0;
  while (m < s.M && col >= off + s.dim[m]) off += s.dim[m++];
  const int t = col - off;
  const long long r0 = (long long)blockIdx.y * kSumChunk;
  const long long r1 = min(v.count, r0 + kSumChunk);
  double acc = 0;
  for (long long r = r0; r < r1; ++r) {
    const long long loc = view_local(v, r), gid = view_global(v, r);
    acc += (double)(load_value(v.data[m], s.half[m], loc * s.dim[m] + t) * s.inv[m][gid]);
  }
  part[(long long)blockIdx.y * total + col] = acc;
}

__global__ void k_add_partials(const double* part, int chunks, int total, double* sums) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= total) return;
  double acc = sums[col];
  for (int c = 0; c < chunks; ++c) acc += part[(long long)c * total + col];
  sums[col] = acc;
}

// Bytes a resident pool needs besides its rows: per-row state (inverse norms, δ, owner, taken,
// base, labels/masks of a reduction), the centres kept for pruning, and tile scratch.
size_t state_bytes(long long rows, int M, int total) {
  const long long cap = std::min<long long>(pp::sel::prune_center_cap(rows), pp::sel::kPruneMaxCenterBytes / (4LL * total) + 1);
  return (size_t)rows * (4 * M + 4 + 4 + 1 + 4 + 4 + 4) + (size_t)cap * total * 4;
}

}  // namespace
}  // namespace pp_cuda::sel

using namespace pp_cuda;
using namespace pp_cuda::sel;

Shape pp_cuda_select::shape() const {
  Shape s{};
  s.M = M;
  for (int m = 0; m < M; ++m) {
    s.half[m] = half[m];
    s.dim[m] = dims[m];
    s.inv[m] = inv[m].get();
  }
  return s;
}

View pp_cuda_select::range_view(long long start, long long count) {
  View v{};
  v.start = start;
  v.count = count;
  for (int m = 0; m < M; ++m) {
    if (resident) {
      v.data[m] = dev[m].get() + (size_t)start * dims[m] * elem(m);
    } else {
      if (count > stage_rows) fail("internal: staged block larger than the staging buffer");
      upload(stage[m].get(), static_cast<const unsigned char*>(host[m]) + (size_t)start * dims[m] * elem(m), (size_t)count * dims[m] * elem(m));
      v.data[m] = stage[m].get();
    }
  }
  return v;
}

View pp_cuda_select::index_view(const int* host_idx, const int* dev_idx, long long count, unsigned char* const* stage_at) {
  View v{};
  v.count = count;
  v.global = dev_idx;
  if (resident) {
    v.local = dev_idx;
    for (int m = 0; m < M; ++m) v.data[m] = dev[m].get();
    return v;
  }
  for (int m = 0; m < M; ++m) {
    const size_t rb = (size_t)dims[m] * elem(m);
    std::vector<unsigned char> buf((size_t)count * rb);
    for (long long r = 0; r < count; ++r)
      std::memcpy(buf.data() + r * rb, static_cast<const unsigned char*>(host[m]) + (size_t)host_idx[r] * rb, rb);
    upload(stage_at[m], buf.data(), buf.size());
    sync();  // buf is pageable and about to go away
    v.data[m] = stage_at[m];
  }
  return v;
}

void pp_cuda_select::normalised_row(long long row, float* out) const {
  for (int m = 0; m < M; ++m) {
    const float inv_r = inv_host[m][(size_t)row];
    for (int t = 0; t < dims[m]; ++t) {
      const size_t at = (size_t)row * dims[m] + t;
      const float x = half[m] ? __half2float(__ushort_as_half(static_cast<const unsigned short*>(host[m])[at]))
                              : static_cast<const float*>(host[m])[at];
      out[offsets[m] + t] = x * inv_r;
    }
  }
}

extern "C" {

int pp_cuda_select_open(int64_t rows, int modalities, const int64_t* dims, const int* half, const void* const* data,
                        pp_cuda_select** out, char* err, size_t err_len) {
  *out = nullptr;
  return guarded(err, err_len, [&] {
    if (modalities < 1 || modalities > kMaxM) fail("the CUDA selection engine supports 1 to 8 modalities");
    check(cudaSetDevice(0), "cudaSetDevice");
    // Owned from the start: a throw below frees whatever was created (stream included).
    auto s = std::make_unique<pp_cuda_select>();
    s->ws = workspace_pool().acquire();
    s->stream = s->ws->stream();
    s->rows = rows;
    s->M = modalities;
    size_t bytes = 0;
    for (int m = 0; m < modalities; ++m) {
      if (dims[m] < 1 || dims[m] > (1 << 20)) fail("modality dimension out of range");
      s->dims.push_back((int)dims[m]);
      s->half.push_back(half[m] ? 1 : 0);
      s->offsets.push_back(s->total);
      s->total += (int)dims[m];
      s->host.push_back(data[m]);
      bytes += (size_t)rows * dims[m] * (half[m] ? 2 : 4);
    }
    s->sms = device_info().sms;
    for (auto* b : {&s->centroids, &s->cnorm, &s->base, &s->delta, &s->cv, &s->centres, &s->cd, &s->part_v, &s->delta_max,
                    &s->div, &s->div_max})
      b->bind(s->stream);
    for (auto* b : {&s->owner, &s->pick, &s->picks, &s->need_slot, &s->need_rows}) b->bind(s->stream);
    s->taken.bind(s->stream);
    for (auto* b : {&s->part_i, &s->argmax, &s->sblock_first, &s->sblock_last}) b->bind(s->stream);
    for (auto* b : {&s->part_s, &s->sblock_sums, &s->uniforms}) b->bind(s->stream);
    s->inv_host.assign(modalities, std::vector<float>((size_t)rows, 0.f));
    for (int m = 0; m < modalities; ++m) {
      s->inv.emplace_back(s->stream);
      s->inv[m].resize((size_t)std::max<int64_t>(1, rows));
    }
    // Resident when the rows and the state fit in what is free plus what idle workspaces hold
    // (given back first when needed), with 10% to spare.
    size_t free_mem = 0, total_mem = 0;
    check(cudaMemGetInfo(&free_mem, &total_mem), "cudaMemGetInfo");
    const size_t need = bytes + bytes / 16 + state_bytes(rows, modalities, s->total) + (size_t(1) << 20);  // + tile scratch
    const size_t reclaimable = workspace_pool().idle_bytes() + s->ws->held_bytes();
    s->resident = (double)need <= 0.9 * (double)(free_mem + reclaimable);
    // PAIRPICK_CUDA_STREAM_ROWS=<n>: stream every pool in blocks of n rows (tests of the streamed mode).
    const char* forced = std::getenv("PAIRPICK_CUDA_STREAM_ROWS");
    const long long forced_rows = forced ? std::atoll(forced) : 0;
    if (forced_rows > 0) s->resident = false;
    if (s->resident && need > 0.9 * free_mem) {
      trim_idle_workspaces();
      s->ws->free_all();
    }
    if (s->resident) {
      try {
        for (int m = 0; m < modalities; ++m) {
          s->dev.emplace_back(s->stream);
          s->dev[m].resize((size_t)rows * dims[m] * (half[m] ? 2 : 4));
        }
      } catch (const OutOfMemory&) {
        s->dev.clear();
        s->resident = false;
      }
    }
    if (!s->resident) {
      check(cudaMemGetInfo(&free_mem, &total_mem), "cudaMemGetInfo");
      // Staging blocks of ~1/8 of free memory over all modalities.
      s->stage_rows = std::max<long long>(64, std::min<long long>(rows, (long long)(free_mem / 8 / s->row_bytes())));
      if (forced_rows > 0) s->stage_rows = std::max<long long>(64, forced_rows);
      for (int m = 0; m < modalities; ++m) {
        s->stage.emplace_back(s->stream);
        s->stage[m].resize((size_t)s->stage_rows * dims[m] * (half[m] ? 2 : 4));
      }
    }
    *out = s.release();
  });
}

// Never waits for the device: the buffers are freed in stream order and the workspace goes back
// to the pool (the next user's work on its stream runs after these frees).
void pp_cuda_select_close(pp_cuda_select* s) {
  if (!s) return;
  std::unique_ptr<Workspace> ws = std::move(s->ws);
  delete s;
  if (ws) workspace_pool().release(std::move(ws));
}

int pp_cuda_select_prepare(pp_cuda_select* s, int64_t start, int64_t count, int64_t* bad_rows, float* alignment,
                           double* sums, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    const bool align = alignment && s->M >= 2 && std::all_of(s->dims.begin(), s->dims.end(), [&](int d) { return d == s->dims[0]; });
    const long long block = s->block_rows();
    const long long chunks = ceil_div(std::min<long long>(block, std::max<int64_t>(1, count)), kSumChunk);
    auto* bad = s->ws->get<unsigned long long>(pp_cuda_select::kSlotA, s->M);
    auto* dsums = s->ws->get<double>(pp_cuda_select::kSlotB, s->total);
    auto* dalign = s->ws->get<float>(pp_cuda_select::kSlotC, (size_t)std::max<int64_t>(1, count));
    auto* part = s->ws->get<double>(pp_cuda_select::kSlotD, (size_t)chunks * s->total);
    std::vector<unsigned long long> none(s->M, ~0ull);
    s->upload(bad, none.data(), s->M * sizeof(unsigned long long));
    check(cudaMemsetAsync(dsums, 0, s->total * sizeof(double), s->stream), "cudaMemsetAsync");
    const Shape shape = s->shape();
    InvOut inv_out{};
    for (int m = 0; m < s->M; ++m) inv_out.p[m] = s->inv[m].get();
    for (long long b0 = 0; b0 < count; b0 += block) {
      const long long n = std::min<long long>(block, count - b0);
      if (s->resident)
        for (int m = 0; m < s->M; ++m) {
          const size_t off = (size_t)(start + b0) * s->dims[m] * s->elem(m);
          s->upload(s->dev[m].get() + off, static_cast<const unsigned char*>(s->host[m]) + off, (size_t)n * s->dims[m] * s->elem(m));
        }
      const View v = s->range_view(start + b0, n);
      k_prepare<<<grid_for(n, kThreads / 32, 16 * s->sms), kThreads, 0, s->stream>>>(v, shape, inv_out, bad, dalign + b0, align ? 1 : 0);
      check_launch("k_prepare");
      const unsigned cols = (unsigned)ceil_div(s->total, 256);
      const int nchunks = (int)ceil_div(n, kSumChunk);
      k_colsums<<<dim3(cols, (unsigned)nchunks), 256, 0, s->stream>>>(v, shape, s->total, part);
      check_launch("k_colsums");
      k_add_partials<<<cols, 256, 0, s->stream>>>(part, nchunks, s->total, dsums);
      check_launch("k_add_partials");
      if (!s->resident) s->sync();  // the staging buffer is reused
    }
    std::vector<unsigned long long> hb(s->M);
    s->download(hb.data(), bad, s->M * sizeof(unsigned long long));
    s->download(sums, dsums, s->total * sizeof(double));
    if (align) s->download(alignment, dalign, (size_t)count * sizeof(float));
    for (int m = 0; m < s->M; ++m) s->download(s->inv_host[m].data() + start, s->inv[m].get() + start, (size_t)count * sizeof(float));
    s->sync();
    for (int m = 0; m < s->M; ++m) bad_rows[m] = hb[m] == ~0ull ? -1 : (int64_t)hb[m];
  });
}

// Small (centres, re-seeds): normalised on the host from the caller's rows and the norms.
int pp_cuda_select_gather(pp_cuda_select* s, const int32_t* idx, int64_t n, float* out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    for (int64_t a = 0; a < n; ++a) s->normalised_row(idx[a], out + a * s->total);
  });
}

}  // extern "C"
