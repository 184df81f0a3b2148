// One connection to one Redis server (hiredis, blocking with timeouts): pipelined commands, and
// reconnection with exponential backoff, so a server that is down costs a failed call at most
// once per backoff period rather than a connect timeout per page.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tiers/redis/redis_url.h"

struct redisContext;
struct redisReply;

namespace pagedkv::tiers::redis {

struct ReplyDeleter {
    void operator()(redisReply* reply) const noexcept;
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// A command's arguments; the views must outlive the call that sends it.
using Command = std::vector<std::string_view>;

class RedisNode {
public:
    RedisNode(Endpoint endpoint, int timeout_ms);
    ~RedisNode();
    RedisNode(const RedisNode&) = delete;
    RedisNode& operator=(const RedisNode&) = delete;

    const Endpoint& endpoint() const { return endpoint_; }
    // Sends `commands` in one pipeline and reads one reply each into `replies`. False (with
    // `error`) when the server cannot be reached or the connection broke: the connection is
    // dropped and the next attempt waits for the backoff.
    bool pipeline(const std::vector<Command>& commands, std::vector<Reply>& replies, std::string& error);

private:
    bool connect(std::string& error);
    void drop(const std::string& why);

    Endpoint endpoint_;
    int timeout_ms_;
    redisContext* context_ = nullptr;
    std::chrono::steady_clock::time_point retry_at_{};
    int backoff_ms_ = 0;
    std::string last_failure_;
};

}  // namespace pagedkv::tiers::redis
