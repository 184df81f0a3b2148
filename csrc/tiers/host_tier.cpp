#include "tiers/host_tier.h"

#include <chrono>
#include <climits>
#include <cstring>

#include "common/error.h"

namespace pagedkv::tiers {

HostTier::HostTier(int64_t budget, int64_t object_bytes, Memory memory)
    : object_bytes_(object_bytes), memory_(std::move(memory)) {
    const int64_t slots = budget / object_bytes;
    PAGEDKV_REQUIRE(slots >= 1, PAGEDKV_ERR_INVALID_ARGUMENT, "config.host_tier_bytes ", budget,
                    " holds no page object of ", object_bytes, " bytes");
    PAGEDKV_REQUIRE(slots <= INT32_MAX, PAGEDKV_ERR_INVALID_ARGUMENT, "config.host_tier_bytes ", budget,
                    " gives more than 2^31 page objects");
    slot_count_ = int32_t(slots);
    base_ = static_cast<uint8_t*>(memory_.alloc(slots * object_bytes));
    slots_.resize(size_t(slot_count_));
    free_slots_.reserve(size_t(slot_count_));
    for (int32_t slot = slot_count_ - 1; slot >= 0; --slot) free_slots_.push_back(slot);
    index_.reserve(size_t(slot_count_));
}

HostTier::~HostTier() { memory_.free(base_); }

bool HostTier::holds(const PageKey& key) const {
    std::lock_guard lock(mutex_);
    return index_.count(key) != 0;
}

void HostTier::fetch(const PageKey* keys, int64_t count, std::vector<PageObject>& objects) {
    std::lock_guard lock(mutex_);
    for (int64_t i = 0; i < count; ++i) {
        if (objects[size_t(i)]) continue;
        auto it = index_.find(keys[i]);
        if (it == index_.end()) continue;
        const int32_t slot = it->second;
        Slot& s = slots_[size_t(slot)];
        ++s.pins;
        lru_.splice(lru_.end(), lru_, s.lru);  // most recently used
        // The object pins its slot until the last copy of it is gone.
        objects[size_t(i)] = {std::shared_ptr<const uint8_t>(slot_data(slot), [this, slot](const uint8_t*) { unpin(slot); }),
                              object_bytes_};
    }
}

void HostTier::discard(const PageKey& key) {
    std::lock_guard lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end() || slots_[size_t(it->second)].pins > 0) return;
    release_slot(it->second);
    free_slots_.push_back(it->second);
    index_.erase(it);
}

void HostTier::release_slot(int32_t slot) {
    Slot& s = slots_[size_t(slot)];
    lru_.erase(s.lru);
    s.used = false;
    stats_.pages -= 1;
    stats_.bytes -= object_bytes_;
}

void HostTier::unpin(int32_t slot) {
    std::lock_guard lock(mutex_);
    --slots_[size_t(slot)].pins;
}

int32_t HostTier::take_slot() {
    if (!free_slots_.empty()) {
        int32_t slot = free_slots_.back();
        free_slots_.pop_back();
        return slot;
    }
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
        Slot& s = slots_[size_t(*it)];
        if (s.pins > 0) continue;
        const int32_t slot = *it;
        // Write-back: the next tier keeps a copy of what this one lets go.
        if (next_ != nullptr) {
            try {
                next_->store(s.key, copy_object(slot_data(slot), object_bytes_));
            } catch (const std::bad_alloc&) {
                next_->stats().dropped_stores += 1;
            }
        }
        index_.erase(s.key);
        release_slot(slot);
        stats_.evictions += 1;
        return slot;
    }
    return -1;
}

void HostTier::store_in_place(const PageKey& key, const std::function<void(uint8_t*)>& fill) {
    auto start = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    if (index_.count(key) != 0) return;
    const int32_t slot = take_slot();
    if (slot < 0) {
        stats_.dropped_stores += 1;
        return;
    }
    Slot& s = slots_[size_t(slot)];
    try {
        fill(slot_data(slot));
    } catch (...) {
        free_slots_.push_back(slot);
        stats_.errors += 1;
        return;
    }
    s.key = key;
    s.used = true;
    s.pins = 0;
    s.lru = lru_.insert(lru_.end(), slot);
    index_.emplace(key, slot);
    stats_.pages += 1;
    stats_.bytes += object_bytes_;
    stats_.add_store(object_bytes_, elapsed_ns(start));
}

void HostTier::store(const PageKey& key, const PageObject& object) {
    if (object.size != object_bytes_) {  // not an object of this cache's layout
        stats_.errors += 1;
        return;
    }
    store_in_place(key, [&](uint8_t* slot) { std::memcpy(slot, object.data.get(), size_t(object_bytes_)); });
}

}  // namespace pagedkv::tiers
