// Regression tests of the serving-safe core, one per defect found by review and fuzzing, all
// through the public C API (plus the cache's own consistency check and two test accessors):
// no handle may write KV it does not own, nothing may commit what was not written, the cache
// never fails a request that fits without it, and sizes, salts and seeds cannot be abused.
#include <climits>
#include <cstdio>
#include <fstream>

#include "cache/cache.h"
#include "test_cache_util.h"

using namespace cache_test;

namespace {

constexpr int32_t kHeads = 2, kDim = 8, kLayers = 2;

pagedkv_attention_params params() {
    pagedkv_attention_params p{};
    p.struct_size = sizeof(p);
    p.num_qo_heads = kHeads;
    return p;
}

// Writes `value` as K and V of every query token of `batch` in every layer.
int32_t write_all(pagedkv_cache* cache, pagedkv_batch* batch, float value) {
    pagedkv_batch_info info{};
    info.struct_size = sizeof(info);
    if (int32_t status = pagedkv_batch_get_info(batch, &info); status != PAGEDKV_OK) return status;
    std::vector<float> kv(size_t(info.num_qo_tokens) * kHeads * kDim, value);
    const pagedkv_attention_params p = params();
    for (int32_t layer = 0; layer < kLayers; ++layer)
        if (int32_t status = pagedkv_write_kv(cache, batch, layer, kv.data(), kv.data(), PAGEDKV_DTYPE_F32, &p);
            status != PAGEDKV_OK)
            return status;
    return PAGEDKV_OK;
}

// K of layer 0, head 0, dim 0 at `position` of a sequence (f32 cache).
float k_at(pagedkv_cache* cache, int64_t id, int64_t position, int32_t page_size) {
    std::vector<int32_t> table = block_table(cache, id);
    return *reinterpret_cast<float*>(marker_slot(cache, table, page_size, kDim, position));
}

pagedkv_batch* batch_of(pagedkv_cache* cache, int64_t id) {
    pagedkv_batch* batch = nullptr;
    CHECK_EQ(pagedkv_batch_create(cache, &id, 1, &batch), PAGEDKV_OK);
    return batch;
}

}  // namespace

// Defect 1: a batch kept after commit + release wrote into pages the index now served to others.
TEST(stale_batch_cannot_overwrite_indexed_pages) {
    Cache cache(4, 16);
    const std::vector<int32_t> prompt = {5, 6, 7, 8, 9, 10, 11, 12, 13};
    int64_t a = create(cache, prompt);
    pagedkv_batch* batch = batch_of(cache, a);
    CHECK_EQ(write_all(cache, batch, 1.0f), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_commit(cache, batch), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_release(cache, a), PAGEDKV_OK);
    const pagedkv_cache_stats before = stats(cache);
    CHECK_EQ(write_all(cache, batch, 99.0f), PAGEDKV_ERR_STALE_BATCH);
    CHECK(error_mentions("stale"));
    CHECK(same_stats(before, stats(cache)));
    int64_t cached = 0;
    int64_t b = create(cache, prompt, &cached);
    CHECK_EQ(cached, 8);
    for (int64_t position = 0; position < cached; ++position) CHECK_EQ(k_at(cache, b, position, 4), 1.0f);
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_OK);
    CHECK_CONSISTENT(cache);
}

// Defect 1, variant: the overwritten page belonged to another live sequence.
TEST(stale_batch_cannot_overwrite_a_live_sequence) {
    Cache cache(4, 16);
    const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t a = create(cache, prompt);
    pagedkv_batch* batch = batch_of(cache, a);
    CHECK_EQ(write_all(cache, batch, 2.0f), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_commit(cache, batch), PAGEDKV_OK);
    int64_t cached = 0;
    int64_t b = create(cache, prompt, &cached);  // shares a's two full pages
    CHECK_EQ(cached, 8);
    CHECK_EQ(write_all(cache, batch, 99.0f), PAGEDKV_ERR_STALE_BATCH);
    const pagedkv_attention_params p = params();
    std::vector<float> q(size_t(9) * kHeads * kDim, 0.5f), out(q.size());
    CHECK_EQ(pagedkv_prefill_attention(cache, batch, 0, &p, q.data(), out.data(), nullptr), PAGEDKV_ERR_STALE_BATCH);
    for (int64_t position = 0; position < 8; ++position) {
        CHECK_EQ(k_at(cache, a, position, 4), 2.0f);
        CHECK_EQ(k_at(cache, b, position, 4), 2.0f);
    }
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_OK);
    CHECK_CONSISTENT(cache);
}

// Defect 2: truncate + append after the batch was built, then the old batch's commit declared
// never-written positions computed, and a later prompt reused them.
TEST(stale_batch_cannot_commit_positions_it_did_not_write) {
    Cache cache(4, 16);
    int64_t a = create(cache, {1, 2, 3, 4});
    pagedkv_batch* batch = batch_of(cache, a);
    CHECK_EQ(pagedkv_sequence_truncate(cache, a, 1), PAGEDKV_OK);
    const std::vector<int32_t> sevens = {7, 7, 7};
    CHECK_EQ(pagedkv_sequence_append(cache, a, sevens.data(), 3), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_commit(cache, batch), PAGEDKV_ERR_STALE_BATCH);
    CHECK(error_mentions("truncated"));
    CHECK_EQ(info(cache, a).num_computed, 0);
    int64_t cached = -1;
    create(cache, {1, 7, 7, 7, 5}, &cached);
    CHECK_EQ(cached, 0);
    // Every kind of change makes a batch stale; a fork does not.
    const std::vector<std::function<int32_t(int64_t)>> changes = {
        [&](int64_t id) { return pagedkv_sequence_commit(cache, id, 1); },
        [&](int64_t id) { return pagedkv_sequence_append(cache, id, sevens.data(), 1); },
        [&](int64_t id) { return pagedkv_sequence_truncate(cache, id, 2); },
        [&](int64_t id) { return pagedkv_sequence_release(cache, id); },
    };
    for (const auto& change : changes) {
        int64_t id = create(cache, {3, 1, 4, 1, 5});
        pagedkv_batch* held = batch_of(cache, id);
        int64_t child = 0;
        CHECK_EQ(pagedkv_sequence_fork(cache, id, &child), PAGEDKV_OK);
        CHECK_EQ(write_all(cache, held, 1.0f), PAGEDKV_OK);  // the fork did not change `id`
        CHECK_EQ(change(id), PAGEDKV_OK);
        CHECK_EQ(write_all(cache, held, 1.0f), PAGEDKV_ERR_STALE_BATCH);
        CHECK_EQ(pagedkv_batch_commit(cache, held), PAGEDKV_ERR_STALE_BATCH);
        CHECK_EQ(pagedkv_batch_destroy(held), PAGEDKV_OK);
        CHECK_EQ(pagedkv_sequence_release(cache, child), PAGEDKV_OK);
    }
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_OK);
    CHECK_CONSISTENT(cache);
}

// Defect 3: 1 free and 1 cached page, and the cached page is the partial-match donor of a
// 2-page prompt: pinning the donor made the request fail although it fits without reuse.
TEST(a_cached_donor_never_causes_out_of_pages) {
    Cache cache(4, 2);
    int64_t a = create(cache, {1, 2, 3});
    compute(cache, a, 3);
    CHECK_EQ(pagedkv_sequence_release(cache, a), PAGEDKV_OK);
    CHECK_EQ(stats(cache).pages_cached, 1);
    CHECK_EQ(stats(cache).pages_free, 1);
    int64_t cached = -1;
    int64_t b = create(cache, {1, 2, 9, 5, 6, 7, 8}, &cached);
    CHECK_EQ(cached, 2);  // the donor was taken over in place: its run is still ours
    CHECK_EQ(first_bad_marker(cache, b), -1);
    CHECK_CONSISTENT(cache);
    CHECK_EQ(pagedkv_sequence_release(cache, b), PAGEDKV_OK);
    // A donor held by a live sequence cannot be taken: no reuse, but no failure either.
    Cache full(4, 3);
    int64_t holder = create(full, {1, 2, 3});
    compute(full, holder, 3);
    int64_t other = 0;
    CHECK_EQ(pagedkv_sequence_create(full, std::vector<int32_t>{1, 2, 9, 5, 6, 7, 8}.data(), 7, nullptr, 0, &other,
                                     &cached),
             PAGEDKV_OK);
    CHECK_EQ(cached, 2);
    CHECK_EQ(first_bad_marker(full, other), -1);
    CHECK_CONSISTENT(full);
}

// Defect 5: sizes at the overflow edge wrapped and read far past the prompt.
TEST(sizes_at_the_overflow_edge_are_refused) {
    Cache cache(16, 8);
    int32_t token = 1;
    int64_t id = 0;
    for (int64_t n : {INT64_MAX, INT64_MAX - 1, INT64_MAX / 2, int64_t(1) << 40, int64_t(8 * 16 + 1)})
        CHECK_EQ(pagedkv_sequence_create(cache, &token, n, nullptr, 0, &id, nullptr), PAGEDKV_ERR_OUT_OF_PAGES);
    id = create(cache, {1, 2, 3});
    for (int64_t n : {INT64_MAX, INT64_MAX - 2, int64_t(1) << 50})  // refused before a token is read
        CHECK_EQ(pagedkv_sequence_append(cache, id, &token, n), PAGEDKV_ERR_OUT_OF_PAGES);
    const std::vector<int32_t> one_too_many(8 * 16 - 2, 1);  // 3 + 126 > 128 positions
    CHECK_EQ(pagedkv_sequence_append(cache, id, one_too_many.data(), int64_t(one_too_many.size())),
             PAGEDKV_ERR_OUT_OF_PAGES);
    CHECK_EQ(pagedkv_sequence_append(cache, id, &token, INT64_MIN), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_truncate(cache, id, INT64_MAX), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_commit(cache, id, INT64_MAX), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_create(cache, &token, 1, reinterpret_cast<const uint8_t*>("x"), INT32_MIN, &id, nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(info(cache, id).num_tokens, 3);
    CHECK_CONSISTENT(cache);
}

namespace {
int64_t resident_kib() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
    return -1;
}
}  // namespace

// Defect 6: every one-shot salt left a root behind (RSS 28 -> 180 MB for 400k salts).
TEST(one_shot_salts_leave_nothing_behind) {
    Cache cache(4, 64);
    auto& impl = *pagedkv::capi::checked(cache);
    const int rounds = std::getenv("PAGEDKV_TEST_QUICK") ? 40000 : 1000000;
    int64_t rss_after_warmup = 0;
    for (int round = 0; round < rounds; ++round) {
        std::string salt = "request-" + std::to_string(round);
        int64_t id = create(cache, {1, 2, 3, 4, 5, 6}, nullptr, salt);
        compute(cache, id, 6);
        CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
        // Roots live only while a sequence or a cached page needs them: at most one per page.
        if (round % 1000 == 0) CHECK(impl.index_roots() <= 64);
        if (round == rounds / 10) rss_after_warmup = resident_kib();
    }
    CHECK_EQ(pagedkv_cache_clear_unused(cache, nullptr), PAGEDKV_OK);
    CHECK_EQ(impl.index_roots(), 0);
    CHECK_CONSISTENT(cache);
    const int64_t growth = resident_kib() - rss_after_warmup;
    std::fprintf(stderr, "  %d salts: RSS grew %lld KiB after the first tenth\n", rounds, (long long)growth);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    CHECK(growth < 4096);  // flat: a leak of even 8 bytes per salt would show at 1M salts
#endif
}

// Defect 7: fixed seeds let crafted prompts share one probe run. Every cache draws its own.
TEST(every_cache_seeds_its_keys) {
    Cache first(4, 8), second(4, 8);
    CHECK(pagedkv::capi::checked(first)->index_seed() != pagedkv::capi::checked(second)->index_seed());
}

namespace {
uint64_t colliding_key(uint64_t, uint64_t, const int32_t*, int32_t) { return 42; }
}  // namespace

// Defect 8: under colliding keys the production walk (not a test-only loop) must still match
// exactly the token-equal pages and reuse min(len - 1, longest common prefix).
TEST(the_production_walk_never_matches_wrong_tokens_under_collisions) {
    pagedkv::Cache cache(make_config(4, 512), &colliding_key);
    std::mt19937_64 rng(8);
    std::vector<std::vector<int32_t>> stems;
    for (int i = 0; i < 4; ++i) stems.push_back(random_tokens(rng, 13, 3));
    std::vector<std::vector<int32_t>> computed;
    for (int round = 0; round < 60; ++round) {
        std::vector<int32_t> prompt = stems[rng() % stems.size()];
        std::vector<int32_t> tail = random_tokens(rng, 1 + rng() % 9, 3);
        prompt.insert(prompt.end(), tail.begin(), tail.end());
        int64_t expected = 0;
        for (const auto& earlier : computed) {
            int64_t common = 0;
            while (common < int64_t(std::min(earlier.size(), prompt.size())) &&
                   earlier[size_t(common)] == prompt[size_t(common)])
                ++common;
            expected = std::max(expected, common);
        }
        expected = std::min<int64_t>(expected, int64_t(prompt.size()) - 1);
        auto created = cache.create_sequence(prompt.data(), int64_t(prompt.size()), nullptr, 0);
        CHECK_EQ(created.cached_tokens, expected);
        cache.commit(created.seq_id, int64_t(prompt.size()));
        computed.push_back(prompt);
        if (rng() % 2) cache.release(created.seq_id);
        CHECK_EQ(cache.check_consistency(), std::string());
    }
}

CHECK_MAIN
