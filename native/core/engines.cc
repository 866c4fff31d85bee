#include "core/engines.h"

namespace pp {

const Engines& cpu_engines() {
  static const Engines engines{"cpu", cpu_distance_engine(), cpu_loss_engine(), sel::cpu_select_engine(), cpu_train_engine(), warm::cpu_warm_engine()};
  return engines;
}

}  // namespace pp
