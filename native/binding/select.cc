// The selection ops of one backend table (addon.cpu / addon.cuda), over its SelectEngine
// (core/select.h). Names and shapes follow src/backend/ops-select.ts, with codes (core/codes.h)
// in place of the names of forms, reductions and greedy modes:
//   openSelection({ rows, modalities: [{ data, dim }] })                      → Promise<Selection>
// and the methods of a Selection (a wrapped native object):
//   prepare(start, count, wantAlignment)          → Promise<{ badRows, alignment?, sums }>
//   pairReduce(queries, refs | null, { form, gamma }, { kind, k?, radius?, refMask?, labels?, cover? })
//                                                 → Promise<Float64Array>
//   distancesFrom(row, { form, gamma })           → Promise<Float32Array>
//   gather(indices)                               → Promise<Float32Array>
//   setCentroids(centroids, k)                    → Promise<void>
//   assign(start, count, labels, distances, sums, counts)               → Promise<number>
//   greedyInit({ metric: { form, gamma }, base?, wDiversity, exclude, mode })  → Promise<void>
//   greedyAddCenters(indices)                     → Promise<void>
//   greedyStep(steps, uniforms | null)            → Promise<{ picks, diversity, diversityMax }>
//   close()
// Row sets are an Int32Array of global rows or { start, count }. The object keeps the data
// arrays referenced, so they outlive the engine. One op at a time (E_STATE otherwise); close()
// during an op frees the engine when that op ends.
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "core/select.h"

namespace pp::binding {
namespace {

// The engine and what the argument checks need, shared with the ops in flight.
struct State {
  std::mutex mu;
  std::unique_ptr<sel::Selection> selection;
  int64_t rows = 0;
  int modalities = 0;
  int64_t total = 0;  // Σ dims
  bool busy = false;
  bool closed = false;
};

// Claims the selection for one op (main thread); the op's work must end with Release().
sel::Selection* Acquire(Napi::Env env, State* s) {
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->closed || !s->selection) Throw(env, PP_E_STATE, "selection context used after close()");
  if (s->busy) Throw(env, PP_E_STATE, "selection context: another op is still running (await each op)");
  s->busy = true;
  return s->selection.get();
}

void Release(State* s) {
  std::lock_guard<std::mutex> lock(s->mu);
  s->busy = false;
  if (s->closed) s->selection.reset();
}

sel::Metric ToMetric(Napi::Env env, const Napi::Value& v, const char* where) {
  const Options o(env, v, where);
  sel::Metric metric;
  metric.form = static_cast<int>(o.Int("form"));
  metric.gamma = o.Double("gamma");
  CheckCode(env, "pair form", metric.form, PP_FORM_COUNT);
  return metric;
}

// A row set: an Int32Array of global rows, { start, count }, or (when `all_when_absent`) every row.
sel::RowSet ToRowSet(Napi::Env env, const Napi::Value& v, const char* name, int64_t rows, bool all_when_absent) {
  sel::RowSet set;
  if (all_when_absent && (v.IsUndefined() || v.IsNull())) {
    set.count = rows;
    return set;
  }
  if (v.IsTypedArray()) {
    size_t len = 0;
    set.idx = ToTyped<int32_t, napi_int32_array>(env, v, name, &len);
    set.count = static_cast<int64_t>(len);
    return set;
  }
  const Options o(env, v, name);
  set.start = o.Int("start");
  set.count = o.Int("count");
  if (set.start < 0 || set.count < 0 || set.start + set.count > rows)
    Throw(env, PP_E_SHAPE, std::string(name) + ": rows out of range");
  return set;
}

// Indices of a gather/greedyAddCenters call: every one a row of the pool.
const int32_t* ArgRows(const Napi::CallbackInfo& info, size_t i, int64_t rows, const char* op, size_t* n) {
  const int32_t* idx = ArgI32(info, i, "indices", n);
  for (size_t a = 0; a < *n; ++a)
    if (idx[a] < 0 || idx[a] >= rows) Throw(info.Env(), PP_E_SHAPE, std::string(op) + ": row out of range");
  return idx;
}

template <typename A>
std::shared_ptr<Napi::ObjectReference> Pin(const A& array) {
  return std::make_shared<Napi::ObjectReference>(Napi::Persistent(array.template As<Napi::Object>()));
}

class SelectionObject : public Napi::ObjectWrap<SelectionObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    using S = SelectionObject;
    // Grouped as in SelectionContext: preparation, pair passes, k-means, greedy.
    return DefineClass(env, "Selection",
                       {InstanceAccessor<&S::Rows>("rows"), InstanceMethod<&S::Prepare>("prepare"),
                        InstanceMethod<&S::PairReduce>("pairReduce"), InstanceMethod<&S::DistancesFrom>("distancesFrom"),
                        InstanceMethod<&S::Gather>("gather"),
                        InstanceMethod<&S::SetCentroids>("setCentroids"), InstanceMethod<&S::Assign>("assign"),
                        InstanceMethod<&S::GreedyInit>("greedyInit"), InstanceMethod<&S::GreedyAddCenters>("greedyAddCenters"),
                        InstanceMethod<&S::GreedyStep>("greedyStep"), InstanceMethod<&S::Close>("close")});
  }

  // Made empty (as if closed) by openSelection, which then hands it the opened state.
  explicit SelectionObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SelectionObject>(info) {}

  void Adopt(std::shared_ptr<State> state, const Napi::Object& data) {
    state_ = std::move(state);
    data_ = Napi::Persistent(data);
  }

 private:
  State* Open(Napi::Env env) const {
    if (!state_) Throw(env, PP_E_STATE, "selection context used after close()");
    return state_.get();
  }

  // Queues `work(selection)` on a worker thread with the selection claimed; `done` builds the result.
  template <typename Work>
  Napi::Value Queue(const Napi::CallbackInfo& info, Work work, PromiseWorker::Done done = nullptr) {
    std::shared_ptr<State> s = state_;
    sel::Selection* selection = Acquire(info.Env(), s.get());
    auto* w = new PromiseWorker(
        info.Env(),
        [s, selection, work] {
          try {
            work(selection);
          } catch (...) {
            Release(s.get());
            throw;
          }
          Release(s.get());
        },
        std::move(done));
    w->KeepArgs(info);
    w->Keep(info.This());
    return w->Start();
  }

  Napi::Value Rows(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(Open(info.Env())->rows));
  }

  Napi::Value Prepare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const State* s = Open(env);
    const int64_t start = ArgInt(info, 0, "start"), count = ArgInt(info, 1, "count");
    const bool want_alignment = Arg(info, 2).ToBoolean().Value();
    if (start < 0 || count < 0 || start + count > s->rows) Throw(env, PP_E_SHAPE, "prepare: rows out of range");
    auto bad = std::make_shared<std::vector<int64_t>>(s->modalities, -1);
    Napi::Float64Array sums = Napi::Float64Array::New(env, static_cast<size_t>(s->total));
    Napi::Float32Array alignment = Napi::Float32Array::New(env, want_alignment ? static_cast<size_t>(count) : 0);
    double* sums_ptr = sums.Data();
    float* align_ptr = want_alignment ? alignment.Data() : nullptr;
    auto sums_ref = Pin(sums), align_ref = Pin(alignment);
    const int modalities = s->modalities;
    return Queue(
        info, [=](sel::Selection* e) { e->prepare(start, count, bad->data(), align_ptr, sums_ptr); },
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

  Napi::Value PairReduce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const State* s = Open(env);
    const sel::RowSet q = ToRowSet(env, Arg(info, 0), "queries", s->rows, false);
    const sel::RowSet r = ToRowSet(env, Arg(info, 1), "refs", s->rows, true);
    const sel::Metric metric = ToMetric(env, Arg(info, 2), "pairReduce metric");
    const Options o(env, Arg(info, 3), "pairReduce reduction");
    sel::Reduction red;
    red.kind = static_cast<int>(o.Int("kind"));
    CheckCode(env, "reduction", red.kind, PP_REDUCTION_COUNT);
    size_t len = 0;
    switch (red.kind) {
      case PP_REDUCE_KNN_MEAN:
        red.k = o.Int("k");
        if (red.k < 1) Throw(env, PP_E_OPTION, "knnMean: k must be ≥ 1");
        break;
      case PP_REDUCE_COUNT_WITHIN:
        red.radius = o.Double("radius");
        red.ref_mask = o.Typed<uint8_t, napi_uint8_array>("refMask", &len, true);
        if (red.ref_mask) CheckSizeAtLeast(env, "refMask", len, s->rows, 1);
        break;
      case PP_REDUCE_MIN_OTHER_LABEL:
        red.labels = o.Typed<int32_t, napi_int32_array>("labels", &len);
        CheckSizeAtLeast(env, "labels", len, s->rows, 1);
        break;
      case PP_REDUCE_GAIN:
        red.cover = o.Typed<float, napi_float32_array>("cover", &len);
        CheckSizeAtLeast(env, "cover", len, s->rows, 1);
        break;
      default:
        break;
    }
    Napi::Float64Array out = Napi::Float64Array::New(env, static_cast<size_t>(q.count));
    double* out_ptr = out.Data();
    auto out_ref = Pin(out);
    return Queue(
        info, [=](sel::Selection* e) { e->pair_reduce(q, r, metric, red, out_ptr); },
        [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
  }

  Napi::Value DistancesFrom(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const State* s = Open(env);
    const int64_t row = ArgInt(info, 0, "row");
    const sel::Metric metric = ToMetric(env, Arg(info, 1), "distancesFrom metric");
    if (row < 0 || row >= s->rows) Throw(env, PP_E_SHAPE, "distancesFrom: row out of range");
    Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(s->rows));
    float* out_ptr = out.Data();
    auto out_ref = Pin(out);
    return Queue(
        info, [=](sel::Selection* e) { e->distances_from(row, metric, out_ptr); },
        [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
  }

  Napi::Value Gather(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const State* s = Open(env);
    size_t n = 0;
    const int32_t* idx = ArgRows(info, 0, s->rows, "gather", &n);
    Napi::Float32Array out = Napi::Float32Array::New(env, n * static_cast<size_t>(s->total));
    float* out_ptr = out.Data();
    auto out_ref = Pin(out);
    return Queue(
        info, [=](sel::Selection* e) { e->gather(idx, static_cast<int64_t>(n), out_ptr); },
        [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
  }

  Napi::Value SetCentroids(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const State* s = Open(env);
    size_t len = 0;
    const float* c = ArgF32(info, 0, "centroids", &len);
    const int64_t k = ArgInt(info, 1, "k");
    if (k < 1) Throw(env, PP_E_SHAPE, "setCentroids: k must be ≥ 1");
    CheckSizeAtLeast(env, "centroids", len, k, s->total);
    return Queue(info, [=](sel::Selection* e) { e->set_centroids(c, k); });
  }

  Napi::Value Assign(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const State* s = Open(env);
    const int64_t start = ArgInt(info, 0, "start"), count = ArgInt(info, 1, "count");
    if (start < 0 || count < 0 || start + count > s->rows) Throw(env, PP_E_SHAPE, "assign: rows out of range");
    size_t nl = 0, nd = 0, ns = 0, nc = 0;
    int32_t* labels = ArgI32(info, 2, "labels", &nl);
    float* dist = ArgF32(info, 3, "distances", &nd);
    double* sums = ArgTyped<double, napi_float64_array>(info, 4, "sums", &ns);
    double* counts = ArgTyped<double, napi_float64_array>(info, 5, "counts", &nc);
    CheckSizeAtLeast(env, "labels", nl, count, 1);
    CheckSizeAtLeast(env, "distances", nd, count, 1);
    if (nc < 1) Throw(env, PP_E_SHAPE, "assign: counts must hold k ≥ 1 values");
    CheckSizeAtLeast(env, "sums", ns, static_cast<int64_t>(nc), s->total);
    auto changed = std::make_shared<int64_t>(0);
    return Queue(
        info, [=](sel::Selection* e) { *changed = e->assign(start, count, labels, dist, sums, counts); },
        [changed](Napi::Env en) -> Napi::Value { return Napi::Number::New(en, static_cast<double>(*changed)); });
  }

  Napi::Value GreedyInit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const State* s = Open(env);
    const Options o(info, 0, "greedyInit");
    const sel::Metric metric = ToMetric(env, o.Get("metric"), "greedyInit.metric");
    size_t n_base = 0, n_exclude = 0;
    const float* base = o.Typed<float, napi_float32_array>("base", &n_base, true);
    const double w = o.Double("wDiversity");
    const uint8_t* exclude = o.Typed<uint8_t, napi_uint8_array>("exclude", &n_exclude);
    const int mode = static_cast<int>(o.Int("mode"));
    CheckCode(env, "greedy mode", mode, PP_GREEDY_MODE_COUNT);
    if (base) CheckSizeAtLeast(env, "base", n_base, s->rows, 1);
    CheckSizeAtLeast(env, "exclude", n_exclude, s->rows, 1);
    return Queue(info, [=](sel::Selection* e) { e->greedy_init(metric, base, w, exclude, mode); });
  }

  Napi::Value GreedyAddCenters(const Napi::CallbackInfo& info) {
    const State* s = Open(info.Env());
    size_t n = 0;
    const int32_t* idx = ArgRows(info, 0, s->rows, "greedyAddCenters", &n);
    return Queue(info, [=](sel::Selection* e) { e->greedy_add(idx, static_cast<int64_t>(n)); });
  }

  Napi::Value GreedyStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Open(env);
    const int64_t steps = ArgInt(info, 0, "steps");
    if (steps < 0) Throw(env, PP_E_OPTION, "greedyStep: steps must be ≥ 0");
    const double* uniforms = nullptr;
    if (HasArg(info, 1)) {
      size_t len = 0;
      uniforms = ArgTyped<double, napi_float64_array>(info, 1, "uniforms", &len);
      CheckSizeAtLeast(env, "uniforms", len, steps, 1);
    }
    Napi::Int32Array picks = Napi::Int32Array::New(env, static_cast<size_t>(steps));
    Napi::Float32Array div = Napi::Float32Array::New(env, static_cast<size_t>(steps));
    Napi::Float32Array div_max = Napi::Float32Array::New(env, static_cast<size_t>(steps));
    int32_t* p = picks.Data();
    float* d = div.Data();
    float* dm = div_max.Data();
    auto rp = Pin(picks), rd = Pin(div), rdm = Pin(div_max);
    auto made = std::make_shared<int64_t>(0);
    return Queue(
        info, [=](sel::Selection* e) { *made = e->greedy_step(steps, uniforms, p, d, dm); },
        [=](Napi::Env en) -> Napi::Value {
          Napi::Object o = Napi::Object::New(en);
          const size_t n = static_cast<size_t>(*made);
          o.Set("picks", Napi::Int32Array::New(en, n, rp->Value().As<Napi::Int32Array>().ArrayBuffer(), 0));
          o.Set("diversity", Napi::Float32Array::New(en, n, rd->Value().As<Napi::Float32Array>().ArrayBuffer(), 0));
          o.Set("diversityMax", Napi::Float32Array::New(en, n, rdm->Value().As<Napi::Float32Array>().ArrayBuffer(), 0));
          return o;
        });
  }

  // Idempotent. The data arrays are released with the object.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (state_) {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->closed = true;
      if (!state_->busy) state_->selection.reset();
    }
    return info.Env().Undefined();
  }

  std::shared_ptr<State> state_;
  Napi::ObjectReference data_;  // the modality arrays
};

// What openSelection of one table needs: the engine and the Selection class.
struct Opener {
  const sel::SelectEngine* engine;
  Napi::FunctionReference ctor;
};

Napi::Value OpenSelection(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Opener* opener = static_cast<Opener*>(info.Data());
  const Options spec(info, 0, "openSelection");
  const int64_t rows = spec.Int("rows");
  if (!spec.Get("modalities").IsArray()) Throw(env, PP_E_INTERNAL, "openSelection.modalities: expected an array");
  Napi::Array list = spec.Get("modalities").As<Napi::Array>();
  if (list.Length() == 0) Throw(env, PP_E_SHAPE, "openSelection: no modality");
  if (rows < 1) Throw(env, PP_E_SHAPE, "openSelection: the pool has no rows");
  std::vector<sel::Modality> mods;
  Napi::Array datas = Napi::Array::New(env, list.Length());
  for (uint32_t m = 0; m < list.Length(); ++m) {
    const std::string name = "openSelection.modalities[" + std::to_string(m) + "]";
    const Options mo(env, list.Get(m), name);
    const MatrixArg data = ToMatrix(env, mo.Get("data"), name + ".data");
    sel::Modality md;
    md.data = data.data;
    md.half = data.half;
    md.dim = mo.Int("dim");
    if (md.dim < 1) Throw(env, PP_E_SHAPE, name + ": dimension must be ≥ 1");
    CheckSizeAtLeast(env, (name + ".data").c_str(), data.length, rows, md.dim);
    mods.push_back(md);
    datas.Set(m, mo.Get("data"));
  }
  auto opened = std::make_shared<std::unique_ptr<sel::Selection>>();
  auto datas_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(datas.As<Napi::Object>()));
  const sel::SelectEngine* engine = opener->engine;
  return RunAsync(
      info, [=] { *opened = engine->open(rows, mods); },
      [=](Napi::Env) -> Napi::Value {
        auto state = std::make_shared<State>();
        state->selection = std::move(*opened);
        state->rows = rows;
        state->modalities = static_cast<int>(mods.size());
        for (const auto& md : mods) state->total += md.dim;
        Napi::Object object = opener->ctor.New({});
        SelectionObject::Unwrap(object)->Adopt(std::move(state), datas_ref->Value());
        return object;
      });
}

}  // namespace

void RegisterSelect(Napi::Env env, Napi::Object table, const sel::SelectEngine& engine) {
  auto* opener = new Opener{&engine, Napi::Persistent(SelectionObject::Define(env))};
  env.AddCleanupHook([opener] { delete opener; });
  table.Set("openSelection", Napi::Function::New(env, OpenSelection, "openSelection", opener));
}

}  // namespace pp::binding
