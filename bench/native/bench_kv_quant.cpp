// Decode over quantized KV pages against bf16, in one run: time per step of every format at long
// context (one sequence, and a batch), its speed-up over bf16, and the KV bytes it reads per second
// next to memcpy's copy bandwidth (read + write) measured in the same run. Shapes of a Llama-3-8B
// layer: 32 query heads, 8 KV heads, head dim 128, 16-token pages; the pages of a step are spread
// over the pool (shuffled), and each step reads more KV than the last-level cache holds.
//
// Then, on a CPU with AVX512_BF16 + AVX512_VNNI, the native dot products (vdpbf16ps for bf16 K,
// vpdpbusd for integer codes) against the same AVX-512 kernels converting to f32 and using FMAs.
//
//   bench_kv_quant [threads] [context]      (defaults: all cores, 32768)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "bench_bounds.h"
#include "common/dtype.h"
#include "kernels/cpu/isa.h"
#include "kernels/kernels.h"
#include "quant/layer_geometry.h"

namespace {

using pagedkv::kernels::AttentionOptions;
using pagedkv::kernels::BatchArrays;
using pagedkv::kernels::PagedLayer;
namespace cpu = pagedkv::kernels::cpu;

constexpr int32_t kQoHeads = 32, kKvHeads = 8, kHeadDim = 128, kPageSize = 16;

struct Format {
    const char* name;
    int32_t dtype;
    bool hadamard;
};

// One layer's pool of `pages` pages of a format: page 0 written by the reference write_kv from
// random values in [-1, 1], then copied everywhere (the bytes read are what is measured).
struct Pool {
    PagedLayer layer{};
    std::vector<uint8_t> memory;
    std::vector<float> scales = std::vector<float>(2 * kKvHeads, 2.0f / 448.0f);

    Pool(const Format& format, int64_t pages) {
        layer.page_size = kPageSize;
        layer.num_kv_heads = kKvHeads;
        layer.head_dim = kHeadDim;
        layer.kv_dtype = format.dtype;
        layer.slab_stride = int64_t(kKvHeads) * kPageSize * kHeadDim;
        layer.page_stride = 2 * layer.slab_stride;
        layer.hadamard = format.hadamard;
        layer.kv_scales = scales.data();
        layer = pagedkv::with_byte_geometry(layer, 1);
        memory.resize(size_t(layer.page_bytes * pages));
        layer.pool_base = memory.data();

        std::mt19937 rng(5);
        std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
        std::vector<float> k(size_t(kPageSize) * kKvHeads * kHeadDim), v(k.size());
        for (float& x : k) x = uniform(rng);
        for (float& x : v) x = uniform(rng);
        std::vector<int64_t> slots(kPageSize);
        std::iota(slots.begin(), slots.end(), 0);
        std::vector<int32_t> indptr{0, kPageSize};
        BatchArrays first{1, 1, 0, kPageSize, kPageSize, kPageSize, nullptr, nullptr, nullptr, indptr.data(),
                          slots.data(), nullptr};
        pagedkv::kernels::reference::write_kv(layer, first, k.data(), v.data(), PAGEDKV_DTYPE_F32);
        for (int64_t p = 1; p < pages; ++p)
            std::memcpy(memory.data() + p * layer.page_bytes, memory.data(), size_t(layer.page_bytes));
    }
};

// Decode arrays for `seqs` sequences of `context` positions on shuffled pages [0, seqs * pages).
struct DecodeBatch {
    std::vector<int32_t> kv_indptr{0}, pages, last_len, qo_indptr{0}, kv_len;
    std::vector<int64_t> slots;

    DecodeBatch(int32_t seqs, int32_t context) {
        const int32_t per_seq = (context + kPageSize - 1) / kPageSize;
        pages.resize(size_t(seqs) * per_seq);
        std::iota(pages.begin(), pages.end(), 0);
        std::mt19937 rng(9);
        std::shuffle(pages.begin(), pages.end(), rng);
        for (int32_t s = 0; s < seqs; ++s) {
            kv_indptr.push_back((s + 1) * per_seq);
            last_len.push_back(context - (per_seq - 1) * kPageSize);
            qo_indptr.push_back(s + 1);
            kv_len.push_back(context);
            const int32_t last_page = pages[size_t(s * per_seq + per_seq - 1)];
            slots.push_back(int64_t(last_page) * kPageSize + (context - 1) % kPageSize);
        }
    }
    BatchArrays arrays() const {
        const int64_t context = kv_len[0];
        return BatchArrays{int32_t(kv_len.size()), int32_t(pages.size()), 0, int64_t(kv_len.size()), context, 1,
                           kv_indptr.data(), pages.data(), last_len.data(), qo_indptr.data(), slots.data(),
                           kv_len.data()};
    }
};

// One decode step over `seqs` sequences of `context` positions: the batch, q, the outputs.
struct DecodeStep {
    DecodeBatch batch;
    BatchArrays arrays;
    std::vector<float> q, out, lse;
    AttentionOptions options;

    DecodeStep(int32_t seqs, int32_t context, int32_t threads)
        : batch(seqs, context), arrays(batch.arrays()), q(size_t(seqs) * kQoHeads * kHeadDim, 0.5f), out(q.size()),
          lse(size_t(seqs) * kQoHeads),
          options{kQoHeads, 1.0f / std::sqrt(float(kHeadDim)), PAGEDKV_DTYPE_F32, PAGEDKV_DTYPE_F32, threads, 0, nullptr} {}
    DecodeStep(const DecodeStep&) = delete;  // arrays points into batch
    void run(const PagedLayer& layer) { cpu::decode_attention(layer, arrays, options, q.data(), out.data(), lse.data()); }
};

}  // namespace

int main(int argc, char** argv) {
    const int32_t threads = cpu::resolve_threads(argc > 1 ? std::atoi(argv[1]) : 0);
    const int32_t context = argc > 2 ? std::atoi(argv[2]) : 32768;
    const double copy_bw = bench::memcpy_bandwidth(threads);
    std::printf("# pagedkv CPU decode over quantized KV: %d threads, ISA %s, Hq=%d Hkv=%d D=%d, page %d, context %d\n",
                threads, cpu::isa_name(cpu::active_isa()), kQoHeads, kKvHeads, kHeadDim, kPageSize, context);
    std::printf("# memcpy of 256 MiB: %.2f GB/s (read + write); times are the best of repeated steps\n",
                copy_bw / 1e9);
    const Format formats[] = {{"bf16", PAGEDKV_DTYPE_BF16, false},      {"f16", PAGEDKV_DTYPE_F16, false},
                              {"fp8_e4m3", PAGEDKV_DTYPE_FP8_E4M3, false}, {"q8", PAGEDKV_DTYPE_Q8, false},
                              {"q6", PAGEDKV_DTYPE_Q6, false},          {"q4", PAGEDKV_DTYPE_Q4, false},
                              {"q4+hadamard", PAGEDKV_DTYPE_Q4, true}};
    std::printf("# cpu ms: median CPU time of a step (all threads; hardly changed by other processes' load)\n");
    std::printf("%-12s %6s %12s %10s %11s %9s %10s %9s %11s\n", "kv", "batch", "bytes/token", "step (ms)", "vs bf16",
                "KV GB/s", "of memcpy", "cpu ms", "cpu vs bf16");
    for (int32_t seqs : {1, 4}) {
        DecodeStep decode(seqs, context, threads);
        double bf16_seconds = 0.0, bf16_cpu = 0.0;
        for (const Format& format : formats) {
            const Pool pool(format, int64_t(decode.batch.pages.size()));
            auto step = [&](int) { decode.run(pool.layer); };
            const double seconds = bench::time_best(step);
            const double cpu_seconds = bench::cpu_time_median(step);
            if (format.dtype == PAGEDKV_DTYPE_BF16) bf16_seconds = seconds, bf16_cpu = cpu_seconds;
            const double bytes = double(pool.layer.page_bytes) * double(decode.batch.pages.size());
            std::printf("%-12s %6d %12.1f %10.3f %10.2fx %9.2f %9.0f%% %9.3f %10.2fx\n", format.name, seqs,
                        double(pool.layer.page_bytes) / kPageSize, seconds * 1e3, bf16_seconds / seconds,
                        bytes / seconds / 1e9, 100.0 * bytes / seconds / copy_bw, cpu_seconds * 1e3,
                        bf16_cpu / cpu_seconds);
        }
    }
    // f16 has no native dot product (see csrc/kernels/cpu/README.md): it shows the run-to-run noise.
    if (cpu::best_isa() != cpu::Isa::avx512_bf16) {
        std::printf("# native dot products (AVX512_BF16 + AVX512_VNNI) vs conversion + FMA: not available on this CPU\n");
        return 0;
    }
    std::printf("# native dot products (ISA avx512bf16) vs conversion + FMA (ISA avx512), decode, batch 1 and 4\n");
    std::printf("%-12s %6s %14s %14s %9s\n", "kv", "batch", "avx512 (ms)", "avx512bf16 (ms)", "speed-up");
    for (int32_t seqs : {1, 4}) {
        DecodeStep decode(seqs, context, threads);
        for (const Format& format : formats) {
            if (format.dtype != PAGEDKV_DTYPE_BF16 && format.dtype != PAGEDKV_DTYPE_F16 &&
                format.dtype != PAGEDKV_DTYPE_Q8 && format.dtype != PAGEDKV_DTYPE_Q4)
                continue;
            const Pool pool(format, int64_t(decode.batch.pages.size()));
            auto step = [&](int) { decode.run(pool.layer); };
            cpu::force_isa(cpu::Isa::avx512);
            const double converting = bench::time_best(step);
            cpu::force_isa(cpu::Isa::avx512_bf16);
            const double native = bench::time_best(step);
            std::printf("%-12s %6d %14.3f %14.3f %8.2fx\n", format.name, seqs, converting * 1e3, native * 1e3,
                        converting / native);
        }
    }
    return 0;
}
