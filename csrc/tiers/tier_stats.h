// Counters of one tier, updated from the cache's threads and the tier's I/O thread alike.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "pagedkv.h"

namespace pagedkv::tiers {

struct TierStats {
    std::atomic<int64_t> pages{0}, bytes{0};
    std::atomic<int64_t> hits{0}, misses{0}, verify_failures{0};
    std::atomic<int64_t> loads{0}, load_bytes{0}, load_ns{0};
    std::atomic<int64_t> stores{0}, store_bytes{0}, store_ns{0};
    std::atomic<int64_t> dropped_stores{0}, evictions{0}, errors{0};

    void add_load(int64_t object_bytes, int64_t ns) {
        loads += 1;
        load_bytes += object_bytes;
        load_ns += ns;
    }
    void add_store(int64_t object_bytes, int64_t ns) {
        stores += 1;
        store_bytes += object_bytes;
        store_ns += ns;
    }
    // The C view; `capacity` is the tier's byte budget (0: unbounded or not known).
    pagedkv_tier_stats snapshot(int64_t capacity) const;
};

// Nanoseconds since `start`.
inline int64_t elapsed_ns(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace pagedkv::tiers
