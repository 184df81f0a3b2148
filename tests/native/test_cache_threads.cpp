// Several threads drive one cache at once (metadata calls serialize on the cache). Each thread
// owns its sequences and checks their KV markers; prompts share stems so threads hit, dedup and
// evict each other's pages. At the end every page must be free or cached and the counts add up.
#include <atomic>
#include <thread>

#include "test_cache_util.h"

using namespace cache_test;

namespace {

void worker(const Cache& cache, uint64_t seed, int steps, const std::vector<std::vector<int32_t>>* stems,
            std::atomic<int>* failures) {
    std::mt19937_64 rng(seed);
    std::vector<int64_t> mine;
    auto fail = [&](const char* what, int64_t id) {
        std::fprintf(stderr, "  thread %llu: %s (sequence %lld): %s\n", (unsigned long long)seed, what,
                     (long long)id, pagedkv_last_error());
        ++*failures;
    };
    for (int step = 0; step < steps && failures->load() == 0; ++step) {
        int op = int(rng() % 100);
        if (mine.empty() || (op < 30 && mine.size() < 6)) {
            std::vector<int32_t> prompt = (*stems)[rng() % stems->size()];
            for (uint64_t n = 1 + rng() % 12; n > 0; --n) prompt.push_back(int32_t(rng() % 4));
            int64_t id = 0, cached = 0;
            int32_t status = pagedkv_sequence_create(cache, prompt.data(), int64_t(prompt.size()), nullptr, 0, &id,
                                                     &cached);
            if (status == PAGEDKV_OK) {
                mine.push_back(id);
                if (first_bad_marker(cache, id) != -1) fail("wrong KV after create", id);
            } else if (status != PAGEDKV_ERR_OUT_OF_PAGES) {
                fail("create failed", 0);
            }
            continue;
        }
        size_t index = rng() % mine.size();
        int64_t id = mine[index];
        pagedkv_sequence_info i = info(cache, id);
        if (op < 55) {
            compute(cache, id, i.num_tokens);
        } else if (op < 70) {
            int32_t token = int32_t(rng() % 4);
            int32_t status = pagedkv_sequence_append(cache, id, &token, 1);
            if (status != PAGEDKV_OK && status != PAGEDKV_ERR_OUT_OF_PAGES) fail("append failed", id);
        } else if (op < 78) {
            int64_t child = 0;
            int32_t status = pagedkv_sequence_fork(cache, id, &child);
            if (status == PAGEDKV_OK && mine.size() < 8)
                mine.push_back(child);
            else if (status == PAGEDKV_OK)
                pagedkv_sequence_release(cache, child);
            else if (status != PAGEDKV_ERR_OUT_OF_PAGES)
                fail("fork failed", id);
        } else if (op < 86) {
            int64_t k = std::max<int64_t>(1, i.num_tokens - int64_t(rng() % 6));
            if (pagedkv_sequence_truncate(cache, id, k) != PAGEDKV_OK) fail("truncate failed", id);
        } else {
            if (pagedkv_sequence_release(cache, id) != PAGEDKV_OK) fail("release failed", id);
            mine.erase(mine.begin() + long(index));
            continue;
        }
        if (first_bad_marker(cache, id) != -1) fail("wrong KV", id);
        if (op % 16 == 0) {  // a batch over all of mine, built and dropped
            pagedkv_batch* batch = nullptr;
            if (pagedkv_batch_create(cache, mine.data(), int32_t(mine.size()), &batch) != PAGEDKV_OK)
                fail("batch failed", 0);
            pagedkv_batch_destroy(batch);
        }
    }
    for (int64_t id : mine)
        if (pagedkv_sequence_release(cache, id) != PAGEDKV_OK) fail("final release failed", id);
}

}  // namespace

TEST(four_threads_on_one_cache) {
    Cache cache(4, 96);
    REQUIRE(cache.handle);
    std::mt19937_64 rng(99);
    std::vector<std::vector<int32_t>> stems;
    for (int i = 0; i < 4; ++i) stems.push_back(random_tokens(rng, size_t(4 + i * 5), 50));
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (uint64_t t = 0; t < 4; ++t) threads.emplace_back(worker, std::cref(cache), 1000 + t, 20000, &stems, &failures);
    for (auto& thread : threads) thread.join();
    CHECK_EQ(failures.load(), 0);
    pagedkv_cache_stats s = stats(cache);
    CHECK_EQ(s.live_sequences, 0);
    CHECK_EQ(s.pages_in_use, 0);
    CHECK_EQ(s.pages_free + s.pages_cached, s.pages_total);
    CHECK_EQ(s.pages_cached, s.index_nodes);
    CHECK(s.reused_tokens > 0);
    CHECK_CONSISTENT(cache);
    int32_t evicted = 0;
    CHECK_EQ(pagedkv_cache_clear_unused(cache, &evicted), PAGEDKV_OK);
    CHECK_EQ(evicted, s.pages_cached);
    CHECK_EQ(stats(cache).pages_free, s.pages_total);
    std::fprintf(stderr, "  reused %lld of %lld prompt tokens, %lld evictions, %lld copies, %lld dedups\n",
                 (long long)s.reused_tokens, (long long)s.prompt_tokens, (long long)s.evictions,
                 (long long)s.cow_copies, (long long)s.dedup_hits);
}

CHECK_MAIN
