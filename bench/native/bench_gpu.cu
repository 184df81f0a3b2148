// GPU benchmark of the paged kernels, each number next to a bound measured in the same run:
//   - device-to-device copy bandwidth (cudaMemcpyAsync, bytes read + written): the decode bound;
//   - decode attention (32 q / 8 kv heads, D 128, bf16 KV, page size 16, pages shuffled) at
//     64x4k, 64x1k, 16x16k, 1x64k: time, KV bytes/s, fraction of the copy bandwidth;
//   - prefill TFLOP/s: a causal 16k-token prompt, and 1k new tokens over a 15k cached prefix;
//   - cascade vs plain decode: 64 sequences sharing a 4k prefix, 256 own tokens each.
// Times are per call: medians over trials of back-to-back calls timed with CUDA events. Prints "RESULT ..." lines for
// scripts/gpu-check and a short table last. Without a device it says so and exits 0.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_gpu_util.cuh"
#include "common/error.h"
#include "kernels/kernels.h"
#include "pagedkv.h"

using namespace bench_gpu;

namespace {

constexpr int32_t kQoHeads = 32, kKvHeads = 8, kHeadDim = 128, kPageSize = 16;

struct Row {
    std::string name;
    double ms = 0, gbps = 0, fraction = 0, tflops = 0, speedup = 0;
};

bool has_nan_bf16(const void* device_data, int64_t elements) {
    std::vector<uint16_t> host(size_t(std::min<int64_t>(elements, 1 << 20)));
    BENCH_CHECK(cudaMemcpy(host.data(), device_data, host.size() * 2, cudaMemcpyDeviceToHost));
    for (uint16_t h : host)
        if ((h & 0x7f80u) == 0x7f80u) return true;  // Inf or NaN
    return false;
}

}  // namespace

int main() {
    if (!open_device("bench_gpu")) return 0;
    std::vector<Row> rows;

    // ---- the bound: device-to-device copy ----
    double copy_ms = 0;
    const double copy_gbps = copy_bandwidth_gbps(&copy_ms);
    rows.push_back({"copy D2D 1 GiB (r+w)", copy_ms, copy_gbps, 1.0, 0, 0});

    // ---- the pool: one layer, bf16, shuffled pages ----
    const int32_t num_pages = 64 * 4096 / kPageSize + 64;
    const int64_t slab = int64_t(kKvHeads) * kPageSize * kHeadDim;
    const int64_t page_elems = 2 * slab;
    void* pool = device_alloc(size_t(num_pages) * page_elems * 2);
    fill(pool, int64_t(num_pages) * page_elems, 7);
    std::vector<int32_t> order(static_cast<size_t>(num_pages));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(3));
    const kernels::PagedLayer layer{pool, page_elems, slab, 0, kPageSize, kKvHeads, kHeadDim, PAGEDKV_DTYPE_BF16};

    const int64_t max_tokens = 16384;
    void* q = device_alloc(size_t(max_tokens) * kQoHeads * kHeadDim * 2);
    void* out = device_alloc(size_t(max_tokens) * kQoHeads * kHeadDim * 2);
    float* lse = static_cast<float*>(device_alloc(size_t(max_tokens) * kQoHeads * 4));
    fill(q, max_tokens * kQoHeads * kHeadDim, 11);
    auto options = [](int32_t split) {
        return kernels::AttentionOptions{kQoHeads, 1.0f / std::sqrt(float(kHeadDim)), PAGEDKV_DTYPE_BF16,
                                         PAGEDKV_DTYPE_BF16, 0, split, nullptr};
    };
    const double kv_bytes_per_position = double(kKvHeads) * kHeadDim * 2 /*K,V*/ * 2 /*bytes*/;

    try {
        // ---- decode ----
        struct Shape {
            int32_t batch, len;
        };
        for (Shape s : {Shape{64, 4096}, Shape{64, 1024}, Shape{16, 16384}, Shape{1, 65536}}) {
            DeviceBatch* batch = make_batch(std::vector<int32_t>(size_t(s.batch), s.len),
                                            std::vector<int32_t>(size_t(s.batch), 1), 0, order, kPageSize);
            for (int32_t split : {0, -1}) {
                auto run = [&] { kernels::cuda::decode_attention(layer, batch->arrays, options(split), q, out, lse); };
                const double ms = time_ms(run);
                const double bytes = double(batch->kv_positions) * kv_bytes_per_position;
                const double gbps = bytes / (ms * 1e-3) / 1e9;
                char name[64];
                std::snprintf(name, sizeof name, "decode %dx%d%s", s.batch, s.len, split == 0 ? "" : " nosplit");
                std::printf("RESULT decode_%dx%d%s time_ms=%.4f gbps=%.1f frac=%.3f\n", s.batch, s.len,
                            split == 0 ? "" : "_nosplit", ms, gbps, gbps / copy_gbps);
                if (split == 0 && has_nan_bf16(out, int64_t(s.batch) * kQoHeads * kHeadDim))
                    std::printf("WARNING: decode output has NaN/Inf\n");
                rows.push_back({name, ms, gbps, gbps / copy_gbps, 0, 0});
            }
            delete batch;
        }

        // ---- prefill ----
        auto causal_pairs = [](int64_t kv, int64_t qo) {  // sum over queries of visible positions
            return qo * (kv - qo) + qo * (qo + 1) / 2;
        };
        for (auto [kv, qo] : {std::pair<int32_t, int32_t>{16384, 16384}, std::pair<int32_t, int32_t>{16384, 1024}}) {
            DeviceBatch* batch = make_batch({kv}, {qo}, 0, order, kPageSize);
            auto run = [&] { kernels::cuda::prefill_attention(layer, batch->arrays, options(0), q, out, lse); };
            const double ms = time_ms(run);
            const double flops = 4.0 * kQoHeads * kHeadDim * double(causal_pairs(kv, qo));
            const double tflops = flops / (ms * 1e-3) / 1e12;
            char name[64];
            std::snprintf(name, sizeof name, qo == kv ? "prefill causal %d" : "extend %d over %d", qo, kv - qo);
            std::printf("RESULT prefill_%d_%d time_ms=%.4f tflops=%.1f\n", kv, qo, ms, tflops);
            if (has_nan_bf16(out, int64_t(qo) * kQoHeads * kHeadDim)) std::printf("WARNING: prefill output has NaN/Inf\n");
            rows.push_back({name, ms, 0, 0, tflops, 0});
            delete batch;
        }

        // ---- cascade vs plain decode ----
        {
            const int32_t prefix = 4096, own = 256, seqs = 64;
            DeviceBatch* batch = make_batch(std::vector<int32_t>(seqs, prefix + own), std::vector<int32_t>(seqs, 1),
                                            prefix / kPageSize, order, kPageSize);
            const double plain_ms =
                time_ms([&] { kernels::cuda::decode_attention(layer, batch->arrays, options(0), q, out, lse); });
            const double cascade_ms =
                time_ms([&] { kernels::cuda::cascade_attention(layer, batch->arrays, options(0), q, out, lse); });
            if (has_nan_bf16(out, int64_t(seqs) * kQoHeads * kHeadDim)) std::printf("WARNING: cascade output has NaN/Inf\n");
            const double plain_gbps = double(batch->kv_positions) * kv_bytes_per_position / (plain_ms * 1e-3) / 1e9;
            std::printf("RESULT cascade_64x4096+256 plain_ms=%.4f cascade_ms=%.4f speedup=%.2f\n", plain_ms, cascade_ms,
                        plain_ms / cascade_ms);
            rows.push_back({"plain decode 64x(4k+256)", plain_ms, plain_gbps, plain_gbps / copy_gbps, 0, 0});
            rows.push_back({"cascade 64x(4k shared+256)", cascade_ms, 0, 0, 0, plain_ms / cascade_ms});
            delete batch;
        }
    } catch (const pagedkv::Error& error) {
        std::printf("bench_gpu: FAILED: %s\n", error.what());
        return 1;
    }
    BENCH_CHECK(cudaDeviceSynchronize());

    std::printf("\n%-30s %10s %9s %7s %8s %8s\n", "case", "time_ms", "GB/s", "%copy", "TFLOP/s", "speedup");
    for (const Row& r : rows) {
        std::printf("%-30s %10.4f", r.name.c_str(), r.ms);
        r.gbps > 0 ? std::printf(" %9.1f %6.1f%%", r.gbps, 100.0 * r.fraction) : std::printf(" %9s %7s", "-", "-");
        r.tflops > 0 ? std::printf(" %8.1f", r.tflops) : std::printf(" %8s", "-");
        r.speedup > 0 ? std::printf(" %7.2fx\n", r.speedup) : std::printf(" %8s\n", "-");
    }
    return 0;
}
