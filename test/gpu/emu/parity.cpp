// Checks of the CUDA C ABI (cuda/api.h) against float64 references, run on the host through the
// fiber emulator (cuda_emu.h) — see run.sh. Each group prints its worst errors; exit code 1 on any
// failure. Usage: parity [all|dist|knn|knnchunk|min|infonce|sinkhorn|proto|matmul|errors] [seed]
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "api.h"
#include "harness.h"


struct Mat {
  int rows, dim;
  bool half;
  std::vector<float> f;       // values as used (fp16-rounded when half)
  std::vector<uint16_t> h;    // bits when half
  const void* data() const { return half ? (const void*)h.data() : (const void*)f.data(); }
};
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
static Mat random_mat(int rows, int dim, bool half, double scale = 1) {
  Mat m{rows, dim, half, std::vector<float>(size_t(rows) * dim), {}};
  for (auto& v : m.f) v = float(normal() * scale);
  if (half) {
    m.h.resize(m.f.size());
    for (size_t i = 0; i < m.f.size(); ++i) {
      m.h[i] = to_half_bits(m.f[i]);
      m.f[i] = from_half_bits(m.h[i]);
    }
  }
  return m;
}
static void sync_half(Mat& m) {
  if (!m.half) return;
  m.h.resize(m.f.size());
  for (size_t i = 0; i < m.f.size(); ++i) m.h[i] = to_half_bits(m.f[i]);
}

static double ref_dist(const float* a, const float* b, int dim, int metric) {
  double s = 0, na = 0, nb = 0, dot = 0;
  for (int d = 0; d < dim; ++d) {
    double x = a[d], y = b[d];
    s += (x - y) * (x - y);
    na += x * x;
    nb += y * y;
    dot += x * y;
  }
  if (metric == 0) return s;
  if (metric == 1) return std::sqrt(s);
  if (na == 0 || nb == 0) return 1;
  return 1 - dot / std::sqrt(na * nb);
}

static char err[512];

static void test_distances(int ra, int rb, int dim, int metric, bool half) {
  Mat a = random_mat(ra, dim, half), b = random_mat(rb, dim, half);
  // a duplicate row and a zero row
  if (ra > 2 && rb > 1) {
    std::copy(b.f.begin() + dim, b.f.begin() + 2 * dim, a.f.begin());
    std::fill(a.f.begin() + dim, a.f.begin() + 2 * dim, 0.f);
    sync_half(a);
  }
  std::vector<float> out(size_t(ra) * rb, -7.f);
  int rc = pp_cuda_distances(a.data(), b.data(), half, ra, rb, dim, metric, out.data(), err, sizeof err);
  EXPECT(rc == 0, "distances rc=%d %s", rc, err);
  double worst = 0;
  for (int i = 0; i < ra; ++i)
    for (int j = 0; j < rb; ++j) {
      double r = ref_dist(&a.f[size_t(i) * dim], &b.f[size_t(j) * dim], dim, metric);
      double g = out[size_t(i) * rb + j];
      double e = std::fabs(g - r) / (std::fabs(r) + (metric == 2 ? 1.0 : 1e-30));
      if (!(e <= worst)) worst = e;
    }
  EXPECT(worst <= 1e-5, "distances %dx%dx%d metric %d half %d: worst rel err %.3g", ra, rb, dim, metric, half, worst);
  std::printf("distances %4dx%4dx%3d m%d h%d worst %.2e copies %ld\n", ra, rb, dim, metric, half, worst, emu_copies);
}

// Reference top-k of query q among refs [0, rows_r), global index = ref_offset + r.
static void ref_topk(const Mat& q, int qi, const Mat& r, int k, int metric, long qglobal, long ref_offset,
                     bool exclude, std::vector<std::pair<double, int>>& out) {
  std::vector<std::pair<double, int>> all;
  for (int j = 0; j < r.rows; ++j) {
    long g = ref_offset + j;
    if (exclude && g == qglobal) continue;
    all.push_back({ref_dist(&q.f[size_t(qi) * q.dim], &r.f[size_t(j) * r.dim], q.dim, metric), (int)g});
  }
  std::sort(all.begin(), all.end());
  out.assign(all.begin(), all.begin() + std::min<size_t>(k, all.size()));
}

static void test_knn(int rq, int rr, int dim, int k, int metric, bool half, bool exclude, int pieces) {
  Mat q = random_mat(rq, dim, half);
  Mat r = random_mat(rr, dim, half);
  // Queries are refs (self) when excluding; plus exact duplicates to create ties.
  long query_offset = 0;
  if (exclude) {
    // query i = ref row (query_offset + i)
    query_offset = rr > rq ? (rr - rq) / 2 : 0;
    for (int i = 0; i < rq && query_offset + i < rr; ++i)
      std::copy(r.f.begin() + (query_offset + i) * dim, r.f.begin() + (query_offset + i + 1) * dim, q.f.begin() + size_t(i) * dim);
    sync_half(q);
  }
  if (rr > 10) {  // duplicate ref rows → exact ties (lower index must win)
    std::copy(r.f.begin() + 3 * dim, r.f.begin() + 4 * dim, r.f.begin() + 9 * dim);
    sync_half(r);
  }
  std::vector<int32_t> idx(size_t(rq) * k, -1);
  std::vector<float> dist(size_t(rq) * k, INFINITY);
  // merge refs in `pieces` consecutive parts
  int base = 0;
  for (int p = 0; p < pieces; ++p) {
    int n = (rr - base) / (pieces - p);
    if (p == pieces - 1) n = rr - base;
    const void* rp = half ? (const void*)(r.h.data() + size_t(base) * dim) : (const void*)(r.f.data() + size_t(base) * dim);
    int rc = pp_cuda_knn_merge(q.data(), rp, nullptr, half, rq, n, dim, k, metric, base, query_offset, exclude, idx.data(),
                               dist.data(), err, sizeof err);
    EXPECT(rc == 0, "knn rc=%d %s", rc, err);
    base += n;
  }
  int bad = 0;
  double worst = 0;
  std::vector<std::pair<double, int>> ref;
  for (int i = 0; i < rq; ++i) {
    ref_topk(q, i, r, k, metric, query_offset + i, 0, exclude, ref);
    for (int j = 0; j < k; ++j) {
      int gi = idx[size_t(i) * k + j];
      float gd = dist[size_t(i) * k + j];
      if (j >= (int)ref.size()) {
        if (gi != -1 || !std::isinf(gd)) bad++;
        continue;
      }
      double rd = ref[j].first;
      double scale = metric == 2 ? 1.0 : std::max(rd, 1e-30);
      double e = std::fabs(gd - rd) / scale;
      if (!(e <= worst)) worst = e;
      if (gi != ref[j].second) {
        // allowed only for a near tie
        double td = gi >= 0 && gi < rr ? ref_dist(&q.f[size_t(i) * dim], &r.f[size_t(gi) * dim], dim, metric) : 1e300;
        if (std::fabs(td - rd) > 1e-5 * scale) {
          if (bad < 5) std::printf("   q%d slot %d: got %d (%.7g) want %d (%.7g)\n", i, j, gi, gd, ref[j].second, rd);
          bad++;
        }
      }
    }
  }
  EXPECT(bad == 0 && worst <= 1e-5, "knn %dx%dx%d k%d m%d h%d ex%d pieces%d: %d bad, worst %.3g", rq, rr, dim, k, metric,
         half, exclude, pieces, bad, worst);
  std::printf("knn %4dx%5dx%3d k%4d m%d h%d ex%d p%d: bad %d worst %.2e copies %ld\n", rq, rr, dim, k, metric, half, exclude,
              pieces, bad, worst, emu_copies);
}

static void test_min_update(int rows, int dim, int metric, bool half, bool withExclude, bool allExcluded = false) {
  Mat p = random_mat(rows, dim, half);
  Mat c = random_mat(1, dim, half);
  std::vector<float> md(rows);
  for (int i = 0; i < rows; ++i) md[i] = uni() < 0.3 ? INFINITY : float(uni() * (metric == 2 ? 1.5 : dim * 2.5));
  std::vector<uint8_t> ex(rows, 0);
  for (int i = 0; i < rows; ++i) ex[i] = allExcluded || (withExclude && uni() < 0.2);
  std::vector<float> md0 = md;
  int64_t arg = -5;
  float mx = -5;
  int rc = pp_cuda_min_update(p.data(), nullptr, c.data(), half, rows, dim, metric, md.data(), withExclude ? ex.data() : nullptr,
                              &arg, &mx, err, sizeof err);
  EXPECT(rc == 0, "min_update rc=%d %s", rc, err);
  double worst = 0, best = -1;
  long bestI = -1;
  std::vector<double> nm(rows);
  for (int i = 0; i < rows; ++i) {
    double d = ref_dist(&p.f[size_t(i) * dim], &c.f[0], dim, metric);
    nm[i] = std::min<double>(md0[i], d);
    double e = std::isinf(nm[i]) ? (std::isinf(md[i]) ? 0 : 1) : std::fabs(md[i] - nm[i]) / std::max(std::fabs(nm[i]), metric == 2 ? 1.0 : 1e-30);
    worst = std::max(worst, e);
    if ((!withExclude || !ex[i]) && nm[i] > best) {
      best = nm[i];
      bestI = i;
    }
  }
  bool ok = true;
  if (bestI < 0) ok = arg == -1 && std::isinf(mx) && mx < 0;
  else ok = arg >= 0 && arg < rows && (!withExclude || !ex[arg]) && std::fabs(nm[arg] - best) <= 1e-5 * std::max(best, 1.0) && std::fabs(mx - best) <= 1e-5 * std::max(best, 1.0) && mx == md[arg];
  EXPECT(ok && worst <= 1e-5, "min_update %dx%d m%d h%d ex%d: arg %ld (want %ld) max %g (want %g) worst %.3g", rows, dim,
         metric, half, withExclude, (long)arg, bestI, mx, best, worst);
  std::printf("min_update %5dx%4d m%d h%d ex%d: arg %ld/%ld worst %.2e copies %ld\n", rows, dim, metric, half, withExclude, (long)arg, bestI, worst, emu_copies);
}

// ---- losses ----
static void unit_rows(std::vector<float>& m, int rows, int dim) {
  for (int r = 0; r < rows; ++r) {
    double s = 0;
    for (int d = 0; d < dim; ++d) s += double(m[r * dim + d]) * m[r * dim + d];
    for (int d = 0; d < dim; ++d) m[r * dim + d] = float(m[r * dim + d] / std::sqrt(s));
  }
}
static double rel_norm(const std::vector<float>& g, const std::vector<double>& r) {
  double n = 0, d = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    n += (g[i] - r[i]) * (g[i] - r[i]);
    d += r[i] * r[i];
  }
  return std::sqrt(n / std::max(d, 1e-300));
}

static void test_infonce(int b, int dim, float tau) {
  std::vector<float> za(size_t(b) * dim), zb(size_t(b) * dim);
  for (auto& v : za) v = float(normal());
  for (auto& v : zb) v = float(normal());
  unit_rows(za, b, dim);
  unit_rows(zb, b, dim);
  for (size_t i = 0; i < zb.size(); ++i) zb[i] = 0.6f * zb[i] + 0.4f * za[i];  // correlated pairs
  unit_rows(zb, b, dim);
  float loss = 0;
  std::vector<float> ga(za.size()), gb(zb.size());
  int rc = pp_cuda_infonce(za.data(), zb.data(), b, dim, tau, &loss, ga.data(), gb.data(), err, sizeof err);
  EXPECT(rc == 0, "infonce rc %d %s", rc, err);
  std::vector<double> s(size_t(b) * b), r(b), c(b);
  for (int i = 0; i < b; ++i)
    for (int j = 0; j < b; ++j) {
      double t = 0;
      for (int d = 0; d < dim; ++d) t += double(za[i * dim + d]) * zb[j * dim + d];
      s[size_t(i) * b + j] = t / tau;
    }
  for (int i = 0; i < b; ++i) {
    double m = -1e300, m2 = -1e300;
    for (int j = 0; j < b; ++j) m = std::max(m, s[size_t(i) * b + j]), m2 = std::max(m2, s[size_t(j) * b + i]);
    double l = 0, l2 = 0;
    for (int j = 0; j < b; ++j) l += std::exp(s[size_t(i) * b + j] - m), l2 += std::exp(s[size_t(j) * b + i] - m2);
    r[i] = m + std::log(l);
    c[i] = m2 + std::log(l2);
  }
  double L = 0;
  for (int i = 0; i < b; ++i) L += r[i] + c[i] - 2 * s[size_t(i) * b + i];
  L /= 2.0 * b;
  std::vector<double> rga(za.size(), 0), rgb(zb.size(), 0);
  for (int i = 0; i < b; ++i)
    for (int j = 0; j < b; ++j) {
      double g = (std::exp(s[size_t(i) * b + j] - r[i]) + std::exp(s[size_t(i) * b + j] - c[j]) - (i == j ? 2 : 0)) / (2.0 * b * tau);
      for (int d = 0; d < dim; ++d) {
        rga[i * dim + d] += g * zb[j * dim + d];
        rgb[j * dim + d] += g * za[i * dim + d];
      }
    }
  double el = std::fabs(loss - L) / std::max(std::fabs(L), 1.0), ea = rel_norm(ga, rga), eb = rel_norm(gb, rgb);
  double tol = 1e-5 * std::max(1.0, 0.07 / tau);
  EXPECT(el <= 1e-5 && ea <= tol && eb <= tol, "infonce b%d d%d tau %g: loss %.8g vs %.8g (%.2e) ga %.2e gb %.2e", b, dim, tau, loss, L, el, ea, eb);
  std::printf("infonce b%4d d%4d tau %.2f: loss %.6f err %.2e ga %.2e gb %.2e\n", b, dim, tau, loss, el, ea, eb);
}

static void ref_sinkhorn(const std::vector<float>& P, int b, int k, double eps, int iters, std::vector<double>& Q) {
  double mx = -1e300;
  for (float v : P) mx = std::max(mx, double(v));
  Q.resize(P.size());
  double tot = 0;
  for (size_t i = 0; i < P.size(); ++i) tot += Q[i] = std::exp((P[i] - mx) / eps);
  for (auto& v : Q) v /= tot;
  for (int it = 0; it < iters; ++it) {
    for (int c = 0; c < k; ++c) {
      double s = 0;
      for (int r = 0; r < b; ++r) s += Q[size_t(r) * k + c];
      for (int r = 0; r < b; ++r) Q[size_t(r) * k + c] /= s * k;
    }
    for (int r = 0; r < b; ++r) {
      double s = 0;
      for (int c = 0; c < k; ++c) s += Q[size_t(r) * k + c];
      for (int c = 0; c < k; ++c) Q[size_t(r) * k + c] /= s * b;
    }
  }
  for (auto& v : Q) v *= b;
}

static void test_sinkhorn(int b, int k, float eps, int iters) {
  std::vector<float> P(size_t(b) * k);
  for (auto& v : P) v = float(uni() * 2 - 1);
  std::vector<float> Q(P.size());
  int rc = pp_cuda_sinkhorn(P.data(), b, k, eps, iters, Q.data(), err, sizeof err);
  EXPECT(rc == 0, "sinkhorn rc %d %s", rc, err);
  std::vector<double> R;
  ref_sinkhorn(P, b, k, eps, iters, R);
  double worst = 0, mx = 0;
  for (double v : R) mx = std::max(mx, v);
  for (size_t i = 0; i < R.size(); ++i) worst = std::max(worst, std::fabs(Q[i] - R[i]) / (std::fabs(R[i]) + 1e-7 * mx));
  EXPECT(worst <= 1e-5, "sinkhorn b%d k%d it%d worst %.3g", b, k, iters, worst);
  std::printf("sinkhorn b%4d k%4d it%d worst %.2e\n", b, k, iters, worst);
}

static void test_proto(int b, int dim, int k, float tau) {
  std::vector<float> z(size_t(b) * dim), C(size_t(k) * dim), Q(size_t(b) * k);
  for (auto& v : z) v = float(normal());
  for (auto& v : C) v = float(normal());
  unit_rows(z, b, dim);
  unit_rows(C, k, dim);
  for (int r = 0; r < b; ++r) {
    double s = 0;
    for (int c = 0; c < k; ++c) s += Q[r * k + c] = float(uni() + 0.01);
    for (int c = 0; c < k; ++c) Q[r * k + c] = float(Q[r * k + c] / s * (0.5 + uni()));
  }
  float loss;
  std::vector<float> gz(z.size()), gc(C.size());
  int rc = pp_cuda_prototype_loss(z.data(), C.data(), Q.data(), b, dim, k, tau, &loss, gz.data(), gc.data(), err, sizeof err);
  EXPECT(rc == 0, "proto rc %d %s", rc, err);
  double L = 0;
  std::vector<double> rgz(z.size(), 0), rgc(C.size(), 0);
  for (int i = 0; i < b; ++i) {
    std::vector<double> l(k);
    double m = -1e300, qs = 0;
    for (int c = 0; c < k; ++c) {
      double t = 0;
      for (int d = 0; d < dim; ++d) t += double(z[i * dim + d]) * C[c * dim + d];
      l[c] = t / tau;
      m = std::max(m, l[c]);
      qs += Q[i * k + c];
    }
    double se = 0;
    for (int c = 0; c < k; ++c) se += std::exp(l[c] - m);
    double lse = m + std::log(se);
    for (int c = 0; c < k; ++c) {
      L += Q[i * k + c] * (lse - l[c]);
      double g = (qs * std::exp(l[c] - lse) - Q[i * k + c]) / (double(b) * tau);
      for (int d = 0; d < dim; ++d) {
        rgz[i * dim + d] += g * C[c * dim + d];
        rgc[c * dim + d] += g * z[i * dim + d];
      }
    }
  }
  L /= b;
  double el = std::fabs(loss - L) / std::fabs(L), ez = rel_norm(gz, rgz), ec = rel_norm(gc, rgc);
  EXPECT(el <= 1e-5 && ez <= 1e-5 && ec <= 1e-5, "proto b%d d%d k%d: loss %.3g gz %.3g gc %.3g", b, dim, k, el, ez, ec);
  std::printf("proto b%4d d%4d k%4d: loss err %.2e gz %.2e gc %.2e\n", b, dim, k, el, ez, ec);
}

static void test_matmul(int m, int n, int inner, bool ta, bool tb, bool acc, bool half) {
  Mat A = random_mat(ta ? inner : m, ta ? m : inner, half);
  std::vector<float> B(size_t(inner) * n), C(size_t(m) * n);
  for (auto& v : B) v = float(normal());
  for (auto& v : C) v = float(normal());
  std::vector<float> C0 = C;
  int rc = pp_cuda_matmul(A.data(), half, B.data(), C.data(), m, n, inner, ta, tb, acc, err, sizeof err);
  EXPECT(rc == 0, "matmul rc %d %s", rc, err);
  double worst = 0;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0, sa = 0;
      for (int k = 0; k < inner; ++k) {
        double a = ta ? A.f[size_t(k) * m + i] : A.f[size_t(i) * inner + k];
        double b = tb ? B[size_t(j) * inner + k] : B[size_t(k) * n + j];
        s += a * b;
        sa += std::fabs(a * b);
      }
      if (acc) s += C0[size_t(i) * n + j], sa += std::fabs(C0[size_t(i) * n + j]);
      worst = std::max(worst, std::fabs(C[size_t(i) * n + j] - s) / sa);
    }
  EXPECT(worst <= 1.5e-3, "matmul %dx%dx%d ta%d tb%d acc%d h%d worst %.3g", m, n, inner, ta, tb, acc, half, worst);
  std::printf("matmul %4dx%4dx%4d ta%d tb%d acc%d h%d worst %.2e (vs Σ|ab|)\n", m, n, inner, ta, tb, acc, half, worst);
}

// Failures come back as pp_status codes (core/codes.h) with a message naming the culprit.
static void test_errors() {
  Mat a = random_mat(3, 5, false);
  std::vector<float> out(9);
  const int bad_metric = PP_METRIC_COUNT + int(uni() * 5);
  int rc = pp_cuda_distances(a.data(), a.data(), 0, 3, 3, 5, bad_metric, out.data(), err, sizeof err);
  EXPECT(rc == PP_E_BACKEND && std::strstr(err, "metric"), "bad metric %d: rc %d '%s'", bad_metric, rc, err);
  std::vector<int32_t> idx(3, -1);
  std::vector<float> dist(3, INFINITY);
  rc = pp_cuda_knn_merge(a.data(), a.data(), nullptr, 0, 3, 3, 5, 0, PP_METRIC_EUCLIDEAN, 0, 0, 0, idx.data(), dist.data(), err,
                         sizeof err);
  EXPECT(rc == PP_E_BACKEND && std::strstr(err, "k must"), "k = 0: rc %d '%s'", rc, err);
  rc = pp_cuda_distances(a.data(), a.data(), 0, 3, 3, 5, PP_METRIC_COSINE, out.data(), err, sizeof err);
  EXPECT(rc == PP_OK, "valid call: rc %d '%s'", rc, err);
  std::printf("errors: bad metric and k = 0 rejected with PP_E_BACKEND\n");
}

// Held rows (kernels.resident): uploaded once, then knn_merge (as the refs) and min_update (as the
// points) read them in place. Each call's results equal those of the same call with the rows
// passed from the host (the same kernels on the same values: bit for bit), and its host → device
// bytes are only the query / center and the per-call state — the rows themselves are not
// uploaded again. Misuse (another dim or dtype, rows outside the held ones) fails naming it, and
// the free returns the memory without waiting for the device.
static void test_held_rows(bool half) {
  const int rows = 300, dim = half ? 40 : 36, rq = 20, k = 6;
  const size_t row_bytes = size_t(dim) * (half ? 2 : 4);
  Mat pts = random_mat(rows, dim, half);
  pp_cuda_rows* held = nullptr;
  int rc = pp_cuda_rows_upload(pts.data(), half, rows, dim, &held, err, sizeof err);
  EXPECT(rc == PP_OK && held, "rows_upload rc=%d %s", rc, err);
  if (!held) return;
  // min_update: a greedy loop of 4 centres, held and from the host side by side.
  std::vector<float> md_held(rows, INFINITY), md_host(rows, INFINITY);
  std::vector<uint8_t> ex(rows, 0);
  for (int i = 0; i < rows; ++i) ex[i] = uni() < 0.1;
  long held_bytes = 0, host_bytes = 0;
  for (int step = 0; step < 4; ++step) {
    const int metric = step % 3;
    Mat c = random_mat(1, dim, half);
    int64_t a_held = -2, a_host = -3;
    float m_held = 0, m_host = 1;
    long before = emu_h2d_bytes;
    rc = pp_cuda_min_update(nullptr, held, c.data(), half, rows, dim, metric, md_held.data(), ex.data(), &a_held, &m_held, err, sizeof err);
    EXPECT(rc == PP_OK, "held min_update rc=%d %s", rc, err);
    held_bytes = std::max(held_bytes, emu_h2d_bytes - before);
    before = emu_h2d_bytes;
    rc = pp_cuda_min_update(pts.data(), nullptr, c.data(), half, rows, dim, metric, md_host.data(), ex.data(), &a_host, &m_host, err, sizeof err);
    EXPECT(rc == PP_OK, "min_update rc=%d %s", rc, err);
    host_bytes = std::max(host_bytes, emu_h2d_bytes - before);
    EXPECT(a_held == a_host && m_held == m_host && std::memcmp(md_held.data(), md_host.data(), rows * sizeof(float)) == 0,
           "held min_update step %d: argmax %lld/%lld max %g/%g, or minDist differs", step, (long long)a_held, (long long)a_host, m_held, m_host);
  }
  const long per_call = long(row_bytes + rows * sizeof(float) + rows);  // center, minDist, exclude
  EXPECT(held_bytes <= per_call && host_bytes >= long(rows * row_bytes),
         "min_update uploads %ld bytes per call with held points (want <= %ld: center, minDist, exclude), %ld from the host", held_bytes,
         per_call, host_bytes);
  // knn_merge: the refs in two ranges of the held rows (refOffset picks the range), as kernels.knn blocks them.
  Mat q = random_mat(rq, dim, half);
  const int metric = int(uni() * 3);
  std::vector<int32_t> idx_held(size_t(rq) * k, -1), idx_host(size_t(rq) * k, -1);
  std::vector<float> d_held(size_t(rq) * k, INFINITY), d_host(size_t(rq) * k, INFINITY);
  long knn_held_bytes = 0;
  for (int piece = 0; piece < 2; ++piece) {
    const int r0 = piece ? 130 : 0, n = piece ? rows - 130 : 130;
    long before = emu_h2d_bytes;
    rc = pp_cuda_knn_merge(q.data(), nullptr, held, half, rq, n, dim, k, metric, r0, 0, 0, idx_held.data(), d_held.data(), err, sizeof err);
    EXPECT(rc == PP_OK, "held knn_merge rc=%d %s", rc, err);
    knn_held_bytes = std::max(knn_held_bytes, emu_h2d_bytes - before);
    const char* ref = static_cast<const char*>(pts.data()) + size_t(r0) * row_bytes;
    rc = pp_cuda_knn_merge(q.data(), ref, nullptr, half, rq, n, dim, k, metric, r0, 0, 0, idx_host.data(), d_host.data(), err, sizeof err);
    EXPECT(rc == PP_OK, "knn_merge rc=%d %s", rc, err);
  }
  EXPECT(idx_held == idx_host && std::memcmp(d_held.data(), d_host.data(), d_held.size() * sizeof(float)) == 0,
         "held knn_merge differs from the same merge with host refs");
  const long knn_per_call = long(rq * row_bytes + size_t(rq) * k * 8);  // queries, top-k state
  EXPECT(knn_held_bytes <= knn_per_call, "knn_merge uploads %ld bytes per call with held refs (want <= %ld)", knn_held_bytes, knn_per_call);
  // Misuse: each fails, naming what is wrong.
  int64_t arg = 0;
  float max = 0;
  rc = pp_cuda_min_update(nullptr, held, q.data(), half, rows, dim + 1, 0, md_held.data(), nullptr, &arg, &max, err, sizeof err);
  EXPECT(rc == PP_E_BACKEND && std::strstr(err, "dim"), "held min_update with another dim: rc %d '%s'", rc, err);
  rc = pp_cuda_knn_merge(q.data(), nullptr, held, half, rq, 100, dim, k, 0, rows - 50, 0, 0, idx_held.data(), d_held.data(), err, sizeof err);
  EXPECT(rc == PP_E_BACKEND && std::strstr(err, "held rows"), "held knn_merge past the held rows: rc %d '%s'", rc, err);
  rc = pp_cuda_knn_merge(q.data(), nullptr, held, !half, rq, 100, dim, k, 0, 0, 0, 0, idx_held.data(), d_held.data(), err, sizeof err);
  EXPECT(rc == PP_E_BACKEND && std::strstr(err, half ? "fp16" : "fp32"), "held knn_merge with the other dtype: rc %d '%s'", rc, err);
  rc = pp_cuda_min_update(nullptr, held, q.data(), half, rows - 1, dim, 0, md_held.data(), nullptr, &arg, &max, err, sizeof err);
  EXPECT(rc == PP_E_BACKEND && std::strstr(err, "rows"), "held min_update with other rows: rc %d '%s'", rc, err);
  const size_t used0 = emu_used_mem();
  const long frees0 = emu_blocking_frees, syncs0 = emu_device_syncs;
  pp_cuda_rows_free(held);
  EXPECT(used0 - emu_used_mem() == rows * row_bytes && emu_blocking_frees == frees0 && emu_device_syncs == syncs0,
         "rows_free gave back %zu bytes (held %zu), with %ld blocking frees and %ld device syncs", used0 - emu_used_mem(), rows * row_bytes,
         emu_blocking_frees - frees0, emu_device_syncs - syncs0);
  std::printf("held rows h%d: minUpdate uploads %ld bytes/call held vs %ld from the host; knn %ld bytes/call held\n", half, held_bytes,
              host_bytes, knn_held_bytes);
}

int main(int argc, char** argv) {
  unsigned long seed = argc > 2 ? strtoul(argv[2], nullptr, 10) : (unsigned long)time(nullptr);
  rng.seed(seed);
  setenv("PAIRPICK_CUDA_STAGING_BYTES", "24576", 0);  // small staging chunks: many per copy
  std::printf("seed %lu\n", seed);
  std::string what = argc > 1 ? argv[1] : "all";
  auto on = [&](const char* w) { return what == "all" || what == w; };
  if (on("dist")) {
    for (int h = 0; h < 2; ++h)
      for (int m = 0; m < 3; ++m) {
        test_distances(77, 301, 45, m, h);
        test_distances(5, 3, 1, m, h);
      }
    test_distances(40, 130, 70, 2, false);
    for (int m = 0; m < 3; ++m) test_distances(40, 130, 64, m, m == 1);  // 16-byte loads
  }
  if (on("knn")) {
    for (int h = 0; h < 2; ++h)
      for (int m = 0; m < 3; ++m) test_knn(133, 1001, 37, 20, m, h, false, 1);
    test_knn(133, 1001, 37, 7, 0, false, true, 1);
    test_knn(70, 700, 33, 1, 1, true, true, 3);
    test_knn(50, 300, 20, 45, 0, false, false, 2);
    test_knn(50, 300, 20, 64, 2, true, true, 1);
    test_knn(40, 400, 19, 70, 0, false, true, 2);
    test_knn(30, 300, 9, 140, 1, true, false, 1);
    test_knn(20, 50, 8, 60, 0, false, true, 1);    // k > rows (excludeSelf)
    test_knn(20, 50, 8, 1100, 1, false, false, 1); // k ≫ rows
    test_knn(90, 700, 40, 20, 0, true, false, 1);   // 16-byte fp16 loads
    test_knn(90, 700, 64, 12, 2, false, true, 2);   // 16-byte fp32 loads
  }
  if (what == "knnchunk") {
    test_knn(133, 1001, 37, 20, 0, false, false, 1);
    test_knn(133, 1001, 37, 20, 2, true, true, 2);
    test_knn(100, 600, 19, 70, 1, false, true, 2);
  }
  if (on("min")) {
    for (int h = 0; h < 2; ++h)
      for (int m = 0; m < 3; ++m) {
        test_min_update(2003, 67, m, h, true);
        test_min_update(1000, 64, m, h, false);
        test_min_update(999, 72, m, h, true);
      }
    test_min_update(300, 16, 0, false, true, true);
  }
  if (on("infonce")) {
    test_infonce(77, 45, 0.07f);
    test_infonce(300, 130, 0.07f);
    test_infonce(150, 600, 0.01f);
    test_infonce(1, 3, 0.07f);
    test_infonce(260, 33, 0.01f);
  }
  if (on("sinkhorn")) {
    test_sinkhorn(77, 10, 0.05f, 3);
    test_sinkhorn(300, 67, 0.05f, 5);
    test_sinkhorn(1000, 130, 0.05f, 1);
    test_sinkhorn(33, 7, 0.05f, 0);
  }
  if (on("proto")) {
    test_proto(77, 45, 10, 0.1f);
    test_proto(300, 130, 67, 0.1f);
    test_proto(33, 600, 3, 0.1f);
  }
  if (on("matmul")) {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int acc = 0; acc < 2; ++acc) test_matmul(77, 45, 130, ta, tb, acc, (ta + tb + acc) % 2);
    test_matmul(1, 1, 1, false, false, false, false);
    test_matmul(130, 70, 33, true, false, true, true);
    test_matmul(64, 64, 64, false, true, false, false);
  }
  if (on("errors")) {
    test_errors();
    test_held_rows(false);
    test_held_rows(true);
  }
  // Pinned staging (common.cuh): no large copy touches the caller's pageable memory directly, and
  // every copy above went through 24 KiB staging chunks (PAIRPICK_CUDA_STAGING_BYTES, set above), so
  // the chunking and the alternation of the two buffers are what the parity checks saw.
  EXPECT(emu_pageable_large_copies == 0, "%ld host-device copies of >= 64 KiB straight from pageable memory (%ld pinned)",
         emu_pageable_large_copies, emu_pinned_copies);
  std::printf("staging: %ld copies through pinned buffers, %ld large pageable copies\n", emu_pinned_copies, emu_pageable_large_copies);
  std::printf("%s: %d failures\n", failures ? "FAILED" : "OK", failures);
  return failures ? 1 : 0;
}
