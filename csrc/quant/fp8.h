// fp8 e4m3 (OCP "e4m3fn": bias 7, no infinities, 0x7f/0xff NaN, largest finite 448), scalar.
// The SIMD kernels decode through fp16 instead: e4m3 bits b map to the fp16 bits
// (b & 0x80) << 8 | (b & 0x7f) << 7, which is the value times 2^-8 (normals and subnormals alike).
#pragma once

#include <cmath>
#include <cstdint>

#include "common/dtype.h"

namespace pagedkv {

constexpr float kE4m3Max = 448.0f;
// e4m3 value = fp16-decoded value * kE4m3FromF16 (see above).
constexpr float kE4m3FromF16 = 256.0f;

inline float e4m3_to_float(uint8_t code) {
    return f16_to_float(uint16_t(((code & 0x80u) << 8) | ((code & 0x7fu) << 7))) * kE4m3FromF16;
}

// Round to nearest even; values beyond 448 saturate to +-448; NaN stays NaN (0x7f | sign).
inline uint8_t float_to_e4m3(float x) {
    const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
    const float a = std::fabs(x);
    if (std::isnan(x)) return uint8_t(sign | 0x7f);
    if (a >= kE4m3Max) return uint8_t(sign | 0x7e);
    constexpr float kMinNormal = 0.015625f;  // 2^-6
    if (a < kMinNormal) {                     // subnormal steps of 2^-9; 8 steps is the smallest normal
        return uint8_t(sign | uint8_t(std::nearbyint(a * 512.0f)));
    }
    int exponent;
    std::frexp(a, &exponent);                                     // a = f * 2^exponent, f in [0.5, 1)
    const float steps = std::nearbyint(std::ldexp(a, 4 - exponent));  // mantissa with 3 bits: [8, 16]
    int32_t biased = exponent - 1 + 7, mantissa = int32_t(steps) - 8;
    if (mantissa == 8) {
        ++biased;
        mantissa = 0;
    }
    const int32_t code = (biased << 3) | mantissa;
    return uint8_t(sign | (code > 0x7e ? 0x7e : code));
}

}  // namespace pagedkv
