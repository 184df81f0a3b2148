// f32 -> f16 / bf16 row conversion of write_kv (convert_impl.h) for the portable vector traits.
#include "kernels/cpu/convert.h"


#include "kernels/cpu/vec_portable.h"

namespace pagedkv::kernels::cpu::portable {
#include "kernels/cpu/convert_impl.h"
}  // namespace pagedkv::kernels::cpu::portable

