// The cache's calls about the tiers below its pool: their stats, waiting for their background
// stores, and prefetching a prompt's pages into the pool before its sequence is created.
#include <string_view>

#include "cache/cache.h"
#include "common/error.h"

namespace pagedkv {

pagedkv_tier_stats Cache::tier_stats(int32_t tier) const {
    PAGEDKV_REQUIRE(tier >= 0 && tier < PAGEDKV_TIER_COUNT, PAGEDKV_ERR_INVALID_ARGUMENT, "tier ", tier,
                    " is not a pagedkv_tier (0 = host, 1 = disk, 2 = remote)");
    // Tier counters are atomics: no cache lock, so stats never wait for a load in progress.
    if (pages_.tiers() == nullptr) {
        pagedkv_tier_stats none{};
        none.struct_size = sizeof(none);
        return none;
    }
    return pages_.tiers()->stats(tier);
}

void Cache::flush_tiers() {
    if (pages_.tiers() != nullptr) pages_.tiers()->flush();
}

int64_t Cache::prefetch(const int32_t* prompt, int64_t num_tokens, const uint8_t* salt, int32_t salt_len) {
    PAGEDKV_REQUIRE(num_tokens >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "num_tokens must be >= 1, got ", num_tokens);
    PAGEDKV_REQUIRE(salt_len >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "salt_len must be >= 0, got ", salt_len);
    validate_tokens(prompt, num_tokens, "prompt");
    if (pages_.tiers() == nullptr || !pages_.reuse()) return 0;
    std::string_view key(reinterpret_cast<const char*>(salt), salt_len > 0 ? size_t(salt_len) : 0);
    ChangeLock guard(*this);
    // The root is held while pages are loaded under it; released after, it stays while they hang there.
    const int32_t root = pages_.acquire_root(key);
    int64_t pages = 0;
    try {
        pages = pages_.prefetch_prompt(root, prompt, num_tokens);
    } catch (...) {
        pages_.release_root(root);
        throw;
    }
    pages_.release_root(root);
    return pages * config_.page_size;
}

}  // namespace pagedkv
