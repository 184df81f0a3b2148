// The remote tier: page objects in Redis (one node or a Redis Cluster) under
// "pagedkv:page:<hex key>", shared by every cache that uses the same servers and namespace.
// Loads are one pipelined batch of GETs per node; stores run on the tier's I/O thread with their
// own connection, with an optional TTL so Redis can reclaim memory. Every call is bounded by the
// timeout; a server that is down is a miss or a dropped store, reconnected with backoff.
#pragma once

#include <mutex>
#include <string>

#include "tiers/io_queue.h"
#include "tiers/redis/redis_client.h"
#include "tiers/tier.h"

namespace pagedkv::tiers {

class RemoteTier final : public Tier {
public:
    struct Options {
        std::string url;
        int timeout_ms = 1000;
        int ttl_seconds = 0;
    };
    // Throws INVALID_ARGUMENT for a bad URL; connects lazily (no server is no error here).
    explicit RemoteTier(const Options& options);
    ~RemoteTier() override;

    int32_t kind() const override { return PAGEDKV_TIER_REMOTE; }
    void fetch(const PageKey* keys, int64_t count, std::vector<PageObject>& objects) override;
    void store(const PageKey& key, const PageObject& object) override;
    void flush() override { queue_.drain(); }

    // The Redis key of a page object.
    static std::string redis_key(const PageKey& key);

private:
    void write(const PageKey& key, const PageObject& object);  // on the I/O thread

    Options options_;
    std::mutex load_mutex_;
    redis::RedisClient loads_;   // used under load_mutex_
    redis::RedisClient stores_;  // used by the I/O thread only
    IoQueue queue_;              // last: its thread stops first
};

}  // namespace pagedkv::tiers
