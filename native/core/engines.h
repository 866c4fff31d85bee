// A native backend is one engine per area. The binding registers the ops of each backend
// (addon.cpu.*, addon.cuda.*) over these, so an op is dispatched one way whatever runs it.
// An area is declared in its own header (core/distance.h, core/loss.h, core/select.h: argument
// structs and an abstract engine); the CPU engine is implemented beside the CPU kernels, the
// CUDA engine in cuda/engines.cc over the C ABI of cuda/api.h.
#pragma once
#include "core/distance.h"
#include "core/loss.h"
#include "core/select.h"
#include "core/train.h"
#include "core/warm.h"

namespace pp {

struct Engines {
  const char* name;  // "cpu" | "cuda": the addon table the ops are registered on
  const DistanceEngine& distance;
  const LossEngine& loss;
  const sel::SelectEngine& select;
  const TrainEngine& train;
  const warm::WarmEngine& warm;
};

// native/core/engines.cc
const Engines& cpu_engines();
// cuda/engines.cc; when pairpick is built without CUDA every op fails with E_BACKEND saying so.
const Engines& cuda_engines();

}  // namespace pp
