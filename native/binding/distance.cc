// The distance ops of one backend table (addon.cpu / addon.cuda), over its DistanceEngine
// (core/distance.h). Parameter objects are those of src/backend/ops-distance.ts, with `metric` as
// its pp_metric code:
//   distances(a, b, { rowsA, rowsB, dim, metric })                               → Promise<Float32Array>
//   knnMerge(query, ref, { rowsQ, rowsR, dim, k, metric, refOffset, queryOffset, excludeSelf },
//            { indices: Int32Array, distances: Float32Array })                 → Promise<void> (state updated)
//   minUpdate(points, center, minDist, { rows, dim, metric }, exclude | null)   → Promise<{ argmax, max }>
//   coverGains(table, cover, rows: Int32Array, { columns, add })               → Promise<Float64Array>
//   holdRows(data, { rows, dim })                                              → Promise<held rows | data>
//   releaseRows(held)                                                           (frees them once no call uses them)
// Matrices are Float32Array or Uint16Array (fp16 bits), both operands of one call the same type.
// Held rows (kernels.resident; only engines that keep rows, i.e. cuda: the others resolve with
// `data` itself, as they read the caller's array in place) stand in for knnMerge's ref (its rows [refOffset, refOffset + rowsR))
// and minUpdate's points; they are an opaque object whose rows go when released or collected.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "common.h"
#include "core/distance.h"

namespace pp::binding {
namespace {

// What holdRows returns (inside a JS External): the engine's rows and their shape. Calls in flight
// hold their own reference, so releasing during a call frees the rows when the call ends.
struct Held {
  std::shared_ptr<HeldRows> rows;
  const DistanceEngine* engine = nullptr;
  bool half = false;
  int64_t count = 0, dim = 0;
};

// Tags the Externals holdRows makes, so that no other External is read as held rows.
constexpr napi_type_tag kHeldTag = {0x70616972706963ULL, 0x68656c64726f7773ULL};

bool IsHeld(const Napi::Value& v) { return v.IsExternal() && v.As<Napi::External<Held>>().CheckTypeTag(&kHeldTag); }

// The held rows at argument i for `engine`, as a matrix of the call (checked: open, this engine).
std::shared_ptr<HeldRows> ArgHeld(const Napi::CallbackInfo& info, size_t i, const char* name, const DistanceEngine& engine,
                                  MatrixArg* as_matrix, int64_t* rows) {
  Napi::Env env = info.Env();
  const Held* held = Arg(info, i).As<Napi::External<Held>>().Data();
  if (!held->rows) Throw(env, PP_E_STATE, std::string(name) + ": the resident rows were closed");
  if (held->engine != &engine) Throw(env, PP_E_BACKEND, std::string(name) + ": the resident rows belong to another backend");
  as_matrix->data = nullptr;
  as_matrix->half = held->half;
  as_matrix->length = static_cast<size_t>(held->count * held->dim);
  *rows = held->count;
  return held->rows;
}

// The two matrices of a distance op (arguments 0 and 1: one dtype, `dim` columns) and its metric.
struct Operands {
  MatrixArg x, y;
  int64_t rows_x = 0, rows_y = 1, dim = 0;
  int metric = PP_METRIC_SQEUCLIDEAN;
};

// x has o[rows_x] rows, y has o[rows_y] rows (one row when rows_y is null). Either may be held
// rows (`held`, when given): the matrix then has no host data and its length is that of the held rows.
Operands ReadOperands(const Napi::CallbackInfo& info, const Options& o, const char* x, const char* rows_x, const char* y,
                      const char* rows_y, const DistanceEngine* engine = nullptr, std::shared_ptr<HeldRows>* held = nullptr) {
  Napi::Env env = info.Env();
  Operands p;
  int64_t held_rows = 0;
  for (size_t i = 0; i < 2; ++i) {
    MatrixArg& m = i == 0 ? p.x : p.y;
    const char* name = i == 0 ? x : y;
    if (held && IsHeld(Arg(info, i)))
      *held = ArgHeld(info, i, name, *engine, &m, &held_rows);
    else
      m = ArgMatrix(info, i, name);
  }
  p.rows_x = o.Int(rows_x);
  if (rows_y) p.rows_y = o.Int(rows_y);
  p.dim = o.Int("dim");
  p.metric = static_cast<int>(o.Int("metric"));
  if (p.x.half != p.y.half)
    Throw(env, PP_E_SHAPE, std::string(x) + " and " + y + " must have the same dtype (both fp32 or both fp16)");
  CheckCode(env, "metric code", p.metric, PP_METRIC_COUNT);
  if (p.dim < 1) Throw(env, PP_E_SHAPE, "dim must be at least 1");
  CheckSizeAtLeast(env, x, p.x.length, p.rows_x, p.dim);
  CheckSizeAtLeast(env, y, p.y.length, p.rows_y, p.dim);
  return p;
}

Napi::Value Distances(const Napi::CallbackInfo& info) {
  const DistanceEngine& engine = EngineOf<DistanceEngine>(info);
  const Operands p = ReadOperands(info, Options(info, 2, "distances"), "a", "rowsA", "b", "rowsB");
  // The result array is allocated here (JS heap) and filled on the worker thread.
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(p.rows_x * p.rows_y));
  const DistancesArgs args{p.x.data, p.y.data, p.x.half, p.rows_x, p.rows_y, p.dim, p.metric, out.Data()};
  auto out_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(out.As<Napi::Object>()));
  return RunAsync(
      info, [&engine, args] { engine.distances(args); },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
}

Napi::Value KnnMerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DistanceEngine& engine = EngineOf<DistanceEngine>(info);
  const Options o(info, 2, "knnMerge"), state(env, Arg(info, 3), "knnMerge state");
  std::shared_ptr<HeldRows> held;
  const Operands p = ReadOperands(info, o, "query", "rowsQ", "ref", "rowsR", &engine, &held);
  if (held && !p.x.data) Throw(env, PP_E_SHAPE, "knnMerge: the query cannot be resident rows");
  KnnMergeArgs args;
  args.query = p.x.data;
  args.ref = p.y.data;
  args.held_ref = held.get();
  args.half = p.x.half;
  args.rows_q = p.rows_x;
  args.rows_r = p.rows_y;
  args.dim = p.dim;
  args.k = o.Int("k");
  args.metric = p.metric;
  args.ref_offset = o.Int("refOffset");
  args.query_offset = o.Int("queryOffset");
  args.exclude_self = o.Bool("excludeSelf");
  size_t idx_len = 0, dist_len = 0;
  args.idx = state.Typed<int32_t, napi_int32_array>("indices", &idx_len);
  args.dist = state.Typed<float, napi_float32_array>("distances", &dist_len);
  if (args.k < 1) Throw(env, PP_E_OPTION, "k must be at least 1");
  if (args.ref_offset < 0 || args.ref_offset + args.rows_r > INT32_MAX)
    Throw(env, PP_E_SHAPE, "ref indices must fit in int32");
  CheckSizeAtLeast(env, "idx", idx_len, args.rows_q, args.k);
  CheckSizeAtLeast(env, "dist", dist_len, args.rows_q, args.k);
  // Held refs: the call reads their rows [refOffset, refOffset + rowsR) (the engine checks the range).
  return RunAsync(info, [&engine, args, held] { engine.knn_merge(args); });
}

Napi::Value MinUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DistanceEngine& engine = EngineOf<DistanceEngine>(info);
  std::shared_ptr<HeldRows> held;
  const Operands p = ReadOperands(info, Options(info, 3, "minUpdate"), "points", "rows", "center", nullptr, &engine, &held);
  if (held && !p.y.data) Throw(env, PP_E_SHAPE, "minUpdate: the center cannot be resident rows");
  size_t min_len = 0, excl_len = 0;
  float* min_dist = ArgF32(info, 2, "minDist", &min_len);
  const uint8_t* exclude = HasArg(info, 4) ? ArgU8(info, 4, "exclude", &excl_len) : nullptr;
  CheckSizeAtLeast(env, "minDist", min_len, p.rows_x, 1);
  if (exclude) CheckSizeAtLeast(env, "exclude", excl_len, p.rows_x, 1);
  MinUpdateArgs args;
  args.points = p.x.data;
  args.held_points = held.get();
  args.center = p.y.data;
  args.half = p.x.half;
  args.rows = p.rows_x;
  args.dim = p.dim;
  args.metric = p.metric;
  args.min_dist = min_dist;
  args.exclude = exclude;
  auto result = std::make_shared<MinUpdateResult>();
  return RunAsync(
      info, [&engine, args, result, held] { *result = engine.min_update(args); },
      [result](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("argmax", Napi::Number::New(e, static_cast<double>(result->argmax)));
        o.Set("max", Napi::Number::New(e, result->argmax < 0 ? -INFINITY : result->max));
        return o;
      });
}

Napi::Value CoverGains(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DistanceEngine& engine = EngineOf<DistanceEngine>(info);
  const Options o(info, 3, "coverGains");
  size_t table_len = 0, cover_len = 0, rows_len = 0;
  const float* table = ArgF32(info, 0, "table", &table_len);
  float* cover = ArgF32(info, 1, "cover", &cover_len);
  const int32_t* rows = ArgI32(info, 2, "rows", &rows_len);
  CoverGainsArgs args;
  args.columns = o.Int("columns");
  args.add = o.Int("add");
  if (args.columns < 1) Throw(env, PP_E_SHAPE, "coverGains: columns must be at least 1");
  CheckSizeAtLeast(env, "cover", cover_len, args.columns, 1);
  const int64_t table_rows = static_cast<int64_t>(table_len) / args.columns;
  if (args.add < -1 || args.add >= table_rows) Throw(env, PP_E_SHAPE, "coverGains: add is not a row of the table");
  for (size_t t = 0; t < rows_len; ++t)
    if (rows[t] < 0 || rows[t] >= table_rows) Throw(env, PP_E_SHAPE, "coverGains: rows[" + std::to_string(t) + "] is not a row of the table");
  Napi::Float64Array out = Napi::Float64Array::New(env, rows_len);
  args.table = table;
  args.cover = cover;
  args.rows = rows;
  args.count = static_cast<int64_t>(rows_len);
  args.gains = out.Data();
  auto out_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(out.As<Napi::Object>()));
  return RunAsync(
      info, [&engine, args] { engine.cover_gains(args); },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); });
}

Napi::Value HoldRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DistanceEngine& engine = EngineOf<DistanceEngine>(info);
  const Options o(info, 1, "holdRows");
  const MatrixArg data = ArgMatrix(info, 0, "data");
  auto held = std::make_shared<Held>();
  held->engine = &engine;
  held->half = data.half;
  held->count = o.Int("rows");
  held->dim = o.Int("dim");
  if (held->count < 1 || held->dim < 1) Throw(env, PP_E_SHAPE, "holdRows: rows and dim must be at least 1");
  CheckSizeAtLeast(env, "data", data.length, held->count, held->dim);
  auto data_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(Arg(info, 0).As<Napi::Object>()));
  return RunAsync(
      info, [&engine, data, held] { held->rows = engine.hold_rows(data.data, data.half, held->count, held->dim); },
      [held, data_ref](Napi::Env e) -> Napi::Value {
        if (!held->rows) return data_ref->Value();  // the engine reads the array in place
        Napi::External<Held> out = Napi::External<Held>::New(e, new Held(*held), [](Napi::Env, Held* h) { delete h; });
        out.TypeTag(&kHeldTag);
        return out;
      });
}

Napi::Value ReleaseRows(const Napi::CallbackInfo& info) {
  if (!IsHeld(Arg(info, 0))) Throw(info.Env(), PP_E_INTERNAL, "releaseRows: expected held rows");
  Arg(info, 0).As<Napi::External<Held>>().Data()->rows.reset();
  return info.Env().Undefined();
}

}  // namespace

void RegisterDistance(Napi::Env env, Napi::Object table, const DistanceEngine& engine) {
  SetOps(env, table, engine,
         {{"distances", Distances}, {"knnMerge", KnnMerge}, {"minUpdate", MinUpdate}, {"coverGains", CoverGains},
          {"holdRows", HoldRows}, {"releaseRows", ReleaseRows}});
}

}  // namespace pp::binding
