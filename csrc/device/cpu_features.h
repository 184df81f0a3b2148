// What the host CPU offers the fast kernels; detected once.
#pragma once

#include <cstdint>

namespace pagedkv::device {

bool cpu_has_avx2();    // AVX2 + FMA + F16C
bool cpu_has_avx512();  // AVX-512 F/BW/VL/DQ (+ BF16 reported separately)
bool cpu_has_avx512_bf16();
bool cpu_has_avx512_vnni();
int32_t cpu_thread_count();

}  // namespace pagedkv::device
