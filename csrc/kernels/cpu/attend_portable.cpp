// The attention engine (attend_impl.h) for the portable vector traits.
#include "kernels/cpu/attend.h"


#include "kernels/cpu/vec_portable.h"
#include "pagedkv.h"

namespace pagedkv::kernels::cpu::portable {
#include "kernels/cpu/attend_impl.h"
}  // namespace pagedkv::kernels::cpu::portable

