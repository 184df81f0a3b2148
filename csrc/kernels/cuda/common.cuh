// Shared by every CUDA kernel file: error checks, dtype traits (one place that knows how f32, f16
// and bf16 are stored and converted), 8-element vector loads/stores, and the one dispatch table
// from run-time (dtype, head dim) to compile-time template arguments.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "common/error.h"
#include "pagedkv.h"

namespace pagedkv::kernels::cuda {

// ---- errors ---------------------------------------------------------------------------------------

// Throws pagedkv::Error for a failed runtime call: OUT_OF_MEMORY for allocation failures, NO_DEVICE
// when there is no usable device or driver, CUDA otherwise; the message names the call and the
// runtime's own description. Clears the runtime's (non-sticky) last error first.
[[noreturn]] void throw_cuda_error(cudaError_t status, const char* what);

#define PAGEDKV_CUDA_CHECK(call)                                                            \
    do {                                                                                    \
        cudaError_t pagedkv_status_ = (call);                                               \
        if (pagedkv_status_ != cudaSuccess) ::pagedkv::kernels::cuda::throw_cuda_error(pagedkv_status_, #call); \
    } while (0)

// After a <<<...>>> launch: configuration errors surface through cudaGetLastError.
#define PAGEDKV_CUDA_CHECK_LAUNCH(kernel_name)                                                       \
    do {                                                                                             \
        cudaError_t pagedkv_status_ = cudaGetLastError();                                            \
        if (pagedkv_status_ != cudaSuccess)                                                          \
            ::pagedkv::kernels::cuda::throw_cuda_error(pagedkv_status_, "launch of " kernel_name);    \
    } while (0)

inline cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

template <class A, class B>
__host__ __device__ __forceinline__ constexpr A ceil_div(A a, B b) {
    return (a + A(b) - 1) / A(b);
}

// ---- dtype traits -----------------------------------------------------------------------------------

__host__ __device__ __forceinline__ int32_t element_bytes(int32_t dtype) { return dtype == PAGEDKV_DTYPE_F32 ? 4 : 2; }

__device__ __forceinline__ float half_bits_to_float(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }
__device__ __forceinline__ float bf16_bits_to_float(uint16_t bits) { return __uint_as_float(uint32_t(bits) << 16); }
// Both round to nearest even (f16: with overflow to Inf and gradual underflow), as the CPU does.
__device__ __forceinline__ uint16_t float_to_half_bits(float x) { return __half_as_ushort(__float2half_rn(x)); }
__device__ __forceinline__ uint16_t float_to_bf16_bits(float x) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}

// Compile-time view of a 16-bit KV element type used by the tensor-core kernels.
template <class T>
struct Half16;

template <>
struct Half16<__half> {
    static constexpr int32_t dtype = PAGEDKV_DTYPE_F16;
    __device__ __forceinline__ static uint16_t from_float(float x) { return float_to_half_bits(x); }
    __device__ __forceinline__ static uint32_t pack2(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t*>(&v);
    }
};

template <>
struct Half16<__nv_bfloat16> {
    static constexpr int32_t dtype = PAGEDKV_DTYPE_BF16;
    __device__ __forceinline__ static uint16_t from_float(float x) { return float_to_bf16_bits(x); }
    __device__ __forceinline__ static uint32_t pack2(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t*>(&v);
    }
};

// Element `index` of a buffer of run-time `dtype`, as float (scalar path: any alignment).
__device__ __forceinline__ float load_float(const void* base, int64_t index, int32_t dtype) {
    switch (dtype) {
        case PAGEDKV_DTYPE_F16: return half_bits_to_float(static_cast<const uint16_t*>(base)[index]);
        case PAGEDKV_DTYPE_BF16: return bf16_bits_to_float(static_cast<const uint16_t*>(base)[index]);
        default: return static_cast<const float*>(base)[index];
    }
}

__device__ __forceinline__ void store_float(void* base, int64_t index, int32_t dtype, float value) {
    switch (dtype) {
        case PAGEDKV_DTYPE_F16: static_cast<uint16_t*>(base)[index] = float_to_half_bits(value); break;
        case PAGEDKV_DTYPE_BF16: static_cast<uint16_t*>(base)[index] = float_to_bf16_bits(value); break;
        default: static_cast<float*>(base)[index] = value; break;
    }
}

__device__ __forceinline__ void unpack8(const uint4& raw, int32_t dtype, float (&v)[8]) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        uint16_t lo = uint16_t(words[i] & 0xffffu), hi = uint16_t(words[i] >> 16);
        v[2 * i] = dtype == PAGEDKV_DTYPE_F16 ? half_bits_to_float(lo) : bf16_bits_to_float(lo);
        v[2 * i + 1] = dtype == PAGEDKV_DTYPE_F16 ? half_bits_to_float(hi) : bf16_bits_to_float(hi);
    }
}

__device__ __forceinline__ uint4 pack8(const float (&v)[8], int32_t dtype) {
    uint32_t words[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        uint32_t lo = dtype == PAGEDKV_DTYPE_F16 ? float_to_half_bits(v[2 * i]) : float_to_bf16_bits(v[2 * i]);
        uint32_t hi = dtype == PAGEDKV_DTYPE_F16 ? float_to_half_bits(v[2 * i + 1]) : float_to_bf16_bits(v[2 * i + 1]);
        words[i] = lo | (hi << 16);
    }
    return make_uint4(words[0], words[1], words[2], words[3]);
}

// Eight consecutive elements starting at `index` (a multiple of 8; base 16-byte aligned), as float:
// one 16-byte load for f16/bf16, two for f32.
__device__ __forceinline__ void load8(const void* base, int64_t index, int32_t dtype, float (&v)[8]) {
    if (dtype == PAGEDKV_DTYPE_F32) {
        const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(base) + index);
        float4 a = p[0], b = p[1];
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
        unpack8(*reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(base) + index), dtype, v);
    }
}

__device__ __forceinline__ void store8(void* base, int64_t index, int32_t dtype, const float (&v)[8]) {
    if (dtype == PAGEDKV_DTYPE_F32) {
        float4* p = reinterpret_cast<float4*>(static_cast<float*>(base) + index);
        p[0] = make_float4(v[0], v[1], v[2], v[3]);
        p[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
        *reinterpret_cast<uint4*>(static_cast<uint16_t*>(base) + index) = pack8(v, dtype);
    }
}

// Four consecutive elements at `index` (a multiple of 4; base 16-byte aligned): 16 or 8 bytes.
__device__ __forceinline__ void store4(void* base, int64_t index, int32_t dtype, float4 v) {
    if (dtype == PAGEDKV_DTYPE_F32) {
        *reinterpret_cast<float4*>(static_cast<float*>(base) + index) = v;
    } else {
        auto cvt = [dtype](float x) -> uint32_t {
            return dtype == PAGEDKV_DTYPE_F16 ? float_to_half_bits(x) : float_to_bf16_bits(x);
        };
        uint2 packed = make_uint2(cvt(v.x) | (cvt(v.y) << 16), cvt(v.z) | (cvt(v.w) << 16));
        *reinterpret_cast<uint2*>(static_cast<uint16_t*>(base) + index) = packed;
    }
}

// 2^x with the hardware approximation (relative error ~2^-22; exact 0 for -inf).
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// ---- dispatch: the one place run-time dtype / head dim become template arguments -------------------

template <class T>
struct TypeTag {
    using type = T;
};
template <int N>
using IntTag = std::integral_constant<int, N>;

inline bool is_tensor_core_dtype(int32_t dtype) {
    return dtype == PAGEDKV_DTYPE_F16 || dtype == PAGEDKV_DTYPE_BF16;
}
inline bool is_tensor_core_head_dim(int32_t head_dim) { return head_dim == 64 || head_dim == 128; }

// Calls f(TypeTag<T>{}, IntTag<D>{}) for the 16-bit KV dtype and head dim the tensor-core kernels
// are built for; fails with UNSUPPORTED otherwise (callers check first and take the generic path).
template <class F>
void dispatch_tensor_core(int32_t kv_dtype, int32_t head_dim, F&& f) {
    auto with_dim = [&](auto type_tag) {
        switch (head_dim) {
            case 64: f(type_tag, IntTag<64>{}); return;
            case 128: f(type_tag, IntTag<128>{}); return;
            default: fail(PAGEDKV_ERR_UNSUPPORTED, "CUDA tensor-core attention supports head_dim 64 and 128, got ", head_dim);
        }
    };
    switch (kv_dtype) {
        case PAGEDKV_DTYPE_F16: with_dim(TypeTag<__half>{}); return;
        case PAGEDKV_DTYPE_BF16: with_dim(TypeTag<__nv_bfloat16>{}); return;
        default: fail(PAGEDKV_ERR_UNSUPPORTED, "CUDA tensor-core attention needs f16 or bf16 KV, got dtype ", kv_dtype);
    }
}

}  // namespace pagedkv::kernels::cuda
