// Loads from the disk tier on the cache's background I/O thread: pagedkv_prefetch returns at once
// and a later create finds the pages in the pool; a create racing with the prefetch of its own
// prompt joins that load (each page is read once) and gets the whole run; a cache destroyed with
// loads in flight stops cleanly (ASan: nothing leaks); several threads prefetch, create, compute
// and evict at once over a small pool, host and disk tiers (prompts share stems, so a create
// often finds another prompt's load in flight that agrees with it only on its first pages).
// Every output is compared with computing the request from scratch.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "tier_workload.h"

using namespace cache_test;
using namespace tier_test;
namespace fs = std::filesystem;

namespace {

fs::path fresh_directory(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / ("pagedkv-async-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

bool quick() {
    const char* value = std::getenv("PAGEDKV_TEST_QUICK");
    return value != nullptr && *value != '\0' && std::string(value) != "0";
}

// A disk tier in `dir`; the timeout is a bound that a loaded test machine never reaches, so a
// create always gets the run it waits for.
pagedkv_cache_config disk_config(int32_t page_size, int32_t num_pages, const fs::path& dir) {
    pagedkv_cache_config config = tier_config(page_size, num_pages);
    static thread_local std::string path;
    path = dir.string();
    config.disk_tier_path = path.c_str();
    config.disk_tier_bytes = int64_t(256) << 20;
    config.tier_flags = PAGEDKV_TIER_DISK_NO_FSYNC;
    config.tier_timeout_ms = 120000;
    return config;
}

// Computes `prompts` on a cache over `dir` and leaves every full page in the disk tier.
void store_on_disk(int32_t page_size, const fs::path& dir, const std::vector<std::vector<int32_t>>& prompts) {
    Cache cache(disk_config(page_size, 256, dir));
    REQUIRE(cache.handle);
    for (const auto& prompt : prompts) CHECK_EQ(run_request(cache, prompt).status, PAGEDKV_OK);
    CHECK_EQ(pagedkv_cache_clear_unused(cache, nullptr), PAGEDKV_OK);  // demotes to disk
    CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);
}

}  // namespace

TEST(prefetch_from_disk_returns_at_once_and_create_finds_the_pool) {
    std::mt19937_64 rng(31);
    for (int32_t page_size : {1, 4, 16}) {
        fs::path dir = fresh_directory("prefetch-" + std::to_string(page_size));
        const int64_t pages = 10 + int64_t(rng() % 20);
        std::vector<int32_t> prompt = random_tokens(rng, size_t(pages * page_size + 1 + rng() % page_size), 500);
        store_on_disk(page_size, dir, {prompt});
        Cache cache(disk_config(page_size, 256, dir));
        REQUIRE(cache.handle);
        int64_t loaded = -1;
        CHECK_EQ(pagedkv_prefetch(cache, prompt.data(), int64_t(prompt.size()), nullptr, 0, &loaded), PAGEDKV_OK);
        CHECK_EQ(loaded, 0);  // the disk is read on the loader's thread, after the call returned
        CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);  // waits for the load and its install
        CHECK_EQ(stats(cache).pages_cached, pages);
        CHECK_CONSISTENT(cache);
        Result r = run_request(cache, prompt);
        CHECK_EQ(r.cached, pages * page_size);
        CHECK_EQ(r.loaded[PAGEDKV_TIER_DISK], 0);  // a pool hit: nothing left to load
        CHECK(max_difference(r.output, reference_output(page_size, prompt)) <= 1e-6f);
        pagedkv_tier_stats disk = tier_stats(cache, PAGEDKV_TIER_DISK);
        CHECK_EQ(disk.hits, pages);
        CHECK_EQ(disk.verify_failures, 0);
        // A prompt the tiers do not hold starts nothing and costs nothing.
        std::vector<int32_t> other = random_tokens(rng, size_t(5 * page_size + 1), 500);
        CHECK_EQ(pagedkv_prefetch(cache, other.data(), int64_t(other.size()), nullptr, 0, &loaded), PAGEDKV_OK);
        CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);
        CHECK_EQ(tier_stats(cache, PAGEDKV_TIER_DISK).hits, pages);
        CHECK_EQ(run_request(cache, other).cached, 0);
        fs::remove_all(dir);
    }
}

TEST(create_racing_with_a_prefetch_of_its_prompt_joins_the_load) {
    std::mt19937_64 rng(37);
    const int32_t page_size = 4;
    fs::path dir = fresh_directory("race");
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 6; ++i) prompts.push_back(random_tokens(rng, size_t((8 + 7 * i) * page_size + 3), 500));
    store_on_disk(page_size, dir, prompts);
    Cache cache(disk_config(page_size, 256, dir));
    REQUIRE(cache.handle);
    int64_t expected_hits = 0;
    for (int round = 0; round < 3; ++round) {
        for (const auto& prompt : prompts) {
            const int64_t pages = int64_t(prompt.size() - 1) / page_size;
            // Create right after the prefetch: it joins the load in flight, or finds its pages
            // already in the pool; either way the whole run, and each page read once.
            CHECK_EQ(pagedkv_prefetch(cache, prompt.data(), int64_t(prompt.size()), nullptr, 0, nullptr), PAGEDKV_OK);
            Result r = run_request(cache, prompt);
            CHECK_EQ(r.cached, pages * page_size);
            CHECK(r.loaded[PAGEDKV_TIER_DISK] <= r.cached);
            CHECK(max_difference(r.output, reference_output(page_size, prompt)) <= 1e-6f);
            expected_hits += pages;
            CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);
            CHECK_CONSISTENT(cache);
            CHECK_EQ(pagedkv_cache_clear_unused(cache, nullptr), PAGEDKV_OK);  // next round loads again
        }
    }
    // A longer prompt than the one prefetched: the create goes on past the prefetched run.
    std::vector<int32_t> shorter(prompts[5].begin(), prompts[5].begin() + 10 * page_size + 1);
    CHECK_EQ(pagedkv_prefetch(cache, shorter.data(), int64_t(shorter.size()), nullptr, 0, nullptr), PAGEDKV_OK);
    Result r = run_request(cache, prompts[5]);
    CHECK_EQ(r.cached, int64_t(prompts[5].size() - 1) / page_size * page_size);
    CHECK(max_difference(r.output, reference_output(page_size, prompts[5])) <= 1e-6f);
    expected_hits += int64_t(prompts[5].size() - 1) / page_size;
    CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);
    pagedkv_tier_stats disk = tier_stats(cache, PAGEDKV_TIER_DISK);
    CHECK_EQ(disk.hits, expected_hits);
    CHECK_EQ(disk.verify_failures, 0);
    CHECK_CONSISTENT(cache);
    fs::remove_all(dir);
}

TEST(destroying_a_cache_with_loads_in_flight_is_safe) {
    std::mt19937_64 rng(41);
    const int32_t page_size = 4;
    fs::path dir = fresh_directory("destroy");
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 8; ++i) prompts.push_back(random_tokens(rng, size_t(20 * page_size + 1), 500));
    store_on_disk(page_size, dir, prompts);
    for (int round = 0; round < (quick() ? 3 : 10); ++round) {
        pagedkv_cache* cache = nullptr;
        pagedkv_cache_config config = disk_config(page_size, 256, dir);
        REQUIRE(pagedkv_cache_create(&config, &cache) == PAGEDKV_OK);
        for (size_t i = 0; i < prompts.size(); ++i)
            CHECK_EQ(pagedkv_prefetch(cache, prompts[i].data(), int64_t(prompts[i].size()), nullptr, 0, nullptr),
                     PAGEDKV_OK);
        // A create waiting for its load on another thread while the cache goes away: it
        // returns a status (created, or the handle is gone), never crashes or hangs.
        std::atomic<int32_t> status{-1};
        std::thread creator([&] {
            int64_t id = 0, cached = 0;
            status = pagedkv_sequence_create(cache, prompts[7].data(), int64_t(prompts[7].size()), nullptr, 0, &id,
                                             &cached);
        });
        if (round % 2 == 1) std::this_thread::yield();
        CHECK_EQ(pagedkv_cache_destroy(cache), PAGEDKV_OK);
        creator.join();
        CHECK(status == PAGEDKV_OK || status == PAGEDKV_ERR_INVALID_ARGUMENT);
    }
    fs::remove_all(dir);
}

TEST(threads_prefetch_create_and_evict_over_host_and_disk_tiers) {
    const int32_t page_size = 4;
    fs::path dir = fresh_directory("threads");
    std::mt19937_64 rng(43);
    std::vector<std::vector<int32_t>> stems;
    for (int i = 0; i < 6; ++i) stems.push_back(random_tokens(rng, size_t(page_size) * (4 + 3 * i), 500));
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 24; ++i)
        prompts.push_back(concat({stems[size_t(i) % stems.size()], random_tokens(rng, 1 + rng() % (3 * page_size), 500)}));
    std::vector<std::vector<float>> references;
    for (const auto& prompt : prompts) references.push_back(reference_output(page_size, prompt));

    // A pool of about three requests and a host tier of a few pages: pages move down and back.
    pagedkv_cache_config config = disk_config(page_size, 64, dir);
    config.host_tier_bytes = int64_t(32) << 10;  // about 28 page objects of this layout
    Cache cache(config);
    REQUIRE(cache.handle);
    const int threads = 4, steps = quick() ? 40 : 150;
    std::vector<int64_t> wrong(threads, 0), refused(threads, 0), overreported(threads, 0), cached_total(threads, 0);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            std::mt19937_64 local(1000 + uint64_t(t));
            for (int step = 0; step < steps; ++step) {
                const size_t i = size_t(local() % prompts.size());
                const auto& prompt = prompts[i];
                const uint64_t action = local() % 8;
                if (action < 3) {
                    pagedkv_prefetch(cache, prompt.data(), int64_t(prompt.size()), nullptr, 0, nullptr);
                } else if (action == 3) {
                    pagedkv_cache_clear_unused(cache, nullptr);
                    continue;
                }
                Result r = run_request(cache, prompt);
                if (r.status != PAGEDKV_OK) {
                    ++refused[size_t(t)];  // the pool is full of other threads' sequences
                    continue;
                }
                if (max_difference(r.output, references[i]) > 1e-6f) ++wrong[size_t(t)];
                int64_t from_tiers = 0;
                for (int64_t loaded : r.loaded) from_tiers += loaded;
                if (r.cached >= int64_t(prompt.size()) || from_tiers > r.cached) ++overreported[size_t(t)];
                cached_total[size_t(t)] += r.cached;
            }
        });
    }
    for (auto& worker : workers) worker.join();
    int64_t cached = 0;
    for (int t = 0; t < threads; ++t) {
        CHECK_EQ(wrong[size_t(t)], 0);
        CHECK_EQ(overreported[size_t(t)], 0);
        CHECK(refused[size_t(t)] < steps / 2);
        cached += cached_total[size_t(t)];
    }
    CHECK(cached > 0);
    CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);
    CHECK_CONSISTENT(cache);
    CHECK_EQ(tier_stats(cache, PAGEDKV_TIER_DISK).verify_failures, 0);
    CHECK_EQ(tier_stats(cache, PAGEDKV_TIER_HOST).verify_failures, 0);
    CHECK(tier_stats(cache, PAGEDKV_TIER_DISK).hits + tier_stats(cache, PAGEDKV_TIER_HOST).hits > 0);
    fs::remove_all(dir);
}

CHECK_MAIN
