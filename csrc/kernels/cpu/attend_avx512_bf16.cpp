// The attention engine (attend_impl.h) for AVX-512 with the native dot products (Isa::avx512_bf16:
// vdpbf16ps for bf16 K, vpdpbusd for integer K codes).
#include "kernels/cpu/attend.h"

#if defined(__x86_64__)
#include "kernels/cpu/vec_avx512.h"
#include "pagedkv.h"

namespace pagedkv::kernels::cpu::avx512_bf16 {
using Vec = avx512::VecT<true>;
#include "kernels/cpu/attend_impl.h"
}  // namespace pagedkv::kernels::cpu::avx512_bf16
#endif
