// Checks the cuda backend's warm-start engine (cuda/warm_engine.cc over cuda/warm.cu, run on the
// host through the fiber emulator, run.sh) against the CPU engine (native/core/warm.cc) through
// every entry point of core/warm.h: load (chunks out of order), dots, sample_init (exclusions),
// sample_step (several calls, running out of candidates, all-zero D²) on ragged pools — row
// counts off the 4096-row sample blocks and the 256-thread blocks, classes and features off the
// 8-float padding —, balance on and off, 1–3 modality blocks, nonnegative and signed features,
// under several seeded thread/block schedules. Also the residency fallback (a store that does not
// fit in device memory runs the CPU engine) and the C ABI's argument checks.
//
// Tolerance: none. The device repeats the CPU engine's float64 operations in the same order (see
// cuda/warm.cu), so picks, D² at the pick and dot products must be bit-identical; the forward
// pass is the CPU's own code (ForwardPass), so its outputs are compared exactly as well.
//
// Usage: warm_parity [warm|quick] [seed]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "api.h"
#include "harness.h"
#include "core/error.h"
#include "core/warm.h"



static void stamp() {
  static const std::clock_t t0 = std::clock();
  std::printf("[%6.1fs] ", double(std::clock() - t0) / CLOCKS_PER_SEC);
}

static bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

struct Case {
  const char* name;
  int64_t rows, classes, blocks, block_dim;
  bool balance, nonnegative;
  double exclude_fraction;
  int distinct;                // > 0: rows repeat this many feature vectors (D² reaches 0)
  std::vector<int64_t> calls;  // steps per sample_step call
  unsigned long long schedule;
};

struct Data {
  std::vector<float> weight, bias;
  std::vector<std::vector<float>> features;  // per block: rows × block_dim
  std::vector<uint8_t> exclude;
  std::vector<double> uniforms;
};

static Data make_data(const Case& c) {
  Data d;
  const int64_t F = c.blocks * c.block_dim;
  for (int64_t k = 0; k < c.classes * F; ++k) d.weight.push_back((float)(0.6 * normal()));
  for (int64_t k = 0; k < c.classes; ++k) d.bias.push_back((float)(0.3 * normal()));
  d.features.assign(c.blocks, std::vector<float>((size_t)(c.rows * c.block_dim)));
  for (int64_t i = 0; i < c.rows; ++i) {
    const int64_t src = c.distinct > 0 ? i % c.distinct : i;
    for (int64_t k = 0; k < c.blocks; ++k)
      for (int64_t j = 0; j < c.block_dim; ++j) {
        float v;
        if (src < i) {
          v = d.features[k][src * c.block_dim + j];
        } else {
          const double g = normal();
          v = (float)(c.nonnegative ? std::fabs(g) : g);
        }
        d.features[k][i * c.block_dim + j] = v;
      }
  }
  d.exclude.resize((size_t)c.rows);
  for (auto& e : d.exclude) e = uni() < c.exclude_fraction ? 1 : 0;
  int64_t total = 0;
  for (int64_t s : c.calls) total += s;
  for (int64_t t = 0; t < total; ++t) d.uniforms.push_back(uni());
  return d;
}

static pp::warm::GradientSpec spec_of(const Case& c, const Data& d) {
  pp::warm::GradientSpec s;
  s.rows = c.rows;
  s.classes = c.classes;
  s.blocks = c.blocks;
  s.block_dim = c.block_dim;
  s.weight = d.weight.data();
  s.bias = d.bias.data();
  s.balance = c.balance;
  return s;
}

// Loads rows in chunks, last chunk first (any order is allowed); returns the outputs concatenated.
struct LoadOut {
  std::vector<int32_t> pred;
  std::vector<double> norm2;
  std::vector<float> contributions, scales;
};
static LoadOut load_all(pp::warm::Gradient& g, const Case& c, const Data& d, int64_t chunk) {
  LoadOut o;
  o.pred.resize((size_t)c.rows);
  o.norm2.resize((size_t)c.rows);
  if (c.balance) {
    o.contributions.resize((size_t)(c.rows * c.blocks));
    o.scales.resize((size_t)(c.rows * c.blocks));
  }
  const int64_t chunks = (c.rows + chunk - 1) / chunk;
  for (int64_t q = chunks - 1; q >= 0; --q) {
    const int64_t start = q * chunk, count = std::min(chunk, c.rows - start);
    std::vector<const float*> f;
    for (int64_t k = 0; k < c.blocks; ++k) f.push_back(d.features[k].data() + start * c.block_dim);
    g.load(start, count, f.data(), o.pred.data() + start, o.norm2.data() + start,
           c.balance ? o.contributions.data() + start * c.blocks : nullptr,
           c.balance ? o.scales.data() + start * c.blocks : nullptr);
  }
  return o;
}

static void run_case(const Case& c) {
  const Data d = make_data(c);
  const auto spec = spec_of(c, d);
  emu_set_schedule(c.schedule);
  const size_t used_before = emu_used_mem();
  std::unique_ptr<pp::warm::Gradient> dev = pp::warm::cuda_warm_engine().open(spec);
  std::unique_ptr<pp::warm::Gradient> cpu = pp::warm::cpu_warm_engine().open(spec);
  EXPECT(emu_used_mem() > used_before, "%s: the store is not on the device", c.name);
  const LoadOut a = load_all(*dev, c, d, 1000), b = load_all(*cpu, c, d, 777);
  EXPECT(a.pred == b.pred && a.contributions == b.contributions && a.scales == b.scales, "%s: load outputs differ", c.name);
  for (int64_t i = 0; i < c.rows; ++i)
    if (!same_bits(a.norm2[i], b.norm2[i])) {
      EXPECT(false, "%s: norm2[%lld] %.17g vs %.17g", c.name, (long long)i, a.norm2[i], b.norm2[i]);
      break;
    }
  // dots: random pairs, self pairs included.
  std::vector<int32_t> pa, pb;
  for (int k = 0; k < 64; ++k) {
    pa.push_back((int32_t)(uni() * c.rows));
    pb.push_back(k % 8 == 0 ? pa.back() : (int32_t)(uni() * c.rows));
  }
  std::vector<double> da(pa.size()), db(pa.size());
  dev->dots(pa.data(), pb.data(), (int64_t)pa.size(), da.data());
  cpu->dots(pa.data(), pb.data(), (int64_t)pa.size(), db.data());
  int dots_off = 0;
  for (size_t k = 0; k < pa.size(); ++k) dots_off += !same_bits(da[k], db[k]);
  EXPECT(dots_off == 0, "%s: %d of %zu dot products differ (first: %.17g vs %.17g)", c.name, dots_off, pa.size(), da[0], db[0]);
  // Two rounds of seeding on the same store (sample_init resets it).
  for (int round = 0; round < 2; ++round) {
    dev->sample_init(d.exclude.data());
    cpu->sample_init(d.exclude.data());
    int64_t at = 0, total = 0, mismatch = -1;
    bool short_seen = false;
    for (int64_t steps : c.calls) {
      std::vector<int32_t> p1((size_t)steps, -7), p2((size_t)steps, -7);
      std::vector<double> d1((size_t)steps), d2((size_t)steps);
      const int64_t m1 = dev->sample_step(steps, d.uniforms.data() + at, p1.data(), d1.data());
      const int64_t m2 = cpu->sample_step(steps, d.uniforms.data() + at, p2.data(), d2.data());
      EXPECT(m1 == m2, "%s: call of %lld steps made %lld picks on cuda, %lld on cpu", c.name, (long long)steps, (long long)m1,
             (long long)m2);
      for (int64_t t = 0; t < std::min(m1, m2) && mismatch < 0; ++t)
        if (p1[t] != p2[t] || !same_bits(d1[t], d2[t])) mismatch = total + t;
      if (mismatch >= 0) {
        const int64_t t = mismatch - total;
        EXPECT(false, "%s: pick %lld differs: cuda row %d (D² %.17g), cpu row %d (D² %.17g)", c.name, (long long)mismatch,
               p1[t], d1[t], p2[t], d2[t]);
        break;
      }
      short_seen |= m2 < steps;
      total += m2;
      at += steps;
    }
    if (round == 0 && mismatch < 0) {
      stamp();
      std::printf("%s: %lld rows, C %lld, %lld×%lld, balance %d: %lld picks%s identical\n", c.name, (long long)c.rows,
                  (long long)c.classes, (long long)c.blocks, (long long)c.block_dim, c.balance ? 1 : 0, (long long)total,
                  short_seen ? " (ran out of candidates)" : "");
    }
  }
  emu_set_schedule(0);
}

// A store larger than device memory runs the CPU engine (nothing allocated on the device), with
// the same picks; the C ABI's open reports it with a NULL store.
static void test_fallback() {
  Case c{"fallback", 500, 5, 2, 9, false, true, 0.0, 0, {12}, 0};
  const Data d = make_data(c);
  const auto spec = spec_of(c, d);
  emu_set_mem(64 * 1024);  // far less than 500 × (8 + 24) floats
  const size_t used_before = emu_used_mem();
  char err[256] = {0};
  pp_cuda_warm* w = reinterpret_cast<pp_cuda_warm*>(&c);
  const int rc = pp_cuda_warm_open(c.rows, c.classes, c.blocks * c.block_dim, &w, err, sizeof err);
  EXPECT(rc == PP_OK && w == nullptr, "fallback: open returned %d with a store (%s)", rc, err);
  std::unique_ptr<pp::warm::Gradient> dev = pp::warm::cuda_warm_engine().open(spec);
  EXPECT(emu_used_mem() == used_before, "fallback: %zu device bytes taken", emu_used_mem() - used_before);
  std::unique_ptr<pp::warm::Gradient> cpu = pp::warm::cpu_warm_engine().open(spec);
  load_all(*dev, c, d, 200);
  load_all(*cpu, c, d, 500);
  dev->sample_init(d.exclude.data());
  cpu->sample_init(d.exclude.data());
  std::vector<int32_t> p1(12), p2(12);
  std::vector<double> d1(12), d2(12);
  const int64_t m1 = dev->sample_step(12, d.uniforms.data(), p1.data(), d1.data());
  const int64_t m2 = cpu->sample_step(12, d.uniforms.data(), p2.data(), d2.data());
  EXPECT(m1 == 12 && m2 == 12 && p1 == p2, "fallback: picks differ");
  emu_set_mem(0);
  stamp();
  std::printf("fallback: a store that does not fit runs the CPU engine\n");
}

// Bad arguments come back as errors with a message, not a crash.
static void test_errors() {
  char err[256];
  pp_cuda_warm* w = nullptr;
  EXPECT(pp_cuda_warm_open(0, 3, 4, &w, err, sizeof err) != PP_OK && w == nullptr, "errors: empty store accepted");
  EXPECT(pp_cuda_warm_open(10, 3, 4, &w, err, sizeof err) == PP_OK && w, "errors: open failed: %s", err);
  if (!w) return;
  std::vector<float> r(30, 0.5f), x(40, 0.25f);
  std::vector<double> n2(10, 1.0), xn(10, 0.5), pos(10, 0.5), top(10, 0.25), neg(10, -0.5);
  std::vector<int32_t> pred(10, 0);
  err[0] = 0;
  EXPECT(pp_cuda_warm_upload(w, 5, 6, r.data(), x.data(), n2.data(), xn.data(), pred.data(), pos.data(), top.data(), neg.data(), 1,
                             err, sizeof err) != PP_OK &&
             std::strstr(err, "out of range"),
         "errors: upload past the end accepted (%s)", err);
  const int32_t a[2] = {0, 10}, b[2] = {1, 2};
  double out[2];
  err[0] = 0;
  EXPECT(pp_cuda_warm_dots(w, a, b, 2, out, err, sizeof err) != PP_OK && std::strstr(err, "out of range"),
         "errors: dots on a row out of range accepted (%s)", err);
  int32_t picks[2];
  double d2[2];
  int64_t made = 0;
  err[0] = 0;
  EXPECT(pp_cuda_warm_sample_step(w, 2, nullptr, -1, picks, d2, &made, err, sizeof err) != PP_OK && std::strstr(err, "uniforms"),
         "errors: sampling without uniforms accepted (%s)", err);
  pp_cuda_warm_close(w);
  // More than kMaxBalanceBlocks blocks with balance: E_OPTION before any device memory is taken.
  std::vector<float> weight(2 * 5 * 3, 0.1f), bias(2, 0.f);
  pp::warm::GradientSpec s;
  s.rows = 4;
  s.classes = 2;
  s.blocks = 5;
  s.block_dim = 3;
  s.weight = weight.data();
  s.bias = bias.data();
  s.balance = true;
  const size_t used = emu_used_mem();
  bool threw = false;
  try {
    pp::warm::cuda_warm_engine().open(s);
  } catch (const pp::Error& e) {
    threw = e.code() == PP_E_OPTION;
  }
  EXPECT(threw && emu_used_mem() == used, "errors: balance over 5 blocks not refused with E_OPTION up front");
  stamp();
  std::printf("errors: checked\n");
}

int main(int argc, char** argv) {
  const unsigned long seed = argc > 2 ? strtoul(argv[2], nullptr, 10) : (unsigned long)time(nullptr);
  rng.seed(seed);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("seed %lu\n", seed);
  const std::string what = argc > 1 ? argv[1] : "warm";
  const bool quick = what == "quick";
  const unsigned long long s1 = seed * 2 + 1, s2 = seed * 2 + 3;
  std::vector<Case> cases;
  // Two sample blocks (the second ragged), classes and features both padded, Shapley scales.
  cases.push_back({"two blocks, balance", 4096 + 37, 7, 2, 13, true, true, 0.1, 0, {1, 9, 14}, s1});
  // Signed features (the |a| pruning bound), one block, no padding.
  cases.push_back({"signed, 1 block", 300, 16, 1, 24, false, false, 0.2, 0, {25, 15}, 0});
  // Three blocks with balance; more steps than candidates: the call comes back short.
  cases.push_back({"exhausted, 3 blocks", 61, 3, 3, 5, true, true, 0.7, 0, {4, 40, 3}, s2});
  // Two classes, signed features: ⟨r_i, r_c⟩ < 0 across predictions, where only its lower bound
  // keeps the pruning exact.
  cases.push_back({"two classes, signed", 500, 2, 2, 9, false, false, 0.0, 0, {60}, s2});
  // Repeated rows: D² reaches 0 everywhere (the first-candidate rule).
  cases.push_back({"repeats", 90, 4, 2, 6, false, true, 0.05, 5, {12, 3}, s1});
  if (!quick) {
    cases.push_back({"three blocks, signed, balance", 3 * 4096 + 1, 11, 3, 7, true, false, 0.02, 0, {30, 30}, s2});
    cases.push_back({"single row", 1, 5, 1, 9, false, true, 0.0, 0, {3}, s1});
    cases.push_back({"wide", 700, 33, 2, 41, true, true, 0.0, 0, {40}, 0});
  }
  stamp();
  std::printf("start\n");
  for (const Case& c : cases) run_case(c);
  test_fallback();
  test_errors();
  std::printf("%s: %d failures\n", failures ? "FAILED" : "OK", failures);
  return failures ? 1 : 0;
}
