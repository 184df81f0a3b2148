// The remote tier's address: "redis://HOST:PORT[,HOST:PORT...]" (several: seed nodes of a Redis
// Cluster; one may be a single node or a cluster, the server says which).
#pragma once

#include <string>
#include <vector>

namespace pagedkv::tiers::redis {

struct Endpoint {
    std::string host;
    int port = 6379;
    std::string text() const { return host + ":" + std::to_string(port); }
    bool operator==(const Endpoint&) const = default;
};

// Throws INVALID_ARGUMENT naming what is wrong.
std::vector<Endpoint> parse_redis_url(const std::string& url);

}  // namespace pagedkv::tiers::redis
