// The selection engine, part 2 (see select.cuh): pairwise reductions. One tiled kernel: a block
// owns 64 query rows and walks its share of the refs 64 at a time, computing the 64×64 dot tiles
// of every needed modality pair (raw values in shared memory; inverse norms applied afterwards,
// so fp16 inputs are used exactly — on tensor cores when every modality is fp16), turning them
// into metric values and folding them into per-query state (a sorted top-k list, a count, a
// min/max, a gain sum). Nothing N×N exists; the state is written back per launch so streamed
// ref blocks continue it, and the shares are merged on the host in order.
#include <mma.h>

#include "select.cuh"

namespace pp_cuda::sel {
namespace {

constexpr int kTile = 64;      // query rows and ref rows per tile
constexpr int kKChunk = 32;    // depth of one shared-memory step
constexpr int kHalfLd = kKChunk + 8;  // padded row length of the fp16 tiles (multiple of 8)
constexpr int kValueLd = kTile + 4;   // row length of the value tile (multiple of 4 for wmma stores)

struct PairArgs {
  View q, r;
  Shape s;
  int form;
  float gamma;
  int nterms;
  int tq[kMaxM * kMaxM], tr[kMaxM * kMaxM];  // multimodal terms (query modality, ref modality)
  int kind;
  int k;
  double radius;
  const unsigned char* mask;  // by global ref row, may be null
  const int* labels;          // by global row
  const float* cover;         // by global ref row
  int shares;
  // Per (query, share) state, continued across launches.
  float* knn;     // [nq * shares * k]
  int* knn_n;     // [nq * shares]
  double* val;    // [nq * shares]
};

__device__ void insert_sorted(float* best, int& filled, int k, float v) {
  if (filled == k && !(v < best[k - 1])) return;
  int p = filled < k ? filled++ : k - 1;
  while (p > 0 && best[p - 1] > v) {
    best[p] = best[p - 1];
    --p;
  }
  best[p] = v;
}

// dot[i][j] = ⟨x_q^mq, x_r^mr⟩ (raw values) for this thread's 4×4 outputs (query ty + 16i, ref
// tx + 16j) of the 64×64 tile. Called by the whole block; Vs may be used as scratch.
template <bool Wmma>
__device__ __forceinline__ void tile_dots(const PairArgs& a, int mq, int mr, int K, long long q0, long long nq, long long r0,
                                          int rn, float (*Vs)[kTile + 4], float (&dot)[4][4]) {
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  if constexpr (Wmma) {
    __shared__ __align__(32) __half Ah[kTile][kHalfLd];
    __shared__ __align__(32) __half Bh[kTile][kHalfLd];
    const int warp = tid / 32;
    const int fr = warp / 2, fc0 = (warp % 2) * 2;  // fragment row, first of two fragment columns
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc0, acc1;
    nvcuda::wmma::fill_fragment(acc0, 0.f);
    nvcuda::wmma::fill_fragment(acc1, 0.f);
    const __half* qd = static_cast<const __half*>(a.q.data[mq]);
    const __half* rd = static_cast<const __half*>(a.r.data[mr]);
    for (int k0 = 0; k0 < K; k0 += kKChunk) {
      for (int e = tid; e < kTile * kKChunk; e += kThreads) {
        const int row = e / kKChunk, kk = e % kKChunk;
        const long long kq = k0 + kk;
        __half xa = __float2half(0.f), xb = __float2half(0.f);
        if (kq < K) {
          if (q0 + row < nq) xa = qd[view_local(a.q, q0 + row) * K + kq];
          if (row < rn) xb = rd[view_local(a.r, r0 + row) * K + kq];
        }
        Ah[row][kk] = xa;
        Bh[row][kk] = xb;
      }
      __syncthreads();
#pragma unroll
      for (int ks = 0; ks < kKChunk; ks += 16) {
        nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __half, nvcuda::wmma::row_major> fa;
        nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __half, nvcuda::wmma::col_major> fb0, fb1;
        nvcuda::wmma::load_matrix_sync(fa, &Ah[fr * 16][ks], kHalfLd);
        nvcuda::wmma::load_matrix_sync(fb0, &Bh[fc0 * 16][ks], kHalfLd);
        nvcuda::wmma::load_matrix_sync(fb1, &Bh[(fc0 + 1) * 16][ks], kHalfLd);
        nvcuda::wmma::mma_sync(acc0, fa, fb0, acc0);
        nvcuda::wmma::mma_sync(acc1, fa, fb1, acc1);
      }
      __syncthreads();
    }
    nvcuda::wmma::store_matrix_sync(&Vs[fr * 16][fc0 * 16], acc0, kValueLd, nvcuda::wmma::mem_row_major);
    nvcuda::wmma::store_matrix_sync(&Vs[fr * 16][(fc0 + 1) * 16], acc1, kValueLd, nvcuda::wmma::mem_row_major);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) dot[i][j] = Vs[ty + 16 * i][tx + 16 * j];
    __syncthreads();
  } else
#endif
  {
  __shared__ float As[kKChunk][kTile + 1];
  __shared__ float Bs[kKChunk][kTile + 1];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) dot[i][j] = 0.f;
  for (int k0 = 0; k0 < K; k0 += kKChunk) {
    // 64 rows × 32 values per operand: 8 per thread, consecutive threads on consecutive values.
    for (int e = tid; e < kTile * kKChunk; e += kThreads) {
      const int row = e / kKChunk, kk = e % kKChunk;
      const long long kq = k0 + kk;
      float xa = 0.f, xb = 0.f;
      if (kq < K) {
        if (q0 + row < nq) xa = load_value(a.q.data[mq], a.s.half[mq], view_local(a.q, q0 + row) * K + kq);
        if (row < rn) xb = load_value(a.r.data[mr], a.s.half[mr], view_local(a.r, r0 + row) * K + kq);
      }
      As[kk][row] = xa;
      Bs[kk][row] = xb;
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kKChunk; ++kk) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) dot[i][j] = fmaf(av[i], bv[j], dot[i][j]);
    }
    __syncthreads();
  }
  }
}

// Tensor cores: 16×16×16 fp16 fragments, fp32 accumulation. The fp16 inputs go in unchanged (the
// inverse norms are applied to the fp32 dot afterwards), so products are exact.

// Wmma = all modalities fp16 on sm_70+: the dot tiles come from tensor cores, else from the
// CUDA-core FMA loop.
template <bool Wmma>
__global__ void __launch_bounds__(kThreads) k_pair(PairArgs a) {
  __shared__ __align__(32) float Vs[kTile][kValueLd];  // WMMA stores need 32-byte alignment
  __shared__ long long qgid[kTile], rgid[kTile];
  __shared__ float qinv[kMaxM][kTile], rinv[kMaxM][kTile];

  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const long long nq = a.q.count, nr = a.r.count;
  const long long q0 = (long long)blockIdx.x * kTile;
  const int share = blockIdx.y;
  const long long rtiles = (nr + kTile - 1) / kTile;
  const long long rt0 = share * rtiles / a.shares, rt1 = (share + 1) * rtiles / a.shares;

  // Per-query state lives with threads 0..63 for the whole launch.
  const long long my_q = q0 + tid;
  const bool owner = tid < kTile && my_q < nq;
  const long long slot = my_q * a.shares + share;
  float best[kKnnMax];
  int filled = 0;
  double value = 0;
  if (owner) {
    if (a.kind == PP_REDUCE_KNN_MEAN) {
      filled = a.knn_n[slot];
      for (int t = 0; t < filled; ++t) best[t] = a.knn[slot * a.k + t];
    } else {
      value = a.val[slot];
    }
  }
  if (tid < kTile) {
    const long long q = q0 + tid;
    qgid[tid] = q < nq ? view_global(a.q, q) : -1;
    for (int m = 0; m < a.s.M; ++m) qinv[m][tid] = q < nq ? a.s.inv[m][qgid[tid]] : 0.f;
  }

  const float self = a.kind == PP_REDUCE_KNN_MEAN ? INFINITY : (a.form == PP_FORM_SIMILARITY ? 1.f : 0.f);
  for (long long rt = rt0; rt < rt1; ++rt) {
    const long long r0 = rt * kTile;
    const int rn = (int)min((long long)kTile, nr - r0);
    __syncthreads();
    if (tid < kTile) {
      const long long r = r0 + tid;
      rgid[tid] = tid < rn ? view_global(a.r, r) : -1;
      for (int m = 0; m < a.s.M; ++m) rinv[m][tid] = tid < rn ? a.s.inv[m][rgid[tid]] : 0.f;
    }
    __syncthreads();

    float uni[4][4], cross[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) uni[i][j] = cross[i][j] = 0.f;
    const int nterms = a.form == PP_FORM_MULTIMODAL ? a.nterms : a.s.M;
    for (int term = 0; term < nterms; ++term) {
      const int mq = a.form == PP_FORM_MULTIMODAL ? a.tq[term] : term;
      const int mr = a.form == PP_FORM_MULTIMODAL ? a.tr[term] : term;
      const int K = a.s.dim[mq];
      float dot[4][4];
      tile_dots<Wmma>(a, mq, mr, K, q0, nq, r0, rn, Vs, dot);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float c = dot[i][j] * qinv[mq][ty + 16 * i] * rinv[mr][tx + 16 * j];
          if (a.form == PP_FORM_MULTIMODAL) {
            if (mq == mr)
              uni[i][j] += unit_distance(c);
            else
              cross[i][j] += unit_distance(c);
          } else {
            uni[i][j] += c;  // Σ_m cos_mm
          }
        }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int qi = ty + 16 * i, rj = tx + 16 * j;
        float v;
        if (a.form == PP_FORM_MULTIMODAL)
          v = a.gamma != 0.f ? uni[i][j] + a.gamma * cross[i][j] : uni[i][j];
        else if (a.form == PP_FORM_EUCLIDEAN)
          v = sqrtf(fmaxf(0.f, 2.f * a.s.M - 2.f * uni[i][j]));
        else
          v = (float)((1.0 + (double)uni[i][j] / a.s.M) / 2.0);
        if (qgid[qi] >= 0 && qgid[qi] == rgid[rj]) v = self;
        Vs[qi][rj] = v;
      }
    __syncthreads();

    if (owner) {
      const long long g = qgid[tid];
      for (int j = 0; j < rn; ++j) {
        const float v = Vs[tid][j];
        const long long rg = rgid[j];
        switch (a.kind) {
          case PP_REDUCE_KNN_MEAN:
            if (v != INFINITY) insert_sorted(best, filled, a.k, v);
            break;
          case PP_REDUCE_COUNT_WITHIN:
            if ((!a.mask || a.mask[rg]) && (double)v < a.radius) value += 1.0;
            break;
          case PP_REDUCE_MIN_OTHER_LABEL:
            if (a.labels[rg] != a.labels[g] && v < value) value = v;
            break;
          case PP_REDUCE_MAX:
            if (v > value) value = v;
            break;
          case PP_REDUCE_GAIN: {
            const float gd = v - a.cover[rg];
            if (gd > 0.f) value += (double)gd;
            break;
          }
        }
      }
    }
  }
  if (owner) {
    if (a.kind == PP_REDUCE_KNN_MEAN) {
      a.knn_n[slot] = filled;
      for (int t = 0; t < filled; ++t) a.knn[slot * a.k + t] = best[t];
    } else {
      a.val[slot] = value;
    }
  }
}

void launch_pair(const PairArgs& a, long long qtiles, bool half, cudaStream_t stream) {
  const dim3 grid((unsigned)qtiles, (unsigned)a.shares);
  if (half)
    k_pair<true><<<grid, kThreads, 0, stream>>>(a);
  else
    k_pair<false><<<grid, kThreads, 0, stream>>>(a);
  check_launch("k_pair");
}

bool all_half(const pp_cuda_select* s) {
  return std::all_of(s->half.begin(), s->half.end(), [](int h) { return h != 0; });
}

// Merges the per-share states of every query into out[] (in share order: deterministic).
void merge_shares(const PairArgs& a, long long nq, int64_t k, const std::vector<int>& hn, const std::vector<double>& hv,
                  const std::vector<float>& hk, double* out) {
  std::vector<float> merged((size_t)std::max<int64_t>(1, k));
  for (long long q = 0; q < nq; ++q) {
    const size_t s0 = (size_t)q * a.shares;
    if (a.kind == PP_REDUCE_KNN_MEAN) {
      int filled = 0;
      for (int sh = 0; sh < a.shares; ++sh)
        for (int t = 0; t < hn[s0 + sh]; ++t) {
          const float v = hk[(s0 + sh) * k + t];
          if (filled == k && !(v < merged[k - 1])) continue;
          int p = filled < k ? filled++ : (int)k - 1;
          while (p > 0 && merged[p - 1] > v) {
            merged[p] = merged[p - 1];
            --p;
          }
          merged[p] = v;
        }
      double sum = 0;
      for (int t = 0; t < filled; ++t) sum += merged[t];
      out[q] = filled ? sum / filled : INFINITY;
    } else if (a.kind == PP_REDUCE_COUNT_WITHIN || a.kind == PP_REDUCE_GAIN) {
      double sum = 0;
      for (int sh = 0; sh < a.shares; ++sh) sum += hv[s0 + sh];
      out[q] = sum;
    } else if (a.kind == PP_REDUCE_MIN_OTHER_LABEL) {
      double m = INFINITY;
      for (int sh = 0; sh < a.shares; ++sh) m = std::min(m, hv[s0 + sh]);
      out[q] = m;
    } else {
      double m = -INFINITY;
      for (int sh = 0; sh < a.shares; ++sh) m = std::max(m, hv[s0 + sh]);
      out[q] = m;
    }
  }
}

}  // namespace
}  // namespace pp_cuda::sel

using namespace pp_cuda;
using namespace pp_cuda::sel;

extern "C" int pp_cuda_select_pair_reduce(pp_cuda_select* s, const int32_t* query_idx, int64_t query_start, int64_t query_count,
                                          const int32_t* ref_idx, int64_t ref_start, int64_t ref_count, int form, double gamma,
                                          int kind, int64_t k, double radius, const uint8_t* ref_mask, const int32_t* labels,
                                          const float* cover, double* out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    if (kind < 0 || kind >= PP_REDUCTION_COUNT) fail("pair_reduce: unknown reduction " + std::to_string(kind));
    if (kind == PP_REDUCE_KNN_MEAN && (k < 1 || k > kKnnMax)) fail("knnMean on CUDA supports 1 ≤ k ≤ 128");
    check_cross_dims(s->dims, form, gamma);
    const long long nq = query_count, nr = ref_count;
    if (nq == 0) return;
    if (!s->resident && nq > s->stage_rows / 2) fail("streamed pool: too many queries in one call");
    PairArgs a{};
    a.s = s->shape();
    a.form = form;
    a.gamma = (float)gamma;
    if (form == PP_FORM_MULTIMODAL)
      for (int x = 0; x < s->M; ++x)
        for (int y = 0; y < s->M; ++y)
          if (x == y || gamma != 0) {
            a.tq[a.nterms] = x;
            a.tr[a.nterms] = y;
            ++a.nterms;
          }
    a.kind = kind;
    a.k = (int)k;
    a.radius = radius;
    const long long qtiles = ceil_div(nq, kTile);
    const long long rtiles_all = std::max<long long>(1, ceil_div(nr, kTile));
    a.shares = (int)std::min<long long>(rtiles_all, std::max<long long>(1, ceil_div(4LL * s->sms, qtiles)));
    const size_t rows = (size_t)s->rows, slots = (size_t)nq * a.shares;
    const long long half_rows = s->stage_rows / 2;
    const long long ref_block = s->resident ? nr : std::min<long long>(nr, half_rows);
    // Every scratch slot first (a later request may move an earlier one).
    Workspace& ws = *s->ws;
    auto* dmask = ref_mask ? ws.get<unsigned char>(pp_cuda_select::kSlotA, rows) : nullptr;
    auto* dlabels = labels ? ws.get<int>(pp_cuda_select::kSlotB, rows) : nullptr;
    auto* dcover = cover ? ws.get<float>(pp_cuda_select::kSlotC, rows) : nullptr;
    auto* qidx = ws.get<int>(pp_cuda_select::kSlotD, (size_t)nq);
    auto* ridx = ws.get<int>(pp_cuda_select::kSlotE, (size_t)std::max<long long>(1, ref_block));
    a.knn = kind == PP_REDUCE_KNN_MEAN ? ws.get<float>(pp_cuda_select::kSlotF, slots * k) : nullptr;
    a.knn_n = ws.get<int>(pp_cuda_select::kSlotG, slots);
    a.val = ws.get<double>(pp_cuda_select::kSlotH, slots);
    a.mask = dmask;
    a.labels = dlabels;
    a.cover = dcover;
    if (dmask) s->upload(dmask, ref_mask, rows);
    if (dlabels) s->upload(dlabels, labels, rows * sizeof(int));
    if (dcover) s->upload(dcover, cover, rows * sizeof(float));
    check(cudaMemsetAsync(a.knn_n, 0, slots * sizeof(int), s->stream), "cudaMemsetAsync");
    const double init = kind == PP_REDUCE_MIN_OTHER_LABEL ? INFINITY : kind == PP_REDUCE_MAX ? -INFINITY : 0.0;
    std::vector<double> hinit(slots, init);
    s->upload(a.val, hinit.data(), slots * sizeof(double));
    std::vector<int> qlist((size_t)nq);
    for (long long i = 0; i < nq; ++i) qlist[i] = query_idx ? query_idx[i] : (int)(query_start + i);
    s->upload(qidx, qlist.data(), nq * sizeof(int));

    if (s->resident) {
      a.q = query_idx ? s->index_view(query_idx, qidx, nq, nullptr) : s->range_view(query_start, nq);
      if (ref_idx) s->upload(ridx, ref_idx, nr * sizeof(int));
      a.r = ref_idx ? s->index_view(ref_idx, ridx, nr, nullptr) : s->range_view(ref_start, nr);
      launch_pair(a, qtiles, all_half(s), s->stream);
    } else {
      // Streamed: the queries are gathered into the second half of the staging buffers, the refs
      // stream through the first half block by block (every launch continues the state).
      std::vector<unsigned char*> first(s->M), second(s->M);
      for (int m = 0; m < s->M; ++m) {
        first[m] = s->stage[m].get();
        second[m] = first[m] + (size_t)half_rows * s->dims[m] * s->elem(m);
      }
      a.q = s->index_view(qlist.data(), qidx, nq, second.data());
      for (long long b0 = 0; b0 < nr; b0 += half_rows) {
        const long long n = std::min(half_rows, nr - b0);
        View rv{};
        if (ref_idx) {
          s->upload(ridx, ref_idx + b0, n * sizeof(int));
          rv = s->index_view(ref_idx + b0, ridx, n, first.data());
        } else {
          rv.start = ref_start + b0;
          rv.count = n;
          for (int m = 0; m < s->M; ++m) {
            const size_t rb = (size_t)s->dims[m] * s->elem(m);
            s->upload(first[m], static_cast<const unsigned char*>(s->host[m]) + (size_t)(ref_start + b0) * rb, (size_t)n * rb);
            rv.data[m] = first[m];
          }
        }
        a.r = rv;
        // The share count stays fixed across blocks (the state is indexed by it); shares beyond a
        // small block's tiles simply get no tiles.
        launch_pair(a, qtiles, all_half(s), s->stream);
        s->sync();  // the staging half is reused by the next block
      }
    }
    std::vector<int> hn(slots);
    std::vector<double> hv(slots);
    std::vector<float> hk;
    s->download(hn.data(), a.knn_n, slots * sizeof(int));
    s->download(hv.data(), a.val, slots * sizeof(double));
    if (kind == PP_REDUCE_KNN_MEAN) {
      hk.resize(slots * k);
      s->download(hk.data(), a.knn, slots * k * sizeof(float));
    }
    s->sync();
    merge_shares(a, nq, k, hn, hv, hk, out);
  });
}
