// f32 -> f16 / bf16 row conversion of write_kv (convert_impl.h) for the avx512 vector traits.
#include "kernels/cpu/convert.h"

#if defined(__x86_64__)
#include "kernels/cpu/vec_avx512.h"

namespace pagedkv::kernels::cpu::avx512 {
#include "kernels/cpu/convert_impl.h"
}  // namespace pagedkv::kernels::cpu::avx512
#endif
