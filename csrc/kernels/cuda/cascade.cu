// Shared-prefix (cascade) attention. The batch's shared_prefix_pages hold the same KV for every
// sequence, so one pass treats all query rows of the batch (every token x GQA head, per KV head) as a
// single row set over that prefix: each prefix byte is read once per 64-row tile instead of once per
// sequence. A second, per-sequence pass covers each sequence's own positions [prefix_len, kv_len).
// Both write partial states (split over the KV like any pass) that one merge combines exactly.
// The causal limit of every row is applied in both passes, so a query position inside the shared
// prefix is still correct (its suffix part is empty and merges as lse = -inf).
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/merge_states.cuh"
#include "kernels/cuda/runtime.cuh"
#include "kernels/kernels.h"

namespace pagedkv::kernels::cuda {

void cascade_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                       const void* q, void* out, float* lse) {
    check_attention_pointers(cache, options, q, out, lse);
    if (batch.num_seqs == 0 || batch.num_qo_tokens == 0) return;
    if (batch.shared_prefix_pages <= 0 || !uses_tensor_cores(cache)) {
        // Nothing shared (or the generic kernel, which has no passes): the plain computation.
        run_paged_attention(cache, batch, options, q, out, lse);
        return;
    }
    DeviceGuard guard(cache.pool_base);
    cudaStream_t stream = as_stream(options.cuda_stream);
    const int64_t prefix_len = int64_t(batch.shared_prefix_pages) * cache.page_size;
    PAGEDKV_REQUIRE(prefix_len <= INT32_MAX, PAGEDKV_ERR_UNSUPPORTED, "shared prefix too long: ", prefix_len);

    AttentionWork prefix = make_attention_work(cache, batch, options, q, out, lse);
    prefix.shared_prefix = 1;
    prefix.prefix_len = int32_t(prefix_len);
    prefix.num_row_sets = 1;
    const TilePlan prefix_plan = plan_tiles(prefix, batch.num_qo_tokens * prefix.group_size, 1, prefix_len,
                                            options.kv_split_size, guard.device());

    AttentionWork suffix = make_attention_work(cache, batch, options, q, out, lse);
    suffix.kv_begin = int32_t(prefix_len);
    const int64_t suffix_extent = batch.max_kv_len - prefix_len;
    TilePlan suffix_plan;  // blocks = 0, num_chunks = 1: unused when no sequence has its own positions
    suffix_plan.num_chunks = 0;
    if (suffix_extent > 0) {
        suffix_plan = plan_tiles(suffix, batch.max_qo_len * suffix.group_size, batch.num_seqs, suffix_extent,
                                 options.kv_split_size, guard.device());
    }

    if (suffix_plan.num_chunks == 0 && prefix_plan.num_chunks == 1) {
        // Every sequence is the shared prefix and it is not split: one pass writes the output.
        launch_tiles(prefix, prefix_plan, stream);
        return;
    }

    const int64_t rows = batch.num_qo_tokens * options.num_qo_heads;
    const int32_t slots = prefix_plan.num_chunks + suffix_plan.num_chunks;
    const int64_t states = rows * slots;
    StreamScratch scratch(size_t(states) * (cache.head_dim + 1) * sizeof(float), stream, guard.device());
    float* partial_v = static_cast<float*>(scratch.get());
    float* partial_lse = partial_v + states * cache.head_dim;

    prefix.partial_v = suffix.partial_v = partial_v;
    prefix.partial_lse = suffix.partial_lse = partial_lse;
    prefix.num_slots = suffix.num_slots = slots;
    prefix.slot_base = 0;
    suffix.slot_base = prefix_plan.num_chunks;
    launch_tiles(prefix, prefix_plan, stream);
    if (suffix_plan.num_chunks > 0) launch_tiles(suffix, suffix_plan, stream);
    merge_partial_states(partial_v, partial_lse, slots, rows, cache.head_dim, out, options.out_dtype, lse, stream);
}

}  // namespace pagedkv::kernels::cuda
