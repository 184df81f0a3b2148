// Helpers shared by the cache tests (test_cache_*.cpp): a cache owner, thin wrappers over the C
// API that CHECK their status, and KV markers. A marker is what a test "computes" for a
// position: dims 0 and 1 of K (layer 0, head 0) get the token id and a hash of the whole prefix,
// so reading them back proves a page holds the KV of exactly that prefix.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "capi/handles.h"
#include "check.h"
#include "pagedkv.h"

namespace cache_test {

inline pagedkv_cache_config make_config(int32_t page_size, int32_t num_pages, uint32_t flags = 0,
                                        int32_t vocab_size = 0) {
    pagedkv_cache_config config{};
    config.struct_size = sizeof(config);
    config.num_layers = 2;
    config.num_kv_heads = 2;
    config.head_dim = 8;
    config.page_size = page_size;
    config.num_pages = num_pages;
    config.kv_dtype = PAGEDKV_DTYPE_F32;
    config.device_type = PAGEDKV_DEVICE_CPU;
    config.vocab_size = vocab_size;
    config.flags = flags;
    return config;
}

// Owns a cache for the length of a test.
struct Cache {
    pagedkv_cache* handle = nullptr;
    int32_t page_size = 0;
    int32_t head_dim = 0;

    explicit Cache(const pagedkv_cache_config& config) : page_size(config.page_size), head_dim(config.head_dim) {
        int32_t status = pagedkv_cache_create(&config, &handle);
        if (status != PAGEDKV_OK) std::fprintf(stderr, "cache_create: %s\n", pagedkv_last_error());
    }
    Cache(int32_t page_size, int32_t num_pages, uint32_t flags = 0) : Cache(make_config(page_size, num_pages, flags)) {}
    ~Cache() { pagedkv_cache_destroy(handle); }
    Cache(const Cache&) = delete;
    Cache& operator=(const Cache&) = delete;
    operator pagedkv_cache*() const { return handle; }
};

inline std::string last_error() { return pagedkv_last_error(); }
inline bool error_mentions(const char* text) { return last_error().find(text) != std::string::npos; }

// The cache's own check of every internal invariant; "" when all hold.
inline std::string consistency(pagedkv_cache* cache) { return pagedkv::capi::checked(cache)->check_consistency(); }

#define CHECK_CONSISTENT(cache)                                                                 \
    do {                                                                                        \
        std::string problem_ = ::cache_test::consistency(cache);                                \
        if (!problem_.empty()) ::check::report_failure(__FILE__, __LINE__, "inconsistent: " + problem_); \
    } while (0)

// Creates a sequence, CHECKing success; returns its id (0 on failure) and the cached count.
inline int64_t create(pagedkv_cache* cache, const std::vector<int32_t>& prompt, int64_t* cached = nullptr,
                      const std::string& salt = {}) {
    int64_t id = 0, hit = -1;
    int32_t status = pagedkv_sequence_create(cache, prompt.data(), int64_t(prompt.size()),
                                             reinterpret_cast<const uint8_t*>(salt.data()), int32_t(salt.size()),
                                             &id, &hit);
    if (status != PAGEDKV_OK) std::fprintf(stderr, "  sequence_create: %s\n", pagedkv_last_error());
    CHECK_EQ(status, PAGEDKV_OK);
    if (cached) *cached = hit;
    return id;
}

inline pagedkv_cache_stats stats(pagedkv_cache* cache) {
    pagedkv_cache_stats s{};
    s.struct_size = sizeof(s);
    CHECK_EQ(pagedkv_cache_get_stats(cache, &s), PAGEDKV_OK);
    return s;
}

inline pagedkv_sequence_info info(pagedkv_cache* cache, int64_t id) {
    pagedkv_sequence_info s{};
    s.struct_size = sizeof(s);
    CHECK_EQ(pagedkv_sequence_get_info(cache, id, &s), PAGEDKV_OK);
    return s;
}

inline std::vector<int32_t> block_table(pagedkv_cache* cache, int64_t id) {
    int32_t count = 0;
    CHECK_EQ(pagedkv_sequence_get_block_table(cache, id, nullptr, 0, &count), PAGEDKV_OK);
    std::vector<int32_t> pages(static_cast<size_t>(count));
    CHECK_EQ(pagedkv_sequence_get_block_table(cache, id, pages.data(), count, &count), PAGEDKV_OK);
    return pages;
}

inline std::vector<int32_t> tokens_of(pagedkv_cache* cache, int64_t id) {
    int64_t count = 0;
    CHECK_EQ(pagedkv_sequence_get_tokens(cache, id, nullptr, 0, &count), PAGEDKV_OK);
    std::vector<int32_t> tokens(static_cast<size_t>(count));
    CHECK_EQ(pagedkv_sequence_get_tokens(cache, id, tokens.data(), count, &count), PAGEDKV_OK);
    return tokens;
}

inline std::vector<int32_t> random_tokens(std::mt19937_64& rng, size_t count, int32_t vocab = 32000) {
    std::vector<int32_t> tokens(count);
    for (auto& t : tokens) t = int32_t(rng() % uint64_t(vocab));
    return tokens;
}

inline std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> all;
    for (const auto& part : parts) all.insert(all.end(), part.begin(), part.end());
    return all;
}

// ---- KV markers --------------------------------------------------------------------------------

inline uint32_t prefix_hash(const std::vector<int32_t>& tokens, int64_t position) {
    uint32_t h = 2166136261u;
    for (int64_t i = 0; i <= position; ++i) h = (h ^ uint32_t(tokens[size_t(i)])) * 16777619u + uint32_t(i);
    return h;
}

// Address of dim 0 of K, layer 0, head 0, for a position of a sequence (f32 cache).
inline uint32_t* marker_slot(pagedkv_cache* cache, const std::vector<int32_t>& table, int32_t page_size,
                             int32_t head_dim, int64_t position) {
    void* base = nullptr;
    int32_t page = table[size_t(position / page_size)];
    if (pagedkv_cache_page_address(cache, page, &base) != PAGEDKV_OK) return nullptr;
    return static_cast<uint32_t*>(base) + (position % page_size) * head_dim;
}

// Writes the markers of positions [num_computed, upto) and commits `upto`.
inline void compute(const Cache& cache, int64_t id, int64_t upto) {
    std::vector<int32_t> tokens = tokens_of(cache, id);
    std::vector<int32_t> table = block_table(cache, id);
    int64_t from = info(cache, id).num_computed;
    uint32_t h = 2166136261u;
    for (int64_t i = 0; i < upto; ++i) {
        h = (h ^ uint32_t(tokens[size_t(i)])) * 16777619u + uint32_t(i);
        if (i < from) continue;
        uint32_t* slot = marker_slot(cache, table, cache.page_size, cache.head_dim, i);
        slot[0] = uint32_t(tokens[size_t(i)]);
        slot[1] = h;
    }
    int32_t status = pagedkv_sequence_commit(cache, id, upto);
    if (status != PAGEDKV_OK) std::fprintf(stderr, "  commit: %s\n", pagedkv_last_error());
    CHECK_EQ(status, PAGEDKV_OK);
}

// Index of the first computed position whose marker is wrong, or -1.
inline int64_t first_bad_marker(const Cache& cache, int64_t id) {
    std::vector<int32_t> tokens = tokens_of(cache, id);
    std::vector<int32_t> table = block_table(cache, id);
    int64_t computed = info(cache, id).num_computed;
    uint32_t h = 2166136261u;
    for (int64_t i = 0; i < computed; ++i) {
        h = (h ^ uint32_t(tokens[size_t(i)])) * 16777619u + uint32_t(i);
        uint32_t* slot = marker_slot(cache, table, cache.page_size, cache.head_dim, i);
        if (slot[0] != uint32_t(tokens[size_t(i)]) || slot[1] != h) return i;
    }
    return -1;
}

inline std::vector<unsigned char> page_bytes(pagedkv_cache* cache, int32_t page) {
    pagedkv_cache_layout layout{};
    layout.struct_size = sizeof(layout);
    pagedkv_cache_get_layout(cache, &layout);
    void* base = nullptr;
    pagedkv_cache_page_address(cache, page, &base);
    auto* bytes = static_cast<unsigned char*>(base);
    return std::vector<unsigned char>(bytes, bytes + layout.page_bytes);
}

inline bool same_stats(const pagedkv_cache_stats& a, const pagedkv_cache_stats& b) {
    return a.pages_total == b.pages_total && a.pages_free == b.pages_free && a.pages_cached == b.pages_cached &&
           a.pages_in_use == b.pages_in_use && a.index_nodes == b.index_nodes &&
           a.live_sequences == b.live_sequences && a.prompt_tokens == b.prompt_tokens &&
           a.reused_tokens == b.reused_tokens && a.computed_tokens == b.computed_tokens &&
           a.evictions == b.evictions && a.cow_copies == b.cow_copies && a.dedup_hits == b.dedup_hits;
}

}  // namespace cache_test
