#include "tiers/tier_stats.h"

#include "tiers/tier.h"

#include <cstdio>

namespace pagedkv::tiers {

pagedkv_tier_stats TierStats::snapshot(int64_t capacity) const {
    pagedkv_tier_stats out{};
    out.struct_size = sizeof(out);
    out.enabled = 1;
    out.pages = pages;
    out.bytes = bytes;
    out.capacity_bytes = capacity;
    out.hits = hits;
    out.misses = misses;
    out.verify_failures = verify_failures;
    out.loads = loads;
    out.load_bytes = load_bytes;
    out.load_ns = load_ns;
    out.stores = stores;
    out.store_bytes = store_bytes;
    out.store_ns = store_ns;
    out.dropped_stores = dropped_stores;
    out.evictions = evictions;
    out.errors = errors;
    return out;
}

void Tier::report_error(const std::string& message) noexcept {
    stats_.errors += 1;
    try {
        std::lock_guard lock(error_mutex_);
        if (message == last_error_) return;
        last_error_ = message;
        std::fprintf(stderr, "pagedkv: %s tier: %s\n", tier_name(kind()), message.c_str());
    } catch (...) {
    }
}

std::string Tier::last_error() const {
    std::lock_guard lock(error_mutex_);
    return last_error_;
}

const char* tier_name(int32_t kind) {
    switch (kind) {
        case PAGEDKV_TIER_HOST: return "host";
        case PAGEDKV_TIER_DISK: return "disk";
        case PAGEDKV_TIER_REMOTE: return "remote";
        default: return "unknown";
    }
}

}  // namespace pagedkv::tiers
