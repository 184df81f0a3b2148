// A deterministic "model" for the tier tests: the K and V of a position are a function of the
// whole prefix up to it (so a page holds the KV of exactly one prefix), written with
// pagedkv_write_kv, and a request's result is the prefill attention output of its last token in
// every layer. A cache that reuses or loads wrong KV gives another output than a cache that
// computes everything (the reference: the same request on a fresh cache with reuse off).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "test_cache_util.h"

namespace tier_test {

constexpr int32_t kLayers = 2, kKvHeads = 2, kQoHeads = 4, kHeadDim = 8;

inline pagedkv_cache_config tier_config(int32_t page_size, int32_t num_pages, uint32_t flags = 0) {
    pagedkv_cache_config config = cache_test::make_config(page_size, num_pages, flags);
    config.num_layers = kLayers;
    config.num_kv_heads = kKvHeads;
    config.head_dim = kHeadDim;
    config.tier_namespace = "tier-test-model";
    return config;
}

inline float unit(uint64_t x) {  // splitmix64 to [-1, 1)
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return float(int64_t(x >> 40) - (int64_t(1) << 23)) / float(1 << 23);
}

struct Result {
    int32_t status = PAGEDKV_OK;
    int64_t cached = 0;
    int64_t loaded[PAGEDKV_TIER_COUNT] = {};
    std::vector<float> output;  // [layers][Hq][D] of the last token
};

// Creates, computes the rest of the prompt (write_kv, prefill attention per layer), commits and
// releases. status != OK when create refused (nothing else done then).
inline Result run_request(pagedkv_cache* cache, const std::vector<int32_t>& prompt, const std::string& salt = {}) {
    Result result;
    int64_t id = 0;
    result.status = pagedkv_sequence_create(cache, prompt.data(), int64_t(prompt.size()),
                                            reinterpret_cast<const uint8_t*>(salt.data()), int32_t(salt.size()), &id,
                                            &result.cached);
    if (result.status != PAGEDKV_OK) return result;
    pagedkv_sequence_info info = cache_test::info(cache, id);
    for (int32_t t = 0; t < PAGEDKV_TIER_COUNT; ++t) result.loaded[t] = info.loaded_tokens[t];
    const int64_t n = int64_t(prompt.size()), from = result.cached, q_len = n - from;
    // Prefix hashes of every position.
    std::vector<uint64_t> prefix(static_cast<size_t>(n));
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < n; ++i) prefix[size_t(i)] = h = (h ^ uint64_t(uint32_t(prompt[size_t(i)]))) * 1099511628211ull;

    pagedkv_batch* batch = nullptr;
    CHECK_EQ(pagedkv_batch_create(cache, &id, 1, &batch), PAGEDKV_OK);
    pagedkv_attention_params params{};
    params.struct_size = sizeof(params);
    params.num_qo_heads = kQoHeads;
    params.q_dtype = params.out_dtype = PAGEDKV_DTYPE_F32;
    params.num_threads = 1;
    const int64_t kv_row = int64_t(kKvHeads) * kHeadDim, q_row = int64_t(kQoHeads) * kHeadDim;
    std::vector<float> k(size_t(q_len * kv_row)), v(k.size()), q(size_t(q_len * q_row)), out(q.size());
    for (int32_t layer = 0; layer < kLayers; ++layer) {
        for (int64_t j = 0; j < q_len; ++j) {
            const uint64_t p = prefix[size_t(from + j)] * 31 + uint64_t(layer) * 1000003;
            for (int64_t e = 0; e < kv_row; ++e) {
                k[size_t(j * kv_row + e)] = unit(p ^ (uint64_t(e) << 1));
                v[size_t(j * kv_row + e)] = unit(p ^ (uint64_t(e) << 1 | 1));
            }
            for (int64_t e = 0; e < q_row; ++e) q[size_t(j * q_row + e)] = unit(p + 77 + uint64_t(e));
        }
        CHECK_EQ(pagedkv_write_kv(cache, batch, layer, k.data(), v.data(), PAGEDKV_DTYPE_F32, &params), PAGEDKV_OK);
        CHECK_EQ(pagedkv_prefill_attention(cache, batch, layer, &params, q.data(), out.data(), nullptr), PAGEDKV_OK);
        result.output.insert(result.output.end(), out.end() - q_row, out.end());
    }
    CHECK_EQ(pagedkv_batch_commit(cache, batch), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
    return result;
}

// The reference: the request computed from scratch on a cache that never reuses.
inline std::vector<float> reference_output(int32_t page_size, const std::vector<int32_t>& prompt) {
    int32_t pages = int32_t((prompt.size() + size_t(page_size) - 1) / size_t(page_size)) + 1;
    cache_test::Cache fresh(tier_config(page_size, pages, PAGEDKV_CACHE_NO_REUSE));
    return run_request(fresh, prompt).output;
}

inline float max_difference(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    float worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::fmax(worst, std::fabs(a[i] - b[i]));
    return worst;
}

inline pagedkv_tier_stats tier_stats(pagedkv_cache* cache, int32_t tier) {
    pagedkv_tier_stats s{};
    s.struct_size = sizeof(s);
    CHECK_EQ(pagedkv_cache_get_tier_stats(cache, tier, &s), PAGEDKV_OK);
    return s;
}

}  // namespace tier_test
