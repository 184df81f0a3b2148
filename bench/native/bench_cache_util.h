// What the native cache benchmarks share: a clock, a status check that stops the run, and a
// small CPU cache (16-token pages, one layer, f16) with random prompts over a Llama-3-sized vocab.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "pagedkv.h"

namespace bench {

using Clock = std::chrono::steady_clock;
constexpr int32_t kPageSize = 16;
constexpr int32_t kVocab = 128000;

inline double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Median of `runs` timings of `body` (each returns seconds).
template <class Body>
double median_seconds(int runs, Body&& body) {
    std::vector<double> times;
    for (int i = 0; i < runs; ++i) times.push_back(body());
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

inline void require(int32_t status, const char* what) {
    if (status == PAGEDKV_OK) return;
    std::fprintf(stderr, "%s failed: %s\n", what, pagedkv_last_error());
    std::exit(1);
}

inline pagedkv_cache* make_cache(int32_t num_pages) {
    pagedkv_cache_config config{};
    config.struct_size = sizeof(config);
    config.num_layers = 1;
    config.num_kv_heads = 1;
    config.head_dim = 64;
    config.page_size = kPageSize;
    config.num_pages = num_pages;
    config.kv_dtype = PAGEDKV_DTYPE_F16;
    config.device_type = PAGEDKV_DEVICE_CPU;
    config.vocab_size = kVocab;
    pagedkv_cache* cache = nullptr;
    require(pagedkv_cache_create(&config, &cache), "cache_create");
    return cache;
}

inline std::vector<int32_t> random_tokens(std::mt19937_64& rng, size_t count) {
    std::vector<int32_t> tokens(count);
    for (auto& t : tokens) t = int32_t(rng() % kVocab);
    return tokens;
}

inline int64_t create(pagedkv_cache* cache, const std::vector<int32_t>& prompt, int64_t* cached = nullptr) {
    int64_t id = 0;
    require(pagedkv_sequence_create(cache, prompt.data(), int64_t(prompt.size()), nullptr, 0, &id, cached),
            "sequence_create");
    return id;
}

}  // namespace bench
