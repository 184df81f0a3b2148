// Quantized KV pages on the device (FP8_E4M3, Q8, Q6, Q4; pagedkv.h's layout, quant/kv_format.h's
// geometry): where a (page, K|V, head) run's codes, scales and tail lie, and the codecs. The
// encoders repeat quant/quantize_row.h and quant/fp8.h operation for operation (IEEE division,
// round-to-nearest-even, the same order of the Hadamard butterfly), so a CUDA write stores the same
// bytes as a CPU write of the same f32 input; tests/gpu/test_gpu_quant.cpp checks that byte for byte.
#pragma once

#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/paged_layout.h"
#include "quant/kv_format.h"

namespace pagedkv::kernels::cuda {

// Byte geometry of one layer's quantized runs, for kernels (filled on the host by quant_layout).
struct QuantLayout {
    int64_t page_bytes = 0;
    int64_t layer_at = 0;      // the layer's first run inside a page
    int64_t kv_at[2] = {0, 0}; // K runs, V runs from there
    int64_t run_bytes[2] = {0, 0};
    int32_t code_bytes[2] = {0, 0};  // one token's codes
    int64_t scales_at[2] = {0, 0};   // group formats: fp16 scales [page_size][groups] after the codes
    int64_t tail_at[2] = {0, 0};     // FP8: the run's f32 scale
    int32_t bits[2] = {8, 8};        // code bits of K, V
    int32_t groups = 0;              // head_dim / 32 (group formats)

    __device__ __forceinline__ int64_t run_at(int32_t page, int32_t kv, int32_t head) const {
        return int64_t(page) * page_bytes + layer_at + kv_at[kv] + int64_t(head) * run_bytes[kv];
    }
    __device__ __forceinline__ const uint8_t* run(const void* pool, int32_t page, int32_t kv, int32_t head) const {
        return static_cast<const uint8_t*>(pool) + run_at(page, kv, head);
    }
};

inline QuantLayout quant_layout(const PagedLayer& layer) {
    QuantLayout q;
    q.page_bytes = layer.page_bytes;
    q.layer_at = int64_t(layer.layer) * layer.num_kv_heads * (layer.run_bytes[0] + layer.run_bytes[1]);
    q.groups = layer.head_dim / kQuantGroup;
    for (int32_t kv = 0; kv < 2; ++kv) {
        const KvRunGeometry g = kv_run_geometry(layer.kv_dtype, kv, layer.head_dim, layer.page_size);
        q.kv_at[kv] = kv ? int64_t(layer.num_kv_heads) * layer.run_bytes[0] : 0;
        q.run_bytes[kv] = layer.run_bytes[kv];
        q.code_bytes[kv] = g.code_bytes;
        q.scales_at[kv] = g.scales_at(layer.page_size);
        q.tail_at[kv] = g.tail_at(layer.page_size);
        q.bits[kv] = kv_code_bits(layer.kv_dtype, kv);
    }
    return q;
}

// ---- decoding ---------------------------------------------------------------------------------------

// e4m3 byte -> the fp16 bits of its value / 256 (exact for every finite code; quant/fp8.h).
__device__ __forceinline__ uint16_t e4m3_to_half_bits(uint32_t code) {
    return uint16_t(((code & 0x80u) << 8) | ((code & 0x7fu) << 7));
}

// Two e4m3 bytes (bits 0..7 and 8..15 of `pair`) -> a half2 word of their values / 256.
__device__ __forceinline__ uint32_t e4m3x2_to_half2_bits(uint32_t pair) {
    return ((pair & 0x80u) << 8) | ((pair & 0x7fu) << 7) | ((pair & 0x8000u) << 16) | ((pair & 0x7f00u) << 15);
}

constexpr float kE4m3FromHalf = 256.0f;

__device__ __forceinline__ float e4m3_to_float(uint32_t code) {
    return half_bits_to_float(e4m3_to_half_bits(code)) * kE4m3FromHalf;
}

// The f32 scale an FP8 run was written with.
__device__ __forceinline__ float fp8_run_scale(const uint8_t* run, const QuantLayout& q, int32_t kv) {
    return *reinterpret_cast<const float*>(run + q.tail_at[kv]);
}

// Value d of token `in_page` of a run, without the FP8 scale (callers fold it in): one byte read.
// Group formats: code times its group's fp16 scale.
__device__ __forceinline__ float quant_value(const uint8_t* run, const QuantLayout& q, int32_t kv_dtype, int32_t kv,
                                             int32_t in_page, int32_t d) {
    const uint8_t* codes = run + int64_t(in_page) * q.code_bytes[kv];
    if (kv_dtype == PAGEDKV_DTYPE_FP8_E4M3) return e4m3_to_float(codes[d]);
    const int32_t group = d / kQuantGroup, i = d % kQuantGroup;
    const uint16_t scale = reinterpret_cast<const uint16_t*>(run + q.scales_at[kv])[int64_t(in_page) * q.groups + group];
    float code;
    if (q.bits[kv] == 8) {
        code = float(int8_t(codes[d]));
    } else {
        const uint32_t byte = codes[group * (kQuantGroup / 2) + i % (kQuantGroup / 2)];
        code = float(int32_t(i < kQuantGroup / 2 ? byte & 0xfu : byte >> 4) - 8);
    }
    return code * half_bits_to_float(scale);
}

// ---- encoding (the CPU's operations, in its order) -----------------------------------------------------

constexpr float kHadamard32Norm = 0.17677669529663687f;  // 1 / sqrt(32), as quant/hadamard.h

// The orthonormal 32-point Hadamard transform of one value per lane (lane i holds element i of the
// group): the butterfly of quant/hadamard.h, stage by stage, each lane computing its own output.
__device__ __forceinline__ float hadamard32_lanes(float x, int lane) {
#pragma unroll
    for (int half = 1; half < 32; half *= 2) {
        const float other = __shfl_xor_sync(0xffffffffu, x, half);
        x = (lane & half) ? other - x : x + other;  // upper: a - b, lower: a + b (a lower, b upper)
    }
    return x * kHadamard32Norm;
}

// The same transform of 32 values held by one thread: quant/hadamard.h's stages, each stage's 16
// disjoint pairs (lo, lo + half) in constant positions, so the values stay in registers.
__device__ __forceinline__ void hadamard32_registers(float (&x)[32]) {
#pragma unroll
    for (int stage = 0; stage < 5; ++stage) {
        const int half = 1 << stage;
#pragma unroll
        for (int pair = 0; pair < 16; ++pair) {
            const int lo = (pair / half) * 2 * half + pair % half;
            const float a = x[lo], b = x[lo + half];
            x[lo] = a + b;
            x[lo + half] = a - b;
        }
    }
#pragma unroll
    for (int i = 0; i < 32; ++i) x[i] *= kHadamard32Norm;
}

// Smallest fp16 scale s with s * qmax >= amax, capped at the largest finite fp16 (quantize_row.h).
__device__ __forceinline__ uint16_t group_scale_half_bits(float amax, int32_t qmax) {
    constexpr uint16_t kMaxFinite = 0x7bff;
    if (!(amax < 65504.0f * float(qmax))) return kMaxFinite;
    uint16_t bits = float_to_half_bits(__fdiv_rn(amax, float(qmax)));
    if (__fmul_rn(half_bits_to_float(bits), float(qmax)) < amax && bits < kMaxFinite) ++bits;
    return bits;
}

// Symmetric code of x with scale s (0 when s is 0), clamped to [-qmax, qmax].
__device__ __forceinline__ int32_t group_code(float x, float s, int32_t qmax) {
    const float c = s > 0.0f ? rintf(__fdiv_rn(x, s)) : 0.0f;
    return int32_t(fmaxf(-float(qmax), fminf(float(qmax), c)));
}

// e4m3 code of x: round to nearest even, saturating at 448, NaN kept (quant/fp8.h).
__device__ __forceinline__ uint8_t float_to_e4m3(float x) {
    const uint32_t sign = signbit(x) ? 0x80u : 0x00u;
    const float a = fabsf(x);
    if (isnan(x)) return uint8_t(sign | 0x7fu);
    if (a >= 448.0f) return uint8_t(sign | 0x7eu);
    if (a < 0.015625f) return uint8_t(sign | uint32_t(rintf(__fmul_rn(a, 512.0f))));  // subnormal steps of 2^-9
    int exponent;
    frexpf(a, &exponent);
    const float steps = rintf(ldexpf(a, 4 - exponent));  // mantissa with 3 bits: [8, 16]
    int32_t biased = exponent - 1 + 7, mantissa = int32_t(steps) - 8;
    if (mantissa == 8) {
        ++biased;
        mantissa = 0;
    }
    const int32_t code = (biased << 3) | mantissa;
    return uint8_t(sign | uint32_t(code > 0x7e ? 0x7e : code));
}

}  // namespace pagedkv::kernels::cuda
