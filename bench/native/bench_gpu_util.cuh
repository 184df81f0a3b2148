// What the GPU benchmarks share: checked CUDA calls, device allocation and upload, a random bf16
// fill, CUDA-event timing (median of trials of back-to-back calls) and batches over a shuffled pool.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels/kernels.h"

namespace kernels = pagedkv::kernels;

namespace bench_gpu {

#define BENCH_CHECK(call)                                                                                    \
    do {                                                                                                     \
        cudaError_t status_ = (call);                                                                        \
        if (status_ != cudaSuccess) {                                                                        \
            std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(status_)); \
            std::exit(1);                                                                                    \
        }                                                                                                    \
    } while (0)

constexpr int kWarmup = 3, kTrials = 7, kCallsPerTrial = 5;

__global__ void fill_random_bf16(uint16_t* data, int64_t n, uint32_t seed) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        uint32_t x = uint32_t(i) * 2654435761u ^ seed ^ uint32_t(i >> 32) * 40503u;
        x ^= x >> 15, x *= 2246822519u, x ^= x >> 13, x *= 3266489917u, x ^= x >> 16;
        float value = (float(x & 0xffffff) / float(0x1000000)) * 2.0f - 1.0f;  // [-1, 1)
        data[i] = __bfloat16_as_ushort(__float2bfloat16_rn(value));
    }
}

inline void fill(void* data, int64_t elements, uint32_t seed) {
    fill_random_bf16<<<1024, 256>>>(static_cast<uint16_t*>(data), elements, seed);
    BENCH_CHECK(cudaGetLastError());
}

inline void* device_alloc(size_t bytes) {
    void* p = nullptr;
    BENCH_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
    return p;
}

template <class T>
T* upload(const std::vector<T>& host) {
    T* p = static_cast<T*>(device_alloc(host.size() * sizeof(T)));
    if (!host.empty()) BENCH_CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    return p;
}

// Milliseconds per call: the median over kTrials of (event time of kCallsPerTrial back-to-back
// calls) / kCallsPerTrial, after kWarmup untimed calls; back-to-back calls keep the GPU busy while
// the host prepares the next launch, as in a serving loop.
template <class Fn>
double time_ms(Fn&& fn) {
    for (int i = 0; i < kWarmup; ++i) fn();
    cudaEvent_t start, stop;
    BENCH_CHECK(cudaEventCreate(&start));
    BENCH_CHECK(cudaEventCreate(&stop));
    std::vector<double> times;
    for (int trial = 0; trial < kTrials; ++trial) {
        BENCH_CHECK(cudaEventRecord(start));
        for (int i = 0; i < kCallsPerTrial; ++i) fn();
        BENCH_CHECK(cudaEventRecord(stop));
        BENCH_CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        BENCH_CHECK(cudaEventElapsedTime(&ms, start, stop));
        times.push_back(double(ms) / kCallsPerTrial);
    }
    BENCH_CHECK(cudaEventDestroy(start));
    BENCH_CHECK(cudaEventDestroy(stop));
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

// A batch over a pool of pages of page_size positions: sequence i has kv_lens[i] positions (the last qo_lens[i] are queries);
// the first `shared_pages` pages are common to all, the rest taken in order from a shuffled list.
struct DeviceBatch {
    kernels::BatchArrays arrays{};
    std::vector<void*> owned;
    int64_t kv_positions = 0;  // sum of kv_len: KV positions a plain kernel must read
    ~DeviceBatch() {
        for (void* p : owned) cudaFree(p);
    }
};

inline DeviceBatch* make_batch(const std::vector<int32_t>& kv_lens, const std::vector<int32_t>& qo_lens,
                               int32_t shared_pages, const std::vector<int32_t>& page_order, int32_t page_size) {
    std::vector<int32_t> kv_indptr{0}, pages, last_len, qo_indptr{0}, kv_len;
    std::vector<int64_t> slots;
    size_t next = size_t(shared_pages);
    auto* batch = new DeviceBatch;
    int64_t max_kv = 0, max_qo = 0;
    for (size_t s = 0; s < kv_lens.size(); ++s) {
        const int32_t len = kv_lens[s], count = (len + page_size - 1) / page_size;
        std::vector<int32_t> table(page_order.begin(), page_order.begin() + std::min(shared_pages, count));
        while (int32_t(table.size()) < count) table.push_back(page_order.at(next++));
        pages.insert(pages.end(), table.begin(), table.end());
        kv_indptr.push_back(int32_t(pages.size()));
        last_len.push_back(len - (count - 1) * page_size);
        qo_indptr.push_back(qo_indptr.back() + qo_lens[s]);
        kv_len.push_back(len);
        for (int32_t j = 0; j < qo_lens[s]; ++j) {
            int32_t pos = len - qo_lens[s] + j;
            slots.push_back(int64_t(table[size_t(pos / page_size)]) * page_size + pos % page_size);
        }
        max_kv = std::max<int64_t>(max_kv, len);
        max_qo = std::max<int64_t>(max_qo, qo_lens[s]);
        batch->kv_positions += len;
    }
    auto& a = batch->arrays;
    a.num_seqs = int32_t(kv_lens.size());
    a.num_pages = int32_t(pages.size());
    a.shared_prefix_pages = kv_lens.size() > 1 ? shared_pages : 0;
    a.num_qo_tokens = qo_indptr.back();
    a.max_kv_len = max_kv;
    a.max_qo_len = max_qo;
    a.kv_indptr = upload(kv_indptr);
    a.kv_page_indices = upload(pages);
    a.kv_last_page_len = upload(last_len);
    a.qo_indptr = upload(qo_indptr);
    a.slot_mapping = upload(slots);
    a.kv_len = upload(kv_len);
    batch->owned = {(void*)a.kv_indptr, (void*)a.kv_page_indices, (void*)a.kv_last_page_len,
                    (void*)a.qo_indptr, (void*)a.slot_mapping, (void*)a.kv_len};
    return batch;
}

// Prints "<name> on <device> (...)" and returns true, or "<name>: SKIP: ..." and false without a device.
inline bool open_device(const char* name) {
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0) {
        std::printf("%s: SKIP: no CUDA device (%s)\n", name, status != cudaSuccess ? cudaGetErrorString(status) : "none found");
        return false;
    }
    cudaDeviceProp prop{};
    BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("%s on %s (sm_%d%d, %d SMs, %.0f GiB)\n", name, prop.name, prop.major, prop.minor,
                prop.multiProcessorCount, double(prop.totalGlobalMem) / (1 << 30));
    return true;
}

// Device-to-device copy of 1 GiB (cudaMemcpyAsync), in GB/s counting bytes read and written: the
// decode bound. Prints "RESULT copy_d2d ...".
inline double copy_bandwidth_gbps(double* ms_out = nullptr) {
    const size_t copy_bytes = size_t(1) << 30;
    void* copy_src = device_alloc(copy_bytes);
    void* copy_dst = device_alloc(copy_bytes);
    fill(copy_src, int64_t(copy_bytes / 2), 1);
    const double ms = time_ms([&] { BENCH_CHECK(cudaMemcpyAsync(copy_dst, copy_src, copy_bytes, cudaMemcpyDeviceToDevice)); });
    const double gbps = 2.0 * double(copy_bytes) / (ms * 1e-3) / 1e9;
    cudaFree(copy_src);
    cudaFree(copy_dst);
    std::printf("RESULT copy_d2d time_ms=%.4f gbps=%.1f\n", ms, gbps);
    if (ms_out != nullptr) *ms_out = ms;
    return gbps;
}

}  // namespace bench_gpu
