// write_kv on the CPU: K and V of every query token of the batch go to its slot
// (page = slot / page_size, token = slot % page_size), converted to the cache's dtype.
#include <algorithm>
#include <cstring>

#include "common/dtype.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/parallel.h"
#include "kernels/kernels.h"
#include "quant/paged_rows.h"

namespace pagedkv::kernels::cpu {

Converters converters(Isa isa) {
#if defined(__x86_64__)
    if (isa == Isa::avx512 || isa == Isa::avx512_bf16) return {&avx512::f32_to_f16, &avx512::f32_to_bf16};
    if (isa == Isa::avx2) return {&avx2::f32_to_f16, &avx2::f32_to_bf16};
#endif
    return {&portable::f32_to_f16, &portable::f32_to_bf16};
}

namespace {

constexpr int32_t kMaxHeadDim = 256;  // the config's limit

// Copies or converts `count` elements of src (src_dtype) to dst (dst_dtype).
void write_row(const void* src, int64_t src_index, int32_t src_dtype, void* dst, int64_t dst_index,
               int32_t dst_dtype, int64_t count, const Converters& convert) {
    const float* src_f32 = static_cast<const float*>(src) + src_index;
    uint16_t* dst_16 = static_cast<uint16_t*>(dst) + dst_index;
    if (src_dtype == dst_dtype) {
        const int32_t bytes = dtype_bytes(dst_dtype);
        std::memcpy(static_cast<char*>(dst) + dst_index * bytes, static_cast<const char*>(src) + src_index * bytes,
                    size_t(count) * size_t(bytes));
    } else if (src_dtype == PAGEDKV_DTYPE_F32 && dst_dtype == PAGEDKV_DTYPE_F16) {
        convert.to_f16(src_f32, dst_16, count);
    } else if (src_dtype == PAGEDKV_DTYPE_F32 && dst_dtype == PAGEDKV_DTYPE_BF16) {
        convert.to_bf16(src_f32, dst_16, count);
    } else {
        for (int64_t i = 0; i < count; ++i)
            store_from_float(dst, dst_index + i, dst_dtype, load_as_float(src, src_index + i, src_dtype));
    }
}

}  // namespace

void write_kv(const PagedLayer& cache, const BatchArrays& batch, const void* k, const void* v, int32_t src_dtype,
              int32_t num_threads) {
    const int64_t tokens = batch.num_qo_tokens;
    const int32_t heads = cache.num_kv_heads, head_dim = cache.head_dim;
    const Converters convert = converters(active_isa());
    constexpr int64_t kTokensPerTask = 16;
    const int64_t tasks = (tokens + kTokensPerTask - 1) / kTokensPerTask;
    const bool large = tokens * heads * head_dim >= (int64_t(1) << 16);
    const bool quantized = is_quantized_dtype(cache.kv_dtype);  // from f32 only (checked by the C API)
    parallel_for(tasks, large ? resolve_threads(num_threads) : 1, [&](int64_t task) {
        float row[kMaxHeadDim];
        const int64_t end = std::min(tokens, (task + 1) * kTokensPerTask);
        for (int64_t t = task * kTokensPerTask; t < end; ++t) {
            const int64_t slot = batch.slot_mapping[t];
            const int32_t page = int32_t(slot / cache.page_size), in_page = int32_t(slot % cache.page_size);
            for (int32_t head = 0; head < heads; ++head) {
                const int64_t src = (t * heads + head) * head_dim;
                if (quantized) {
                    for (int32_t kv = 0; kv < 2; ++kv) {
                        const float* from = static_cast<const float*>(kv == 0 ? k : v) + src;
                        std::copy(from, from + head_dim, row);  // rotated in place on the way in
                        write_quantized_row(cache, page, kv, head, in_page, row);
                    }
                    continue;
                }
                write_row(k, src, src_dtype, cache.pool_base, cache.offset(page, 0, head, in_page), cache.kv_dtype,
                          head_dim, convert);
                write_row(v, src, src_dtype, cache.pool_base, cache.offset(page, 1, head, in_page), cache.kv_dtype,
                          head_dim, convert);
            }
        }
    });
}

}  // namespace pagedkv::kernels::cpu
