// Hand-built pools and batches for the kernel tests: a random pool in any KV dtype, sequences with
// random, non-contiguous page ids (optionally sharing leading pages), the kernel arrays, and
// comparisons with per-dtype tolerances. No cache object is involved.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "common/dtype.h"
#include "kernels/cpu/isa.h"
#include "kernels/kernels.h"

namespace fixture {

using pagedkv::kernels::AttentionOptions;
using pagedkv::kernels::BatchArrays;
using pagedkv::kernels::PagedLayer;

// PAGEDKV_TEST_QUICK=1 (sanitizer runs) shrinks lengths and the number of cases.
inline bool quick() {
    const char* value = std::getenv("PAGEDKV_TEST_QUICK");
    return value != nullptr && value[0] != '\0' && value[0] != '0';
}

// Every ISA this machine runs, portable first; the body runs once per ISA.
template <class Body>
void for_each_isa(Body&& body) {
    using pagedkv::kernels::cpu::Isa;
    const Isa best = pagedkv::kernels::cpu::best_isa();
    for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512, Isa::avx512_bf16}) {
        if (int32_t(isa) > int32_t(best)) break;
        pagedkv::kernels::cpu::force_isa(isa);
        body(isa);
    }
    pagedkv::kernels::cpu::force_isa(best);
}

// A buffer of n elements of dtype, filled with uniform values in [-range, range] (never zero).
struct Tensor {
    int32_t dtype = PAGEDKV_DTYPE_F32;
    int64_t size = 0;
    std::vector<uint8_t> bytes;

    Tensor() = default;
    Tensor(int32_t dtype_, int64_t size_)
        : dtype(dtype_), size(size_), bytes(size_t(size_ * pagedkv::dtype_bytes(dtype_))) {}
    void* data() { return bytes.data(); }
    const void* data() const { return bytes.data(); }
    float get(int64_t i) const { return pagedkv::load_as_float(bytes.data(), i, dtype); }
    void set(int64_t i, float value) { pagedkv::store_from_float(bytes.data(), i, dtype, value); }
    void fill_random(std::mt19937& rng, float range) {
        // One draw per element: magnitude in [0.05, 1) * range from the high bits, sign from bit 0.
        for (int64_t i = 0; i < size; ++i) {
            const uint32_t r = uint32_t(rng());
            const float magnitude = (0.05f + 0.95f * float(r >> 8) * (1.0f / 16777216.0f)) * range;
            set(i, (r & 1u) ? magnitude : -magnitude);
        }
    }
    void fill_nan() {
        for (int64_t i = 0; i < size; ++i) set(i, NAN);
    }
};

struct PoolShape {
    int32_t num_layers = 2;
    int32_t num_kv_heads = 2;
    int32_t head_dim = 64;
    int32_t page_size = 16;
    int32_t num_pages = 64;
    int32_t kv_dtype = PAGEDKV_DTYPE_F32;
};

// A page pool laid out as include/pagedkv.h says, filled with random values.
struct Pool {
    PoolShape shape;
    int64_t slab_stride = 0, page_stride = 0;
    Tensor memory;

    Pool(const PoolShape& shape_, std::mt19937& rng) : shape(shape_) {
        slab_stride = int64_t(shape.num_kv_heads) * shape.page_size * shape.head_dim;
        page_stride = int64_t(shape.num_layers) * 2 * slab_stride;
        memory = Tensor(shape.kv_dtype, page_stride * shape.num_pages);
        memory.fill_random(rng, 1.0f);
    }
    int64_t page_bytes() const { return page_stride * pagedkv::dtype_bytes(shape.kv_dtype); }
    PagedLayer layer(int32_t l) {
        return PagedLayer{memory.data(), page_stride, slab_stride, l, shape.page_size, shape.num_kv_heads,
                          shape.head_dim, shape.kv_dtype};
    }
    // The header's formula, written out independently of PagedLayer::offset.
    int64_t element(int32_t page, int32_t layer_index, int32_t kv, int32_t head, int32_t token, int32_t d) const {
        return int64_t(page) * page_stride + int64_t(layer_index * 2 + kv) * slab_stride +
               (int64_t(head) * shape.page_size + token) * shape.head_dim + d;
    }
};

// Sequences over a pool: block tables of distinct random pages, the first shared_pages pages
// common to all; query tokens are the last qo_len positions of each sequence.
struct Batch {
    std::vector<int32_t> kv_indptr{0}, page_indices, last_page_len, qo_indptr{0}, kv_len;
    std::vector<int64_t> slot_mapping;
    int32_t shared_pages = 0;
    int64_t max_kv_len = 0, max_qo_len = 0;

    BatchArrays arrays() const {
        return BatchArrays{int32_t(kv_len.size()), int32_t(page_indices.size()), shared_pages,
                           int64_t(qo_indptr.back()), max_kv_len, max_qo_len, kv_indptr.data(),
                           page_indices.data(), last_page_len.data(), qo_indptr.data(), slot_mapping.data(),
                           kv_len.data()};
    }
    int64_t num_qo_tokens() const { return qo_indptr.back(); }
};

inline int32_t pages_for(int32_t tokens, int32_t page_size) { return (tokens + page_size - 1) / page_size; }

// Pages needed for make_batch with these lengths.
inline int32_t pages_needed(const std::vector<int32_t>& kv_lens, int32_t page_size, int32_t shared_pages) {
    int32_t total = shared_pages;
    for (int32_t len : kv_lens) total += pages_for(len, page_size) - shared_pages;
    return total;
}

inline Batch make_batch(std::mt19937& rng, int32_t page_size, int32_t num_pages, const std::vector<int32_t>& kv_lens,
                        const std::vector<int32_t>& qo_lens, int32_t shared_pages = 0) {
    std::vector<int32_t> free_pages(static_cast<size_t>(num_pages));
    std::iota(free_pages.begin(), free_pages.end(), 0);
    std::shuffle(free_pages.begin(), free_pages.end(), rng);
    size_t next = 0;
    Batch batch;
    batch.shared_pages = kv_lens.size() >= 2 ? shared_pages : 0;
    std::vector<int32_t> shared(free_pages.begin(), free_pages.begin() + batch.shared_pages);
    next = size_t(batch.shared_pages);
    for (size_t s = 0; s < kv_lens.size(); ++s) {
        const int32_t len = kv_lens[s], qo = qo_lens[s], pages = pages_for(len, page_size);
        std::vector<int32_t> table(shared);
        while (int32_t(table.size()) < pages) table.push_back(free_pages.at(next++));
        table.resize(size_t(pages));
        batch.page_indices.insert(batch.page_indices.end(), table.begin(), table.end());
        batch.kv_indptr.push_back(int32_t(batch.page_indices.size()));
        batch.last_page_len.push_back(len == 0 ? 0 : len - (pages - 1) * page_size);
        batch.qo_indptr.push_back(batch.qo_indptr.back() + qo);
        batch.kv_len.push_back(len);
        for (int32_t j = 0; j < qo; ++j) {
            const int32_t pos = len - qo + j;
            batch.slot_mapping.push_back(int64_t(table[size_t(pos / page_size)]) * page_size + pos % page_size);
        }
        batch.max_kv_len = std::max<int64_t>(batch.max_kv_len, len);
        batch.max_qo_len = std::max<int64_t>(batch.max_qo_len, qo);
    }
    return batch;
}

// Largest tolerated |got - want| is atol + rtol * |want|, per output dtype: the fast kernels and
// the reference read the same stored KV, so this covers accumulation order (and one rounding of
// the output to f16 / bf16).
inline double tolerance_for(int32_t dtype) {
    switch (dtype) {
        case PAGEDKV_DTYPE_F16: return 2e-3;
        case PAGEDKV_DTYPE_BF16: return 1.6e-2;
        default: return 1e-4;
    }
}

// Compares element by element; NaN anywhere (an unwritten, poisoned element) fails. Reports the
// worst element once, with `what` naming the case.
inline bool close(const std::string& what, const Tensor& got, const Tensor& want, double tolerance) {
    int64_t worst = -1;
    double worst_excess = 0.0;
    for (int64_t i = 0; i < want.size; ++i) {
        const double a = got.get(i), b = want.get(i);
        const double excess =
            std::isnan(a) || std::isnan(b) ? INFINITY : std::fabs(a - b) - tolerance * (1.0 + std::fabs(b));
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (worst < 0) return true;
    std::fprintf(stderr, "  %s: element %lld is %.8g, want %.8g (tolerance %.1e abs+rel)\n", what.c_str(),
                 (long long)worst, got.get(worst), want.get(worst), tolerance);
    return false;
}

inline std::string describe(const char* kernel, pagedkv::kernels::cpu::Isa isa, const PoolShape& shape,
                            int32_t num_qo_heads, const Batch& batch, const std::string& extra = "") {
    std::string lens;
    for (size_t s = 0; s < batch.kv_len.size() && s < 4; ++s)
        lens += (s ? "," : "") + std::to_string(batch.kv_len[s]) + "/" +
                std::to_string(batch.qo_indptr[s + 1] - batch.qo_indptr[s]);
    if (batch.kv_len.size() > 4) lens += ",...";
    char text[512];
    std::snprintf(text, sizeof text, "%s[%s kv=%s D=%d Hq=%d Hkv=%d ps=%d seqs=%zu kv/qo=%s shared=%d%s]", kernel,
                  pagedkv::kernels::cpu::isa_name(isa), pagedkv::dtype_name(shape.kv_dtype), shape.head_dim,
                  num_qo_heads, shape.num_kv_heads, shape.page_size, batch.kv_len.size(), lens.c_str(),
                  batch.shared_pages, extra.c_str());
    return text;
}

}  // namespace fixture
