// The KV events of one cache: recorded while the cache's mutex is held (the index tells it about
// every block stored or removed), closed into a batch at the end of each API call, and handed to
// the listeners (the C callback, ZeroMQ publishers) after the mutex is released, so that no user
// code ever runs under the cache's lock. Batches are delivered in the order they were closed, by
// one thread at a time: the thread that closes a batch delivers every batch that is ready
// before its call returns (possibly waiting for another thread's delivery to end).
//
// Locks: the cache's mutex (recording, closing) and delivery_mutex_ (the listener list and the
// act of delivering), taken in that order by set_listener only. Closed batches go to the
// delivering side, and delivered buffers back for reuse, through two lock-free rings: each side
// is one thread at a time, serialized by its mutex. A call whose events nobody listens to pays
// one branch; one that records events pays no lock beyond its own and the delivery mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "events/block_hash.h"
#include "events/spsc_ring.h"
#include "pagedkv.h"
#include "pool/page_manager.h"
#include "prefix/index_listener.h"
#include "prefix/prefix_trie.h"

namespace pagedkv::events {

class EventLog final : public IndexListener {
public:
    // `pages` outlives this object; `cache_mutex` is the mutex that guards it. `medium` is the
    // pagedkv_medium of the cache's pool.
    EventLog(PageManager& pages, std::mutex& cache_mutex, int32_t medium);
    ~EventLog() override;
    EventLog(const EventLog&) = delete;
    EventLog& operator=(const EventLog&) = delete;

    // ---- listeners (call without the cache's mutex) -------------------------------------------
    // Sets the listener registered under `owner` (any address naming the registrant), or removes
    // it when callback is null. Batches closed before are delivered to the previous listeners
    // first; when this returns no removed callback runs or will run again. Recording starts with
    // the first listener (hashing every block indexed by then) and stops with the last.
    void set_listener(const void* owner, pagedkv_event_callback callback, void* user_data);

    // ---- recording (under the cache's mutex) -------------------------------------------------
    bool enabled() const { return !listeners_.empty(); }
    // Out of host memory, an event is dropped rather than failing the change half-way.
    void full_inserted(int32_t page) noexcept override;
    void full_removing(int32_t page) noexcept override;
    // Forgets what this call recorded so far and records AllBlocksCleared instead.
    void replace_with_all_cleared() noexcept;
    // Closes what was recorded since the last close into the next batch; false if nothing was
    // (or, out of host memory, if it stays open for the next call to close).
    bool close_batch() noexcept;
    // The seq the next closed batch will get.
    int64_t next_seq() const { return next_seq_; }

    // ---- snapshot (under the cache's mutex) ---------------------------------------------------
    // Writes up to `capacity` blocks (and their tokens unless `tokens` is null) parents first;
    // returns the number of blocks.
    int32_t snapshot(pagedkv_snapshot_block* out, int32_t* tokens, int32_t capacity) const;

    // ---- delivery (without the cache's mutex; never throws) ----------------------------------
    void deliver() noexcept;

private:
    struct Record {
        int32_t type;
        int32_t num_blocks;
        int64_t first_hash;   // index into Batch::hashes
        int64_t first_token;  // index into Batch::tokens
        int64_t parent_hash;
        bool has_parent;
    };
    struct Batch {
        int64_t seq = 0;
        double timestamp = 0;
        std::vector<Record> records;
        std::vector<int64_t> hashes;
        std::vector<int32_t> tokens;
        std::vector<pagedkv_block_event> view;  // built at delivery, pointing into the above
        void clear();
    };
    struct Listener {
        const void* owner;
        pagedkv_event_callback callback;
        void* user_data;
    };

    Record& record(int32_t type, bool extends);
    void deliver_ready() noexcept;  // delivery_mutex_ held
    void deliver_one(Batch& batch) noexcept;

    PageManager& pages_;
    const PrefixTrie& trie_;
    std::mutex& cache_mutex_;
    const int32_t page_size_;
    const int32_t medium_;
    BlockHashes hashes_;

    // Under the cache's mutex (listeners_ also under delivery_mutex_ when changed).
    std::unique_ptr<Batch> current_;
    int64_t next_seq_ = 0;
    std::vector<Listener> listeners_;

    std::mutex delivery_mutex_;
    SpscRing<std::unique_ptr<Batch>, 256> ready_;  // closed, not delivered (full: the next call's batch grows)
    SpscRing<std::unique_ptr<Batch>, 256> spare_;  // delivered, cleared, for reuse (full: freed)
};

}  // namespace pagedkv::events
