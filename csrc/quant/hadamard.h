// The orthonormal 32-point Hadamard transform (Sylvester order, scaled by 1/sqrt(32)), in place.
// It is its own inverse, so the same call rotates K/V on write, q before the dot product, and the
// weighted sum of V back.
#pragma once

#include <cstdint>

namespace pagedkv {

constexpr float kHadamard32Norm = 0.17677669529663687f;  // 1 / sqrt(32)

inline void hadamard32(float* x) {
    for (int32_t half = 1; half < 32; half *= 2)
        for (int32_t i = 0; i < 32; i += 2 * half)
            for (int32_t j = i; j < i + half; ++j) {
                const float a = x[j], b = x[j + half];
                x[j] = a + b;
                x[j + half] = a - b;
            }
    for (int32_t i = 0; i < 32; ++i) x[i] *= kHadamard32Norm;
}

// Every group of 32 of `count` rows of head_dim values (head_dim a multiple of 32).
inline void hadamard32_rows(float* rows, int64_t count, int32_t head_dim) {
    for (int64_t r = 0; r < count; ++r)
        for (int32_t g = 0; g < head_dim; g += 32) hadamard32(rows + r * head_dim + g);
}

}  // namespace pagedkv
