// The kernel functions of the C API on a real CPU cache: K/V land where the header's layout says,
// attention equals the reference, cascade equals prefill on sequences that share cached pages,
// and every bad argument is refused with a clear status and nothing written.
#include <cstring>
#include <functional>
#include <string>

#include "capi/handles.h"
#include "kernel_fixture.h"
#include "test_cache_util.h"
#include "pagedkv.h"

using namespace fixture;
using cache_test::error_mentions;
namespace reference = pagedkv::kernels::reference;

namespace {

constexpr int32_t kLayers = 2, kKvHeads = 2, kHeadDim = 64, kPageSize = 16, kQoHeads = 8;

pagedkv_cache_config kernel_config(int32_t kv_dtype, int32_t head_dim, int32_t num_pages) {
    pagedkv_cache_config config = cache_test::make_config(kPageSize, num_pages);
    config.num_layers = kLayers;
    config.num_kv_heads = kKvHeads;
    config.head_dim = head_dim;
    config.kv_dtype = kv_dtype;
    return config;
}

// A CPU cache shaped for attention, with a view of its pool.
struct CacheHandle : cache_test::Cache {
    explicit CacheHandle(int32_t kv_dtype, int32_t head_dim = kHeadDim, int32_t num_pages = 64)
        : Cache(kernel_config(kv_dtype, head_dim, num_pages)) {}
    pagedkv_cache_layout layout() const {
        pagedkv_cache_layout layout{};
        layout.struct_size = sizeof layout;
        pagedkv_cache_get_layout(handle, &layout);
        return layout;
    }
    // The whole pool, for checking that nothing was written.
    std::vector<uint8_t> pool_bytes() const {
        const pagedkv_cache_layout l = layout();
        const uint8_t* base = static_cast<const uint8_t*>(l.pool_base);
        return std::vector<uint8_t>(base, base + l.pool_bytes);
    }
    // A sequence of `length` consecutive token ids from first_token.
    int64_t sequence(int32_t first_token, int32_t length) {
        std::vector<int32_t> prompt(static_cast<size_t>(length));
        std::iota(prompt.begin(), prompt.end(), first_token);
        return cache_test::create(handle, prompt);
    }
};

struct BatchHandle {
    pagedkv_batch* batch = nullptr;
    BatchHandle(pagedkv_cache* cache, std::vector<int64_t> seqs) {
        CHECK_EQ(pagedkv_batch_create(cache, seqs.data(), int32_t(seqs.size()), &batch), PAGEDKV_OK);
    }
    ~BatchHandle() { pagedkv_batch_destroy(batch); }
    pagedkv_batch_info info() const {
        pagedkv_batch_info info{};
        info.struct_size = sizeof info;
        pagedkv_batch_get_info(batch, &info);
        return info;
    }
};

pagedkv_attention_params params(int32_t num_qo_heads = kQoHeads) {
    pagedkv_attention_params p{};
    p.struct_size = sizeof p;
    p.num_qo_heads = num_qo_heads;
    p.q_dtype = PAGEDKV_DTYPE_F32;
    p.out_dtype = PAGEDKV_DTYPE_F32;
    return p;
}

// Writes random K/V for the batch's query tokens into every layer.
void write_random_kv(CacheHandle& c, BatchHandle& b, std::mt19937& rng) {
    const int64_t values = b.info().num_qo_tokens * kKvHeads * kHeadDim;
    Tensor k(PAGEDKV_DTYPE_F32, values), v(PAGEDKV_DTYPE_F32, values);
    k.fill_random(rng, 1.0f);
    v.fill_random(rng, 1.0f);
    const pagedkv_attention_params p = params();
    for (int32_t layer = 0; layer < kLayers; ++layer)
        CHECK_EQ(pagedkv_write_kv(c.handle, b.batch, layer, k.data(), v.data(), PAGEDKV_DTYPE_F32, &p), PAGEDKV_OK);
}

struct Result {
    Tensor out, lse;
};

Result poisoned(int64_t rows) {
    Result r{Tensor(PAGEDKV_DTYPE_F32, rows * kHeadDim), Tensor(PAGEDKV_DTYPE_F32, rows)};
    r.out.fill_nan();
    r.lse.fill_nan();
    return r;
}

using CAttention = int32_t (*)(pagedkv_cache*, const pagedkv_batch*, int32_t, const pagedkv_attention_params*,
                               const void*, void*, float*);

Result run(CAttention fn, CacheHandle& c, BatchHandle& b, const Tensor& q, int32_t layer = 1) {
    Result r = poisoned(b.info().num_qo_tokens * kQoHeads);
    const pagedkv_attention_params p = params();
    const int32_t status = fn(c.handle, b.batch, layer, &p, q.data(), r.out.data(), static_cast<float*>(r.lse.data()));
    CHECK_EQ(status, PAGEDKV_OK);
    if (status != PAGEDKV_OK) std::fprintf(stderr, "  %s\n", pagedkv_last_error());
    return r;
}

Result run_reference(CacheHandle& c, BatchHandle& b, const Tensor& q, int32_t layer = 1) {
    Result r = poisoned(b.info().num_qo_tokens * kQoHeads);
    const pagedkv::kernels::AttentionOptions options{kQoHeads, 1.0f / std::sqrt(float(kHeadDim)), PAGEDKV_DTYPE_F32,
                                                     PAGEDKV_DTYPE_F32, 0, 0, nullptr};
    reference::attention(pagedkv::capi::checked(c.handle)->layer(layer), pagedkv::capi::checked(b.batch)->batch->host_arrays(),
                         options, q.data(), r.out.data(), static_cast<float*>(r.lse.data()));
    return r;
}

bool matches(const std::string& what, const Result& got, const Result& want) {
    const bool out = close(what + " out", got.out, want.out, tolerance_for(PAGEDKV_DTYPE_F32));
    const bool lse = close(what + " lse", got.lse, want.lse, tolerance_for(PAGEDKV_DTYPE_F32));
    return out && lse;
}

bool still_poisoned(const Result& r) {
    for (int64_t i = 0; i < r.out.size; ++i)
        if (!std::isnan(r.out.get(i))) return false;
    for (int64_t i = 0; i < r.lse.size; ++i)
        if (!std::isnan(r.lse.get(i))) return false;
    return true;
}


Tensor random_q(std::mt19937& rng, int64_t tokens) {
    Tensor q(PAGEDKV_DTYPE_F32, tokens * kQoHeads * kHeadDim);
    q.fill_random(rng, 2.0f);
    return q;
}

}  // namespace

// write_kv puts every element at the header's offset, rounded like common/dtype.h.
TEST(c_write_kv_follows_the_header_layout) {
    for (int32_t dtype : {PAGEDKV_DTYPE_F32, PAGEDKV_DTYPE_F16, PAGEDKV_DTYPE_BF16}) {
        CacheHandle c(dtype);
        REQUIRE(c.handle != nullptr);
        const int64_t a = c.sequence(100, 37), b = c.sequence(500, 5);
        BatchHandle batch(c.handle, {a, b});
        const pagedkv_batch_info info = batch.info();
        std::mt19937 rng(11);
        const int64_t values = info.num_qo_tokens * kKvHeads * kHeadDim;
        Tensor k(PAGEDKV_DTYPE_F32, values), v(PAGEDKV_DTYPE_F32, values);
        k.fill_random(rng, 3.0f);
        v.fill_random(rng, 3.0f);
        const pagedkv_attention_params p = params();
        REQUIRE(pagedkv_write_kv(c.handle, batch.batch, 1, k.data(), v.data(), PAGEDKV_DTYPE_F32, &p) == PAGEDKV_OK);
        const pagedkv_cache_layout l = c.layout();
        int64_t wrong = 0;
        for (int64_t t = 0; t < info.num_qo_tokens; ++t) {
            const int64_t slot = info.slot_mapping[t];
            const int64_t page = slot / kPageSize, token = slot % kPageSize;
            for (int32_t kv = 0; kv < 2; ++kv)
                for (int32_t h = 0; h < kKvHeads; ++h)
                    for (int32_t d = 0; d < kHeadDim; ++d) {
                        const int64_t at = page * l.page_stride + (1 * 2 + kv) * l.slab_stride +
                                           (h * int64_t(kPageSize) + token) * kHeadDim + d;
                        const float source = (kv ? v : k).get((t * kKvHeads + h) * kHeadDim + d);
                        Tensor expected(dtype, 1);
                        expected.set(0, source);
                        wrong += std::memcmp(static_cast<const uint8_t*>(l.pool_base) + at * l.element_bytes,
                                             expected.data(), size_t(l.element_bytes)) != 0;
                    }
        }
        CHECK_EQ(wrong, int64_t(0));
    }
}

// Prefill, then decode steps, through the C API against the reference; cascade on sequences that
// share cached prefix pages equals prefill and decode.
TEST(c_attention_matches_reference_and_cascade_matches_prefill) {
    CacheHandle c(PAGEDKV_DTYPE_BF16, kHeadDim, 128);
    REQUIRE(c.handle != nullptr);
    std::mt19937 rng(12);
    // A first request computes 70 positions; three more share its first 64 (4 full pages).
    const int64_t first = c.sequence(1, 70);
    {
        BatchHandle b(c.handle, {first});
        write_random_kv(c, b, rng);
        const Tensor q = random_q(rng, b.info().num_qo_tokens);
        CHECK(matches("prefill", run(pagedkv_prefill_attention, c, b, q), run_reference(c, b, q)));
        CHECK_EQ(pagedkv_batch_commit(c.handle, b.batch), PAGEDKV_OK);
    }
    std::vector<int64_t> seqs{first};
    for (int32_t s = 0; s < 3; ++s) {
        std::vector<int32_t> prompt;
        for (int32_t i = 0; i < 64; ++i) prompt.push_back(1 + i);
        for (int32_t i = 0; i < 10 + 7 * s; ++i) prompt.push_back(9000 + 100 * s + i);
        int64_t cached = 0;
        seqs.push_back(cache_test::create(c.handle, prompt, &cached));
        CHECK_EQ(cached, int64_t(64));
    }
    // Extend: the new sequences compute their own tokens; `first` has nothing to compute.
    {
        BatchHandle b(c.handle, {seqs[1], seqs[2], seqs[3]});
        CHECK_EQ(b.info().shared_prefix_pages, 4);
        write_random_kv(c, b, rng);
        const Tensor q = random_q(rng, b.info().num_qo_tokens);
        const Result want = run_reference(c, b, q);
        CHECK(matches("extend prefill", run(pagedkv_prefill_attention, c, b, q), want));
        CHECK(matches("extend cascade", run(pagedkv_cascade_attention, c, b, q), want));
        CHECK_EQ(pagedkv_batch_commit(c.handle, b.batch), PAGEDKV_OK);
    }
    // Two decode steps for all four.
    for (int32_t step = 0; step < 2; ++step) {
        for (int64_t id : seqs) {
            const int32_t token = 20000 + step;
            REQUIRE(pagedkv_sequence_append(c.handle, id, &token, 1) == PAGEDKV_OK);
        }
        BatchHandle b(c.handle, seqs);
        CHECK_EQ(b.info().shared_prefix_pages, 4);
        write_random_kv(c, b, rng);
        const Tensor q = random_q(rng, b.info().num_qo_tokens);
        const Result want = run_reference(c, b, q);
        CHECK(matches("decode", run(pagedkv_decode_attention, c, b, q), want));
        CHECK(matches("decode cascade", run(pagedkv_cascade_attention, c, b, q), want));
        CHECK(matches("decode as prefill", run(pagedkv_prefill_attention, c, b, q), want));
        CHECK_EQ(pagedkv_batch_commit(c.handle, b.batch), PAGEDKV_OK);
    }
}

// A batch keeps the plans its kernels make (one per operation and options), so the layers of a
// step plan once: every layer and every option set must still get its own, right answer.
TEST(c_plans_kept_by_a_batch_serve_every_layer_and_option_set) {
    CacheHandle c(PAGEDKV_DTYPE_F32, kHeadDim, 128);
    REQUIRE(c.handle != nullptr);
    std::mt19937 rng(31);
    std::vector<int64_t> seqs{c.sequence(1, 300), c.sequence(5000, 421)};
    for (int64_t id : seqs) REQUIRE(pagedkv_sequence_commit(c.handle, id, 0) == PAGEDKV_OK);
    {
        BatchHandle b(c.handle, seqs);
        write_random_kv(c, b, rng);
        CHECK_EQ(pagedkv_batch_commit(c.handle, b.batch), PAGEDKV_OK);
    }
    for (int64_t id : seqs) {
        const int32_t token = 7;
        REQUIRE(pagedkv_sequence_append(c.handle, id, &token, 1) == PAGEDKV_OK);
    }
    BatchHandle b(c.handle, seqs);
    write_random_kv(c, b, rng);
    for (int32_t round = 0; round < 2; ++round)  // the second round runs on the kept plans
        for (int32_t split : {0, 16, 64, -1})
            for (int32_t layer = 0; layer < kLayers; ++layer) {
                const Tensor q = random_q(rng, b.info().num_qo_tokens);
                Result got = poisoned(b.info().num_qo_tokens * kQoHeads);
                pagedkv_attention_params p = params();
                p.kv_split_size = split;
                CHECK_EQ(pagedkv_decode_attention(c.handle, b.batch, layer, &p, q.data(), got.out.data(),
                                                  static_cast<float*>(got.lse.data())),
                         PAGEDKV_OK);
                CHECK(matches("decode split " + std::to_string(split), got, run_reference(c, b, q, layer)));
                got = poisoned(b.info().num_qo_tokens * kQoHeads);
                CHECK_EQ(pagedkv_prefill_attention(c.handle, b.batch, layer, &p, q.data(), got.out.data(),
                                                   static_cast<float*>(got.lse.data())),
                         PAGEDKV_OK);
                CHECK(matches("prefill split " + std::to_string(split), got, run_reference(c, b, q, layer)));
            }
}

// The arguments of one attention call, valid until a case changes one of them.
struct AttentionCall {
    CAttention fn;
    pagedkv_cache* cache;
    const pagedkv_batch* batch;
    int32_t layer;
    pagedkv_attention_params params;
    const pagedkv_attention_params* params_pointer;  // &params unless a case nulls it
    const void* q;
    bool null_out;

    int32_t run(Result& r) const {
        return fn(cache, batch, layer, params_pointer, q, null_out ? nullptr : r.out.data(),
                  static_cast<float*>(r.lse.data()));
    }
};

TEST(c_attention_rejects_bad_arguments_and_writes_nothing) {
    CacheHandle c(PAGEDKV_DTYPE_F16), other(PAGEDKV_DTYPE_F16);
    REQUIRE(c.handle != nullptr && other.handle != nullptr);
    std::mt19937 rng(13);
    const int64_t prompt_seq = c.sequence(1, 5), one = c.sequence(100, 1);
    BatchHandle prompt_batch(c.handle, {one, prompt_seq});  // qo lens 1 and 5
    BatchHandle foreign(other.handle, {other.sequence(1, 3)});
    const Tensor q = random_q(rng, prompt_batch.info().num_qo_tokens);

    struct Bad {
        const char* what;
        int32_t status;
        const char* mention;  // in pagedkv_last_error()
        std::function<void(AttentionCall&)> change;
    };
    const std::vector<Bad> cases = {
        {"layer -1", PAGEDKV_ERR_INVALID_ARGUMENT, "layer", [](auto& a) { a.layer = -1; }},
        {"layer == num_layers", PAGEDKV_ERR_INVALID_ARGUMENT, "layer", [](auto& a) { a.layer = kLayers; }},
        {"null q", PAGEDKV_ERR_INVALID_ARGUMENT, "q must not be null", [](auto& a) { a.q = nullptr; }},
        {"null out", PAGEDKV_ERR_INVALID_ARGUMENT, "out must not be null", [](auto& a) { a.null_out = true; }},
        {"null params", PAGEDKV_ERR_INVALID_ARGUMENT, "params", [](auto& a) { a.params_pointer = nullptr; }},
        {"null cache", PAGEDKV_ERR_INVALID_ARGUMENT, "cache", [](auto& a) { a.cache = nullptr; }},
        {"null batch", PAGEDKV_ERR_INVALID_ARGUMENT, "batch", [](auto& a) { a.batch = nullptr; }},
        {"struct_size 0", PAGEDKV_ERR_INVALID_ARGUMENT, "struct_size", [](auto& a) { a.params.struct_size = 0; }},
        {"struct_size 8", PAGEDKV_ERR_INVALID_ARGUMENT, "struct_size", [](auto& a) { a.params.struct_size = 8; }},
        {"num_qo_heads 3, 2 kv heads", PAGEDKV_ERR_INVALID_ARGUMENT, "num_qo_heads",
         [](auto& a) { a.params.num_qo_heads = 3; }},
        {"num_qo_heads 0", PAGEDKV_ERR_INVALID_ARGUMENT, "num_qo_heads", [](auto& a) { a.params.num_qo_heads = 0; }},
        {"sm_scale NaN", PAGEDKV_ERR_INVALID_ARGUMENT, "sm_scale", [](auto& a) { a.params.sm_scale = NAN; }},
        {"sm_scale negative", PAGEDKV_ERR_INVALID_ARGUMENT, "sm_scale", [](auto& a) { a.params.sm_scale = -1.0f; }},
        {"q_dtype 9", PAGEDKV_ERR_INVALID_ARGUMENT, "q_dtype", [](auto& a) { a.params.q_dtype = 9; }},
        {"out_dtype -1", PAGEDKV_ERR_INVALID_ARGUMENT, "out_dtype", [](auto& a) { a.params.out_dtype = -1; }},
        {"num_threads -1", PAGEDKV_ERR_INVALID_ARGUMENT, "num_threads", [](auto& a) { a.params.num_threads = -1; }},
        {"kv_split_size -2", PAGEDKV_ERR_INVALID_ARGUMENT, "kv_split_size",
         [](auto& a) { a.params.kv_split_size = -2; }},
        {"batch of another cache", PAGEDKV_ERR_INVALID_ARGUMENT, "another cache",
         [&](auto& a) { a.batch = foreign.batch; }},
        {"decode with qo_len 5", PAGEDKV_ERR_INVALID_ARGUMENT, "batch sequence 1",
         [](auto& a) { a.fn = pagedkv_decode_attention; }},
        {"cascade with null q", PAGEDKV_ERR_INVALID_ARGUMENT, "q must not be null",
         [](auto& a) { a.fn = pagedkv_cascade_attention, a.q = nullptr; }},
    };
    for (const Bad& bad : cases) {
        AttentionCall call{pagedkv_prefill_attention, c.handle, prompt_batch.batch, 0, params(), nullptr, q.data(),
                           false};
        call.params_pointer = &call.params;
        bad.change(call);
        Result r = poisoned(prompt_batch.info().num_qo_tokens * kQoHeads);
        const int32_t status = call.run(r);
        if (status != bad.status || !error_mentions(bad.mention) || !still_poisoned(r)) {
            std::fprintf(stderr, "  case '%s': status %d (want %d), message '%s', output untouched %d\n", bad.what,
                         status, bad.status, pagedkv_last_error(), int(still_poisoned(r)));
            CHECK(false);
        }
    }
}

TEST(c_write_kv_rejects_bad_arguments_and_writes_nothing) {
    CacheHandle c(PAGEDKV_DTYPE_BF16), other(PAGEDKV_DTYPE_BF16);
    REQUIRE(c.handle != nullptr && other.handle != nullptr);
    BatchHandle batch(c.handle, {c.sequence(1, 20)});
    BatchHandle foreign(other.handle, {other.sequence(1, 20)});
    std::mt19937 rng(14);
    Tensor k(PAGEDKV_DTYPE_F32, 20 * kKvHeads * kHeadDim), v(PAGEDKV_DTYPE_F32, 20 * kKvHeads * kHeadDim);
    k.fill_random(rng, 1.0f);
    v.fill_random(rng, 1.0f);
    const std::vector<uint8_t> before = c.pool_bytes();
    pagedkv_attention_params p = params();
    CHECK_EQ(pagedkv_write_kv(c.handle, batch.batch, 2, k.data(), v.data(), PAGEDKV_DTYPE_F32, &p),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_write_kv(c.handle, batch.batch, 0, nullptr, v.data(), PAGEDKV_DTYPE_F32, &p),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_write_kv(c.handle, batch.batch, 0, k.data(), nullptr, PAGEDKV_DTYPE_F32, &p),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_write_kv(c.handle, batch.batch, 0, k.data(), v.data(), PAGEDKV_DTYPE_F16, &p),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("src_dtype"));
    CHECK_EQ(pagedkv_write_kv(c.handle, foreign.batch, 0, k.data(), v.data(), PAGEDKV_DTYPE_F32, &p),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_write_kv(c.handle, batch.batch, 0, k.data(), v.data(), PAGEDKV_DTYPE_F32, nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    p.struct_size = 4;
    CHECK_EQ(pagedkv_write_kv(c.handle, batch.batch, 0, k.data(), v.data(), PAGEDKV_DTYPE_F32, &p),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(c.pool_bytes() == before);
    p = params();
    CHECK_EQ(pagedkv_write_kv(c.handle, batch.batch, 0, k.data(), v.data(), PAGEDKV_DTYPE_F32, &p), PAGEDKV_OK);
    CHECK(c.pool_bytes() != before);
}

TEST(c_head_dim_the_kernels_cannot_serve_is_refused_at_creation) {
    CacheHandle c(PAGEDKV_DTYPE_F32, 12);
    CHECK(c.handle == nullptr);
    CHECK(error_mentions("multiple of 8"));
}

TEST(c_copy_pages) {
    CacheHandle c(PAGEDKV_DTYPE_BF16);
    REQUIRE(c.handle != nullptr);
    const pagedkv_cache_layout l = c.layout();
    uint8_t* pool = static_cast<uint8_t*>(l.pool_base);
    for (int64_t i = 0; i < l.pool_bytes; ++i) pool[i] = uint8_t(i * 131 + 7);
    const int32_t src[] = {3, 10, 7}, dst[] = {20, 21, 22};
    std::vector<uint8_t> page3(pool + 3 * l.page_bytes, pool + 4 * l.page_bytes);
    std::vector<uint8_t> page10(pool + 10 * l.page_bytes, pool + 11 * l.page_bytes);
    std::vector<uint8_t> page7(pool + 7 * l.page_bytes, pool + 8 * l.page_bytes);
    const std::vector<uint8_t> before = c.pool_bytes();
    const int32_t bad_src[] = {3, 64}, bad_dst[] = {-1, 5};
    CHECK_EQ(pagedkv_copy_pages(c.handle, bad_src, dst, 2, nullptr), PAGEDKV_ERR_NOT_FOUND);
    CHECK_EQ(pagedkv_copy_pages(c.handle, src, bad_dst, 2, nullptr), PAGEDKV_ERR_NOT_FOUND);
    CHECK_EQ(pagedkv_copy_pages(c.handle, nullptr, dst, 2, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_copy_pages(c.handle, src, dst, -1, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_copy_pages(nullptr, src, dst, 1, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(c.pool_bytes() == before);
    CHECK_EQ(pagedkv_copy_pages(c.handle, nullptr, nullptr, 0, nullptr), PAGEDKV_OK);
    REQUIRE(pagedkv_copy_pages(c.handle, src, dst, 3, nullptr) == PAGEDKV_OK);
    CHECK(std::memcmp(pool + 20 * l.page_bytes, page3.data(), size_t(l.page_bytes)) == 0);
    CHECK(std::memcmp(pool + 21 * l.page_bytes, page10.data(), size_t(l.page_bytes)) == 0);
    CHECK(std::memcmp(pool + 22 * l.page_bytes, page7.data(), size_t(l.page_bytes)) == 0);
}

TEST(c_merge_states) {
    CacheHandle c(PAGEDKV_DTYPE_F32);
    REQUIRE(c.handle != nullptr);
    std::mt19937 rng(15);
    const int64_t n = 5;
    const int32_t heads = 3, dim = 16;
    Tensor a(PAGEDKV_DTYPE_F32, n * heads * dim), b(a), la(PAGEDKV_DTYPE_F32, n * heads), lb(la);
    a.fill_random(rng, 1.0f);
    b.fill_random(rng, 1.0f);
    la.fill_random(rng, 4.0f);
    lb.fill_random(rng, 4.0f);
    auto f = [](const Tensor& t) { return static_cast<const float*>(t.data()); };
    Result got{Tensor(PAGEDKV_DTYPE_F32, a.size), Tensor(PAGEDKV_DTYPE_F32, la.size)}, want = got;
    got.out.fill_nan();
    got.lse.fill_nan();
    CHECK_EQ(pagedkv_merge_states(c.handle, f(a), f(la), f(b), f(lb), -1, heads, dim, (float*)got.out.data(),
                                  (float*)got.lse.data(), nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_merge_states(c.handle, f(a), f(la), f(b), f(lb), n, 0, dim, (float*)got.out.data(),
                                  (float*)got.lse.data(), nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_merge_states(c.handle, f(a), nullptr, f(b), f(lb), n, heads, dim, (float*)got.out.data(),
                                  (float*)got.lse.data(), nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(still_poisoned(got));
    REQUIRE(pagedkv_merge_states(c.handle, f(a), f(la), f(b), f(lb), n, heads, dim, (float*)got.out.data(),
                                 (float*)got.lse.data(), nullptr) == PAGEDKV_OK);
    reference::merge_states(f(a), f(la), f(b), f(lb), n, heads, dim, (float*)want.out.data(), (float*)want.lse.data());
    CHECK(matches("merge_states", got, want));
}

CHECK_MAIN
