// Quantizing one token's row of K or V into a run, and reading it back, in plain scalar code:
// write_kv (CPU) uses it, and the reference attention reads through dequantize_row. Byte layouts
// as in pagedkv.h; rotation (Hadamard) is the caller's business.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/dtype.h"
#include "quant/fp8.h"
#include "quant/kv_format.h"

namespace pagedkv {

// fp16 bits of the smallest fp16 scale s with s * qmax >= amax (so no code needs clamping),
// capped at the largest finite fp16.
inline uint16_t group_scale_f16(float amax, int32_t qmax) {
    constexpr uint16_t kMaxFinite = 0x7bff;
    if (!(amax < 65504.0f * float(qmax))) return kMaxFinite;  // also NaN
    uint16_t bits = float_to_f16(amax / float(qmax));
    if (f16_to_float(bits) * float(qmax) < amax && bits < kMaxFinite) ++bits;
    return bits;
}

// Symmetric codes of 32 values x with one fp16 scale; 8-bit codes as int8, 4-bit as described
// in pagedkv.h (c + 8; byte i: dim i low nibble, dim i + 16 high nibble).
inline void quantize_group(const float* x, int32_t bits, uint8_t* codes, uint16_t* scale) {
    const int32_t qmax = bits == 8 ? 127 : 7;
    float amax = 0.0f;
    for (int32_t i = 0; i < kQuantGroup; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    *scale = group_scale_f16(amax, qmax);
    const float s = f16_to_float(*scale);
    int32_t code[kQuantGroup];
    for (int32_t i = 0; i < kQuantGroup; ++i) {
        const float c = s > 0.0f ? std::nearbyint(x[i] / s) : 0.0f;
        code[i] = int32_t(std::fmax(-float(qmax), std::fmin(float(qmax), c)));  // NaN input: 0
    }
    if (bits == 8) {
        for (int32_t i = 0; i < kQuantGroup; ++i) codes[i] = uint8_t(int8_t(code[i]));
    } else {
        for (int32_t i = 0; i < kQuantGroup / 2; ++i)
            codes[i] = uint8_t((code[i] + 8) | ((code[i + kQuantGroup / 2] + 8) << 4));
    }
}

inline float group_code(const uint8_t* codes, int32_t bits, int32_t i) {
    if (bits == 8) return float(int8_t(codes[i]));
    const uint8_t byte = codes[i % (kQuantGroup / 2)];
    return float(int32_t(i < kQuantGroup / 2 ? byte & 0xf : byte >> 4) - 8);
}

// Writes row x (head_dim values) of K (kv 0) or V (kv 1): codes (code_bytes) and, for the group
// formats, its fp16 scales; FP8 divides by fp8_scale.
inline void quantize_row(int32_t dtype, int32_t kv, const float* x, int32_t head_dim, float fp8_scale,
                         uint8_t* codes, uint16_t* scales) {
    if (dtype == PAGEDKV_DTYPE_FP8_E4M3) {
        const float inverse = 1.0f / fp8_scale;
        for (int32_t d = 0; d < head_dim; ++d) codes[d] = float_to_e4m3(x[d] * inverse);
        return;
    }
    const int32_t bits = kv_code_bits(dtype, kv), group_bytes = kQuantGroup * bits / 8;
    for (int32_t g = 0; g < head_dim / kQuantGroup; ++g)
        quantize_group(x + g * kQuantGroup, bits, codes + g * group_bytes, scales + g);
}

// The inverse of quantize_row (up to the rounding): out[d] for d < head_dim.
inline void dequantize_row(int32_t dtype, int32_t kv, const uint8_t* codes, const uint16_t* scales, float fp8_scale,
                           int32_t head_dim, float* out) {
    if (dtype == PAGEDKV_DTYPE_FP8_E4M3) {
        for (int32_t d = 0; d < head_dim; ++d) out[d] = e4m3_to_float(codes[d]) * fp8_scale;
        return;
    }
    const int32_t bits = kv_code_bits(dtype, kv), group_bytes = kQuantGroup * bits / 8;
    for (int32_t g = 0; g < head_dim / kQuantGroup; ++g) {
        const float s = f16_to_float(scales[g]);
        for (int32_t i = 0; i < kQuantGroup; ++i)
            out[g * kQuantGroup + i] = group_code(codes + g * group_bytes, bits, i) * s;
    }
}

// The f32 scale stored in an FP8 run's tail.
inline float fp8_run_scale(const uint8_t* tail) {
    float scale;
    std::memcpy(&scale, tail, sizeof scale);
    return scale;
}

inline void store_fp8_run_scale(uint8_t* tail, float scale) {
    uint8_t bytes[kFp8TailBytes] = {};
    std::memcpy(bytes, &scale, sizeof scale);
    std::memcpy(tail, bytes, sizeof bytes);
}

}  // namespace pagedkv
