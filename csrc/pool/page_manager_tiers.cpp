// The pool's side of the tiers below it: the tier key of every FULL page (kept while tiers are
// attached), demotion when a FULL page leaves the pool, write-through at commit, where the tiers
// would continue a prompt's pool hit, and putting the pages they brought back into the pool
// (copy into fresh pages, index).
#include <algorithm>

#include "common/error.h"
#include "pool/page_manager.h"

namespace pagedkv {

namespace {
constexpr int32_t kNone = PrefixTrie::kNone;
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

bool PageManager::lookup_tiers(int32_t root, const int32_t* prompt, int64_t num_tokens, TierLookup& out) {
    walk_prompt(root, prompt, num_tokens);
    if (!tiers_ || !reuse_ || root == kNone) return false;
    const int64_t total = (num_tokens + page_size_ - 1) / page_size_;
    out.first = int64_t(matched_.size());
    out.limit = (num_tokens - 1) / page_size_;
    if (out.first >= out.limit || total - out.first > available()) return false;
    out.parent = tier_key_of(out.first == 0 ? root : matched_.back());
    out.key = tiers::page_key(out.parent, prompt + out.first * page_size_, page_size_);
    out.may_hold = tiers_->may_hold(out.key);
    return true;
}

void PageManager::fetch_from_tiers(const TierLookup& lookup, const int32_t* prompt, tiers::TierChain::Run& run) {
    run.first = lookup.first;
    run.keys.assign(1, lookup.parent);
    run.loads.clear();
    tiers_->fetch_chain(prompt + lookup.first * page_size_, lookup.limit - lookup.first, run);
}

int64_t PageManager::extension(const tiers::TierChain::Run* loaded, int64_t shared, int64_t limit) {
    // Pages of the run below the hit are in the pool already; a run that starts past the hit
    // (pool pages evicted meanwhile) does not connect.
    if (loaded == nullptr || shared < loaded->first) return 0;
    return std::max<int64_t>(0, std::min(loaded->first + loaded->size(), limit) - shared);
}

void PageManager::install_loaded(int32_t parent, const int32_t* prompt, const tiers::TierChain::Run& loaded,
                                 int64_t shared, const int32_t* pages, int64_t count, int64_t* counts) {
    const int64_t offset = tiers_->payload_offset();
    const size_t skip = size_t(shared - loaded.first);
    // Every copy first: a device error leaves nothing indexed.
    for (int64_t i = 0; i < count; ++i) {
        void* target = static_cast<unsigned char*>(pool_base_) + int64_t(pages[i]) * page_bytes_;
        device_.copy(target, loaded.loads[skip + size_t(i)].object.data.get() + offset, page_bytes_,
                     PAGEDKV_COPY_HOST_TO_DEVICE);
    }
    for (int64_t i = 0; i < count; ++i) {
        const int32_t* tokens = prompt + (shared + i) * page_size_;
        trie_.insert_full(pages[i], parent, tokens);
        tier_keys_[size_t(pages[i])] = {loaded.keys[skip + size_t(i) + 1], loaded.keys[skip + size_t(i)]};
        counts[loaded.loads[skip + size_t(i)].tier] += 1;
        parent = pages[i];
    }
}

int64_t PageManager::install_run(int32_t root, const int32_t* prompt, int64_t num_tokens,
                                 const tiers::TierChain::Run& loaded) {
    if (!tiers_ || !reuse_ || root == kNone) return 0;
    walk_prompt(root, prompt, num_tokens);
    const int64_t shared = int64_t(matched_.size());
    const int32_t parent = shared == 0 ? root : matched_.back();
    // The matched pages stay pinned while pages are allocated, so making room cannot evict them.
    for (int32_t page : matched_) pool_.hold(page);
    const int64_t count = std::min(extension(&loaded, shared, (num_tokens - 1) / page_size_), available());
    std::vector<int32_t> fresh;
    int64_t counts[PAGEDKV_TIER_COUNT] = {};
    try {
        fresh.reserve(size_t(count));
        for (int64_t i = 0; i < count; ++i) fresh.push_back(allocate());
        install_loaded(parent, prompt, loaded, shared, fresh.data(), count, counts);
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
