// Shared glue for the binding files: argument extraction and a Promise-returning worker.
// Everything here is thin; the work itself lives in native/core (CPU) and cuda/ (GPU).
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace pp::binding {

// Throws a JS Error whose `code` property is a pairpick code; src/backend/native.ts turns it
// into a PairpickError.
[[noreturn]] inline void Throw(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  throw err;
}

// A matrix argument: Float32Array (fp32) or Uint16Array (fp16 bit patterns).
struct MatrixArg {
  const void* data = nullptr;
  size_t length = 0;  // elements
  bool half = false;
};

inline MatrixArg ArgMatrix(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsTypedArray()) Throw(env, "E_INTERNAL", std::string(name) + ": expected a typed array");
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  MatrixArg m;
  if (ta.TypedArrayType() == napi_float32_array) {
    m.half = false;
  } else if (ta.TypedArrayType() == napi_uint16_array) {
    m.half = true;
  } else {
    Throw(env, "E_INTERNAL", std::string(name) + ": expected Float32Array or Uint16Array (fp16)");
  }
  m.length = ta.ElementLength();
  m.data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return m;
}

template <typename T, napi_typedarray_type Kind>
inline T* ArgTyped(const Napi::CallbackInfo& info, size_t i, const char* name, size_t* length = nullptr) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != Kind)
    Throw(env, "E_INTERNAL", std::string(name) + ": wrong typed array type");
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  if (length) *length = ta.ElementLength();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
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
inline bool HasArg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && !info[i].IsUndefined() && !info[i].IsNull();
}
inline int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) Throw(info.Env(), "E_INTERNAL", std::string(name) + ": expected a number");
  return info[i].As<Napi::Number>().Int64Value();
}
inline double ArgDouble(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) Throw(info.Env(), "E_INTERNAL", std::string(name) + ": expected a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

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
      code_ = "E_INTERNAL";
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
    err.Set("code", Napi::String::New(Env(), code_.empty() ? "E_INTERNAL" : code_));
    deferred_.Reject(err);
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  std::string code_;
  std::vector<Napi::ObjectReference> refs_;
};

}  // namespace pp::binding
