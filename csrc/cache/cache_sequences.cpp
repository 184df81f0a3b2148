// The sequence lifecycle of a cache: create (match + reserve), commit, append, fork, truncate,
// release, and the read-only views. Which pages each step takes is the PageManager's business;
// this file keeps the sequences, the counters, and the batches that hold them, true.
#include <algorithm>
#include <string_view>

#include "cache/cache.h"
#include "common/error.h"

namespace pagedkv {

void Cache::validate_tokens(const int32_t* tokens, int64_t count, const char* what) const {
    // Branch-free passes the compiler vectorizes; the slow search below runs only on failure.
    const int32_t vocab = config_.vocab_size;
    int32_t bad = 0;
    if (vocab > 0)
        for (int64_t i = 0; i < count; ++i) bad |= int32_t(tokens[i] < 0) | int32_t(tokens[i] >= vocab);
    else
        for (int64_t i = 0; i < count; ++i) bad |= tokens[i];  // sign bit: a negative id
    if (vocab > 0 ? bad == 0 : bad >= 0) return;
    uint32_t limit = vocab > 0 ? uint32_t(vocab) : 0x80000000u;
    for (int64_t i = 0; i < count; ++i) {
        if (uint32_t(tokens[i]) < limit) continue;
        if (config_.vocab_size > 0)
            fail(PAGEDKV_ERR_INVALID_ARGUMENT, what, "[", i, "] = ", tokens[i], " is not a token id in [0, ",
                 config_.vocab_size, ")");
        fail(PAGEDKV_ERR_INVALID_ARGUMENT, what, "[", i, "] = ", tokens[i], " is negative");
    }
}

Cache::Created Cache::create_sequence(const int32_t* prompt, int64_t num_tokens, const uint8_t* salt,
                                      int32_t salt_len) {
    PAGEDKV_REQUIRE(num_tokens >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "num_tokens must be >= 1, got ", num_tokens);
    PAGEDKV_REQUIRE(salt_len >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "salt_len must be >= 0, got ", salt_len);
    // Before any arithmetic on num_tokens: the capacity bound keeps every product below in range.
    PAGEDKV_REQUIRE(num_tokens <= capacity_tokens(), PAGEDKV_ERR_OUT_OF_PAGES, "a prompt of ", num_tokens,
                    " tokens needs more than the cache's ", config_.num_pages, " pages of ", config_.page_size,
                    " tokens");
    validate_tokens(prompt, num_tokens, "prompt");
    std::string_view key(reinterpret_cast<const char*>(salt), salt_len > 0 ? size_t(salt_len) : 0);

    // Host allocations first, outside the lock: a failure here changes nothing.
    Sequence fresh;
    fresh.tokens.assign(prompt, prompt + num_tokens);
    fresh.block_table.reserve(size_t(pages_for(num_tokens)));

    ChangeLock guard(*this);
    const int32_t root = pages_.acquire_root(key);
    PageManager::PromptPages reserved;
    Sequence* created = nullptr;
    try {
        // The tiers first: a wait for their loads releases the lock, and no sequence may be
        // half made meanwhile.
        tiers::TierChain::Run loaded;
        const bool walked = load_from_tiers(root, prompt, num_tokens, guard, loaded);
        created = &sequences_.add(std::move(fresh));
        created->root = root;
        reserved = pages_.reserve_prompt(root, prompt, num_tokens, created->block_table,
                                         loaded.loads.empty() ? nullptr : &loaded, walked);
    } catch (...) {
        if (created != nullptr) sequences_.remove(created->id);
        pages_.release_root(root);
        throw;
    }
    Sequence& s = *created;
    int64_t cached = reserved.shared_pages * config_.page_size + reserved.partial_length;
    s.num_computed = s.num_cached = cached;
    for (int32_t tier = 0; tier < PAGEDKV_TIER_COUNT; ++tier)
        s.loaded_tokens[tier] = reserved.loaded_pages[tier] * config_.page_size;
    stats_.prompt_tokens += num_tokens;
    stats_.reused_tokens += cached;
    return {s.id, cached};
}

pagedkv_sequence_info Cache::sequence_info(int64_t seq_id) const {
    std::lock_guard lock(mutex_);
    const Sequence& s = sequences_.get(seq_id);
    pagedkv_sequence_info info{};
    info.struct_size = sizeof(info);
    info.num_pages = int32_t(s.block_table.size());
    info.num_tokens = s.num_tokens();
    info.num_computed = s.num_computed;
    info.num_cached = s.num_cached;
    for (int32_t tier = 0; tier < PAGEDKV_TIER_COUNT; ++tier) info.loaded_tokens[tier] = s.loaded_tokens[tier];
    return info;
}

int32_t Cache::block_table(int64_t seq_id, int32_t* out, int32_t capacity) const {
    std::lock_guard lock(mutex_);
    const Sequence& s = sequences_.get(seq_id);
    size_t count = std::min(size_t(capacity), s.block_table.size());
    std::copy_n(s.block_table.begin(), count, out);
    return int32_t(s.block_table.size());
}

int64_t Cache::tokens(int64_t seq_id, int32_t* out, int64_t capacity) const {
    std::lock_guard lock(mutex_);
    const Sequence& s = sequences_.get(seq_id);
    std::copy_n(s.tokens.begin(), std::min(capacity, s.num_tokens()), out);
    return s.num_tokens();
}

int64_t Cache::slot_mapping(int64_t seq_id, int64_t* out, int64_t capacity) const {
    std::lock_guard lock(mutex_);
    const Sequence& s = sequences_.get(seq_id);
    const int32_t ps = config_.page_size;
    int64_t count = s.num_tokens() - s.num_computed;
    int64_t n = std::min(capacity, count);
    for (int64_t i = 0; i < n; ++i) {
        int64_t position = s.num_computed + i;
        out[i] = int64_t(s.block_table[size_t(position / ps)]) * ps + position % ps;
    }
    return count;
}

void Cache::commit(int64_t seq_id, int64_t num_computed) {
    ChangeLock guard(*this);
    Sequence& s = quiesced(seq_id, guard.lock());
    PAGEDKV_REQUIRE(num_computed >= s.num_computed && num_computed <= s.num_tokens(), PAGEDKV_ERR_INVALID_ARGUMENT,
                    "num_computed ", num_computed, " of sequence ", seq_id, " must lie in [", s.num_computed, ", ",
                    s.num_tokens(), "] (committed so far, tokens)");
    invalidate_batches(s, "committed");
    pages_.index_computed(s, num_computed);
    stats_.computed_tokens += num_computed - s.num_computed;
    s.num_computed = num_computed;
}

void Cache::append(int64_t seq_id, const int32_t* tokens, int64_t num_tokens) {
    PAGEDKV_REQUIRE(num_tokens >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "num_tokens must be >= 1, got ", num_tokens);
    PAGEDKV_REQUIRE(num_tokens <= capacity_tokens(), PAGEDKV_ERR_OUT_OF_PAGES, "appending ", num_tokens,
                    " tokens needs more than the cache's ", config_.num_pages, " pages");
    validate_tokens(tokens, num_tokens, "tokens");
    ChangeLock guard(*this);
    Sequence& s = quiesced(seq_id, guard.lock());
    const int32_t ps = config_.page_size;
    const int64_t length = s.num_tokens();
    PAGEDKV_REQUIRE(num_tokens <= capacity_tokens() - length, PAGEDKV_ERR_OUT_OF_PAGES, "appending ", num_tokens,
                    " tokens to sequence ", seq_id, " of ", length, " needs more than the cache's ",
                    config_.num_pages, " pages");
    const int32_t fill = int32_t(length % ps);
    const int64_t last = int64_t(s.block_table.size()) - 1;
    const bool copy = !pages_.writable_in_place(s, last, fill);
    const int64_t new_pages = pages_for(length + num_tokens) - int64_t(s.block_table.size());
    pages_.require(new_pages + (copy ? 1 : 0), "this append");
    s.tokens.reserve(size_t(length + num_tokens));
    s.block_table.reserve(s.block_table.size() + size_t(new_pages));

    invalidate_batches(s, "appended to");
    if (copy) {
        // Only the computed positions of the page are worth anything to the copy.
        int32_t computed_here = int32_t(std::clamp<int64_t>(s.num_computed - last * ps, 0, fill));
        pages_.copy_on_write(s, last, computed_here);
    }
    for (int64_t i = 0; i < new_pages; ++i) s.block_table.push_back(pages_.allocate());
    s.tokens.insert(s.tokens.end(), tokens, tokens + num_tokens);
}

int64_t Cache::fork(int64_t seq_id) {
    // The parent does not change, so its batches stay valid: the child shares computed pages
    // only, and copies read computed positions only, which no kernel call writes.
    ChangeLock guard(*this);
    const int32_t ps = config_.page_size;
    const Sequence& parent = sequences_.get(seq_id);
    const int64_t length = parent.num_tokens(), computed = parent.num_computed;
    const int64_t pages = int64_t(parent.block_table.size());
    // Pages with a position still to compute cannot be shared while being written.
    const int64_t shared = computed == length ? pages : computed / ps;
    pages_.require(pages - shared, "this fork");

    Sequence child;
    child.root = parent.root;
    child.tokens = parent.tokens;
    child.num_computed = child.num_cached = computed;
    child.block_table.reserve(size_t(pages));
    Sequence& stored = sequences_.add(std::move(child));  // map references stay valid
    pages_.retain_root(stored.root);
    try {
        for (int64_t i = 0; i < shared; ++i) {
            pages_.hold(parent.block_table[size_t(i)]);
            stored.block_table.push_back(parent.block_table[size_t(i)]);
        }
        if (shared == pages && length % ps != 0) pages_.share_tail(parent.block_table[size_t(pages - 1)]);
        for (int64_t i = shared; i < pages; ++i) {
            if (i == computed / ps && computed % ps != 0)
                stored.block_table.push_back(
                    pages_.copy_for_fork(stored, i, parent.block_table[size_t(i)], int32_t(computed % ps)));
            else
                stored.block_table.push_back(pages_.allocate());
        }
    } catch (...) {
        for (auto it = stored.block_table.rbegin(); it != stored.block_table.rend(); ++it) pages_.release(*it);
        pages_.release_root(stored.root);
        sequences_.remove(stored.id);
        throw;
    }
    return stored.id;
}

void Cache::truncate(int64_t seq_id, int64_t new_num_tokens) {
    Lock lock(mutex_);
    Sequence& s = quiesced(seq_id, lock);
    PAGEDKV_REQUIRE(new_num_tokens >= 1 && new_num_tokens <= s.num_tokens(), PAGEDKV_ERR_INVALID_ARGUMENT,
                    "new_num_tokens ", new_num_tokens, " of sequence ", seq_id, " must lie in [1, ", s.num_tokens(),
                    "]");
    invalidate_batches(s, "truncated");
    const int64_t keep = pages_for(new_num_tokens);
    for (int64_t i = int64_t(s.block_table.size()) - 1; i >= keep; --i) pages_.release(s.block_table[size_t(i)]);
    s.block_table.resize(size_t(keep));
    s.tokens.resize(size_t(new_num_tokens));
    s.num_computed = std::min(s.num_computed, new_num_tokens);
    // Our own donated run past the new end is about to be overwritten: forget it.
    pages_.forget_rolled_back(s, keep - 1, std::max<int64_t>(0, s.num_computed - (keep - 1) * config_.page_size));
}

void Cache::release(int64_t seq_id) {
    Lock lock(mutex_);
    Sequence& s = quiesced(seq_id, lock);
    invalidate_batches(s, "released");
    // Deepest first, so a sequence's tail is older in LRU order than its prefix.
    for (auto it = s.block_table.rbegin(); it != s.block_table.rend(); ++it) pages_.release(*it);
    pages_.release_root(s.root);
    sequences_.remove(seq_id);
}

}  // namespace pagedkv
