// The warm-start ops of one backend table (addon.cpu / addon.cuda), over its WarmEngine
// (core/warm.h). Names and shapes follow src/backend/ops-warm.ts:
//   openGradient({ rows, classes, blocks, blockDim, weight, bias, balance })  → Promise<Gradient>
// and the methods of a Gradient (a wrapped native object):
//   load(start, count, features[])        → Promise<{ pred, norm2, contributions?, scales? }>
//   dots(a, b)                            → Promise<Float64Array>
//   sampleInit(exclude)                   → Promise<void>
//   sampleStep(steps, uniforms)           → Promise<{ picks, distance2 }>
//   close()
// One op at a time (E_STATE otherwise); close() during an op frees the store when that op ends.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "core/warm.h"

namespace pp::binding {
namespace {

struct GradState {
  std::mutex mu;
  std::unique_ptr<warm::Gradient> gradient;
  warm::GradientSpec spec;
  bool busy = false;
  bool closed = false;
};

warm::Gradient* Acquire(Napi::Env env, GradState* s) {
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->closed || !s->gradient) Throw(env, PP_E_STATE, "gradient context used after close()");
  if (s->busy) Throw(env, PP_E_STATE, "gradient context: another op is still running (await each op)");
  s->busy = true;
  return s->gradient.get();
}

void Release(GradState* s) {
  std::lock_guard<std::mutex> lock(s->mu);
  s->busy = false;
  if (s->closed) s->gradient.reset();
}

template <typename A>
std::shared_ptr<Napi::ObjectReference> Pin(const A& array) {
  return std::make_shared<Napi::ObjectReference>(Napi::Persistent(array.template As<Napi::Object>()));
}

class GradientObject : public Napi::ObjectWrap<GradientObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    using G = GradientObject;
    return DefineClass(env, "Gradient",
                       {InstanceAccessor<&G::Rows>("rows"), InstanceMethod<&G::Load>("load"), InstanceMethod<&G::Dots>("dots"),
                        InstanceMethod<&G::SampleInit>("sampleInit"), InstanceMethod<&G::SampleStep>("sampleStep"),
                        InstanceMethod<&G::Close>("close")});
  }

  explicit GradientObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GradientObject>(info) {}

  void Adopt(std::shared_ptr<GradState> state) { state_ = std::move(state); }

 private:
  GradState* Open(Napi::Env env) const {
    if (!state_) Throw(env, PP_E_STATE, "gradient context used after close()");
    return state_.get();
  }

  template <typename Work>
  Napi::Value Queue(const Napi::CallbackInfo& info, Work work, PromiseWorker::Done done = nullptr) {
    std::shared_ptr<GradState> s = state_;
    warm::Gradient* g = Acquire(info.Env(), s.get());
    auto* w = new PromiseWorker(
        info.Env(),
        [s, g, work] {
          try {
            work(g);
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
    return Napi::Number::New(info.Env(), static_cast<double>(Open(info.Env())->spec.rows));
  }

  Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const GradState* s = Open(env);
    const warm::GradientSpec& spec = s->spec;
    const int64_t start = ArgInt(info, 0, "start"), count = ArgInt(info, 1, "count");
    if (start < 0 || count < 0 || start + count > spec.rows) Throw(env, PP_E_SHAPE, "load: rows out of range");
    if (!Arg(info, 2).IsArray()) Throw(env, PP_E_INTERNAL, "load: features must be an array");
    Napi::Array list = info[2].As<Napi::Array>();
    if (static_cast<int64_t>(list.Length()) != spec.blocks)
      Throw(env, PP_E_SHAPE, "load: expected " + std::to_string(spec.blocks) + " feature blocks, got " + std::to_string(list.Length()));
    auto features = std::make_shared<std::vector<const float*>>();
    for (uint32_t k = 0; k < list.Length(); ++k) {
      size_t len = 0;
      const std::string name = "load: features[" + std::to_string(k) + "]";
      features->push_back(ToTyped<float, napi_float32_array>(env, list.Get(k), name, &len));
      CheckSizeAtLeast(env, name.c_str(), len, count, spec.block_dim);
    }
    Napi::Int32Array pred = Napi::Int32Array::New(env, static_cast<size_t>(count));
    Napi::Float64Array norm2 = Napi::Float64Array::New(env, static_cast<size_t>(count));
    const size_t per = spec.balance ? static_cast<size_t>(count * spec.blocks) : 0;
    Napi::Float32Array contributions = Napi::Float32Array::New(env, per);
    Napi::Float32Array scales = Napi::Float32Array::New(env, per);
    int32_t* pp = pred.Data();
    double* pn = norm2.Data();
    float* pc = spec.balance ? contributions.Data() : nullptr;
    float* ps = spec.balance ? scales.Data() : nullptr;
    auto rp = Pin(pred), rn = Pin(norm2), rc = Pin(contributions), rs = Pin(scales);
    const bool balance = spec.balance;
    return Queue(
        info, [=](warm::Gradient* g) { g->load(start, count, features->data(), pp, pn, pc, ps); },
        [=](Napi::Env en) -> Napi::Value {
          Napi::Object o = Napi::Object::New(en);
          o.Set("pred", rp->Value());
          o.Set("norm2", rn->Value());
          if (balance) {
            o.Set("contributions", rc->Value());
            o.Set("scales", rs->Value());
          }
          return o;
        });
  }

  Napi::Value Dots(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const GradState* s = Open(env);
    size_t na = 0, nb = 0;
    const int32_t* a = ArgI32(info, 0, "a", &na);
    const int32_t* b = ArgI32(info, 1, "b", &nb);
    if (na != nb) Throw(env, PP_E_SHAPE, "dots: a and b differ in length");
    for (size_t t = 0; t < na; ++t)
      if (a[t] < 0 || a[t] >= s->spec.rows || b[t] < 0 || b[t] >= s->spec.rows) Throw(env, PP_E_SHAPE, "dots: row out of range");
    Napi::Float64Array out = Napi::Float64Array::New(env, na);
    double* po = out.Data();
    auto ro = Pin(out);
    return Queue(
        info, [=](warm::Gradient* g) { g->dots(a, b, static_cast<int64_t>(na), po); },
        [ro](Napi::Env) -> Napi::Value { return ro->Value(); });
  }

  Napi::Value SampleInit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const GradState* s = Open(env);
    size_t n = 0;
    const uint8_t* exclude = ArgU8(info, 0, "exclude", &n);
    CheckSizeAtLeast(env, "exclude", n, s->spec.rows, 1);
    return Queue(info, [=](warm::Gradient* g) { g->sample_init(exclude); });
  }

  Napi::Value SampleStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Open(env);
    const int64_t steps = ArgInt(info, 0, "steps");
    if (steps < 0) Throw(env, PP_E_OPTION, "sampleStep: steps must be ≥ 0");
    size_t len = 0;
    const double* uniforms = ArgTyped<double, napi_float64_array>(info, 1, "uniforms", &len);
    CheckSizeAtLeast(env, "uniforms", len, steps, 1);
    Napi::Int32Array picks = Napi::Int32Array::New(env, static_cast<size_t>(steps));
    Napi::Float64Array d2 = Napi::Float64Array::New(env, static_cast<size_t>(steps));
    int32_t* pp = picks.Data();
    double* pd = d2.Data();
    auto rp = Pin(picks), rd = Pin(d2);
    auto made = std::make_shared<int64_t>(0);
    return Queue(
        info, [=](warm::Gradient* g) { *made = g->sample_step(steps, uniforms, pp, pd); },
        [=](Napi::Env en) -> Napi::Value {
          Napi::Object o = Napi::Object::New(en);
          const size_t n = static_cast<size_t>(*made);
          o.Set("picks", Napi::Int32Array::New(en, n, rp->Value().As<Napi::Int32Array>().ArrayBuffer(), 0));
          o.Set("distance2", Napi::Float64Array::New(en, n, rd->Value().As<Napi::Float64Array>().ArrayBuffer(), 0));
          return o;
        });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (state_) {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->closed = true;
      if (!state_->busy) state_->gradient.reset();
    }
    return info.Env().Undefined();
  }

  std::shared_ptr<GradState> state_;
};

struct Opener {
  const warm::WarmEngine* engine;
  Napi::FunctionReference ctor;
};

Napi::Value OpenGradient(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Opener* opener = static_cast<Opener*>(info.Data());
  const Options o(info, 0, "openGradient");
  warm::GradientSpec spec;
  spec.rows = o.Int("rows");
  spec.classes = o.Int("classes");
  spec.blocks = o.Int("blocks");
  spec.block_dim = o.Int("blockDim");
  spec.balance = o.Bool("balance");
  if (spec.rows < 1 || spec.classes < 1 || spec.blocks < 1 || spec.block_dim < 1)
    Throw(env, PP_E_SHAPE, "openGradient: rows, classes, blocks and blockDim must be ≥ 1");
  size_t nw = 0, nb = 0;
  spec.weight = o.Typed<float, napi_float32_array>("weight", &nw);
  spec.bias = o.Typed<float, napi_float32_array>("bias", &nb);
  CheckSizeExact(env, "openGradient.weight", nw, spec.classes, spec.blocks * spec.block_dim);
  CheckSizeExact(env, "openGradient.bias", nb, spec.classes, 1);
  auto opened = std::make_shared<std::unique_ptr<warm::Gradient>>();
  const warm::WarmEngine* engine = opener->engine;
  return RunAsync(
      info, [=] { *opened = engine->open(spec); },
      [=](Napi::Env) -> Napi::Value {
        auto state = std::make_shared<GradState>();
        state->gradient = std::move(*opened);
        state->spec = spec;
        state->spec.weight = nullptr;  // copied by the engine; the arrays may go
        state->spec.bias = nullptr;
        Napi::Object object = opener->ctor.New({});
        GradientObject::Unwrap(object)->Adopt(std::move(state));
        return object;
      });
}

}  // namespace

void RegisterWarm(Napi::Env env, Napi::Object table, const warm::WarmEngine& engine) {
  auto* opener = new Opener{&engine, Napi::Persistent(GradientObject::Define(env))};
  env.AddCleanupHook([opener] { delete opener; });
  table.Set("openGradient", Napi::Function::New(env, OpenGradient, "openGradient", opener));
}

}  // namespace pp::binding
