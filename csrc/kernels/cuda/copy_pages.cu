// Copies whole pages (every layer, K and V) inside the pool. The page lists are host arrays: they
// travel as kernel parameters (1024 pairs per launch, no upload, capturable in a CUDA graph), and
// each block column copies its page with 16-byte loads and stores. Quantized pages' partial copies
// (copy_quant_run_prefixes) take, per run, only the first positions' codes and scales and the tail.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/copy_pages.cuh"
#include "kernels/cuda/runtime.cuh"
#include "kernels/kernels.h"

namespace pagedkv::kernels::cuda {

namespace {

constexpr int kPagesPerLaunch = 1024;
constexpr int kThreads = 256;

struct PagePairs {
    int32_t src[kPagesPerLaunch];
    int32_t dst[kPagesPerLaunch];
    int32_t count;
};

// blockIdx.y strides over the pairs, blockIdx.x / threads over the 16-byte words of a page.
__global__ void __launch_bounds__(kThreads)
    copy_pages_kernel(uint4* __restrict__ pool, int64_t words_per_page, const __grid_constant__ PagePairs pairs) {
    for (int32_t p = blockIdx.y; p < pairs.count; p += gridDim.y) {
        const uint4* from = pool + int64_t(pairs.src[p]) * words_per_page;
        uint4* to = pool + int64_t(pairs.dst[p]) * words_per_page;
        for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < words_per_page;
             i += int64_t(gridDim.x) * kThreads)
            to[i] = from[i];
    }
}

// blockIdx.y strides over the pairs, blockIdx.x over the (layer, head) runs of K (kv 0) and V (kv 1);
// a block copies the three ranges of its run byte by byte (a partial page: small and rare).
__global__ void __launch_bounds__(kThreads)
    copy_quant_runs_kernel(unsigned char* __restrict__ pool, const device::PageGeometry::QuantRuns q, int64_t page_bytes,
                           int64_t layer_heads, int32_t tokens, const __grid_constant__ PagePairs pairs) {
    for (int32_t p = blockIdx.y; p < pairs.count; p += gridDim.y) {
        const unsigned char* from = pool + int64_t(pairs.src[p]) * page_bytes;
        unsigned char* to = pool + int64_t(pairs.dst[p]) * page_bytes;
        for (int64_t index = blockIdx.x; index < 2 * layer_heads; index += gridDim.x) {
            const int32_t kv = int32_t(index % 2);
            const int64_t layer = index / 2 / q.heads, head = index / 2 % q.heads;
            const int64_t at =
                layer * q.heads * (q.run_bytes[0] + q.run_bytes[1]) + (kv ? q.heads * q.run_bytes[0] : 0) + head * q.run_bytes[kv];
            const int64_t codes = int64_t(tokens) * q.code_bytes[kv], scales = int64_t(tokens) * q.scale_bytes;
            for (int64_t i = threadIdx.x; i < codes + scales + q.tail_bytes; i += kThreads) {
                const int64_t offset = i < codes ? i : (i < codes + scales ? q.scales_at[kv] + (i - codes)
                                                                             : q.tail_at[kv] + (i - codes - scales));
                to[at + offset] = from[at + offset];
            }
        }
    }
}

}  // namespace

void copy_quant_run_prefixes(const device::PageGeometry& g, const int32_t* src, const int32_t* dst, int32_t count,
                             int32_t tokens, cudaStream_t stream) {
    if (count <= 0 || tokens <= 0) return;
    const unsigned columns = unsigned(std::clamp<int64_t>(2 * g.rows, 1, 4096));
    for (int32_t first = 0; first < count; first += kPagesPerLaunch) {
        PagePairs pairs;
        pairs.count = 0;
        for (int32_t i = first; i < std::min(count, first + kPagesPerLaunch); ++i) {
            if (src[i] == dst[i]) continue;
            pairs.src[pairs.count] = src[i];
            pairs.dst[pairs.count++] = dst[i];
        }
        if (pairs.count == 0) continue;
        copy_quant_runs_kernel<<<dim3(columns, unsigned(pairs.count)), kThreads, 0, stream>>>(
            static_cast<unsigned char*>(g.pool_base), g.quant, g.page_bytes, g.rows, tokens, pairs);
        PAGEDKV_CUDA_CHECK_LAUNCH("copy_quant_runs_kernel");
    }
}

void copy_pages(void* pool_base, int64_t page_bytes, const int32_t* src_pages, const int32_t* dst_pages,
                int32_t num_pages, void* stream) {
    if (num_pages <= 0 || page_bytes <= 0) return;
    DeviceGuard guard(pool_base);
    cudaStream_t s = as_stream(stream);
    const bool vectorized = page_bytes % 16 == 0 && (reinterpret_cast<uintptr_t>(pool_base) & 15u) == 0;
    if (!vectorized) {
        char* pool = static_cast<char*>(pool_base);
        for (int32_t i = 0; i < num_pages; ++i) {
            PAGEDKV_CUDA_CHECK(cudaMemcpyAsync(pool + int64_t(dst_pages[i]) * page_bytes,
                                               pool + int64_t(src_pages[i]) * page_bytes, size_t(page_bytes),
                                               cudaMemcpyDeviceToDevice, s));
        }
        return;
    }
    const int64_t words = page_bytes / 16;
    const unsigned columns = unsigned(std::clamp<int64_t>(ceil_div(words, int64_t(kThreads) * 4), 1, 64));
    for (int32_t first = 0; first < num_pages; first += kPagesPerLaunch) {
        PagePairs pairs;
        pairs.count = std::min(kPagesPerLaunch, num_pages - first);
        std::copy_n(src_pages + first, pairs.count, pairs.src);
        std::copy_n(dst_pages + first, pairs.count, pairs.dst);
        copy_pages_kernel<<<dim3(columns, unsigned(pairs.count)), kThreads, 0, s>>>(static_cast<uint4*>(pool_base),
                                                                                   words, pairs);
        PAGEDKV_CUDA_CHECK_LAUNCH("copy_pages_kernel");
    }
}

}  // namespace pagedkv::kernels::cuda
