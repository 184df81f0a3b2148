// CPU attention benchmark: decode, prefill and cascade at realistic shapes (32 query heads, 8 KV
// heads, head dim 128, page size 16). Every number is put next to two bounds measured in the
// same run with the same thread count:
//  - memory: KV bytes read per second against the copy bandwidth of a plain memcpy (bytes read +
//    bytes written per second, as STREAM "Copy" counts them) of a buffer far past the LLC;
//  - compute: the f32 FMAs the kernel must do (QK and PV: 2 * head_dim per query head and KV
//    position) per second against a register-only FMA loop of the active ISA.
// Decode batches rotate over enough distinct pages that the KV comes from DRAM, as in a real
// model where each layer's KV is read once per step.
//
//   bench_attention [threads]        (default: all cores)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "bench_bounds.h"
#include "common/dtype.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/parallel.h"
#include "kernels/kernels.h"

namespace {

using bench::memcpy_bandwidth;
using bench::time_best;
using pagedkv::kernels::AttentionOptions;
using pagedkv::kernels::BatchArrays;
using pagedkv::kernels::PagedLayer;
namespace cpu = pagedkv::kernels::cpu;

constexpr int32_t kQoHeads = 32, kKvHeads = 8, kHeadDim = 128, kPageSize = 16;
constexpr int64_t kTokenBytes = 2 * int64_t(kKvHeads) * kHeadDim * 2;  // K + V of one position, 16-bit
constexpr int64_t kColdBytes = int64_t(96) << 20;  // KV touched per rotation: well past the LLC

// f32 FMA lanes per second of independent FMA chains on every thread (the compute bound).
// Twelve independent chains in registers: enough to cover the FMA latency on current cores.
#if defined(__x86_64__)
#define PAGEDKV_BENCH_FMA_LOOP(Reg, fmadd, set1, lanes, constraint)                                       \
    Reg b = set1(0.999f), c = set1(1e-4f);                                                               \
    Reg a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b, a8 = b, a9 = b, a10 = b, a11 = b; \
    for (int64_t i = 0; i < iterations; ++i) {                                                           \
        a0 = fmadd(a0, b, c), a1 = fmadd(a1, b, c), a2 = fmadd(a2, b, c), a3 = fmadd(a3, b, c);          \
        a4 = fmadd(a4, b, c), a5 = fmadd(a5, b, c), a6 = fmadd(a6, b, c), a7 = fmadd(a7, b, c);          \
        a8 = fmadd(a8, b, c), a9 = fmadd(a9, b, c), a10 = fmadd(a10, b, c), a11 = fmadd(a11, b, c);      \
        __asm__ volatile("" : constraint(a0), constraint(a1), constraint(a2), constraint(a3),             \
                         constraint(a4), constraint(a5), constraint(a6), constraint(a7), constraint(a8),  \
                         constraint(a9), constraint(a10), constraint(a11));                               \
    }                                                                                                    \
    return iterations * 12 * lanes;

__attribute__((target("avx2,fma"))) int64_t fma_loop_avx2(int64_t iterations) {
    PAGEDKV_BENCH_FMA_LOOP(__m256, _mm256_fmadd_ps, _mm256_set1_ps, 8, "+x")
}
__attribute__((target("avx512f"))) int64_t fma_loop_avx512(int64_t iterations) {
    PAGEDKV_BENCH_FMA_LOOP(__m512, _mm512_fmadd_ps, _mm512_set1_ps, 16, "+v")
}
#endif

int64_t fma_loop(int64_t iterations) {
#if defined(__x86_64__)
    if (cpu::active_isa() >= cpu::Isa::avx512) return fma_loop_avx512(iterations);
    if (cpu::active_isa() == cpu::Isa::avx2) return fma_loop_avx2(iterations);
#endif
    float a = 0.5f;
    for (int64_t i = 0; i < iterations * 12; ++i) a = a * 0.999f + 1e-4f;
    return a > 0 ? iterations * 12 : 0;
}

double fma_peak(int32_t threads) {
    constexpr int64_t kIterations = 1'000'000;  // ~5 ms: as short as the kernels timed
    std::vector<int64_t> lanes(static_cast<size_t>(threads));
    const double seconds = time_best([&](int) {
        cpu::parallel_for(threads, threads, [&](int64_t t) { lanes[size_t(t)] = fma_loop(kIterations); });
    }, 0.3);
    return double(std::accumulate(lanes.begin(), lanes.end(), int64_t(0))) / seconds;
}

struct Pool {
    int32_t dtype;
    int64_t num_pages, slab_stride, page_stride;
    std::vector<uint16_t> memory;
    Pool(int32_t dtype_, int64_t pages) : dtype(dtype_), num_pages(pages) {
        slab_stride = int64_t(kKvHeads) * kPageSize * kHeadDim;
        page_stride = 2 * slab_stride;  // one layer: only the read pattern matters here
        memory.resize(size_t(page_stride * num_pages));
        std::mt19937 rng(5);
        std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
        for (auto& x : memory) x = dtype == PAGEDKV_DTYPE_F16 ? pagedkv::float_to_f16(uniform(rng))
                                                              : pagedkv::float_to_bf16(uniform(rng));
    }
    PagedLayer layer() {
        return PagedLayer{memory.data(), page_stride, slab_stride, 0, kPageSize, kKvHeads, kHeadDim, dtype};
    }
};

// A batch whose sequences take pages from `next_page` on (shuffled in blocks, so tables are not
// contiguous), the first `shared_pages` common to all.
struct Batch {
    std::vector<int32_t> kv_indptr{0}, pages, last_len, qo_indptr{0}, kv_len;
    std::vector<int64_t> slots;
    int32_t shared_pages = 0;
    int64_t max_kv = 0, max_qo = 0;

    Batch(const std::vector<int32_t>& kv_lens, const std::vector<int32_t>& qo_lens, int32_t shared, int64_t& next_page,
          std::mt19937& rng)
        : shared_pages(shared) {
        std::vector<int32_t> prefix;
        for (int32_t i = 0; i < shared; ++i) prefix.push_back(int32_t(next_page++));
        for (size_t s = 0; s < kv_lens.size(); ++s) {
            const int32_t count = (kv_lens[s] + kPageSize - 1) / kPageSize;
            std::vector<int32_t> table(prefix);
            while (int32_t(table.size()) < count) table.push_back(int32_t(next_page++));
            std::shuffle(table.begin() + shared, table.end(), rng);
            pages.insert(pages.end(), table.begin(), table.end());
            kv_indptr.push_back(int32_t(pages.size()));
            last_len.push_back(kv_lens[s] - (count - 1) * kPageSize);
            qo_indptr.push_back(qo_indptr.back() + qo_lens[s]);
            kv_len.push_back(kv_lens[s]);
            for (int32_t j = 0; j < qo_lens[s]; ++j) {
                const int32_t pos = kv_lens[s] - qo_lens[s] + j;
                slots.push_back(int64_t(table[size_t(pos / kPageSize)]) * kPageSize + pos % kPageSize);
            }
            max_kv = std::max<int64_t>(max_kv, kv_lens[s]);
            max_qo = std::max<int64_t>(max_qo, qo_lens[s]);
        }
    }
    BatchArrays arrays() const {
        return BatchArrays{int32_t(kv_len.size()), int32_t(pages.size()), shared_pages, int64_t(qo_indptr.back()),
                           max_kv, max_qo, kv_indptr.data(), pages.data(), last_len.data(), qo_indptr.data(),
                           slots.data(), kv_len.data()};
    }
    int64_t tokens() const { return qo_indptr.back(); }
    int64_t kv_tokens() const { return std::accumulate(kv_len.begin(), kv_len.end(), int64_t(0)); }
};

AttentionOptions options(int32_t threads) {
    return AttentionOptions{kQoHeads, 1.0f / std::sqrt(float(kHeadDim)), PAGEDKV_DTYPE_F32, PAGEDKV_DTYPE_F32,
                            threads, 0, nullptr};
}

struct Bounds {
    double copy_bw;   // memcpy bytes read + written per second
    double fma_rate;  // f32 FMA lanes per second
};

void decode_table(int32_t threads, const Bounds& bound) {
    std::printf("\n## decode (Hq=%d Hkv=%d D=%d, page %d, f32 q/out), KV from DRAM\n", kQoHeads, kKvHeads, kHeadDim,
                kPageSize);
    std::printf("%-5s %7s %6s %10s %9s %10s %9s %9s\n", "kv", "context", "batch", "time (ms)", "KV GB/s",
                "of memcpy", "GFLOP/s", "of FMA");
    const std::pair<int32_t, int32_t> shapes[] = {{512, 1},  {512, 32}, {2048, 1}, {2048, 32},
                                                  {8192, 1}, {8192, 8}, {32768, 1}, {32768, 4}};
    for (int32_t dtype : {PAGEDKV_DTYPE_BF16, PAGEDKV_DTYPE_F16})
        for (auto [context, seqs] : shapes) {
            const int64_t batch_bytes = int64_t(context) * seqs * kTokenBytes;
            const int32_t copies = int32_t(std::max<int64_t>(1, (kColdBytes + batch_bytes - 1) / batch_bytes));
            const int64_t pages_per_batch = int64_t(seqs) * ((context + kPageSize - 1) / kPageSize);
            Pool pool(dtype, pages_per_batch * copies);
            std::mt19937 rng(9);
            int64_t next = 0;
            std::vector<Batch> batches;
            for (int32_t c = 0; c < copies; ++c)
                batches.emplace_back(std::vector<int32_t>(size_t(seqs), context), std::vector<int32_t>(size_t(seqs), 1),
                                     0, next, rng);
            std::vector<float> q(size_t(seqs) * kQoHeads * kHeadDim, 0.5f), out(q.size()), lse(size_t(seqs) * kQoHeads);
            const PagedLayer layer = pool.layer();
            const AttentionOptions opts = options(threads);
            const double seconds = time_best([&](int i) {
                const BatchArrays arrays = batches[size_t(i) % batches.size()].arrays();
                cpu::decode_attention(layer, arrays, opts, q.data(), out.data(), lse.data());
            });
            const double bw = double(batch_bytes) / seconds;
            const double fmas = double(seqs) * context * kQoHeads * 2.0 * kHeadDim;
            std::printf("%-5s %7d %6d %10.3f %9.2f %9.0f%% %9.1f %8.0f%%\n", pagedkv::dtype_name(dtype), context, seqs,
                        seconds * 1e3, bw / 1e9, 100.0 * bw / bound.copy_bw, 2 * fmas / seconds / 1e9,
                        100.0 * fmas / seconds / bound.fma_rate);
        }
}

void prefill_table(int32_t threads, const Bounds& bound) {
    std::printf("\n## prefill (causal, one sequence, bf16 KV, f32 q/out)\n");
    std::printf("%7s %7s %10s %9s %9s\n", "prompt", "cached", "time (ms)", "GFLOP/s", "of FMA");
    for (auto [prompt, cached] : {std::pair{512, 0}, std::pair{2048, 0}, std::pair{256, 3840}}) {
        const int32_t kv = prompt + cached;
        Pool pool(PAGEDKV_DTYPE_BF16, (kv + kPageSize - 1) / kPageSize);
        std::mt19937 rng(9);
        int64_t next = 0;
        Batch batch({kv}, {prompt}, 0, next, rng);
        std::vector<float> q(size_t(prompt) * kQoHeads * kHeadDim, 0.5f), out(q.size());
        const BatchArrays arrays = batch.arrays();
        const double seconds = time_best([&](int) {
            cpu::prefill_attention(pool.layer(), arrays, options(threads), q.data(), out.data(), nullptr);
        });
        // Query-key pairs attended (causal), 2 * D FMAs each (QK and PV).
        const double pairs = double(prompt) * cached + double(prompt) * (prompt + 1) / 2.0;
        const double fmas = pairs * kQoHeads * 2.0 * kHeadDim;
        std::printf("%7d %7d %10.2f %9.1f %8.0f%%\n", prompt, cached, seconds * 1e3, 2 * fmas / seconds / 1e9,
                    100.0 * fmas / seconds / bound.fma_rate);
    }
}

void cascade_table(int32_t threads, const Bounds& bound) {
    std::printf("\n## cascade vs plain decode: 32 sequences share a prefix, 256 own tokens each (bf16 KV)\n");
    std::printf("%7s %12s %13s %9s %15s %15s\n", "prefix", "decode (ms)", "cascade (ms)", "speed-up",
                "decode of FMA", "cascade of FMA");
    for (int32_t prefix : {1024, 4096}) {
        constexpr int32_t kSeqs = 32, kOwn = 256;
        const int32_t shared_pages = prefix / kPageSize;
        Pool pool(PAGEDKV_DTYPE_BF16, shared_pages + int64_t(kSeqs) * kOwn / kPageSize + kSeqs);
        std::mt19937 rng(9);
        int64_t next = 0;
        const std::vector<int32_t> kv_lens(kSeqs, prefix + kOwn), qo_lens(kSeqs, 1);
        Batch batch(kv_lens, qo_lens, shared_pages, next, rng);
        std::vector<float> q(size_t(kSeqs) * kQoHeads * kHeadDim, 0.5f), out(q.size()), lse(size_t(kSeqs) * kQoHeads);
        const BatchArrays arrays = batch.arrays();
        const double decode = time_best([&](int) {
            cpu::decode_attention(pool.layer(), arrays, options(threads), q.data(), out.data(), lse.data());
        });
        const double cascade = time_best([&](int) {
            cpu::cascade_attention(pool.layer(), arrays, options(threads), q.data(), out.data(), lse.data());
        });
        const double fmas = double(batch.kv_tokens()) * kQoHeads * 2.0 * kHeadDim;  // the same for both
        std::printf("%7d %12.2f %13.2f %8.2fx %14.0f%% %14.0f%%\n", prefix, decode * 1e3, cascade * 1e3,
                    decode / cascade, 100.0 * fmas / decode / bound.fma_rate, 100.0 * fmas / cascade / bound.fma_rate);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const int32_t threads = cpu::resolve_threads(argc > 1 ? std::atoi(argv[1]) : 0);
    const Bounds bound{memcpy_bandwidth(threads), fma_peak(threads)};
    std::printf("# pagedkv CPU attention: %d threads, ISA %s; times are the best of repeated runs\n", threads,
                cpu::isa_name(cpu::active_isa()));
    std::printf("# memcpy of 256 MiB: %.2f GB/s (read + write); f32 FMA peak: %.1f GFLOP/s\n", bound.copy_bw / 1e9,
                2 * bound.fma_rate / 1e9);
    decode_table(threads, bound);
    prefill_table(threads, bound);
    cascade_table(threads, bound);
    return 0;
}
