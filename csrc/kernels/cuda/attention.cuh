// Paged attention on the GPU: what one launch computes (AttentionWork), how the host plans it
// (TilePlan: tile height, split-KV chunking) and runs it. decode.cu, prefill.cu and cascade.cu are
// built from these pieces; the kernels live in attention_tile.cuh and attention.cu.
//
// Rows. Query heads are grouped by KV head (GQA group of G = Hq / Hkv heads). For one KV head, the
// rows of a "row set" are its (query token, head in group) pairs, packed row = token * G + head, so
// the G heads of a token share every K/V byte a block loads. A row set is one sequence's query
// tokens (per-sequence passes) or every query token of the batch (the shared-prefix pass of
// cascade). Each row sees KV positions [0, p] with p its causal limit, intersected with the range
// the pass covers.
//
// Blocks. One block = (KV chunk, row set, KV head, tile of 16/32/64 rows). It streams the chunk's
// KV through shared memory 64 positions at a time and writes either the final output (one chunk)
// or a partial state (value + LSE) per row into slot `slot_base + chunk`, merged afterwards.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/quant.cuh"
#include "kernels/paged_layout.h"

namespace pagedkv::kernels::cuda {

struct AttentionWork {
    // One layer of the pool (offsets in elements of the KV dtype).
    const void* pool;
    int64_t page_stride;
    int64_t slab_stride;
    int32_t layer;
    int32_t page_size;
    int32_t num_kv_heads;
    int32_t head_dim;
    int32_t kv_dtype;
    QuantLayout quant;      // quantized formats: where runs, codes and scales lie
    int32_t hadamard;       // group formats stored rotated: q is rotated in, the output back
    // The batch (device arrays).
    const int32_t* kv_indptr;
    const int32_t* kv_page_indices;
    const int32_t* kv_len;
    const int32_t* qo_indptr;
    int32_t num_seqs;
    int32_t num_qo_tokens;
    // Queries.
    const void* q;
    int32_t q_dtype;
    int32_t num_qo_heads;
    int32_t group_size;
    float sm_scale_log2;  // sm_scale * log2(e): scores are kept in base 2
    // Final results (used when partial_v is null): out [T, Hq, D], lse [T, Hq] (may be null).
    void* out;
    int32_t out_dtype;
    float* lse;
    // Partial results: partial_v [T * Hq][num_slots][D], partial_lse [T * Hq][num_slots].
    float* partial_v;
    float* partial_lse;
    int32_t num_slots;
    int32_t slot_base;
    // The pass.
    int32_t shared_prefix;  // 1: row set = all query tokens; KV = [0, prefix_len) of sequence 0's pages
    int32_t prefix_len;
    int32_t kv_begin;       // per-sequence passes: first KV position (cascade suffix: prefix_len)
    int32_t kv_chunk;       // KV positions per chunk
    int32_t num_chunks;
    int32_t num_row_sets;
    int32_t num_q_tiles;    // row tiles per row set
};

// How a pass is cut into blocks.
struct TilePlan {
    int32_t warps_m = 4;     // tile height 16 * warps_m rows; the other 4 / warps_m warps split the KV
    int32_t num_q_tiles = 0;
    int32_t kv_chunk = 1;
    int32_t num_chunks = 1;
    int64_t blocks = 0;
};

// Fills everything but the pass fields (single per-sequence pass over all of the KV, final output).
AttentionWork make_attention_work(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                                  const void* q, void* out, float* lse);

// True when the tensor-core kernel serves this cache (f16/bf16 or quantized KV, head dim 64 or 128;
// quantized KV is dequantized to fp16 in registers on its way into the tiles).
bool uses_tensor_cores(const PagedLayer& cache);

// Fails with INVALID_ARGUMENT, before anything is queued, when q, out or lse is not aligned for the
// widest access any plan of this cache may make to it (tensor-core path: q 16 bytes, out 4
// elements; generic path: one element; lse 4 bytes). Every attention entry point calls it first,
// so a misaligned tensor is an error whatever the planner picks, never a kernel fault that would
// take the CUDA context down.
void check_attention_pointers(const PagedLayer& cache, const AttentionOptions& options, const void* q,
                              const void* out, const float* lse);

// Plans a pass of `row_sets` row sets of at most `max_rows` rows over at most `max_kv` KV
// positions each. kv_split_size: 0 = auto (split until the chip is full), -1 = never, >0 = chunk.
TilePlan plan_tiles(const AttentionWork& work, int64_t max_rows, int32_t row_sets, int64_t max_kv,
                    int32_t kv_split_size, int device);

// Launches the tensor-core kernel for `plan` (work's pass fields are taken from the plan).
void launch_tiles(AttentionWork work, const TilePlan& plan, cudaStream_t stream);

// The plain kernel (any dtype, quantized too, head dim <= 256, no tensor cores): one warp per
// (token, head), full causal range, final output. Used for f32 KV (testing) and head dims without a
// tensor-core build.
void launch_generic(const AttentionWork& work, cudaStream_t stream);

// Prefill / decode: one per-sequence pass, split over the KV when the plan says so, then merged.
void run_paged_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                         const void* q, void* out, float* lse);

}  // namespace pagedkv::kernels::cuda
