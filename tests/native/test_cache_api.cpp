// The cache's C API contract: configs, layout, every bad input (a status, a message, no change),
// batches, device memory helpers, handles. Plus the trie's hash-collision safety (internal).
#include <climits>
#include <cstring>
#include <random>

#include "pool/page_pool.h"
#include "prefix/prefix_trie.h"
#include "test_cache_util.h"

using namespace cache_test;

namespace {

std::string create_error;  // pagedkv_last_error() of the last create_with

int32_t create_with(pagedkv_cache_config config) {
    pagedkv_cache* cache = nullptr;
    int32_t status = pagedkv_cache_create(&config, &cache);
    create_error = pagedkv_last_error();
    CHECK(status == PAGEDKV_OK ? cache != nullptr : cache == nullptr);
    pagedkv_cache_destroy(cache);
    return status;
}


}  // namespace

TEST(config_validation) {
    CHECK_EQ(create_with(make_config(16, 8)), PAGEDKV_OK);
    auto bad = [](auto mutate, const char* field) {
        pagedkv_cache_config config = make_config(16, 8);
        mutate(config);
        int32_t status = create_with(config);
        bool named = create_error.find(field) != std::string::npos;
        if (status != PAGEDKV_ERR_INVALID_ARGUMENT || !named)
            std::fprintf(stderr, "  expected INVALID_ARGUMENT naming %s, got %d: %s\n", field, status,
                         create_error.c_str());
        return status == PAGEDKV_ERR_INVALID_ARGUMENT && named;
    };
    CHECK(bad([](auto& c) { c.struct_size = 8; }, "struct_size"));
    CHECK(bad([](auto& c) { c.num_layers = 0; }, "num_layers"));
    CHECK(bad([](auto& c) { c.num_kv_heads = -1; }, "num_kv_heads"));
    CHECK(bad([](auto& c) { c.head_dim = 0; }, "head_dim"));
    CHECK(bad([](auto& c) { c.page_size = 0; }, "page_size"));
    CHECK(bad([](auto& c) { c.page_size = 4097; }, "page_size"));
    CHECK(bad([](auto& c) { c.num_pages = -3; }, "num_pages"));
    CHECK(bad([](auto& c) { c.num_pages = 0; }, "byte_budget"));
    CHECK(bad([](auto& c) { c.num_pages = 0, c.byte_budget = 100; }, "byte_budget"));
    CHECK(bad([](auto& c) { c.kv_dtype = 7; }, "kv_dtype"));
    CHECK(bad([](auto& c) { c.device_type = 5; }, "device_type"));
    CHECK(bad([](auto& c) { c.device_index = 1; }, "device_index"));
    CHECK(bad([](auto& c) { c.vocab_size = -1; }, "vocab_size"));
    CHECK(bad([](auto& c) { c.flags = 6; }, "flags"));
    CHECK(bad([](auto& c) { c.num_layers = INT32_MAX, c.num_kv_heads = INT32_MAX, c.head_dim = 256; }, "2^63"));
    // Head dims the kernels cannot serve fail here, not at the first kernel call.
    CHECK(bad([](auto& c) { c.head_dim = 12; }, "multiple of 8"));
    CHECK(bad([](auto& c) { c.head_dim = 264; }, "head_dim"));
    CHECK(bad([](auto& c) { c.head_dim = INT32_MAX; }, "head_dim"));
    CHECK(bad([](auto& c) { c.num_layers = 1 << 20, c.num_kv_heads = 1 << 20, c.num_pages = INT32_MAX; }, "2^63"));

    pagedkv_cache_config cuda = make_config(16, 8);
    cuda.device_type = PAGEDKV_DEVICE_CUDA;
    int32_t devices = 0;
    pagedkv_cuda_device_count(&devices);
    if (devices == 0) CHECK_EQ(create_with(cuda), PAGEDKV_ERR_NO_DEVICE);

    pagedkv_cache* cache = nullptr;
    CHECK_EQ(pagedkv_cache_create(nullptr, &cache), PAGEDKV_ERR_INVALID_ARGUMENT);
    pagedkv_cache_config config = make_config(16, 8);
    CHECK_EQ(pagedkv_cache_create(&config, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("out_cache"));
}

TEST(byte_budget_and_layout) {
    pagedkv_cache_config config = make_config(16, 0);  // page: 2 layers * 2 * 2 heads * 16 * 8 dims * 4 B
    config.byte_budget = 4096 * 10 + 100;
    Cache cache(config);
    REQUIRE(cache.handle);
    pagedkv_cache_layout layout{};
    layout.struct_size = sizeof(layout);
    CHECK_EQ(pagedkv_cache_get_layout(cache, &layout), PAGEDKV_OK);
    CHECK_EQ(layout.num_pages, 10);
    CHECK_EQ(layout.page_bytes, 4096);
    CHECK_EQ(layout.element_bytes, 4);
    CHECK_EQ(layout.slab_stride, 2 * 16 * 8);
    CHECK_EQ(layout.page_stride, 2 * 2 * 2 * 16 * 8);
    CHECK_EQ(layout.pool_bytes, 40960);
    CHECK_EQ(reinterpret_cast<uintptr_t>(layout.pool_base) % 64, 0u);
    void* page3 = nullptr;
    CHECK_EQ(pagedkv_cache_page_address(cache, 3, &page3), PAGEDKV_OK);
    CHECK_EQ(static_cast<char*>(page3) - static_cast<char*>(layout.pool_base), 3 * 4096);
    CHECK_EQ(pagedkv_cache_page_address(cache, 10, &page3), PAGEDKV_ERR_NOT_FOUND);
    CHECK_EQ(pagedkv_cache_page_address(cache, -1, &page3), PAGEDKV_ERR_NOT_FOUND);
    CHECK_EQ(pagedkv_cache_page_address(cache, 0, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);

    // A caller that knows a shorter struct gets exactly that many bytes written.
    struct {
        pagedkv_cache_layout layout;
        char guard[8];
    } small{};
    std::memset(&small, 0x5a, sizeof small);
    small.layout.struct_size = offsetof(pagedkv_cache_layout, pool_bytes) + 8;
    CHECK_EQ(pagedkv_cache_get_layout(cache, &small.layout), PAGEDKV_OK);
    CHECK_EQ(small.guard[0], 0x5a);
    small.layout.struct_size = 12;
    CHECK_EQ(pagedkv_cache_get_layout(cache, &small.layout), PAGEDKV_ERR_INVALID_ARGUMENT);

    pagedkv_cache_stats s = stats(cache);
    CHECK_EQ(s.pages_total, 10);
    CHECK_EQ(s.pages_free, 10);
    s.struct_size = 4;
    CHECK_EQ(pagedkv_cache_get_stats(cache, &s), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_cache_get_stats(cache, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
}

TEST(bad_sequence_inputs_are_reported_and_change_nothing) {
    pagedkv_cache_config config = make_config(4, 16);
    config.vocab_size = 100;
    Cache cache(config);
    REQUIRE(cache.handle);
    std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6};
    int64_t cached = -1;
    int64_t id = create(cache, prompt, &cached);
    compute(cache, id, 3);
    pagedkv_cache_stats before = stats(cache);
    auto table = block_table(cache, id);
    int64_t out = 0;

    // create
    CHECK_EQ(pagedkv_sequence_create(nullptr, prompt.data(), 6, nullptr, 0, &out, nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_create(cache, nullptr, 6, nullptr, 0, &out, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("prompt"));
    CHECK_EQ(pagedkv_sequence_create(cache, prompt.data(), 6, nullptr, 0, nullptr, nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_create(cache, prompt.data(), 0, nullptr, 0, &out, nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_create(cache, prompt.data(), -5, nullptr, 0, &out, nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_create(cache, prompt.data(), 6, nullptr, 3, &out, nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("salt"));
    uint8_t salt = 1;
    CHECK_EQ(pagedkv_sequence_create(cache, prompt.data(), 6, &salt, -1, &out, nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    std::vector<int32_t> out_of_vocab = {1, 2, 100};
    CHECK_EQ(pagedkv_sequence_create(cache, out_of_vocab.data(), 3, nullptr, 0, &out, nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("prompt[2] = 100"));
    std::vector<int32_t> negative = {1, -2};
    CHECK_EQ(pagedkv_sequence_create(cache, negative.data(), 2, nullptr, 0, &out, nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    std::vector<int32_t> huge(17 * 4, 1);
    CHECK_EQ(pagedkv_sequence_create(cache, huge.data(), int64_t(huge.size()), nullptr, 0, &out, nullptr),
             PAGEDKV_ERR_OUT_OF_PAGES);

    // unknown and released ids
    for (int64_t bad_id : {int64_t(0), int64_t(-1), int64_t(42), INT64_MAX}) {
        CHECK_EQ(pagedkv_sequence_commit(cache, bad_id, 1), PAGEDKV_ERR_NOT_FOUND);
        CHECK_EQ(pagedkv_sequence_release(cache, bad_id), PAGEDKV_ERR_NOT_FOUND);
        CHECK_EQ(pagedkv_sequence_truncate(cache, bad_id, 1), PAGEDKV_ERR_NOT_FOUND);
        CHECK_EQ(pagedkv_sequence_append(cache, bad_id, prompt.data(), 1), PAGEDKV_ERR_NOT_FOUND);
        CHECK_EQ(pagedkv_sequence_fork(cache, bad_id, &out), PAGEDKV_ERR_NOT_FOUND);
        pagedkv_sequence_info i{};
        i.struct_size = sizeof(i);
        CHECK_EQ(pagedkv_sequence_get_info(cache, bad_id, &i), PAGEDKV_ERR_NOT_FOUND);
        int32_t count32 = 0;
        CHECK_EQ(pagedkv_sequence_get_block_table(cache, bad_id, nullptr, 0, &count32), PAGEDKV_ERR_NOT_FOUND);
    }
    CHECK_EQ(pagedkv_sequence_release(cache, 42), PAGEDKV_ERR_NOT_FOUND);
    CHECK(error_mentions("sequence 42 is not live in this cache"));

    // commit
    CHECK_EQ(pagedkv_sequence_commit(cache, id, 2), PAGEDKV_ERR_INVALID_ARGUMENT);  // backwards
    CHECK(error_mentions("[3, 6]"));
    CHECK_EQ(pagedkv_sequence_commit(cache, id, 7), PAGEDKV_ERR_INVALID_ARGUMENT);  // beyond
    // append
    CHECK_EQ(pagedkv_sequence_append(cache, id, nullptr, 1), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_append(cache, id, prompt.data(), 0), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_append(cache, id, prompt.data(), -1), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_append(cache, id, out_of_vocab.data(), 3), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("tokens[2] = 100"));
    CHECK_EQ(pagedkv_sequence_append(cache, id, huge.data(), int64_t(huge.size())), PAGEDKV_ERR_OUT_OF_PAGES);
    // truncate
    CHECK_EQ(pagedkv_sequence_truncate(cache, id, 0), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_truncate(cache, id, 7), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_truncate(cache, id, -1), PAGEDKV_ERR_INVALID_ARGUMENT);
    // fork / info / arrays
    CHECK_EQ(pagedkv_sequence_fork(cache, id, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_get_info(cache, id, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    pagedkv_sequence_info short_info{};
    short_info.struct_size = 8;
    CHECK_EQ(pagedkv_sequence_get_info(cache, id, &short_info), PAGEDKV_ERR_INVALID_ARGUMENT);
    int32_t count32 = 0;
    int64_t count64 = 0;
    int32_t pages[8];
    CHECK_EQ(pagedkv_sequence_get_block_table(cache, id, pages, 8, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_get_block_table(cache, id, nullptr, 2, &count32), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_get_block_table(cache, id, pages, -1, &count32), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_get_block_table(cache, id, pages, 1, &count32), PAGEDKV_OK);  // truncated copy
    CHECK_EQ(count32, 2);
    CHECK_EQ(pages[0], table[0]);
    CHECK_EQ(pagedkv_sequence_get_tokens(cache, id, nullptr, 1, &count64), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_sequence_get_tokens(cache, id, nullptr, 0, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    int64_t slots[8];
    CHECK_EQ(pagedkv_sequence_get_slot_mapping(cache, id, slots, 8, &count64), PAGEDKV_OK);
    CHECK_EQ(count64, 3);
    for (int64_t i = 0; i < 3; ++i) CHECK_EQ(slots[i], int64_t(table[size_t((3 + i) / 4)]) * 4 + (3 + i) % 4);
    CHECK_EQ(pagedkv_sequence_get_slot_mapping(cache, id, nullptr, -2, &count64), PAGEDKV_ERR_INVALID_ARGUMENT);

    // Nothing above changed the cache.
    CHECK(same_stats(before, stats(cache)));
    CHECK(block_table(cache, id) == table);
    CHECK_EQ(info(cache, id).num_computed, 3);
    CHECK_EQ(info(cache, id).num_tokens, 6);
    CHECK_CONSISTENT(cache);

    // Ids are never reused.
    CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
    int64_t next = create(cache, prompt);
    CHECK(next > id);
    CHECK_EQ(pagedkv_sequence_commit(cache, id, 3), PAGEDKV_ERR_NOT_FOUND);
}

TEST(handles_are_checked) {
    CHECK_EQ(pagedkv_cache_destroy(nullptr), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_destroy(nullptr), PAGEDKV_OK);
    // Values that were never handles (a stack address, small integers) are refused, not read.
    unsigned char bytes[64] = {};
    auto* fake = reinterpret_cast<pagedkv_cache*>(bytes);
    pagedkv_cache_stats s{};
    s.struct_size = sizeof(s);
    CHECK_EQ(pagedkv_cache_get_stats(fake, &s), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("not a live pagedkv_cache"));
    CHECK_EQ(pagedkv_cache_destroy(fake), PAGEDKV_ERR_INVALID_ARGUMENT);
    int64_t id = 0;
    int32_t token = 1;
    CHECK_EQ(pagedkv_sequence_create(reinterpret_cast<pagedkv_cache*>(uintptr_t(12345)), &token, 1, nullptr, 0, &id,
                                     nullptr),
             PAGEDKV_ERR_INVALID_ARGUMENT);
    auto* fake_batch = reinterpret_cast<pagedkv_batch*>(bytes);
    pagedkv_batch_info info{};
    info.struct_size = sizeof(info);
    CHECK_EQ(pagedkv_batch_get_info(fake_batch, &info), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_batch_destroy(fake_batch), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_cache_get_stats(nullptr, &s), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("cache must not be null"));
}

// Defect: destroying twice, or using after destroy, read freed memory; once a new batch reused
// the freed address, destroying the stale handle destroyed the new batch.
TEST(destroyed_handles_are_reported_and_never_reach_new_objects) {
    Cache cache(4, 16);
    int64_t seq = create(cache, {1, 2, 3});
    pagedkv_batch* first = nullptr;
    CHECK_EQ(pagedkv_batch_create(cache, &seq, 1, &first), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_destroy(first), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_destroy(first), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("not a live pagedkv_batch"));
    pagedkv_batch_info info{};
    info.struct_size = sizeof(info);
    CHECK_EQ(pagedkv_batch_get_info(first, &info), PAGEDKV_ERR_INVALID_ARGUMENT);
    // Many new batches: none may answer to the old handle.
    for (int i = 0; i < 100; ++i) {
        pagedkv_batch* next = nullptr;
        CHECK_EQ(pagedkv_batch_create(cache, &seq, 1, &next), PAGEDKV_OK);
        CHECK(next != first);
        CHECK_EQ(pagedkv_batch_destroy(first), PAGEDKV_ERR_INVALID_ARGUMENT);
        CHECK_EQ(pagedkv_batch_get_info(next, &info), PAGEDKV_OK);  // the stale destroy did not touch it
        CHECK_EQ(info.num_qo_tokens, 3);
        CHECK_EQ(pagedkv_batch_destroy(next), PAGEDKV_OK);
    }
    // A batch handle is not a cache handle and the other way round.
    pagedkv_batch* batch = nullptr;
    CHECK_EQ(pagedkv_batch_create(cache, &seq, 1, &batch), PAGEDKV_OK);
    pagedkv_cache_stats s{};
    s.struct_size = sizeof(s);
    CHECK_EQ(pagedkv_cache_get_stats(reinterpret_cast<pagedkv_cache*>(batch), &s), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_batch_get_info(reinterpret_cast<pagedkv_batch*>(cache.handle), &info),
             PAGEDKV_ERR_INVALID_ARGUMENT);

    // Destroying the cache first: its batch is refused everywhere except one destroy.
    pagedkv_cache* raw = cache.handle;
    cache.handle = nullptr;
    CHECK_EQ(pagedkv_cache_destroy(raw), PAGEDKV_OK);
    CHECK_EQ(pagedkv_cache_destroy(raw), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_cache_get_stats(raw, &s), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_batch_get_info(batch, &info), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("destroyed"));
    CHECK_EQ(pagedkv_batch_commit(raw, batch), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_ERR_INVALID_ARGUMENT);
}

TEST(batches_describe_their_sequences) {
    Cache cache(4, 64);
    std::mt19937_64 rng(21);
    auto stem = random_tokens(rng, 9);
    int64_t cached = -1;
    int64_t a = create(cache, stem, &cached);
    compute(cache, a, 9);
    int64_t b = create(cache, concat({stem, random_tokens(rng, 5)}), &cached);  // 14 tokens, 9 cached
    CHECK_EQ(cached, 9);
    int32_t next = 3;
    CHECK_EQ(pagedkv_sequence_append(cache, a, &next, 1), PAGEDKV_OK);  // a: 10 tokens, 1 to compute
    int64_t ids[2] = {a, b};
    pagedkv_batch* batch = nullptr;
    CHECK_EQ(pagedkv_batch_create(cache, ids, 2, &batch), PAGEDKV_OK);
    REQUIRE(batch);
    pagedkv_batch_info bi{};
    bi.struct_size = sizeof(bi);
    CHECK_EQ(pagedkv_batch_get_info(batch, &bi), PAGEDKV_OK);
    auto ta = block_table(cache, a), tb = block_table(cache, b);
    CHECK_EQ(bi.num_seqs, 2);
    CHECK_EQ(bi.num_pages, int32_t(ta.size() + tb.size()));
    CHECK_EQ(bi.kv_indptr[0], 0);
    CHECK_EQ(bi.kv_indptr[1], 3);
    CHECK_EQ(bi.kv_indptr[2], 7);
    for (size_t i = 0; i < ta.size(); ++i) CHECK_EQ(bi.kv_page_indices[i], ta[i]);
    for (size_t i = 0; i < tb.size(); ++i) CHECK_EQ(bi.kv_page_indices[3 + i], tb[i]);
    CHECK_EQ(bi.kv_last_page_len[0], 2);
    CHECK_EQ(bi.kv_last_page_len[1], 2);
    CHECK_EQ(bi.qo_indptr[1], 1);
    CHECK_EQ(bi.qo_indptr[2], 6);
    CHECK_EQ(bi.num_qo_tokens, 6);
    CHECK_EQ(bi.kv_len[0], 10);
    CHECK_EQ(bi.kv_len[1], 14);
    CHECK_EQ(bi.max_kv_len, 14);
    CHECK_EQ(bi.max_qo_len, 5);
    CHECK_EQ(bi.shared_prefix_pages, 2);  // pages 0, 1 are the same and computed in both
    int64_t slots[8], count = 0;
    CHECK_EQ(pagedkv_sequence_get_slot_mapping(cache, a, slots, 8, &count), PAGEDKV_OK);
    CHECK_EQ(bi.slot_mapping[0], slots[0]);
    CHECK_EQ(pagedkv_sequence_get_slot_mapping(cache, b, slots, 8, &count), PAGEDKV_OK);
    for (int i = 0; i < 5; ++i) CHECK_EQ(bi.slot_mapping[1 + i], slots[i]);
    CHECK(bi.d_kv_indptr == bi.kv_indptr);  // CPU: device arrays are the host ones
    CHECK(bi.d_slot_mapping == bi.slot_mapping);

    // The arrays stay readable after a member changed, but the batch is stale: it can neither
    // commit nor run kernels any more.
    CHECK_EQ(pagedkv_sequence_append(cache, b, &next, 1), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_get_info(batch, &bi), PAGEDKV_OK);
    CHECK_EQ(bi.kv_len[1], 14);
    CHECK_EQ(pagedkv_batch_commit(cache, batch), PAGEDKV_ERR_STALE_BATCH);
    CHECK(error_mentions("appended"));
    CHECK_EQ(info(cache, a).num_computed, 9);
    CHECK_EQ(info(cache, b).num_computed, 9);
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_OK);

    // A fresh batch commits each member to its length when it was built, once.
    CHECK_EQ(pagedkv_batch_create(cache, ids, 2, &batch), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_commit(cache, batch), PAGEDKV_OK);
    CHECK_EQ(info(cache, a).num_computed, 10);
    CHECK_EQ(info(cache, b).num_computed, 15);
    CHECK_EQ(pagedkv_batch_commit(cache, batch), PAGEDKV_ERR_STALE_BATCH);  // committing made it stale
    CHECK(error_mentions("committed"));

    // One member released: nothing is committed.
    int64_t c = 0;
    CHECK_EQ(pagedkv_sequence_append(cache, a, &next, 1), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_fork(cache, b, &c), PAGEDKV_OK);
    int64_t ids2[2] = {a, c};
    pagedkv_batch* batch2 = nullptr;
    CHECK_EQ(pagedkv_batch_create(cache, ids2, 2, &batch2), PAGEDKV_OK);
    CHECK_EQ(pagedkv_sequence_release(cache, c), PAGEDKV_OK);
    CHECK_EQ(pagedkv_batch_commit(cache, batch2), PAGEDKV_ERR_STALE_BATCH);
    CHECK(error_mentions("released"));
    CHECK_EQ(info(cache, a).num_computed, 10);
    CHECK_EQ(pagedkv_batch_destroy(batch2), PAGEDKV_OK);
    CHECK_CONSISTENT(cache);

    // Bad batches.
    pagedkv_batch* bad = nullptr;
    int64_t dup[2] = {a, a};
    CHECK_EQ(pagedkv_batch_create(cache, dup, 2, &bad), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("more than once"));
    int64_t dead[2] = {a, c};
    CHECK_EQ(pagedkv_batch_create(cache, dead, 2, &bad), PAGEDKV_ERR_NOT_FOUND);
    CHECK_EQ(pagedkv_batch_create(cache, ids, 0, &bad), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_batch_create(cache, nullptr, 1, &bad), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_batch_create(cache, ids, 2, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(bad == nullptr);
    CHECK_EQ(pagedkv_batch_get_info(batch, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    Cache other(4, 8);
    CHECK_EQ(pagedkv_batch_commit(other, batch), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_OK);
    CHECK_CONSISTENT(cache);
}

TEST(single_sequence_batch_has_no_shared_prefix) {
    Cache cache(4, 16);
    std::mt19937_64 rng(22);
    int64_t a = create(cache, random_tokens(rng, 12));
    compute(cache, a, 11);
    pagedkv_batch* batch = nullptr;
    CHECK_EQ(pagedkv_batch_create(cache, &a, 1, &batch), PAGEDKV_OK);
    pagedkv_batch_info bi{};
    bi.struct_size = sizeof(bi);
    CHECK_EQ(pagedkv_batch_get_info(batch, &bi), PAGEDKV_OK);
    CHECK_EQ(bi.shared_prefix_pages, 0);
    CHECK_EQ(bi.kv_last_page_len[0], 4);
    CHECK_EQ(bi.num_qo_tokens, 1);
    pagedkv_batch_destroy(batch);
}

TEST(batches_outlive_their_cache_safely) {
    pagedkv_cache_config config = make_config(4, 8);
    pagedkv_cache* cache = nullptr;
    REQUIRE(pagedkv_cache_create(&config, &cache) == PAGEDKV_OK);
    int32_t token = 1;
    int64_t id = 0;
    CHECK_EQ(pagedkv_sequence_create(cache, &token, 1, nullptr, 0, &id, nullptr), PAGEDKV_OK);
    pagedkv_batch* batch = nullptr;
    CHECK_EQ(pagedkv_batch_create(cache, &id, 1, &batch), PAGEDKV_OK);
    CHECK_EQ(pagedkv_cache_destroy(cache), PAGEDKV_OK);
    pagedkv_batch_info bi{};
    bi.struct_size = sizeof(bi);
    CHECK_EQ(pagedkv_batch_get_info(batch, &bi), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("destroyed"));
    CHECK_EQ(pagedkv_batch_destroy(batch), PAGEDKV_OK);
}

TEST(device_memory_helpers_on_the_cpu) {
    Cache cache(4, 8);
    void* a = nullptr;
    CHECK_EQ(pagedkv_device_alloc(cache, 1000, &a), PAGEDKV_OK);
    REQUIRE(a);
    CHECK_EQ(reinterpret_cast<uintptr_t>(a) % 256, 0u);
    std::vector<unsigned char> host(1000);
    for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<unsigned char>(i * 7);
    CHECK_EQ(pagedkv_memcpy(cache, a, host.data(), 1000, PAGEDKV_COPY_HOST_TO_DEVICE), PAGEDKV_OK);
    std::vector<unsigned char> back(1000);
    CHECK_EQ(pagedkv_memcpy(cache, back.data(), a, 1000, PAGEDKV_COPY_DEVICE_TO_HOST), PAGEDKV_OK);
    CHECK(back == host);
    CHECK_EQ(pagedkv_memcpy(cache, back.data(), a, 10, 3), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_memcpy(cache, back.data(), a, -1, 0), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_memcpy(cache, nullptr, a, 10, 0), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_memcpy(cache, nullptr, nullptr, 0, 0), PAGEDKV_OK);
    CHECK_EQ(pagedkv_synchronize(cache), PAGEDKV_OK);
    CHECK_EQ(pagedkv_device_alloc(cache, -1, &a), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_device_alloc(cache, 10, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_device_free(cache, host.data()), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_device_free(cache, nullptr), PAGEDKV_OK);
    CHECK_EQ(pagedkv_device_free(cache, a), PAGEDKV_OK);
    CHECK_EQ(pagedkv_device_free(cache, a), PAGEDKV_ERR_INVALID_ARGUMENT);  // twice
    void* leaked = nullptr;
    CHECK_EQ(pagedkv_device_alloc(cache, 64, &leaked), PAGEDKV_OK);  // freed with the cache
}

// ---- the trie directly: a hash that always collides must still never match wrong tokens ------

namespace {
// Every page gets the same key: each lookup must fall back on the parent and token comparison.
uint64_t constant_key(uint64_t, uint64_t, const int32_t*, int32_t) { return 0x1234; }
}  // namespace

TEST(hash_collisions_never_match_wrong_tokens) {
    const int32_t ps = 4, pages = 64;
    pagedkv::PagePool pool(pages);
    pagedkv::PrefixTrie trie(pages, ps, pool, &constant_key);
    int32_t root = trie.acquire_root("");
    int32_t other_root = trie.acquire_root("x");
    CHECK(root != other_root);
    CHECK_EQ(trie.acquire_root(""), root);
    std::vector<std::vector<int32_t>> contents;
    for (int32_t page = 0; page < 40; ++page) {
        std::vector<int32_t> tokens = {page, page * 3, 7, page % 5};
        contents.push_back(tokens);
        int32_t parent = page % 2 ? root : other_root;
        CHECK_EQ(trie.find_full(parent, tokens.data()), -1);
        trie.insert_full(page, parent, tokens.data());
        trie.offer(page);  // unheld leaf: an eviction candidate, as after a release
    }
    CHECK_EQ(trie.check_consistency(), std::string());
    for (int32_t page = 0; page < 40; ++page) {
        int32_t parent = page % 2 ? root : other_root;
        CHECK_EQ(trie.find_full(parent, contents[size_t(page)].data()), page);
        CHECK_EQ(trie.find_full(page % 2 ? other_root : root, contents[size_t(page)].data()), -1);
        std::vector<int32_t> near = contents[size_t(page)];
        near[3] += 100;
        CHECK_EQ(trie.find_full(parent, near.data()), -1);
    }
    // Removal from the middle of a probe run keeps every other entry findable.
    for (int32_t page = 0; page < 40; page += 3) trie.unlink(page);
    CHECK_EQ(trie.check_consistency(), std::string());
    for (int32_t page = 0; page < 40; ++page) {
        int32_t parent = page % 2 ? root : other_root;
        CHECK_EQ(trie.find_full(parent, contents[size_t(page)].data()), page % 3 == 0 ? -1 : page);
    }
    // All were unheld and leaves: every one is evictable, oldest first.
    int32_t evicted = 0, last = -1;
    for (int32_t page; (page = trie.evict_lru()) != -1; ++evicted) {
        CHECK(page > last);  // inserted (touched) in page order
        last = page;
    }
    CHECK_EQ(evicted, 40 - 14);
    CHECK_EQ(trie.node_count(), 0);
}

CHECK_MAIN
