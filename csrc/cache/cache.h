// The cache: one page pool on one device (through its PageManager), the live sequences, and the
// batches built over them. Every public method takes the cache's mutex; all-or-nothing
// operations check capacity before changing anything, so a failure (OUT_OF_PAGES, bad input)
// leaves the cache exactly as it was. Batches are tracked: a change of a sequence waits for the
// kernel calls running with batches that hold it, then makes those batches stale.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "cache/batch.h"
#include "device/device.h"
#include "events/event_log.h"
#include "kernels/paged_layout.h"
#include "quant/kv_scales.h"
#include "pagedkv.h"
#include "pool/page_manager.h"
#include "prefix/prefix_trie.h"
#include "sequence/sequence.h"
#include "tiers/tier_loader.h"

namespace pagedkv {

class Cache {
public:
    // Validates `config` (a complete struct; the C layer pads short ones with zeros) and
    // allocates the pool. Throws INVALID_ARGUMENT, NO_DEVICE or OUT_OF_MEMORY. `key` replaces
    // the index's key function (tests).
    explicit Cache(const pagedkv_cache_config& config, PrefixTrie::KeyFunction key = nullptr);
    ~Cache();
    Cache(const Cache&) = delete;
    Cache& operator=(const Cache&) = delete;

    // Waits for running kernel calls, then makes every batch unusable (the cache is going away).
    void shutdown();

    // ---- layout (immutable, no lock) ---------------------------------------------------------
    const pagedkv_cache_config& config() const { return config_; }
    int32_t device_type() const { return config_.device_type; }
    int32_t page_size() const { return config_.page_size; }
    int32_t num_pages() const { return config_.num_pages; }
    int64_t page_bytes() const { return page_bytes_; }
    void* pool_base() const { return pages_.pool_base(); }
    device::Device& device() const { return *device_; }
    // One layer as kernels see it; INVALID_ARGUMENT for a layer outside [0, num_layers).
    kernels::PagedLayer layer(int32_t layer) const;
    pagedkv_cache_layout layout() const;
    // NOT_FOUND for a page outside [0, num_pages).
    void* page_address(int32_t page) const;
    // FP8 caches' per-head scales (INVALID_ARGUMENT for another format or a bad layer).
    KvScales& kv_scales(int32_t layer);

    // ---- counters and index maintenance ------------------------------------------------------
    pagedkv_cache_stats stats() const;
    int32_t clear_unused();

    // ---- tiers below the pool (cache_tiers.cpp) --------------------------------------------------
    pagedkv_tier_stats tier_stats(int32_t tier) const;
    void flush_tiers();
    // Starts loading the tiers' run of `prompt` into the pool as cached pages and returns at once
    // (disk and remote loads run on the loader's thread; host memory is copied here). Returns the
    // positions loaded before returning.
    int64_t prefetch(const int32_t* prompt, int64_t num_tokens, const uint8_t* salt, int32_t salt_len);

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

    // ---- prefix queries, KV events, snapshots --------------------------------------------------
    // What create_sequence with these arguments would reuse now, with room to spare; changes
    // nothing (no pin, no LRU stamp, no root, no statistics).
    pagedkv_prefix_match match_prefix(const int32_t* prompt, int64_t num_tokens, const uint8_t* salt,
                                      int32_t salt_len);
    // The pagedkv_medium of this cache's pool.
    int32_t medium() const { return config_.device_type == PAGEDKV_DEVICE_CUDA ? PAGEDKV_MEDIUM_GPU : PAGEDKV_MEDIUM_CPU; }
    // Sets (null: removes) the event listener registered under `owner` (see EventLog).
    void set_event_listener(const void* owner, pagedkv_event_callback callback, void* user_data) {
        events_.set_listener(owner, callback, user_data);
    }
    struct Snapshot {
        int32_t count;           // blocks indexed (may exceed the capacity given)
        int64_t next_batch_seq;  // event batches from this seq on describe later changes
    };
    Snapshot snapshot(pagedkv_snapshot_block* out, int32_t* tokens, int32_t capacity);

    // ---- batches -------------------------------------------------------------------------------
    // Builds, checks and places a batch; on a CUDA cache its arrays are uploaded on `stream`
    // (and waited for when `wait` is set, so kernels on any stream see them).
    std::unique_ptr<Batch> make_batch(const int64_t* seq_ids, int32_t num_seqs, void* stream, bool wait);
    // Stops tracking `batch` (waiting for its running kernel calls) and frees its device arrays.
    void destroy_batch(Batch& batch);
    // A kernel call with `batch` in progress: members cannot change until it ends.
    class BatchUse {
    public:
        BatchUse(Cache& cache, Batch& batch) : cache_(cache), batch_(batch) {}
        ~BatchUse() { cache_.end_use(batch_); }
        BatchUse(const BatchUse&) = delete;
        BatchUse& operator=(const BatchUse&) = delete;

    private:
        Cache& cache_;
        Batch& batch_;
    };
    // Throws INVALID_ARGUMENT (not a batch of this cache, destroyed) or STALE_BATCH.
    [[nodiscard]] BatchUse use_batch(Batch& batch);
    // Commits every member to its length at batch creation; STALE_BATCH if one changed since.
    // The batch is stale afterwards.
    void commit_batch(Batch& batch);
    // INVALID_ARGUMENT unless `batch` is tracked by this cache (stale is fine).
    void require_own_batch(const Batch& batch) const;

    // ---- device memory helpers -----------------------------------------------------------------
    void* device_alloc(int64_t bytes);
    void device_free(void* ptr);
    void memcpy(void* dst, const void* src, int64_t bytes, int32_t kind);
    void synchronize();

    // Verifies every internal invariant (ref counts against block tables, free list, index,
    // eviction candidates, sequence invariants, batch tracking); returns the first problem, or "".
    std::string check_consistency() const;
    // Salt roots the index keeps now, and its key seed (tests).
    int32_t index_roots() const;
    uint64_t index_seed() const { return pages_.trie().seed(); }

private:
    using Lock = std::unique_lock<std::mutex>;

    // The cache's mutex for a call that may change the index. When it goes out of scope the KV
    // events recorded meanwhile are closed into a batch (still under the mutex), the mutex is
    // released, and only then are ready batches handed to the listeners: no user code ever runs
    // under the cache's lock, and a call returns after its events were delivered.
    class ChangeLock {
    public:
        explicit ChangeLock(Cache& cache) : cache_(cache), lock_(cache.mutex_) {}
        ~ChangeLock() {
            close_events();
            lock_.unlock();
            if (closed_) cache_.events_.deliver();
        }
        ChangeLock(const ChangeLock&) = delete;
        ChangeLock& operator=(const ChangeLock&) = delete;
        Lock& lock() { return lock_; }
        // Closes the events recorded so far into a batch now (delivered at the end all the same).
        void close_events() { closed_ |= cache_.events_.close_batch(); }

    private:
        Cache& cache_;
        Lock lock_;
        bool closed_ = false;
    };

    void validate_tokens(const int32_t* tokens, int64_t count, const char* what) const;
    int64_t pages_for(int64_t tokens) const { return (tokens + config_.page_size - 1) / config_.page_size; }
    int64_t capacity_tokens() const { return int64_t(config_.num_pages) * config_.page_size; }

    // The live sequence `seq_id` once no kernel call runs with a batch holding it (waits).
    Sequence& quiesced(int64_t seq_id, Lock& lock);
    // Makes every batch holding `s` stale: `change` says what happened to it.
    void invalidate_batches(Sequence& s, const char* change);
    void mark_stale(Batch& batch, int64_t seq_id, const char* change);
    void end_use(Batch& batch);

    // ---- tiers (cache_tiers.cpp) ----
    // The run the tiers hold past the pool hit of `prompt` under `root`, into `out`: read here
    // from host memory, else from the loader's job (joined or started), waiting without the
    // lock (it is released and taken again) until the job ends or the tier timeout passes.
    // Returns whether the pool walk of the prompt still stands (the lock was never released).
    bool load_from_tiers(int32_t root, const int32_t* prompt, int64_t num_tokens, ChangeLock& guard,
                         tiers::TierChain::Run& out);
    // A loader job for the pages `lookup` describes (root kNone: nothing to install).
    std::unique_ptr<tiers::TierLoader::Job> make_job(int32_t root, const int32_t* prompt,
                                                    const PageManager::TierLookup& lookup) const;
    // The loader's installer: puts a finished job's run into the pool and lets its root go.
    void install_job(const tiers::TierLoader::Job& job);

    std::string check_sequence(const Sequence& s) const;
    std::string check_batches() const;

    pagedkv_cache_config config_;
    int64_t page_bytes_ = 0;
    std::unique_ptr<device::Device> device_;

    mutable std::mutex mutex_;
    std::condition_variable idle_;  // signalled when a batch's last running kernel call ends
    PageManager pages_;
    events::EventLog events_;  // after pages_: it listens to its index
    SequenceTable sequences_;
    std::unordered_set<Batch*> batches_;
    pagedkv_cache_stats stats_{};
    std::unordered_set<void*> device_allocations_;
    mutable KvScales kv_scales_;  // FP8 only; layer() hands out pointers into it
    std::unique_ptr<tiers::TierLoader> loader_;  // disk or remote tiers only; stopped first
};

}  // namespace pagedkv
