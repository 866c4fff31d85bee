// CPU selection engine: see select.h. Everything here is fp32 arithmetic with fp64 sums where
// they decide a pick (gains, Σδ², scores), multi-threaded with pp::parallel_for over fixed-size
// work items (so results never depend on the thread count or timing), with AVX2/FMA variants of
// the two hot loops (the GEMM micro-kernel and the row-vs-centre dot products).
#include "core/select.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/matmul.h"
#include "core/parallel.h"
#include "core/simd.h"

namespace pp::sel {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int64_t kQB = 192;  // query rows per tile
constexpr int64_t kRB = 256;  // ref rows per tile
constexpr int64_t kRowGrain = 1024;  // rows per work item of the row passes (fixed: results never depend on threads)

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------------------------
// Dot tiles of the pair passes go through the project's GEMM (core/matmul.h).

// C[qn × rn] (row stride kRB) (+)= A·Bᵀ for dense row-major A (qn × K) and B (rn × K).
void dot_tile(const float* a, const float* b, int64_t qn, int64_t rn, int64_t K, float* c, bool accumulate) {
  GemmArgs g;
  g.m = qn;
  g.n = rn;
  g.k = K;
  g.a = a;
  g.lda = K;
  g.b = b;
  g.trans_b = true;
  g.ldb = K;
  g.c = c;
  g.ldc = kRB;
  g.accumulate = accumulate;
  gemm_serial(g);  // the pair passes are already parallel over tiles
}

// ---------------------------------------------------------------------------------------------
// Row-vs-vectors dot products (the greedy step's memory-bound pass).

// out[v] = Σ_t row[t] · vecs[v][t] for nvec ≤ 4 vectors; row is fp32 or fp16.
void dots_scalar(const void* row, bool half, int64_t dim, const float* const* vecs, int nvec, float* out) {
  float acc[4] = {0, 0, 0, 0};
  if (half) {
    const uint16_t* r = static_cast<const uint16_t*>(row);
    for (int64_t t = 0; t < dim; ++t) {
      const float x = half_to_float(r[t]);
      for (int v = 0; v < nvec; ++v) acc[v] += x * vecs[v][t];
    }
  } else {
    const float* r = static_cast<const float*>(row);
    for (int64_t t = 0; t < dim; ++t)
      for (int v = 0; v < nvec; ++v) acc[v] += r[t] * vecs[v][t];
  }
  for (int v = 0; v < nvec; ++v) out[v] = acc[v];
}

#ifdef PP_SIMD_X86
// Four independent accumulators per vector (32 values per step) so the FMA latency chain does not
// bound the loop: the greedy pass then runs at memory speed.
PP_AVX2 void dots_avx2(const void* row, bool half, int64_t dim, const float* const* vecs, int nvec, float* out) {
  __m256 acc[4][4];
  for (int v = 0; v < 4; ++v)
    for (int u = 0; u < 4; ++u) acc[v][u] = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 32 <= dim; t += 32) {
    const __m256 x0 = load8(row, half, t), x1 = load8(row, half, t + 8), x2 = load8(row, half, t + 16), x3 = load8(row, half, t + 24);
    for (int v = 0; v < nvec; ++v) {
      const float* w = vecs[v] + t;
      acc[v][0] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(w), acc[v][0]);
      acc[v][1] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(w + 8), acc[v][1]);
      acc[v][2] = _mm256_fmadd_ps(x2, _mm256_loadu_ps(w + 16), acc[v][2]);
      acc[v][3] = _mm256_fmadd_ps(x3, _mm256_loadu_ps(w + 24), acc[v][3]);
    }
  }
  for (; t + 8 <= dim; t += 8) {
    const __m256 x = load8(row, half, t);
    for (int v = 0; v < nvec; ++v) acc[v][0] = _mm256_fmadd_ps(x, _mm256_loadu_ps(vecs[v] + t), acc[v][0]);
  }
  for (int v = 0; v < nvec; ++v)
    out[v] = hsum(_mm256_add_ps(_mm256_add_ps(acc[v][0], acc[v][1]), _mm256_add_ps(acc[v][2], acc[v][3])));
  for (; t < dim; ++t) {
    const float x = half ? half_to_float(static_cast<const uint16_t*>(row)[t]) : static_cast<const float*>(row)[t];
    for (int v = 0; v < nvec; ++v) out[v] += x * vecs[v][t];
  }
}

// AVX-512: 16-wide, two accumulators per vector, the tail by masked loads.
PP_AVX512 inline __m512 load16_masked(const void* row, bool half, int64_t at, __mmask16 live) {
  if (half) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(live, static_cast<const uint16_t*>(row) + at));
  return _mm512_maskz_loadu_ps(live, static_cast<const float*>(row) + at);
}

PP_AVX512 void dots_avx512(const void* row, bool half, int64_t dim, const float* const* vecs, int nvec, float* out) {
  __m512 acc[4][2];
  for (int v = 0; v < 4; ++v) acc[v][0] = acc[v][1] = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + 32 <= dim; t += 32) {
    const __m512 x0 = load16_masked(row, half, t, 0xFFFF), x1 = load16_masked(row, half, t + 16, 0xFFFF);
    for (int v = 0; v < nvec; ++v) {
      acc[v][0] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(vecs[v] + t), acc[v][0]);
      acc[v][1] = _mm512_fmadd_ps(x1, _mm512_loadu_ps(vecs[v] + t + 16), acc[v][1]);
    }
  }
  for (; t < dim; t += 16) {
    const __mmask16 live = dim - t >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (dim - t)) - 1);
    const __m512 x = load16_masked(row, half, t, live);
    for (int v = 0; v < nvec; ++v) acc[v][0] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(live, vecs[v] + t), acc[v][0]);
  }
  for (int v = 0; v < nvec; ++v) out[v] = _mm512_reduce_add_ps(_mm512_add_ps(acc[v][0], acc[v][1]));
}
#endif

using DotsFn = void (*)(const void*, bool, int64_t, const float* const*, int, float*);

DotsFn dots_kernel() {
#ifdef PP_SIMD_X86
  if (cpu_has_avx512()) return dots_avx512;
  if (cpu_has_avx2()) return dots_avx2;
#endif
  return dots_scalar;
}

// ---------------------------------------------------------------------------------------------
// k-means assignment: the nearest centre of each query row of a tile of dots g (row stride kRB),
// d_j = max(0, (M − 2·g_j) + ‖c_j‖²), fused with the running (best, arg) of the row: a strictly
// smaller d wins, so on ties the lowest centre index (the blocks come in ascending order). Every
// level evaluates d with the same operations (2·g is exact, so a fused M − 2g rounds alike).

using ArgminFn = void (*)(const float* g, int64_t qn, int64_t cn, float M, const float* norms, int32_t c0, float* best,
                          int32_t* arg);

void argmin_scalar(const float* g, int64_t qn, int64_t cn, float M, const float* norms, int32_t c0, float* best,
                   int32_t* arg) {
  for (int64_t q = 0; q < qn; ++q) {
    const float* gq = g + q * kRB;
    for (int64_t j = 0; j < cn; ++j) {
      const float d = std::max(0.f, (M - 2.f * gq[j]) + norms[j]);
      if (d < best[q]) {
        best[q] = d;
        arg[q] = c0 + static_cast<int32_t>(j);
      }
    }
  }
}

#ifdef PP_SIMD_X86
PP_AVX2 void argmin_avx2(const float* g, int64_t qn, int64_t cn, float M, const float* norms, int32_t c0, float* best,
                         int32_t* arg) {
  const __m256 vm = _mm256_set1_ps(M), two = _mm256_set1_ps(2.f), zero = _mm256_setzero_ps();
  const __m256i step = _mm256_set1_epi32(8), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int64_t c8 = cn / 8 * 8;
  for (int64_t q = 0; q < qn; ++q) {
    const float* gq = g + q * kRB;
    __m256 vb = _mm256_set1_ps(std::numeric_limits<float>::infinity());
    __m256i vi = _mm256_set1_epi32(-1), idx = lane;
    for (int64_t j = 0; j < c8; j += 8, idx = _mm256_add_epi32(idx, step)) {
      // max(x, 0) returns 0 for a NaN x, as std::max(0.f, x) does
      const __m256 d = _mm256_max_ps(_mm256_add_ps(_mm256_sub_ps(vm, _mm256_mul_ps(two, _mm256_loadu_ps(gq + j))), _mm256_loadu_ps(norms + j)), zero);
      const __m256 lt = _mm256_cmp_ps(d, vb, _CMP_LT_OQ);
      vb = _mm256_blendv_ps(vb, d, lt);
      vi = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(vi), _mm256_castsi256_ps(idx), lt));
    }
    alignas(32) float lb[8];
    alignas(32) int32_t li[8];
    _mm256_store_ps(lb, vb);
    _mm256_store_si256(reinterpret_cast<__m256i*>(li), vi);
    float b = best[q];
    int32_t a = arg[q];
    // lanes hold the first minimum of their residue class; the lowest index among equal minima wins
    float m = lb[0];
    int32_t mi = li[0];
    for (int l = 1; l < 8; ++l) {
      if (lb[l] < m || (lb[l] == m && li[l] >= 0 && (mi < 0 || li[l] < mi))) {
        m = lb[l];
        mi = li[l];
      }
    }
    if (mi >= 0 && m < b) {
      b = m;
      a = c0 + mi;
    }
    for (int64_t j = c8; j < cn; ++j) {
      const float d = std::max(0.f, (M - 2.f * gq[j]) + norms[j]);
      if (d < b) {
        b = d;
        a = c0 + static_cast<int32_t>(j);
      }
    }
    best[q] = b;
    arg[q] = a;
  }
}

PP_AVX512 void argmin_avx512(const float* g, int64_t qn, int64_t cn, float M, const float* norms, int32_t c0,
                             float* best, int32_t* arg) {
  const __m512 vm = _mm512_set1_ps(M), two = _mm512_set1_ps(2.f), zero = _mm512_setzero_ps();
  const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  const __m512i step = _mm512_set1_epi32(16);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t q = 0; q < qn; ++q) {
    const float* gq = g + q * kRB;
    __m512 vb = inf;
    __m512i vi = _mm512_set1_epi32(std::numeric_limits<int32_t>::max()), idx = lane;
    for (int64_t j = 0; j < cn; j += 16, idx = _mm512_add_epi32(idx, step)) {
      const __mmask16 live = cn - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (cn - j)) - 1);
      const __m512 gj = _mm512_maskz_loadu_ps(live, gq + j), nj = _mm512_maskz_loadu_ps(live, norms + j);
      const __m512 d = _mm512_max_ps(_mm512_add_ps(_mm512_sub_ps(vm, _mm512_mul_ps(two, gj)), nj), zero);
      const __mmask16 lt = _mm512_mask_cmp_ps_mask(live, d, vb, _CMP_LT_OQ);
      vb = _mm512_mask_mov_ps(vb, lt, d);
      vi = _mm512_mask_mov_epi32(vi, lt, idx);
    }
    const float m = _mm512_reduce_min_ps(vb);
    if (m < best[q]) {  // some lane improved: its lowest index among the minima
      best[q] = m;
      arg[q] = c0 + _mm512_mask_reduce_min_epi32(_mm512_cmp_ps_mask(vb, _mm512_set1_ps(m), _CMP_EQ_OQ), vi);
    }
  }
}
#endif

ArgminFn argmin_kernel() {
#ifdef PP_SIMD_X86
  if (cpu_has_avx512()) return argmin_avx512;
  if (cpu_has_avx2()) return argmin_avx2;
#endif
  return argmin_scalar;
}

// ---------------------------------------------------------------------------------------------
// Metric values from cosines (scalar; the same operation order as src/backend/js/select.ts).

inline float unit_distance(float c) { return std::sqrt(std::max(0.f, 2.f - 2.f * c)); }

// cos[a*M + b] = ⟨z_i^a, z_j^b⟩ (cross entries only read for the multimodal form with γ > 0).
float value_from_cos(const float* cos, int M, const Metric& metric) {
  if (metric.form == PP_FORM_MULTIMODAL) {
    float uni = 0.f, cross = 0.f;
    const bool with_cross = metric.gamma != 0;
    for (int a = 0; a < M; ++a)
      for (int b = 0; b < M; ++b) {
        if (a != b && !with_cross) continue;
        const float e = unit_distance(cos[a * M + b]);
        if (a == b)
          uni += e;
        else
          cross += e;
      }
    return with_cross ? uni + static_cast<float>(metric.gamma) * cross : uni;
  }
  float sum = 0.f;
  for (int a = 0; a < M; ++a) sum += cos[a * M + a];
  if (metric.form == PP_FORM_EUCLIDEAN) return std::sqrt(std::max(0.f, 2.f * M - 2.f * sum));
  return static_cast<float>((1.0 + static_cast<double>(sum) / M) / 2.0);
}

inline float self_value(const Metric& m) { return m.form == PP_FORM_SIMILARITY ? 1.f : 0.f; }

// ---------------------------------------------------------------------------------------------

struct Term {
  int q, r;  // modality of the query side and of the ref side
};

constexpr int64_t kTileStride = kQB * kRB;

#ifdef PP_SIMD_X86
// The vectorised twin of CpuSelection::tile_values (same operations and order, 8 refs at a time;
// sqrt is correctly rounded in both).
PP_AVX2 void tile_values_avx2(const Metric& metric, const std::vector<Term>& terms, const float* g, int64_t q, int64_t rn,
                              float* v, int M) {
  const __m256 zero = _mm256_setzero_ps(), two = _mm256_set1_ps(2.f);
  int64_t j = 0;
  if (metric.form == PP_FORM_MULTIMODAL) {
    const bool cross = metric.gamma != 0;
    const __m256 gamma = _mm256_set1_ps(static_cast<float>(metric.gamma));
    for (; j + 8 <= rn; j += 8) {
      __m256 uni = zero, cr = zero;
      for (size_t t = 0; t < terms.size(); ++t) {
        const __m256 c = _mm256_loadu_ps(g + t * kTileStride + q * kRB + j);
        const __m256 e = _mm256_sqrt_ps(_mm256_max_ps(zero, _mm256_sub_ps(two, _mm256_mul_ps(two, c))));
        if (terms[t].q == terms[t].r)
          uni = _mm256_add_ps(uni, e);
        else
          cr = _mm256_add_ps(cr, e);
      }
      _mm256_storeu_ps(v + j, cross ? _mm256_add_ps(uni, _mm256_mul_ps(gamma, cr)) : uni);
    }
    for (; j < rn; ++j) {
      float uni = 0.f, cr = 0.f;
      for (size_t t = 0; t < terms.size(); ++t) {
        const float e = std::sqrt(std::max(0.f, 2.f - 2.f * g[t * kTileStride + q * kRB + j]));
        if (terms[t].q == terms[t].r)
          uni += e;
        else
          cr += e;
      }
      v[j] = cross ? uni + static_cast<float>(metric.gamma) * cr : uni;
    }
  } else if (metric.form == PP_FORM_EUCLIDEAN) {
    const __m256 twoM = _mm256_set1_ps(2.f * M);
    for (; j + 8 <= rn; j += 8) {
      const __m256 c = _mm256_loadu_ps(g + q * kRB + j);
      _mm256_storeu_ps(v + j, _mm256_sqrt_ps(_mm256_max_ps(zero, _mm256_sub_ps(twoM, _mm256_mul_ps(two, c)))));
    }
    for (; j < rn; ++j) v[j] = std::sqrt(std::max(0.f, 2.f * M - 2.f * g[q * kRB + j]));
  } else {
    for (; j < rn; ++j) v[j] = static_cast<float>((1.0 + static_cast<double>(g[q * kRB + j]) / M) / 2.0);
  }
}

// Indices j < rn with v[j] < threshold, as a bit mask per 8 lanes (the kNN filter).
PP_AVX2 int below_mask8(const float* v, float threshold) {
  return _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v), _mm256_set1_ps(threshold), _CMP_LT_OQ));
}
#endif

// Per-query partial state of a reduction over one share of the refs.
struct Partial {
  float* best = nullptr;  // knn: k sorted values
  int64_t filled = 0;     // knn
  double value = 0;       // count / min / max / gain
  int64_t arg = -1;       // min with argmin (internal)
};

constexpr int kMinArg = 100;  // internal reduction: min over refs with its position in the ref set

class CpuSelection final : public Selection {
 public:
  CpuSelection(int64_t rows, const std::vector<Modality>& mods) : rows_(rows), mods_(mods), M_(static_cast<int>(mods.size())) {
    if (M_ < 1) throw Error(PP_E_SHAPE, "selection needs at least one modality");
    int64_t off = 0;
    for (const auto& m : mods_) {
      if (m.dim < 1) throw Error(PP_E_SHAPE, "selection: a modality has dimension 0");
      offsets_.push_back(off);
      dims_.push_back(m.dim);
      off += m.dim;
      max_dim_ = std::max(max_dim_, m.dim);
    }
    total_ = off;
    inv_.assign(M_, std::vector<float>(static_cast<size_t>(rows_), 0.f));
    dots_ = dots_kernel();
    avx2_ = cpu_has_avx2();
  }

  // ---- prepare ----
  void prepare(int64_t start, int64_t count, int64_t* bad_rows, float* alignment, double* sums) override {
    check_range(start, count);
    const int64_t items = ceil_div(count, 1024);
    std::vector<double> part(static_cast<size_t>(items * total_), 0.0);
    std::vector<int64_t> bad(static_cast<size_t>(items * M_), -1);
    const bool align = alignment != nullptr && M_ >= 2 && std::all_of(dims_.begin(), dims_.end(), [&](int64_t d) { return d == dims_[0]; });
    parallel_for(items, 1, [&](int64_t b, int64_t e) {
      std::vector<float> tmp(static_cast<size_t>(max_dim_)), u(static_cast<size_t>(total_));
      for (int64_t it = b; it < e; ++it) {
        double* ps = part.data() + it * total_;
        const int64_t r0 = start + it * 1024, r1 = std::min(start + count, r0 + 1024);
        for (int64_t i = r0; i < r1; ++i) {
          for (int m = 0; m < M_; ++m) {
            const float* x = row(m, i, tmp.data());
            double ss = 0;
            bool finite = true;
            for (int64_t t = 0; t < dims_[m]; ++t) {
              const float v = x[t];
              if (!std::isfinite(v)) finite = false;
              ss += static_cast<double>(v) * v;
            }
            if (!finite && bad[it * M_ + m] < 0) bad[it * M_ + m] = i;
            const float inv = finite && ss > 0 ? static_cast<float>(1.0 / std::sqrt(ss)) : 0.f;
            inv_[m][i] = inv;
            float* um = u.data() + offsets_[m];
            for (int64_t t = 0; t < dims_[m]; ++t) um[t] = x[t] * inv;
          }
          for (int64_t t = 0; t < total_; ++t) ps[t] += u[t];
          if (align) {
            const int64_t d = dims_[0];
            double acc = 0;
            for (int a = 0; a < M_; ++a)
              for (int b2 = a + 1; b2 < M_; ++b2) {
                double dot = 0;
                for (int64_t t = 0; t < d; ++t) dot += static_cast<double>(u[a * d + t]) * u[b2 * d + t];
                acc += static_cast<float>(dot);
              }
            alignment[i - start] = static_cast<float>(acc / (M_ * (M_ - 1) / 2.0));
          }
        }
      }
    });
    for (int m = 0; m < M_; ++m) {
      bad_rows[m] = -1;
      for (int64_t it = 0; it < items; ++it)
        if (bad[it * M_ + m] >= 0) {
          bad_rows[m] = bad[it * M_ + m];
          break;
        }
    }
    for (int64_t t = 0; t < total_; ++t) {
      double s = 0;
      for (int64_t it = 0; it < items; ++it) s += part[it * total_ + t];
      sums[t] = s;
    }
  }

  // ---- blocked pairwise reductions ----
  void pair_reduce(const RowSet& queries, const RowSet& refs, const Metric& metric, const Reduction& red,
                   double* out) override {
    // Exact kNN of every row against the whole pool, asked for in consecutive query ranges (the
    // density pass): each pair is computed once and feeds both rows' lists (see Sym).
    const bool whole = red.kind == PP_REDUCE_KNN_MEAN && !queries.idx && !refs.idx && refs.start == 0 && refs.count == rows_;
    const int64_t k = std::max<int64_t>(1, red.k);
    if (whole && rows_ * k * 4 <= kSymMaxBytes) {
      const bool same = sym_.form == metric.form && sym_.gamma == metric.gamma && sym_.k == k;
      if (queries.start == 0) {
        sym_.form = metric.form;
        sym_.gamma = metric.gamma;
        sym_.k = k;
        sym_.best.assign(static_cast<size_t>(rows_ * k), kInf);
        sym_.filled.assign(static_cast<size_t>(rows_), 0);
        sym_.next = 0;
      }
      if ((queries.start == 0 || same) && queries.start == sym_.next) {
        sym_.end = queries.start + queries.count;
        reduce(queries, RowSet{nullptr, queries.start, rows_ - queries.start}, metric, red, out, nullptr, &sym_);
        sym_.next = sym_.end;
        if (sym_.next == rows_) {
          sym_.best.clear();
          sym_.best.shrink_to_fit();
          sym_.filled.clear();
          sym_.filled.shrink_to_fit();
          sym_.k = 0;
        }
        return;
      }
    }
    reduce(queries, refs, metric, red, out, nullptr);
  }

  void distances_from(int64_t row_index, const Metric& metric, float* out) override {
    check_range(row_index, 1);
    std::vector<float> cv(static_cast<size_t>(total_));
    normalised(row_index, cv.data());
    const int64_t items = ceil_div(rows_, kRowGrain);
    parallel_for(items, 1, [&](int64_t b, int64_t e) {
      std::vector<float> cos(static_cast<size_t>(M_ * M_));
      for (int64_t i = b * kRowGrain; i < std::min(rows_, e * kRowGrain); ++i)
        out[i] = i == row_index ? self_value(metric) : row_value(i, cv.data(), metric, cos.data());
    });
  }

  void gather(const int32_t* idx, int64_t n, float* out) override {
    for (int64_t a = 0; a < n; ++a) check_range(idx[a], 1);
    parallel_for(n, 256, [&](int64_t b, int64_t e) {
      for (int64_t a = b; a < e; ++a) normalised(idx[a], out + a * total_);
    });
  }

  // ---- k-means ----
  void set_centroids(const float* centroids, int64_t k) override {
    k_ = k;
    centroid_norms_.assign(static_cast<size_t>(k), 0.f);
    for (int64_t c = 0; c < k; ++c) {
      double s = 0;
      for (int64_t t = 0; t < total_; ++t) s += static_cast<double>(centroids[c * total_ + t]) * centroids[c * total_ + t];
      centroid_norms_[c] = static_cast<float>(s);
    }
    // Split the centres by modality once: dense k × dims[m] rows, the B operand of assign's tiles.
    centroid_parts_.assign(M_, {});
    for (int m = 0; m < M_; ++m) {
      const int64_t K = dims_[m];
      auto& p = centroid_parts_[m];
      p.resize(static_cast<size_t>(k * K));
      for (int64_t c = 0; c < k; ++c)
        for (int64_t t = 0; t < K; ++t) p[c * K + t] = centroids[c * total_ + offsets_[m] + t];
    }
  }

  int64_t assign(int64_t start, int64_t count, int32_t* labels, float* distances, double* sums, double* counts) override {
    check_range(start, count);
    if (k_ < 1) throw Error(PP_E_STATE, "assign before setCentroids");
    const int64_t qtiles = ceil_div(count, kQB);
    std::vector<int64_t> changed_part(static_cast<size_t>(qtiles), 0);
    const float Mf = static_cast<float>(M_);
    const ArgminFn argmin = argmin_kernel();
    parallel_for(qtiles, 1, [&](int64_t b, int64_t e) {
      Scratch& s = scratch();
      for (int64_t qt = b; qt < e; ++qt) {
        const int64_t q0 = qt * kQB, qn = std::min(kQB, count - q0);
        const RowSet qs{nullptr, start, count};
        for (int m = 0; m < M_; ++m) pack(m, qs, q0, qn, s.a[m].data(), s.tmp.data());
        std::vector<float> best(static_cast<size_t>(qn), kInf);
        std::vector<int32_t> arg(static_cast<size_t>(qn), -1);
        for (int64_t c0 = 0; c0 < k_; c0 += kRB) {
          const int64_t cn = std::min(kRB, k_ - c0);
          for (int m = 0; m < M_; ++m)
            dot_tile(s.a[m].data(), centroid_parts_[m].data() + c0 * dims_[m], qn, cn, dims_[m], s.g.data(), m > 0);
          argmin(s.g.data(), qn, cn, Mf, centroid_norms_.data() + c0, static_cast<int32_t>(c0), best.data(), arg.data());
        }
        int64_t ch = 0;
        for (int64_t q = 0; q < qn; ++q) {
          if (labels[q0 + q] != arg[q]) ++ch;
          labels[q0 + q] = arg[q];
          distances[q0 + q] = best[q];
        }
        changed_part[qt] = ch;
      }
    });
    // Centre sums: rows grouped by label (ascending within a cluster), clusters summed in parallel.
    std::vector<int64_t> offs(static_cast<size_t>(k_ + 1), 0);
    for (int64_t r = 0; r < count; ++r) offs[labels[r] + 1]++;
    for (int64_t c = 0; c < k_; ++c) offs[c + 1] += offs[c];
    std::vector<int64_t> order(static_cast<size_t>(count)), fill(offs.begin(), offs.end() - 1);
    for (int64_t r = 0; r < count; ++r) order[fill[labels[r]]++] = r;
    parallel_for(k_, 16, [&](int64_t b, int64_t e) {
      std::vector<float> u(static_cast<size_t>(total_));
      for (int64_t c = b; c < e; ++c) {
        double* sc = sums + c * total_;
        for (int64_t p = offs[c]; p < offs[c + 1]; ++p) {
          normalised(start + order[p], u.data());
          for (int64_t t = 0; t < total_; ++t) sc[t] += u[t];
        }
        counts[c] += static_cast<double>(offs[c + 1] - offs[c]);
      }
    });
    int64_t changed = 0;
    for (auto c : changed_part) changed += c;
    return changed;
  }

  // ---- greedy ----
  void greedy_init(const Metric& metric, const float* base, double w_diversity, const uint8_t* exclude, int mode) override {
    if (metric.form == PP_FORM_SIMILARITY) throw Error(PP_E_INTERNAL, "greedy: the similarity form is not a distance");
    g_metric_ = metric;
    g_base_.clear();
    if (base) g_base_.assign(base, base + rows_);
    g_w_ = w_diversity;
    g_mode_ = mode;
    g_taken_.assign(exclude, exclude + rows_);
    g_delta_.assign(static_cast<size_t>(rows_), kInf);
    g_owner_.assign(static_cast<size_t>(rows_), -1);
    g_centers_.clear();
    g_count_ = 0;
    g_pruning_ = true;
    g_lazy_ = false;
    g_lazy_heap_.clear();
    g_delta_max_ = kInf;
    g_factor_ = prune_factor(metric, M_);
    g_margin_ = prune_margin(metric, dims_);
    g_ready_ = true;
    refresh_max();
  }

  void greedy_add(const int32_t* idx, int64_t n) override {
    if (!g_ready_) throw Error(PP_E_STATE, "greedyAddCenters before greedyInit");
    for (int64_t a = 0; a < n; ++a) check_range(idx[a], 1);
    lazy_sync();
    if (n < 16) {
      for (int64_t a = 0; a < n; ++a) add_center(idx[a]);
      return;
    }
    // Many centres at once: one blocked min/argmin reduction of every row against them.
    const int64_t first_id = g_count_;
    for (int64_t a = 0; a < n; ++a) g_taken_[idx[a]] = 1;
    keep_centers(idx, n);
    std::vector<double> val(static_cast<size_t>(rows_));
    std::vector<int64_t> arg(static_cast<size_t>(rows_));
    Reduction red;
    red.kind = kMinArg;
    reduce(RowSet{nullptr, 0, rows_}, RowSet{idx, 0, n}, g_metric_, red, val.data(), arg.data());
    for (int64_t i = 0; i < rows_; ++i) {
      if (g_taken_[i]) continue;
      const float v = static_cast<float>(val[i]);
      if (v < g_delta_[i]) {
        g_delta_[i] = v;
        g_owner_[i] = g_pruning_ ? static_cast<int32_t>(first_id + arg[i]) : -1;
      }
    }
    refresh_max();
  }

  int64_t greedy_step(int64_t steps, const double* uniforms, int32_t* picks, float* diversity, float* diversity_max) override {
    if (!g_ready_) throw Error(PP_E_STATE, "greedyStep before greedyInit");
    if (g_mode_ == PP_GREEDY_ARGMAX && g_base_.empty() && g_count_ > 0 && g_pruning_) return lazy_steps(steps, picks, diversity, diversity_max);
    lazy_sync();
    int64_t made = 0;
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t p = choose(uniforms ? uniforms[t] : 0.0);
      if (p < 0) break;
      picks[made] = static_cast<int32_t>(p);
      diversity[made] = g_delta_[p];
      diversity_max[made] = g_delta_max_;
      ++made;
      add_center(p);
    }
    return made;
  }

 private:
  // ---- lazy k-center ----
  // The k-center argmax needs exact δ only for the winner: δ only ever decreases, so each row's
  // last δ is an upper bound. A max-heap of (bound, row) — larger bound first, lower row first
  // among equals — is popped until its top is exact (checked against every centre), which is
  // then the argmax with the lowest index, exactly as a full pass would find it. Rows far down
  // the heap are never touched again, so a pick costs a handful of distance evaluations instead
  // of a pass over the pool. Needs the centres' rows (kept while pruning is on).
  struct LazyEntry {
    float bound;
    int64_t row;
  };
  static bool lazy_less(const LazyEntry& a, const LazyEntry& b) {
    return a.bound < b.bound || (a.bound == b.bound && a.row > b.row);  // max-heap: larger bound, then lower row
  }

  void lazy_start() {
    g_lazy_heap_.clear();
    g_lazy_checked_.assign(static_cast<size_t>(rows_), g_count_);
    for (int64_t i = 0; i < rows_; ++i)
      if (!g_taken_[i]) g_lazy_heap_.push_back({g_delta_[i], i});
    std::make_heap(g_lazy_heap_.begin(), g_lazy_heap_.end(), lazy_less);
    g_lazy_ = true;
  }

  // Brings row i's δ up to date with the centres added since it was last checked.
  void lazy_check(int64_t i, float* cos) {
    for (int64_t c = g_lazy_checked_[i]; c < g_count_; ++c) {
      const float v = row_value(i, g_centers_.data() + c * total_, g_metric_, cos);
      if (v < g_delta_[i]) {
        g_delta_[i] = v;
        g_owner_[i] = static_cast<int32_t>(c);
      }
    }
    g_lazy_checked_[i] = g_count_;
  }

  // Leaves lazy mode with every row's δ exact (before an op that needs all of them).
  void lazy_sync() {
    if (!g_lazy_) return;
    parallel_for(ceil_div(rows_, kRowGrain), 1, [&](int64_t b, int64_t e) {
      std::vector<float> cos(static_cast<size_t>(M_ * M_));
      for (int64_t i = b * kRowGrain; i < std::min(rows_, e * kRowGrain); ++i)
        if (!g_taken_[i]) lazy_check(i, cos.data());
    });
    g_lazy_ = false;
    g_lazy_heap_.clear();
    g_lazy_heap_.shrink_to_fit();
    refresh_max();
  }

  int64_t lazy_steps(int64_t steps, int32_t* picks, float* diversity, float* diversity_max) {
    if (!g_lazy_) lazy_start();
    std::vector<float> cos(static_cast<size_t>(M_ * M_));
    int64_t made = 0;
    while (made < steps && g_lazy_) {
      if (g_lazy_heap_.empty()) return made;  // no candidate left
      std::pop_heap(g_lazy_heap_.begin(), g_lazy_heap_.end(), lazy_less);
      const LazyEntry top = g_lazy_heap_.back();
      g_lazy_heap_.pop_back();
      const int64_t i = top.row;
      if (g_taken_[i]) continue;
      if (g_lazy_checked_[i] < g_count_) {
        lazy_check(i, cos.data());
        g_lazy_heap_.push_back({g_delta_[i], i});
        std::push_heap(g_lazy_heap_.begin(), g_lazy_heap_.end(), lazy_less);
        continue;
      }
      // Exact and on top: the farthest candidate (lowest index among equals).
      picks[made] = static_cast<int32_t>(i);
      diversity[made] = g_delta_[i];
      diversity_max[made] = g_delta_[i];
      ++made;
      const int64_t after = g_count_ + 1;
      if (after > prune_center_cap(rows_) || after * total_ * 4 > kPruneMaxCenterBytes) {
        // No room to keep more centres: make every δ exact, then continue eagerly.
        lazy_sync();
        add_center(i);
      } else {
        g_taken_[i] = 1;
        const int32_t i32 = static_cast<int32_t>(i);
        keep_centers(&i32, 1);  // rows catch up with it when they reach the top
      }
    }
    for (; made < steps;) {
      const int64_t p = choose(0.0);
      if (p < 0) break;
      picks[made] = static_cast<int32_t>(p);
      diversity[made] = g_delta_[p];
      diversity_max[made] = g_delta_max_;
      ++made;
      add_center(p);
    }
    return made;
  }

  struct Scratch {
    std::vector<std::vector<float>> a, b;  // packed panels per modality
    std::vector<float> g;                  // terms × kQB × kRB
    std::vector<float> v, tmp;
    std::vector<int64_t> rid;
  };

  Scratch& scratch() {
    thread_local Scratch s;
    s.a.resize(M_);
    s.b.resize(M_);
    for (int m = 0; m < M_; ++m) {
      const size_t need_a = static_cast<size_t>(kQB * dims_[m]);
      const size_t need_b = static_cast<size_t>(kRB * dims_[m]);
      if (s.a[m].size() < need_a) s.a[m].resize(need_a);
      if (s.b[m].size() < need_b) s.b[m].resize(need_b);
    }
    const size_t need_g = static_cast<size_t>(M_ * M_ * kQB * kRB);
    if (s.g.size() < need_g) s.g.resize(need_g);
    if (s.v.size() < static_cast<size_t>(kRB)) s.v.resize(kRB);
    if (s.rid.size() < static_cast<size_t>(kRB)) s.rid.resize(kRB);
    if (s.tmp.size() < static_cast<size_t>(max_dim_)) s.tmp.resize(max_dim_);
    return s;
  }

  void check_range(int64_t start, int64_t count) const {
    if (start < 0 || count < 0 || start + count > rows_)
      throw Error(PP_E_INTERNAL, "selection: rows [" + std::to_string(start) + ", +" + std::to_string(count) + ") out of range");
  }

  // Row i of modality m as fp32 (a pointer into the data, or converted into tmp).
  const float* row(int m, int64_t i, float* tmp) const {
    const Modality& md = mods_[m];
    if (!md.half) return static_cast<const float*>(md.data) + i * md.dim;
    half_to_float_n(static_cast<const uint16_t*>(md.data) + i * md.dim, tmp, static_cast<size_t>(md.dim));
    return tmp;
  }

  const void* raw_row(int m, int64_t i) const {
    const Modality& md = mods_[m];
    return static_cast<const uint8_t*>(md.data) + i * md.dim * (md.half ? 2 : 4);
  }

  // u_i (normalised, concatenated) into out.
  void normalised(int64_t i, float* out) const {
    thread_local std::vector<float> tmp;
    if (tmp.size() < static_cast<size_t>(max_dim_)) tmp.resize(max_dim_);
    for (int m = 0; m < M_; ++m) {
      const float* x = row(m, i, tmp.data());
      const float s = inv_[m][i];
      float* o = out + offsets_[m];
      for (int64_t t = 0; t < dims_[m]; ++t) o[t] = x[t] * s;
    }
  }

  // Copies n rows (set positions begin…begin+n) of modality m, normalised, as dense row-major rows.
  void pack(int m, const RowSet& set, int64_t begin, int64_t n, float* dst, float* tmp) const {
    const int64_t K = dims_[m];
    for (int64_t r = 0; r < n; ++r) {
      const int64_t i = set.at(begin + r);
      const float* x = row(m, i, tmp);
      const float sc = inv_[m][i];
      float* d = dst + r * K;
      for (int64_t t = 0; t < K; ++t) d[t] = x[t] * sc;
    }
  }

  std::vector<Term> terms_of(const Metric& metric) const {
    std::vector<Term> terms;
    if (metric.form == PP_FORM_MULTIMODAL) {
      for (int a = 0; a < M_; ++a)
        for (int b = 0; b < M_; ++b)
          if (a == b || metric.gamma != 0) terms.push_back({a, b});
    } else {
      terms.push_back({-1, -1});  // Σ_m over the diagonal, accumulated into one tile
    }
    return terms;
  }

  // Metric values of a tile row q (ref columns 0…rn) from the G tiles.
  void tile_values(const Metric& metric, const std::vector<Term>& terms, const float* g, int64_t q, int64_t rn, float* v) const {
#ifdef PP_SIMD_X86
    if (avx2_) {
      tile_values_avx2(metric, terms, g, q, rn, v, M_);
      return;
    }
#endif
    const int64_t stride = kTileStride;
    if (metric.form == PP_FORM_MULTIMODAL) {
      const bool cross = metric.gamma != 0;
      const float gamma = static_cast<float>(metric.gamma);
      for (int64_t j = 0; j < rn; ++j) {
        float uni = 0.f, cr = 0.f;
        for (size_t t = 0; t < terms.size(); ++t) {
          const float e = unit_distance(g[t * stride + q * kRB + j]);
          if (terms[t].q == terms[t].r)
            uni += e;
          else
            cr += e;
        }
        v[j] = cross ? uni + gamma * cr : uni;
      }
    } else if (metric.form == PP_FORM_EUCLIDEAN) {
      const float twoM = 2.f * M_;
      for (int64_t j = 0; j < rn; ++j) v[j] = std::sqrt(std::max(0.f, twoM - 2.f * g[q * kRB + j]));
    } else {
      for (int64_t j = 0; j < rn; ++j) v[j] = static_cast<float>((1.0 + static_cast<double>(g[q * kRB + j]) / M_) / 2.0);
    }
  }

  // The blocked reduction behind pair_reduce and the batch greedy_add (arg: min position, kMinArg only).
  // State of a symmetric exact-kNN pass: queries come as consecutive ranges [start, end) with refs
  // [start, N); a pair (i, j) with j ≥ end also feeds row j's list, kept here until j is queried.
  struct Sym {
    int form = -1;
    double gamma = 0;
    int64_t k = 0;
    int64_t next = 0, end = 0;
    std::vector<float> best;      // rows × k, each row sorted ascending
    std::vector<int64_t> filled;  // per row
  };
  static constexpr int64_t kSymMaxBytes = int64_t(512) << 20;

  void reduce(const RowSet& queries, const RowSet& refs, const Metric& metric, const Reduction& red, double* out,
              int64_t* arg_out, Sym* sym = nullptr) {
    for (int64_t a = 0; a < queries.count; ++a) check_range(queries.at(a), 1);
    if (refs.idx)
      for (int64_t a = 0; a < refs.count; ++a) check_range(refs.at(a), 1);
    else
      check_range(refs.start, refs.count);
    const int64_t nq = queries.count, nr = refs.count;
    if (nq == 0) return;
    const int64_t qtiles = ceil_div(nq, kQB), rtiles = std::max<int64_t>(1, ceil_div(nr, kRB));
    // Refs are split into `shares` so that small query sets still give the threads work; the split
    // depends only on the sizes, so results do not depend on the thread count.
    // With sym, each share also owns the ref-side lists of its ref rows, so a task is one share
    // walking every query tile (no two tasks touch the same list).
    const int64_t shares = sym ? std::min<int64_t>(rtiles, 64) : std::min(rtiles, std::max<int64_t>(1, ceil_div(64, qtiles)));
    const int64_t k = red.kind == PP_REDUCE_KNN_MEAN ? std::max<int64_t>(1, red.k) : 0;
    std::vector<Partial> parts(static_cast<size_t>(nq * shares));
    std::vector<float> knn_store(static_cast<size_t>(nq * shares * k));
    for (size_t p = 0; p < parts.size(); ++p) {
      parts[p].best = k ? knn_store.data() + p * k : nullptr;
      parts[p].value = red.kind == PP_REDUCE_MIN_OTHER_LABEL || red.kind == kMinArg ? INFINITY : red.kind == PP_REDUCE_MAX ? -INFINITY : 0.0;
    }
    const std::vector<Term> terms = terms_of(metric);
    const float self = red.kind == PP_REDUCE_KNN_MEAN ? kInf : self_value(metric);

    const int64_t tasks = sym ? shares : qtiles * shares;
    parallel_for(tasks, 1, [&](int64_t b, int64_t e) {
      Scratch& s = scratch();
      for (int64_t item = sym ? b * qtiles : b; item < (sym ? e * qtiles : e); ++item) {
        const int64_t qt = sym ? item % qtiles : item / shares, share = sym ? item / qtiles : item % shares;
        const int64_t q0 = qt * kQB, qn = std::min(kQB, nq - q0);
        const int64_t rt0 = share * rtiles / shares, rt1 = (share + 1) * rtiles / shares;
        for (int m = 0; m < M_; ++m) pack(m, queries, q0, qn, s.a[m].data(), s.tmp.data());
        for (int64_t rt = rt0; rt < rt1; ++rt) {
          const int64_t r0 = rt * kRB, rn = std::min(kRB, nr - r0);
          if (rn <= 0) continue;
          for (int m = 0; m < M_; ++m) pack(m, refs, r0, rn, s.b[m].data(), s.tmp.data());
          for (int64_t j = 0; j < rn; ++j) s.rid[j] = refs.at(r0 + j);
          if (metric.form == PP_FORM_MULTIMODAL) {
            for (size_t t = 0; t < terms.size(); ++t)
              dot_tile(s.a[terms[t].q].data(), s.b[terms[t].r].data(), qn, rn, dims_[terms[t].q], s.g.data() + t * kQB * kRB,
                       false);
          } else {
            for (int m = 0; m < M_; ++m) dot_tile(s.a[m].data(), s.b[m].data(), qn, rn, dims_[m], s.g.data(), m > 0);
          }
          for (int64_t q = 0; q < qn; ++q) {
            const int64_t qid = queries.at(q0 + q);
            float* v = s.v.data();
            tile_values(metric, terms, s.g.data(), q, rn, v);
            if (refs.idx) {
              for (int64_t j = 0; j < rn; ++j)
                if (s.rid[j] == qid) v[j] = self;
            } else if (qid >= refs.start + r0 && qid < refs.start + r0 + rn) {
              v[qid - refs.start - r0] = self;
            }
            reduce_row(red, qid, v, s.rid.data(), rn, r0, parts[(q0 + q) * shares + share], k, avx2_);
            if (sym) {
              // Ref side: rows not queried yet (≥ end) keep this value for later.
              for (int64_t j = 0; j < rn; ++j) {
                const int64_t rid = s.rid[j];
                if (rid < sym->end || v[j] == kInf) continue;
                float* list = sym->best.data() + rid * k;
                if (v[j] < list[k - 1]) insert_sorted(list, sym->filled[rid], k, v[j]);
              }
            }
          }
        }
      }
    });

    // Merge the shares in order.
    std::vector<float> merged(static_cast<size_t>(k));
    for (int64_t q = 0; q < nq; ++q) {
      Partial* ps = parts.data() + q * shares;
      const int64_t qid = queries.at(q);
      switch (red.kind) {
        case PP_REDUCE_KNN_MEAN: {
          int64_t filled = 0;
          for (int64_t sh = 0; sh < shares; ++sh)
            for (int64_t t = 0; t < ps[sh].filled; ++t) insert_sorted(merged.data(), filled, k, ps[sh].best[t]);
          if (sym) {
            const float* list = sym->best.data() + qid * k;
            for (int64_t t = 0; t < sym->filled[qid]; ++t) insert_sorted(merged.data(), filled, k, list[t]);
          }
          double sum = 0;
          for (int64_t t = 0; t < filled; ++t) sum += merged[t];
          out[q] = filled ? sum / static_cast<double>(filled) : INFINITY;
          break;
        }
        case PP_REDUCE_COUNT_WITHIN:
        case PP_REDUCE_GAIN: {
          double sum = 0;
          for (int64_t sh = 0; sh < shares; ++sh) sum += ps[sh].value;
          out[q] = sum;
          break;
        }
        case PP_REDUCE_MIN_OTHER_LABEL: {
          double m = INFINITY;
          for (int64_t sh = 0; sh < shares; ++sh) m = std::min(m, ps[sh].value);
          out[q] = m;
          break;
        }
        case PP_REDUCE_MAX: {
          double m = -INFINITY;
          for (int64_t sh = 0; sh < shares; ++sh) m = std::max(m, ps[sh].value);
          out[q] = m;
          break;
        }
        case kMinArg: {
          double m = INFINITY;
          int64_t a = -1;
          for (int64_t sh = 0; sh < shares; ++sh)
            if (ps[sh].value < m) {
              m = ps[sh].value;
              a = ps[sh].arg;
            }
          out[q] = m;
          arg_out[q] = a;
          break;
        }
        default:
          throw Error(PP_E_INTERNAL, "selection: unknown reduction " + std::to_string(red.kind));
      }
    }
  }

  static void insert_sorted(float* best, int64_t& filled, int64_t k, float v) {
    if (filled == k && !(v < best[k - 1])) return;
    int64_t p = filled < k ? filled++ : k - 1;
    while (p > 0 && best[p - 1] > v) {
      best[p] = best[p - 1];
      --p;
    }
    best[p] = v;
  }

  static void reduce_row(const Reduction& red, int64_t qid, const float* v, const int64_t* rid, int64_t rn, int64_t r0,
                         Partial& p, int64_t k, bool avx2) {
    switch (red.kind) {
      case PP_REDUCE_KNN_MEAN: {
        int64_t j = 0;
#ifdef PP_SIMD_X86
        if (avx2 && p.filled == k) {
          // Most values lose to the current k-th best once the list is full: test 8 at a time.
          for (; j + 8 <= rn; j += 8) {
            int bits = below_mask8(v + j, p.best[k - 1]);
            while (bits) {
              const int lane = __builtin_ctz(bits);
              bits &= bits - 1;
              const float x = v[j + lane];
              if (x < p.best[k - 1]) insert_sorted(p.best, p.filled, k, x);
            }
          }
        }
#endif
        for (; j < rn; ++j) {
          const float x = v[j];
          if (p.filled == k && !(x < p.best[k - 1])) continue;
          if (x == kInf) continue;
          insert_sorted(p.best, p.filled, k, x);
        }
        break;
      }
      case PP_REDUCE_COUNT_WITHIN: {
        int64_t n = 0;
        for (int64_t j = 0; j < rn; ++j) {
          if (red.ref_mask && !red.ref_mask[rid[j]]) continue;
          if (static_cast<double>(v[j]) < red.radius) ++n;
        }
        p.value += static_cast<double>(n);
        break;
      }
      case PP_REDUCE_MIN_OTHER_LABEL: {
        const int32_t own = red.labels[qid];
        for (int64_t j = 0; j < rn; ++j)
          if (red.labels[rid[j]] != own && v[j] < p.value) p.value = v[j];
        break;
      }
      case PP_REDUCE_MAX:
        for (int64_t j = 0; j < rn; ++j)
          if (v[j] > p.value) p.value = v[j];
        break;
      case PP_REDUCE_GAIN:
        for (int64_t j = 0; j < rn; ++j) {
          const float gdiff = v[j] - red.cover[rid[j]];
          if (gdiff > 0) p.value += static_cast<double>(gdiff);
        }
        break;
      case kMinArg:
        for (int64_t j = 0; j < rn; ++j)
          if (v[j] < p.value) {
            p.value = v[j];
            p.arg = r0 + j;
          }
        break;
      default:
        break;
    }
  }

  // Metric value between row i and a normalised concatenated vector cv.
  float row_value(int64_t i, const float* cv, const Metric& metric, float* cos) const {
    const bool cross = metric.form == PP_FORM_MULTIMODAL && metric.gamma != 0;
    for (int m = 0; m < M_; ++m) {
      const float* vecs[4];
      int which[4];
      int nvec = 0;
      const float s = inv_[m][i];
      auto flush = [&]() {
        float d[4];
        dots_(raw_row(m, i), mods_[m].half, dims_[m], vecs, nvec, d);
        for (int v = 0; v < nvec; ++v) cos[m * M_ + which[v]] = d[v] * s;
        nvec = 0;
      };
      for (int r = 0; r < M_; ++r) {
        if (r != m && !cross) continue;
        vecs[nvec] = cv + offsets_[r];
        which[nvec] = r;
        if (++nvec == 4) flush();
      }
      if (nvec) flush();
    }
    return value_from_cos(cos, M_, metric);
  }

  // Keeps the normalised rows of new centres for pruning (or stops pruning when over the caps).
  void keep_centers(const int32_t* idx, int64_t n) {
    const int64_t after = g_count_ + n;
    if (g_pruning_ && (after > prune_center_cap(rows_) || after * total_ * 4 > kPruneMaxCenterBytes)) {
      g_pruning_ = false;
      g_centers_.clear();
      g_centers_.shrink_to_fit();
    }
    if (g_pruning_) {
      g_centers_.resize(static_cast<size_t>(after * total_));
      for (int64_t a = 0; a < n; ++a) normalised(idx[a], g_centers_.data() + (g_count_ + a) * total_);
    }
    g_count_ = after;
  }

  // Adds row c as a centre: δ ← min(δ, d(·, c)) over rows not taken (pruned), then max δ.
  void add_center(int64_t c) {
    g_taken_[c] = 1;
    const int64_t id = g_count_;
    const int32_t c32 = static_cast<int32_t>(c);
    keep_centers(&c32, 1);
    std::vector<float> own(static_cast<size_t>(total_));
    const float* cv;
    if (g_pruning_) {
      cv = g_centers_.data() + id * total_;
    } else {
      normalised(c, own.data());
      cv = own.data();
    }
    std::vector<float> cd;
    if (g_pruning_ && id > 0) {
      cd.resize(static_cast<size_t>(id));
      parallel_for(id, 256, [&](int64_t b, int64_t e) {
        std::vector<float> cos(static_cast<size_t>(M_ * M_));
        for (int64_t s = b; s < e; ++s) cd[s] = center_value(g_centers_.data() + s * total_, cv, cos.data());
      });
    }
    const double slack = 1.0 + g_factor_;
    const int64_t items = ceil_div(rows_, kRowGrain);
    parallel_for(items, 1, [&](int64_t b, int64_t e) {
      std::vector<float> cos(static_cast<size_t>(M_ * M_));
      for (int64_t i = b * kRowGrain; i < std::min(rows_, e * kRowGrain); ++i) {
        if (g_taken_[i]) continue;
        const int32_t o = g_owner_[i];
        // Pruned: the owner is so far from the new centre that row i cannot get closer to it.
        if (!cd.empty() && o >= 0 && prune_skips(cd[o], g_delta_[i], slack, g_margin_)) continue;
        const float v = row_value(i, cv, g_metric_, cos.data());
        if (v < g_delta_[i]) {
          g_delta_[i] = v;
          g_owner_[i] = g_pruning_ ? static_cast<int32_t>(id) : -1;
        }
      }
    });
    refresh_max();
  }

  float center_value(const float* a, const float* b, float* cos) const {
    const bool cross = g_metric_.form == PP_FORM_MULTIMODAL && g_metric_.gamma != 0;
    for (int x = 0; x < M_; ++x)
      for (int y = 0; y < M_; ++y) {
        if (x != y && !cross) continue;
        const float* va = a + offsets_[x];
        const float* vb[1] = {b + offsets_[y]};
        float d;
        dots_(va, false, dims_[x], vb, 1, &d);
        cos[x * M_ + y] = d;
      }
    return value_from_cos(cos, M_, g_metric_);
  }

  void refresh_max() {
    const int64_t items = ceil_div(rows_, kRowGrain);
    std::vector<float> mx(static_cast<size_t>(items), -kInf);
    std::vector<int64_t> am(static_cast<size_t>(items), -1);
    parallel_for(items, 1, [&](int64_t b, int64_t e) {
      for (int64_t it = b; it < e; ++it) {
        float m = -kInf;
        int64_t a = -1;
        for (int64_t i = it * kRowGrain; i < std::min(rows_, (it + 1) * kRowGrain); ++i)
          if (!g_taken_[i] && (a < 0 || g_delta_[i] > m)) {
            m = g_delta_[i];
            a = i;
          }
        mx[it] = m;
        am[it] = a;
      }
    });
    g_delta_max_ = -kInf;
    g_argmax_ = -1;
    for (int64_t it = 0; it < items; ++it)
      if (am[it] >= 0 && (g_argmax_ < 0 || mx[it] > g_delta_max_)) {
        g_delta_max_ = mx[it];
        g_argmax_ = am[it];
      }
  }

  int64_t choose(double uniform) {
    if (g_mode_ == PP_GREEDY_SAMPLE_SQUARED) return sample_squared(g_delta_.data(), g_taken_.data(), rows_, uniform);
    if (g_base_.empty()) return g_argmax_;
    const double dmax = g_delta_max_;
    const bool use_div = g_count_ > 0 && dmax > 0 && std::isfinite(dmax);
    const int64_t items = ceil_div(rows_, kRowGrain);
    std::vector<double> best(static_cast<size_t>(items), -INFINITY);
    std::vector<int64_t> arg(static_cast<size_t>(items), -1);
    parallel_for(items, 1, [&](int64_t b, int64_t e) {
      for (int64_t it = b; it < e; ++it) {
        double m = -INFINITY;
        int64_t a = -1;
        for (int64_t i = it * kRowGrain; i < std::min(rows_, (it + 1) * kRowGrain); ++i) {
          if (g_taken_[i]) continue;
          const double dhat = use_div ? static_cast<double>(g_delta_[i]) / dmax : 0.0;
          const double s = static_cast<double>(g_base_[i]) + g_w_ * dhat;
          if (a < 0 || s > m) {
            m = s;
            a = i;
          }
        }
        best[it] = m;
        arg[it] = a;
      }
    });
    int64_t a = -1;
    double m = -INFINITY;
    for (int64_t it = 0; it < items; ++it)
      if (arg[it] >= 0 && (a < 0 || best[it] > m)) {
        m = best[it];
        a = arg[it];
      }
    return a;
  }

  const int64_t rows_;
  const std::vector<Modality> mods_;
  const int M_;
  std::vector<int64_t> dims_, offsets_;
  int64_t total_ = 0, max_dim_ = 0;
  std::vector<std::vector<float>> inv_;
  DotsFn dots_;
  bool avx2_ = false;

  Sym sym_;

  int64_t k_ = 0;
  std::vector<float> centroid_norms_;
  std::vector<std::vector<float>> centroid_parts_;  // per modality: k × dims[m] centres

  bool g_ready_ = false;
  Metric g_metric_;
  std::vector<float> g_base_;
  double g_w_ = 1;
  int g_mode_ = PP_GREEDY_ARGMAX;
  std::vector<uint8_t> g_taken_;
  std::vector<float> g_delta_;
  std::vector<int32_t> g_owner_;
  std::vector<float> g_centers_;
  int64_t g_count_ = 0;
  bool g_pruning_ = true;
  bool g_lazy_ = false;
  std::vector<LazyEntry> g_lazy_heap_;
  std::vector<int64_t> g_lazy_checked_;
  float g_delta_max_ = kInf;
  int64_t g_argmax_ = -1;
  double g_factor_ = 1, g_margin_ = 0;
};

}  // namespace

int64_t prune_center_cap(int64_t rows) { return std::max<int64_t>(256, rows / 4); }

double prune_factor(const Metric& metric, int modalities) {
  return metric.form == PP_FORM_MULTIMODAL ? 1.0 + metric.gamma * (modalities - 1) : 1.0;
}

// |e' − e| ≤ sqrt(2|δc|) with |δc| ≤ (dim + 8)·2⁻²⁴ for a float32 dot of unit vectors.
static double unit_distance_error(int64_t dim) { return std::sqrt(2.0 * (dim + 8) * std::ldexp(1.0, -24)) + 1e-6; }

double prune_margin(const Metric& metric, const std::vector<int64_t>& dims) {
  const double f = prune_factor(metric, static_cast<int>(dims.size()));
  double eps = 0;
  if (metric.form == PP_FORM_MULTIMODAL) {
    for (auto d : dims) eps += unit_distance_error(d) * (1.0 + metric.gamma * (static_cast<double>(dims.size()) - 1));
  } else {
    double s = 0;
    for (auto d : dims) s += static_cast<double>(d + 8);
    eps = std::sqrt(2.0 * s * std::ldexp(1.0, -24)) + 1e-6;
  }
  return (2.0 + f) * eps;
}

int64_t sample_squared(const float* delta, const uint8_t* taken, int64_t n, double uniform) {
  const int64_t blocks = ceil_div(n, kSampleBlockRows);
  std::vector<double> block_sums(static_cast<size_t>(blocks), 0.0);
  std::vector<int64_t> first_in(static_cast<size_t>(blocks), -1), last_pos_in(static_cast<size_t>(blocks), -1);
  parallel_for(blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t bl = b; bl < e; ++bl) {
      double s = 0;
      for (int64_t i = bl * kSampleBlockRows; i < std::min(n, (bl + 1) * kSampleBlockRows); ++i) {
        if (taken[i]) continue;
        if (first_in[bl] < 0) first_in[bl] = i;
        const double d = delta[i];
        if (d > 0) last_pos_in[bl] = i;
        s += d * d;
      }
      block_sums[bl] = s;
    }
  });
  int64_t first = -1, last_positive = -1;
  double total = 0;
  for (int64_t bl = 0; bl < blocks; ++bl) {
    if (first < 0) first = first_in[bl];
    if (last_pos_in[bl] >= 0) last_positive = last_pos_in[bl];
    total += block_sums[bl];
  }
  if (first < 0) return -1;
  if (!(total > 0) || !std::isfinite(total)) return first;
  const double target = uniform * total;
  double acc = 0;
  int64_t bl = 0;
  for (; bl < blocks; ++bl) {
    if (acc + block_sums[bl] > target) break;
    acc += block_sums[bl];
  }
  if (bl == blocks) return last_positive;
  int64_t last_in_block = -1;
  for (int64_t i = bl * kSampleBlockRows; i < std::min(n, (bl + 1) * kSampleBlockRows); ++i) {
    if (taken[i]) continue;
    const double d = delta[i];
    if (d > 0) last_in_block = i;
    acc += d * d;
    if (acc > target) return i;
  }
  return last_in_block >= 0 ? last_in_block : last_positive;
}

namespace {
class CpuSelectEngine final : public SelectEngine {
 public:
  std::unique_ptr<Selection> open(int64_t rows, const std::vector<Modality>& modalities) const override {
    return std::make_unique<CpuSelection>(rows, modalities);
  }
};
}  // namespace

const SelectEngine& cpu_select_engine() {
  static const CpuSelectEngine engine;
  return engine;
}

}  // namespace pp::sel
