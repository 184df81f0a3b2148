// GPU decode over quantized KV pages vs bf16, at 32k context (32 q / 8 kv heads, D 128, page size 16,
// pages shuffled), one sequence and a batch of 8, each next to the device-to-device copy bandwidth
// measured in the same run:
//   - time per decode step of each format and its speedup over bf16;
//   - stored bytes/s (the pages' bytes, scales included) and effective bytes/s (the dequantized
//     values as bf16: 2 bytes per K/V value), the latter as a fraction of the copy bandwidth.
// The pools are written through cuda::write_kv from random f32 K/V (so codes and scales are real).
// Prints "RESULT quant_decode_..." lines for scripts/gpu-check and a table last. Without a device it
// says so and exits 0.
#include <cmath>
#include <numeric>
#include <random>
#include <string>

#include "bench_gpu_util.cuh"
#include "common/error.h"
#include "pagedkv.h"
#include "quant/layer_geometry.h"

using namespace bench_gpu;

namespace {

constexpr int32_t kQoHeads = 32, kKvHeads = 8, kHeadDim = 128, kPageSize = 16, kContext = 32768;

__global__ void fill_random_f32(float* data, int64_t n, uint32_t seed) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        uint32_t x = uint32_t(i) * 2654435761u ^ seed ^ uint32_t(i >> 32) * 40503u;
        x ^= x >> 15, x *= 2246822519u, x ^= x >> 13, x *= 3266489917u, x ^= x >> 16;
        data[i] = (float(x & 0xffffff) / float(0x1000000)) * 2.0f - 1.0f;  // [-1, 1)
    }
}

struct Format {
    const char* name;
    int32_t dtype;
    bool hadamard;
};

// One layer's pool of `num_pages` pages in `format`, every position written by cuda::write_kv.
struct QuantPool {
    kernels::PagedLayer layer{};
    std::vector<float> fp8_scales = std::vector<float>(2 * kKvHeads, 2.0f / 448.0f);  // values in [-1, 1)

    QuantPool(const Format& format, int32_t num_pages) {
        layer.layer = 0;
        layer.page_size = kPageSize;
        layer.num_kv_heads = kKvHeads;
        layer.head_dim = kHeadDim;
        layer.kv_dtype = format.dtype;
        layer.hadamard = format.hadamard;
        layer.slab_stride = int64_t(kKvHeads) * kPageSize * kHeadDim;
        layer.page_stride = 2 * layer.slab_stride;
        layer.kv_scales = fp8_scales.data();
        layer = pagedkv::with_byte_geometry(layer, 1);
        layer.pool_base = device_alloc(size_t(layer.page_bytes) * num_pages);
        constexpr int64_t kChunk = 8192;  // tokens per write
        float* k = static_cast<float*>(device_alloc(size_t(kChunk) * kKvHeads * kHeadDim * 4));
        float* v = static_cast<float*>(device_alloc(size_t(kChunk) * kKvHeads * kHeadDim * 4));
        int64_t* slots = static_cast<int64_t*>(device_alloc(size_t(kChunk) * 8));
        std::vector<int64_t> host_slots(kChunk);
        const int64_t tokens = int64_t(num_pages) * kPageSize;
        for (int64_t first = 0; first < tokens; first += kChunk) {
            const int64_t count = std::min(kChunk, tokens - first);
            std::iota(host_slots.begin(), host_slots.begin() + count, first);
            BENCH_CHECK(cudaMemcpy(slots, host_slots.data(), size_t(count) * 8, cudaMemcpyHostToDevice));
            fill_random_f32<<<1024, 256>>>(k, count * kKvHeads * kHeadDim, uint32_t(first) * 2 + 1);
            fill_random_f32<<<1024, 256>>>(v, count * kKvHeads * kHeadDim, uint32_t(first) * 2 + 2);
            kernels::BatchArrays write{};
            write.num_qo_tokens = count;
            write.slot_mapping = slots;
            kernels::cuda::write_kv(layer, write, k, v, PAGEDKV_DTYPE_F32, nullptr);
        }
        BENCH_CHECK(cudaDeviceSynchronize());
        cudaFree(k);
        cudaFree(v);
        cudaFree(slots);
    }
    ~QuantPool() { cudaFree(layer.pool_base); }
    QuantPool(const QuantPool&) = delete;
    QuantPool& operator=(const QuantPool&) = delete;
};

struct Row {
    std::string name;
    double ms = 0, speedup = 0, stored_gbps = 0, effective_gbps = 0, fraction = 0;
};

}  // namespace

int main() {
    if (!open_device("bench_gpu_quant")) return 0;

    const double copy_gbps = copy_bandwidth_gbps();

    const Format formats[] = {{"bf16", PAGEDKV_DTYPE_BF16, false}, {"fp8_e4m3", PAGEDKV_DTYPE_FP8_E4M3, false},
                              {"q8", PAGEDKV_DTYPE_Q8, false},     {"q6", PAGEDKV_DTYPE_Q6, false},
                              {"q4", PAGEDKV_DTYPE_Q4, false},     {"q4_hadamard", PAGEDKV_DTYPE_Q4, true}};
    constexpr int32_t kMaxBatch = 8;
    const int32_t num_pages = kMaxBatch * kContext / kPageSize + 16;
    std::vector<int32_t> order(static_cast<size_t>(num_pages));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(3));
    void* q = device_alloc(size_t(kMaxBatch) * kQoHeads * kHeadDim * 2);
    void* out = device_alloc(size_t(kMaxBatch) * kQoHeads * kHeadDim * 2);
    fill(q, int64_t(kMaxBatch) * kQoHeads * kHeadDim, 11);
    const kernels::AttentionOptions options{kQoHeads, 1.0f / std::sqrt(float(kHeadDim)), PAGEDKV_DTYPE_BF16,
                                            PAGEDKV_DTYPE_BF16, 0, 0, nullptr};
    std::vector<Row> rows;
    try {
        for (int32_t batch_size : {1, kMaxBatch}) {
            DeviceBatch* batch = make_batch(std::vector<int32_t>(size_t(batch_size), kContext),
                                            std::vector<int32_t>(size_t(batch_size), 1), 0, order, kPageSize);
            double bf16_ms = 0;
            for (const Format& format : formats) {
                QuantPool pool(format, num_pages);
                const double ms = time_ms(
                    [&] { kernels::cuda::decode_attention(pool.layer, batch->arrays, options, q, out, nullptr); });
                if (format.dtype == PAGEDKV_DTYPE_BF16) bf16_ms = ms;
                const double positions = double(batch->kv_positions);
                const double stored = positions * double(pool.layer.page_bytes) / kPageSize;
                const double effective = positions * kKvHeads * kHeadDim * 2 /*K, V*/ * 2 /*bf16 bytes*/;
                Row row;
                row.name = std::string(format.name) + " " + std::to_string(batch_size) + "x32k";
                row.ms = ms;
                row.speedup = bf16_ms / ms;
                row.stored_gbps = stored / (ms * 1e-3) / 1e9;
                row.effective_gbps = effective / (ms * 1e-3) / 1e9;
                row.fraction = row.effective_gbps / copy_gbps;
                std::printf("RESULT quant_decode_%s_%dx32768 time_ms=%.4f speedup=%.3f stored_gbps=%.1f "
                            "effective_gbps=%.1f effective_frac=%.3f\n",
                            format.name, batch_size, ms, row.speedup, row.stored_gbps, row.effective_gbps, row.fraction);
                rows.push_back(row);
            }
            delete batch;
        }
    } catch (const pagedkv::Error& error) {
        std::printf("bench_gpu_quant: FAILED: %s\n", error.what());
        return 1;
    }
    BENCH_CHECK(cudaDeviceSynchronize());
    std::printf("\ncopy D2D %.0f GB/s (read + write)\n%-22s %9s %8s %10s %13s %7s\n", copy_gbps, "decode at 32k",
                "time_ms", "vs bf16", "stored GB/s", "effective GB/s", "%copy");
    for (const Row& r : rows)
        std::printf("%-22s %9.4f %7.2fx %10.0f %13.0f %6.1f%%\n", r.name.c_str(), r.ms, r.speedup, r.stored_gbps,
                    r.effective_gbps, 100.0 * r.fraction);
    return 0;
}
