// Writes K and V of the batch's query tokens into their slots: slot -> (page, offset in page), one
// thread per 8 elements of one (token, head) row, 16-byte loads and stores, conversion from f32 to
// the KV dtype rounding to nearest even; same-dtype rows are copied bit for bit. Quantized formats:
// one warp per 32 dims of a (token, head, K|V) row, lane i holding dim i of the group (rotated by
// a warp butterfly, scaled by the group's max through a warp reduction), codes as the CPU writes them.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/quant.cuh"
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

// ---- quantized formats -------------------------------------------------------------------------------

// FP8 scales travel as kernel parameters (capturable, no upload): at most this many heads a launch.
constexpr int32_t kFp8HeadsPerLaunch = 64;

struct QuantWriteArgs {
    void* pool;
    QuantLayout q;
    int32_t page_size;
    int32_t num_kv_heads;
    int32_t head_dim;
    int32_t kv_dtype;
    int32_t hadamard;
    const int64_t* slots;
    int64_t num_tokens;
    const float* k;
    const float* v;
    int32_t head_begin;  // this launch's heads [head_begin, head_begin + head_count)
    int32_t head_count;
    float fp8_scales[2][kFp8HeadsPerLaunch];  // FP8: [K|V][head - head_begin]
};

// Grid-stride over warps; a warp takes the 32-dim chunk `chunk` of one (token, head, K|V) row.
__global__ void __launch_bounds__(256) write_kv_quant_kernel(const __grid_constant__ QuantWriteArgs a) {
    const int lane = threadIdx.x & 31;
    const int32_t chunks = (a.head_dim + kQuantGroup - 1) / kQuantGroup;
    const int64_t total = a.num_tokens * a.head_count * 2 * chunks;
    const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
    for (int64_t w = int64_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5); w < total; w += warps) {
        int64_t rest = w;
        const int32_t chunk = int32_t(rest % chunks);
        rest /= chunks;
        const int32_t kv = int32_t(rest % 2);
        rest /= 2;
        const int32_t local_head = int32_t(rest % a.head_count);
        const int64_t token = rest / a.head_count;
        const int32_t head = a.head_begin + local_head;
        const int64_t slot = a.slots[token];
        if (slot < 0) continue;  // padding token (uniform across the warp)
        const int32_t page = int32_t(slot / a.page_size), in_page = int32_t(slot - int64_t(page) * a.page_size);
        const int32_t d = chunk * kQuantGroup + lane;
        const bool valid = d < a.head_dim;
        const float* src = (kv == 0 ? a.k : a.v) + (token * a.num_kv_heads + head) * a.head_dim;
        float x = valid ? src[d] : 0.0f;
        uint8_t* run = static_cast<uint8_t*>(a.pool) + a.q.run_at(page, kv, head);
        uint8_t* codes = run + int64_t(in_page) * a.q.code_bytes[kv];
        if (a.kv_dtype == PAGEDKV_DTYPE_FP8_E4M3) {
            const float scale = a.fp8_scales[kv][local_head];
            if (valid) codes[d] = float_to_e4m3(__fmul_rn(x, __fdiv_rn(1.0f, scale)));
            // The tail is written with the run's first token only (copies of a page's first
            // positions read it while the owner writes later ones; the layer's scale never changes).
            if (in_page == 0 && chunk == 0 && lane < 4) {
                uint32_t* tail = reinterpret_cast<uint32_t*>(run + a.q.tail_at[kv]);
                tail[lane] = lane == 0 ? __float_as_uint(scale) : 0u;
            }
            continue;
        }
        if (a.hadamard) x = hadamard32_lanes(x, lane);
        float amax = fabsf(x);
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
        const int32_t bits = a.q.bits[kv], qmax = bits == 8 ? 127 : 7;
        const uint16_t scale_bits = group_scale_half_bits(amax, qmax);
        const int32_t code = group_code(x, half_bits_to_float(scale_bits), qmax);
        if (bits == 8) {
            codes[d] = uint8_t(int8_t(code));
        } else {
            const int32_t upper = __shfl_down_sync(0xffffffffu, code, kQuantGroup / 2);
            if (lane < kQuantGroup / 2)
                codes[chunk * (kQuantGroup / 2) + lane] = uint8_t((code + 8) | ((upper + 8) << 4));
        }
        if (lane == 0)
            reinterpret_cast<uint16_t*>(run + a.q.scales_at[kv])[int64_t(in_page) * a.q.groups + chunk] = scale_bits;
    }
}

void write_kv_quantized(const PagedLayer& cache, const BatchArrays& batch, const float* k, const float* v,
                        cudaStream_t stream, int device) {
    QuantWriteArgs a{};
    a.pool = cache.pool_base;
    a.q = quant_layout(cache);
    a.page_size = cache.page_size;
    a.num_kv_heads = cache.num_kv_heads;
    a.head_dim = cache.head_dim;
    a.kv_dtype = cache.kv_dtype;
    a.hadamard = cache.hadamard ? 1 : 0;
    a.slots = batch.slot_mapping;
    a.num_tokens = batch.num_qo_tokens;
    a.k = k;
    a.v = v;
    const bool fp8 = cache.kv_dtype == PAGEDKV_DTYPE_FP8_E4M3;
    PAGEDKV_REQUIRE(!fp8 || cache.kv_scales != nullptr, PAGEDKV_ERR_INTERNAL, "fp8 write_kv without the layer's scales");
    const int32_t step = fp8 ? kFp8HeadsPerLaunch : cache.num_kv_heads;
    for (int32_t first = 0; first < cache.num_kv_heads; first += step) {
        a.head_begin = first;
        a.head_count = std::min(step, cache.num_kv_heads - first);
        if (fp8)
            for (int32_t kv = 0; kv < 2; ++kv)
                for (int32_t h = 0; h < a.head_count; ++h)
                    a.fp8_scales[kv][h] = cache.kv_scales[kv * cache.num_kv_heads + first + h];
        const int64_t warps = a.num_tokens * a.head_count * 2 * ceil_div(cache.head_dim, kQuantGroup);
        const int64_t max_blocks = int64_t(device_info(device).sm_count) * 16;
        const unsigned blocks = unsigned(std::max<int64_t>(1, std::min(ceil_div(warps, 8), max_blocks)));
        write_kv_quant_kernel<<<blocks, 256, 0, stream>>>(a);
        PAGEDKV_CUDA_CHECK_LAUNCH("write_kv_quant_kernel");
    }
}

// max |x| over the finite values of k and v [tokens, heads, head_dim], per (K|V, head), as float
// bits (non-negative floats order as their bits), into amax [2][heads] (zeroed by the caller).
__global__ void __launch_bounds__(256) kv_abs_max_kernel(const float* k, const float* v, int64_t tokens, int32_t heads,
                                                         int32_t head_dim, unsigned int* amax) {
    const int64_t per_kv = tokens * heads * head_dim;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < 2 * per_kv;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int32_t kv = i >= per_kv;
        const int64_t j = i - kv * per_kv;
        const int32_t head = int32_t((j / head_dim) % heads);
        const float a = fabsf((kv ? v : k)[j]);
        if (isfinite(a) && a > 0.0f) atomicMax(amax + kv * heads + head, __float_as_uint(a));
    }
}

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
    if (is_quantized_dtype(cache.kv_dtype)) {  // from f32 only (checked by the C API)
        write_kv_quantized(cache, batch, static_cast<const float*>(k), static_cast<const float*>(v), as_stream(stream),
                           guard.device());
        return;
    }
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

void kv_abs_max(const PagedLayer& cache, const BatchArrays& batch, const void* k, const void* v, float* amax,
                void* stream) {
    const int32_t heads = cache.num_kv_heads;
    for (int32_t i = 0; i < 2 * heads; ++i) amax[i] = 0.0f;
    if (batch.num_qo_tokens == 0) return;
    DeviceGuard guard(cache.pool_base);
    cudaStream_t s = as_stream(stream);
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    PAGEDKV_CUDA_CHECK(cudaStreamIsCapturing(s, &capture));
    PAGEDKV_REQUIRE(capture == cudaStreamCaptureStatusNone, PAGEDKV_ERR_UNSUPPORTED,
                    "the fp8 scales of layer ", cache.layer, " are estimated by its first write_kv, which waits for "
                    "the device and so cannot be captured into a CUDA graph: set them with "
                    "pagedkv_cache_set_kv_scales, or write the layer once, before the capture");
    StreamScratch scratch(size_t(2 * heads) * sizeof(unsigned int), s, guard.device());
    auto* bits = static_cast<unsigned int*>(scratch.get());
    PAGEDKV_CUDA_CHECK(cudaMemsetAsync(bits, 0, size_t(2 * heads) * sizeof(unsigned int), s));
    const int64_t work = 2 * batch.num_qo_tokens * heads * cache.head_dim;
    const int64_t max_blocks = int64_t(device_info(guard.device()).sm_count) * 8;
    const unsigned blocks = unsigned(std::max<int64_t>(1, std::min(ceil_div(work, 256), max_blocks)));
    kv_abs_max_kernel<<<blocks, 256, 0, s>>>(static_cast<const float*>(k), static_cast<const float*>(v),
                                             batch.num_qo_tokens, heads, cache.head_dim, bits);
    PAGEDKV_CUDA_CHECK_LAUNCH("kv_abs_max_kernel");
    std::vector<unsigned int> host(size_t(2 * heads));
    PAGEDKV_CUDA_CHECK(cudaMemcpyAsync(host.data(), bits, host.size() * sizeof(unsigned int), cudaMemcpyDeviceToHost, s));
    PAGEDKV_CUDA_CHECK(cudaStreamSynchronize(s));
    for (int32_t i = 0; i < 2 * heads; ++i) std::memcpy(&amax[i], &host[size_t(i)], sizeof(float));
}

}  // namespace pagedkv::kernels::cuda
