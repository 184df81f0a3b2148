// f32 -> f16 / bf16 conversion of runs of elements, rounding to nearest even exactly like
// common/dtype.h (NaN included), per ISA. Used by write_kv.
#pragma once

#include <cstdint>

#include "kernels/cpu/isa.h"

namespace pagedkv::kernels::cpu {

using ConvertFn = void (*)(const float* src, uint16_t* dst, int64_t count);

struct Converters {
    ConvertFn to_f16;
    ConvertFn to_bf16;
};

Converters converters(Isa isa);

namespace portable {
void f32_to_f16(const float*, uint16_t*, int64_t);
void f32_to_bf16(const float*, uint16_t*, int64_t);
}
namespace avx2 {
void f32_to_f16(const float*, uint16_t*, int64_t);
void f32_to_bf16(const float*, uint16_t*, int64_t);
}
namespace avx512 {
void f32_to_f16(const float*, uint16_t*, int64_t);
void f32_to_bf16(const float*, uint16_t*, int64_t);
}

}  // namespace pagedkv::kernels::cpu
