// Single-key commands to one Redis server or a Redis Cluster, routed and pipelined: commands are
// grouped by the node owning their key's slot (from CLUSTER SLOTS) and each group is sent as one
// pipeline, so a batch costs one round trip per node. MOVED updates the slot table (and
// refreshes it), ASK retries once at the named node after ASKING. Whether the servers form a
// cluster is asked, not configured: a server with cluster support disabled is a single node.
// Not thread-safe: one client per thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tiers/redis/redis_node.h"

namespace pagedkv::tiers::redis {

class RedisClient {
public:
    RedisClient(std::vector<Endpoint> seeds, int timeout_ms);

    // Runs `commands` (each's key is its second argument). replies[i] is null where the command
    // could not be run; `error` then says why (the last failure).
    void run(const std::vector<Command>& commands, std::vector<Reply>& replies, std::string& error);
    bool is_cluster() const { return mode_ == Mode::Cluster; }

private:
    enum class Mode { Unknown, Single, Cluster };
    struct Routed {
        size_t command;    // index into the batch
        bool asking = false;
    };
    RedisNode& node(const Endpoint& endpoint);
    // Learns the mode and (cluster) the slot owners from the first node that answers.
    bool discover(std::string& error);
    bool load_slots(RedisNode& from, std::string& error);
    // Sends `routed` commands to `target` in one pipeline; fills replies, queues redirects.
    void send(RedisNode& target, const std::vector<Command>& commands, const std::vector<Routed>& routed,
              std::vector<Reply>& replies, std::vector<std::pair<Routed, Endpoint>>& redirects, std::string& error);

    std::vector<Endpoint> seeds_;
    int timeout_ms_;
    Mode mode_ = Mode::Unknown;
    bool stale_slots_ = false;
    std::vector<std::unique_ptr<RedisNode>> nodes_;
    std::vector<int> slot_owner_;  // index into nodes_, -1 unknown
};

}  // namespace pagedkv::tiers::redis
