#include "kernels/cpu/attend.h"

namespace pagedkv::kernels::cpu {

int64_t attend_scratch_floats(int32_t head_dim, int32_t max_rows) {
    return 3 * int64_t(kKvTile) * head_dim + int64_t(max_rows) * kKvTile;  // K, V, K transposed, scores
}

AttendFn attend_function(Isa isa) {
#if defined(__x86_64__)
    if (isa == Isa::avx512_bf16) return &avx512_bf16::attend;
    if (isa == Isa::avx512) return &avx512::attend;
    if (isa == Isa::avx2) return &avx2::attend;
#endif
    return &portable::attend;
}

}  // namespace pagedkv::kernels::cpu
