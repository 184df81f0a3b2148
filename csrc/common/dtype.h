// KV element types and their scalar conversions (portable; the SIMD kernels have their own).
#pragma once

#include <cstdint>
#include <cstring>

#include "pagedkv.h"

namespace pagedkv {

// A dtype of dense tensors (q, out, write_kv's source; every KV format is in quant/kv_format.h).
inline bool is_valid_dtype(int32_t dtype) {
    return dtype == PAGEDKV_DTYPE_F32 || dtype == PAGEDKV_DTYPE_F16 || dtype == PAGEDKV_DTYPE_BF16;
}

inline int32_t dtype_bytes(int32_t dtype) { return dtype == PAGEDKV_DTYPE_F32 ? 4 : 2; }

inline const char* dtype_name(int32_t dtype) {
    switch (dtype) {
        case PAGEDKV_DTYPE_F32: return "f32";
        case PAGEDKV_DTYPE_F16: return "f16";
        case PAGEDKV_DTYPE_BF16: return "bf16";
        case PAGEDKV_DTYPE_FP8_E4M3: return "fp8_e4m3";
        case PAGEDKV_DTYPE_Q8: return "q8";
        case PAGEDKV_DTYPE_Q6: return "q6";
        case PAGEDKV_DTYPE_Q4: return "q4";
        default: return "unknown";
    }
}

inline float bits_to_float(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

inline uint32_t float_to_bits(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

inline float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }

// Round to nearest even; NaN stays NaN (quiet bit forced so truncation cannot make it Inf).
inline uint16_t float_to_bf16(float f) {
    uint32_t bits = float_to_bits(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return uint16_t(bits >> 16);
}

inline float f16_to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1fu) return bits_to_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        if (mantissa == 0) return bits_to_float(sign);
        // Subnormal: value = mantissa * 2^-24.
        float magnitude = float(mantissa) * 5.9604644775390625e-8f;
        return sign ? -magnitude : magnitude;
    }
    return bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// Round to nearest even, with overflow to Inf and gradual underflow.
inline uint16_t float_to_f16(float f) {
    uint32_t bits = float_to_bits(f);
    uint32_t sign = (bits >> 16) & 0x8000u;
    uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return uint16_t(sign | 0x7e00u);
    if (magnitude >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: Inf
    if (magnitude < 0x38800000u) {                                   // below the smallest normal
        float scaled = bits_to_float(magnitude) * 16777216.0f;        // 2^24: units of the subnormal step
        uint32_t rounded = uint32_t(scaled);
        float remainder = scaled - float(rounded);
        if (remainder > 0.5f || (remainder == 0.5f && (rounded & 1u))) ++rounded;
        return uint16_t(sign | rounded);
    }
    uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
    return uint16_t(sign | ((rounded - 0x38000000u) >> 13));
}

// Reads element `index` of a buffer of `dtype` as float.
inline float load_as_float(const void* data, int64_t index, int32_t dtype) {
    switch (dtype) {
        case PAGEDKV_DTYPE_F16: return f16_to_float(static_cast<const uint16_t*>(data)[index]);
        case PAGEDKV_DTYPE_BF16: return bf16_to_float(static_cast<const uint16_t*>(data)[index]);
        default: return static_cast<const float*>(data)[index];
    }
}

inline void store_from_float(void* data, int64_t index, int32_t dtype, float value) {
    switch (dtype) {
        case PAGEDKV_DTYPE_F16: static_cast<uint16_t*>(data)[index] = float_to_f16(value); break;
        case PAGEDKV_DTYPE_BF16: static_cast<uint16_t*>(data)[index] = float_to_bf16(value); break;
        default: static_cast<float*>(data)[index] = value; break;
    }
}

}  // namespace pagedkv
