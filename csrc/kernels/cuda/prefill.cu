// Prefill / extend attention: the query tokens of each sequence (its last qo_len positions) attend
// causally to its cached prefix and to themselves. Tiles of 64 rows (16 tokens x GQA group of 4, say)
// stream the sequence's KV; KV tiles past every row's causal limit are never loaded, and row tiles
// are scheduled heaviest first.
#include "kernels/cuda/attention.cuh"
#include "kernels/kernels.h"

namespace pagedkv::kernels::cuda {

void prefill_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                       const void* q, void* out, float* lse) {
    run_paged_attention(cache, batch, options, q, out, lse);
}

}  // namespace pagedkv::kernels::cuda
