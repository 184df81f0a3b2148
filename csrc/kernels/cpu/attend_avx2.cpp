// The attention engine (attend_impl.h) for the avx2 vector traits.
#include "kernels/cpu/attend.h"

#if defined(__x86_64__)
#include "kernels/cpu/vec_avx2.h"
#include "pagedkv.h"

namespace pagedkv::kernels::cpu::avx2 {
#include "kernels/cpu/attend_impl.h"
}  // namespace pagedkv::kernels::cpu::avx2
#endif
