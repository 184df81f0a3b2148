// Prefix reuse through the C API: the scenarios users rely on (ExLlamaV2-style shared prompts,
// multi-turn chat), the last-token rule, salts, dedup, eviction order, pinning, all-or-nothing.
#include <random>

#include "test_cache_util.h"

using namespace cache_test;

namespace {

// Prefix 400 + middle 200 + three suffixes (80, 81, 82 tokens) that differ at their first token.
void exllama_scenario(int32_t page_size, bool release_earlier) {
    Cache cache(page_size, 4096 / page_size * 2 + 16);
    REQUIRE(cache.handle);
    std::mt19937_64 rng(page_size * 2 + release_earlier);
    auto prefix = random_tokens(rng, 400), middle = random_tokens(rng, 200);
    std::vector<std::vector<int32_t>> suffixes;
    for (int32_t length : {80, 81, 82}) {
        auto suffix = random_tokens(rng, size_t(length));
        suffix[0] = 32000 + int32_t(suffixes.size());  // distinct first tokens
        suffixes.push_back(suffix);
    }
    std::vector<int64_t> ids;
    for (size_t request = 0; request < 3; ++request) {
        auto prompt = concat({prefix, middle, suffixes[request]});
        int64_t cached = -1;
        int64_t id = create(cache, prompt, &cached);
        CHECK_EQ(cached, request == 0 ? 0 : 600);
        CHECK_EQ(first_bad_marker(cache, id), -1);  // the 600 reused positions hold the right KV
        pagedkv_sequence_info i = info(cache, id);
        CHECK_EQ(i.num_cached, cached);
        CHECK_EQ(i.num_computed, cached);
        int64_t to_compute = 0;
        CHECK_EQ(pagedkv_sequence_get_slot_mapping(cache, id, nullptr, 0, &to_compute), PAGEDKV_OK);
        CHECK_EQ(to_compute, int64_t(prompt.size()) - cached);  // only the suffix (all of request 1)
        compute(cache, id, int64_t(prompt.size()));
        CHECK_EQ(first_bad_marker(cache, id), -1);
        if (release_earlier)
            CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
        else
            ids.push_back(id);
        CHECK_CONSISTENT(cache);
    }
    pagedkv_cache_stats s = stats(cache);
    CHECK_EQ(s.reused_tokens, 1200);
    CHECK_EQ(s.prompt_tokens, 2043);
    CHECK_EQ(s.computed_tokens, 2043 - 1200);
    CHECK_EQ(s.live_sequences, release_earlier ? 0 : 3);
    CHECK_EQ(s.pages_free + s.pages_cached + s.pages_in_use, s.pages_total);
}

}  // namespace

TEST(exllama_shared_prompt_page16_released) { exllama_scenario(16, true); }
TEST(exllama_shared_prompt_page16_kept) { exllama_scenario(16, false); }
TEST(exllama_shared_prompt_page256_released) { exllama_scenario(256, true); }
TEST(exllama_shared_prompt_page256_kept) { exllama_scenario(256, false); }

TEST(multi_turn_chat_reuses_the_partial_last_page) {
    for (bool keep_turn1 : {false, true}) {
        Cache cache(16, 64);
        std::mt19937_64 rng(7);
        auto prompt1 = random_tokens(rng, 45);
        int64_t cached = -1;
        int64_t id = create(cache, prompt1, &cached);
        CHECK_EQ(cached, 0);
        compute(cache, id, 45);  // prefill; its logits give the first answer token
        auto answer = random_tokens(rng, 30);
        for (int32_t token : answer) {  // decode: append the sampled token, compute it, commit
            CHECK_EQ(pagedkv_sequence_append(cache, id, &token, 1), PAGEDKV_OK);
            compute(cache, id, info(cache, id).num_tokens);
        }
        CHECK_EQ(info(cache, id).num_computed, 75);  // 4 full pages + 11 tokens in a partial one
        if (!keep_turn1) CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
        auto prompt2 = concat({prompt1, answer, random_tokens(rng, 20)});
        int64_t id2 = create(cache, prompt2, &cached);
        CHECK_EQ(cached, 75);
        CHECK_EQ(first_bad_marker(cache, id2), -1);
        CHECK_CONSISTENT(cache);
    }
}

TEST(the_last_prompt_token_is_always_left_to_compute) {
    Cache cache(4, 64);
    std::mt19937_64 rng(3);
    for (size_t n : {1, 3, 4, 5, 8, 9, 12}) {
        auto prompt = random_tokens(rng, n);
        int64_t cached = -1;
        int64_t id = create(cache, prompt, &cached);
        CHECK_EQ(cached, 0);
        compute(cache, id, int64_t(n));
        int64_t again = create(cache, prompt, &cached);
        CHECK_EQ(cached, int64_t(n) - 1);  // fully cached: all but the last token
        CHECK_EQ(first_bad_marker(cache, again), -1);
        int64_t slots = 0;
        CHECK_EQ(pagedkv_sequence_get_slot_mapping(cache, again, nullptr, 0, &slots), PAGEDKV_OK);
        CHECK_EQ(slots, 1);
        CHECK_EQ(pagedkv_sequence_release(cache, again), PAGEDKV_OK);
        CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
    }
    CHECK_CONSISTENT(cache);
}

TEST(salts_isolate_prefixes) {
    Cache cache(4, 64);
    std::mt19937_64 rng(5);
    auto prompt = random_tokens(rng, 10);
    int64_t cached = -1;
    int64_t a = create(cache, prompt, &cached, "tenant-a");
    compute(cache, a, 10);
    create(cache, prompt, &cached, "tenant-b");
    CHECK_EQ(cached, 0);
    create(cache, prompt, &cached, "");
    CHECK_EQ(cached, 0);
    create(cache, prompt, &cached, std::string("tenant-a\0", 9));  // bytes, not C strings
    CHECK_EQ(cached, 0);
    create(cache, prompt, &cached, "tenant-");
    CHECK_EQ(cached, 0);
    create(cache, prompt, &cached, "tenant-a");
    CHECK_EQ(cached, 9);
    // Null salt with length 0 is the empty salt.
    int64_t id = 0;
    CHECK_EQ(pagedkv_sequence_create(cache, prompt.data(), 10, nullptr, 0, &id, &cached), PAGEDKV_OK);
    CHECK_EQ(cached, 0);
    CHECK_CONSISTENT(cache);
}

TEST(reuse_off_never_matches) {
    Cache cache(4, 64, PAGEDKV_CACHE_NO_REUSE);
    std::mt19937_64 rng(6);
    auto prompt = random_tokens(rng, 10);
    int64_t cached = -1;
    int64_t a = create(cache, prompt, &cached);
    compute(cache, a, 10);
    CHECK_EQ(pagedkv_sequence_release(cache, a), PAGEDKV_OK);
    create(cache, prompt, &cached);
    CHECK_EQ(cached, 0);
    pagedkv_cache_stats s = stats(cache);
    CHECK_EQ(s.index_nodes, 0);
    CHECK_EQ(s.pages_cached, 0);
    CHECK_CONSISTENT(cache);
}

TEST(identical_pages_computed_twice_are_deduplicated_on_commit) {
    Cache cache(4, 64);
    std::mt19937_64 rng(8);
    auto prompt = random_tokens(rng, 14);  // 3 full pages + 2 tokens
    int64_t cached = -1;
    int64_t a = create(cache, prompt, &cached);
    int64_t b = create(cache, prompt, &cached);  // before a commits: nothing to share
    CHECK_EQ(cached, 0);
    CHECK_EQ(stats(cache).pages_in_use, 8);
    compute(cache, a, 14);
    compute(cache, b, 14);
    auto ta = block_table(cache, a), tb = block_table(cache, b);
    for (size_t i = 0; i < 3; ++i) CHECK_EQ(ta[i], tb[i]);  // b now uses a's full pages
    CHECK(ta[3] != tb[3]);                                 // each keeps its own partial tail
    pagedkv_cache_stats s = stats(cache);
    CHECK_EQ(s.dedup_hits, 3);
    CHECK_EQ(s.pages_in_use, 5);  // b's three duplicates went back to the free list
    CHECK_EQ(s.pages_free, 64 - 5);
    CHECK_EQ(first_bad_marker(cache, a), -1);
    CHECK_EQ(first_bad_marker(cache, b), -1);
    CHECK_CONSISTENT(cache);
}

TEST(a_released_sequence_is_matched_again) {
    Cache cache(4, 16);
    std::mt19937_64 rng(9);
    auto prompt = random_tokens(rng, 11);
    int64_t cached = -1;
    int64_t a = create(cache, prompt, &cached);
    compute(cache, a, 11);
    CHECK_EQ(pagedkv_sequence_release(cache, a), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_release(cache, a), PAGEDKV_ERR_NOT_FOUND);
    pagedkv_cache_stats s = stats(cache);
    CHECK_EQ(s.pages_cached, 3);
    CHECK_EQ(s.pages_in_use, 0);
    CHECK_EQ(s.index_nodes, 3);
    auto longer = concat({prompt, random_tokens(rng, 3)});
    int64_t b = create(cache, longer, &cached);
    CHECK_EQ(cached, 11);
    CHECK_EQ(first_bad_marker(cache, b), -1);
    CHECK_CONSISTENT(cache);
}

TEST(eviction_takes_least_recently_used_leaves_first) {
    for (bool touch_a : {false, true}) {
        Cache cache(4, 8);
        std::mt19937_64 rng(10);
        auto a = random_tokens(rng, 8), b = random_tokens(rng, 8);
        int64_t cached = -1;
        int64_t ida = create(cache, a, &cached);
        int64_t idb = create(cache, b, &cached);
        compute(cache, ida, 8);
        compute(cache, idb, 8);
        CHECK_EQ(pagedkv_sequence_release(cache, ida), PAGEDKV_OK);  // a is older than b
        CHECK_EQ(pagedkv_sequence_release(cache, idb), PAGEDKV_OK);
        if (touch_a) {  // matching a again makes it the most recent
            int64_t again = create(cache, a, &cached);
            CHECK_EQ(cached, 7);
            CHECK_EQ(pagedkv_sequence_release(cache, again), PAGEDKV_OK);
        }
        // Two evictions, both from the older prompt: its leaf goes first, then its first page,
        // which just became a leaf, before the newer prompt's leaf.
        // (touch_a: a's copy is one more cached page and one fewer free one.)
        int64_t c = create(cache, random_tokens(rng, touch_a ? 20 : 24), &cached);
        pagedkv_cache_stats s = stats(cache);
        CHECK_EQ(s.evictions, 2);
        CHECK_EQ(s.index_nodes, touch_a ? 3 : 2);  // touch_a: a's copied run donated a page too
        CHECK_EQ(pagedkv_sequence_release(cache, c), PAGEDKV_OK);
        auto probe = [&](const std::vector<int32_t>& prompt) {
            int64_t hit = -1;
            int64_t id = create(cache, concat({prompt, {1}}), &hit);
            pagedkv_sequence_release(cache, id);
            return hit;
        };
        CHECK_EQ(probe(touch_a ? b : a), 0);
        CHECK_EQ(probe(touch_a ? a : b), 8);
        CHECK_CONSISTENT(cache);
    }
}

TEST(pages_held_by_sequences_are_never_evicted) {
    Cache cache(4, 6);
    std::mt19937_64 rng(11);
    auto a = random_tokens(rng, 8), b = random_tokens(rng, 8);
    int64_t cached = -1;
    int64_t ida = create(cache, a, &cached);
    compute(cache, ida, 8);  // live, holds 2 pages
    int64_t idb = create(cache, b, &cached);
    compute(cache, idb, 8);
    CHECK_EQ(pagedkv_sequence_release(cache, idb), PAGEDKV_OK);  // 2 cached, 2 free
    int64_t idc = create(cache, random_tokens(rng, 16), &cached);  // 4 pages: evicts b's 2
    CHECK_EQ(stats(cache).evictions, 2);
    CHECK_EQ(first_bad_marker(cache, ida), -1);
    int64_t id = 0;
    auto d = random_tokens(rng, 2);
    CHECK_EQ(pagedkv_sequence_create(cache, d.data(), 2, nullptr, 0, &id, nullptr), PAGEDKV_ERR_OUT_OF_PAGES);
    CHECK(last_error().find("needs 1") != std::string::npos);
    CHECK(last_error().find("only 0") != std::string::npos);
    CHECK_EQ(pagedkv_sequence_release(cache, idc), PAGEDKV_OK);
    CHECK_EQ(first_bad_marker(cache, ida), -1);
    CHECK_CONSISTENT(cache);
}

TEST(out_of_pages_changes_nothing) {
    Cache cache(4, 6);
    std::mt19937_64 rng(12);
    auto a = random_tokens(rng, 8), b = random_tokens(rng, 8), live = random_tokens(rng, 6);
    int64_t cached = -1;
    int64_t ida = create(cache, a, &cached);
    int64_t idb = create(cache, b, &cached);
    compute(cache, ida, 8);
    compute(cache, idb, 8);
    CHECK_EQ(pagedkv_sequence_release(cache, ida), PAGEDKV_OK);  // a older than b
    CHECK_EQ(pagedkv_sequence_release(cache, idb), PAGEDKV_OK);
    int64_t idl = create(cache, live, &cached);
    compute(cache, idl, 5);
    auto table_before = block_table(cache, idl);
    pagedkv_cache_stats before = stats(cache);  // 0 free, 4 cached, 2 in use

    // Matches a, so a is pinned: of the 4 cached pages only b's 2 can be evicted, and 3 fresh
    // pages are needed. Refused.
    auto too_long = concat({a, random_tokens(rng, 12)});
    int64_t id = 0;
    CHECK_EQ(pagedkv_sequence_create(cache, too_long.data(), int64_t(too_long.size()), nullptr, 0, &id, &cached),
             PAGEDKV_ERR_OUT_OF_PAGES);
    CHECK(last_error().find("needs 3") != std::string::npos);
    CHECK(last_error().find("only 2") != std::string::npos);
    CHECK(same_stats(before, stats(cache)));
    std::vector<int32_t> more(20, 3);  // needs 5 new pages, 4 are evictable
    CHECK_EQ(pagedkv_sequence_append(cache, idl, more.data(), 20), PAGEDKV_ERR_OUT_OF_PAGES);
    CHECK(same_stats(before, stats(cache)));
    CHECK(block_table(cache, idl) == table_before);
    CHECK_EQ(info(cache, idl).num_tokens, 6);
    CHECK_CONSISTENT(cache);

    // The failed create must not have refreshed a: a is still the least recent, evicted first.
    int64_t big = create(cache, random_tokens(rng, 8), &cached);  // needs 2 evictions
    CHECK_EQ(stats(cache).evictions, 2);
    CHECK_EQ(pagedkv_sequence_release(cache, big), PAGEDKV_OK);
    int64_t probe = create(cache, concat({b, {5}}), &cached);
    CHECK_EQ(cached, 8);
    pagedkv_sequence_release(cache, probe);
    probe = create(cache, concat({a, {5}}), &cached);
    CHECK_EQ(cached, 0);
    CHECK_CONSISTENT(cache);
}

TEST(fork_shares_pages_and_copies_on_write) {
    Cache cache(4, 32);
    std::mt19937_64 rng(13);
    auto prompt = random_tokens(rng, 6);  // a full page + 2 tokens
    int64_t cached = -1;
    int64_t parent = create(cache, prompt, &cached);
    compute(cache, parent, 6);
    int64_t child = 0;
    CHECK_EQ(pagedkv_sequence_fork(cache, parent, &child), PAGEDKV_OK);
    auto tp = block_table(cache, parent), tc = block_table(cache, child);
    CHECK(tp == tc);  // everything shared, no copy
    CHECK_EQ(stats(cache).cow_copies, 0);
    CHECK_EQ(info(cache, child).num_computed, 6);
    CHECK(tokens_of(cache, child) == prompt);
    auto parent_tail = page_bytes(cache, tp[1]);

    int32_t token = 77;
    CHECK_EQ(pagedkv_sequence_append(cache, child, &token, 1), PAGEDKV_OK);  // writes into the shared tail
    tc = block_table(cache, child);
    CHECK_EQ(tc[0], tp[0]);
    CHECK(tc[1] != tp[1]);
    CHECK_EQ(stats(cache).cow_copies, 1);
    CHECK_EQ(first_bad_marker(cache, child), -1);  // the copy carries the computed run
    compute(cache, child, 7);
    CHECK(page_bytes(cache, tp[1]) == parent_tail);  // the parent's KV is untouched
    CHECK_EQ(first_bad_marker(cache, parent), -1);

    // The parent now holds its tail alone: it writes in place.
    token = 78;
    CHECK_EQ(pagedkv_sequence_append(cache, parent, &token, 1), PAGEDKV_OK);
    CHECK(block_table(cache, parent) == tp);
    CHECK_EQ(stats(cache).cow_copies, 1);
    compute(cache, parent, 7);
    CHECK_EQ(first_bad_marker(cache, parent), -1);
    CHECK_EQ(first_bad_marker(cache, child), -1);
    CHECK_CONSISTENT(cache);
}

TEST(fork_copies_pages_still_being_computed) {
    Cache cache(4, 32);
    std::mt19937_64 rng(14);
    auto prompt = random_tokens(rng, 10);
    int64_t cached = -1;
    int64_t parent = create(cache, prompt, &cached);
    compute(cache, parent, 6);  // positions 6..9 still to compute, in pages 1 and 2
    int64_t child = 0;
    CHECK_EQ(pagedkv_sequence_fork(cache, parent, &child), PAGEDKV_OK);
    auto tp = block_table(cache, parent), tc = block_table(cache, child);
    CHECK_EQ(tc[0], tp[0]);
    CHECK(tc[1] != tp[1] && tc[2] != tp[2]);
    CHECK_EQ(stats(cache).cow_copies, 1);  // page 1 has a computed run; page 2 just is fresh
    CHECK_EQ(first_bad_marker(cache, child), -1);
    compute(cache, parent, 10);
    compute(cache, child, 10);
    CHECK_EQ(first_bad_marker(cache, parent), -1);
    CHECK_EQ(first_bad_marker(cache, child), -1);
    // The same tokens computed twice: the child's full page 1 is deduplicated onto the parent's.
    int32_t child_page1 = block_table(cache, child)[1];  // (CHECK_EQ keeps references)
    CHECK_EQ(child_page1, tp[1]);
    pagedkv_cache_stats st = stats(cache);
    CHECK_EQ(st.dedup_hits, 1);
    CHECK_EQ(st.pages_cached, 0);  // the child's copy left the index and went back to the free list
    CHECK_EQ(st.pages_free, 32 - 4);
    CHECK_CONSISTENT(cache);

    Cache small(4, 3);
    int64_t s = create(small, random_tokens(rng, 6), &cached);  // 2 pages, nothing computed
    pagedkv_cache_stats before = stats(small);
    int64_t refused = 0;
    CHECK_EQ(pagedkv_sequence_fork(small, s, &refused), PAGEDKV_ERR_OUT_OF_PAGES);  // needs 2, 1 left
    CHECK(same_stats(before, stats(small)));
    CHECK_CONSISTENT(small);
}

TEST(truncate_then_append_rolls_back) {
    Cache cache(4, 32);
    std::mt19937_64 rng(15);
    auto prompt = random_tokens(rng, 10);
    int64_t cached = -1;
    int64_t id = create(cache, prompt, &cached);
    compute(cache, id, 10);  // pages 0, 1 full; page 2 a donor of 2 tokens
    auto table = block_table(cache, id);
    CHECK_EQ(pagedkv_sequence_truncate(cache, id, 5), PAGEDKV_OK);
    pagedkv_sequence_info i = info(cache, id);
    CHECK_EQ(i.num_tokens, 5);
    CHECK_EQ(i.num_computed, 5);
    CHECK_EQ(i.num_pages, 2);
    CHECK_EQ(stats(cache).pages_cached, 1);  // the dropped donor stays in the index
    int32_t token = 99;
    CHECK_EQ(pagedkv_sequence_append(cache, id, &token, 1), PAGEDKV_OK);  // page 1 is FULL: copy it
    auto after = block_table(cache, id);
    CHECK_EQ(after[0], table[0]);
    CHECK(after[1] != table[1]);
    CHECK_EQ(stats(cache).cow_copies, 1);
    CHECK_EQ(first_bad_marker(cache, id), -1);
    compute(cache, id, 6);
    // Both continuations stay known.
    int64_t probe = create(cache, concat({prompt, {1}}), &cached);
    CHECK_EQ(cached, 10);
    pagedkv_sequence_release(cache, probe);
    auto rolled = std::vector<int32_t>(prompt.begin(), prompt.begin() + 5);
    rolled.push_back(99);
    probe = create(cache, concat({rolled, {1}}), &cached);
    CHECK_EQ(cached, 6);
    pagedkv_sequence_release(cache, probe);
    CHECK_CONSISTENT(cache);
}

TEST(speculative_rollback_shortens_its_own_donor_without_copying) {
    Cache cache(4, 32);
    std::mt19937_64 rng(16);
    auto prompt = random_tokens(rng, 5);
    int64_t cached = -1;
    int64_t id = create(cache, prompt, &cached);
    compute(cache, id, 5);
    std::vector<int32_t> drafts = {11, 12};
    CHECK_EQ(pagedkv_sequence_append(cache, id, drafts.data(), 2), PAGEDKV_OK);
    compute(cache, id, 7);
    CHECK_EQ(pagedkv_sequence_truncate(cache, id, 6), PAGEDKV_OK);  // draft 12 rejected
    int32_t token = 21;
    auto table = block_table(cache, id);
    CHECK_EQ(pagedkv_sequence_append(cache, id, &token, 1), PAGEDKV_OK);
    CHECK(block_table(cache, id) == table);  // written in place
    CHECK_EQ(stats(cache).cow_copies, 0);
    compute(cache, id, 7);
    CHECK_EQ(first_bad_marker(cache, id), -1);
    int64_t probe = create(cache, concat({prompt, {11, 12, 1}}), &cached);
    CHECK_EQ(cached, 6);  // the rejected draft is forgotten
    pagedkv_sequence_release(cache, probe);
    probe = create(cache, concat({prompt, {11, 21, 1}}), &cached);
    CHECK_EQ(cached, 7);
    CHECK_CONSISTENT(cache);
}

TEST(a_run_shared_by_fork_survives_truncate_of_one_side) {
    Cache cache(4, 32);
    std::mt19937_64 rng(17);
    auto prompt = random_tokens(rng, 7);
    int64_t cached = -1;
    int64_t parent = create(cache, prompt, &cached);
    compute(cache, parent, 7);  // page 1 donates a run of 3
    int64_t child = 0;
    CHECK_EQ(pagedkv_sequence_fork(cache, parent, &child), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_truncate(cache, parent, 5), PAGEDKV_OK);  // shared: the run stays
    CHECK_EQ(pagedkv_sequence_release(cache, child), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_truncate(cache, parent, 5), PAGEDKV_OK);  // now alone, still stays
    int32_t token = 50;
    auto table = block_table(cache, parent);
    CHECK_EQ(pagedkv_sequence_append(cache, parent, &token, 1), PAGEDKV_OK);
    CHECK(block_table(cache, parent)[1] != table[1]);  // must not overwrite the child's run
    compute(cache, parent, 6);
    int64_t probe = create(cache, concat({prompt, {1}}), &cached);
    CHECK_EQ(cached, 7);
    CHECK_EQ(first_bad_marker(cache, probe), -1);
    CHECK_CONSISTENT(cache);
}

TEST(clear_unused_evicts_every_cached_page) {
    Cache cache(4, 32);
    std::mt19937_64 rng(18);
    int64_t cached = -1;
    int64_t live = create(cache, random_tokens(rng, 9), &cached);
    compute(cache, live, 9);
    for (int i = 0; i < 3; ++i) {
        int64_t id = create(cache, random_tokens(rng, 10), &cached);
        compute(cache, id, 10);
        pagedkv_sequence_release(cache, id);
    }
    CHECK_EQ(stats(cache).pages_cached, 9);
    int32_t evicted = -1;
    CHECK_EQ(pagedkv_cache_clear_unused(cache, &evicted), PAGEDKV_OK);
    CHECK_EQ(evicted, 9);
    pagedkv_cache_stats s = stats(cache);
    CHECK_EQ(s.pages_cached, 0);
    CHECK_EQ(s.index_nodes, 3);  // the live sequence's pages stay indexed
    CHECK_EQ(s.pages_free, 32 - 3);
    CHECK_EQ(s.evictions, 9);
    CHECK_EQ(pagedkv_cache_clear_unused(cache, nullptr), PAGEDKV_OK);
    CHECK_CONSISTENT(cache);
}

CHECK_MAIN
