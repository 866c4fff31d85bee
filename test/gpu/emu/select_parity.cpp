// Checks every pp_cuda_select_* entry point (cuda/api.h), run on the host through the fiber
// emulator (run.sh), against the CPU selection engine (native/core/select.cc) and float64
// references of spec §2–3: ragged pools (row counts and dims off the tile sizes), M = 1–3, fp16
// and fp32 (mixed), γ 0/1, resident and forced-streamed pools, pruning on and off, each under
// several seeded thread/block schedules. Also the fault cases of the engine (out-of-memory
// recovery, no device-wide synchronisation, residency with cached workspaces, cross-modal terms
// of unequal dims, deterministic column sums, no stream leak on a failed open).
//
// Tolerances: a float32 dot of two unit vectors of dim d is off by at most (d + 8)·2⁻²⁴, so a
// unit distance √(2 − 2c) is off by at most √(2(d + 8)·2⁻²⁴) (the bound select.cc's pruning
// margin uses); a pair value sums M (or M² with γ) of those. Engine values are compared with the
// float64 value within that bound `eps`; counts are bracketed by the float64 counts at radius ∓ eps;
// a greedy pick must be within the bound of the best candidate by the float64 score, and the
// CUDA and CPU engines must make the same picks up to the first float64 near-tie.
//
// The pair tiles (cuda/select_pair.cu, on distance.cuh's tile) have three paths — CUDA-core FMAs,
// tensor cores with cp.async double buffering (fp16, dims a multiple of 8) and tensor cores with
// plain staging (other fp16 dims) — and the "tiles" group runs all-fp16 pools through both
// tensor-core ones, resident and streamed.
//
// Usage: select_parity [select|quick|prepare|pair|rows|kmeans|greedy|streamed|faults|tiles] [seed]
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "api.h"
#include "harness.h"
#include "core/select.h"



static char err[512];

// Seconds since the start, printed before each summary line (the emulator is slow; shows where).
static void stamp() {
  static const std::clock_t t0 = std::clock();
  std::printf("[%6.1fs] ", double(std::clock() - t0) / CLOCKS_PER_SEC);
}

static uint16_t to_half_bits(float v) {
  __half x = __float2half(v);
  uint16_t b;
  std::memcpy(&b, &x, 2);
  return b;
}
static float from_half_bits(uint16_t b) {
  __half x;
  std::memcpy(&x, &b, 2);
  return __half2float(x);
}

// A pool: M modalities, row i of each the same sample. u holds the float64 normalised rows.
struct Pool {
  int64_t rows;
  std::vector<int64_t> dims;
  std::vector<int> half;
  std::vector<std::vector<float>> f;      // values as stored (fp16-rounded when half)
  std::vector<std::vector<uint16_t>> h;   // fp16 bits
  std::vector<std::vector<double>> u;     // normalised, float64
  std::vector<const void*> data;
  int M() const { return (int)dims.size(); }
  int64_t total() const {
    int64_t t = 0;
    for (auto d : dims) t += d;
    return t;
  }
  size_t bytes() const {
    size_t b = 0;
    for (int m = 0; m < M(); ++m) b += size_t(rows) * dims[m] * (half[m] ? 2 : 4);
    return b;
  }
};

// Rows from a few clusters plus noise (so values spread), fp16 where asked. Tight: four clusters
// of equal size (row i in cluster i % 4) with noise 0.05 instead of 0.8 — far apart (random
// centres: unit distance ≈ √2 per modality) and tight (≈ 0.07 per modality within a cluster).
static Pool make_pool(int64_t rows, std::vector<int64_t> dims, std::vector<int> half, bool tight = false) {
  Pool p{rows, dims, half, {}, {}, {}, {}};
  const int M = (int)dims.size();
  p.f.resize(M);
  p.h.resize(M);
  p.u.resize(M);
  for (int m = 0; m < M; ++m) {
    const int64_t d = dims[m];
    std::vector<double> centres(size_t(4 * d));
    for (auto& c : centres) c = normal();
    p.f[m].resize(size_t(rows * d));
    for (int64_t i = 0; i < rows; ++i) {
      const int c = tight ? (int)(i % 4) : (int)(uni() * 4);
      for (int64_t t = 0; t < d; ++t) p.f[m][i * d + t] = float(centres[c * d + t] + (tight ? 0.05 : 0.8) * normal());
    }
    if (half[m]) {
      p.h[m].resize(p.f[m].size());
      for (size_t e = 0; e < p.f[m].size(); ++e) {
        p.h[m][e] = to_half_bits(p.f[m][e]);
        p.f[m][e] = from_half_bits(p.h[m][e]);
      }
    }
    p.u[m].resize(p.f[m].size());
    for (int64_t i = 0; i < rows; ++i) {
      double ss = 0;
      for (int64_t t = 0; t < d; ++t) ss += double(p.f[m][i * d + t]) * p.f[m][i * d + t];
      for (int64_t t = 0; t < d; ++t) p.u[m][i * d + t] = p.f[m][i * d + t] / std::sqrt(ss);
    }
    p.data.push_back(half[m] ? (const void*)p.h[m].data() : (const void*)p.f[m].data());
  }
  return p;
}

// Spreads the fp32 modalities' values over 2⁻⁴⁰…1 (recomputing u): float64 sums of such values
// round, so their result depends on the order they are added in.
static void widen(Pool& p) {
  for (int m = 0; m < p.M(); ++m) {
    if (p.half[m]) continue;
    const int64_t d = p.dims[m];
    for (auto& v : p.f[m]) v = std::ldexp(v, -(int)(uni() * 40));
    p.data[m] = p.f[m].data();
    for (int64_t i = 0; i < p.rows; ++i) {
      double ss = 0;
      for (int64_t t = 0; t < d; ++t) ss += double(p.f[m][i * d + t]) * p.f[m][i * d + t];
      for (int64_t t = 0; t < d; ++t) p.u[m][i * d + t] = p.f[m][i * d + t] / std::sqrt(ss);
    }
  }
}

static double cosine(const Pool& p, int a, int64_t i, int b, int64_t j) {
  double s = 0;
  const int64_t d = p.dims[a];
  for (int64_t t = 0; t < d; ++t) s += p.u[a][i * d + t] * p.u[b][j * d + t];
  return s;
}
static double unit_distance(double c) { return std::sqrt(std::max(0.0, 2 - 2 * c)); }

// Pair value of spec §2 (form codes of core/codes.h), float64.
static double ref_value(const Pool& p, int64_t i, int64_t j, int form, double gamma) {
  const int M = p.M();
  if (form == PP_FORM_MULTIMODAL) {
    double uni = 0, cr = 0;
    for (int a = 0; a < M; ++a)
      for (int b = 0; b < M; ++b) {
        if (a != b && gamma == 0) continue;
        (a == b ? uni : cr) += unit_distance(cosine(p, a, i, b, j));
      }
    return uni + gamma * cr;
  }
  double s = 0;
  for (int a = 0; a < M; ++a) s += cosine(p, a, i, a, j);
  if (form == PP_FORM_EUCLIDEAN) return std::sqrt(std::max(0.0, 2.0 * M - 2 * s));
  return (1 + s / M) / 2;
}

// Bound on |engine value − float64 value| (see the header).
static double value_eps(const Pool& p, int form, double gamma) {
  double e = 0;
  const double ulp = std::ldexp(1.0, -24);
  if (form == PP_FORM_MULTIMODAL) {
    for (auto d : p.dims) e += (std::sqrt(2.0 * (d + 8) * ulp) + 1e-6) * (1 + gamma * (p.M() - 1));
  } else if (form == PP_FORM_EUCLIDEAN) {
    double s = 0;
    for (auto d : p.dims) s += d + 8;
    e = std::sqrt(2.0 * s * ulp) + 1e-6;
  } else {
    double s = 0;
    for (auto d : p.dims) s += d + 8;
    e = s * ulp / p.M() + 1e-6;
  }
  return 2 * e;
}

struct CudaPool {
  pp_cuda_select* s = nullptr;
  bool resident = true;  // opened without PAIRPICK_CUDA_STREAM_ROWS (the test pools fit)
  ~CudaPool() { pp_cuda_select_close(s); }
};

static std::unique_ptr<pp::sel::Selection> cpu_open(const Pool& p) {
  std::vector<pp::sel::Modality> mods;
  for (int m = 0; m < p.M(); ++m) mods.push_back({p.data[m], p.dims[m], p.half[m] != 0});
  return pp::sel::cpu_select_engine().open(p.rows, mods);
}

// Opens and prepares the pool on both engines (prepare in two ranges, as the drivers do).
static bool open_both(const Pool& p, CudaPool& c, std::unique_ptr<pp::sel::Selection>& cpu) {
  int rc = pp_cuda_select_open(p.rows, p.M(), p.dims.data(), p.half.data(), p.data.data(), &c.s, err, sizeof err);
  EXPECT(rc == PP_OK, "open: %d %s", rc, err);
  c.resident = getenv("PAIRPICK_CUDA_STREAM_ROWS") == nullptr;
  if (rc) return false;
  cpu = cpu_open(p);
  const int64_t cut = p.rows / 3;
  std::vector<int64_t> bad(p.M());
  std::vector<double> sums(p.total());
  for (auto [s0, n] : {std::pair<int64_t, int64_t>{0, cut}, {cut, p.rows - cut}}) {
    rc = pp_cuda_select_prepare(c.s, s0, n, bad.data(), nullptr, sums.data(), err, sizeof err);
    EXPECT(rc == PP_OK, "prepare: %d %s", rc, err);
    cpu->prepare(s0, n, bad.data(), nullptr, sums.data());
  }
  return rc == PP_OK;
}

static std::string describe(const Pool& p) {
  std::string s = std::to_string(p.rows) + " rows, dims";
  for (int m = 0; m < p.M(); ++m) s += " " + std::to_string(p.dims[m]) + (p.half[m] ? "h" : "f");
  return s;
}

// ---- prepare: bad rows, alignment, column sums (and their determinism across schedules) ----
static void test_prepare(const Pool& base, bool with_bad) {
  Pool p = base;  // (its data pointers still point into base: re-pointed where p's values change)
  if (!with_bad) widen(p);
  int64_t bad_row = -1;
  if (with_bad) {
    bad_row = p.rows / 2 + 1;
    const int m = p.M() - 1;
    p.f[m][bad_row * p.dims[m] + 1] = NAN;
    if (p.half[m]) p.h[m][bad_row * p.dims[m] + 1] = 0x7e00;
    p.data[m] = p.half[m] ? (const void*)p.h[m].data() : (const void*)p.f[m].data();
  }
  const bool equal_dims = std::all_of(p.dims.begin(), p.dims.end(), [&](int64_t d) { return d == p.dims[0]; });
  std::vector<double> first;
  for (unsigned long long sched : {0ull, 11ull, 12ull}) {
    emu_set_schedule(sched);
    CudaPool c;
    int rc = pp_cuda_select_open(p.rows, p.M(), p.dims.data(), p.half.data(), p.data.data(), &c.s, err, sizeof err);
    EXPECT(rc == PP_OK, "open: %s", err);
    if (rc) return;
    std::vector<int64_t> bad(p.M(), 7);
    std::vector<float> align(p.rows, -9.f);
    std::vector<double> sums(p.total(), -1.0);
    rc = pp_cuda_select_prepare(c.s, 0, p.rows, bad.data(), align.data(), sums.data(), err, sizeof err);
    EXPECT(rc == PP_OK, "prepare: %s", err);
    for (int m = 0; m < p.M(); ++m)
      EXPECT(bad[m] == (with_bad && m == p.M() - 1 ? bad_row : -1), "bad row of modality %d: %lld", m, (long long)bad[m]);
    if (with_bad) continue;
    double worst_sum = 0, worst_align = 0;
    int64_t off = 0;
    for (int m = 0; m < p.M(); ++m) {
      for (int64_t t = 0; t < p.dims[m]; ++t) {
        double r = 0;
        for (int64_t i = 0; i < p.rows; ++i) r += p.u[m][i * p.dims[m] + t];
        worst_sum = std::max(worst_sum, std::fabs(sums[off + t] - r));
      }
      off += p.dims[m];
    }
    // Each normalised value is rounded to float32 once (≤ 2⁻²⁴ relative, ≤ 1 absolute) and summed in float64.
    EXPECT(worst_sum <= p.rows * std::ldexp(1.0, -23), "column sums off by %.3g", worst_sum);
    if (equal_dims && p.M() >= 2) {
      for (int64_t i = 0; i < p.rows; ++i) {
        double r = 0;
        for (int a = 0; a < p.M(); ++a)
          for (int b = a + 1; b < p.M(); ++b) r += cosine(p, a, i, b, i);
        r /= p.M() * (p.M() - 1) / 2.0;
        worst_align = std::max(worst_align, std::fabs(align[i] - r));
      }
      EXPECT(worst_align <= (p.dims[0] + 8) * std::ldexp(1.0, -22), "alignment off by %.3g", worst_align);
    }
    if (first.empty())
      first = sums;
    else
      EXPECT(std::memcmp(first.data(), sums.data(), sums.size() * sizeof(double)) == 0,
             "column sums differ between schedules 0 and %llu (order-dependent float sums)", sched);
  }
  emu_set_schedule(0);
  stamp();
  std::printf("prepare %s%s: ok\n", describe(p).c_str(), with_bad ? " (non-finite row)" : "");
}

// ---- pair_reduce: every reduction, every form, ranges and index lists ----
static bool quick = false;  // the subset the test suite runs (fewer combinations)

static void test_pair(CudaPool& c, pp::sel::Selection& cpu, const Pool& p, int form, double gamma, bool streamed) {
  const double eps = value_eps(p, form, gamma);
  const int64_t N = p.rows;
  // Queries: a range, then an index list; refs: the whole pool (range), then a shuffled subset.
  const int64_t q0 = N / 5;
  const int64_t nq = streamed ? std::min<int64_t>(32, N / 4) : std::min<int64_t>(N - q0, 150);
  std::vector<int32_t> qidx, ridx;
  for (int64_t i = 0; i < nq; ++i) qidx.push_back((int32_t)((i * 7 + 3) % N));
  for (int64_t i = 0; i < N; ++i)
    if (uni() < 0.6) ridx.push_back((int32_t)i);
  std::shuffle(ridx.begin(), ridx.end(), rng);
  std::vector<uint8_t> mask(N);
  std::vector<int32_t> labels(N);
  std::vector<float> cover(N);
  for (int64_t i = 0; i < N; ++i) {
    mask[i] = uni() < 0.7;
    labels[i] = (int32_t)(uni() * 3);
    cover[i] = float(uni() * 1.5);
  }
  double worst = 0;
  int checks = 0;
  for (int qi = 0; qi < 2; ++qi)
    for (int ri = 0; ri < 2; ++ri) {
      if (quick && qi != ri) continue;
      const int32_t* qx = qi ? qidx.data() : nullptr;
      const int32_t* rx = ri ? ridx.data() : nullptr;
      const int64_t rn = ri ? (int64_t)ridx.size() : N;
      auto qrow = [&](int64_t a) -> int64_t { return qi ? qidx[a] : q0 + a; };
      auto rrow = [&](int64_t b) -> int64_t { return ri ? ridx[b] : b; };
      // float64 values of every (query, ref) pair
      std::vector<double> v(size_t(nq * rn));
      for (int64_t a = 0; a < nq; ++a)
        for (int64_t b = 0; b < rn; ++b) v[a * rn + b] = ref_value(p, qrow(a), rrow(b), form, gamma);
      for (int kind : {PP_REDUCE_KNN_MEAN, PP_REDUCE_COUNT_WITHIN, PP_REDUCE_MIN_OTHER_LABEL, PP_REDUCE_MAX, PP_REDUCE_GAIN}) {
        for (int64_t k : {int64_t(1), int64_t(9), int64_t(128)}) {
          if (kind != PP_REDUCE_KNN_MEAN && k != 1) continue;
          if ((streamed || quick) && k == 128) continue;
          if (quick && k == 1 && kind == PP_REDUCE_KNN_MEAN) continue;
          // radius: the float64 median of a sample of values
          std::vector<double> sample(v.begin(), v.begin() + std::min<size_t>(v.size(), 500));
          std::nth_element(sample.begin(), sample.begin() + sample.size() / 2, sample.end());
          const double radius = sample[sample.size() / 2];
          std::vector<double> out(nq, -5), out_cpu(nq, -5);
          int rc = pp_cuda_select_pair_reduce(c.s, qx, q0, nq, rx, 0, rn, form, gamma, kind, k, radius, mask.data(), labels.data(),
                                              cover.data(), out.data(), err, sizeof err);
          EXPECT(rc == PP_OK, "pair_reduce kind %d: %d %s", kind, rc, err);
          if (rc) continue;
          pp::sel::Reduction red;
          red.kind = kind;
          red.k = k;
          red.radius = radius;
          red.ref_mask = mask.data();
          red.labels = labels.data();
          red.cover = cover.data();
          cpu.pair_reduce(pp::sel::RowSet{qx, q0, nq}, pp::sel::RowSet{rx, 0, rn}, pp::sel::Metric{form, gamma}, red, out_cpu.data());
          for (int64_t a = 0; a < nq; ++a) {
            const int64_t qg = qrow(a);
            const double self = kind == PP_REDUCE_KNN_MEAN ? INFINITY : form == PP_FORM_SIMILARITY ? 1.0 : 0.0;
            std::vector<double> row(rn);
            for (int64_t b = 0; b < rn; ++b) row[b] = rrow(b) == qg ? self : v[a * rn + b];
            ++checks;
            if (kind == PP_REDUCE_COUNT_WITHIN) {
              int64_t lo = 0, hi = 0;
              for (int64_t b = 0; b < rn; ++b) {
                if (!mask[rrow(b)]) continue;
                lo += row[b] < radius - eps;
                hi += row[b] < radius + eps;
              }
              EXPECT(out[a] >= lo && out[a] <= hi, "countWithin q%lld: %g not in [%lld, %lld]", (long long)qg, out[a], (long long)lo,
                     (long long)hi);
              EXPECT(out_cpu[a] >= lo && out_cpu[a] <= hi, "cpu countWithin q%lld: %g not in [%lld, %lld]", (long long)qg, out_cpu[a],
                     (long long)lo, (long long)hi);
              continue;
            }
            double r, tol = eps;
            if (kind == PP_REDUCE_KNN_MEAN) {
              std::vector<double> fin;
              for (double x : row)
                if (x != INFINITY) fin.push_back(x);
              std::sort(fin.begin(), fin.end());
              const size_t kk = std::min<size_t>(k, fin.size());
              double s = 0;
              for (size_t t = 0; t < kk; ++t) s += fin[t];
              r = kk ? s / kk : INFINITY;
            } else if (kind == PP_REDUCE_MIN_OTHER_LABEL) {
              r = INFINITY;
              for (int64_t b = 0; b < rn; ++b)
                if (labels[rrow(b)] != labels[qg]) r = std::min(r, row[b]);
            } else if (kind == PP_REDUCE_MAX) {
              r = -INFINITY;
              for (double x : row) r = std::max(r, x);
            } else {
              r = 0;
              for (int64_t b = 0; b < rn; ++b) r += std::max(0.0, row[b] - cover[rrow(b)]);
              tol = eps * rn + rn * 4 * std::ldexp(1.0, -24);  // one float32 subtraction per term
            }
            const double e = std::isinf(r) ? (out[a] == r ? 0 : INFINITY) : std::fabs(out[a] - r);
            const double ec = std::isinf(r) ? (out_cpu[a] == r ? 0 : INFINITY) : std::fabs(out_cpu[a] - r);
            worst = std::max(worst, e / tol);
            EXPECT(e <= tol, "kind %d k %lld q%lld (q %s, r %s): cuda %.9g, float64 %.9g (tol %.3g)", kind, (long long)k, (long long)qg,
                   qi ? "idx" : "range", ri ? "idx" : "range", out[a], r, tol);
            EXPECT(ec <= tol, "kind %d k %lld q%lld: cpu %.9g, float64 %.9g (tol %.3g)", kind, (long long)k, (long long)qg, out_cpu[a], r, tol);
          }
        }
      }
    }
  stamp();
  std::printf("pair_reduce %s form %d γ %g%s: %d checks, worst %.2g of tolerance\n", describe(p).c_str(), form, gamma,
              streamed ? " streamed" : "", checks, worst);
}

// ---- distances_from and gather ----
static void test_rows(CudaPool& c, pp::sel::Selection& cpu, const Pool& p, int form, double gamma) {
  const double eps = value_eps(p, form, gamma);
  const int64_t row = p.rows / 3 + 2;
  std::vector<float> out(p.rows, -5.f);
  int rc = pp_cuda_select_distances_from(c.s, row, form, gamma, out.data(), err, sizeof err);
  EXPECT(rc == PP_OK, "distances_from: %s", err);
  double worst = 0;
  for (int64_t i = 0; i < p.rows; ++i) {
    const double r = i == row ? (form == PP_FORM_SIMILARITY ? 1.0 : 0.0) : ref_value(p, i, row, form, gamma);
    worst = std::max(worst, std::fabs(out[i] - r) / eps);
  }
  EXPECT(worst <= 1, "distances_from off by %.3g of tolerance", worst);
  std::vector<int32_t> idx = {0, (int32_t)(p.rows - 1), (int32_t)row, 5};
  std::vector<float> g(idx.size() * p.total(), -5.f), gc(idx.size() * p.total());
  rc = pp_cuda_select_gather(c.s, idx.data(), (int64_t)idx.size(), g.data(), err, sizeof err);
  EXPECT(rc == PP_OK, "gather: %s", err);
  cpu.gather(idx.data(), (int64_t)idx.size(), gc.data());
  double gworst = 0;
  for (size_t e = 0; e < g.size(); ++e) gworst = std::max(gworst, (double)std::fabs(g[e] - gc[e]));
  EXPECT(gworst <= std::ldexp(1.0, -21), "gather differs from the CPU engine by %.3g", gworst);
  stamp();
  std::printf("distances_from/gather %s form %d γ %g: worst %.2g of tolerance\n", describe(p).c_str(), form, gamma, worst);
}

// ---- k-means: set_centroids + assign ----
static void test_kmeans(CudaPool& c, pp::sel::Selection& cpu, const Pool& p, int64_t k) {
  const int64_t T = p.total();
  std::vector<float> cent(size_t(k * T));
  for (int64_t j = 0; j < k; ++j) {
    // a pool row's normalised values plus noise
    const int64_t r = (j * 37 + 11) % p.rows;
    int64_t off = 0;
    for (int m = 0; m < p.M(); ++m) {
      for (int64_t t = 0; t < p.dims[m]; ++t) cent[j * T + off + t] = float(p.u[m][r * p.dims[m] + t] + 0.05 * normal());
      off += p.dims[m];
    }
  }
  int rc = pp_cuda_select_set_centroids(c.s, cent.data(), k, err, sizeof err);
  EXPECT(rc == PP_OK, "set_centroids: %s", err);
  cpu.set_centroids(cent.data(), k);
  const int64_t start = 3, count = p.rows - 5;
  std::vector<int32_t> labels(count, -1), lcpu(count, -1);
  std::vector<float> dist(count), dcpu(count);
  std::vector<double> sums(size_t(k * T), 0.0), counts(k, 0.0), scpu(size_t(k * T), 0.0), ccpu(k, 0.0);
  int64_t changed = -1;
  rc = pp_cuda_select_assign(c.s, start, count, labels.data(), dist.data(), sums.data(), counts.data(), &changed, err, sizeof err);
  EXPECT(rc == PP_OK, "assign: %s", err);
  const int64_t changed_cpu = cpu.assign(start, count, lcpu.data(), dcpu.data(), scpu.data(), ccpu.data());
  EXPECT(changed == count && changed_cpu == count, "changed %lld / %lld of %lld", (long long)changed, (long long)changed_cpu, (long long)count);
  // float64 squared distances ‖u − c‖² = M − 2⟨u, c⟩ + ‖c‖²; float32 error ≤ (T + 8)·2⁻²⁴·(M + ‖c‖²)·few
  double worst = 0;
  int disagree = 0;
  for (int64_t r = 0; r < count; ++r) {
    const int64_t i = start + r;
    std::vector<double> d(k);
    double best = INFINITY, cn_max = 0;
    for (int64_t j = 0; j < k; ++j) {
      double dot = 0, cn = 0;
      int64_t off = 0;
      for (int m = 0; m < p.M(); ++m) {
        for (int64_t t = 0; t < p.dims[m]; ++t) {
          dot += p.u[m][i * p.dims[m] + t] * cent[j * T + off + t];
          cn += double(cent[j * T + off + t]) * cent[j * T + off + t];
        }
        off += p.dims[m];
      }
      d[j] = std::max(0.0, p.M() - 2 * dot + cn);
      best = std::min(best, d[j]);
      cn_max = std::max(cn_max, cn);
    }
    const double tol = 8 * (T + 8) * std::ldexp(1.0, -24) * (p.M() + cn_max);
    EXPECT(labels[r] >= 0 && labels[r] < k && d[labels[r]] <= best + tol, "row %lld: label %d not nearest", (long long)i, labels[r]);
    worst = std::max(worst, std::fabs(dist[r] - best) / tol);
    if (labels[r] != lcpu[r]) {
      ++disagree;
      EXPECT(std::fabs(d[labels[r]] - d[lcpu[r]]) <= 2 * tol, "row %lld: cuda label %d, cpu %d, not a near-tie", (long long)i, labels[r], lcpu[r]);
    }
  }
  EXPECT(worst <= 1, "assign distances off by %.3g of tolerance", worst);
  // centre sums/counts: float64 sums of the normalised rows of each cluster
  std::vector<double> rs(size_t(k * T), 0.0), rc2(k, 0.0);
  for (int64_t r = 0; r < count; ++r) {
    const int64_t i = start + r;
    const int j = labels[r];
    rc2[j] += 1;
    int64_t off = 0;
    for (int m = 0; m < p.M(); ++m) {
      for (int64_t t = 0; t < p.dims[m]; ++t) rs[j * T + off + t] += p.u[m][i * p.dims[m] + t];
      off += p.dims[m];
    }
  }
  double sworst = 0;
  for (size_t e = 0; e < rs.size(); ++e) sworst = std::max(sworst, std::fabs(sums[e] - rs[e]));
  for (int64_t j = 0; j < k; ++j) EXPECT(counts[j] == rc2[j], "count of cluster %lld: %g vs %g", (long long)j, counts[j], rc2[j]);
  EXPECT(sworst <= count * std::ldexp(1.0, -22), "centre sums off by %.3g", sworst);
  stamp();
  std::printf("assign %s k %lld: worst %.2g of tolerance, %d near-tie label differences\n", describe(p).c_str(), (long long)k, worst, disagree);
}

// ---- greedy: k-center, MMCSAL score, sampleSquared; greedy_add; pruning on/off ----
struct GreedyCase {
  int form;
  double gamma;
  int mode;
  bool base;
  int adds;        // centres given by greedy_add first
  int64_t budget;  // picks asked for (in several calls)
};

static long long graph_replays = 0, graph_captures = 0;  // resident greedy picks: graph launches, captures
static void test_greedy(CudaPool& c, pp::sel::Selection& cpu, const Pool& p, const GreedyCase& g, const char* label,
                        std::vector<int32_t>* picks_out = nullptr) {
  const int64_t N = p.rows;
  const double eps = value_eps(p, g.form, g.gamma);
  std::vector<uint8_t> exclude(N, 0);
  for (int64_t i = 0; i < N; ++i) exclude[i] = uni() < 0.05;
  std::vector<float> base;
  if (g.base)
    for (int64_t i = 0; i < N; ++i) base.push_back(float(uni()));
  const double w = 0.7;
  int rc = pp_cuda_select_greedy_init(c.s, g.form, g.gamma, g.base ? base.data() : nullptr, w, exclude.data(), g.mode, err, sizeof err);
  EXPECT(rc == PP_OK, "greedy_init: %s", err);
  if (rc) return;
  cpu.greedy_init(pp::sel::Metric{g.form, g.gamma}, g.base ? base.data() : nullptr, w, exclude.data(), g.mode);
  std::vector<double> delta(N, INFINITY);  // float64 δ of the picks so far
  std::vector<uint8_t> taken(exclude);
  int64_t centres = 0;
  auto add_ref = [&](int64_t c0) {
    taken[c0] = 1;
    ++centres;
    for (int64_t i = 0; i < N; ++i)
      if (!taken[i]) delta[i] = std::min(delta[i], ref_value(p, i, c0, g.form, g.gamma));
  };
  std::vector<int32_t> adds;
  for (int a = 0; a < g.adds; ++a) {
    int32_t r;
    do r = (int32_t)(uni() * N);
    while (taken[r] || std::find(adds.begin(), adds.end(), r) != adds.end());
    adds.push_back(r);
  }
  if (!adds.empty()) {
    rc = pp_cuda_select_greedy_add(c.s, adds.data(), (int64_t)adds.size(), err, sizeof err);
    EXPECT(rc == PP_OK, "greedy_add: %s", err);
    cpu.greedy_add(adds.data(), (int64_t)adds.size());
    for (int32_t a : adds) add_ref(a);
  }
  bool same = true;  // CPU and CUDA picks agree so far
  int64_t made_total = 0, near_ties = 0;
  long long run_captures = 0;  // resident pools: pick captures over the whole run
  const int64_t calls[3] = {1, g.budget / 3, g.budget};
  double worst = 0;
  for (int ci = 0; ci < 3 && made_total < g.budget; ++ci) {
    const int64_t steps = std::max<int64_t>(1, std::min(calls[ci], g.budget - made_total));
    std::vector<double> us(steps);
    for (auto& u : us) u = uni();
    std::vector<int32_t> picks(steps, -3), pcpu(steps, -3);
    std::vector<float> div(steps), dmax(steps), divc(steps), dmaxc(steps);
    int64_t made = -1;
    const long long direct0 = emu_direct_launches(), graphs0 = emu_graph_launches(), captures0 = emu_captures();
    rc = pp_cuda_select_greedy_step(c.s, steps, us.data(), picks.data(), div.data(), dmax.data(), &made, err, sizeof err);
    EXPECT(rc == PP_OK, "greedy_step: %s", err);
    if (rc) return;
    if (c.resident) {
      // Resident pools: every pick is one replay of a graph captured at most once per call (twice
      // when pruning turns off at its cap), and no kernel is launched from the host per pick. A
      // per-pick value baked in at capture (the step, the centre id, the centre row) would make
      // the picks after the first of the call wrong, which the parity checks below catch.
      const long long direct = emu_direct_launches() - direct0, graphs = emu_graph_launches() - graphs0, captures = emu_captures() - captures0;
      EXPECT(direct == 0 && graphs == steps && captures <= 2, "greedy_step(%lld): %lld direct kernel launches, %lld graph launches, %lld captures",
             (long long)steps, direct, graphs, captures);
      graph_replays += graphs;
      graph_captures += captures;
      run_captures += captures;
    }
    const int64_t made_cpu = cpu.greedy_step(steps, us.data(), pcpu.data(), divc.data(), dmaxc.data());
    EXPECT(made == made_cpu, "made %lld, cpu %lld", (long long)made, (long long)made_cpu);
    for (int64_t t = 0; t < made; ++t) {
      const int64_t pk = picks[t];
      // candidates' float64 scores
      double best = -INFINITY, dm = -INFINITY;
      int64_t cand = 0;
      for (int64_t i = 0; i < N; ++i)
        if (!taken[i]) {
          dm = std::max(dm, delta[i]);
          ++cand;
        }
      EXPECT(pk >= 0 && pk < N && !taken[pk], "step %lld: pick %lld is not a candidate", (long long)(made_total + t), (long long)pk);
      if (pk < 0 || pk >= N || taken[pk]) return;
      const bool use_div = centres > 0 && dm > 0 && std::isfinite(dm);
      auto score = [&](int64_t i) {
        if (g.mode == PP_GREEDY_SAMPLE_SQUARED) return 0.0;
        if (g.base) return double(base[i]) + w * (use_div ? delta[i] / dm : 0.0);
        return delta[i];
      };
      const double score_tol = g.base ? w * 3 * eps / std::max(dm, 1e-9) : eps;
      bool ok = true;
      if (g.mode == PP_GREEDY_SAMPLE_SQUARED) {
        // cumulative float64 Σδ² (in row order) must bracket the target at the pick (or a fallback rule applies)
        double total = 0, before = 0, tolc = 0;
        for (int64_t i = 0; i < N; ++i)
          if (!taken[i] && std::isfinite(delta[i])) {
            total += delta[i] * delta[i];
            tolc += 2 * delta[i] * eps + eps * eps;
          }
        for (int64_t i = 0; i < pk; ++i)
          if (!taken[i] && std::isfinite(delta[i])) before += delta[i] * delta[i];
        if (std::isfinite(total) && total > 0 && centres > 0) {
          const double target = us[t] * total;
          const double through = before + delta[pk] * delta[pk];
          ok = before <= target + tolc && through >= target - tolc;
        } else {
          int64_t first = 0;
          while (taken[first]) ++first;
          ok = pk == first;
        }
        EXPECT(ok, "step %lld: sampleSquared pick %lld does not bracket the target", (long long)(made_total + t), (long long)pk);
      } else {
        for (int64_t i = 0; i < N; ++i)
          if (!taken[i]) best = std::max(best, score(i));
        const double e = best - score(pk);
        if (std::isfinite(best)) worst = std::max(worst, e / score_tol);
        ok = !std::isfinite(best) ? pk == std::find(taken.begin(), taken.end(), 0) - taken.begin() || g.base : e <= score_tol;
        EXPECT(ok, "step %lld: pick %lld scores %.9g, best %.9g (tol %.3g)", (long long)(made_total + t), (long long)pk, score(pk), best, score_tol);
        // reported δ and max δ
        if (std::isfinite(delta[pk])) EXPECT(std::fabs(div[t] - delta[pk]) <= eps, "step %lld: δ %.9g vs %.9g", (long long)(made_total + t), div[t], delta[pk]);
        if (std::isfinite(dm)) EXPECT(std::fabs(dmax[t] - dm) <= eps, "step %lld: max δ %.9g vs %.9g", (long long)(made_total + t), dmax[t], dm);
      }
      if (same && pcpu[t] != picks[t]) {
        same = false;
        ++near_ties;
        // the CPU engine's pick must be as good by the float64 reference (a near-tie)
        const int64_t pc = pcpu[t];
        bool tie = pc >= 0 && pc < N && !taken[pc];
        if (tie && g.mode != PP_GREEDY_SAMPLE_SQUARED) tie = std::fabs(score(pc) - score(pk)) <= 2 * score_tol;
        EXPECT(tie, "step %lld: cuda picks %lld, cpu %lld, and they are not a float64 near-tie", (long long)(made_total + t), (long long)pk,
               (long long)pc);
      }
      if (picks_out) picks_out->push_back(picks[t]);
      add_ref(pk);
    }
    if (!same) {
      // the engines went separate ways at a near-tie: continue the CPU one along CUDA's picks
      cpu.greedy_init(pp::sel::Metric{g.form, g.gamma}, g.base ? base.data() : nullptr, w, exclude.data(), g.mode);
      std::vector<int32_t> all;
      for (int64_t i = 0; i < N; ++i)
        if (taken[i] && !exclude[i]) all.push_back((int32_t)i);
      cpu.greedy_add(all.data(), (int64_t)all.size());
      same = true;
    }
    made_total += made;
    if (made < steps) break;
  }
  if (c.resident) {
    // One capture serves the whole run (the calls of 1, budget/3 and the rest picks keep its
    // buffers), and one more when pruning turns off at its cap during the run.
    const int64_t cap = std::min<int64_t>(pp::sel::prune_center_cap(N), pp::sel::kPruneMaxCenterBytes / (4 * p.total()));
    const long long want = g.adds < cap && g.adds + made_total > cap ? 2 : 1;
    EXPECT(run_captures == want, "greedy run: %lld captures of the pick, want %lld", run_captures, want);
  }
  stamp();
  std::printf("greedy %s %s: %lld picks, worst %.2g of tolerance, %lld near-ties\n", describe(p).c_str(), label,
              (long long)made_total, worst, (long long)near_ties);
}

// ---- the emulator's stream capture (what the greedy loop's graph relies on) ----
// Async copies and memsets on a capturing stream are recorded, not run, and every graph launch
// replays them, reading their sources at the replay; calls a real capture forbids fail with the
// device's errors and invalidate the capture.
static void test_graph_runtime() {
  const size_t n = 256;
  cudaStream_t s = nullptr;
  unsigned char *a = nullptr, *b = nullptr;
  EXPECT(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess && cudaMalloc((void**)&a, n) == cudaSuccess &&
             cudaMalloc((void**)&b, n) == cudaSuccess,
         "graph runtime: setup");
  std::memset(a, 1, n);
  std::memset(b, 2, n);
  EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "BeginCapture");
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaStreamIsCapturing(s, &status);
  EXPECT(status == cudaStreamCaptureStatusActive, "a capturing stream reports status %d", (int)status);
  EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaErrorIllegalState, "a second BeginCapture on a capturing stream");
  cudaMemsetAsync(a, 7, n / 2, s);
  cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, s);
  EXPECT(a[0] == 1 && b[0] == 2, "operations on a capturing stream ran at once");
  cudaGraph_t graph = nullptr;
  EXPECT(cudaStreamEndCapture(s, &graph) == cudaSuccess && graph, "EndCapture");
  cudaGraphExec_t exec = nullptr;
  EXPECT(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess && exec, "GraphInstantiate");
  cudaGraphDestroy(graph);
  for (int replay = 0; replay < 2; ++replay) {
    std::memset(a + n / 2, 10 + replay, n / 2);  // read by the copy at the replay, not at the capture
    EXPECT(cudaGraphLaunch(exec, s) == cudaSuccess, "GraphLaunch");
    EXPECT(a[0] == 7 && b[0] == 7 && b[n - 1] == 10 + replay, "replay %d: a[0] %d b[0] %d b[n-1] %d", replay, a[0], b[0], b[n - 1]);
  }
  cudaGraphExecDestroy(exec);
  // Forbidden during a capture: each fails and invalidates it, and EndCapture then fails.
  const std::pair<const char*, std::function<cudaError_t()>> forbidden[] = {
      {"cudaStreamSynchronize(capturing stream)", [&] { return cudaStreamSynchronize(s); }},
      {"cudaMemcpy", [&] { return cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice); }},
      {"cudaMalloc", [&] {
         void* p = nullptr;
         return cudaMalloc(&p, 16);
       }},
      {"cudaDeviceSynchronize", [&] { return cudaDeviceSynchronize(); }},
  };
  for (const auto& [what, call] : forbidden) {
    EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "BeginCapture");
    const cudaError_t e = call();
    EXPECT(e == cudaErrorStreamCaptureUnsupported, "%s during a capture returned %d", what, (int)e);
    cudaStreamIsCapturing(s, &status);
    EXPECT(status == cudaStreamCaptureStatusInvalidated, "%s did not invalidate the capture", what);
    graph = reinterpret_cast<cudaGraph_t>(1);
    EXPECT(cudaStreamEndCapture(s, &graph) == cudaErrorStreamCaptureInvalidated && !graph, "EndCapture after %s", what);
    cudaGetLastError();
  }
  // Waiting for an event recorded into the capture (it stands for a graph node) is refused too.
  cudaEvent_t ev = nullptr;
  cudaEventCreate(&ev);
  EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "BeginCapture");
  cudaEventRecord(ev, s);
  EXPECT(cudaEventSynchronize(ev) == cudaErrorCapturedEvent, "cudaEventSynchronize of a captured event");
  EXPECT(cudaStreamEndCapture(s, &graph) == cudaErrorStreamCaptureInvalidated && !graph, "EndCapture after waiting for a captured event");
  cudaGetLastError();
  cudaEventRecord(ev, s);  // recorded outside a capture: complete again
  EXPECT(cudaEventSynchronize(ev) == cudaSuccess, "cudaEventSynchronize of an event recorded outside a capture");
  cudaEventDestroy(ev);
  EXPECT(cudaStreamEndCapture(s, &graph) == cudaErrorIllegalState, "EndCapture on a stream that is not capturing");
  EXPECT(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeThreadLocal) == cudaErrorStreamCaptureUnsupported,
         "capturing the legacy default stream");
  cudaGetLastError();
  cudaFree(a);
  cudaFree(b);
  cudaStreamDestroy(s);
  stamp();
  std::printf("graphs: capture records, replays re-run, forbidden calls invalidate\n");

  // The greedy loop when its capture fails: the call fails naming it, leaves no capture behind,
  // and the next call (nothing was picked) makes the CPU engine's picks.
  Pool p = make_pool(120, {16, 16}, {1, 0});
  CudaPool c;
  std::unique_ptr<pp::sel::Selection> cpu;
  if (open_both(p, c, cpu)) {
    std::vector<uint8_t> none(p.rows, 0);
    int rc = pp_cuda_select_greedy_init(c.s, PP_FORM_EUCLIDEAN, 0, nullptr, 1, none.data(), PP_GREEDY_ARGMAX, err, sizeof err);
    EXPECT(rc == PP_OK, "greedy_init: %s", err);
    cpu->greedy_init(pp::sel::Metric{PP_FORM_EUCLIDEAN, 0}, nullptr, 1, none.data(), PP_GREEDY_ARGMAX);
    std::vector<int32_t> picks(5), pcpu(5);
    std::vector<float> dv(5), dm(5);
    int64_t made = -1;
    emu_invalidate_captures = 1;
    rc = pp_cuda_select_greedy_step(c.s, 5, nullptr, picks.data(), dv.data(), dm.data(), &made, err, sizeof err);
    EXPECT(rc == PP_E_BACKEND && std::strstr(err, "cudaStreamEndCapture"), "greedy_step with a failing capture: rc %d '%s'", rc, err);
    emu_invalidate_captures = 0;
    rc = pp_cuda_select_greedy_step(c.s, 5, nullptr, picks.data(), dv.data(), dm.data(), &made, err, sizeof err);
    const int64_t made_cpu = cpu->greedy_step(5, nullptr, pcpu.data(), dv.data(), dm.data());
    EXPECT(rc == PP_OK && made == made_cpu && picks == pcpu, "greedy_step after a failed capture: rc %d '%s', %lld picks (cpu %lld)", rc, err,
           (long long)made, (long long)made_cpu);
    stamp();
    std::printf("graphs: a failed capture fails the call; the next call picks as the CPU engine\n");
  }
}

// ---- faults: the engine's behaviour when things go wrong ----
static void test_faults() {
  // Out of memory is not sticky: after a failed allocation, a healthy call on the thread works.
  {
    Pool p = make_pool(140, {24, 24}, {0, 1});
    CudaPool c;
    std::unique_ptr<pp::sel::Selection> cpu;
    if (open_both(p, c, cpu)) {
      std::vector<float> cent(size_t(50) * p.total(), 0.1f), out(p.rows);
      emu_fail_mallocs_after = 0;
      int rc = pp_cuda_select_set_centroids(c.s, cent.data(), 50, err, sizeof err);
      emu_fail_mallocs_after = -1;
      EXPECT(rc != PP_OK, "set_centroids with no device memory left succeeded");
      rc = pp_cuda_select_distances_from(c.s, 3, PP_FORM_EUCLIDEAN, 0, out.data(), err, sizeof err);
      EXPECT(rc == PP_OK, "a healthy call after an out-of-memory failure failed: %s", err);
      stamp();
      std::printf("faults: out-of-memory is not sticky\n");
    }
  }
  // No device-wide synchronisation in any op, and close() waits for nothing.
  {
    Pool p = make_pool(150, {16, 16}, {1, 0});
    const long syncs0 = emu_device_syncs;
    CudaPool c;
    std::unique_ptr<pp::sel::Selection> cpu;
    if (open_both(p, c, cpu)) {
      std::vector<double> out(20);
      int rc = pp_cuda_select_pair_reduce(c.s, nullptr, 0, 20, nullptr, 0, p.rows, PP_FORM_EUCLIDEAN, 0, PP_REDUCE_KNN_MEAN, 5, 0,
                                          nullptr, nullptr, nullptr, out.data(), err, sizeof err);
      EXPECT(rc == PP_OK, "pair_reduce: %s", err);
      std::vector<uint8_t> none(p.rows, 0);
      rc = pp_cuda_select_greedy_init(c.s, PP_FORM_EUCLIDEAN, 0, nullptr, 1, none.data(), PP_GREEDY_ARGMAX, err, sizeof err);
      std::vector<int32_t> picks(6);
      std::vector<float> dv(6), dm(6);
      int64_t made = 0;
      rc |= pp_cuda_select_greedy_step(c.s, 6, nullptr, picks.data(), dv.data(), dm.data(), &made, err, sizeof err);
      EXPECT(rc == PP_OK, "greedy: %s", err);
      EXPECT(emu_device_syncs == syncs0, "%ld cudaDeviceSynchronize calls by select ops (each stalls every stream)", emu_device_syncs - syncs0);
      const long ss = emu_stream_syncs, fr = emu_blocking_frees, ds = emu_device_syncs;
      pp_cuda_select_close(c.s);
      c.s = nullptr;
      EXPECT(emu_stream_syncs == ss && emu_blocking_frees == fr && emu_device_syncs == ds,
             "close waited for the device: %ld stream syncs, %ld blocking frees, %ld device syncs", emu_stream_syncs - ss,
             emu_blocking_frees - fr, emu_device_syncs - ds);
      stamp();
      std::printf("faults: no device-wide synchronisation, close does not wait\n");
    }
  }
  // A pool that fits once idle workspaces give their cached buffers back is resident.
  {
    Pool a = make_pool(600, {16}, {0});
    std::vector<float> d(size_t(600) * 600);
    int rc = pp_cuda_distances(a.data[0], a.data[0], 0, 600, 600, 16, PP_METRIC_EUCLIDEAN, d.data(), err, sizeof err);
    EXPECT(rc == PP_OK, "distances: %s", err);
    Pool p = make_pool(300, {32, 32}, {0, 0});
    emu_set_mem(emu_used_mem() + 100 * 1024);  // free: 100 KiB; the idle workspace holds 1.4 MB
    CudaPool c;
    rc = pp_cuda_select_open(p.rows, p.M(), p.dims.data(), p.half.data(), p.data.data(), &c.s, err, sizeof err);
    EXPECT(rc == PP_OK, "open: %s", err);
    if (rc == PP_OK) {
      std::vector<int64_t> bad(p.M());
      std::vector<double> sums(p.total());
      rc = pp_cuda_select_prepare(c.s, 0, p.rows, bad.data(), nullptr, sums.data(), err, sizeof err);
      std::vector<uint8_t> none(p.rows, 0);
      rc |= pp_cuda_select_greedy_init(c.s, PP_FORM_EUCLIDEAN, 0, nullptr, 1, none.data(), PP_GREEDY_ARGMAX, err, sizeof err);
      std::vector<int32_t> picks(5);
      std::vector<float> dv(5), dm(5);
      int64_t made = 0;
      const long copies = emu_copies;
      rc |= pp_cuda_select_greedy_step(c.s, 5, nullptr, picks.data(), dv.data(), dm.data(), &made, err, sizeof err);
      EXPECT(rc == PP_OK, "greedy: %s", err);
      // resident: the three result arrays come back once (plus a few device-to-device copies as the
      // centres grow); streamed: at least the pick, its row and every modality's rows each pick (≥ 20)
      EXPECT(emu_copies - copies <= 10, "the pool went streamed although it fits (%ld copies for 5 picks)", emu_copies - copies);
    }
    emu_set_mem(0);
    stamp();
    std::printf("faults: residency counts what idle workspaces would give back\n");
  }
  // A failed open leaks nothing (its stream included).
  {
    Pool p = make_pool(70, {8}, {0});
    const long streams = emu_live_streams;
    const size_t used = emu_used_mem();
    emu_fail_mallocs_after = 0;
    pp_cuda_select* s = nullptr;
    const int rc = pp_cuda_select_open(p.rows, p.M(), p.dims.data(), p.half.data(), p.data.data(), &s, err, sizeof err);
    emu_fail_mallocs_after = -1;
    EXPECT(rc != PP_OK && s == nullptr, "open with no device memory succeeded");
    EXPECT(emu_live_streams <= streams, "a failed open leaked %ld streams", emu_live_streams - streams);
    EXPECT(emu_used_mem() <= used, "a failed open leaked %zu bytes", emu_used_mem() - used);
    stamp();
    std::printf("faults: a failed open leaks nothing\n");
  }
  // Cross-modal terms of unequal dims are refused (the kernels would index out of bounds).
  {
    Pool p = make_pool(90, {37, 19}, {0, 0});
    CudaPool c;
    std::unique_ptr<pp::sel::Selection> cpu;
    if (open_both(p, c, cpu)) {
      std::vector<double> out(10);
      std::vector<float> fo(p.rows);
      std::vector<uint8_t> none(p.rows, 0);
      int rc = pp_cuda_select_pair_reduce(c.s, nullptr, 0, 10, nullptr, 0, p.rows, PP_FORM_MULTIMODAL, 1.0, PP_REDUCE_MAX, 1, 0,
                                          nullptr, nullptr, nullptr, out.data(), err, sizeof err);
      EXPECT(rc != PP_OK && std::strstr(err, "equal dimension"), "pair_reduce with γ = 1 and dims 37/19: rc %d '%s'", rc, err);
      rc = pp_cuda_select_distances_from(c.s, 1, PP_FORM_MULTIMODAL, 1.0, fo.data(), err, sizeof err);
      EXPECT(rc != PP_OK && std::strstr(err, "equal dimension"), "distances_from with γ = 1 and dims 37/19: rc %d '%s'", rc, err);
      rc = pp_cuda_select_greedy_init(c.s, PP_FORM_MULTIMODAL, 1.0, nullptr, 1, none.data(), PP_GREEDY_ARGMAX, err, sizeof err);
      EXPECT(rc != PP_OK && std::strstr(err, "equal dimension"), "greedy_init with γ = 1 and dims 37/19: rc %d '%s'", rc, err);
      stamp();
      std::printf("faults: cross-modal terms of unequal dims refused\n");
    }
  }
}

// Streamed greedy: only the rows pruning cannot skip cross the host link. Four tight clusters of
// equal size, far apart: once a cluster holds a centre, a later centre in another cluster cannot
// lower δ of the rows that cluster's centre owns (d(owner, new) ≈ 2 ≥ 2δ + margin with δ ≈ 0.1),
// so a pick reads about a quarter of the pool once every cluster has a centre: over 12 picks
// ≈ 4.5 pools' worth instead of 12 (every pick re-read the whole pool before).
static void test_streamed_pruning() {
  Pool p = make_pool(280, {32, 32}, {1, 0}, true);
  setenv("PAIRPICK_CUDA_STREAM_ROWS", "70", 1);
  CudaPool c;
  std::unique_ptr<pp::sel::Selection> cpu;
  const bool opened = open_both(p, c, cpu);
  unsetenv("PAIRPICK_CUDA_STREAM_ROWS");
  if (!opened) return;
  const int64_t picks = 12;
  const long before = emu_h2d_bytes;
  test_greedy(c, *cpu, p, {PP_FORM_EUCLIDEAN, 0.0, PP_GREEDY_ARGMAX, false, 0, picks}, "k-center streamed, tight clusters");
  const double pools = double(emu_h2d_bytes - before) / double(p.bytes());
  EXPECT(pools <= 0.6 * picks, "streamed k-center uploaded %.2f pools' worth of rows for %lld picks (pruned rows re-read)", pools,
         (long long)picks);
  stamp();
  std::printf("streamed pruning: %.2f pools' worth of rows uploaded for %lld picks\n", pools, (long long)picks);
}

// A full run of one pool on both engines.
static void run_pool(const Pool& p, bool streamed, bool pairs_only = false) {
  // Streamed: blocks of 70 rows (the staging halves hold 35: several ref blocks per pass).
  if (streamed) setenv("PAIRPICK_CUDA_STREAM_ROWS", "70", 1);
  CudaPool c;
  std::unique_ptr<pp::sel::Selection> cpu;
  const bool opened = open_both(p, c, cpu);
  unsetenv("PAIRPICK_CUDA_STREAM_ROWS");
  if (!opened) return;
  const bool equal_dims = std::all_of(p.dims.begin(), p.dims.end(), [&](int64_t d) { return d == p.dims[0]; });
  std::vector<std::pair<int, double>> forms = {{PP_FORM_MULTIMODAL, 0.0}, {PP_FORM_EUCLIDEAN, 0.0}, {PP_FORM_SIMILARITY, 0.0}};
  if (equal_dims && p.M() > 1) forms.push_back({PP_FORM_MULTIMODAL, 1.0});
  for (auto [form, gamma] : forms) {
    // quick: the similarity form and one of the two γ = 0 forms are left out
    if (quick && (form == PP_FORM_SIMILARITY || (form == PP_FORM_MULTIMODAL && gamma == 0 && forms.size() > 3))) continue;
    test_pair(c, *cpu, p, form, gamma, streamed);
    test_rows(c, *cpu, p, form, gamma);
  }
  if (pairs_only) return;
  if (!quick) test_kmeans(c, *cpu, p, 7);
  const int64_t budget = quick ? 12 : 30;
  for (auto [form, gamma] : forms) {
    if (form == PP_FORM_SIMILARITY) continue;
    const auto quick_form = forms.size() > 3 ? forms[3] : forms[0];
    if (quick && std::make_pair(form, gamma) != quick_form) continue;
    test_greedy(c, *cpu, p, {form, gamma, PP_GREEDY_ARGMAX, false, 0, budget}, "k-center");
    if (quick) {
      test_greedy(c, *cpu, p, {form, gamma, PP_GREEDY_SAMPLE_SQUARED, false, 3, budget}, "sampleSquared, 3 added");
      continue;
    }
    test_greedy(c, *cpu, p, {form, gamma, PP_GREEDY_ARGMAX, true, 3, budget}, "mmcsal score, 3 added");
    test_greedy(c, *cpu, p, {form, gamma, PP_GREEDY_SAMPLE_SQUARED, false, 17, budget}, "sampleSquared, 17 added");
  }
}

int main(int argc, char** argv) {
  const unsigned long seed = argc > 2 ? strtoul(argv[2], nullptr, 10) : (unsigned long)time(nullptr);
  rng.seed(seed);
  setenv("PAIRPICK_CUDA_STAGING_BYTES", "24576", 0);  // small staging chunks: many per copy
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines survive an emulator abort
  std::printf("seed %lu\n", seed);
  const std::string what = argc > 1 ? argv[1] : "select";
  auto on = [&](const char* w) { return what == "select" || what == w; };
  quick = what == "quick";
  stamp();
  std::printf("start\n");
  if (on("prepare") || quick) {
    test_prepare(make_pool(4500, {9, 9}, {0, 1}), false);
    test_prepare(make_pool(300, {13}, {1}), true);
  }
  if (on("pair") || on("rows") || on("kmeans") || on("greedy") || quick) {
    if (quick) {
      emu_set_schedule(seed | 1);
      run_pool(make_pool(203, {40, 40}, {1, 1}), false);  // all fp16: the tensor-core tiles
      emu_set_schedule(0);
      run_pool(make_pool(150, {19, 37, 8}, {0, 1, 0}), false);
    } else {
      int n = 0;
      for (auto pool : {make_pool(203, {40, 40}, {1, 1}), make_pool(261, {37}, {0}), make_pool(150, {19, 37, 8}, {0, 1, 0}),
                        make_pool(130, {24, 24, 24}, {0, 0, 0}),
                        make_pool(97, {272, 136}, {1, 0})}) {  // long rows: two 16-byte loads in flight per lane
        emu_set_schedule(n++ % 2 ? seed * 2 + 1 : 0);
        run_pool(pool, false);
      }
      // Pruning off: more centres than prune_center_cap keeps (256 here) turn it off mid-way.
      Pool p = make_pool(300, {8, 8}, {0, 1});
      CudaPool c;
      std::unique_ptr<pp::sel::Selection> cpu;
      if (open_both(p, c, cpu)) test_greedy(c, *cpu, p, {PP_FORM_MULTIMODAL, 1.0, PP_GREEDY_ARGMAX, false, 258, 12}, "k-center, pruning off");
      emu_set_schedule(0);
    }
  }
  if (on("tiles")) {
    // All fp16: 203 rows (two 128-query tiles, ragged), dims a multiple of 8 (cp.async) and not
    // (plain staging), resident and streamed, under a varied schedule.
    emu_set_schedule(seed * 2 + 1);
    run_pool(make_pool(203, {40, 40}, {1, 1}), false, true);
    run_pool(make_pool(150, {37, 21}, {1, 1}), false, true);
    run_pool(make_pool(230, {48, 48}, {1, 1}), true, true);
    emu_set_schedule(0);
  }
  if (on("faults") || quick) {
    test_graph_runtime();
    test_faults();
  }
  if (on("streamed") || quick) {
    emu_set_schedule(quick ? 0 : seed * 2 + 1);
    test_streamed_pruning();
    run_pool(make_pool(quick ? 190 : 400, {32, 32}, {1, 0}), true);
    emu_set_schedule(0);
  }
  // Pinned staging (common.cuh): no large copy touches the caller's pageable memory directly, and
  // every copy above went through 24 KiB staging chunks (PAIRPICK_CUDA_STAGING_BYTES, set above), so
  // the chunking and the alternation of the two buffers are what the parity checks saw.
  EXPECT(emu_pageable_large_copies == 0, "%ld host-device copies of >= 64 KiB straight from pageable memory (%ld pinned)",
         emu_pageable_large_copies, emu_pinned_copies);
  std::printf("staging: %ld copies through pinned buffers, %ld large pageable copies\n", emu_pinned_copies, emu_pageable_large_copies);
  std::printf("greedy graphs: %lld resident picks replayed from %lld captures, %lld kernels replayed\n", graph_replays, graph_captures,
              emu_replayed_kernels());
  std::printf("%s: %d failures\n", failures ? "FAILED" : "OK", failures);
  return failures ? 1 : 0;
}
