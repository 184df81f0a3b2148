// Copies whole pages (every layer, K and V) inside the pool. The page lists are host arrays: they
// travel as kernel parameters (1024 pairs per launch, no upload, capturable in a CUDA graph), and
// each block column copies its page with 16-byte loads and stores.
#include <algorithm>

#include "kernels/cuda/common.cuh"
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

}  // namespace

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
