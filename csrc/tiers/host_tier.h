// The host tier: page objects in host memory (pinned when the pool is on a GPU, so loads and
// demotions are DMA copies), within a byte budget. Objects of one cache all have one size, so
// the budget is one allocation cut into slots; a map finds a key's slot, a list keeps LRU
// order, and a slot a load is reading is pinned (never evicted under it). Evicted objects go to
// the next tier down (write-back).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tiers/key_hash.h"
#include "tiers/tier.h"

namespace pagedkv::tiers {

class HostTier final : public Tier {
public:
    struct Memory {  // how slot memory is had: pinned on CUDA, aligned host memory otherwise
        std::function<void*(int64_t)> alloc;  // throws OUT_OF_MEMORY
        std::function<void(void*)> free;
    };
    // Throws INVALID_ARGUMENT when `budget` holds no object of `object_bytes`.
    HostTier(int64_t budget, int64_t object_bytes, Memory memory);
    ~HostTier() override;

    int32_t kind() const override { return PAGEDKV_TIER_HOST; }
    void fetch(const PageKey* keys, int64_t count, std::vector<PageObject>& objects) override;
    void store(const PageKey& key, const PageObject& object) override;
    bool holds(const PageKey& key) const override;
    void discard(const PageKey& key) override;
    int64_t capacity() const override { return int64_t(slot_count_) * object_bytes_; }
    // Stores under `key` an object that `fill` writes into its slot (object_bytes of them), with
    // no copy in between; does nothing when `key` is held already or every slot is pinned.
    void store_in_place(const PageKey& key, const std::function<void(uint8_t*)>& fill);

private:
    struct Slot {
        PageKey key{};
        int32_t pins = 0;
        bool used = false;
        std::list<int32_t>::iterator lru;  // valid while used
    };
    uint8_t* slot_data(int32_t slot) const { return base_ + int64_t(slot) * object_bytes_; }
    // A slot for a new object (free, else the least recently used unpinned one, demoted), or -1.
    int32_t take_slot();
    void unpin(int32_t slot);
    // Takes a used slot out of the LRU list and the counts (its index entry is the caller's).
    void release_slot(int32_t slot);

    int64_t object_bytes_;
    int32_t slot_count_;
    Memory memory_;
    uint8_t* base_ = nullptr;
    mutable std::mutex mutex_;
    std::vector<Slot> slots_;
    std::vector<int32_t> free_slots_;
    std::list<int32_t> lru_;  // front: least recently used
    std::unordered_map<PageKey, int32_t, PageKeyHash> index_;
};

}  // namespace pagedkv::tiers
