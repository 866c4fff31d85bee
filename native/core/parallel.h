// A process-wide worker pool shared by every CPU kernel. Several Node worker threads may run
// kernels at once; they all feed the same pool, and each caller also works on its own job.
#pragma once
#include <cstdint>
#include <functional>

namespace pp {

// Threads kernels use: PAIRPICK_THREADS when set (≥ 1), else the hardware concurrency.
int worker_threads();

// Calls fn(begin, end) on disjoint ranges covering [0, n), each at most `grain` long, in
// parallel. Blocks until all ranges are done; the first exception thrown is rethrown here.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace pp
