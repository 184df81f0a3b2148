// KV events, snapshots and prefix-match queries through the C API: the event stream rebuilds
// exactly the snapshot (also with several threads), hashes are the same in every cache, a clear
// that empties the index says AllBlocksCleared, callbacks run outside the cache's lock, and
// pagedkv_match_length reports what the next create reuses without changing anything (the LRU
// order included: two caches, one of them queried all along, evict the same pages).
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "kv_event_mirror.h"
#include "kv_event_workload.h"
#include "test_cache_util.h"

using namespace cache_test;
using namespace kv_events_test;

namespace {

// A callback that mirrors the blocks and checks the batch order.
struct Recorder {
    pagedkv_cache* cache = nullptr;
    BlockMirror mirror;
    std::mutex mutex;  // the callback runs on one thread at a time; this guards reads from the test
    int64_t next_seq = 0;
    int64_t batches = 0, events = 0;
    std::vector<int32_t> types;
    std::string problem;
    bool query_from_callback = false;

    static void callback(const pagedkv_event_batch* batch, void* self) { static_cast<Recorder*>(self)->on(*batch); }

    void on(const pagedkv_event_batch& batch) {
        std::lock_guard lock(mutex);
        if (batch.seq != next_seq && problem.empty())
            problem = "batch seq " + std::to_string(batch.seq) + ", expected " + std::to_string(next_seq);
        next_seq = batch.seq + 1;
        ++batches;
        events += batch.num_events;
        if (batch.num_events < 1 && problem.empty()) problem = "an empty batch was delivered";
        for (int32_t i = 0; i < batch.num_events; ++i) types.push_back(batch.events[i].type);
        mirror.apply(batch);
        if (query_from_callback) {
            // Runs outside the cache's lock: these calls take it (they would deadlock under it).
            pagedkv_cache_stats s{};
            s.struct_size = sizeof(s);
            if (pagedkv_cache_get_stats(cache, &s) != PAGEDKV_OK && problem.empty()) problem = pagedkv_last_error();
            int32_t prompt[3] = {1, 2, 3};
            int64_t cached = 0;
            if (pagedkv_match_length(cache, prompt, 3, nullptr, 0, &cached, nullptr) != PAGEDKV_OK && problem.empty())
                problem = pagedkv_last_error();
        }
    }
};

void listen(pagedkv_cache* cache, Recorder& recorder) {
    recorder.cache = cache;
    CHECK_EQ(pagedkv_cache_set_event_callback(cache, &Recorder::callback, &recorder), PAGEDKV_OK);
}

std::vector<int64_t> snapshot_hashes(pagedkv_cache* cache) {
    int32_t count = 0;
    CHECK_EQ(pagedkv_cache_snapshot(cache, nullptr, nullptr, 0, &count, nullptr), PAGEDKV_OK);
    std::vector<pagedkv_snapshot_block> blocks(static_cast<size_t>(count));
    CHECK_EQ(pagedkv_cache_snapshot(cache, blocks.data(), nullptr, count, &count, nullptr), PAGEDKV_OK);
    std::vector<int64_t> hashes;
    for (const auto& block : blocks) hashes.push_back(block.block_hash);
    std::sort(hashes.begin(), hashes.end());
    return hashes;
}

int64_t match(pagedkv_cache* cache, const std::vector<int32_t>& prompt, const std::string& salt,
              pagedkv_prefix_match* details = nullptr) {
    int64_t cached = -1;
    int32_t status = pagedkv_match_length(cache, prompt.data(), int64_t(prompt.size()),
                                          reinterpret_cast<const uint8_t*>(salt.data()), int32_t(salt.size()), &cached,
                                          details);
    if (status != PAGEDKV_OK) std::fprintf(stderr, "  match_length: %s\n", pagedkv_last_error());
    CHECK_EQ(status, PAGEDKV_OK);
    return cached;
}

std::vector<int32_t> iota(int32_t from, int32_t count) {
    std::vector<int32_t> tokens(static_cast<size_t>(count));
    for (int32_t i = 0; i < count; ++i) tokens[size_t(i)] = from + i;
    return tokens;
}

}  // namespace

// ---- events ---------------------------------------------------------------------------------------

TEST(events_of_a_random_workload_rebuild_the_snapshot) {
    for (int32_t page_size : {1, 4, 16}) {
        Cache cache(make_config(page_size, page_size == 16 ? 24 : 48, 0, 50));
        Recorder recorder;
        listen(cache, recorder);
        RandomWorkload work(cache, 7 + uint64_t(page_size));
        for (int step = 0; step < 3000; ++step) {
            work.step();
            if (step % 250 == 0) {
                CHECK_EQ(recorder.mirror.differs_from_snapshot(cache, page_size), std::string());
                CHECK_CONSISTENT(cache);
            }
        }
        CHECK_EQ(recorder.problem, std::string());
        CHECK_EQ(recorder.mirror.differs_from_snapshot(cache, page_size), std::string());
        CHECK(recorder.batches > 100);
        CHECK(stats(cache).evictions > 0);  // the workload did evict
        CHECK(std::count(recorder.types.begin(), recorder.types.end(), PAGEDKV_EVENT_BLOCK_REMOVED) > 0);
    }
}

TEST(events_from_several_threads_arrive_in_order_outside_the_lock) {
    Cache cache(make_config(4, 96, 0, 50));
    Recorder recorder;
    recorder.query_from_callback = true;
    listen(cache, recorder);
    std::vector<std::thread> threads;
    for (uint64_t t = 0; t < 3; ++t)
        threads.emplace_back([&, t] {
            RandomWorkload work(cache, 100 + t);
            for (int step = 0; step < 1500; ++step) work.step();
        });
    for (auto& thread : threads) thread.join();
    CHECK_EQ(recorder.problem, std::string());
    CHECK_EQ(recorder.mirror.differs_from_snapshot(cache, 4), std::string());
    CHECK_CONSISTENT(cache);
}

TEST(a_chain_of_committed_pages_is_one_stored_event) {
    Cache cache(4, 32);
    Recorder recorder;
    listen(cache, recorder);
    int64_t id = create(cache, iota(1, 13));  // 3 full pages + 1 token
    CHECK_EQ(pagedkv_sequence_commit(cache, id, 13), PAGEDKV_OK);
    CHECK_EQ(recorder.batches, 1);
    CHECK_EQ(recorder.types.size(), size_t(1));
    CHECK_EQ(recorder.mirror.size(), size_t(3));  // the partial last page is not a block
    CHECK_EQ(recorder.mirror.differs_from_snapshot(cache, 4), std::string());
}

TEST(a_batch_commit_stores_blocks_and_a_fork_or_release_stores_nothing) {
    Cache cache(4, 32);
    Recorder recorder;
    listen(cache, recorder);
    int64_t id = create(cache, iota(1, 9));
    pagedkv_batch* batch = nullptr;
    CHECK_EQ(pagedkv_batch_create(cache, &id, 1, &batch), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_commit(cache, batch), PAGEDKV_OK);
    pagedkv_batch_destroy(batch);
    CHECK_EQ(recorder.mirror.size(), size_t(2));
    int64_t child = 0;
    CHECK_EQ(pagedkv_sequence_fork(cache, id, &child), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_release(cache, child), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
    CHECK_EQ(recorder.batches, 1);
    CHECK_EQ(recorder.mirror.differs_from_snapshot(cache, 4), std::string());
}

TEST(a_clear_that_empties_the_index_says_all_blocks_cleared) {
    Cache cache(4, 32);
    Recorder recorder;
    listen(cache, recorder);
    int64_t held = create(cache, iota(1, 9));
    compute(cache, held, 9);
    int64_t other = create(cache, iota(100, 9));
    compute(cache, other, 9);
    CHECK_EQ(pagedkv_sequence_release(cache, other), PAGEDKV_OK);
    int32_t evicted = 0;
    CHECK_EQ(pagedkv_cache_clear_unused(cache, &evicted), PAGEDKV_OK);  // held blocks remain: removals
    CHECK_EQ(recorder.types.back(), int32_t(PAGEDKV_EVENT_BLOCK_REMOVED));
    CHECK_EQ(recorder.mirror.differs_from_snapshot(cache, 4), std::string());
    CHECK_EQ(pagedkv_sequence_release(cache, held), PAGEDKV_OK);
    int64_t batches = recorder.batches;
    CHECK_EQ(pagedkv_cache_clear_unused(cache, &evicted), PAGEDKV_OK);  // nothing left: one clear
    CHECK_EQ(recorder.batches, batches + 1);
    CHECK_EQ(recorder.types.back(), int32_t(PAGEDKV_EVENT_ALL_BLOCKS_CLEARED));
    CHECK_EQ(recorder.mirror.size(), size_t(0));
    CHECK_EQ(pagedkv_cache_clear_unused(cache, &evicted), PAGEDKV_OK);  // already empty: no event
    CHECK_EQ(recorder.batches, batches + 1);
}

TEST(hashes_are_the_same_in_every_cache_and_differ_by_salt) {
    Cache a(4, 32), b(8, 32), c(4, 64);
    for (Cache* cache : {&a, &b, &c}) compute(*cache, create(*cache, iota(1, 17), nullptr, "tenant"), 17);
    CHECK(pagedkv::capi::checked(a.handle)->index_seed() != pagedkv::capi::checked(c.handle)->index_seed());
    CHECK(snapshot_hashes(a) == snapshot_hashes(c));  // another pool size and random index seed
    CHECK(snapshot_hashes(a) != snapshot_hashes(b));  // another page size: other blocks
    compute(c, create(c, iota(1, 17), nullptr, "other tenant"), 17);
    CHECK_EQ(snapshot_hashes(c).size(), size_t(8));  // the same tokens under another salt: new blocks
    // Pinned: the first block of [1..4] under salt "tenant" (page size 4). A change here changes
    // every hash pagedkv publishes; routers compare them across servers and versions.
    std::vector<pagedkv_snapshot_block> blocks(4);
    int32_t count = 0;
    CHECK_EQ(pagedkv_cache_snapshot(a, blocks.data(), nullptr, 4, &count, nullptr), PAGEDKV_OK);
    CHECK_EQ(count, 4);
    int64_t first = -1;
    for (const auto& block : blocks) {
        CHECK(block.block_hash >= 0);
        if (!block.has_parent) first = block.block_hash;
    }
    CHECK_EQ(first, int64_t(2036924834205773035));
}

TEST(a_listener_set_later_sees_blocks_indexed_before_in_the_snapshot) {
    Cache cache(4, 32);
    int64_t id = create(cache, iota(1, 9));
    compute(cache, id, 9);
    Recorder recorder;
    listen(cache, recorder);
    CHECK_EQ(recorder.batches, 0);  // nothing announced
    CHECK_EQ(snapshot_hashes(cache).size(), size_t(2));
    // A block stored now names a parent the snapshot showed.
    CHECK_EQ(pagedkv_sequence_append(cache, id, iota(10, 4).data(), 4), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_commit(cache, id, 13), PAGEDKV_OK);
    std::vector<pagedkv_snapshot_block> blocks(3);
    int32_t count = 0;
    int64_t next = -1;
    CHECK_EQ(pagedkv_cache_snapshot(cache, blocks.data(), nullptr, 3, &count, &next), PAGEDKV_OK);
    CHECK_EQ(count, 3);
    CHECK_EQ(next, recorder.next_seq);
    CHECK(blocks[2].has_parent && blocks[2].parent_block_hash == blocks[1].block_hash);  // parents first
    // Removing the callback stops the events.
    CHECK_EQ(pagedkv_cache_set_event_callback(cache, nullptr, nullptr), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
    int32_t evicted = 0;
    CHECK_EQ(pagedkv_cache_clear_unused(cache, &evicted), PAGEDKV_OK);
    CHECK_EQ(recorder.batches, 1);
}

TEST(snapshot_buffer_protocol) {
    Cache cache(4, 32);
    int64_t id = create(cache, iota(1, 13));
    compute(cache, id, 13);
    int32_t count = -1;
    CHECK_EQ(pagedkv_cache_snapshot(cache, nullptr, nullptr, 0, &count, nullptr), PAGEDKV_OK);
    CHECK_EQ(count, 3);
    std::vector<pagedkv_snapshot_block> blocks(2);
    std::vector<int32_t> tokens(8, -1);
    CHECK_EQ(pagedkv_cache_snapshot(cache, blocks.data(), tokens.data(), 2, &count, nullptr), PAGEDKV_OK);
    CHECK_EQ(count, 3);  // two written
    CHECK(tokens == iota(1, 8));
    CHECK_EQ(blocks[0].has_parent, 0);
    CHECK_EQ(blocks[0].medium, int32_t(PAGEDKV_MEDIUM_CPU));
    CHECK_EQ(pagedkv_cache_snapshot(cache, nullptr, nullptr, 1, &count, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_cache_snapshot(cache, blocks.data(), nullptr, -1, &count, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_cache_snapshot(cache, blocks.data(), nullptr, 2, nullptr, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
}

TEST(publisher_arguments) {
    Cache cache(4, 32);
    pagedkv_event_publisher_config config{};
    config.struct_size = sizeof(config);
    pagedkv_event_publisher* publisher = nullptr;
    CHECK_EQ(pagedkv_event_publisher_create(cache, &config, &publisher), PAGEDKV_ERR_INVALID_ARGUMENT);  // no endpoint
    CHECK(error_mentions("endpoint"));
    config.endpoint = "tcp://127.0.0.1:1";
    config.data_parallel_rank = -1;
    CHECK_EQ(pagedkv_event_publisher_create(cache, &config, &publisher), PAGEDKV_ERR_INVALID_ARGUMENT);
    config.data_parallel_rank = 0;
    config.struct_size = 8;
    CHECK_EQ(pagedkv_event_publisher_create(cache, &config, &publisher), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_event_publisher_destroy(nullptr), PAGEDKV_OK);
    CHECK_EQ(pagedkv_event_publisher_get_stats(nullptr, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    // A build without ZeroMQ says so; one with it publishes (test_kv_events_zmq covers the wire).
    config.struct_size = sizeof(config);
    config.endpoint = "inproc://pagedkv-arguments";
    int32_t status = pagedkv_event_publisher_create(cache, &config, &publisher);
    if (status == PAGEDKV_ERR_UNSUPPORTED) {
        CHECK(error_mentions("ZeroMQ"));
    } else {
        CHECK_EQ(status, PAGEDKV_OK);
        CHECK_EQ(pagedkv_event_publisher_destroy(publisher), PAGEDKV_OK);
        CHECK_EQ(pagedkv_event_publisher_destroy(publisher), PAGEDKV_ERR_INVALID_ARGUMENT);  // twice
    }
}

// ---- prefix-match queries ---------------------------------------------------------------------------

TEST(match_length_is_what_the_next_create_reuses_on_random_traces) {
    for (int32_t page_size : {1, 3, 4, 16}) {
        // Big enough that a create never lacks room for its partial copy (then it could reuse less).
        Cache cache(make_config(page_size, 4096 / page_size + 64, 0, 50));
        RandomWorkload work(cache, 11 + uint64_t(page_size));
        int64_t compared = 0, nonzero = 0;
        for (int step = 0; step < 4000; ++step) {
            if (step % 3 != 0) {
                work.step();
                continue;
            }
            std::vector<int32_t> prompt = work.random_prompt();
            std::string salt = work.random_salt();
            pagedkv_prefix_match details{};
            details.struct_size = sizeof(details);
            int64_t predicted = match(cache, prompt, salt, &details);
            int64_t cached = -1;
            if (work.create(prompt, salt, &cached) == 0) continue;  // out of pages
            CHECK_EQ(predicted, cached);
            CHECK_EQ(details.cached_tokens, cached);
            CHECK_EQ(int64_t(details.shared_pages) * page_size + details.partial_tokens, cached);
            CHECK_EQ(details.tokens_by_medium[PAGEDKV_MEDIUM_CPU], cached);
            ++compared;
            nonzero += cached > 0;
        }
        CHECK(compared > 500);
        CHECK(nonzero > compared / 4);
    }
}

TEST(match_length_changes_nothing_not_even_the_eviction_order) {
    // Two caches see the same operations; one is also queried before every step. Afterwards both
    // must be identical: statistics, salt roots, and which pages a big request takes (evicting
    // least recently used first).
    const int32_t page_size = 4, pages = 40;
    Cache plain(make_config(page_size, pages, 0, 50)), queried(make_config(page_size, pages, 0, 50));
    RandomWorkload work_plain(plain, 5), work_queried(queried, 5), questions(queried, 99);
    for (int step = 0; step < 2500; ++step) {
        for (int q = 0; q < 3; ++q) match(queried, questions.random_prompt(), q == 2 ? "never-used-salt" : questions.random_salt());
        work_plain.step();
        work_queried.step();
    }
    CHECK(same_stats(stats(plain), stats(queried)));
    CHECK_EQ(pagedkv::capi::checked(plain.handle)->index_roots(), pagedkv::capi::checked(queried.handle)->index_roots());
    work_plain.release_all();
    work_queried.release_all();
    CHECK(stats(plain).evictions > 0);
    std::vector<int32_t> fresh(pages * page_size, 7);  // under a salt of its own: needs every page
    int64_t a = create(plain, fresh, nullptr, "fresh"), b = create(queried, fresh, nullptr, "fresh");
    CHECK(block_table(plain, a) == block_table(queried, b));
    CHECK_CONSISTENT(queried);
}

TEST(match_length_arguments_and_reuse_off) {
    Cache cache(4, 32);
    int64_t id = create(cache, iota(1, 9));
    compute(cache, id, 9);
    CHECK_EQ(match(cache, iota(1, 9), ""), 8);     // the last token is always computed
    CHECK_EQ(match(cache, iota(1, 12), ""), 9);    // two pages and the partial run of one token
    CHECK_EQ(match(cache, iota(1, 12), "x"), 0);   // another salt
    CHECK_EQ(match(cache, {7}, ""), 0);
    int64_t cached = 0;
    int32_t bad[2] = {1, -5};
    CHECK_EQ(pagedkv_match_length(cache, bad, 2, nullptr, 0, &cached, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_match_length(cache, bad, 0, nullptr, 0, &cached, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_match_length(cache, bad, 1, nullptr, 0, nullptr, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_match_length(cache, bad, 1, nullptr, 3, &cached, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    pagedkv_prefix_match small{};
    small.struct_size = 4;
    CHECK_EQ(pagedkv_match_length(cache, bad, 1, nullptr, 0, &cached, &small), PAGEDKV_ERR_INVALID_ARGUMENT);
    Cache off(4, 32, PAGEDKV_CACHE_NO_REUSE);
    int64_t other = create(off, iota(1, 9));
    compute(off, other, 9);
    CHECK_EQ(match(off, iota(1, 9), ""), 0);
}

CHECK_MAIN
