// The disk tier: one file per page object in a directory, within a byte budget. A store is
// written on the tier's I/O thread to a temporary name, fsynced (unless turned off), and renamed
// into place, so a reader (this process or a later one) sees a whole object or none. The
// directory is scanned when the tier opens, so a new process reuses what an earlier one stored;
// LRU order starts from the files' modification times. A full or read-only disk, a vanished or
// unreadable file: a dropped store or a miss, counted, never an exception.
#pragma once

#include <cstdint>
#include <filesystem>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "tiers/io_queue.h"
#include "tiers/key_hash.h"
#include "tiers/tier.h"

namespace pagedkv::tiers {

class DiskTier final : public Tier {
public:
    // Creates `directory` if absent (INVALID_ARGUMENT when that fails or it is not a directory).
    DiskTier(std::string directory, int64_t budget, bool fsync);
    ~DiskTier() override;

    int32_t kind() const override { return PAGEDKV_TIER_DISK; }
    void fetch(const PageKey* keys, int64_t count, std::vector<PageObject>& objects) override;
    void store(const PageKey& key, const PageObject& object) override;
    bool holds(const PageKey& key) const override;
    void discard(const PageKey& key) override;
    void flush() override { queue_.drain(); }
    int64_t capacity() const override { return budget_; }

private:
    struct Entry {
        int64_t bytes;
        std::list<PageKey>::iterator lru;
    };
    std::filesystem::path path_of(const PageKey& key) const;
    void scan();
    void write(const PageKey& key, const PageObject& object);  // on the I/O thread
    // Forgets `key` (caller holds mutex_); returns its bytes, 0 if it was not known.
    int64_t forget(const PageKey& key);
    // Removes least recently used files until the budget holds (I/O thread); they go to next_.
    void evict_over_budget();

    std::filesystem::path directory_;
    int64_t budget_;
    bool fsync_;
    mutable std::mutex mutex_;
    std::unordered_map<PageKey, Entry, PageKeyHash> index_;
    std::list<PageKey> lru_;  // front: least recently used
    int64_t bytes_ = 0;
    uint64_t temp_counter_ = 0;
    IoQueue queue_;  // last: its thread stops before the rest goes
};

}  // namespace pagedkv::tiers
