// The page protocol of a cache, in one place: how many pages a request may have (room), where
// each page comes from (free list, else the least recently used cached leaf), pinning what a
// lookup matched so that making room cannot evict it, copy-on-write and partial-run copies, and
// offering pages to the prefix index when they are computed or let go. The cache core decides
// what a sequence needs; this class decides which pages, and keeps the counts true.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "device/device.h"
#include "pagedkv.h"
#include "pool/page_pool.h"
#include "prefix/prefix_trie.h"
#include "sequence/sequence.h"
#include "tiers/tier_chain.h"

namespace pagedkv {

class PageManager {
public:
    // Allocates the pool on `device` (which must outlive this object). Throws OUT_OF_MEMORY.
    PageManager(const pagedkv_cache_config& config, int64_t page_bytes, device::Device& device,
                PrefixTrie::KeyFunction key = nullptr);
    ~PageManager();
    PageManager(const PageManager&) = delete;
    PageManager& operator=(const PageManager&) = delete;

    void* pool_base() const { return pool_base_; }
    int64_t pool_bytes() const { return int64_t(num_pages_) * page_bytes_; }
    const PagePool& pool() const { return pool_; }
    const PrefixTrie& trie() const { return trie_; }
    // Tells `listener` (null: nobody) about every block the index gains or loses (KV events).
    void set_index_listener(IndexListener* listener) { trie_.set_listener(listener); }
    bool reuse() const { return reuse_; }

    // ---- roots (isolation keys) -------------------------------------------------------------
    int32_t acquire_root(std::string_view salt) { return reuse_ ? trie_.acquire_root(salt) : PrefixTrie::kNone; }
    void retain_root(int32_t root) {
        if (root != PrefixTrie::kNone) trie_.retain_root(root);
    }
    void release_root(int32_t root) {
        if (root != PrefixTrie::kNone) trie_.release_root(root);
    }

    // ---- room and pages ---------------------------------------------------------------------
    // Pages that could be had now: free, or cached and evictable.
    int64_t available() const { return int64_t(pool_.free_count()) + pool_.cached_count(); }
    // Throws OUT_OF_PAGES unless `needed` pages are available.
    void require(int64_t needed, const char* operation) const;
    // A page held once by the caller: from the free list, else the LRU evictable leaf.
    int32_t allocate();
    void hold(int32_t page) { pool_.hold(page); }
    // Drops one hold; at zero the page stays cached if indexed, else it becomes free.
    void release(int32_t page);

    // ---- what sequences need ----------------------------------------------------------------
    struct PromptPages {
        int64_t shared_pages = 0;    // leading FULL pages shared by reference (or loaded)
        int32_t partial_length = 0;  // computed run of the next page (copied or adopted)
        int64_t loaded_pages[PAGEDKV_TIER_COUNT] = {};  // of shared_pages, brought back from each tier
    };
    // Fills `table` (empty, capacity reserved) with the pages of `prompt` under `root`: the
    // longest matched FULL pages shared, the best partial run copied into a fresh page, fresh
    // pages for the rest. All-or-nothing. A request that fits without reuse never fails because
    // of it: when pinning the partial donor would leave too little room, the donor is taken over
    // in place (if nothing else holds it) or not used.
    // `loaded` (may be null): pages the tiers brought back for this prompt; the ones that extend
    // the pool hit are installed (copied into fresh pages and indexed). `walked`: the walk of
    // this prompt by the last lookup_tiers still stands (the lock was held since).
    PromptPages reserve_prompt(int32_t root, const int32_t* prompt, int64_t num_tokens, std::vector<int32_t>& table,
                               const tiers::TierChain::Run* loaded = nullptr, bool walked = false);
    // What reserve_prompt would reuse with room to spare, changing nothing (no pin, no LRU
    // stamp). `root` may be kNone (no such salt: nothing cached).
    PromptPages match_prompt(int32_t root, const int32_t* prompt, int64_t num_tokens);
    // Replaces s.block_table[index] with a private copy holding the first `tokens` positions
    // (the caller checked room for one page); the copy donates the run s computed in it.
    void copy_on_write(Sequence& s, int64_t index, int32_t tokens);
    // A fresh page for a fork's child holding the first `tokens` computed positions of `page`.
    int32_t copy_for_fork(const Sequence& child, int64_t index, int32_t page, int32_t tokens);
    // Commit: pages [s.num_computed, num_computed) completes join the index (an identical FULL
    // page already indexed replaces ours), a partly computed last page becomes a donor.
    void index_computed(Sequence& s, int64_t num_computed);
    // Evicts every cached page no one holds; returns how many.
    int32_t evict_unused();

    // ---- tiers below the pool (page_manager_tiers.cpp) ----------------------------------------
    // Keeps FULL pages past the pool in `chain` from now on (an empty chain is not attached).
    void attach_tiers(std::unique_ptr<tiers::TierChain> chain);
    const tiers::TierChain* tiers() const { return tiers_.get(); }
    tiers::TierChain* tiers() { return tiers_.get(); }
    // Where the tiers would continue the pool's hit of `prompt` under `root`.
    struct TierLookup {
        int64_t first = 0;        // page index past the pool hit
        int64_t limit = 0;        // one past the last page the tiers may supply (the last position is computed)
        tiers::PageKey parent{};  // key of page first - 1 (or of the root)
        tiers::PageKey key{};     // key of page `first`
        bool may_hold = false;    // some tier may hold page `first` (false: a sure miss, no I/O)
    };
    // Walks the pool (reserve_prompt may reuse the walk) and says where the tiers would take
    // over; false when there is nothing to ask them (no tiers, no reuse, no full page past the
    // hit, or a request of `num_tokens` that cannot fit anyway).
    bool lookup_tiers(int32_t root, const int32_t* prompt, int64_t num_tokens, TierLookup& out);
    // Fetches the run `lookup` starts in the calling thread (host memory only: no I/O).
    void fetch_from_tiers(const TierLookup& lookup, const int32_t* prompt, tiers::TierChain::Run& run);
    // Puts the pages of `loaded` that extend the pool hit of `prompt` under `root` into the pool
    // as cached pages (no sequence holds them), allocating only free or evictable pages. Returns
    // the pages installed.
    int64_t install_run(int32_t root, const int32_t* prompt, int64_t num_tokens, const tiers::TierChain::Run& loaded);

    // The node a page at block-table index `index` of `s` hangs under.
    int32_t parent_node(const Sequence& s, int64_t index) const {
        return index == 0 ? s.root : s.block_table[size_t(index - 1)];
    }
    // Could `s` write into its last page (index `last`, holding `fill` of its tokens) in place?
    bool writable_in_place(const Sequence& s, int64_t last, int32_t fill) const;
    // Forgets a rolled-back run past `computed_here` in s's own unshared last page (truncate).
    void forget_rolled_back(const Sequence& s, int64_t last, int64_t computed_here);
    // Marks the partly filled tail a fork now shares: neither side may shorten its run.
    void share_tail(int32_t page);

    // ---- counters ---------------------------------------------------------------------------
    int64_t evictions() const { return evictions_; }
    int64_t cow_copies() const { return cow_copies_; }
    int64_t dedup_hits() const { return dedup_hits_; }

private:
    // The walk of a prompt under `root` (kNone: nothing cached): the matched FULL pages into
    // matched_, the best partial run returned. Reads the index only.
    PrefixTrie::PartialHit walk_prompt(int32_t root, const int32_t* prompt, int64_t num_tokens);
    void copy_run(int32_t src, int32_t dst, int32_t tokens);
    // A newly allocated page holding the first `tokens` positions of `page` (nothing held on failure).
    int32_t fresh_copy(int32_t page, int32_t tokens);
    void index_full_page(Sequence& s, int64_t index);
    // A page just became FULL under `parent`: remember its tier key (write-through: store it).
    void full_page_indexed(int32_t page, int32_t parent);
    // A FULL page leaves the pool: the tiers keep it (write-back).
    void demote(int32_t page);
    // The tier key of a FULL page or of a root (the root's salt in this cache's namespace).
    tiers::PageKey tier_key_of(int32_t node) const;
    tiers::ExpectedPage expected_page(const tiers::PageKey& parent, const int32_t* tokens) const;
    // How many pages of `loaded` extend a pool hit of `shared` pages (0 if it does not connect).
    static int64_t extension(const tiers::TierChain::Run* loaded, int64_t shared, int64_t limit);
    // Copies pages [shared, shared + count) of `loaded` into `pages` and indexes them as a chain
    // under `parent`; counts them by tier into `counts`. Throws on a device error (nothing
    // indexed then).
    void install_loaded(int32_t parent, const int32_t* prompt, const tiers::TierChain::Run& loaded, int64_t shared,
                        const int32_t* pages, int64_t count, int64_t* counts);
    void index_partial_page(Sequence& s, int64_t index, int32_t valid);

    device::Device& device_;
    int32_t num_pages_;
    int32_t page_size_;
    int64_t page_bytes_;
    bool reuse_;
    device::PageGeometry geometry_;
    void* pool_base_ = nullptr;
    PagePool pool_;
    PrefixTrie trie_;
    std::vector<int32_t> matched_;  // scratch of reserve_prompt (capacity num_pages)
    PrefixTrie::PartialHit walked_partial_{};  // the last walk's partial hit
    std::unique_ptr<tiers::TierChain> tiers_;  // null: nothing below the pool
    struct TierKeys {
        tiers::PageKey key{};     // all zero: the page is not a FULL page known to the tiers
        tiers::PageKey parent{};  // its parent's key (the object header holds it)
    };
    std::vector<TierKeys> tier_keys_;  // of each FULL page (with tiers only)
    int64_t evictions_ = 0, cow_copies_ = 0, dedup_hits_ = 0;
};

}  // namespace pagedkv
