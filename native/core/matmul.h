// Single-precision GEMM for the projection heads, the fused losses and facility location's
// similarity table: packed panels, a register-blocked micro-kernel of the dispatched SIMD level
// (AVX-512 12 × 32, AVX2/FMA 6 × 16, scalar fallback), all four transpose combinations, fp16 `a`
// converted while packing, fp32 accumulation.
#pragma once
#include <cstdint>

namespace pp {

// One product C = alpha·op(A)·op(B) (+ C when accumulate), C is m × n with row stride ldc.
// op(A) is m × k: A is stored m × k (row stride lda ≥ k) or, with trans_a, k × m (lda ≥ m);
// A holds fp16 bit patterns when a_half. op(B) is k × n: B stored k × n (ldb ≥ n) or, with
// trans_b, n × k (ldb ≥ k). k = 0 gives C = 0 (or C unchanged when accumulating).
struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  bool a_half = false;
  bool trans_a = false;
  int64_t lda = 0;
  const float* b = nullptr;
  bool trans_b = false;
  int64_t ldb = 0;
  float* c = nullptr;
  int64_t ldc = 0;
  float alpha = 1.0f;
  bool accumulate = false;
  // Epilogue, applied to each C tile while it is still in cache, after its last inner slice:
  // C[i, j] += bias[j] (bias: n values), then max(0, ·) when relu (NaN stays NaN), then C[i, j] = 0
  // where !(mask[i·ldmask + j] > 0) (mask: m × n, e.g. a ReLU's output whose gradient this is).
  const float* bias = nullptr;
  bool relu = false;
  const float* mask = nullptr;
  int64_t ldmask = 0;
};

// Multi-threaded over the shared pool (falls back to one thread for small products).
void gemm(const GemmArgs& g);

// The same product on the calling thread only: for kernels that are already parallel.
void gemm_serial(const GemmArgs& g);

// Convenience for dense row-major operands (lda/ldb/ldc implied by the shapes): the stage-1
// matmul op (MatmulArgs, core/loss.h).
void matmul(const void* a, bool a_half, const float* b, float* c, int64_t m, int64_t n, int64_t inner, bool trans_a,
            bool trans_b, bool accumulate);

}  // namespace pp
