// The cache: one page pool on one device, one prefix index, the live sequences. Every public
// method takes the cache's mutex; all-or-nothing operations check capacity before changing
// anything, so a failure (OUT_OF_PAGES, bad input) leaves the cache exactly as it was.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "cache/batch.h"
#include "kernels/paged_layout.h"
#include "pagedkv.h"
#include "pool/page_pool.h"
#include "pool/pool_memory.h"
#include "prefix/prefix_trie.h"
#include "sequence/sequence.h"

namespace pagedkv {

class Cache {
public:
    // Validates `config` (a complete struct; the C layer pads short ones with zeros) and
    // allocates the pool. Throws INVALID_ARGUMENT, NO_DEVICE or OUT_OF_MEMORY.
    explicit Cache(const pagedkv_cache_config& config);
    ~Cache();
    Cache(const Cache&) = delete;
    Cache& operator=(const Cache&) = delete;

    // ---- layout (immutable, no lock) ---------------------------------------------------------
    const pagedkv_cache_config& config() const { return config_; }
    int32_t device_type() const { return config_.device_type; }
    int32_t device_index() const { return config_.device_index; }
    int32_t page_size() const { return config_.page_size; }
    int32_t num_pages() const { return config_.num_pages; }
    int64_t page_bytes() const { return page_bytes_; }
    void* pool_base() const { return memory_->base(); }
    // One layer as kernels see it; INVALID_ARGUMENT for a layer outside [0, num_layers).
    kernels::PagedLayer layer(int32_t layer) const;
    pagedkv_cache_layout layout() const;
    // NOT_FOUND for a page outside [0, num_pages).
    void* page_address(int32_t page) const;

    // ---- counters and index maintenance ------------------------------------------------------
    pagedkv_cache_stats stats() const;
    int32_t clear_unused();

    // ---- sequences -----------------------------------------------------------------------------
    struct Created {
        int64_t seq_id;
        int64_t cached_tokens;
    };
    Created create_sequence(const int32_t* prompt, int64_t num_tokens, const uint8_t* salt, int32_t salt_len);
    pagedkv_sequence_info sequence_info(int64_t seq_id) const;
    // Each copies min(capacity, count) entries into `out` and returns the full count.
    int32_t block_table(int64_t seq_id, int32_t* out, int32_t capacity) const;
    int64_t tokens(int64_t seq_id, int32_t* out, int64_t capacity) const;
    int64_t slot_mapping(int64_t seq_id, int64_t* out, int64_t capacity) const;
    void commit(int64_t seq_id, int64_t num_computed);
    void append(int64_t seq_id, const int32_t* tokens, int64_t num_tokens);
    int64_t fork(int64_t seq_id);
    void truncate(int64_t seq_id, int64_t new_num_tokens);
    void release(int64_t seq_id);

    // ---- batches -------------------------------------------------------------------------------
    std::unique_ptr<Batch> make_batch(const int64_t* seq_ids, int32_t num_seqs);
    // Commits every member to its length at batch creation (idempotent); checks all first.
    void commit_batch(const Batch& batch);

    // ---- device memory helpers -----------------------------------------------------------------
    void* device_alloc(int64_t bytes);
    void device_free(void* ptr);
    void memcpy(void* dst, const void* src, int64_t bytes, int32_t kind);
    void synchronize();

    // Verifies every internal invariant (ref counts against block tables, free list, index,
    // eviction candidates, sequence invariants); returns the first problem found, or "".
    std::string check_consistency() const;

private:
    bool reuse() const { return (config_.flags & PAGEDKV_CACHE_NO_REUSE) == 0; }
    void validate_tokens(const int32_t* tokens, int64_t count, const char* what) const;
    int64_t pages_for(int64_t tokens) const { return (tokens + config_.page_size - 1) / config_.page_size; }
    // The node a page at block-table index `index` of `s` hangs under.
    int32_t parent_node(const Sequence& s, int64_t index) const {
        return index == 0 ? s.root : s.block_table[size_t(index - 1)];
    }

    // Pages ---------------------------------------------------------------------------------
    // Throws OUT_OF_PAGES unless `needed` pages can be had from the free list and the cache.
    void require_pages(int64_t needed, const char* operation) const;
    // A page held once by the caller: from the free list, else the LRU evictable leaf.
    int32_t allocate_page();
    // Drops one hold; at zero the page stays cached if indexed, else it becomes free.
    void release_page(int32_t page);
    void copy_page(int32_t src, int32_t dst);
    // Replaces block_table[index] (held by others, or FULL, or a donor longer than our tokens)
    // with a private copy; the copy donates the computed run it holds.
    void copy_on_write(Sequence& s, int64_t index);

    // Index ---------------------------------------------------------------------------------
    // Adds the pages that commit(c) completes to the index (dedup) and the partial tail donor.
    void index_computed(Sequence& s, int64_t num_computed);
    void index_full_page(Sequence& s, int64_t index);
    void index_partial_page(Sequence& s, int64_t index, int32_t valid);

    std::string check_sequence(const Sequence& s) const;

    pagedkv_cache_config config_;
    int64_t page_bytes_ = 0;
    std::unique_ptr<PoolMemory> memory_;

    mutable std::mutex mutex_;
    PagePool pool_;
    PrefixTrie trie_;
    SequenceTable sequences_;
    pagedkv_cache_stats stats_{};
    std::vector<int32_t> scratch_pages_;
    std::unordered_set<void*> device_allocations_;
};

}  // namespace pagedkv
