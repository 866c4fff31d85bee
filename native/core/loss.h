// Stage-1 losses on the CPU (spec/methods.md §1.1–1.2), multi-threaded, fp32 with float64 where
// it is cheap (per-row/column log-sum-exp totals, Sinkhorn scalings, the loss itself).
#pragma once
#include <cstdint>

namespace pp {

// Symmetric InfoNCE over b pairs (za, zb: b × d, row-major) at temperature tau. Writes ∂L/∂za and
// ∂L/∂zb (b × d each) and returns L. Works on (block × block) tiles of the logits; memory beyond
// the inputs and outputs is O(b) plus one tile per thread.
double infonce(const float* za, const float* zb, int64_t b, int64_t d, double tau, float* grad_a, float* grad_b);

// Sinkhorn-Knopp codes (b × k) from scores (b × k): exp(P/ε) normalised to sum 1, then
// `iterations` column/row normalisations, times b. Computed in float64 (log domain when the
// logits span too many nats for the multiplicative form).
void sinkhorn(const float* scores, int64_t b, int64_t k, double epsilon, int iterations, float* codes);

// −(1/b) Σ_i Σ_k Q_ik log softmax_k(⟨z_i, c_k⟩/τ) with Q = targets (constants). Writes ∂L/∂z
// (b × d) and ∂L/∂prototypes (k × d) and returns L.
double prototype_loss(const float* z, const float* prototypes, const float* targets, int64_t b, int64_t d, int64_t k,
                      double tau, float* grad_z, float* grad_prototypes);

}  // namespace pp
