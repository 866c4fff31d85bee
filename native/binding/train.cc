// The downstream-classifier ops of one backend table (addon.cpu / addon.cuda), over its
// TrainEngine (core/train.h). Parameter objects are those of src/backend/ops-train.ts (`mode` as
// its pp_fusion_mode code); outputs are allocated by src/backend/native/train.ts:
//   softmaxCrossEntropy(logits, labels, { rows, classes, scale }, grad, stats)  → Promise<void>
//       (stats: Float64Array [loss, correct])
//   headProjection(P, meanFeature, gradWeight, { hidden, classes, alpha })    → Promise<void> (in place)
//   entropyFusion(logits, present, { rows, classes, modalities, mode }, fused, weights, entropy, probs)
//                                                                            → Promise<void>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "common.h"
#include "core/train.h"

namespace pp::binding {
namespace {

int64_t Positive(const Options& o, const char* key) {
  const int64_t v = o.Int(key);
  if (v < 1) Throw(o.Env(), PP_E_SHAPE, std::string(key) + " must be at least 1 (got " + std::to_string(v) + ")");
  return v;
}

float* Matrix(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t rows, int64_t cols) {
  size_t length = 0;
  float* data = ArgF32(info, i, name, &length);
  CheckSizeExact(info.Env(), name, length, rows, cols);
  return data;
}

Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
  const TrainEngine& engine = EngineOf<TrainEngine>(info);
  const Options o(info, 2, "softmaxCrossEntropy");
  const int64_t rows = Positive(o, "rows"), classes = Positive(o, "classes");
  const double scale = o.Double("scale");
  if (!std::isfinite(scale)) Throw(info.Env(), PP_E_OPTION, "scale must be finite");
  size_t n_labels = 0;
  const int32_t* labels = ArgI32(info, 1, "labels", &n_labels);
  CheckSizeExact(info.Env(), "labels", n_labels, rows, 1);
  for (int64_t i = 0; i < rows; ++i)
    if (labels[i] >= classes) Throw(info.Env(), PP_E_OPTION, "labels[" + std::to_string(i) + "] is out of range");
  size_t n_stats = 0;
  double* stats = ArgTyped<double, napi_float64_array>(info, 4, "stats", &n_stats);
  CheckSizeExact(info.Env(), "stats", n_stats, 2, 1);
  const SoftmaxCrossEntropyArgs args{Matrix(info, 0, "logits", rows, classes), labels, rows, classes, scale,
                                     Matrix(info, 3, "grad", rows, classes)};
  return RunAsync(info, [&engine, args, stats] {
    const SoftmaxCrossEntropyResult r = engine.softmax_cross_entropy(args);
    stats[0] = r.loss;
    stats[1] = static_cast<double>(r.correct);
  });
}

Napi::Value HeadProjection(const Napi::CallbackInfo& info) {
  const TrainEngine& engine = EngineOf<TrainEngine>(info);
  const Options o(info, 3, "headProjection");
  const int64_t hidden = Positive(o, "hidden"), classes = Positive(o, "classes");
  const double alpha = o.Double("alpha");
  if (!(alpha > 0) || !std::isfinite(alpha)) Throw(info.Env(), PP_E_OPTION, "alpha must be a finite number > 0");
  const HeadProjectionArgs args{Matrix(info, 0, "projection", hidden, hidden), Matrix(info, 1, "meanFeature", hidden, 1),
                                Matrix(info, 2, "gradWeight", classes, hidden), hidden, classes, alpha};
  return RunAsync(info, [&engine, args] { engine.head_projection(args); });
}

Napi::Value EntropyFusion(const Napi::CallbackInfo& info) {
  const TrainEngine& engine = EngineOf<TrainEngine>(info);
  const Options o(info, 2, "entropyFusion");
  const int64_t rows = Positive(o, "rows"), classes = Positive(o, "classes"), modalities = Positive(o, "modalities");
  const int mode = static_cast<int>(o.Int("mode"));
  CheckCode(info.Env(), "fusion mode", mode, PP_FUSION_MODE_COUNT);
  size_t n_present = 0;
  const uint8_t* present = ArgU8(info, 1, "present", &n_present);
  CheckSizeExact(info.Env(), "present", n_present, rows, modalities);
  const EntropyFusionArgs args{Matrix(info, 0, "logits", modalities * rows, classes), present, rows, classes, modalities,
                               mode, Matrix(info, 3, "fused", rows, classes), Matrix(info, 4, "weights", rows, modalities),
                               Matrix(info, 5, "entropy", rows, modalities),
                               Matrix(info, 6, "probs", modalities * rows, classes)};
  return RunAsync(info, [&engine, args] { engine.entropy_fusion(args); });
}

}  // namespace

void RegisterTrain(Napi::Env env, Napi::Object table, const TrainEngine& engine) {
  SetOps(env, table, engine,
         {{"softmaxCrossEntropy", SoftmaxCrossEntropy}, {"headProjection", HeadProjection}, {"entropyFusion", EntropyFusion}});
}

}  // namespace pp::binding
