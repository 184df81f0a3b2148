// The pool's side of the tiers below it: the tier key of every FULL page (kept while tiers are
// attached), demotion when a FULL page leaves the pool, write-through at commit, and bringing a
// prompt's pages back (fetch, verify, copy into fresh pages, index).
#include <algorithm>

#include "common/error.h"
#include "pool/page_manager.h"

namespace pagedkv {

namespace {
constexpr int32_t kNone = PrefixTrie::kNone;
// Pages asked of the tiers per round trip: few first, so that a prompt the tiers do not hold
// costs one short batch, then doubling up to a bound.
constexpr int64_t kFirstWindow = 4, kMaxWindow = 256;
}  // namespace

void PageManager::attach_tiers(std::unique_ptr<tiers::TierChain> chain) {
    if (!chain || chain->empty()) return;
    tiers_ = std::move(chain);
    tier_keys_.assign(size_t(num_pages_), TierKeys{});
}

tiers::PageKey PageManager::tier_key_of(int32_t node) const {
    return node >= 0 ? tier_keys_[size_t(node)].key : tiers_->root_key(trie_.root_salt(node));
}

tiers::ExpectedPage PageManager::expected_page(const tiers::PageKey& parent, const int32_t* tokens) const {
    return {&tiers_->fingerprint(), &parent, tokens, page_size_, page_bytes_};
}

void PageManager::full_page_indexed(int32_t page, int32_t parent) {
    if (!tiers_) return;
    TierKeys& keys = tier_keys_[size_t(page)];
    const int32_t* tokens = trie_.tokens(page);
    keys.parent = tier_key_of(parent);
    keys.key = tiers::page_key(keys.parent, tokens, page_size_);
    if (!tiers_->write_through()) return;
    const void* source = static_cast<const unsigned char*>(pool_base_) + int64_t(page) * page_bytes_;
    tiers_->store_everywhere(keys.key, expected_page(keys.parent, tokens), [&](uint8_t* payload) {
        device_.copy(payload, source, page_bytes_, PAGEDKV_COPY_DEVICE_TO_HOST);
    });
}

void PageManager::demote(int32_t page) {
    // Only FULL pages go below the pool. evict_lru has unlinked `page`, but its tokens, its bytes
    // and the keys recorded when it became FULL stay intact until the page is reused.
    if (!tiers_ || tier_keys_[size_t(page)].key == tiers::PageKey{}) return;
    const TierKeys keys = tier_keys_[size_t(page)];
    tier_keys_[size_t(page)] = TierKeys{};
    const void* source = static_cast<const unsigned char*>(pool_base_) + int64_t(page) * page_bytes_;
    tiers_->demote(keys.key, expected_page(keys.parent, trie_.tokens(page)), [&](uint8_t* payload) {
        device_.copy(payload, source, page_bytes_, PAGEDKV_COPY_DEVICE_TO_HOST);
    });
}

int64_t PageManager::fetch_from_tiers(int32_t parent, const int32_t* prompt, int64_t first, int64_t limit) {
    tier_loads_.clear();
    tier_load_keys_.clear();
    std::vector<tiers::ExpectedPage> expected;
    int64_t window = kFirstWindow;
    tiers::PageKey parent_key = tier_key_of(parent);
    for (int64_t start = first; start < limit; start += window, window = std::min(window * 2, kMaxWindow)) {
        const int64_t count = std::min(window, limit - start);
        // tier_walk_keys_[0] is the parent of the window's first page, [i + 1] page i's key.
        tier_walk_keys_.resize(size_t(count + 1));
        expected.resize(size_t(count));
        tier_walk_keys_[0] = parent_key;
        for (int64_t i = 0; i < count; ++i) {
            const int32_t* tokens = prompt + (start + i) * page_size_;
            tier_walk_keys_[size_t(i + 1)] = tiers::page_key(tier_walk_keys_[size_t(i)], tokens, page_size_);
            expected[size_t(i)] = expected_page(tier_walk_keys_[size_t(i)], tokens);
        }
        const int64_t run = tiers_->fetch_run(tier_walk_keys_.data() + 1, expected.data(), count, tier_window_);
        for (int64_t i = 0; i < run; ++i) {
            tier_loads_.push_back(std::move(tier_window_[size_t(i)]));
            tier_load_keys_.push_back({tier_walk_keys_[size_t(i + 1)], tier_walk_keys_[size_t(i)]});
        }
        tier_window_.clear();
        if (run < count) break;
        parent_key = tier_walk_keys_[size_t(count)];
    }
    return int64_t(tier_loads_.size());
}

void PageManager::install_loaded(int32_t parent, const int32_t* prompt, int64_t first, const int32_t* pages,
                                 int64_t count, int64_t* loaded) {
    const int64_t offset = tiers_->payload_offset();
    try {
        // Every copy first: a device error leaves nothing indexed.
        for (int64_t i = 0; i < count; ++i) {
            void* target = static_cast<unsigned char*>(pool_base_) + int64_t(pages[i]) * page_bytes_;
            device_.copy(target, tier_loads_[size_t(i)].object.data.get() + offset, page_bytes_,
                         PAGEDKV_COPY_HOST_TO_DEVICE);
        }
    } catch (...) {
        tier_loads_.clear();
        throw;
    }
    for (int64_t i = 0; i < count; ++i) {
        const int32_t* tokens = prompt + (first + i) * page_size_;
        trie_.insert_full(pages[i], parent, tokens);
        tier_keys_[size_t(pages[i])] = tier_load_keys_[size_t(i)];
        loaded[tier_loads_[size_t(i)].tier] += 1;
        parent = pages[i];
    }
    tier_loads_.clear();  // unpins the host tier's slots
}

int64_t PageManager::prefetch_prompt(int32_t root, const int32_t* prompt, int64_t num_tokens) {
    if (!tiers_ || !reuse_ || root == kNone) return 0;
    walk_prompt(root, prompt, num_tokens);
    const int64_t shared = int64_t(matched_.size());
    const int32_t parent = shared == 0 ? root : matched_.back();
    int64_t count = fetch_from_tiers(parent, prompt, shared, (num_tokens - 1) / page_size_);
    // The matched pages stay pinned while pages are allocated, so making room cannot evict them.
    for (int32_t page : matched_) pool_.hold(page);
    count = std::min(count, available());
    std::vector<int32_t> fresh;
    fresh.reserve(size_t(count));
    int64_t loaded[PAGEDKV_TIER_COUNT] = {};
    try {
        for (int64_t i = 0; i < count; ++i) fresh.push_back(allocate());
        install_loaded(parent, prompt, shared, fresh.data(), count, loaded);
    } catch (...) {
        for (int32_t page : fresh) release(page);
        for (int32_t page : matched_) release(page);
        throw;
    }
    // Deepest first, as a release does: the run's tail is older in LRU order than its head.
    for (auto it = fresh.rbegin(); it != fresh.rend(); ++it) release(*it);
    for (int32_t page : matched_) release(page);
    return count;
}

}  // namespace pagedkv
