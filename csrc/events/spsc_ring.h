// A bounded ring between one producing and one consuming thread at a time (each side may be a
// different thread from call to call, as long as something else orders them: the event log's
// sides are serialized by the cache's mutex and by its delivery mutex). No locks: a push and a
// pop are two atomic operations each.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <utility>

namespace pagedkv::events {

template <class T, size_t Capacity>
class SpscRing {
    static_assert((Capacity & (Capacity - 1)) == 0, "Capacity must be a power of two");

public:
    // False (and `value` untouched) when full.
    bool push(T& value) noexcept {
        size_t head = head_.load(std::memory_order_relaxed);
        if (head - tail_.load(std::memory_order_acquire) == Capacity) return false;
        slots_[head & (Capacity - 1)] = std::move(value);
        head_.store(head + 1, std::memory_order_release);
        return true;
    }
    // False when empty.
    bool pop(T& out) noexcept {
        size_t tail = tail_.load(std::memory_order_relaxed);
        if (tail == head_.load(std::memory_order_acquire)) return false;
        out = std::move(slots_[tail & (Capacity - 1)]);
        tail_.store(tail + 1, std::memory_order_release);
        return true;
    }

private:
    std::array<T, Capacity> slots_{};
    alignas(64) std::atomic<size_t> head_{0};
    alignas(64) std::atomic<size_t> tail_{0};
};

}  // namespace pagedkv::events
