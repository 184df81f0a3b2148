// What a cache can be asked without changing it: how much of a prompt it would reuse
// (match_prefix, the walk create_sequence runs) and every block it holds (snapshot, in the
// terms of its KV events).
#include <string_view>

#include "cache/cache.h"
#include "common/error.h"

namespace pagedkv {

pagedkv_prefix_match Cache::match_prefix(const int32_t* prompt, int64_t num_tokens, const uint8_t* salt,
                                         int32_t salt_len) {
    PAGEDKV_REQUIRE(num_tokens >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "num_tokens must be >= 1, got ", num_tokens);
    PAGEDKV_REQUIRE(salt_len >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "salt_len must be >= 0, got ", salt_len);
    validate_tokens(prompt, num_tokens, "prompt");
    std::string_view key(reinterpret_cast<const char*>(salt), salt_len > 0 ? size_t(salt_len) : 0);

    std::lock_guard lock(mutex_);
    // find_root, not acquire_root: a salt nobody used has no root, and asking must not make one.
    PageManager::PromptPages found = pages_.match_prompt(pages_.trie().find_root(key), prompt, num_tokens);
    pagedkv_prefix_match out{};
    out.struct_size = sizeof(out);
    out.shared_pages = int32_t(found.shared_pages);
    out.partial_tokens = found.partial_length;
    out.cached_tokens = found.shared_pages * config_.page_size + found.partial_length;
    out.tokens_by_medium[medium()] = out.cached_tokens;
    return out;
}

Cache::Snapshot Cache::snapshot(pagedkv_snapshot_block* out, int32_t* tokens, int32_t capacity) {
    ChangeLock guard(*this);
    // Close what earlier calls recorded, so the batches before next_seq are all the snapshot shows.
    guard.close_events();
    return {events_.snapshot(out, tokens, capacity), events_.next_seq()};
}

}  // namespace pagedkv
