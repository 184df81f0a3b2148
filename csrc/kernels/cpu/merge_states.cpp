#include "kernels/cpu/merge_states.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/parallel.h"
#include "kernels/kernels.h"

namespace pagedkv::kernels::cpu {

void merge_state(const float* value_a, float lse_a, const float* value_b, float lse_b, int32_t head_dim,
                 float* out, float* out_lse) {
    const float empty = -INFINITY;
    if (lse_a == empty && lse_b == empty) {
        std::fill(out, out + head_dim, 0.0f);
        *out_lse = empty;
        return;
    }
    if (lse_a == empty || lse_b == empty) {
        const float* source = lse_b == empty ? value_a : value_b;
        if (source != out) std::memmove(out, source, sizeof(float) * size_t(head_dim));
        *out_lse = lse_b == empty ? lse_a : lse_b;
        return;
    }
    const float max = std::fmax(lse_a, lse_b);
    const float weight_a = std::exp(lse_a - max), weight_b = std::exp(lse_b - max);
    const float total = weight_a + weight_b;
    const float scale_a = weight_a / total, scale_b = weight_b / total;
    for (int32_t d = 0; d < head_dim; ++d) out[d] = scale_a * value_a[d] + scale_b * value_b[d];
    *out_lse = max + std::log(total);
}

void merge_states(const float* a, const float* lse_a, const float* b, const float* lse_b, int64_t n,
                  int32_t num_heads, int32_t head_dim, float* out, float* out_lse) {
    const int64_t rows = n * num_heads;
    constexpr int64_t kRowsPerTask = 256;
    const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
    const int32_t threads = rows * head_dim >= (int64_t(1) << 16) ? resolve_threads(0) : 1;
    parallel_for(tasks, threads, [&](int64_t task) {
        const int64_t end = std::min(rows, (task + 1) * kRowsPerTask);
        for (int64_t row = task * kRowsPerTask; row < end; ++row) {
            const int64_t offset = row * head_dim;
            merge_state(a + offset, lse_a[row], b + offset, lse_b[row], head_dim, out + offset, out_lse + row);
        }
    });
}

}  // namespace pagedkv::kernels::cpu
