// The paged KV layout, described once and used by every kernel (CPU and CUDA):
//   page[layer][kv: 0=K 1=V][kv_head][token_in_page][head_dim]
// f32/f16/bf16 are addressed in elements (offset); the quantized formats by (layer, kv, head)
// runs in bytes (run_offset), each run holding codes and scales (quant/kv_format.h).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define PAGEDKV_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define PAGEDKV_HOST_DEVICE inline
#endif

namespace pagedkv::kernels {

class PlanCache;

// One layer of the pool, as a kernel sees it. Offsets are in elements of `kv_dtype`.
struct PagedLayer {
    void* pool_base;        // start of page 0 (host or device memory)
    int64_t page_stride;    // elements from one page to the next
    int64_t slab_stride;    // elements from K to V (and from one layer's V to the next layer's K)
    int32_t layer;
    int32_t page_size;
    int32_t num_kv_heads;
    int32_t head_dim;
    int32_t kv_dtype;       // pagedkv_dtype
    // Byte geometry, which the quantized formats use (with_byte_geometry fills it).
    int64_t page_bytes = 0;
    int64_t run_bytes[2] = {0, 0};       // one head's K run, V run (page_size tokens, scales included)
    bool hadamard = false;               // group formats: K/V groups of 32 dims stored rotated
    float* kv_scales = nullptr;          // FP8 (host): this layer's [2][num_kv_heads] scales for writes

    // Element offset of (page, kv, head, token-in-page, dim 0).
    PAGEDKV_HOST_DEVICE int64_t offset(int32_t page, int32_t kv, int32_t head, int32_t token) const {
        return int64_t(page) * page_stride + int64_t(layer * 2 + kv) * slab_stride +
               (int64_t(head) * page_size + token) * head_dim;
    }

    // Byte offset of the run of (page, kv, head).
    PAGEDKV_HOST_DEVICE int64_t run_offset(int32_t page, int32_t kv, int32_t head) const {
        return int64_t(page) * page_bytes + int64_t(layer) * num_kv_heads * (run_bytes[0] + run_bytes[1]) +
               (kv ? num_kv_heads * run_bytes[0] : 0) + int64_t(head) * run_bytes[kv];
    }
};

// Kernel metadata of one batch (FlashInfer-style), all arrays on the kernel's device.
struct BatchArrays {
    int32_t num_seqs;
    int32_t num_pages;
    int32_t shared_prefix_pages;  // leading pages common to every sequence
    int64_t num_qo_tokens;
    int64_t max_kv_len;
    int64_t max_qo_len;
    const int32_t* kv_indptr;         // num_seqs + 1
    const int32_t* kv_page_indices;   // num_pages
    const int32_t* kv_last_page_len;  // num_seqs
    const int32_t* qo_indptr;         // num_seqs + 1
    const int64_t* slot_mapping;      // num_qo_tokens
    const int32_t* kv_len;            // num_seqs
    PlanCache* plans = nullptr;       // host: where kernels keep their plans for this batch (may be null)
};

// Attention options after validation: sm_scale resolved, dtypes checked.
struct AttentionOptions {
    int32_t num_qo_heads;
    float sm_scale;
    int32_t q_dtype;
    int32_t out_dtype;
    int32_t num_threads;    // CPU only; 0 = all cores
    int32_t kv_split_size;  // 0 = auto, -1 = never split
    void* cuda_stream;
};

}  // namespace pagedkv::kernels
