// The selection engine, part 3 (see select.cuh): row-vs-centre values (distances_from) and
// k-means (set_centroids, assign: a 64-row tile against every centroid with the argmin fused in,
// then the centre sums on the device).
#include "select.cuh"

namespace pp_cuda::sel {
namespace {

constexpr int kTile = 64;    // rows and centroids per assign tile
constexpr int kKChunk = 32;  // depth of one shared-memory step

__global__ void k_row_values(View v, Shape s, Centre c, long long self_gid, float* out) {
  const int lane = threadIdx.x & 31;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  for (long long r = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < v.count; r += warps) {
    const long long gid = view_global(v, r);
    const float x = warp_row_value(v, s, c, view_local(v, r), gid);
    if (lane == 0) out[r] = gid == self_gid ? (c.form == PP_FORM_SIMILARITY ? 1.f : 0.f) : x;
  }
}

// Centre sums: one thread per (cluster, column) adds the cluster's normalised rows to the running
// sum in ascending row order in float64 — the CPU engine's order, so the sums agree exactly. Rows come grouped by
// label (order/offsets built on the host from the labels). Bytes: one read of every row (1M ×
// 1024 fp16 = 2 GB, ~1 ms at HBM bandwidth) against ~3.6 s on one host thread.
__global__ void k_centre_sums(View v, Shape s, int total, const int* order, const long long* offsets, double* sums) {
  const long long c = blockIdx.x;
  const int col = blockIdx.y * blockDim.x + threadIdx.x;
  if (col >= total) return;
  int m = 0, off = 0;
  while (m < s.M && col >= off + s.dim[m]) off += s.dim[m++];
  const int t = col - off;
  double acc = sums[c * total + col];
  for (long long p = offsets[c]; p < offsets[c + 1]; ++p) {
    const long long r = order[p];
    acc += (double)(load_value(v.data[m], s.half[m], view_local(v, r) * s.dim[m] + t) * s.inv[m][view_global(v, r)]);
  }
  sums[c * total + col] = acc;
}

__global__ void __launch_bounds__(kThreads) k_assign(View v, Shape s, const float* centroids, const float* cnorm, int k,
                                                     int total, int* labels, float* dist) {
  __shared__ float As[kKChunk][kTile + 1];
  __shared__ float Bs[kKChunk][kTile + 1];
  __shared__ float Vs[kTile][kTile + 1];
  __shared__ float qinv[kMaxM][kTile];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const long long q0 = (long long)blockIdx.x * kTile;
  if (tid < kTile) {
    const long long q = q0 + tid;
    for (int m = 0; m < s.M; ++m) qinv[m][tid] = q < v.count ? s.inv[m][view_global(v, q)] : 0.f;
  }
  float best = INFINITY;
  int arg = -1;
  for (int c0 = 0; c0 < k; c0 += kTile) {
    const int cn = min(kTile, k - c0);
    float acc[4][4] = {};
    int off = 0;
    for (int m = 0; m < s.M; ++m) {
      const int K = s.dim[m];
      float dot[4][4] = {};
      for (int k0 = 0; k0 < K; k0 += kKChunk) {
        __syncthreads();
        for (int e = tid; e < kTile * kKChunk; e += kThreads) {
          const int row = e / kKChunk, kk = e % kKChunk;
          const long long kq = k0 + kk;
          float xa = 0.f, xb = 0.f;
          if (kq < K) {
            if (q0 + row < v.count) xa = load_value(v.data[m], s.half[m], view_local(v, q0 + row) * K + kq);
            if (row < cn) xb = centroids[(long long)(c0 + row) * total + off + kq];
          }
          As[kk][row] = xa;
          Bs[kk][row] = xb;
        }
        __syncthreads();
        for (int kk = 0; kk < kKChunk; ++kk)
          for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) dot[i][j] = fmaf(As[kk][ty + 16 * i], Bs[kk][tx + 16 * j], dot[i][j]);
      }
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] += dot[i][j] * qinv[m][ty + 16 * i];
      off += K;
    }
    __syncthreads();
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const int cj = tx + 16 * j;
        Vs[ty + 16 * i][cj] = cj < cn ? fmaxf(0.f, ((float)s.M - 2.f * acc[i][j]) + cnorm[c0 + cj]) : INFINITY;
      }
    __syncthreads();
    if (tid < kTile)
      for (int j = 0; j < cn; ++j)
        if (Vs[tid][j] < best) {
          best = Vs[tid][j];
          arg = c0 + j;
        }
  }
  if (tid < kTile && q0 + tid < v.count) {
    labels[q0 + tid] = arg;
    dist[q0 + tid] = best;
  }
}

}  // namespace
}  // namespace pp_cuda::sel

using namespace pp_cuda;
using namespace pp_cuda::sel;

extern "C" {

int pp_cuda_select_distances_from(pp_cuda_select* s, int64_t row, int form, double gamma, float* out, char* err,
                                  size_t err_len) {
  return guarded(err, err_len, [&] {
    check_cross_dims(s->dims, form, gamma);
    if (row < 0 || row >= s->rows) fail("distances_from: row out of range");
    std::vector<float> cvh((size_t)s->total);
    s->normalised_row(row, cvh.data());
    auto* cv = s->ws->get<float>(pp_cuda_select::kSlotA, (size_t)s->total);
    auto* dout = s->ws->get<float>(pp_cuda_select::kSlotB, (size_t)s->block_rows());
    s->upload(cv, cvh.data(), s->total * sizeof(float));
    Centre c{};
    c.cv = cv;
    c.form = form;
    c.gamma = (float)gamma;
    for (int m = 0; m < s->M; ++m) c.off[m] = s->offsets[m];
    for (long long b0 = 0; b0 < s->rows; b0 += s->block_rows()) {
      const long long n = std::min(s->block_rows(), s->rows - b0);
      const View v = s->range_view(b0, n);
      k_row_values<<<grid_for(n, kThreads / 32, 16 * s->sms), kThreads, 0, s->stream>>>(v, s->shape(), c, row, dout);
      check_launch("k_row_values");
      s->download(out + b0, dout, n * sizeof(float));
      s->sync();
    }
  });
}

int pp_cuda_select_set_centroids(pp_cuda_select* s, const float* c, int64_t k, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (k < 1) fail("set_centroids: k must be at least 1");
    std::vector<float> norms((size_t)k);
    for (int64_t j = 0; j < k; ++j) {
      double acc = 0;
      for (int t = 0; t < s->total; ++t) acc += (double)c[j * s->total + t] * c[j * s->total + t];
      norms[j] = (float)acc;
    }
    s->centroids.resize((size_t)k * s->total);
    s->cnorm.resize((size_t)k);
    s->upload(s->centroids.get(), c, (size_t)k * s->total * sizeof(float));
    s->upload(s->cnorm.get(), norms.data(), (size_t)k * sizeof(float));
    s->sync();
    s->k = (int)k;
  });
}

int pp_cuda_select_assign(pp_cuda_select* s, int64_t start, int64_t count, int32_t* labels, float* distances,
                          double* sums, double* counts, int64_t* changed, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (s->k < 1) fail("assign before setCentroids");
    if (start < 0 || count < 0 || start + count > s->rows) fail("assign: rows out of range");
    const long long block = std::max<long long>(kTile, s->block_rows());
    const size_t most = (size_t)std::max<long long>(1, std::min<long long>(block, count));
    auto* dl = s->ws->get<int>(pp_cuda_select::kSlotA, most);
    auto* dd = s->ws->get<float>(pp_cuda_select::kSlotB, most);
    std::vector<int32_t> fresh((size_t)count);
    for (long long b0 = 0; b0 < count; b0 += block) {
      const long long n = std::min(block, count - b0);
      const View v = s->range_view(start + b0, n);
      k_assign<<<(unsigned)ceil_div(n, kTile), kThreads, 0, s->stream>>>(v, s->shape(), s->centroids.get(), s->cnorm.get(), s->k,
                                                                         s->total, dl, dd);
      check_launch("k_assign");
      s->download(fresh.data() + b0, dl, n * sizeof(int));
      s->download(distances + b0, dd, n * sizeof(float));
      s->sync();
    }
    int64_t ch = 0;
    for (int64_t r = 0; r < count; ++r) {
      if (labels[r] != fresh[r]) ++ch;
      labels[r] = fresh[r];
    }
    *changed = ch;
    // Rows grouped by label, ascending within a cluster (the CPU engine's summation order).
    const int k = s->k;
    std::vector<long long> offs((size_t)k + 1, 0);
    for (int64_t r = 0; r < count; ++r) offs[labels[r] + 1]++;
    for (int c = 0; c < k; ++c) offs[c + 1] += offs[c];
    std::vector<int> order((size_t)std::max<int64_t>(1, count));
    {
      std::vector<long long> fill(offs.begin(), offs.end() - 1);
      for (int64_t r = 0; r < count; ++r) order[fill[labels[r]]++] = (int)r;
    }
    for (int c = 0; c < k; ++c) counts[c] += (double)(offs[c + 1] - offs[c]);
    if (s->resident) {
      auto* dorder = s->ws->get<int>(pp_cuda_select::kSlotC, order.size());
      auto* doffs = s->ws->get<long long>(pp_cuda_select::kSlotD, offs.size());
      auto* dsums = s->ws->get<double>(pp_cuda_select::kSlotE, (size_t)k * s->total);
      s->upload(dorder, order.data(), order.size() * sizeof(int));
      s->upload(doffs, offs.data(), offs.size() * sizeof(long long));
      s->upload(dsums, sums, (size_t)k * s->total * sizeof(double));
      const View v = s->range_view(start, count);
      k_centre_sums<<<dim3((unsigned)k, (unsigned)ceil_div(s->total, 128)), 128, 0, s->stream>>>(v, s->shape(), s->total, dorder,
                                                                                                  doffs, dsums);
      check_launch("k_centre_sums");
      std::vector<double> hs((size_t)k * s->total);
      s->download(hs.data(), dsums, hs.size() * sizeof(double));
      s->sync();
      std::copy(hs.begin(), hs.end(), sums);
    } else {
      // Streamed pools: the rows are on the host already.
      std::vector<float> u((size_t)s->total);
      for (int c = 0; c < k; ++c)
        for (long long p = offs[c]; p < offs[c + 1]; ++p) {
          s->normalised_row(start + order[p], u.data());
          for (int t = 0; t < s->total; ++t) sums[(size_t)c * s->total + t] += u[t];
        }
    }
  });
}

}  // extern "C"
