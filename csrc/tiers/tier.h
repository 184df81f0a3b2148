// One level below the page pool (host memory, a disk directory, Redis). A tier keeps opaque
// page objects under their keys; it neither knows pages nor verifies (the chain does both). A
// tier never throws and never stops the cache: a failure is a miss or a dropped store, counted
// in its stats and reported once to the log.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "tiers/page_key.h"
#include "tiers/page_object.h"
#include "tiers/tier_stats.h"

namespace pagedkv::tiers {

class Tier {
public:
    virtual ~Tier() = default;

    // pagedkv_tier (HOST, DISK, REMOTE).
    virtual int32_t kind() const = 0;
    // For each i in [0, count) whose objects[i] is empty, fills it when the tier holds an object
    // under keys[i]. One batch: at most a round trip per server, never one per page. Objects are
    // unverified; the caller reports each as a hit, a miss or a verification failure.
    virtual void fetch(const PageKey* keys, int64_t count, std::vector<PageObject>& objects) = 0;
    // Keeps `object` under `key` (replacing what was there); never waits for I/O (a full queue
    // drops the store and counts it).
    virtual void store(const PageKey& key, const PageObject& object) = 0;
    // Whether the tier is known to hold `key` now, from local knowledge only (remote: false).
    virtual bool holds(const PageKey& key) const { return false; }
    // Waits until the stores queued so far are done (tests, shutdown).
    virtual void flush() {}
    // The byte budget (0: none).
    virtual int64_t capacity() const { return 0; }
    // Forgets `key` (its object failed verification, so nobody should load it again).
    virtual void discard(const PageKey& key) {}
    // Where objects this tier evicts go (the next tier down, or nowhere); set once by the chain.
    void set_next(Tier* next) { next_ = next; }
    // Counts an error and logs it to stderr, once per distinct message in a row (so a server
    // that is down is reported once, not once per page). Never throws.
    void report_error(const std::string& message) noexcept;
    // The last error reported ("" if none).
    std::string last_error() const;

    TierStats& stats() { return stats_; }
    const TierStats& stats() const { return stats_; }

protected:
    Tier* next_ = nullptr;
    TierStats stats_;

private:
    mutable std::mutex error_mutex_;
    std::string last_error_;
};

const char* tier_name(int32_t kind);

}  // namespace pagedkv::tiers
