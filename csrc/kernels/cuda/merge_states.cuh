// The one merge of partial attention states, used by split-KV, cascade, the warps of one block and
// pagedkv_merge_states.
//
// A state over a KV range is (v, lse): v the softmax-weighted mean of V over that range, lse the
// natural-log log-sum-exp of its scaled scores; lse = -inf means an empty range, whose v is never
// read (it may be garbage). Two states over disjoint ranges merge exactly into
//   lse = log(e^lse_a + e^lse_b),  v = e^(lse_a - lse) v_a + e^(lse_b - lse) v_b.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace pagedkv::kernels::cuda {

struct MergeWeights {
    float scale_a;  // weight of v_a in the merged value (0: do not read v_a)
    float scale_b;  // weight of v_b
    float lse;      // merged log-sum-exp
};

__device__ __forceinline__ MergeWeights merge_weights(float lse_a, float lse_b) {
    float top = fmaxf(lse_a, lse_b);
    if (top == -INFINITY) return {0.0f, 0.0f, -INFINITY};
    float ea = expf(lse_a - top);  // 0 for an empty side, 1 for the larger one
    float eb = expf(lse_b - top);
    float sum = ea + eb;
    return {ea / sum, eb / sum, top + logf(sum)};
}

// Merges a run of partial states laid out [rows][num_slots][head_dim] (lse [rows][num_slots]) into
// out [rows][head_dim] of out_dtype and out_lse [rows] (may be null). head_dim is 64 or 128.
void merge_partial_states(const float* partial_v, const float* partial_lse, int32_t num_slots, int64_t rows,
                          int32_t head_dim, void* out, int32_t out_dtype, float* out_lse, cudaStream_t stream);

}  // namespace pagedkv::kernels::cuda
