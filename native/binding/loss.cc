// The stage-1 ops of one backend table (addon.cpu / addon.cuda), over its LossEngine
// (core/loss.h). Parameter objects are those of src/backend/ops-loss.ts; outputs are allocated
// by the caller (src/backend/native/loss.ts) and filled on a worker thread:
//   infoNCE(za, zb, { rows, dim, temperature }, gradA, gradB)                          → Promise<number> (loss)
//   sinkhorn(scores, { rows, k, epsilon, iterations }, codes)                          → Promise<void>
//   prototypeLoss(z, prototypes, targets, { rows, dim, k, temperature }, gradZ, gradPrototypes)
//                                                                                     → Promise<number> (loss)
//   matmul(a, b, c, { m, n, inner, transA, transB, accumulate })                       → Promise<void>
//   linearForward(x, w, bias, y, { rows, inputs, outputs, relu })                     → Promise<void>
//   linearBackward(x, w, gy, gradW, gradBias, gx | null, { rows, inputs, outputs, reluInput })
//                                                                                     → Promise<void>
//   adamwStep(params, grads, m, v, { decayed, lr, weightDecay, beta1, beta2, eps, step }) → Promise<void>
// `a` of matmul and `x` of the layer ops are a Float32Array or a Uint16Array of fp16 bits;
// everything else is Float32Array.
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>

#include "common.h"
#include "core/loss.h"

namespace pp::binding {
namespace {

int64_t Positive(const Options& o, const char* key) {
  const int64_t v = o.Int(key);
  if (v < 1) Throw(o.Env(), PP_E_SHAPE, std::string(key) + " must be at least 1 (got " + std::to_string(v) + ")");
  return v;
}

double PositiveReal(const Options& o, const char* key) {
  const double v = o.Double(key);
  if (!(v > 0.0) || v == std::numeric_limits<double>::infinity())
    Throw(o.Env(), PP_E_OPTION, std::string(key) + " must be a finite number > 0");
  return v;
}

// Argument i: a Float32Array of exactly rows × cols values.
float* Matrix(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t rows, int64_t cols) {
  size_t length = 0;
  float* data = ArgF32(info, i, name, &length);
  CheckSizeExact(info.Env(), name, length, rows, cols);
  return data;
}

// Runs `loss` on a worker thread and resolves with the value it returns.
Napi::Value ResolveLoss(const Napi::CallbackInfo& info, std::function<double()> loss) {
  auto value = std::make_shared<double>(0.0);
  return RunAsync(
      info, [value, loss] { *value = loss(); },
      [value](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *value); });
}

Napi::Value InfoNCE(const Napi::CallbackInfo& info) {
  const LossEngine& engine = EngineOf<LossEngine>(info);
  const Options o(info, 2, "infoNCE");
  const int64_t rows = Positive(o, "rows"), dim = Positive(o, "dim");
  const InfoNceArgs args{Matrix(info, 0, "za", rows, dim), Matrix(info, 1, "zb", rows, dim), rows, dim,
                         PositiveReal(o, "temperature"), Matrix(info, 3, "gradA", rows, dim),
                         Matrix(info, 4, "gradB", rows, dim)};
  return ResolveLoss(info, [&engine, args] { return engine.infonce(args); });
}

Napi::Value Sinkhorn(const Napi::CallbackInfo& info) {
  const LossEngine& engine = EngineOf<LossEngine>(info);
  const Options o(info, 1, "sinkhorn");
  const int64_t rows = Positive(o, "rows"), k = Positive(o, "k");
  const double epsilon = PositiveReal(o, "epsilon");
  const int64_t iterations = Positive(o, "iterations");
  if (iterations > (1 << 30)) Throw(info.Env(), PP_E_OPTION, "iterations is too large");
  const SinkhornArgs args{Matrix(info, 0, "scores", rows, k), rows, k, epsilon, static_cast<int>(iterations),
                          Matrix(info, 2, "codes", rows, k)};
  return RunAsync(info, [&engine, args] { engine.sinkhorn(args); });
}

Napi::Value PrototypeLoss(const Napi::CallbackInfo& info) {
  const LossEngine& engine = EngineOf<LossEngine>(info);
  const Options o(info, 3, "prototypeLoss");
  const int64_t rows = Positive(o, "rows"), dim = Positive(o, "dim"), k = Positive(o, "k");
  const PrototypeLossArgs args{Matrix(info, 0, "z", rows, dim), Matrix(info, 1, "prototypes", k, dim),
                               Matrix(info, 2, "targets", rows, k), rows, dim, k, PositiveReal(o, "temperature"),
                               Matrix(info, 4, "gradZ", rows, dim), Matrix(info, 5, "gradPrototypes", k, dim)};
  return ResolveLoss(info, [&engine, args] { return engine.prototype_loss(args); });
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const LossEngine& engine = EngineOf<LossEngine>(info);
  const Options o(info, 3, "matmul");
  const int64_t m = Positive(o, "m"), n = Positive(o, "n"), inner = Positive(o, "inner");
  const MatrixArg a = ArgMatrix(info, 0, "a");
  CheckSizeExact(env, "a", a.length, m, inner);
  const MatmulArgs args{a.data, a.half, Matrix(info, 1, "b", inner, n), Matrix(info, 2, "c", m, n), m, n, inner,
                        o.Bool("transA"), o.Bool("transB"), o.Bool("accumulate")};
  return RunAsync(info, [&engine, args] { engine.matmul(args); });
}

Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const LossEngine& engine = EngineOf<LossEngine>(info);
  const Options o(info, 4, "linearForward");
  const int64_t rows = Positive(o, "rows"), inputs = Positive(o, "inputs"), outputs = Positive(o, "outputs");
  const MatrixArg x = ArgMatrix(info, 0, "x");
  CheckSizeExact(env, "x", x.length, rows, inputs);
  const LinearForwardArgs args{x.data, x.half, Matrix(info, 1, "w", inputs, outputs), Matrix(info, 2, "bias", 1, outputs),
                               Matrix(info, 3, "y", rows, outputs), rows, inputs, outputs, o.Bool("relu")};
  return RunAsync(info, [&engine, args] { engine.linear_forward(args); });
}

Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const LossEngine& engine = EngineOf<LossEngine>(info);
  const Options o(info, 6, "linearBackward");
  const int64_t rows = Positive(o, "rows"), inputs = Positive(o, "inputs"), outputs = Positive(o, "outputs");
  const MatrixArg x = ArgMatrix(info, 0, "x");
  CheckSizeExact(env, "x", x.length, rows, inputs);
  const bool relu_input = o.Bool("reluInput");
  float* gx = HasArg(info, 5) ? Matrix(info, 5, "gx", rows, inputs) : nullptr;
  if (gx && relu_input && x.half) Throw(env, PP_E_INTERNAL, "linearBackward: reluInput needs a Float32Array x");
  const LinearBackwardArgs args{x.data, x.half, Matrix(info, 1, "w", inputs, outputs), Matrix(info, 2, "gy", rows, outputs),
                                Matrix(info, 3, "gradW", inputs, outputs), Matrix(info, 4, "gradBias", 1, outputs), gx,
                                rows, inputs, outputs, relu_input};
  return RunAsync(info, [&engine, args] { engine.linear_backward(args); });
}

Napi::Value AdamWStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const LossEngine& engine = EngineOf<LossEngine>(info);
  const Options o(info, 4, "adamwStep");
  size_t n = 0;
  float* params = ArgF32(info, 0, "params", &n);
  const int64_t count = static_cast<int64_t>(n);
  const int64_t decayed = o.Int("decayed"), step = Positive(o, "step");
  if (decayed < 0 || decayed > count) Throw(env, PP_E_SHAPE, "decayed must be in [0, params.length]");
  const AdamWArgs args{params, Matrix(info, 1, "grads", 1, count), Matrix(info, 2, "m", 1, count), Matrix(info, 3, "v", 1, count),
                       count, decayed, o.Double("lr"), o.Double("weightDecay"), o.Double("beta1"), o.Double("beta2"),
                       o.Double("eps"), step};
  return RunAsync(info, [&engine, args] { engine.adamw(args); });
}

}  // namespace

void RegisterLoss(Napi::Env env, Napi::Object table, const LossEngine& engine) {
  SetOps(env, table, engine,
         {{"infoNCE", InfoNCE}, {"sinkhorn", Sinkhorn}, {"prototypeLoss", PrototypeLoss}, {"matmul", Matmul},
          {"linearForward", LinearForward}, {"linearBackward", LinearBackward}, {"adamwStep", AdamWStep}});
}

}  // namespace pp::binding
