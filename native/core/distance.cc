// CPU distance core. Layout of the work (GEMM-style, see distance.h for the semantics):
//
//   parallel units = (chunk of ≤ 256 query rows) × (part of the ref rows)
//   per unit:  pack its queries into panels of 16 rows, transposed ([dim][16] floats), with norms
//     for each tile of 192 ref rows, for each 256-wide slice of dim:
//       for each query panel, for each group of 6 ref rows: micro-kernel → 6×16 dot products
//         (12 ymm accumulators; 2 panel loads + 6 broadcasts per 12 FMAs)
//       after the last slice: finalize the 6×16 block in registers — distances, then either the
//       dense store or the top-k filter (compare against each query's current k-th distance and
//       insert only the few candidates that beat it).
//   then (knn) rescore each query's k + kKnnSpare survivors exactly and merge them into the state;
//   (dense) recompute exactly the few values below the fast form's precision (recheck_fraction).
//
// Nothing of size rows_q × rows_r exists: per unit the buffers are a panel set (≤ 256 × dim),
// a tile slice and a dot-product block, plus per part a local top-k when the ref is split.
#include "core/distance.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "core/simd.h"


namespace pp {
namespace {

constexpr int kLanes = 16;          // queries per packed panel (two 8-float vectors)
constexpr int kMicroRows = 6;       // ref rows per micro-kernel call (6 × 16 accumulators = 12 ymm)
constexpr int64_t kSlice = 256;     // dim slice per pass: a 16 × 256 panel slice is 16 KiB (L1)
constexpr int64_t kTileRows = 192;  // ref rows per tile: 192 × 256 × 4 B = 192 KiB (L2)
constexpr int64_t kMaxChunk = 256;  // query rows per parallel unit
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int64_t kKnnSpare = 8;    // extra fast-ranked kNN candidates rescored exactly (see knn_merge)

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// 64-byte aligned float storage (vector loads never split cache lines).
class Floats {
 public:
  Floats() = default;
  explicit Floats(size_t n) { resize(n); }
  Floats(const Floats&) = delete;
  Floats& operator=(const Floats&) = delete;
  ~Floats() { release(); }
  void resize(size_t n) {
    if (n <= cap_) return;
    release();
    p_ = static_cast<float*>(::operator new(std::max<size_t>(n, 1) * sizeof(float), std::align_val_t(64)));
    cap_ = n;
  }
  float* data() { return p_; }
  const float* data() const { return p_; }
  float& operator[](size_t i) { return p_[i]; }

 private:
  void release() {
    if (p_) ::operator delete(p_, std::align_val_t(64));
    p_ = nullptr;
    cap_ = 0;
  }
  float* p_ = nullptr;
  size_t cap_ = 0;
};

// Squared norm in double (norms enter every distance; their error should not dominate).
float sq_norm(const float* x, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += double(x[i]) * x[i];
    s1 += double(x[i + 1]) * x[i + 1];
    s2 += double(x[i + 2]) * x[i + 2];
    s3 += double(x[i + 3]) * x[i + 3];
  }
  for (; i < n; ++i) s0 += double(x[i]) * x[i];
  return float((s0 + s1) + (s2 + s3));
}

// What the kernels need of a row's norm: ‖x‖² for the euclidean metrics, 1/‖x‖ for cosine (0 for
// a zero row, which makes its cosine distance 1 to everything).
float norm_term(const float* x, int64_t n, int metric) {
  float s = sq_norm(x, n);
  if (metric != PP_METRIC_COSINE) return s;
  return s > 0 ? float(1.0 / std::sqrt(double(s))) : 0.0f;
}

// Lexicographic order on (distance, index): the top-k of a set of candidates is then unique, so
// results do not depend on how the work was split. Unfilled slots are (+inf, -1).
inline bool better(float d, int32_t g, float d2, int32_t g2) { return d < d2 || (d == d2 && g < g2); }

// Inserts (d, g) into a sorted top-k row when it beats the last entry; returns whether it did.
inline bool topk_insert(float* D, int32_t* I, int64_t k, float d, int32_t g) {
  if (!better(d, g, D[k - 1], I[k - 1])) return false;
  int64_t pos = k - 1;
  while (pos > 0 && better(d, g, D[pos - 1], I[pos - 1])) {
    D[pos] = D[pos - 1];
    I[pos] = I[pos - 1];
    --pos;
  }
  D[pos] = d;
  I[pos] = g;
  return true;
}

// The kernels pre-filter candidates with `d <= threshold`. Euclidean compares squared distances
// (no sqrt per pair), with a little slack so rounding can never drop a candidate that ties.
inline float filter_threshold(int metric, float worst) {
  if (metric == PP_METRIC_EUCLIDEAN) return worst == kInf ? kInf : worst * worst * (1.0f + 1e-6f);
  return worst;
}

// ---------------------------------------------------------------------------------------------
// Exact re-check. The fast form ‖q‖² + ‖r‖² − 2⟨q,r⟩ (and 1 − ⟨q,r⟩/(‖q‖‖r‖)) cancels when q ≈ r:
// its absolute error is about u·(c + √dim)·(‖q‖² + ‖r‖²) (u = 2⁻²⁴; fp32 norms, one fp32 running
// sum per dot over dim), so an exact duplicate comes out near 1e-6·‖q‖² instead of 0. Distances
// that are reported from it are therefore recomputed here from the rows themselves, in float64:
// Σ(q−r)² from direct differences (0 for a duplicate), cosine from fresh float64 dots and norms.

// Float64 accumulation (four partial sums) of Σ(q−r)², or of ⟨q,r⟩, ‖q‖², ‖r‖² for cosine.
inline float exact_distance_body(const float* q, const float* r, int64_t dim, int metric) {
  if (metric == PP_METRIC_COSINE) {
    double d0 = 0, d1 = 0, a0 = 0, a1 = 0, b0 = 0, b1 = 0;
    int64_t p = 0;
    for (; p + 2 <= dim; p += 2) {
      const double x0 = q[p], x1 = q[p + 1], y0 = r[p], y1 = r[p + 1];
      d0 += x0 * y0, d1 += x1 * y1;
      a0 += x0 * x0, a1 += x1 * x1;
      b0 += y0 * y0, b1 += y1 * y1;
    }
    if (p < dim) {
      const double x = q[p], y = r[p];
      d0 += x * y, a0 += x * x, b0 += y * y;
    }
    const double qq = a0 + a1, rr = b0 + b1;
    if (qq <= 0 || rr <= 0) return 1.0f;
    // For q = r, dot and norms round identically and sqrt(qq·qq) == qq, so the result is exactly 0.
    const double d = 1.0 - (d0 + d1) / std::sqrt(qq * rr);
    return float(std::min(2.0, std::max(0.0, d)));
  }
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t p = 0;
  for (; p + 4 <= dim; p += 4) {
    const double t0 = double(q[p]) - r[p], t1 = double(q[p + 1]) - r[p + 1];
    const double t2 = double(q[p + 2]) - r[p + 2], t3 = double(q[p + 3]) - r[p + 3];
    s0 += t0 * t0, s1 += t1 * t1, s2 += t2 * t2, s3 += t3 * t3;
  }
  for (; p < dim; ++p) {
    const double t = double(q[p]) - r[p];
    s0 += t * t;
  }
  const double s = (s0 + s1) + (s2 + s3);
  return float(metric == PP_METRIC_EUCLIDEAN ? std::sqrt(s) : s);
}

float exact_distance_portable(const float* q, const float* r, int64_t dim, int metric) {
  return exact_distance_body(q, r, dim, metric);
}

#ifdef PP_SIMD_X86
PP_AVX2 float exact_distance_avx2(const float* q, const float* r, int64_t dim, int metric) {
  return exact_distance_body(q, r, dim, metric);
}
#endif

using ExactFn = float (*)(const float*, const float*, int64_t, int);

ExactFn exact_distance_fn() {
#ifdef PP_SIMD_X86
  if (cpu_has_avx2()) return exact_distance_avx2;
#endif
  return exact_distance_portable;
}

// Where the fast dense value can no longer be trusted to 1e-5 relative: below this fraction of
// ‖q‖² + ‖r‖² (sqeuclidean, and euclidean squared) or of 1 (cosine). It is 1e5 × the error model
// above with a safety factor of about 3: 0.07 at dim 1, 0.33 at dim 256, 0.6 at dim 1024.
inline float recheck_fraction(int64_t dim) { return 6e-3f * (8.0f + 3.0f * std::sqrt(float(dim))); }

// A row of an fp32 matrix in place, or of an fp16 one converted into a scratch buffer.
class RowReader {
 public:
  RowReader(const void* m, bool half, int64_t dim) : m_(m), half_(half), dim_(dim), buf_(half ? size_t(dim) : 0) {}
  const float* row(int64_t i) {
    if (!half_) return static_cast<const float*>(m_) + i * dim_;
    half_to_float_n(static_cast<const uint16_t*>(m_) + i * dim_, buf_.data(), size_t(dim_));
    return buf_.data();
  }

 private:
  const void* m_;
  bool half_;
  int64_t dim_;
  std::vector<float> buf_;
};

// Where a 16-query panel's top-k rows live, and what the filter needs.
struct KnnPanel {
  const float* qn;  // 16 norm terms (padding lanes 0)
  float* thr;       // 16 filter thresholds (padding lanes -inf: never pass)
  float* D;         // top-k rows of lane 0 … (stride k)
  int32_t* I;
  int64_t k;
  bool exclude_self;
  int64_t self0;  // global index of lane 0's query (for exclude_self)
};

// ---------------------------------------------------------------------------------------------
// Portable kernels (any CPU; the compiler vectorises them with whatever the baseline ISA has).

// Two ref rows per pass over the panel: 2 × 16 accumulators fit the 16 SSE registers of the
// x86-64 baseline (all six rows at once would spill). GCC/Clang get explicit 4-wide vectors
// (portable: SSE2, NEON, …); other compilers the plain loop.
#if defined(__GNUC__) || defined(__clang__)
typedef float v4f __attribute__((vector_size(16)));
inline v4f load4(const float* p) {
  v4f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, v4f v) { std::memcpy(p, &v, sizeof v); }

template <int NR>
void micro_scalar(const float* __restrict qp, const float* __restrict r, int64_t rs, int64_t kl, float* __restrict c,
                  bool accumulate) {
  for (int i0 = 0; i0 < NR; i0 += 2) {
    const bool pair = i0 + 1 < NR;
    const float* r0 = r + i0 * rs;
    const float* r1 = pair ? r0 + rs : r0;
    float* c0 = c + i0 * kLanes;
    float* c1 = pair ? c0 + kLanes : c0;
    v4f a0 = {}, a1 = {}, a2 = {}, a3 = {}, b0 = {}, b1 = {}, b2 = {}, b3 = {};
    if (accumulate) {
      a0 = load4(c0), a1 = load4(c0 + 4), a2 = load4(c0 + 8), a3 = load4(c0 + 12);
      b0 = load4(c1), b1 = load4(c1 + 4), b2 = load4(c1 + 8), b3 = load4(c1 + 12);
    }
    for (int64_t p = 0; p < kl; ++p) {
      const float* q = qp + p * kLanes;
      const v4f q0 = load4(q), q1 = load4(q + 4), q2 = load4(q + 8), q3 = load4(q + 12);
      const float x = r0[p], y = r1[p];
      a0 += q0 * x;
      a1 += q1 * x;
      a2 += q2 * x;
      a3 += q3 * x;
      b0 += q0 * y;
      b1 += q1 * y;
      b2 += q2 * y;
      b3 += q3 * y;
    }
    store4(c0, a0), store4(c0 + 4, a1), store4(c0 + 8, a2), store4(c0 + 12, a3);
    if (pair) store4(c1, b0), store4(c1 + 4, b1), store4(c1 + 8, b2), store4(c1 + 12, b3);
  }
}
#else
template <int NR>
void micro_scalar(const float* qp, const float* r, int64_t rs, int64_t kl, float* c, bool accumulate) {
  for (int i = 0; i < NR; ++i) {
    float a[kLanes];
    for (int l = 0; l < kLanes; ++l) a[l] = accumulate ? c[i * kLanes + l] : 0.0f;
    for (int64_t p = 0; p < kl; ++p)
      for (int l = 0; l < kLanes; ++l) a[l] += qp[p * kLanes + l] * r[i * rs + p];
    for (int l = 0; l < kLanes; ++l) c[i * kLanes + l] = a[l];
  }
}
#endif

template <int M>
inline float scalar_distance(float dot, float qn, float rn) {
  if (M == PP_METRIC_COSINE) return std::min(2.0f, std::max(0.0f, 1.0f - dot * (qn * rn)));
  return std::max(0.0f, (qn + rn) - 2.0f * dot);  // squared for euclidean: sqrt applied by callers
}

template <int M>
void knn_scalar(const float* c, int nr, const float* rn, int64_t g0, const KnnPanel& P) {
  for (int i = 0; i < nr; ++i) {
    int64_t g = g0 + i;
    for (int l = 0; l < kLanes; ++l) {
      float d = scalar_distance<M>(c[i * kLanes + l], P.qn[l], rn[i]);
      if (!(d <= P.thr[l])) continue;
      if (P.exclude_self && g == P.self0 + l) continue;
      if (M == PP_METRIC_EUCLIDEAN) d = std::sqrt(d);
      float* D = P.D + l * P.k;
      int32_t* I = P.I + l * P.k;
      if (topk_insert(D, I, P.k, d, static_cast<int32_t>(g))) P.thr[l] = filter_threshold(M, D[P.k - 1]);
    }
  }
}

template <int NR, int M>
void micro_knn_scalar(const float* qp, const float* r, int64_t rs, int64_t kl, float* c, bool accumulate, const float* rn,
                      int64_t g0, const KnnPanel& P) {
  micro_scalar<NR>(qp, r, rs, kl, c, accumulate);
  knn_scalar<M>(c, NR, rn, g0, P);
}

// Writes the block's distances; returns whether any of them is below `fraction` of its scale
// (‖q‖² + ‖r‖², or 1 for cosine; euclidean compared squared), i.e. needs the exact recheck.
template <int M>
bool dense_scalar(const float* c, int nr, const float* qn, const float* rn, int lanes, float* out, int64_t ld,
                  float fraction) {
  bool suspect = false;
  for (int l = 0; l < lanes; ++l)
    for (int i = 0; i < nr; ++i) {
      float d = scalar_distance<M>(c[i * kLanes + l], qn[l], rn[i]);
      suspect |= d < (M == PP_METRIC_COSINE ? fraction : fraction * (qn[l] + rn[i]));
      out[l * ld + i] = M == PP_METRIC_EUCLIDEAN ? std::sqrt(d) : d;
    }
  return suspect;
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA kernels.
#ifdef PP_SIMD_X86

template <int M>
PP_AVX2 inline __m256 avx2_distance(__m256 dot, __m256 qn, __m256 rn) {
  if (M == PP_METRIC_COSINE) {
    __m256 d = _mm256_fnmadd_ps(dot, _mm256_mul_ps(qn, rn), _mm256_set1_ps(1.0f));
    return _mm256_min_ps(_mm256_set1_ps(2.0f), _mm256_max_ps(_mm256_setzero_ps(), d));
  }
  __m256 d = _mm256_fnmadd_ps(_mm256_set1_ps(2.0f), dot, _mm256_add_ps(qn, rn));
  return _mm256_max_ps(_mm256_setzero_ps(), d);
}

// The top-k filter for one ref row of a block (16 query lanes): distances and the compare against
// each lane's threshold stay in registers; only lanes that pass go through the scalar insertion.
template <int M>
PP_AVX2 inline void knn_row_avx2(__m256 lo, __m256 hi, float rn, int64_t g, const KnnPanel& P, __m256 qn0, __m256 qn1,
                                 __m256& t0, __m256& t1) {
  const __m256 r = _mm256_set1_ps(rn);
  const __m256 d0 = avx2_distance<M>(lo, qn0, r);
  const __m256 d1 = avx2_distance<M>(hi, qn1, r);
  unsigned mask = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(d0, t0, _CMP_LE_OQ))) |
                  (unsigned(_mm256_movemask_ps(_mm256_cmp_ps(d1, t1, _CMP_LE_OQ))) << 8);
  if (!mask) return;
  alignas(32) float d[kLanes];
  _mm256_store_ps(d, d0);
  _mm256_store_ps(d + 8, d1);
  do {
    int l = __builtin_ctz(mask);
    mask &= mask - 1;
    if (P.exclude_self && g == P.self0 + l) continue;
    float v = M == PP_METRIC_EUCLIDEAN ? std::sqrt(d[l]) : d[l];
    float* D = P.D + l * P.k;
    int32_t* I = P.I + l * P.k;
    if (topk_insert(D, I, P.k, v, static_cast<int32_t>(g))) P.thr[l] = filter_threshold(M, D[P.k - 1]);
  } while (mask);
  t0 = _mm256_loadu_ps(P.thr);
  t1 = _mm256_loadu_ps(P.thr + 8);
}

// Accumulators are named variables (an array of __m256 would live on the stack and be stored
// back every iteration); rows ≥ NR compile away.
// M < 0: store the 6×16 dot products to c. M ≥ 0 (the last dim slice of a knn): finish the block in
// registers with the top-k filter of metric M instead.
template <int NR, int M>
PP_AVX2 void micro_avx2_impl(const float* qp, const float* r, int64_t rs, int64_t kl, float* c, bool accumulate,
                             const float* rn, int64_t g0, const KnnPanel* P) {
#define PP_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define PP_DECL(i)                                                                   \
  __m256 lo##i = _mm256_setzero_ps(), hi##i = _mm256_setzero_ps();                   \
  const float* r##i = r + (NR > i ? i : 0) * rs;                                     \
  if (NR > i && accumulate) {                                                        \
    lo##i = _mm256_load_ps(c + i * kLanes);                                          \
    hi##i = _mm256_load_ps(c + i * kLanes + 8);                                      \
  }
#define PP_STEP(i)                                                                   \
  if (NR > i) {                                                                      \
    const __m256 b = _mm256_broadcast_ss(r##i + p);                                  \
    lo##i = _mm256_fmadd_ps(q0, b, lo##i);                                           \
    hi##i = _mm256_fmadd_ps(q1, b, hi##i);                                           \
  }
#define PP_STORE(i)                                                                  \
  if (NR > i) {                                                                      \
    _mm256_store_ps(c + i * kLanes, lo##i);                                          \
    _mm256_store_ps(c + i * kLanes + 8, hi##i);                                      \
  }
#define PP_KNN(i) \
  if (NR > i) knn_row_avx2<(M < 0 ? 0 : M)>(lo##i, hi##i, rn[i], g0 + i, *P, qn0, qn1, t0, t1);
  PP_ROWS(PP_DECL)
  for (int64_t p = 0; p < kl; ++p) {
    const __m256 q0 = _mm256_load_ps(qp + p * kLanes);
    const __m256 q1 = _mm256_load_ps(qp + p * kLanes + 8);
    PP_ROWS(PP_STEP)
  }
  if constexpr (M < 0) {
    PP_ROWS(PP_STORE)
  } else {
    const __m256 qn0 = _mm256_loadu_ps(P->qn), qn1 = _mm256_loadu_ps(P->qn + 8);
    __m256 t0 = _mm256_loadu_ps(P->thr), t1 = _mm256_loadu_ps(P->thr + 8);
    PP_ROWS(PP_KNN)
  }
#undef PP_KNN
#undef PP_STORE
#undef PP_STEP
#undef PP_DECL
#undef PP_ROWS
}

template <int NR>
PP_AVX2 void micro_avx2(const float* qp, const float* r, int64_t rs, int64_t kl, float* c, bool accumulate) {
  micro_avx2_impl<NR, -1>(qp, r, rs, kl, c, accumulate, nullptr, 0, nullptr);
}

template <int NR, int M>
PP_AVX2 void micro_knn_avx2(const float* qp, const float* r, int64_t rs, int64_t kl, float* c, bool accumulate,
                            const float* rn, int64_t g0, const KnnPanel& P) {
  micro_avx2_impl<NR, M>(qp, r, rs, kl, c, accumulate, rn, g0, &P);
}

template <int M>
PP_AVX2 bool dense_avx2(const float* c, int nr, const float* qn, const float* rn, int lanes, float* out, int64_t ld,
                        float fraction) {
  const __m256 qn0 = _mm256_loadu_ps(qn), qn1 = _mm256_loadu_ps(qn + 8);
  const __m256 f = _mm256_set1_ps(fraction);
  __m256 low = _mm256_setzero_ps();  // lanes below the recheck bound (padding lanes may set it: harmless)
  alignas(32) float d[kMicroRows][kLanes];
  for (int i = 0; i < nr; ++i) {
    const __m256 r = _mm256_set1_ps(rn[i]);
    __m256 d0 = avx2_distance<M>(_mm256_load_ps(c + i * kLanes), qn0, r);
    __m256 d1 = avx2_distance<M>(_mm256_load_ps(c + i * kLanes + 8), qn1, r);
    const __m256 b0 = M == PP_METRIC_COSINE ? f : _mm256_mul_ps(f, _mm256_add_ps(qn0, r));
    const __m256 b1 = M == PP_METRIC_COSINE ? f : _mm256_mul_ps(f, _mm256_add_ps(qn1, r));
    low = _mm256_or_ps(low, _mm256_or_ps(_mm256_cmp_ps(d0, b0, _CMP_LT_OQ), _mm256_cmp_ps(d1, b1, _CMP_LT_OQ)));
    if (M == PP_METRIC_EUCLIDEAN) {
      d0 = _mm256_sqrt_ps(d0);
      d1 = _mm256_sqrt_ps(d1);
    }
    _mm256_store_ps(d[i], d0);
    _mm256_store_ps(d[i] + 8, d1);
  }
  for (int l = 0; l < lanes; ++l)
    for (int i = 0; i < nr; ++i) out[l * ld + i] = d[i][l];
  return _mm256_movemask_ps(low) != 0;
}

// ---------------------------------------------------------------------------------------------
// AVX-512 kernels: the same panel layout, one zmm holds a row's 16 query lanes.

template <int M>
PP_AVX512 inline __m512 avx512_distance(__m512 dot, __m512 qn, __m512 rn) {
  if (M == PP_METRIC_COSINE) {
    __m512 d = _mm512_fnmadd_ps(dot, _mm512_mul_ps(qn, rn), _mm512_set1_ps(1.0f));
    return _mm512_min_ps(_mm512_set1_ps(2.0f), _mm512_max_ps(_mm512_setzero_ps(), d));
  }
  __m512 d = _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), dot, _mm512_add_ps(qn, rn));
  return _mm512_max_ps(_mm512_setzero_ps(), d);
}

template <int M>
PP_AVX512 inline void knn_row_avx512(__m512 acc, float rn, int64_t g, const KnnPanel& P, __m512 qn, __m512& thr) {
  const __m512 d = avx512_distance<M>(acc, qn, _mm512_set1_ps(rn));
  unsigned mask = _mm512_cmp_ps_mask(d, thr, _CMP_LE_OQ);
  if (!mask) return;
  alignas(64) float dv[kLanes];
  _mm512_store_ps(dv, d);
  do {
    int l = __builtin_ctz(mask);
    mask &= mask - 1;
    if (P.exclude_self && g == P.self0 + l) continue;
    float v = M == PP_METRIC_EUCLIDEAN ? std::sqrt(dv[l]) : dv[l];
    float* D = P.D + l * P.k;
    int32_t* I = P.I + l * P.k;
    if (topk_insert(D, I, P.k, v, static_cast<int32_t>(g))) P.thr[l] = filter_threshold(M, D[P.k - 1]);
  } while (mask);
  thr = _mm512_loadu_ps(P.thr);
}

template <int NR, int M>
PP_AVX512 void micro_avx512_impl(const float* qp, const float* r, int64_t rs, int64_t kl, float* c, bool accumulate,
                                 const float* rn, int64_t g0, const KnnPanel* P) {
  __m512 acc[NR];
#pragma GCC unroll 6
  for (int i = 0; i < NR; ++i) acc[i] = accumulate ? _mm512_loadu_ps(c + i * kLanes) : _mm512_setzero_ps();
  for (int64_t p = 0; p < kl; ++p) {
    const __m512 q = _mm512_loadu_ps(qp + p * kLanes);
#pragma GCC unroll 6
    for (int i = 0; i < NR; ++i) acc[i] = _mm512_fmadd_ps(q, _mm512_set1_ps(r[i * rs + p]), acc[i]);
  }
  if constexpr (M < 0) {
#pragma GCC unroll 6
    for (int i = 0; i < NR; ++i) _mm512_storeu_ps(c + i * kLanes, acc[i]);
  } else {
    const __m512 qn = _mm512_loadu_ps(P->qn);
    __m512 thr = _mm512_loadu_ps(P->thr);
#pragma GCC unroll 6
    for (int i = 0; i < NR; ++i) knn_row_avx512<M>(acc[i], rn[i], g0 + i, *P, qn, thr);
  }
}

template <int NR>
PP_AVX512 void micro_avx512(const float* qp, const float* r, int64_t rs, int64_t kl, float* c, bool accumulate) {
  micro_avx512_impl<NR, -1>(qp, r, rs, kl, c, accumulate, nullptr, 0, nullptr);
}

template <int NR, int M>
PP_AVX512 void micro_knn_avx512(const float* qp, const float* r, int64_t rs, int64_t kl, float* c, bool accumulate,
                                const float* rn, int64_t g0, const KnnPanel& P) {
  micro_avx512_impl<NR, M>(qp, r, rs, kl, c, accumulate, rn, g0, &P);
}

template <int M>
PP_AVX512 bool dense_avx512(const float* c, int nr, const float* qn, const float* rn, int lanes, float* out, int64_t ld,
                            float fraction) {
  const __m512 q = _mm512_loadu_ps(qn);
  const __m512 f = _mm512_set1_ps(fraction);
  __mmask16 low = 0;  // lanes below the recheck bound (padding lanes may set it: harmless)
  alignas(64) float d[kMicroRows][kLanes];
  for (int i = 0; i < nr; ++i) {
    const __m512 r = _mm512_set1_ps(rn[i]);
    __m512 di = avx512_distance<M>(_mm512_loadu_ps(c + i * kLanes), q, r);
    const __m512 bound = M == PP_METRIC_COSINE ? f : _mm512_mul_ps(f, _mm512_add_ps(q, r));
    low |= _mm512_cmp_ps_mask(di, bound, _CMP_LT_OQ);
    if (M == PP_METRIC_EUCLIDEAN) di = _mm512_sqrt_ps(di);
    _mm512_store_ps(d[i], di);
  }
  for (int l = 0; l < lanes; ++l)
    for (int i = 0; i < nr; ++i) out[l * ld + i] = d[i][l];
  return low != 0;
}

#endif  // PP_SIMD_X86

// ---------------------------------------------------------------------------------------------
// Dispatch table: picked once (PAIRPICK_SIMD forces a lower level).

using MicroFn = void (*)(const float*, const float*, int64_t, int64_t, float*, bool);
using MicroKnnFn = void (*)(const float*, const float*, int64_t, int64_t, float*, bool, const float*, int64_t,
                           const KnnPanel&);
using DenseFn = bool (*)(const float*, int, const float*, const float*, int, float*, int64_t, float);

struct Kernels {
  MicroFn micro[kMicroRows + 1];
  MicroKnnFn micro_knn[3][kMicroRows + 1];  // [metric][rows]: micro-kernel + fused top-k filter
  DenseFn dense[3];
};

#define PP_MICRO_KNN(F, M) {nullptr, F<1, M>, F<2, M>, F<3, M>, F<4, M>, F<5, M>, F<6, M>}

const Kernels& kernels() {
  static const Kernels scalar = {
      {nullptr, micro_scalar<1>, micro_scalar<2>, micro_scalar<3>, micro_scalar<4>, micro_scalar<5>, micro_scalar<6>},
      {PP_MICRO_KNN(micro_knn_scalar, 0), PP_MICRO_KNN(micro_knn_scalar, 1), PP_MICRO_KNN(micro_knn_scalar, 2)},
      {dense_scalar<0>, dense_scalar<1>, dense_scalar<2>}};
#ifdef PP_SIMD_X86
  static const Kernels avx2 = {
      {nullptr, micro_avx2<1>, micro_avx2<2>, micro_avx2<3>, micro_avx2<4>, micro_avx2<5>, micro_avx2<6>},
      {PP_MICRO_KNN(micro_knn_avx2, 0), PP_MICRO_KNN(micro_knn_avx2, 1), PP_MICRO_KNN(micro_knn_avx2, 2)},
      {dense_avx2<0>, dense_avx2<1>, dense_avx2<2>}};
  static const Kernels avx512 = {
      {nullptr, micro_avx512<1>, micro_avx512<2>, micro_avx512<3>, micro_avx512<4>, micro_avx512<5>, micro_avx512<6>},
      {PP_MICRO_KNN(micro_knn_avx512, 0), PP_MICRO_KNN(micro_knn_avx512, 1), PP_MICRO_KNN(micro_knn_avx512, 2)},
      {dense_avx512<0>, dense_avx512<1>, dense_avx512<2>}};
  if (cpu_has_avx512()) return avx512;
  if (cpu_has_avx2()) return avx2;
#endif
  return scalar;
}

// ---------------------------------------------------------------------------------------------
// The blocked driver shared by `distances` and `knn_merge`.

struct Problem {
  const void* q;
  const void* r;
  bool half;
  int64_t rows_q, rows_r, dim;
  int metric;
};

// How the work is split into parallel units: enough units to keep every thread busy (and to
// balance load when other processes share the cores), each unit big enough to amortise packing.
struct Plan {
  int64_t chunk, q_chunks, part_rows, parts;
};

Plan make_plan(int64_t rows_q, int64_t rows_r) {
  const int64_t want = 2 * int64_t(worker_threads());
  Plan p;
  p.chunk = std::clamp<int64_t>(ceil_div(ceil_div(rows_q, want), kLanes) * kLanes, kLanes, kMaxChunk);
  p.q_chunks = ceil_div(rows_q, p.chunk);
  p.parts = 1;
  if (p.q_chunks < want) {
    // Few queries: split the ref rows too (each part keeps a local top-k, merged afterwards).
    p.parts = std::min(ceil_div(want, p.q_chunks), std::max<int64_t>(1, rows_r / (2 * kTileRows)));
  }
  p.part_rows = ceil_div(rows_r, p.parts);
  p.parts = ceil_div(rows_r, p.part_rows);
  return p;
}

// ‖r‖² or 1/‖r‖ of every ref row, computed once per call.
std::vector<float> ref_norms(const Problem& pb) {
  std::vector<float> out(static_cast<size_t>(pb.rows_r));
  const int64_t grain = std::max<int64_t>(64, (int64_t(1) << 16) / std::max<int64_t>(1, pb.dim));
  parallel_for(pb.rows_r, grain, [&](int64_t b, int64_t e) {
    std::vector<float> row(pb.half ? size_t(pb.dim) : 0);
    for (int64_t j = b; j < e; ++j) {
      const float* x;
      if (pb.half) {
        load_row(pb.r, true, size_t(j * pb.dim), row.data(), size_t(pb.dim));
        x = row.data();
      } else {
        x = static_cast<const float*>(pb.r) + j * pb.dim;
      }
      out[size_t(j)] = norm_term(x, pb.dim, pb.metric);
    }
  });
  return out;
}

// One unit's packed queries: panels of 16 rows, [dim][16] each, padding lanes zero.
struct PackedQueries {
  Floats data, qn;
  int64_t rows = 0, panels = 0;
};

void pack_queries(const Problem& pb, int64_t q0, int64_t m, PackedQueries& out) {
  const int64_t dim = pb.dim;
  out.rows = m;
  out.panels = ceil_div(m, kLanes);
  out.data.resize(size_t(out.panels * dim * kLanes));
  out.qn.resize(size_t(out.panels * kLanes));
  std::memset(out.data.data() + (out.panels - 1) * dim * kLanes, 0, size_t(dim * kLanes) * sizeof(float));
  std::vector<float> row(static_cast<size_t>(dim));
  for (int64_t i = 0; i < out.panels * kLanes; ++i) out.qn[size_t(i)] = 0.0f;
  for (int64_t i = 0; i < m; ++i) {
    load_row(pb.q, pb.half, size_t((q0 + i) * dim), row.data(), size_t(dim));
    out.qn[size_t(i)] = norm_term(row.data(), dim, pb.metric);
    float* dst = out.data.data() + (i / kLanes) * dim * kLanes + (i % kLanes);
    for (int64_t p = 0; p < dim; ++p) dst[p * kLanes] = row[size_t(p)];
  }
}

// Runs the tiles of one unit (queries [q0, q0+m) packed in `Q`, refs [r0, r1)). Every 6×16 block
// goes through the micro-kernel slice by slice; its last slice is left to
// finish(panel, ref row j (absolute), nr, panel slice, ref rows, ref stride, slice length, block,
// accumulate), which runs the micro-kernel and consumes the finished dot products.
template <class Finish>
void run_tiles(const Problem& pb, const Kernels& K, const PackedQueries& Q, int64_t r0, int64_t r1, Finish&& finish) {
  const int64_t dim = pb.dim;
  const int64_t slices = ceil_div(dim, kSlice);
  Floats tile;  // fp16 refs: the current tile slice in fp32
  if (pb.half) tile.resize(size_t(kTileRows * std::min(dim, kSlice)));
  Floats block;  // dot products: one 6×16 block, or all blocks of a tile when dim needs several slices
  block.resize(size_t(slices == 1 ? kMicroRows * kLanes : Q.panels * kTileRows * kLanes));
  for (int64_t t0 = r0; t0 < r1; t0 += kTileRows) {
    const int64_t nt = std::min(kTileRows, r1 - t0);
    for (int64_t s = 0; s < slices; ++s) {
      const int64_t kc = s * kSlice, kl = std::min(kSlice, dim - kc);
      const float* rbase;
      int64_t rs;
      if (pb.half) {
        const uint16_t* src = static_cast<const uint16_t*>(pb.r);
        for (int64_t j = 0; j < nt; ++j) half_to_float_n(src + (t0 + j) * dim + kc, tile.data() + j * kl, size_t(kl));
        rbase = tile.data();
        rs = kl;
      } else {
        rbase = static_cast<const float*>(pb.r) + t0 * dim + kc;
        rs = dim;
      }
      const bool last = s == slices - 1;
      // Six ref rows stay in L1 while the query panels stream past them from L2 (one
      // sequential stream, which the prefetchers follow better than six row streams).
      for (int64_t j = 0; j < nt; j += kMicroRows) {
        const int nr = int(std::min<int64_t>(kMicroRows, nt - j));
        for (int64_t pi = 0; pi < Q.panels; ++pi) {
          const float* qp = Q.data.data() + pi * dim * kLanes + kc * kLanes;
          float* c = slices == 1 ? block.data() : block.data() + (pi * kTileRows + j) * kLanes;
          if (last) finish(pi, t0 + j, nr, qp, rbase + j * rs, rs, kl, c, s > 0);
          else K.micro[nr](qp, rbase + j * rs, rs, kl, c, s > 0);
        }
      }
    }
  }
}

// Replaces the fast distances of a top-k row (its filled prefix) by exact ones and restores the
// (distance, index) order — by insertion, since the fast order is already nearly right.
void rescore(ExactFn exact, const float* q, RowReader& refs, int64_t dim, int metric, int64_t ref_offset, int64_t k,
             float* D, int32_t* I) {
  int64_t n = 0;
  for (; n < k && I[n] >= 0; ++n) D[n] = exact(q, refs.row(I[n] - ref_offset), dim, metric);
  for (int64_t s = 1; s < n; ++s) {
    const float d = D[s];
    const int32_t g = I[s];
    int64_t pos = s;
    for (; pos > 0 && better(d, g, D[pos - 1], I[pos - 1]); --pos) {
      D[pos] = D[pos - 1];
      I[pos] = I[pos - 1];
    }
    D[pos] = d;
    I[pos] = g;
  }
}

struct MergeScratch {
  std::vector<float> dist;
  std::vector<int32_t> idx;
};

// state ← the k best of (state ∪ candidates); both rows sorted by (distance, index), unfilled
// slots (+inf, −1) at their ends; only the first k candidates are read. Linear in k.
void merge_sorted(float* SD, int32_t* SI, const float* CD, const int32_t* CI, int64_t k, MergeScratch& scratch) {
  if (CI[0] < 0 || !better(CD[0], CI[0], SD[k - 1], SI[k - 1])) return;  // nothing makes the cut
  scratch.dist.resize(size_t(k));
  scratch.idx.resize(size_t(k));
  int64_t a = 0, b = 0;  // a + b = out < k, so both stay in range
  for (int64_t out = 0; out < k; ++out) {
    if (CI[b] >= 0 && better(CD[b], CI[b], SD[a], SI[a])) {
      scratch.dist[size_t(out)] = CD[b];
      scratch.idx[size_t(out)] = CI[b++];
    } else {
      scratch.dist[size_t(out)] = SD[a];
      scratch.idx[size_t(out)] = SI[a++];
    }
  }
  std::memcpy(SD, scratch.dist.data(), size_t(k) * sizeof(float));
  std::memcpy(SI, scratch.idx.data(), size_t(k) * sizeof(int32_t));
}

void check_args(int64_t rows_a, int64_t rows_b, int64_t dim, int metric) {
  if (metric < 0 || metric >= PP_METRIC_COUNT) throw Error(PP_E_OPTION, "unknown metric code " + std::to_string(metric));
  if (rows_a < 0 || rows_b < 0 || dim < 1) throw Error(PP_E_SHAPE, "invalid matrix sizes");
}

void distances(const void* a, const void* b, bool half, int64_t rows_a, int64_t rows_b, int64_t dim, int metric,
               float* out) {
  check_args(rows_a, rows_b, dim, metric);
  if (rows_a == 0 || rows_b == 0) return;
  const Problem pb{a, b, half, rows_a, rows_b, dim, metric};
  const Kernels& K = kernels();
  const Plan plan = make_plan(rows_a, rows_b);
  const std::vector<float> rn = ref_norms(pb);
  const ExactFn exact = exact_distance_fn();
  const float fraction = recheck_fraction(dim);
  parallel_for(plan.q_chunks * plan.parts, 1, [&](int64_t ub, int64_t ue) {
    PackedQueries Q;
    RowReader qrows(a, half, dim), rrows(b, half, dim);
    for (int64_t u = ub; u < ue; ++u) {
      const int64_t q0 = (u / plan.parts) * plan.chunk, m = std::min(plan.chunk, rows_a - q0);
      const int64_t r0 = (u % plan.parts) * plan.part_rows, r1 = std::min(rows_b, r0 + plan.part_rows);
      pack_queries(pb, q0, m, Q);
      run_tiles(pb, K, Q, r0, r1,
                [&](int64_t pi, int64_t j, int nr, const float* qp, const float* rp, int64_t rs, int64_t kl, float* c,
                    bool accumulate) {
        K.micro[nr](qp, rp, rs, kl, c, accumulate);
        const int lanes = int(std::min<int64_t>(kLanes, m - pi * kLanes));
        const float* qn = Q.qn.data() + pi * kLanes;
        float* dst = out + (q0 + pi * kLanes) * rows_b + j;
        // Values too small for the fast form's precision are recomputed exactly (see recheck_fraction).
        if (!K.dense[metric](c, nr, qn, rn.data() + j, lanes, dst, rows_b, fraction)) return;
        for (int l = 0; l < lanes; ++l)
          for (int i = 0; i < nr; ++i) {
            float& v = dst[l * rows_b + i];
            const float bound = metric == PP_METRIC_COSINE ? fraction : fraction * (qn[l] + rn[size_t(j + i)]);
            if ((metric == PP_METRIC_EUCLIDEAN ? v * v : v) < bound)
              v = exact(qrows.row(q0 + pi * kLanes + l), rrows.row(j + i), dim, metric);
          }
      });
    }
  });
}

void knn_merge(const void* query, const void* ref, bool half, int64_t rows_q, int64_t rows_r, int64_t dim, int64_t k,
               int metric, int64_t ref_offset, int64_t query_offset, bool exclude_self, int32_t* idx, float* dist) {
  check_args(rows_q, rows_r, dim, metric);
  if (k < 1) throw Error(PP_E_OPTION, "k must be at least 1");
  if (ref_offset < 0 || ref_offset + rows_r > std::numeric_limits<int32_t>::max())
    throw Error(PP_E_SHAPE, "ref indices must fit in int32");
  if (rows_q == 0 || rows_r == 0) return;
  const Problem pb{query, ref, half, rows_q, rows_r, dim, metric};
  const Kernels& K = kernels();
  const Plan plan = make_plan(rows_q, rows_r);
  const std::vector<float> rn = ref_norms(pb);

  const ExactFn exact = exact_distance_fn();

  // Each unit ranks its refs with the fast form into a fresh local list of the best k + kKnnSpare
  // (the part's list when the ref is split into parts, merged below), rescores that list exactly,
  // re-sorts it and merges its best k into its queries' rows of the state. The spare candidates
  // absorb the fast form's ranking error (~1e-6·(‖q‖² + ‖r‖²), ~2e-7 for cosine): a ref that
  // exactly belongs in the top k is missed only if more than kKnnSpare other refs lie within that
  // error of the k-th distance (a near-tie, e.g. a cluster of > kKnnSpare near-duplicates at the
  // boundary), and then its distance is equal to the returned one within that error.
  const int64_t kk = k + kKnnSpare;
  std::vector<float> part_dist;
  std::vector<int32_t> part_idx;
  if (plan.parts > 1) {
    part_dist.assign(size_t(plan.parts * rows_q * kk), kInf);
    part_idx.assign(size_t(plan.parts * rows_q * kk), -1);
  }

  parallel_for(plan.q_chunks * plan.parts, 1, [&](int64_t ub, int64_t ue) {
    PackedQueries Q;
    std::vector<float> thr, local_dist;
    std::vector<int32_t> local_idx;
    MergeScratch scratch;
    RowReader qrows(query, half, dim), rrows(ref, half, dim);
    for (int64_t u = ub; u < ue; ++u) {
      const int64_t part = u % plan.parts;
      const int64_t q0 = (u / plan.parts) * plan.chunk, m = std::min(plan.chunk, rows_q - q0);
      const int64_t r0 = part * plan.part_rows, r1 = std::min(rows_r, r0 + plan.part_rows);
      pack_queries(pb, q0, m, Q);
      float* D;
      int32_t* I;
      if (plan.parts > 1) {
        D = part_dist.data() + (part * rows_q + q0) * kk;
        I = part_idx.data() + (part * rows_q + q0) * kk;
      } else {
        local_dist.assign(size_t(m * kk), kInf);
        local_idx.assign(size_t(m * kk), -1);
        D = local_dist.data();
        I = local_idx.data();
      }
      thr.assign(size_t(Q.panels * kLanes), -kInf);
      for (int64_t i = 0; i < m; ++i) thr[size_t(i)] = kInf;
      run_tiles(pb, K, Q, r0, r1,
                [&](int64_t pi, int64_t j, int nr, const float* qp, const float* rp, int64_t rs, int64_t kl, float* c,
                    bool accumulate) {
        const KnnPanel P{Q.qn.data() + pi * kLanes, thr.data() + pi * kLanes, D + pi * kLanes * kk,
                         I + pi * kLanes * kk, kk, exclude_self, query_offset + q0 + pi * kLanes};
        K.micro_knn[metric][nr](qp, rp, rs, kl, c, accumulate, rn.data() + j, ref_offset + j, P);
      });
      for (int64_t i = 0; i < m; ++i) {
        float* CD = D + i * kk;
        int32_t* CI = I + i * kk;
        rescore(exact, qrows.row(q0 + i), rrows, dim, metric, ref_offset, kk, CD, CI);
        if (plan.parts == 1) merge_sorted(dist + (q0 + i) * k, idx + (q0 + i) * k, CD, CI, k, scratch);
      }
    }
  });

  if (plan.parts > 1) {
    parallel_for(rows_q, 256, [&](int64_t b, int64_t e) {
      MergeScratch scratch;
      for (int64_t q = b; q < e; ++q)
        for (int64_t part = 0; part < plan.parts; ++part)
          merge_sorted(dist + q * k, idx + q * k, part_dist.data() + (part * rows_q + q) * kk,
                       part_idx.data() + (part * rows_q + q) * kk, k, scratch);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// min_update: one center against every row — a memory-bound pass, so the direct form Σ(p−c)².

// Eight independent partial sums (the compiler keeps them in vector registers; one running sum
// would serialise on the add latency).
float row_distance_scalar(const void* points, bool half, int64_t row, const float* c, float c_term, int64_t dim,
                          int metric) {
  float x[64];
  float acc[8] = {0}, dot[8] = {0}, nn[8] = {0};
  for (int64_t p0 = 0; p0 < dim; p0 += 64) {
    const int64_t n = std::min<int64_t>(64, dim - p0);
    load_row(points, half, size_t(row * dim + p0), x, size_t(n));
    const float* cc = c + p0;
    const int64_t full = n & ~int64_t(7);
    if (metric == PP_METRIC_COSINE) {
      for (int64_t p = 0; p < full; p += 8)
        for (int l = 0; l < 8; ++l) {
          dot[l] += x[p + l] * cc[p + l];
          nn[l] += x[p + l] * x[p + l];
        }
      for (int64_t p = full; p < n; ++p) {
        dot[0] += x[p] * cc[p];
        nn[0] += x[p] * x[p];
      }
    } else {
      for (int64_t p = 0; p < full; p += 8)
        for (int l = 0; l < 8; ++l) {
          const float t = x[p + l] - cc[p + l];
          acc[l] += t * t;
        }
      for (int64_t p = full; p < n; ++p) {
        const float t = x[p] - cc[p];
        acc[0] += t * t;
      }
    }
  }
  float s = 0, d = 0, q = 0;
  for (int l = 0; l < 8; ++l) s += acc[l], d += dot[l], q += nn[l];
  if (metric == PP_METRIC_COSINE) {
    if (q <= 0 || c_term <= 0) return 1.0f;
    return std::min(2.0f, std::max(0.0f, 1.0f - d * c_term / std::sqrt(q)));
  }
  return metric == PP_METRIC_EUCLIDEAN ? std::sqrt(s) : s;
}

#ifdef PP_SIMD_X86
PP_AVX2 float row_distance_avx2(const void* points, bool half, int64_t row, const float* c, float c_term, int64_t dim,
                                int metric) {
  const int64_t base = row * dim;
  int64_t p = 0;
  if (metric == PP_METRIC_COSINE) {
    __m256 dot0 = _mm256_setzero_ps(), dot1 = dot0, nn0 = dot0, nn1 = dot0;
    for (; p + 16 <= dim; p += 16) {
      __m256 x0 = load8(points, half, base + p), x1 = load8(points, half, base + p + 8);
      dot0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(c + p), dot0);
      dot1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(c + p + 8), dot1);
      nn0 = _mm256_fmadd_ps(x0, x0, nn0);
      nn1 = _mm256_fmadd_ps(x1, x1, nn1);
    }
    float dot = hsum(_mm256_add_ps(dot0, dot1)), nn = hsum(_mm256_add_ps(nn0, nn1));
    for (; p < dim; ++p) {
      float x = half ? half_to_float(static_cast<const uint16_t*>(points)[base + p]) : static_cast<const float*>(points)[base + p];
      dot += x * c[p];
      nn += x * x;
    }
    if (nn <= 0 || c_term <= 0) return 1.0f;
    return std::min(2.0f, std::max(0.0f, 1.0f - dot * c_term / std::sqrt(nn)));
  }
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (; p + 32 <= dim; p += 32) {
    __m256 t0 = _mm256_sub_ps(load8(points, half, base + p), _mm256_loadu_ps(c + p));
    __m256 t1 = _mm256_sub_ps(load8(points, half, base + p + 8), _mm256_loadu_ps(c + p + 8));
    __m256 t2 = _mm256_sub_ps(load8(points, half, base + p + 16), _mm256_loadu_ps(c + p + 16));
    __m256 t3 = _mm256_sub_ps(load8(points, half, base + p + 24), _mm256_loadu_ps(c + p + 24));
    a0 = _mm256_fmadd_ps(t0, t0, a0);
    a1 = _mm256_fmadd_ps(t1, t1, a1);
    a2 = _mm256_fmadd_ps(t2, t2, a2);
    a3 = _mm256_fmadd_ps(t3, t3, a3);
  }
  for (; p + 8 <= dim; p += 8) {
    __m256 t = _mm256_sub_ps(load8(points, half, base + p), _mm256_loadu_ps(c + p));
    a0 = _mm256_fmadd_ps(t, t, a0);
  }
  float acc = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; p < dim; ++p) {
    float x = half ? half_to_float(static_cast<const uint16_t*>(points)[base + p]) : static_cast<const float*>(points)[base + p];
    float t = x - c[p];
    acc += t * t;
  }
  return metric == PP_METRIC_EUCLIDEAN ? std::sqrt(acc) : acc;
}
#endif

#ifdef PP_SIMD_X86
// 16 values from element `at` of an fp32 or fp16 array, the lanes of `live` only (others 0).
PP_AVX512 inline __m512 load16(const void* data, bool half, int64_t at, __mmask16 live) {
  if (half) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(live, static_cast<const uint16_t*>(data) + at));
  return _mm512_maskz_loadu_ps(live, static_cast<const float*>(data) + at);
}

PP_AVX512 inline __mmask16 live16(int64_t left) { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1); }

// The AVX-512 row distance: 16-wide, the tail by masked loads (no scalar remainder).
PP_AVX512 float row_distance_avx512(const void* points, bool half, int64_t row, const float* c, float c_term,
                                    int64_t dim, int metric) {
  const int64_t base = row * dim;
  if (metric == PP_METRIC_COSINE) {
    __m512 dot0 = _mm512_setzero_ps(), dot1 = dot0, nn0 = dot0, nn1 = dot0;
    int64_t p = 0;
    for (; p + 32 <= dim; p += 32) {
      const __m512 x0 = load16(points, half, base + p, 0xFFFF), x1 = load16(points, half, base + p + 16, 0xFFFF);
      dot0 = _mm512_fmadd_ps(x0, _mm512_loadu_ps(c + p), dot0);
      dot1 = _mm512_fmadd_ps(x1, _mm512_loadu_ps(c + p + 16), dot1);
      nn0 = _mm512_fmadd_ps(x0, x0, nn0);
      nn1 = _mm512_fmadd_ps(x1, x1, nn1);
    }
    for (; p < dim; p += 16) {
      const __mmask16 m = live16(dim - p);
      const __m512 x = load16(points, half, base + p, m);
      dot0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, c + p), dot0);
      nn0 = _mm512_fmadd_ps(x, x, nn0);
    }
    const float dot = _mm512_reduce_add_ps(_mm512_add_ps(dot0, dot1)), nn = _mm512_reduce_add_ps(_mm512_add_ps(nn0, nn1));
    if (nn <= 0 || c_term <= 0) return 1.0f;
    return std::min(2.0f, std::max(0.0f, 1.0f - dot * c_term / std::sqrt(nn)));
  }
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t p = 0;
  for (; p + 64 <= dim; p += 64) {
    const __m512 t0 = _mm512_sub_ps(load16(points, half, base + p, 0xFFFF), _mm512_loadu_ps(c + p));
    const __m512 t1 = _mm512_sub_ps(load16(points, half, base + p + 16, 0xFFFF), _mm512_loadu_ps(c + p + 16));
    const __m512 t2 = _mm512_sub_ps(load16(points, half, base + p + 32, 0xFFFF), _mm512_loadu_ps(c + p + 32));
    const __m512 t3 = _mm512_sub_ps(load16(points, half, base + p + 48, 0xFFFF), _mm512_loadu_ps(c + p + 48));
    a0 = _mm512_fmadd_ps(t0, t0, a0);
    a1 = _mm512_fmadd_ps(t1, t1, a1);
    a2 = _mm512_fmadd_ps(t2, t2, a2);
    a3 = _mm512_fmadd_ps(t3, t3, a3);
  }
  for (; p < dim; p += 16) {
    const __mmask16 m = live16(dim - p);
    const __m512 t = _mm512_sub_ps(load16(points, half, base + p, m), _mm512_maskz_loadu_ps(m, c + p));
    a0 = _mm512_fmadd_ps(t, t, a0);
  }
  const float acc = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  return metric == PP_METRIC_EUCLIDEAN ? std::sqrt(acc) : acc;
}
#endif

MinUpdateResult min_update(const void* points, const void* center, bool half, int64_t rows, int64_t dim, int metric,
                           float* min_dist, const uint8_t* exclude) {
  check_args(rows, 1, dim, metric);
  MinUpdateResult result{-1, -kInf};
  if (rows == 0) return result;
  std::vector<float> c(static_cast<size_t>(dim));
  load_row(center, half, 0, c.data(), size_t(dim));
  // Cosine needs 1/‖c‖ (0 for a zero center: distance 1 to everything).
  const float c_term = metric == PP_METRIC_COSINE ? norm_term(c.data(), dim, PP_METRIC_COSINE) : 0.0f;
  auto fn = row_distance_scalar;
#ifdef PP_SIMD_X86
  if (cpu_has_avx512()) fn = row_distance_avx512;
  else if (cpu_has_avx2()) fn = row_distance_avx2;
#endif
  // ~256 KiB of rows per chunk; chunk results are reduced in order, so ties keep the lowest index.
  const int64_t row_bytes = dim * (half ? 2 : 4);
  const int64_t grain = std::max<int64_t>(16, (int64_t(256) << 10) / row_bytes);
  const int64_t chunks = ceil_div(rows, grain);
  std::vector<MinUpdateResult> partial(size_t(chunks), MinUpdateResult{-1, -kInf});
  // Σ(p−c)² in fp32 has no cancellation (p − c is exact for close values), but the fp32 cosine
  // 1 − ⟨p,c⟩/(‖p‖‖c‖) does: values it cannot give to 1e-5 relative are recomputed in float64.
  const ExactFn exact = exact_distance_fn();
  const float cosine_recheck = recheck_fraction(dim);
  parallel_for(rows, grain, [&](int64_t b, int64_t e) {
    MinUpdateResult best{-1, -kInf};
    RowReader prows(points, half, dim);
    for (int64_t i = b; i < e; ++i) {
      float d = fn(points, half, i, c.data(), c_term, dim, metric);
      if (metric == PP_METRIC_COSINE && d < cosine_recheck) d = exact(prows.row(i), c.data(), dim, metric);
      float m = min_dist[i];
      if (d < m || m != m) m = d;  // a NaN slot takes the new distance
      min_dist[i] = m;
      if ((!exclude || !exclude[i]) && (best.argmax < 0 || m > best.max)) best = {i, m};
    }
    partial[size_t(b / grain)] = best;
  });
  for (const MinUpdateResult& p : partial)
    if (p.argmax >= 0 && (result.argmax < 0 || p.max > result.max)) result = p;
  return result;
}

class CpuDistanceEngine final : public DistanceEngine {
 public:
  void distances(const DistancesArgs& a) const override {
    pp::distances(a.a, a.b, a.half, a.rows_a, a.rows_b, a.dim, a.metric, a.out);
  }
  // Holds nothing (hold_rows: null): held rows can only come from another engine.
  void knn_merge(const KnnMergeArgs& a) const override {
    if (a.held_ref) throw Error(PP_E_BACKEND, "knnMerge: rows held by another backend were passed to cpu");
    pp::knn_merge(a.query, a.ref, a.half, a.rows_q, a.rows_r, a.dim, a.k, a.metric, a.ref_offset, a.query_offset,
                  a.exclude_self, a.idx, a.dist);
  }
  MinUpdateResult min_update(const MinUpdateArgs& a) const override {
    if (a.held_points) throw Error(PP_E_BACKEND, "minUpdate: rows held by another backend were passed to cpu");
    return pp::min_update(a.points, a.center, a.half, a.rows, a.dim, a.metric, a.min_dist, a.exclude);
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Facility-location gains over a dense table row: Σ_j max(0, t[j] − c[j]) in float64.

namespace {

using RowGainFn = double (*)(const float* t, const float* c, int64_t n);

double row_gain_scalar(const float* t, const float* c, int64_t n) {
  double g = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double d = static_cast<double>(t[j]) - c[j];
    if (d > 0) g += d;
  }
  return g;
}

#ifdef PP_SIMD_X86
PP_AVX2 double row_gain_avx2(const float* t, const float* c, int64_t n) {
  const __m256d zero = _mm256_setzero_pd();
  __m256d s0 = zero, s1 = zero;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 tf = _mm256_loadu_ps(t + j), cf = _mm256_loadu_ps(c + j);
    const __m256d lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(tf)), _mm256_cvtps_pd(_mm256_castps256_ps128(cf)));
    const __m256d hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(tf, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(cf, 1)));
    s0 = _mm256_add_pd(s0, _mm256_max_pd(lo, zero));
    s1 = _mm256_add_pd(s1, _mm256_max_pd(hi, zero));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + row_gain_scalar(t + j, c + j, n - j);
}

PP_AVX512 double row_gain_avx512(const float* t, const float* c, int64_t n) {
  const __m512d zero = _mm512_setzero_pd();
  __m512d s0 = zero, s1 = zero;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 tf = _mm512_loadu_ps(t + j), cf = _mm512_loadu_ps(c + j);
    const __m512d lo = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(tf)), _mm512_cvtps_pd(_mm512_castps512_ps256(cf)));
    const __m512d hi = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(tf, 1)), _mm512_cvtps_pd(_mm512_extractf32x8_ps(cf, 1)));
    s0 = _mm512_add_pd(s0, _mm512_max_pd(lo, zero));
    s1 = _mm512_add_pd(s1, _mm512_max_pd(hi, zero));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) + row_gain_scalar(t + j, c + j, n - j);
}
#endif

RowGainFn row_gain_kernel() {
#ifdef PP_SIMD_X86
  if (cpu_has_avx512()) return row_gain_avx512;
  if (cpu_has_avx2()) return row_gain_avx2;
#endif
  return row_gain_scalar;
}

}  // namespace

void cover_gains(const CoverGainsArgs& a) {
  const int64_t n = a.columns;
  if (a.add >= 0) {
    const float* t = a.table + a.add * n;
    for (int64_t j = 0; j < n; ++j) a.cover[j] = std::max(a.cover[j], t[j]);
  }
  const RowGainFn gain = row_gain_kernel();
  // Rows of ~64k values per task: one row of a large table, many of a small one.
  parallel_for(a.count, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, n)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) a.gains[r] = gain(a.table + static_cast<int64_t>(a.rows[r]) * n, a.cover, n);
  });
}

const DistanceEngine& cpu_distance_engine() {
  static const CpuDistanceEngine engine;
  return engine;
}

}  // namespace pp
