// Writes K and V of the batch's query tokens into their slots: slot -> (page, offset in page), one
// thread per 8 elements of one (token, head) row, 16-byte loads and stores, conversion from f32 to
// the KV dtype rounding to nearest even; same-dtype rows are copied bit for bit.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.cuh"
#include "kernels/kernels.h"

namespace pagedkv::kernels::cuda {

namespace {

struct WriteKvArgs {
    void* pool;
    int64_t page_stride;
    int64_t slab_stride;
    int32_t layer;
    int32_t page_size;
    int32_t num_kv_heads;
    int32_t head_dim;
    int32_t kv_dtype;
    int32_t src_dtype;
    const int64_t* slots;
    int64_t num_tokens;
    const void* k;
    const void* v;
};

// Copies (or converts) the WIDTH elements at src_index of src into dst_index of the pool.
template <int WIDTH>
__device__ __forceinline__ void write_piece(const WriteKvArgs& a, const void* src, int64_t src_index,
                                            int64_t dst_index) {
    if constexpr (WIDTH == 8) {
        if (a.src_dtype == a.kv_dtype) {
            const uint4* from = reinterpret_cast<const uint4*>(static_cast<const char*>(src) +
                                                               src_index * element_bytes(a.kv_dtype));
            uint4* to = reinterpret_cast<uint4*>(static_cast<char*>(a.pool) + dst_index * element_bytes(a.kv_dtype));
            to[0] = from[0];
            if (a.kv_dtype == PAGEDKV_DTYPE_F32) to[1] = from[1];
        } else {
            float values[8];
            load8(src, src_index, a.src_dtype, values);
            store8(a.pool, dst_index, a.kv_dtype, values);
        }
    } else {
        if (a.src_dtype == a.kv_dtype) {
            if (a.kv_dtype == PAGEDKV_DTYPE_F32) {
                static_cast<uint32_t*>(a.pool)[dst_index] = static_cast<const uint32_t*>(src)[src_index];
            } else {
                static_cast<uint16_t*>(a.pool)[dst_index] = static_cast<const uint16_t*>(src)[src_index];
            }
        } else {
            store_float(a.pool, dst_index, a.kv_dtype, load_float(src, src_index, a.src_dtype));
        }
    }
}

// Grid-stride over (token, head, piece of WIDTH elements); K and V of a piece by the same thread.
template <int WIDTH>
__global__ void __launch_bounds__(256) write_kv_kernel(const WriteKvArgs a) {
    const int32_t pieces = a.head_dim / WIDTH;
    const int64_t total = a.num_tokens * a.num_kv_heads * pieces;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t row = i / pieces;  // token * num_kv_heads + head
        const int32_t piece = int32_t(i - row * pieces);
        const int64_t token = row / a.num_kv_heads;
        const int32_t head = int32_t(row - token * a.num_kv_heads);
        const int64_t slot = a.slots[token];
        if (slot < 0) continue;  // padding token: nothing to write
        const int64_t page = slot / a.page_size;
        const int32_t in_page = int32_t(slot - page * a.page_size);
        const int64_t k_at = page * a.page_stride + int64_t(a.layer) * 2 * a.slab_stride +
                             (int64_t(head) * a.page_size + in_page) * a.head_dim + int64_t(piece) * WIDTH;
        const int64_t src_at = row * a.head_dim + int64_t(piece) * WIDTH;
        write_piece<WIDTH>(a, a.k, src_at, k_at);
        write_piece<WIDTH>(a, a.v, src_at, k_at + a.slab_stride);
    }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

void write_kv(const PagedLayer& cache, const BatchArrays& batch, const void* k, const void* v, int32_t src_dtype,
              void* stream) {
    const int32_t src_bytes = element_bytes(src_dtype);
    PAGEDKV_REQUIRE(reinterpret_cast<uintptr_t>(k) % uintptr_t(src_bytes) == 0 &&
                        reinterpret_cast<uintptr_t>(v) % uintptr_t(src_bytes) == 0,
                    PAGEDKV_ERR_INVALID_ARGUMENT, "CUDA write_kv needs k and v aligned to their element size (",
                    src_bytes, " bytes); k = ", k, ", v = ", v);
    if (batch.num_qo_tokens == 0) return;
    DeviceGuard guard(cache.pool_base);
    WriteKvArgs a{cache.pool_base, cache.page_stride, cache.slab_stride, cache.layer,     cache.page_size,
                  cache.num_kv_heads, cache.head_dim, cache.kv_dtype,   src_dtype,       batch.slot_mapping,
                  batch.num_qo_tokens, k,              v};
    const bool vectorized = cache.head_dim % 8 == 0 && aligned16(cache.pool_base) && aligned16(k) && aligned16(v);
    const int64_t work = batch.num_qo_tokens * cache.num_kv_heads * (vectorized ? cache.head_dim / 8 : cache.head_dim);
    const int64_t max_blocks = int64_t(device_info(guard.device()).sm_count) * 32;
    const unsigned blocks = unsigned(std::max<int64_t>(1, std::min(ceil_div(work, 256), max_blocks)));
    if (vectorized) {
        write_kv_kernel<8><<<blocks, 256, 0, as_stream(stream)>>>(a);
    } else {
        write_kv_kernel<1><<<blocks, 256, 0, as_stream(stream)>>>(a);
    }
    PAGEDKV_CUDA_CHECK_LAUNCH("write_kv_kernel");
}

}  // namespace pagedkv::kernels::cuda
