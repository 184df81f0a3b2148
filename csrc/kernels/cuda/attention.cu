// Paged attention, host side: the plan (tile height, split-KV chunking), the launches, the generic
// (non-tensor-core) kernel, and the per-sequence pass shared by decode and prefill.
#include <algorithm>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/attention_tile.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/merge_states.cuh"
#include "kernels/cuda/runtime.cuh"
#include "kernels/kernels.h"

namespace pagedkv::kernels::cuda {

namespace {

constexpr int kGenericMaxDimPerLane = 8;  // the generic kernel serves head_dim <= 32 * 8
constexpr int64_t kMinAutoChunk = 256;    // auto split never cuts the KV finer than this
constexpr int64_t kMaxChunks = 1024;      // nor into more chunks than this
constexpr float kLog2e = 1.4426950408889634f;

// One warp per (query token, query head): walks the row's visible positions [0, p] one at a time,
// lanes striding over the head dim. Slow and simple; fp32 throughout. Quantized KV is read value by
// value (quant_value); FP8's per-run scales are folded into the score (K) and the weight p (V). With
// the Hadamard rotation, lane i holds dim i of each group of 32: q is rotated across the warp on the
// way in and the output on the way out.
__global__ void __launch_bounds__(128) paged_attention_generic_kernel(const AttentionWork w) {
    const int lane = threadIdx.x & 31;
    const int64_t row = int64_t(blockIdx.x) * 4 + (threadIdx.x >> 5);
    if (row >= int64_t(w.num_qo_tokens) * w.num_qo_heads) return;
    const int32_t token = int32_t(row / w.num_qo_heads);
    const int32_t head = int32_t(row % w.num_qo_heads);
    const int32_t kv_head = head / w.group_size;
    const int32_t s = sequence_of_token(w.qo_indptr, w.num_seqs, token);
    const int32_t first = w.qo_indptr[s];
    const int32_t last = w.kv_len[s] - (w.qo_indptr[s + 1] - first) + (token - first);
    const int32_t* pages = w.kv_page_indices + w.kv_indptr[s];
    const int32_t D = w.head_dim;
    const bool quantized = is_quantized_dtype(w.kv_dtype), fp8 = w.kv_dtype == PAGEDKV_DTYPE_FP8_E4M3;

    float q[kGenericMaxDimPerLane], o[kGenericMaxDimPerLane];
#pragma unroll
    for (int i = 0; i < kGenericMaxDimPerLane; ++i) {
        int32_t dim = lane + 32 * i;
        q[i] = dim < D ? load_float(w.q, row * D + dim, w.q_dtype) * w.sm_scale_log2 : 0.0f;
        if (w.hadamard && 32 * i < D) q[i] = hadamard32_lanes(q[i], lane);  // D % 32 == 0: whole warp
        o[i] = 0.0f;
    }
    float m = -INFINITY, sum = 0.0f;
    for (int32_t pos = 0; pos <= last; ++pos) {
        int32_t page_slot = pos / w.page_size, in_page = pos - page_slot * w.page_size;
        int64_t k_at = 0;
        const uint8_t *k_run = nullptr, *v_run = nullptr;
        float k_scale = 1.0f, v_scale = 1.0f;
        if (quantized) {
            k_run = w.quant.run(w.pool, pages[page_slot], 0, kv_head);
            v_run = w.quant.run(w.pool, pages[page_slot], 1, kv_head);
            if (fp8) k_scale = fp8_run_scale(k_run, w.quant, 0), v_scale = fp8_run_scale(v_run, w.quant, 1);
        } else {
            k_at = int64_t(pages[page_slot]) * w.page_stride + int64_t(w.layer) * 2 * w.slab_stride +
                   (int64_t(kv_head) * w.page_size + in_page) * D;
        }
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < kGenericMaxDimPerLane; ++i) {
            int32_t dim = lane + 32 * i;
            if (dim < D)
                dot += q[i] * (quantized ? quant_value(k_run, w.quant, w.kv_dtype, 0, in_page, dim)
                                         : load_float(w.pool, k_at + dim, w.kv_dtype));
        }
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
        dot *= k_scale;
        float m_new = fmaxf(m, dot);
        float alpha = exp2f(m - m_new), p = exp2f(dot - m_new);
        sum = sum * alpha + p;
        const float weight = p * v_scale;
#pragma unroll
        for (int i = 0; i < kGenericMaxDimPerLane; ++i) {
            int32_t dim = lane + 32 * i;
            if (dim < D)
                o[i] = o[i] * alpha + weight * (quantized ? quant_value(v_run, w.quant, w.kv_dtype, 1, in_page, dim)
                                                          : load_float(w.pool, k_at + w.slab_stride + dim, w.kv_dtype));
        }
        m = m_new;
    }
    const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
    for (int i = 0; i < kGenericMaxDimPerLane; ++i) {
        int32_t dim = lane + 32 * i;
        float value = o[i] * inverse;
        if (w.hadamard && 32 * i < D) value = hadamard32_lanes(value, lane);
        if (dim < D) store_float(w.out, row * D + dim, w.out_dtype, value);
    }
    if (lane == 0 && w.lse != nullptr) w.lse[row] = sum > 0.0f ? (m + log2f(sum)) * kLn2 : -INFINITY;
}

struct TileKernel {
    const void* function;
    size_t smem;
};

template <class T, int D, int FORMAT>
TileKernel tile_kernel_of_height(int32_t warps_m) {
    switch (warps_m) {
        case 1: return {reinterpret_cast<const void*>(&paged_attention_tile_kernel<T, D, 1, FORMAT>), tile_smem_bytes<D, 1>()};
        case 2: return {reinterpret_cast<const void*>(&paged_attention_tile_kernel<T, D, 2, FORMAT>), tile_smem_bytes<D, 2>()};
        default: return {reinterpret_cast<const void*>(&paged_attention_tile_kernel<T, D, 4, FORMAT>), tile_smem_bytes<D, 4>()};
    }
}

// Quantized formats run the fp16 kernel with their tile loader (FORMAT = the KV dtype).
template <int D>
TileKernel quantized_tile_kernel(int32_t kv_dtype, int32_t warps_m) {
    switch (kv_dtype) {
        case PAGEDKV_DTYPE_FP8_E4M3: return tile_kernel_of_height<__half, D, PAGEDKV_DTYPE_FP8_E4M3>(warps_m);
        case PAGEDKV_DTYPE_Q8: return tile_kernel_of_height<__half, D, PAGEDKV_DTYPE_Q8>(warps_m);
        case PAGEDKV_DTYPE_Q6: return tile_kernel_of_height<__half, D, PAGEDKV_DTYPE_Q6>(warps_m);
        default: return tile_kernel_of_height<__half, D, PAGEDKV_DTYPE_Q4>(warps_m);
    }
}

TileKernel select_tile_kernel(int32_t kv_dtype, int32_t head_dim, int32_t warps_m) {
    if (is_quantized_dtype(kv_dtype)) {
        PAGEDKV_REQUIRE(is_tensor_core_head_dim(head_dim), PAGEDKV_ERR_INTERNAL,
                        "quantized tensor-core attention for head_dim ", head_dim);
        return head_dim == 64 ? quantized_tile_kernel<64>(kv_dtype, warps_m) : quantized_tile_kernel<128>(kv_dtype, warps_m);
    }
    TileKernel selected{};
    dispatch_tensor_core(kv_dtype, head_dim, [&](auto type_tag, auto dim_tag) {
        using T = typename decltype(type_tag)::type;
        constexpr int D = decltype(dim_tag)::value;
        selected = tile_kernel_of_height<T, D, 0>(warps_m);
    });
    return selected;
}

void require_aligned(const void* pointer, int64_t alignment, const char* name, const char* access) {
    const uint64_t address = uint64_t(reinterpret_cast<uintptr_t>(pointer));
    const uint64_t past = address % uint64_t(alignment);
    PAGEDKV_REQUIRE(past == 0, PAGEDKV_ERR_INVALID_ARGUMENT, "CUDA attention needs ", name, " aligned to ", alignment,
                    " bytes (", access, "); ", name, " = ", pointer, " is ", past, " bytes past such a boundary");
}

}  // namespace

void check_attention_pointers(const PagedLayer& cache, const AttentionOptions& options, const void* q,
                              const void* out, const float* lse) {
    if (uses_tensor_cores(cache)) {
        // The tile kernel reads q 8 elements at a time; it, the split-KV merge and cascade write
        // out 4 elements at a time (16 bytes of f32, 8 of f16 / bf16), whichever the plan runs.
        require_aligned(q, 16, "q", "it is read in 16-byte vectors");
        const int32_t out_bytes = element_bytes(options.out_dtype);
        require_aligned(out, 4 * out_bytes, "out",
                        out_bytes == 4 ? "it is written in 16-byte vectors" : "it is written in 8-byte vectors");
    } else {
        require_aligned(q, element_bytes(options.q_dtype), "q", "it is read element by element");
        require_aligned(out, element_bytes(options.out_dtype), "out", "it is written element by element");
    }
    if (lse != nullptr) require_aligned(lse, 4, "lse", "float32");
}

AttentionWork make_attention_work(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                                  const void* q, void* out, float* lse) {
    PAGEDKV_REQUIRE(batch.num_qo_tokens <= INT32_MAX, PAGEDKV_ERR_UNSUPPORTED, "too many query tokens for CUDA: ",
                    batch.num_qo_tokens);
    PAGEDKV_REQUIRE(options.num_qo_heads % cache.num_kv_heads == 0, PAGEDKV_ERR_INVALID_ARGUMENT, "num_qo_heads ",
                    options.num_qo_heads, " is not a multiple of num_kv_heads ", cache.num_kv_heads);
    AttentionWork w{};
    w.pool = cache.pool_base;
    w.page_stride = cache.page_stride;
    w.slab_stride = cache.slab_stride;
    w.layer = cache.layer;
    w.page_size = cache.page_size;
    w.num_kv_heads = cache.num_kv_heads;
    w.head_dim = cache.head_dim;
    w.kv_dtype = cache.kv_dtype;
    if (is_quantized_dtype(cache.kv_dtype)) w.quant = quant_layout(cache);
    w.hadamard = cache.hadamard ? 1 : 0;
    w.kv_indptr = batch.kv_indptr;
    w.kv_page_indices = batch.kv_page_indices;
    w.kv_len = batch.kv_len;
    w.qo_indptr = batch.qo_indptr;
    w.num_seqs = batch.num_seqs;
    w.num_qo_tokens = int32_t(batch.num_qo_tokens);
    w.q = q;
    w.q_dtype = options.q_dtype;
    w.num_qo_heads = options.num_qo_heads;
    w.group_size = options.num_qo_heads / cache.num_kv_heads;
    w.sm_scale_log2 = options.sm_scale * kLog2e;
    w.out = out;
    w.out_dtype = options.out_dtype;
    w.lse = lse;
    w.num_slots = 1;
    w.kv_chunk = 1;
    w.num_chunks = 1;
    w.num_row_sets = batch.num_seqs;
    w.num_q_tiles = 1;
    return w;
}

bool uses_tensor_cores(const PagedLayer& cache) {
    return (is_tensor_core_dtype(cache.kv_dtype) || is_quantized_dtype(cache.kv_dtype)) &&
           is_tensor_core_head_dim(cache.head_dim);
}

TilePlan plan_tiles(const AttentionWork& work, int64_t max_rows, int32_t row_sets, int64_t max_kv,
                    int32_t kv_split_size, int device) {
    TilePlan plan;
    plan.warps_m = max_rows <= 16 ? 1 : (max_rows <= 32 ? 2 : 4);
    TileKernel kernel = select_tile_kernel(work.kv_dtype, work.head_dim, plan.warps_m);
    const int per_sm = prepare_kernel(kernel.function, kTileThreads, kernel.smem, device);
    const int64_t q_tiles = ceil_div(std::max<int64_t>(max_rows, 1), 16 * plan.warps_m);
    PAGEDKV_REQUIRE(q_tiles <= INT32_MAX, PAGEDKV_ERR_UNSUPPORTED, "too many query rows: ", max_rows);
    plan.num_q_tiles = int32_t(q_tiles);
    const int64_t base_blocks = int64_t(row_sets) * q_tiles * work.num_kv_heads;
    const int64_t extent = std::max<int64_t>(max_kv, 1);

    int64_t chunk = extent;
    if (kv_split_size > 0) {
        chunk = kv_split_size;
    } else if (kv_split_size == 0) {
        // Split only when the unsplit blocks (row sets x KV heads x row tiles) leave resident-block
        // slots of the chip empty; then cut the KV until there are blocks for two full waves, so
        // that memory-bound decode keeps every SM streaming. A batch that fills the chip by itself
        // runs unsplit: no partial states, no merge.
        const int64_t wave = int64_t(device_info(device).sm_count) * per_sm;
        if (base_blocks < wave) {
            const int64_t target = 2 * wave;
            int64_t splits = std::min(ceil_div(target, std::max<int64_t>(base_blocks, 1)), ceil_div(extent, kMinAutoChunk));
            if (splits > 1) chunk = ceil_div(ceil_div(extent, splits), kTileKv) * kTileKv;
        }
    }
    chunk = std::max(chunk, ceil_div(extent, kMaxChunks));
    chunk = std::min(chunk, extent);
    plan.kv_chunk = int32_t(chunk);
    plan.num_chunks = int32_t(ceil_div(extent, chunk));
    plan.blocks = base_blocks * plan.num_chunks;
    PAGEDKV_REQUIRE(plan.blocks <= INT32_MAX, PAGEDKV_ERR_UNSUPPORTED, "attention grid too large: ", plan.blocks,
                    " blocks");
    return plan;
}

void launch_tiles(AttentionWork work, const TilePlan& plan, cudaStream_t stream) {
    if (plan.blocks == 0) return;
    work.kv_chunk = plan.kv_chunk;
    work.num_chunks = plan.num_chunks;
    work.num_q_tiles = plan.num_q_tiles;
    TileKernel kernel = select_tile_kernel(work.kv_dtype, work.head_dim, plan.warps_m);
    void* args[] = {&work};
    PAGEDKV_CUDA_CHECK(cudaLaunchKernel(kernel.function, dim3(unsigned(plan.blocks)), dim3(kTileThreads), args,
                                        kernel.smem, stream));
}

void launch_generic(const AttentionWork& work, cudaStream_t stream) {
    PAGEDKV_REQUIRE(work.head_dim <= 32 * kGenericMaxDimPerLane, PAGEDKV_ERR_UNSUPPORTED,
                    "CUDA attention supports head_dim <= ", 32 * kGenericMaxDimPerLane, ", got ", work.head_dim);
    const int64_t rows = int64_t(work.num_qo_tokens) * work.num_qo_heads;
    if (rows == 0) return;
    const int64_t blocks = ceil_div(rows, 4);
    PAGEDKV_REQUIRE(blocks <= INT32_MAX, PAGEDKV_ERR_UNSUPPORTED, "too many attention rows: ", rows);
    paged_attention_generic_kernel<<<unsigned(blocks), 128, 0, stream>>>(work);
    PAGEDKV_CUDA_CHECK_LAUNCH("paged_attention_generic_kernel");
}

void run_paged_attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options,
                         const void* q, void* out, float* lse) {
    check_attention_pointers(cache, options, q, out, lse);
    if (batch.num_seqs == 0 || batch.num_qo_tokens == 0) return;
    DeviceGuard guard(cache.pool_base);
    cudaStream_t stream = as_stream(options.cuda_stream);
    AttentionWork work = make_attention_work(cache, batch, options, q, out, lse);
    if (!uses_tensor_cores(cache)) {
        launch_generic(work, stream);
        return;
    }
    const TilePlan plan = plan_tiles(work, batch.max_qo_len * work.group_size, batch.num_seqs, batch.max_kv_len,
                                     options.kv_split_size, guard.device());
    if (plan.num_chunks == 1) {
        launch_tiles(work, plan, stream);
        return;
    }
    // Split KV: every chunk writes a partial state per row; one merge makes the output.
    const int64_t rows = batch.num_qo_tokens * options.num_qo_heads;
    const int64_t states = rows * plan.num_chunks;
    StreamScratch scratch(size_t(states) * (cache.head_dim + 1) * sizeof(float), stream, guard.device());
    work.partial_v = static_cast<float*>(scratch.get());
    work.partial_lse = work.partial_v + states * cache.head_dim;
    work.num_slots = plan.num_chunks;
    work.slot_base = 0;
    launch_tiles(work, plan, stream);
    merge_partial_states(work.partial_v, work.partial_lse, work.num_slots, rows, cache.head_dim, out,
                         options.out_dtype, lse, stream);
}

}  // namespace pagedkv::kernels::cuda
