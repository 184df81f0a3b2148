// The kernel entry points of every backend, with one signature per operation. The C API
// (csrc/capi) validates arguments and then calls exactly one of these; kernels assume valid input.
#pragma once

#include <cstdint>

#include "paged_layout.h"

namespace pagedkv::kernels {

// Plain, obviously-correct implementations (double accumulation): the oracle for tests.
namespace reference {
void write_kv(const PagedLayer& cache, const BatchArrays& batch, const void* k, const void* v, int32_t src_dtype);
// Causal attention of every query token over its sequence's KV [0, position]; covers decode too.
void attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options, const void* q,
               void* out, float* lse);
void merge_states(const float* a, const float* lse_a, const float* b, const float* lse_b, int64_t n,
                  int32_t num_heads, int32_t head_dim, float* out, float* out_lse);
void copy_pages(void* pool_base, int64_t page_bytes, const int32_t* src_pages, const int32_t* dst_pages,
                int32_t num_pages);
}  // namespace reference

// Fast CPU kernels: multi-threaded, SIMD where the CPU has it, portable fallback.
namespace cpu {
void write_kv(const PagedLayer& cache, const BatchArrays& batch, const void* k, const void* v, int32_t src_dtype,
              int32_t num_threads);
void decode_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                      const void* q, void* out, float* lse);
void prefill_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                       const void* q, void* out, float* lse);
void cascade_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                       const void* q, void* out, float* lse);
void merge_states(const float* a, const float* lse_a, const float* b, const float* lse_b, int64_t n,
                  int32_t num_heads, int32_t head_dim, float* out, float* out_lse);
void copy_pages(void* pool_base, int64_t page_bytes, const int32_t* src_pages, const int32_t* dst_pages,
                int32_t num_pages);
}  // namespace cpu

// CUDA kernels (csrc/kernels/cuda); pointers are device pointers, except the page lists of
// copy_pages, which are host arrays. Without a CUDA build these throw PAGEDKV_ERR_NO_DEVICE.
namespace cuda {
void write_kv(const PagedLayer& cache, const BatchArrays& batch, const void* k, const void* v, int32_t src_dtype,
              void* stream);
// max |x| over the finite values of the f32 k and v of the batch's tokens, per kv head, into the host
// array amax [2][num_kv_heads] (K, V): what an FP8 layer's first write estimates its scales from.
// Waits for the stream; UNSUPPORTED while the stream is being captured.
void kv_abs_max(const PagedLayer& cache, const BatchArrays& batch, const void* k, const void* v, float* amax,
                void* stream);
void decode_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                      const void* q, void* out, float* lse);
void prefill_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                       const void* q, void* out, float* lse);
void cascade_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                       const void* q, void* out, float* lse);
void merge_states(const float* a, const float* lse_a, const float* b, const float* lse_b, int64_t n,
                  int32_t num_heads, int32_t head_dim, float* out, float* out_lse, void* stream);
void copy_pages(void* pool_base, int64_t page_bytes, const int32_t* src_pages, const int32_t* dst_pages,
                int32_t num_pages, void* stream);
}  // namespace cuda

}  // namespace pagedkv::kernels
