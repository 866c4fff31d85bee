/* The codes that cross a language boundary, defined once: the CPU kernels, the CUDA kernels and
 * their C ABI (cuda/api.h) use these enums; the addon exports every table as `addon.codes`
 * (native/binding/info.cc); src/backend/native/codes.ts holds the TypeScript copy and checks it
 * against `addon.codes` when the addon loads. Each list pairs an enumerator with the name the
 * TypeScript side uses; values are the positions in the list. Plain C, so nvcc and C callers
 * can include it. */
#ifndef PAIRPICK_CODES_H
#define PAIRPICK_CODES_H

/* Distance metrics of the distance ops (src/backend/ops-distance.ts `Metric`). */
#define PP_METRICS(X)                     \
  X(PP_METRIC_SQEUCLIDEAN, "sqeuclidean") \
  X(PP_METRIC_EUCLIDEAN, "euclidean")     \
  X(PP_METRIC_COSINE, "cosine")

/* How the selection ops compare two pool rows (src/backend/ops-select.ts `PairForm`). */
#define PP_PAIR_FORMS(X)                \
  X(PP_FORM_MULTIMODAL, "multimodal") \
  X(PP_FORM_EUCLIDEAN, "euclidean")   \
  X(PP_FORM_SIMILARITY, "similarity")

/* What a pairwise reduction computes per query row (ops-select.ts `PairReduction['kind']`). */
#define PP_REDUCTIONS(X)                         \
  X(PP_REDUCE_KNN_MEAN, "knnMean")               \
  X(PP_REDUCE_COUNT_WITHIN, "countWithin")       \
  X(PP_REDUCE_MIN_OTHER_LABEL, "minOtherLabel") \
  X(PP_REDUCE_MAX, "max")                        \
  X(PP_REDUCE_GAIN, "gain")

/* How a greedy step chooses its pick (ops-select.ts `GreedyConfig['mode']`). */
#define PP_GREEDY_MODES(X)           \
  X(PP_GREEDY_ARGMAX, "argmax") \
  X(PP_GREEDY_SAMPLE_SQUARED, "sampleSquared")

/* How per-modality logits are fused (src/backend/ops-train.ts `FusionMode`). */
#define PP_FUSION_MODES(X)           \
  X(PP_FUSION_DYNAMIC, "dynamic") \
  X(PP_FUSION_MEAN, "mean")

/* Error codes (src/errors.ts `ErrorCode`), after PP_OK = 0: what a failing C ABI call returns,
 * what a pp::Error carries, and the `code` of the JS error the binding throws. */
#define PP_ERRORS(X)                 \
  X(PP_E_FORMAT, "E_FORMAT")       \
  X(PP_E_IO, "E_IO")               \
  X(PP_E_SHAPE, "E_SHAPE")         \
  X(PP_E_NAN, "E_NAN")             \
  X(PP_E_BUDGET, "E_BUDGET")       \
  X(PP_E_OPTION, "E_OPTION")       \
  X(PP_E_BACKEND, "E_BACKEND")     \
  X(PP_E_ABORTED, "E_ABORTED")     \
  X(PP_E_STATE, "E_STATE")         \
  X(PP_E_INTERNAL, "E_INTERNAL")

#define PP_ENUMERATOR(id, name) id,
typedef enum pp_metric { PP_METRICS(PP_ENUMERATOR) PP_METRIC_COUNT } pp_metric;
typedef enum pp_pair_form { PP_PAIR_FORMS(PP_ENUMERATOR) PP_FORM_COUNT } pp_pair_form;
typedef enum pp_reduction { PP_REDUCTIONS(PP_ENUMERATOR) PP_REDUCTION_COUNT } pp_reduction;
typedef enum pp_greedy_mode { PP_GREEDY_MODES(PP_ENUMERATOR) PP_GREEDY_MODE_COUNT } pp_greedy_mode;
typedef enum pp_fusion_mode { PP_FUSION_MODES(PP_ENUMERATOR) PP_FUSION_MODE_COUNT } pp_fusion_mode;
typedef enum pp_status { PP_OK = 0, PP_ERRORS(PP_ENUMERATOR) PP_STATUS_COUNT } pp_status;
#undef PP_ENUMERATOR

/* The JS name of an error code ("E_SHAPE"); E_INTERNAL for anything that is not one. */
static inline const char* pp_status_name(int status) {
#define PP_NAME_CASE(id, name) \
  case id:                     \
    return name;
  switch (status) {
    PP_ERRORS(PP_NAME_CASE)
    default:
      return "E_INTERNAL";
  }
#undef PP_NAME_CASE
}

#endif /* PAIRPICK_CODES_H */
