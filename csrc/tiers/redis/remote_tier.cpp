#include "tiers/redis/remote_tier.h"

#include <hiredis/hiredis.h>

#include <chrono>

#include "common/error.h"

namespace pagedkv::tiers {

namespace {
constexpr int64_t kMaxQueuedBytes = int64_t(256) << 20;
}

RemoteTier::RemoteTier(const Options& options)
    : options_(options),
      loads_(redis::parse_redis_url(options.url), options.timeout_ms),
      stores_(redis::parse_redis_url(options.url), options.timeout_ms),
      queue_(kMaxQueuedBytes) {}

RemoteTier::~RemoteTier() { queue_.drain(); }

std::string RemoteTier::redis_key(const PageKey& key) { return "pagedkv:page:" + to_hex(key); }

void RemoteTier::fetch(const PageKey* keys, int64_t count, std::vector<PageObject>& objects) {
    std::vector<std::string> names;
    std::vector<redis::Command> commands;
    std::vector<int64_t> positions;
    names.reserve(size_t(count));
    for (int64_t i = 0; i < count; ++i) {
        if (objects[size_t(i)]) continue;
        names.push_back(redis_key(keys[i]));
        positions.push_back(i);
    }
    if (names.empty()) return;
    for (const std::string& name : names) commands.push_back({"GET", name});
    std::vector<redis::Reply> replies;
    std::string error;
    {
        std::lock_guard lock(load_mutex_);
        loads_.run(commands, replies, error);
    }
    bool failed = false;
    for (size_t j = 0; j < positions.size(); ++j) {
        const redisReply* reply = replies[j].get();
        if (reply == nullptr) {
            failed = true;
            continue;
        }
        if (reply->type != REDIS_REPLY_STRING) continue;
        // No copy: the object points into the reply, which lives as long as the object does
        // (verified in place, then copied once, into the pool).
        const int64_t size = int64_t(reply->len);
        std::shared_ptr<redisReply> owner(replies[j].release(), redis::ReplyDeleter{});
        objects[size_t(positions[j])] = {
            std::shared_ptr<const uint8_t>(owner, reinterpret_cast<const uint8_t*>(owner->str)), size};
    }
    if (failed || !error.empty()) report_error(error.empty() ? "load failed" : error);
}

void RemoteTier::store(const PageKey& key, const PageObject& object) {
    if (!queue_.post(object.size, [this, key, object] { write(key, object); })) stats_.dropped_stores += 1;
}

void RemoteTier::write(const PageKey& key, const PageObject& object) {
    auto start = std::chrono::steady_clock::now();
    const std::string name = redis_key(key);
    const std::string ttl = std::to_string(options_.ttl_seconds);
    std::string_view value(reinterpret_cast<const char*>(object.data.get()), size_t(object.size));
    redis::Command command = options_.ttl_seconds > 0 ? redis::Command{"SET", name, value, "EX", ttl}
                                                      : redis::Command{"SET", name, value};
    std::vector<redis::Reply> replies;
    std::string error;
    stores_.run({command}, replies, error);
    if (replies[0] == nullptr || replies[0]->type == REDIS_REPLY_ERROR) {
        stats_.dropped_stores += 1;
        report_error(error.empty() ? "store failed" : error);
        return;
    }
    stats_.pages += 1;
    stats_.bytes += object.size;
    stats_.add_store(object.size, elapsed_ns(start));
}

}  // namespace pagedkv::tiers
