// Decode attention: one query token per sequence. It is the one-token case of the per-sequence
// pass: the plan picks 16-row tiles (a GQA group of up to 16 heads shares each K/V byte the block
// loads; the 4 warps split every KV tile) and splits long KV into chunks until the chip is full,
// merging the chunks' partial states through their LSE.
#include "kernels/cuda/attention.cuh"
#include "kernels/kernels.h"

namespace pagedkv::kernels::cuda {

void decode_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                      const void* q, void* out, float* lse) {
    run_paged_attention(cache, batch, options, q, out, lse);
}

}  // namespace pagedkv::kernels::cuda
