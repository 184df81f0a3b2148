#include "tiers/redis/redis_node.h"

#include <hiredis/hiredis.h>

#include <algorithm>

#include "common/error.h"

namespace pagedkv::tiers::redis {

namespace {
constexpr int kFirstBackoffMs = 50, kMaxBackoffMs = 2000;

timeval to_timeval(int ms) { return timeval{ms / 1000, (ms % 1000) * 1000}; }
}  // namespace

void ReplyDeleter::operator()(redisReply* reply) const noexcept { freeReplyObject(reply); }

RedisNode::RedisNode(Endpoint endpoint, int timeout_ms) : endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms) {}

RedisNode::~RedisNode() {
    if (context_ != nullptr) redisFree(context_);
}

void RedisNode::drop(const std::string& why) {
    if (context_ != nullptr) redisFree(context_);
    context_ = nullptr;
    backoff_ms_ = backoff_ms_ == 0 ? kFirstBackoffMs : std::min(backoff_ms_ * 2, kMaxBackoffMs);
    retry_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff_ms_);
    last_failure_ = why;
}

bool RedisNode::connect(std::string& error) {
    if (context_ != nullptr) return true;
    if (std::chrono::steady_clock::now() < retry_at_) {
        error = concat(endpoint_.text(), " is unreachable (", last_failure_, "); next attempt after a backoff");
        return false;
    }
    redisContext* context = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, to_timeval(timeout_ms_));
    if (context == nullptr || context->err != 0) {
        error = concat("cannot connect to ", endpoint_.text(), ": ", context != nullptr ? context->errstr : "out of memory");
        if (context != nullptr) redisFree(context);
        drop(error);
        return false;
    }
    redisSetTimeout(context, to_timeval(timeout_ms_));
    context_ = context;
    backoff_ms_ = 0;
    return true;
}

bool RedisNode::pipeline(const std::vector<Command>& commands, std::vector<Reply>& replies, std::string& error) {
    replies.clear();
    if (!connect(error)) return false;
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const Command& command : commands) {
        argv.clear();
        lengths.clear();
        for (std::string_view arg : command) {
            argv.push_back(arg.data());
            lengths.push_back(arg.size());
        }
        if (redisAppendCommandArgv(context_, int(argv.size()), argv.data(), lengths.data()) != REDIS_OK) {
            error = concat(endpoint_.text(), ": ", context_->errstr);
            drop(error);
            return false;
        }
    }
    for (size_t i = 0; i < commands.size(); ++i) {
        void* reply = nullptr;
        if (redisGetReply(context_, &reply) != REDIS_OK || reply == nullptr) {
            error = concat(endpoint_.text(), ": ", context_->err != 0 ? context_->errstr : "no reply");
            drop(error);
            replies.clear();
            return false;
        }
        replies.emplace_back(static_cast<redisReply*>(reply));
    }
    return true;
}

}  // namespace pagedkv::tiers::redis
