// Shared glue for the binding files: argument extraction and checks, and a Promise-returning
// worker. Everything here is thin; the work itself lives in the engines (core/engines.h).
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/codes.h"
#include "core/error.h"

namespace pp::binding {

// Throws a JS Error whose `code` property is a pairpick code (core/codes.h); src/backend/native
// turns it into a PairpickError.
[[noreturn]] inline void Throw(Napi::Env env, pp_status code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, pp_status_name(code)));
  throw err;
}
// The same with the code given by its JS name ("E_IO").
[[noreturn]] inline void Throw(Napi::Env env, const char* code_name, const std::string& message) {
  Throw(env, status_named(code_name), message);
}

// ---- argument checks ----

// The kernels trust these sizes. Inputs may be views into larger buffers: at least rows × cols.
inline void CheckSizeAtLeast(Napi::Env env, const char* name, size_t have, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) Throw(env, PP_E_SHAPE, std::string(name) + ": negative size");
  if (static_cast<double>(have) < static_cast<double>(rows) * static_cast<double>(cols))
    Throw(env, PP_E_SHAPE,
          std::string(name) + ": has " + std::to_string(have) + " values, needs " + std::to_string(rows) + " × " +
              std::to_string(cols));
}
// Exactly rows × cols values (the stage-1 ops, whose arrays are whole matrices).
inline void CheckSizeExact(Napi::Env env, const char* name, size_t have, int64_t rows, int64_t cols) {
  if (static_cast<double>(have) != static_cast<double>(rows) * static_cast<double>(cols))
    Throw(env, PP_E_SHAPE,
          std::string(name) + " has " + std::to_string(have) + " values, expected " + std::to_string(rows) + " × " +
              std::to_string(cols));
}

// `code` is one of the `count` values of a code table (core/codes.h).
inline void CheckCode(Napi::Env env, const char* what, int code, int count) {
  if (code < 0 || code >= count) Throw(env, PP_E_OPTION, std::string("unknown ") + what + " " + std::to_string(code));
}

// ---- typed arrays ----

// A matrix argument: Float32Array (fp32) or Uint16Array (fp16 bit patterns).
struct MatrixArg {
  const void* data = nullptr;
  size_t length = 0;  // elements
  bool half = false;
};

inline MatrixArg ToMatrix(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsTypedArray()) Throw(env, PP_E_INTERNAL, name + ": expected a typed array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  MatrixArg m;
  if (ta.TypedArrayType() == napi_float32_array) {
    m.half = false;
  } else if (ta.TypedArrayType() == napi_uint16_array) {
    m.half = true;
  } else {
    Throw(env, PP_E_INTERNAL, name + ": expected Float32Array or Uint16Array (fp16)");
  }
  m.length = ta.ElementLength();
  m.data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return m;
}

template <typename T, napi_typedarray_type Kind>
inline T* ToTyped(Napi::Env env, const Napi::Value& v, const std::string& name, size_t* length = nullptr) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != Kind)
    Throw(env, PP_E_INTERNAL, name + ": wrong typed array type");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (length) *length = ta.ElementLength();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

inline Napi::Value Arg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() ? info[i] : info.Env().Undefined();
}
inline bool HasArg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && !info[i].IsUndefined() && !info[i].IsNull();
}
inline MatrixArg ArgMatrix(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return ToMatrix(info.Env(), Arg(info, i), name);
}
template <typename T, napi_typedarray_type Kind>
inline T* ArgTyped(const Napi::CallbackInfo& info, size_t i, const char* name, size_t* length = nullptr) {
  return ToTyped<T, Kind>(info.Env(), Arg(info, i), name, length);
}
inline float* ArgF32(const Napi::CallbackInfo& info, size_t i, const char* name, size_t* n = nullptr) {
  return ArgTyped<float, napi_float32_array>(info, i, name, n);
}
inline int32_t* ArgI32(const Napi::CallbackInfo& info, size_t i, const char* name, size_t* n = nullptr) {
  return ArgTyped<int32_t, napi_int32_array>(info, i, name, n);
}
inline uint8_t* ArgU8(const Napi::CallbackInfo& info, size_t i, const char* name, size_t* n = nullptr) {
  return ArgTyped<uint8_t, napi_uint8_array>(info, i, name, n);
}
inline int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) Throw(info.Env(), PP_E_INTERNAL, std::string(name) + ": expected a number");
  return info[i].As<Napi::Number>().Int64Value();
}
inline double ArgDouble(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) Throw(info.Env(), PP_E_INTERNAL, std::string(name) + ": expected a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

// ---- options objects ----

// The parameters object of an op ({ rows, dim, metric, … }, named as in src/backend/ops-*.ts).
// A missing or mistyped member is a bug in the caller: E_INTERNAL naming it.
class Options {
 public:
  Options(const Napi::CallbackInfo& info, size_t i, const char* name) : env_(info.Env()), name_(name) {
    if (!Arg(info, i).IsObject()) Throw(env_, PP_E_INTERNAL, name_ + ": expected an options object");
    obj_ = info[i].As<Napi::Object>();
  }
  Options(Napi::Env env, const Napi::Value& v, const std::string& name) : env_(env), name_(name) {
    if (!v.IsObject()) Throw(env_, PP_E_INTERNAL, name_ + ": expected an options object");
    obj_ = v.As<Napi::Object>();
  }

  Napi::Env Env() const { return env_; }
  Napi::Value Get(const char* key) const { return obj_.Get(key); }
  bool Has(const char* key) const {
    const Napi::Value v = obj_.Get(key);
    return !v.IsUndefined() && !v.IsNull();
  }
  std::string Where(const char* key) const { return name_ + "." + key; }

  int64_t Int(const char* key) const { return Number(key, "an integer").Int64Value(); }
  double Double(const char* key) const { return Number(key, "a number").DoubleValue(); }
  bool Bool(const char* key) const {
    const Napi::Value v = obj_.Get(key);
    if (!v.IsBoolean()) Throw(env_, PP_E_INTERNAL, Where(key) + ": expected a boolean");
    return v.As<Napi::Boolean>().Value();
  }
  // A typed array member (length in *length), or null when it is absent/null and optional.
  template <typename T, napi_typedarray_type Kind>
  T* Typed(const char* key, size_t* length = nullptr, bool optional = false) const {
    if (optional && !Has(key)) return nullptr;
    return ToTyped<T, Kind>(env_, obj_.Get(key), Where(key), length);
  }

 private:
  Napi::Number Number(const char* key, const char* what) const {
    const Napi::Value v = obj_.Get(key);
    if (!v.IsNumber()) Throw(env_, PP_E_INTERNAL, Where(key) + ": expected " + what);
    return v.As<Napi::Number>();
  }

  Napi::Env env_;
  std::string name_;
  Napi::Object obj_;
};

// ---- registration ----

struct Op {
  const char* name;
  Napi::Function::Callback fn;
};

// Sets table[name] for every op, each function carrying `engine` (read back with EngineOf).
template <typename Engine>
void SetOps(Napi::Env env, Napi::Object table, const Engine& engine, std::initializer_list<Op> ops) {
  for (const Op& op : ops) table.Set(op.name, Napi::Function::New(env, op.fn, op.name, const_cast<Engine*>(&engine)));
}

template <typename Engine>
const Engine& EngineOf(const Napi::CallbackInfo& info) {
  return *static_cast<const Engine*>(info.Data());
}

// ---- workers ----

// Runs `work` on a libuv worker thread and settles a Promise with `done(env)`. Every JS value
// passed to Keep() stays referenced (so its memory cannot be collected) until the work ends.
// A pp::Error thrown by `work` rejects with its code; any other exception with E_INTERNAL.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  PromiseWorker(Napi::Env env, Work work, Done done = nullptr)
      : Napi::AsyncWorker(env, "pairpick"), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), done_(std::move(done)) {}

  void Keep(const Napi::Value& v) {
    if (v.IsObject()) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  // Keeps every object argument of the call alive.
  void KeepArgs(const Napi::CallbackInfo& info) {
    for (size_t i = 0; i < info.Length(); ++i) Keep(info[i]);
  }
  // Queues the worker and returns its Promise (the worker deletes itself when done).
  Napi::Promise Start() {
    Napi::Promise p = deferred_.Promise();
    Queue();
    return p;
  }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const pp::Error& e) {
      code_ = e.code();
      SetError(e.what());
    } catch (const std::exception& e) {
      code_ = PP_E_INTERNAL;
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::Object err = e.Value();
    err.Set("code", Napi::String::New(Env(), pp_status_name(code_)));
    deferred_.Reject(err);
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  pp_status code_ = PP_E_INTERNAL;
  std::vector<Napi::ObjectReference> refs_;
};

// Runs `work` on a worker thread (the arguments kept alive) and resolves with `done(env)`, or
// with undefined when there is no `done`.
inline Napi::Value RunAsync(const Napi::CallbackInfo& info, PromiseWorker::Work work,
                            PromiseWorker::Done done = nullptr) {
  auto* w = new PromiseWorker(info.Env(), std::move(work), std::move(done));
  w->KeepArgs(info);
  return w->Start();
}

}  // namespace pp::binding
