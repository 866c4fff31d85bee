// The selection engine, part 2 (see select.cuh): pairwise reductions. One tiled kernel: a block
// owns 64 query rows and walks its share of the refs 128 at a time, computing the dot tiles
// of every needed modality pair (raw values; inverse norms applied afterwards, so fp16 inputs are
// used exactly — on tensor cores when every modality is fp16), turning them into metric values
// in shared memory and folding them, one warp per query, into per-query state (a sorted top-k
// list, a count, a min/max, a gain sum). Nothing N×N exists; the state is written back per launch
// so streamed ref blocks continue it, and the shares are merged on the host in order.
#include "distance.cuh"
#include "select.cuh"

namespace pp_cuda::sel {
namespace {

// The tile is distance.cuh's (the one dot-product tile of the CUDA code): 64 queries × 128 refs,
// 256 threads, thread (warp ty, lane tx) owning queries 8·ty … 8·ty+7 and refs tx, tx+32, tx+64,
// tx+96. fp16 pools: tensor cores, operands staged by 16-byte cp.async into two buffers when every
// dim is a multiple of 8 (the copy of step c+1 overlaps the MMAs of step c, one barrier per step);
// fp32 and mixed pools: CUDA-core FMAs.
//
// Roofline (1M × 2 × 512 fp16, exact kNN density, γ = 0): N²·Σd·2 = 10¹²·1024·2 ≈ 2.0 PFLOP, on
// an H100 SXM (≈ 990 dense fp16 TFLOP/s) a 2.1 s floor from the tensor cores. A tile reads
// (64 + 128)·d·2 bytes of operands from L2 for 2·64·128·d FLOPs: 43 FLOP/byte (the old 64 × 64
// tile: 32), which with ~5.5 TB/s of L2 bandwidth caps it near 235 TFLOP/s (≈ 8.7 s; 64 × 64:
// ≈ 175 TFLOP/s, 11.7 s). HBM is not the limit: the blocks of one share walk the same refs
// together, so each ref tile comes from HBM about once per wave. Every pair value then costs one
// unit distance (sqrt) per term and one compare against the query's k-th best: ≈ 2·10¹² MUFU
// ops ≈ 0.6 s at 16/clk/SM. The old fold (one thread per query walking every value through a
// local-memory insertion sort, 64 of 256 threads busy) cost more than the GEMM; the warp-parallel
// fold below tests 32 values per warp instruction against the threshold and only inserts the rare
// survivors (≈ k·ln(N/k) per query in all).
constexpr int kPairQueries = 64;              // queries per tile
constexpr int kRowsPerThread = kPairQueries / 8;
constexpr int kWarps = kThreads / 32;
static_assert(kThreads == kTileThreads, "the pair kernel runs distance.cuh's tile");

// The tile's shared scratch: the operand staging (fp32, or two fp16 buffers) and the value tile
// are never live at once, so they share one array.
constexpr size_t pair_smem_bytes() {
  constexpr size_t value = sizeof(float) * kPairQueries * kResultStride;
  constexpr size_t half = 2 * sizeof(HalfTiles<kPairQueries>);
  constexpr size_t fma = sizeof(DotTiles<kPairQueries>);
  return value > half ? (value > fma ? value : fma) : (half > fma ? half : fma);
}

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
  float* knn;     // [nq * shares * k] sorted ascending, knn_n[] of them filled
  int* knn_n;     // [nq * shares]
  double* val;    // [nq * shares]
};

// Raw dots ⟨x_q^mq, x_r^mr⟩ of the tile, handed to emit(i, j, dot) for this thread's outputs
// (query 8·ty + i, ref tx + 32·j). qloc/rloc: local row of each tile row, −1 past the end. Called
// by the whole block, which must have synchronised since smem was last used; ends with a barrier.
template <bool Tensor, class Emit>
__device__ __forceinline__ void pair_dots(const PairArgs& a, int mq, int mr, unsigned char* smem, const long long* qloc,
                                          const long long* rloc, Emit emit) {
  const int K = a.s.dim[mq];
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  if constexpr (Tensor) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
    float* value = reinterpret_cast<float*>(smem);
    tile_dot_half_tc_rows<kPairQueries, true>(reinterpret_cast<HalfTiles<kPairQueries>*>(smem),
                                              IndexedRows<true>{a.q.data[mq], qloc, K}, IndexedRows<true>{a.r.data[mr], rloc, K},
                                              K, value);
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kTileColsPerThread; ++j) emit(i, j, value[(ty * kRowsPerThread + i) * kResultStride + tx + 32 * j]);
    __syncthreads();  // the next term stages over `value`
#endif
  } else {
    float acc[kRowsPerThread][kTileColsPerThread];
    DotTiles<kPairQueries>& s = *reinterpret_cast<DotTiles<kPairQueries>*>(smem);
    // Each operand's dtype: a mixed pool's cross terms pair an fp16 modality with an fp32 one.
    const bool hq = a.s.half[mq], hr = a.s.half[mr];
    if (hq && hr)
      tile_dot_rows<kPairQueries, false>(s, IndexedRows<true>{a.q.data[mq], qloc, K}, IndexedRows<true>{a.r.data[mr], rloc, K}, K, acc);
    else if (hq)
      tile_dot_rows<kPairQueries, false>(s, IndexedRows<true>{a.q.data[mq], qloc, K}, IndexedRows<false>{a.r.data[mr], rloc, K}, K, acc);
    else if (hr)
      tile_dot_rows<kPairQueries, false>(s, IndexedRows<false>{a.q.data[mq], qloc, K}, IndexedRows<true>{a.r.data[mr], rloc, K}, K, acc);
    else
      tile_dot_rows<kPairQueries, false>(s, IndexedRows<false>{a.q.data[mq], qloc, K}, IndexedRows<false>{a.r.data[mr], rloc, K}, K, acc);
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kTileColsPerThread; ++j) emit(i, j, acc[i][j]);
  }
}

__device__ __forceinline__ double warp_sum_double(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}
__device__ __forceinline__ float warp_min(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fminf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Folds one query's new values (v[c]: ref lane + 32·c; +∞ for none) into its sorted top-k list
// (global memory, this warp's alone) with the whole warp: a ballot finds the values below the
// current k-th best (tau), and only those are inserted, in ref order, each by a warp-wide rank
// (ballots over the list) and a parallel shift. fill and tau are warp-uniform.
__device__ __forceinline__ void knn_fold(float* list, int k, int& fill, float& tau, const float (&v)[kTileColsPerThread]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int c = 0; c < kTileColsPerThread; ++c) {
    unsigned cand = __ballot_sync(kFullMask, v[c] < tau);
    while (cand) {
      const int src = __ffs(cand) - 1;
      cand &= cand - 1;
      const float x = __shfl_sync(kFullMask, v[c], src);
      if (!(x < tau)) continue;  // an earlier insertion of this tile tightened tau
      int rank = 0;              // entries ≤ x: a prefix of the sorted list
      for (int t0 = 0; t0 < fill; t0 += 32) rank += __popc(__ballot_sync(kFullMask, t0 + lane < fill && list[t0 + lane] <= x));
      const int n = fill < k ? fill + 1 : k;
      float moved[kKnnMax / 32];
#pragma unroll
      for (int i = 0; i < kKnnMax / 32; ++i) {
        const int t = rank + 1 + lane + 32 * i;
        moved[i] = t < n ? list[t - 1] : 0.f;
      }
      __syncwarp();
#pragma unroll
      for (int i = 0; i < kKnnMax / 32; ++i) {
        const int t = rank + 1 + lane + 32 * i;
        if (t < n) list[t] = moved[i];
      }
      if (lane == 0) list[rank] = x;
      __syncwarp();
      fill = n;
      tau = n == k ? list[k - 1] : INFINITY;
    }
  }
}

// Tensor = every modality fp16 (tensor-core tiles), else CUDA-core FMA tiles.
template <bool Tensor>
__global__ void __launch_bounds__(kThreads) k_pair(PairArgs a) {
  constexpr int QT = kPairQueries, RT = kTileCols;
  __shared__ __align__(128) unsigned char tile_smem[pair_smem_bytes()];
  __shared__ long long qgid[QT], qloc[QT], rgid[RT], rloc[RT];
  __shared__ float qinv[kMaxM][QT], rinv[kMaxM][RT];
  __shared__ double qval[QT];
  __shared__ float qtau[QT];
  __shared__ int qfill[QT], qlabel[QT];
  float* value = reinterpret_cast<float*>(tile_smem);  // QT × kResultStride metric values

  const int tid = threadIdx.x, tx = tid % 32, ty = tid / 32, warp = ty, lane = tx;
  const long long nq = a.q.count, nr = a.r.count;
  const long long q0 = (long long)blockIdx.x * QT;
  const int share = blockIdx.y;
  const long long rtiles = (nr + RT - 1) / RT;
  const long long rt0 = share * rtiles / a.shares, rt1 = (share + 1) * rtiles / a.shares;
  const bool knn = a.kind == PP_REDUCE_KNN_MEAN;

  // Per-query state (continued from the previous launch).
  for (int t = tid; t < QT; t += kThreads) {
    const long long q = q0 + t, slot = q * a.shares + share;
    const bool in = q < nq;
    const long long g = in ? view_global(a.q, q) : -1;
    qgid[t] = g;
    qloc[t] = in ? view_local(a.q, q) : -1;
    for (int m = 0; m < a.s.M; ++m) qinv[m][t] = in ? a.s.inv[m][g] : 0.f;
    qlabel[t] = in && a.labels ? a.labels[g] : 0;
    if (in && knn) {
      qfill[t] = a.knn_n[slot];
      qtau[t] = qfill[t] == a.k ? a.knn[slot * a.k + a.k - 1] : INFINITY;
    } else if (in) {
      qval[t] = a.val[slot];
    }
  }

  const float self = knn ? INFINITY : (a.form == PP_FORM_SIMILARITY ? 1.f : 0.f);
  const int nterms = a.form == PP_FORM_MULTIMODAL ? a.nterms : a.s.M;
  for (long long rt = rt0; rt < rt1; ++rt) {
    const long long r0 = rt * RT;
    const int rn = (int)min((long long)RT, nr - r0);
    __syncthreads();  // the previous tile's fold is done with the value tile and the ref rows
    for (int t = tid; t < RT; t += kThreads) {
      const bool in = t < rn;
      const long long g = in ? view_global(a.r, r0 + t) : -1;
      rgid[t] = g;
      rloc[t] = in ? view_local(a.r, r0 + t) : -1;
      for (int m = 0; m < a.s.M; ++m) rinv[m][t] = in ? a.s.inv[m][g] : 0.f;
    }
    __syncthreads();

    // Σ over the terms: cosines (euclidean/similarity) or weighted unit distances (multimodal:
    // weight 1 on a modality's own term, γ on cross terms).
    float acc[kRowsPerThread][kTileColsPerThread];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kTileColsPerThread; ++j) acc[i][j] = 0.f;
    for (int term = 0; term < nterms; ++term) {
      const int mq = a.form == PP_FORM_MULTIMODAL ? a.tq[term] : term;
      const int mr = a.form == PP_FORM_MULTIMODAL ? a.tr[term] : term;
      const float w = mq == mr ? 1.f : a.gamma;
      pair_dots<Tensor>(a, mq, mr, tile_smem, qloc, rloc, [&](int i, int j, float dot) {
        const float c = dot * qinv[mq][ty * kRowsPerThread + i] * rinv[mr][tx + 32 * j];
        acc[i][j] += a.form == PP_FORM_MULTIMODAL ? w * unit_distance(c) : c;
      });
    }
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kTileColsPerThread; ++j) {
        const int qi = ty * kRowsPerThread + i, rj = tx + 32 * j;
        float v;
        if (a.form == PP_FORM_MULTIMODAL)
          v = acc[i][j];
        else if (a.form == PP_FORM_EUCLIDEAN)
          v = sqrtf(fmaxf(0.f, 2.f * a.s.M - 2.f * acc[i][j]));
        else
          v = (float)((1.0 + (double)acc[i][j] / a.s.M) / 2.0);
        if (qgid[qi] >= 0 && qgid[qi] == rgid[rj]) v = self;
        value[qi * kResultStride + rj] = v;
      }
    __syncthreads();

    // The fold: warp w takes queries w, w + 8, …; lane l the refs l, l + 32, l + 64, l + 96.
    for (int qi = warp; qi < QT; qi += kWarps) {
      if (qgid[qi] < 0) continue;  // warp-uniform
      float v[kTileColsPerThread];
      bool in[kTileColsPerThread];
#pragma unroll
      for (int c = 0; c < kTileColsPerThread; ++c) {
        in[c] = lane + 32 * c < rn;
        v[c] = in[c] ? value[qi * kResultStride + lane + 32 * c] : INFINITY;
      }
      switch (a.kind) {
        case PP_REDUCE_KNN_MEAN: {
          int fill = qfill[qi];
          float tau = qtau[qi];
          knn_fold(a.knn + ((q0 + qi) * a.shares + share) * a.k, a.k, fill, tau, v);
          if (lane == 0) qfill[qi] = fill, qtau[qi] = tau;
          break;
        }
        case PP_REDUCE_COUNT_WITHIN: {
          int n = 0;
#pragma unroll
          for (int c = 0; c < kTileColsPerThread; ++c)
            n += __popc(__ballot_sync(kFullMask, in[c] && (!a.mask || a.mask[rgid[lane + 32 * c]]) && (double)v[c] < a.radius));
          if (lane == 0) qval[qi] += n;
          break;
        }
        case PP_REDUCE_MIN_OTHER_LABEL: {
          float m = INFINITY;
#pragma unroll
          for (int c = 0; c < kTileColsPerThread; ++c)
            if (in[c] && a.labels[rgid[lane + 32 * c]] != qlabel[qi]) m = fminf(m, v[c]);
          m = warp_min(m);
          if (lane == 0 && m < qval[qi]) qval[qi] = m;
          break;
        }
        case PP_REDUCE_MAX: {
          float m = -INFINITY;
#pragma unroll
          for (int c = 0; c < kTileColsPerThread; ++c)
            if (in[c]) m = fmaxf(m, v[c]);
          m = warp_max(m);
          if (lane == 0 && m > qval[qi]) qval[qi] = m;
          break;
        }
        case PP_REDUCE_GAIN: {
          double g = 0;
#pragma unroll
          for (int c = 0; c < kTileColsPerThread; ++c) {
            const float gd = in[c] ? v[c] - a.cover[rgid[lane + 32 * c]] : 0.f;
            if (gd > 0.f) g += (double)gd;
          }
          g = warp_sum_double(g);  // a fixed tree: the same sum on every run
          if (lane == 0) qval[qi] += g;
          break;
        }
      }
    }
  }
  __syncthreads();
  for (int t = tid; t < QT; t += kThreads) {
    const long long q = q0 + t, slot = q * a.shares + share;
    if (q >= nq) continue;
    if (knn)
      a.knn_n[slot] = qfill[t];
    else
      a.val[slot] = qval[t];
  }
}

void launch_pair(const PairArgs& a, bool tensor, cudaStream_t stream) {
  const dim3 grid((unsigned)ceil_div(a.q.count, kPairQueries), (unsigned)a.shares);
  if (tensor)
    k_pair<true><<<grid, kThreads, 0, stream>>>(a);
  else
    k_pair<false><<<grid, kThreads, 0, stream>>>(a);
  check_launch("k_pair");
}

// Every modality fp16: the tensor-core tiles. (Their cp.async staging needs 16-byte aligned rows,
// which the tile checks: dims that are multiples of 8 on the resident arrays and staging halves,
// 256-byte aligned allocations or whole-row offsets into them.)
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
    const bool tensor = all_half(s);
    const long long qtiles = ceil_div(nq, kPairQueries);
    const long long rtiles_all = std::max<long long>(1, ceil_div(nr, kTileCols));
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
      launch_pair(a, tensor, s->stream);
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
        launch_pair(a, tensor, s->stream);
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
