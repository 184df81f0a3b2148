// Handles of the C API as entries of a table: a handle value encodes (kind, slot, generation) and
// is never dereferenced, so a destroyed or foreign handle is found missing instead of being read,
// and a slot reused later has a new generation, so a stale handle can never reach a new object.
// Lookups return shared ownership: an object a call is using lives until that call returns, even
// if another thread destroys its handle meanwhile.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

namespace pagedkv::capi {

template <class Object>
class HandleTable {
public:
    // `kind` (1..15) tells tables apart, so a batch handle passed as a cache is not found.
    explicit HandleTable(uint32_t kind) : kind_(kind) {}

    uint64_t insert(std::shared_ptr<Object> object) {
        std::unique_lock lock(mutex_);
        uint32_t slot;
        if (!free_.empty()) {
            slot = free_.back();
            free_.pop_back();
        } else {
            slot = uint32_t(slots_.size());
            slots_.push_back(Slot{});  // may throw: nothing changed yet
            free_.reserve(slots_.size());  // so that remove() never allocates
        }
        slots_[slot].object = std::move(object);
        return encode(slot, slots_[slot].generation);
    }

    // The live object of `handle`, or null.
    std::shared_ptr<Object> find(uint64_t handle) const {
        std::shared_lock lock(mutex_);
        const Slot* slot = locate(handle);
        return slot ? slot->object : nullptr;
    }

    // Removes and returns the live object of `handle`, or null; the handle is dead afterwards.
    std::shared_ptr<Object> remove(uint64_t handle) {
        std::unique_lock lock(mutex_);
        Slot* slot = const_cast<Slot*>(locate(handle));
        if (slot == nullptr) return nullptr;
        std::shared_ptr<Object> object = std::move(slot->object);
        slot->object.reset();
        // A slot whose generation would wrap is retired rather than reused.
        if (++slot->generation != 0) free_.push_back(uint32_t(slot - slots_.data()));
        return object;
    }

private:
    struct Slot {
        uint32_t generation = 1;
        std::shared_ptr<Object> object;
    };
    static constexpr uint64_t kSlotBits = 28;

    uint64_t encode(uint32_t slot, uint32_t generation) const {
        return (uint64_t(generation) << 32) | (uint64_t(kind_) << kSlotBits) | (uint64_t(slot) + 1);
    }
    const Slot* locate(uint64_t handle) const {
        const uint64_t low = handle & 0xffffffffu;
        if ((low >> kSlotBits) != kind_) return nullptr;
        const uint64_t slot = (low & ((uint64_t(1) << kSlotBits) - 1)) - 1;
        if (slot >= slots_.size()) return nullptr;
        const Slot& entry = slots_[slot];
        if (entry.generation != uint32_t(handle >> 32) || entry.object == nullptr) return nullptr;
        return &entry;
    }

    const uint32_t kind_;
    mutable std::shared_mutex mutex_;
    std::vector<Slot> slots_;
    std::vector<uint32_t> free_;
};

}  // namespace pagedkv::capi
