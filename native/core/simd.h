// CPU feature detection, fp16 conversion and the AVX2 helpers shared by the kernels.
#pragma once
#include <cstddef>
#include <cstdint>

// x86-64 with GCC or Clang: the kernels then carry AVX2 (and some AVX-512) variants, compiled
// with PP_AVX2 / PP_AVX512 and called only when cpu_has_avx2() / cpu_has_avx512() say so (the
// rest of the build stays baseline x86-64).
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define PP_SIMD_X86 1
#include <immintrin.h>
#define PP_AVX2 __attribute__((target("avx2,fma,f16c")))
#define PP_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")))
#endif

namespace pp {

// The SIMD level the kernels dispatch to: the best the CPU (and OS) support, or a lower one forced
// with PAIRPICK_SIMD=scalar|avx2|avx512 (a level above what the CPU has is not taken).
enum class SimdLevel : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
SimdLevel simd_level_id();

// AVX2 + FMA + F16C kernels (`PP_AVX2` variants) are in use.
inline bool cpu_has_avx2() { return simd_level_id() >= SimdLevel::kAvx2; }
// AVX-512 F/VL/BW/DQ kernels (`PP_AVX512` variants) are in use.
inline bool cpu_has_avx512() { return simd_level_id() >= SimdLevel::kAvx512; }

// "avx512", "avx2+fma" or "scalar": what the dispatch picked.
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

#ifdef PP_SIMD_X86
// Sum of the 8 lanes.
PP_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 8 values from element `at` of an fp32 (half = false) or fp16 (half = true) array, as fp32.
PP_AVX2 inline __m256 load8(const void* data, bool half, int64_t at) {
  if (half) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(data) + at)));
  return _mm256_loadu_ps(static_cast<const float*>(data) + at);
}
#endif

}  // namespace pp
