#include "pool/page_manager.h"

#include <algorithm>

#include "common/dtype.h"
#include "common/error.h"
#include "quant/kv_format.h"

namespace pagedkv {

namespace {
constexpr int32_t kNone = PrefixTrie::kNone;
}

PageManager::PageManager(const pagedkv_cache_config& config, int64_t page_bytes, device::Device& device,
                         PrefixTrie::KeyFunction key)
    : device_(device),
      num_pages_(config.num_pages),
      page_size_(config.page_size),
      page_bytes_(page_bytes),
      reuse_((config.flags & PAGEDKV_CACHE_NO_REUSE) == 0),
      pool_(config.num_pages),
      trie_(config.num_pages, config.page_size, pool_, key) {
    geometry_.page_bytes = page_bytes;
    if (is_quantized_dtype(config.kv_dtype)) {
        auto& q = geometry_.quant;
        q.used = true;
        q.heads = config.num_kv_heads;
        geometry_.rows = int64_t(config.num_layers) * config.num_kv_heads;
        for (int32_t kv = 0; kv < 2; ++kv) {
            const KvRunGeometry run = kv_run_geometry(config.kv_dtype, kv, config.head_dim, config.page_size);
            q.run_bytes[kv] = run.run_bytes;
            q.code_bytes[kv] = run.code_bytes;
            q.scales_at[kv] = run.scales_at(config.page_size);
            q.tail_at[kv] = run.tail_at(config.page_size);
            q.scale_bytes = run.scale_bytes;
            q.tail_bytes = run.tail_bytes;
        }
        geometry_.token_bytes = geometry_.row_bytes = 1;  // unused by the quantized copy
    } else {
        geometry_.rows = int64_t(config.num_layers) * 2 * config.num_kv_heads;
        geometry_.token_bytes = int64_t(config.head_dim) * dtype_bytes(config.kv_dtype);
        geometry_.row_bytes = int64_t(config.page_size) * geometry_.token_bytes;
    }
    matched_.reserve(size_t(config.num_pages));
    pool_base_ = device_.alloc(page_bytes * config.num_pages);
    geometry_.pool_base = pool_base_;
}

PageManager::~PageManager() { device_.free(pool_base_); }

// ---- room and pages ---------------------------------------------------------------------------

void PageManager::require(int64_t needed, const char* operation) const {
    PAGEDKV_REQUIRE(needed <= available(), PAGEDKV_ERR_OUT_OF_PAGES, operation, " needs ", needed,
                    " free pages but only ", available(), " are free or evictable (", pool_.free_count(), " free, ",
                    pool_.cached_count(), " cached, ", pool_.in_use_count(), " of ", num_pages_,
                    " held by sequences)");
}

int32_t PageManager::allocate() {
    int32_t page = pool_.pop_free();
    if (page != kNone) return page;
    page = trie_.evict_lru();
    PAGEDKV_REQUIRE(page != kNone, PAGEDKV_ERR_INTERNAL, "no page to evict although the count said so");
    ++evictions_;
    demote(page);
    pool_.hold(page);
    return page;
}

void PageManager::release(int32_t page) {
    if (!pool_.drop(page)) return;
    if (trie_.indexed(page)) {
        trie_.touch(page);
        trie_.offer(page);
    } else {
        pool_.push_free(page);
    }
}

void PageManager::copy_run(int32_t src, int32_t dst, int32_t tokens) {
    device_.copy_page_runs(geometry_, &src, &dst, 1, tokens);
}

int32_t PageManager::evict_unused() {
    int32_t evicted = 0;
    for (int32_t page; (page = trie_.evict_lru()) != kNone; ++evicted) {
        demote(page);
        pool_.push_free(page);
    }
    evictions_ += evicted;
    return evicted;
}

// ---- a prompt's pages -------------------------------------------------------------------------

PageManager::PromptPages PageManager::reserve_prompt(int32_t root, const int32_t* prompt, int64_t num_tokens,
                                                     std::vector<int32_t>& table,
                                                     const tiers::TierChain::Run* loaded, bool walked) {
    const int64_t total = (num_tokens + page_size_ - 1) / page_size_;
    PrefixTrie::PartialHit partial = walked ? walked_partial_ : walk_prompt(root, prompt, num_tokens);
    int64_t shared = int64_t(matched_.size());
    int64_t fresh = total - shared;
    // The tiers' run extends the hit (unless the request cannot fit anyway): a page they brought
    // back beats any partial run.
    const int64_t from_tiers =
        tiers_ && fresh <= available() ? extension(loaded, shared, (num_tokens - 1) / page_size_) : 0;
    if (from_tiers > 0) partial = {};

    // Pin what matched so that making room cannot evict it.
    for (int32_t page : matched_) pool_.hold(page);
    bool adopt = false;
    if (partial.donor != kNone) {
        pool_.hold(partial.donor);
        if (fresh > available()) {
            // The pinned donor is what makes this not fit: take it over if no one holds it and
            // nothing hangs under it (it was going to be evicted anyway), else do without it.
            pool_.drop(partial.donor);
            if (pool_.ref_count(partial.donor) == 0 && trie_.is_leaf(partial.donor) && partial.length > 0)
                adopt = true;
            else
                partial = {};
        }
    }
    auto unpin = [&] {  // ref counts back as they were; LRU stamps were not touched
        for (int32_t page : matched_) pool_.drop(page);
        if (partial.donor != kNone && !adopt) pool_.drop(partial.donor);
    };
    try {
        require(fresh, "creating this sequence");
    } catch (...) {
        unpin();
        throw;
    }

    table.assign(matched_.begin(), matched_.end());
    if (adopt) {
        trie_.unlink(partial.donor);  // ref 0 and a leaf: no longer cached, now ours
        ++evictions_;                 // it left the index, as if evicted
        pool_.hold(partial.donor);
        table.push_back(partial.donor);
        --fresh;
    }
    for (int64_t i = 0; i < fresh; ++i) table.push_back(allocate());
    PromptPages result;
    if (from_tiers > 0) {
        try {
            install_loaded(shared == 0 ? root : table[size_t(shared - 1)], prompt, *loaded, shared,
                           table.data() + shared, from_tiers, result.loaded_pages);
        } catch (...) {
            for (int64_t i = shared; i < total; ++i) release(table[size_t(i)]);
            unpin();
            table.clear();
            throw;
        }
        shared += from_tiers;
    }
    if (loaded != nullptr) {
        // Every page of the run this prompt waited for counts as loaded, whether installed here
        // or by the loader while the lock was released.
        std::fill(std::begin(result.loaded_pages), std::end(result.loaded_pages), 0);
        for (int64_t i = loaded->first; i < std::min(loaded->first + loaded->size(), shared); ++i)
            result.loaded_pages[loaded->loads[size_t(i - loaded->first)].tier] += 1;
    }
    if (partial.length > 0 && !adopt) {
        try {
            copy_run(partial.donor, table[size_t(shared)], partial.length);
        } catch (...) {
            for (int64_t i = shared; i < total; ++i) release(table[size_t(i)]);
            unpin();
            table.clear();
            throw;
        }
        ++cow_copies_;
    }
    if (partial.donor != kNone && !adopt) {
        trie_.touch(partial.donor);
        if (pool_.drop(partial.donor)) trie_.offer(partial.donor);
    }
    if (partial.length > 0) {
        // The run is a computed run of ours: it donates it like any partly computed page.
        int32_t parent = shared == 0 ? root : table[size_t(shared - 1)];
        trie_.set_partial(table[size_t(shared)], parent, prompt + shared * page_size_, partial.length);
    }
    result.shared_pages = shared;
    result.partial_length = partial.length;
    return result;
}

PrefixTrie::PartialHit PageManager::walk_prompt(int32_t root, const int32_t* prompt, int64_t num_tokens) {
    matched_.clear();
    walked_partial_ = {};
    if (!reuse_ || root == kNone) return {};
    walked_partial_ = trie_.longest_match(root, prompt, num_tokens, matched_).partial;
    return walked_partial_;
}

PageManager::PromptPages PageManager::match_prompt(int32_t root, const int32_t* prompt, int64_t num_tokens) {
    PrefixTrie::PartialHit partial = walk_prompt(root, prompt, num_tokens);
    return {int64_t(matched_.size()), partial.length};
}

// ---- copies -----------------------------------------------------------------------------------

int32_t PageManager::fresh_copy(int32_t page, int32_t tokens) {
    int32_t copy = allocate();
    try {
        copy_run(page, copy, tokens);
    } catch (...) {
        release(copy);
        throw;
    }
    return copy;
}

void PageManager::copy_on_write(Sequence& s, int64_t index, int32_t tokens) {
    int32_t old_page = s.block_table[size_t(index)];
    int32_t page = fresh_copy(old_page, tokens);
    // The copy holds our computed run of this page: it donates it, so the run stays known
    // even if the page we leave is later shortened or evicted.
    int64_t computed_here = s.num_computed - index * page_size_;
    if (reuse_ && computed_here > 0)
        trie_.set_partial(page, parent_node(s, index), s.tokens.data() + index * page_size_,
                          int32_t(std::min<int64_t>(computed_here, page_size_ - 1)));
    s.block_table[size_t(index)] = page;
    release(old_page);
    ++cow_copies_;
}

int32_t PageManager::copy_for_fork(const Sequence& child, int64_t index, int32_t page, int32_t tokens) {
    int32_t copy = fresh_copy(page, tokens);
    if (reuse_)
        trie_.set_partial(copy, parent_node(child, index), child.tokens.data() + index * page_size_, tokens);
    ++cow_copies_;
    return copy;
}

bool PageManager::writable_in_place(const Sequence& s, int64_t last, int32_t fill) const {
    if (fill == 0) return true;  // the next token starts a fresh page
    int32_t page = s.block_table[size_t(last)];
    // Not when shared, a FULL node (after a truncate), or a donor whose run reaches past our
    // tokens (a run a fork shared, see forget_rolled_back).
    return pool_.ref_count(page) == 1 && trie_.kind(page) != NodeKind::Full &&
           !(trie_.kind(page) == NodeKind::Partial && trie_.valid(page) > fill);
}

void PageManager::forget_rolled_back(const Sequence& s, int64_t last, int64_t computed_here) {
    int32_t page = s.block_table[size_t(last)];
    // A run a fork shared stays (its other holders computed it); the next append copies the page.
    if (trie_.kind(page) == NodeKind::Partial && pool_.ref_count(page) == 1 && !trie_.shared_run(page) &&
        trie_.valid(page) > computed_here)
        trie_.shorten_partial(page, int32_t(computed_here));
}

void PageManager::share_tail(int32_t page) {
    if (trie_.kind(page) == NodeKind::Partial) trie_.mark_shared_run(page);
}

// ---- index ------------------------------------------------------------------------------------

void PageManager::index_computed(Sequence& s, int64_t num_computed) {
    if (!reuse_) return;
    for (int64_t index = s.num_computed / page_size_; (index + 1) * page_size_ <= num_computed; ++index)
        index_full_page(s, index);
    if (num_computed % page_size_ != 0 && num_computed > s.num_computed) {
        int64_t index = num_computed / page_size_;
        index_partial_page(s, index, int32_t(num_computed - index * page_size_));
    }
}

void PageManager::index_full_page(Sequence& s, int64_t index) {
    int32_t page = s.block_table[size_t(index)];
    if (trie_.kind(page) == NodeKind::Full) return;  // shared from the index already
    int32_t parent = parent_node(s, index);
    const int32_t* tokens = s.tokens.data() + index * page_size_;
    int32_t existing = trie_.find_full(parent, tokens);
    if (existing == kNone) {
        trie_.insert_full(page, parent, tokens);  // a donor is converted in place
        full_page_indexed(page, parent);
        return;
    }
    // Someone computed the same page independently: keep theirs, free ours.
    pool_.hold(existing);
    trie_.touch(existing);
    if (trie_.kind(page) == NodeKind::Partial) trie_.unlink(page);
    s.block_table[size_t(index)] = existing;
    release(page);
    ++dedup_hits_;
}

void PageManager::index_partial_page(Sequence& s, int64_t index, int32_t valid) {
    int32_t page = s.block_table[size_t(index)];
    const int32_t* tokens = s.tokens.data() + index * page_size_;
    NodeKind kind = trie_.kind(page);
    if (kind == NodeKind::Partial)
        trie_.set_partial(page, trie_.parent(page), tokens, std::max(valid, trie_.valid(page)));
    else if (kind == NodeKind::None && pool_.ref_count(page) == 1)
        trie_.set_partial(page, parent_node(s, index), tokens, valid);
}

}  // namespace pagedkv
