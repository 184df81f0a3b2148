// Several threads drive one cache at once (metadata calls serialize on the cache). Each thread
// owns its sequences and checks their KV markers; prompts share stems so threads hit, dedup and
// evict each other's pages. At the end every page must be free or cached and the counts add up.
#include <atomic>
#include <vector>
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

namespace {
pagedkv_attention_params kernel_params() {
    pagedkv_attention_params p{};
    p.struct_size = sizeof(p);
    p.num_qo_heads = 2;
    p.num_threads = 1;
    return p;
}
}  // namespace

// Defect 10: the partial-prefix copy of a create read a whole donor page while the donor's owner
// wrote other slots of it from another thread. Copies now read only the run they need, so the
// two touch disjoint bytes (ThreadSanitizer checks this in CI).
TEST(a_partial_copy_never_reads_the_slots_its_donor_is_writing) {
    Cache cache(8, 64);
    REQUIRE(cache.handle);
    const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6};
    int64_t donor = create(cache, prompt);
    compute(cache, donor, 3);  // the run [0, 3) is indexed; [3, 6) is still to compute
    pagedkv_batch* batch = nullptr;
    REQUIRE(pagedkv_batch_create(cache, &donor, 1, &batch) == PAGEDKV_OK);
    std::atomic<bool> done{false};
    std::atomic<int> failures{0};
    std::thread writer([&] {
        std::vector<float> kv(3 * 2 * 8, 0.25f);
        const pagedkv_attention_params p = kernel_params();
        while (!done.load())
            if (pagedkv_write_kv(cache, batch, 1, kv.data(), kv.data(), PAGEDKV_DTYPE_F32, &p) != PAGEDKV_OK)
                ++failures;
    });
    for (int round = 0; round < 2000; ++round) {
        int64_t cached = 0;
        int64_t id = create(cache, {1, 2, 3, 9, 9}, &cached);  // copies the donor's run [0, 3)
        if (cached != 3 || first_bad_marker(cache, id) != -1) ++failures;
        pagedkv_sequence_release(cache, id);
    }
    done = true;
    writer.join();
    CHECK_EQ(failures.load(), 0);
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_OK);
    CHECK_CONSISTENT(cache);
}

// A sequence released while another thread runs kernels with a batch holding it: the release
// waits for the running call, after which the batch is stale, so the pages it frees and a new
// sequence takes can never be written through the old batch.
TEST(a_release_waits_for_running_kernel_calls_then_the_batch_is_stale) {
    Cache cache(4, 8);
    REQUIRE(cache.handle);
    int64_t victim = create(cache, {1, 2, 3, 4, 5, 6, 7, 8});
    pagedkv_batch* batch = nullptr;
    REQUIRE(pagedkv_batch_create(cache, &victim, 1, &batch) == PAGEDKV_OK);
    std::atomic<int> calls{0}, unexpected{0};
    std::thread kernels([&] {
        std::vector<float> kv(8 * 2 * 8, 77.0f), q(8 * 2 * 8, 0.5f), out(q.size());
        const pagedkv_attention_params p = kernel_params();
        for (;;) {
            int32_t status = pagedkv_write_kv(cache, batch, 0, kv.data(), kv.data(), PAGEDKV_DTYPE_F32, &p);
            if (status == PAGEDKV_OK)
                status = pagedkv_prefill_attention(cache, batch, 0, &p, q.data(), out.data(), nullptr);
            if (status == PAGEDKV_ERR_STALE_BATCH) return;
            if (status != PAGEDKV_OK) ++unexpected;
            ++calls;
        }
    });
    while (calls.load() < 50) std::this_thread::yield();
    CHECK_EQ(pagedkv_sequence_release(cache, victim), PAGEDKV_OK);
    // The freed pages go to a new sequence at once; its KV must stay exactly what it wrote.
    int64_t heir = create(cache, {9, 9, 9, 9, 9, 9, 9, 9});
    compute(cache, heir, 7);
    kernels.join();
    CHECK_EQ(unexpected.load(), 0);
    CHECK_EQ(first_bad_marker(cache, heir), -1);
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_OK);
    CHECK_CONSISTENT(cache);
}

CHECK_MAIN
