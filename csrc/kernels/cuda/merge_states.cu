// Merging partial attention states on the device: two states (pagedkv_merge_states) and the N
// partial states of split-KV / cascade attention. Both go through merge_weights().
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/merge_states.cuh"
#include "kernels/cuda/runtime.cuh"
#include "kernels/kernels.h"

namespace pagedkv::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per VEC consecutive floats of one row; grid-stride over rows * head_dim / VEC.
template <int VEC>
__global__ void __launch_bounds__(kThreads)
    merge_two_states_kernel(const float* __restrict__ a, const float* __restrict__ lse_a, const float* __restrict__ b,
                            const float* __restrict__ lse_b, int64_t rows, int32_t head_dim, float* __restrict__ out,
                            float* __restrict__ out_lse) {
    const int32_t vecs_per_row = head_dim / VEC;
    const int64_t total = rows * vecs_per_row;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t row = i / vecs_per_row;
        int32_t column = int32_t(i - row * vecs_per_row);
        MergeWeights w = merge_weights(lse_a[row], lse_b[row]);
        int64_t at = row * head_dim + int64_t(column) * VEC;
        float merged[VEC];
#pragma unroll
        for (int k = 0; k < VEC; ++k) merged[k] = 0.0f;
        if constexpr (VEC == 4) {
            if (w.scale_a != 0.0f) {
                float4 v = *reinterpret_cast<const float4*>(a + at);
                merged[0] += w.scale_a * v.x, merged[1] += w.scale_a * v.y;
                merged[2] += w.scale_a * v.z, merged[3] += w.scale_a * v.w;
            }
            if (w.scale_b != 0.0f) {
                float4 v = *reinterpret_cast<const float4*>(b + at);
                merged[0] += w.scale_b * v.x, merged[1] += w.scale_b * v.y;
                merged[2] += w.scale_b * v.z, merged[3] += w.scale_b * v.w;
            }
            *reinterpret_cast<float4*>(out + at) = make_float4(merged[0], merged[1], merged[2], merged[3]);
        } else {
            if (w.scale_a != 0.0f) merged[0] += w.scale_a * a[at];
            if (w.scale_b != 0.0f) merged[0] += w.scale_b * b[at];
            out[at] = merged[0];
        }
        if (column == 0 && out_lse != nullptr) out_lse[row] = w.lse;
    }
}

// D/4 threads per row, each owning 4 floats; walks the row's slots in order, folding each into the
// running state.
template <int D>
__global__ void __launch_bounds__(128)
    merge_partials_kernel(const float* __restrict__ partial_v, const float* __restrict__ partial_lse,
                          int32_t num_slots, int64_t rows, void* __restrict__ out, int32_t out_dtype,
                          float* __restrict__ out_lse) {
    constexpr int kLanes = D / 4;
    constexpr int kRowsPerBlock = 128 / kLanes;
    const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kLanes;
    const int column = threadIdx.x % kLanes;
    if (row >= rows) return;
    const float* lse_row = partial_lse + row * num_slots;
    const float* v_row = partial_v + row * num_slots * D + column * 4;
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float lse = -INFINITY;
    for (int32_t slot = 0; slot < num_slots; ++slot) {
        MergeWeights w = merge_weights(lse, lse_row[slot]);
        acc.x *= w.scale_a, acc.y *= w.scale_a, acc.z *= w.scale_a, acc.w *= w.scale_a;
        if (w.scale_b != 0.0f) {
            float4 v = *reinterpret_cast<const float4*>(v_row + int64_t(slot) * D);
            acc.x += w.scale_b * v.x, acc.y += w.scale_b * v.y, acc.z += w.scale_b * v.z, acc.w += w.scale_b * v.w;
        }
        lse = w.lse;
    }
    store4(out, row * D + column * 4, out_dtype, acc);
    if (out_lse != nullptr && column == 0) out_lse[row] = lse;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

void merge_partial_states(const float* partial_v, const float* partial_lse, int32_t num_slots, int64_t rows,
                          int32_t head_dim, void* out, int32_t out_dtype, float* out_lse, cudaStream_t stream) {
    if (rows == 0) return;
    auto launch = [&](auto dim_tag) {
        constexpr int D = decltype(dim_tag)::value;
        constexpr int kRowsPerBlock = 128 / (D / 4);
        int64_t blocks = ceil_div(rows, kRowsPerBlock);
        PAGEDKV_REQUIRE(blocks <= INT32_MAX, PAGEDKV_ERR_UNSUPPORTED, "too many rows to merge: ", rows);
        merge_partials_kernel<D><<<unsigned(blocks), 128, 0, stream>>>(partial_v, partial_lse, num_slots, rows, out,
                                                                       out_dtype, out_lse);
    };
    if (head_dim == 64) {
        launch(IntTag<64>{});
    } else if (head_dim == 128) {
        launch(IntTag<128>{});
    } else {
        fail(PAGEDKV_ERR_INTERNAL, "merge_partial_states: head_dim ", head_dim);
    }
    PAGEDKV_CUDA_CHECK_LAUNCH("merge_partials_kernel");
}

void merge_states(const float* a, const float* lse_a, const float* b, const float* lse_b, int64_t n,
                  int32_t num_heads, int32_t head_dim, float* out, float* out_lse, void* stream) {
    for (const void* pointer : {static_cast<const void*>(a), static_cast<const void*>(lse_a),
                                static_cast<const void*>(b), static_cast<const void*>(lse_b),
                                static_cast<const void*>(out), static_cast<const void*>(out_lse)})
        PAGEDKV_REQUIRE(reinterpret_cast<uintptr_t>(pointer) % 4 == 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "CUDA merge_states needs float32 tensors aligned to 4 bytes; ", pointer, " is not");
    const int64_t rows = n * num_heads;
    if (rows <= 0 || head_dim <= 0) return;
    DeviceGuard guard(out);
    const bool vectorized = head_dim % 4 == 0 && aligned16(a) && aligned16(b) && aligned16(out);
    const int64_t work = rows * (vectorized ? head_dim / 4 : head_dim);
    const int64_t max_blocks = int64_t(device_info(guard.device()).sm_count) * 16;
    const unsigned blocks = unsigned(std::max<int64_t>(1, std::min(ceil_div(work, kThreads), max_blocks)));
    if (vectorized) {
        merge_two_states_kernel<4>
            <<<blocks, kThreads, 0, as_stream(stream)>>>(a, lse_a, b, lse_b, rows, head_dim, out, out_lse);
    } else {
        merge_two_states_kernel<1>
            <<<blocks, kThreads, 0, as_stream(stream)>>>(a, lse_a, b, lse_b, rows, head_dim, out, out_lse);
    }
    PAGEDKV_CUDA_CHECK_LAUNCH("merge_two_states_kernel");
}

}  // namespace pagedkv::kernels::cuda
