// The attention engine (attend_impl.h) for the avx512 vector traits.
#include "kernels/cpu/attend.h"

#if defined(__x86_64__)
#include "kernels/cpu/vec_avx512.h"
#include "pagedkv.h"

namespace pagedkv::kernels::cpu::avx512 {
#include "kernels/cpu/attend_impl.h"
}  // namespace pagedkv::kernels::cpu::avx512
#endif
