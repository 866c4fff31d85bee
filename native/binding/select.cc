// addon.{cpu,cuda}.select* — the selection engine (native/core/select.h on the CPU, the C ABI of
// cuda/api.h on CUDA) behind one handle object. Same signatures on both tables:
//   selectOpen(rows, datas: (Float32Array|Uint16Array)[], dims: number[])       → Promise<handle>
//   selectPrepare(h, start, count, wantAlignment)      → Promise<{ badRows, alignment?, sums }>
//   selectPairReduce(h, qIdx|null, qStart, qCount, rIdx|null, rStart, rCount, form, gamma,
//                    kind, k, radius, refMask|null, labels|null, cover|null)   → Promise<Float64Array>
//   selectDistancesFrom(h, row, form, gamma)                                    → Promise<Float32Array>
//   selectGather(h, idx: Int32Array)                                            → Promise<Float32Array>
//   selectSetCentroids(h, centroids: Float32Array, k)                           → Promise<void>
//   selectAssign(h, start, count, labels, distances, sums, counts)              → Promise<number>
//   selectGreedyInit(h, form, gamma, base|null, wDiversity, exclude, mode)      → Promise<void>
//   selectGreedyAdd(h, idx: Int32Array)                                         → Promise<void>
//   selectGreedyStep(h, steps, uniforms|null)      → Promise<{ picks, diversity, diversityMax }>
//   selectClose(h)                                                              → undefined
// The handle keeps the data arrays referenced, so they outlive the engine. One op at a time per
// handle (E_STATE otherwise); close() during an op frees the engine when that op ends.
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api.h"
#include "common.h"
#include "core/select.h"

namespace pp::binding {
namespace {

enum class Target { kCpu, kCuda };

void CudaCheck(int rc, const char* err) {
  if (rc != 0) throw pp::Error("E_BACKEND", err[0] ? err : "CUDA call failed");
}

// The CUDA engine: the C ABI of cuda/api.h behind the same interface as the CPU engine.
class CudaEngine final : public sel::Engine {
 public:
  CudaEngine(int64_t rows, const std::vector<sel::Modality>& mods) {
    std::vector<int64_t> dims;
    std::vector<int> half;
    std::vector<const void*> data;
    for (const auto& m : mods) {
      dims.push_back(m.dim);
      half.push_back(m.half ? 1 : 0);
      data.push_back(m.data);
    }
    char err[512] = {0};
    CudaCheck(pp_cuda_select_open(rows, static_cast<int>(mods.size()), dims.data(), half.data(), data.data(), &s_, err,
                                  sizeof err),
              err);
  }
  ~CudaEngine() override { pp_cuda_select_close(s_); }

  void prepare(int64_t start, int64_t count, int64_t* bad_rows, float* alignment, double* sums) override {
    char err[512] = {0};
    CudaCheck(pp_cuda_select_prepare(s_, start, count, bad_rows, alignment, sums, err, sizeof err), err);
  }
  void pair_reduce(const sel::RowSet& q, const sel::RowSet& r, const sel::Metric& m, const sel::Reduction& red,
                   double* out) override {
    char err[512] = {0};
    CudaCheck(pp_cuda_select_pair_reduce(s_, q.idx, q.start, q.count, r.idx, r.start, r.count, m.form, m.gamma, red.kind,
                                         red.k, red.radius, red.ref_mask, red.labels, red.cover, out, err, sizeof err),
              err);
  }
  void distances_from(int64_t row, const sel::Metric& m, float* out) override {
    char err[512] = {0};
    CudaCheck(pp_cuda_select_distances_from(s_, row, m.form, m.gamma, out, err, sizeof err), err);
  }
  void gather(const int32_t* idx, int64_t n, float* out) override {
    char err[512] = {0};
    CudaCheck(pp_cuda_select_gather(s_, idx, n, out, err, sizeof err), err);
  }
  void set_centroids(const float* c, int64_t k) override {
    char err[512] = {0};
    CudaCheck(pp_cuda_select_set_centroids(s_, c, k, err, sizeof err), err);
  }
  int64_t assign(int64_t start, int64_t count, int32_t* labels, float* distances, double* sums, double* counts) override {
    char err[512] = {0};
    int64_t changed = 0;
    CudaCheck(pp_cuda_select_assign(s_, start, count, labels, distances, sums, counts, &changed, err, sizeof err), err);
    return changed;
  }
  void greedy_init(const sel::Metric& m, const float* base, double w, const uint8_t* exclude, int mode) override {
    char err[512] = {0};
    CudaCheck(pp_cuda_select_greedy_init(s_, m.form, m.gamma, base, w, exclude, mode, err, sizeof err), err);
  }
  void greedy_add(const int32_t* idx, int64_t n) override {
    char err[512] = {0};
    CudaCheck(pp_cuda_select_greedy_add(s_, idx, n, err, sizeof err), err);
  }
  int64_t greedy_step(int64_t steps, const double* uniforms, int32_t* picks, float* div, float* div_max) override {
    char err[512] = {0};
    int64_t made = 0;
    CudaCheck(pp_cuda_select_greedy_step(s_, steps, uniforms, picks, div, div_max, &made, err, sizeof err), err);
    return made;
  }

 private:
  pp_cuda_select* s_ = nullptr;
};

// What the JS handle points to. The engine is used by one op at a time.
struct Holder {
  std::mutex mu;
  std::unique_ptr<sel::Engine> engine;
  int64_t rows = 0;
  int modalities = 0;
  int64_t total = 0;  // Σ dims
  bool busy = false;
  bool closed = false;
};

// Claims the engine for one op (main thread); the op's work must end with Release().
sel::Engine* Acquire(Napi::Env env, Holder* h) {
  std::lock_guard<std::mutex> lock(h->mu);
  if (h->closed || !h->engine) Throw(env, "E_STATE", "selection context used after close()");
  if (h->busy) Throw(env, "E_STATE", "selection context: another op is still running (await each op)");
  h->busy = true;
  return h->engine.get();
}

void Release(Holder* h) {
  std::lock_guard<std::mutex> lock(h->mu);
  h->busy = false;
  if (h->closed) h->engine.reset();
}

// Runs fn on the engine, releasing it however fn ends.
template <typename Fn>
void WithEngine(Holder* h, sel::Engine* e, Fn&& fn) {
  try {
    fn(e);
  } catch (...) {
    Release(h);
    throw;
  }
  Release(h);
}

Holder* ArgHandle(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject()) Throw(info.Env(), "E_INTERNAL", "expected a selection handle");
  Napi::Value ptr = info[0].As<Napi::Object>().Get("ptr");
  if (!ptr.IsExternal()) Throw(info.Env(), "E_INTERNAL", "expected a selection handle");
  return ptr.As<Napi::External<Holder>>().Data();
}

template <typename T, napi_typedarray_type Kind>
T* OptTyped(const Napi::CallbackInfo& info, size_t i, const char* name, size_t need) {
  if (!HasArg(info, i)) return nullptr;
  size_t len = 0;
  T* p = ArgTyped<T, Kind>(info, i, name, &len);
  if (len < need) Throw(info.Env(), "E_SHAPE", std::string(name) + ": has " + std::to_string(len) + " values, needs " + std::to_string(need));
  return p;
}

void CheckForm(Napi::Env env, int form) {
  if (form < 0 || form > 2) Throw(env, "E_OPTION", "unknown pair form " + std::to_string(form));
}

template <Target T>
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t rows = ArgInt(info, 0, "rows");
  if (info.Length() < 3 || !info[1].IsArray() || !info[2].IsArray()) Throw(env, "E_INTERNAL", "selectOpen(rows, datas, dims)");
  Napi::Array datas = info[1].As<Napi::Array>(), dims = info[2].As<Napi::Array>();
  if (datas.Length() != dims.Length() || datas.Length() == 0) Throw(env, "E_SHAPE", "selectOpen: one data array per dimension");
  if (rows < 1) Throw(env, "E_SHAPE", "selectOpen: the pool has no rows");
  std::vector<sel::Modality> mods;
  for (uint32_t m = 0; m < datas.Length(); ++m) {
    Napi::Value v = datas.Get(m);
    if (!v.IsTypedArray()) Throw(env, "E_INTERNAL", "selectOpen: data must be typed arrays");
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    sel::Modality md;
    md.half = ta.TypedArrayType() == napi_uint16_array;
    if (!md.half && ta.TypedArrayType() != napi_float32_array) Throw(env, "E_INTERNAL", "selectOpen: Float32Array or Uint16Array");
    md.dim = dims.Get(m).As<Napi::Number>().Int64Value();
    if (md.dim < 1) Throw(env, "E_SHAPE", "selectOpen: dimension must be ≥ 1");
    if (static_cast<double>(ta.ElementLength()) < static_cast<double>(rows) * static_cast<double>(md.dim))
      Throw(env, "E_SHAPE", "selectOpen: modality " + std::to_string(m) + " has fewer than rows × dim values");
    md.data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    mods.push_back(md);
  }
  auto holder = std::make_shared<std::unique_ptr<sel::Engine>>();
  auto data_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(datas.As<Napi::Object>()));
  const int count = static_cast<int>(mods.size());
  auto* w = new PromiseWorker(
      env,
      [=] {
        if (T == Target::kCpu)
          *holder = sel::make_cpu_engine(rows, mods);
        else
          *holder = std::make_unique<CudaEngine>(rows, mods);
      },
      [=](Napi::Env e) -> Napi::Value {
        auto* h = new Holder();
        h->engine = std::move(*holder);
        h->rows = rows;
        h->modalities = count;
        for (const auto& md : mods) h->total += md.dim;
        Napi::Object handle = Napi::Object::New(e);
        handle.Set("ptr", Napi::External<Holder>::New(e, h, [](Napi::Env, Holder* p) { delete p; }));
        handle.Set("data", data_ref->Value());  // keeps the arrays alive as long as the handle
        return handle;
      });
  w->KeepArgs(info);
  return w->Start();
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Holder* h = ArgHandle(info);
  std::lock_guard<std::mutex> lock(h->mu);
  h->closed = true;
  if (!h->busy) h->engine.reset();
  return info.Env().Undefined();
}

// Queues `work(engine)` on a worker thread with the engine claimed; `done` builds the result.
template <typename Work>
Napi::Value Queue(const Napi::CallbackInfo& info, Holder* h, Work work, PromiseWorker::Done done = nullptr) {
  sel::Engine* e = Acquire(info.Env(), h);
  auto* w = new PromiseWorker(
      info.Env(), [=] { WithEngine(h, e, work); }, std::move(done));
  w->KeepArgs(info);
  return w->Start();
}

template <typename A>
std::shared_ptr<Napi::ObjectReference> Pin(const A& array) {
  return std::make_shared<Napi::ObjectReference>(Napi::Persistent(array.template As<Napi::Object>()));
}

Napi::Value Prepare(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Holder* h = ArgHandle(info);
  const int64_t start = ArgInt(info, 1, "start"), count = ArgInt(info, 2, "count");
  const bool want_alignment = info.Length() > 3 && info[3].ToBoolean().Value();
  if (start < 0 || count < 0 || start + count > h->rows) Throw(env, "E_SHAPE", "selectPrepare: rows out of range");
  auto bad = std::make_shared<std::vector<int64_t>>(h->modalities, -1);
  Napi::Float64Array sums = Napi::Float64Array::New(env, static_cast<size_t>(h->total));
  Napi::Float32Array alignment = Napi::Float32Array::New(env, want_alignment ? static_cast<size_t>(count) : 0);
  double* sums_ptr = sums.Data();
  float* align_ptr = want_alignment ? alignment.Data() : nullptr;
  auto sums_ref = Pin(sums), align_ref = Pin(alignment);
  const int modalities = h->modalities;
  return Queue(
      info, h, [=](sel::Engine* e) { e->prepare(start, count, bad->data(), align_ptr, sums_ptr); },
      [=](Napi::Env en) -> Napi::Value {
        Napi::Object o = Napi::Object::New(en);
        Napi::Array rows = Napi::Array::New(en, modalities);
        for (int m = 0; m < modalities; ++m) rows.Set(m, Napi::Number::New(en, static_cast<double>((*bad)[m])));
        o.Set("badRows", rows);
        if (want_alignment) o.Set("alignment", align_ref->Value());
        o.Set("sums", sums_ref->Value());
        return o;
      });
}

sel::RowSet ArgRowSet(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t rows) {
  sel::RowSet set;
  set.start = ArgInt(info, i + 1, name);
  set.count = ArgInt(info, i + 2, name);
  if (HasArg(info, i)) {
    size_t len = 0;
    set.idx = ArgI32(info, i, name, &len);
    if (static_cast<int64_t>(len) < set.count) Throw(info.Env(), "E_SHAPE", std::string(name) + ": index list shorter than its count");
    set.start = 0;
  } else if (set.start < 0 || set.count < 0 || set.start + set.count > rows) {
    Throw(info.Env(), "E_SHAPE", std::string(name) + ": rows out of range");
  }
  return set;
}

Napi::Value PairReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Holder* h = ArgHandle(info);
  const sel::RowSet q = ArgRowSet(info, 1, "queries", h->rows), r = ArgRowSet(info, 4, "refs", h->rows);
  sel::Metric metric;
  metric.form = static_cast<int>(ArgInt(info, 7, "form"));
  metric.gamma = ArgDouble(info, 8, "gamma");
  CheckForm(env, metric.form);
  sel::Reduction red;
  red.kind = static_cast<int>(ArgInt(info, 9, "kind"));
  red.k = ArgInt(info, 10, "k");
  red.radius = ArgDouble(info, 11, "radius");
  const size_t rows = static_cast<size_t>(h->rows);
  red.ref_mask = OptTyped<uint8_t, napi_uint8_array>(info, 12, "refMask", rows);
  red.labels = OptTyped<int32_t, napi_int32_array>(info, 13, "labels", rows);
  red.cover = OptTyped<float, napi_float32_array>(info, 14, "cover", rows);
  if (red.kind < 0 || red.kind > 4) Throw(env, "E_OPTION", "unknown reduction " + std::to_string(red.kind));
  if (red.kind == sel::kKnnMean && red.k < 1) Throw(env, "E_OPTION", "knnMean: k must be ≥ 1");
  if (red.kind == sel::kMinOtherLabel && !red.labels) Throw(env, "E_INTERNAL", "minOtherLabel needs labels");
  if (red.kind == sel::kGain && !red.cover) Throw(env, "E_INTERNAL", "gain needs cover");
  Napi::Float64Array out = Napi::Float64Array::New(env, static_cast<size_t>(q.count));
  double* out_ptr = out.Data();
  auto out_ref = Pin(out);
  return Queue(
      info, h, [=](sel::Engine* e) { e->pair_reduce(q, r, metric, red, out_ptr); },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
}

Napi::Value DistancesFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Holder* h = ArgHandle(info);
  const int64_t row = ArgInt(info, 1, "row");
  sel::Metric metric;
  metric.form = static_cast<int>(ArgInt(info, 2, "form"));
  metric.gamma = ArgDouble(info, 3, "gamma");
  CheckForm(env, metric.form);
  if (row < 0 || row >= h->rows) Throw(env, "E_SHAPE", "selectDistancesFrom: row out of range");
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(h->rows));
  float* out_ptr = out.Data();
  auto out_ref = Pin(out);
  return Queue(
      info, h, [=](sel::Engine* e) { e->distances_from(row, metric, out_ptr); },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
}

Napi::Value Gather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Holder* h = ArgHandle(info);
  size_t n = 0;
  const int32_t* idx = ArgI32(info, 1, "indices", &n);
  for (size_t a = 0; a < n; ++a)
    if (idx[a] < 0 || idx[a] >= h->rows) Throw(env, "E_SHAPE", "selectGather: row out of range");
  Napi::Float32Array out = Napi::Float32Array::New(env, n * static_cast<size_t>(h->total));
  float* out_ptr = out.Data();
  auto out_ref = Pin(out);
  return Queue(
      info, h, [=](sel::Engine* e) { e->gather(idx, static_cast<int64_t>(n), out_ptr); },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
}

Napi::Value SetCentroids(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Holder* h = ArgHandle(info);
  size_t len = 0;
  const float* c = ArgF32(info, 1, "centroids", &len);
  const int64_t k = ArgInt(info, 2, "k");
  if (k < 1 || static_cast<double>(len) < static_cast<double>(k) * static_cast<double>(h->total))
    Throw(env, "E_SHAPE", "selectSetCentroids: needs k × Σdim values");
  return Queue(info, h, [=](sel::Engine* e) { e->set_centroids(c, k); });
}

Napi::Value Assign(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Holder* h = ArgHandle(info);
  const int64_t start = ArgInt(info, 1, "start"), count = ArgInt(info, 2, "count");
  if (start < 0 || count < 0 || start + count > h->rows) Throw(env, "E_SHAPE", "selectAssign: rows out of range");
  size_t nl = 0, nd = 0, ns = 0, nc = 0;
  int32_t* labels = ArgI32(info, 3, "labels", &nl);
  float* dist = ArgF32(info, 4, "distances", &nd);
  double* sums = ArgTyped<double, napi_float64_array>(info, 5, "sums", &ns);
  double* counts = ArgTyped<double, napi_float64_array>(info, 6, "counts", &nc);
  if (static_cast<int64_t>(nl) < count || static_cast<int64_t>(nd) < count) Throw(env, "E_SHAPE", "selectAssign: labels/distances shorter than count");
  if (nc < 1 || ns < nc * static_cast<size_t>(h->total)) Throw(env, "E_SHAPE", "selectAssign: sums must hold k × Σdim values");
  auto changed = std::make_shared<int64_t>(0);
  return Queue(
      info, h, [=](sel::Engine* e) { *changed = e->assign(start, count, labels, dist, sums, counts); },
      [changed](Napi::Env en) -> Napi::Value { return Napi::Number::New(en, static_cast<double>(*changed)); });
}

Napi::Value GreedyInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Holder* h = ArgHandle(info);
  sel::Metric metric;
  metric.form = static_cast<int>(ArgInt(info, 1, "form"));
  metric.gamma = ArgDouble(info, 2, "gamma");
  CheckForm(env, metric.form);
  const size_t rows = static_cast<size_t>(h->rows);
  const float* base = OptTyped<float, napi_float32_array>(info, 3, "base", rows);
  const double w = ArgDouble(info, 4, "wDiversity");
  const uint8_t* exclude = OptTyped<uint8_t, napi_uint8_array>(info, 5, "exclude", rows);
  const int mode = static_cast<int>(ArgInt(info, 6, "mode"));
  if (!exclude) Throw(env, "E_INTERNAL", "selectGreedyInit: exclude is required");
  return Queue(info, h, [=](sel::Engine* e) { e->greedy_init(metric, base, w, exclude, mode); });
}

Napi::Value GreedyAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Holder* h = ArgHandle(info);
  size_t n = 0;
  const int32_t* idx = ArgI32(info, 1, "indices", &n);
  for (size_t a = 0; a < n; ++a)
    if (idx[a] < 0 || idx[a] >= h->rows) Throw(env, "E_SHAPE", "selectGreedyAdd: row out of range");
  return Queue(info, h, [=](sel::Engine* e) { e->greedy_add(idx, static_cast<int64_t>(n)); });
}

Napi::Value GreedyStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Holder* h = ArgHandle(info);
  const int64_t steps = ArgInt(info, 1, "steps");
  if (steps < 0) Throw(env, "E_OPTION", "selectGreedyStep: steps must be ≥ 0");
  const double* uniforms = OptTyped<double, napi_float64_array>(info, 2, "uniforms", static_cast<size_t>(steps));
  Napi::Int32Array picks = Napi::Int32Array::New(env, static_cast<size_t>(steps));
  Napi::Float32Array div = Napi::Float32Array::New(env, static_cast<size_t>(steps));
  Napi::Float32Array div_max = Napi::Float32Array::New(env, static_cast<size_t>(steps));
  int32_t* p = picks.Data();
  float* d = div.Data();
  float* dm = div_max.Data();
  auto rp = Pin(picks), rd = Pin(div), rdm = Pin(div_max);
  auto made = std::make_shared<int64_t>(0);
  return Queue(
      info, h, [=](sel::Engine* e) { *made = e->greedy_step(steps, uniforms, p, d, dm); },
      [=](Napi::Env en) -> Napi::Value {
        Napi::Object o = Napi::Object::New(en);
        const size_t n = static_cast<size_t>(*made);
        o.Set("picks", Napi::Int32Array::New(en, n, rp->Value().As<Napi::Int32Array>().ArrayBuffer(), 0));
        o.Set("diversity", Napi::Float32Array::New(en, n, rd->Value().As<Napi::Float32Array>().ArrayBuffer(), 0));
        o.Set("diversityMax", Napi::Float32Array::New(en, n, rdm->Value().As<Napi::Float32Array>().ArrayBuffer(), 0));
        return o;
      });
}

template <Target T>
void RegisterOn(Napi::Env env, Napi::Object table) {
  table.Set("selectOpen", Napi::Function::New(env, Open<T>, "selectOpen"));
  table.Set("selectClose", Napi::Function::New(env, Close, "selectClose"));
  table.Set("selectPrepare", Napi::Function::New(env, Prepare, "selectPrepare"));
  table.Set("selectPairReduce", Napi::Function::New(env, PairReduce, "selectPairReduce"));
  table.Set("selectDistancesFrom", Napi::Function::New(env, DistancesFrom, "selectDistancesFrom"));
  table.Set("selectGather", Napi::Function::New(env, Gather, "selectGather"));
  table.Set("selectSetCentroids", Napi::Function::New(env, SetCentroids, "selectSetCentroids"));
  table.Set("selectAssign", Napi::Function::New(env, Assign, "selectAssign"));
  table.Set("selectGreedyInit", Napi::Function::New(env, GreedyInit, "selectGreedyInit"));
  table.Set("selectGreedyAdd", Napi::Function::New(env, GreedyAdd, "selectGreedyAdd"));
  table.Set("selectGreedyStep", Napi::Function::New(env, GreedyStep, "selectGreedyStep"));
}

}  // namespace

void RegisterSelect(Napi::Env env, Napi::Object exports) {
  RegisterOn<Target::kCpu>(env, exports.Get("cpu").As<Napi::Object>());
  RegisterOn<Target::kCuda>(env, exports.Get("cuda").As<Napi::Object>());
}

}  // namespace pp::binding
