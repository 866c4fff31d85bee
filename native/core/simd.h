// CPU feature detection and fp16 conversion shared by the kernels.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pp {

// True when the CPU (and OS) support AVX2 + FMA + F16C; kernels then dispatch to their
// `__attribute__((target("avx2,fma,f16c")))` variants. PAIRPICK_SIMD=scalar forces the fallback.
bool cpu_has_avx2();

// "avx2+fma" or "scalar": what the dispatch picked.
const char* simd_level();

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);  // round to nearest even

// dst[i] = half_to_float(src[i]) for n values (vectorised with F16C when available).
void half_to_float_n(const uint16_t* src, float* dst, size_t n);

// Copies n values of a row that is fp32 (half = false) or fp16 (half = true) into fp32.
inline void load_row(const void* src, bool half, size_t offset, float* dst, size_t n) {
  if (half) {
    half_to_float_n(static_cast<const uint16_t*>(src) + offset, dst, n);
  } else {
    const float* s = static_cast<const float*>(src) + offset;
    for (size_t i = 0; i < n; ++i) dst[i] = s[i];
  }
}

}  // namespace pp
