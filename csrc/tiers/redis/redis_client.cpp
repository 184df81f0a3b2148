#include "tiers/redis/redis_client.h"

#include <hiredis/hiredis.h>

#include <charconv>
#include <string_view>

#include "common/error.h"
#include "tiers/redis/key_slot.h"

namespace pagedkv::tiers::redis {

namespace {

constexpr int kMaxRedirects = 5;

std::string_view reply_text(const redisReply* reply) { return std::string_view(reply->str, size_t(reply->len)); }

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" -> the endpoint (an empty host means
// the host of the node that answered).
bool parse_redirect(std::string_view text, std::string_view kind, const Endpoint& answered, Endpoint& out) {
    if (text.rfind(kind, 0) != 0) return false;
    size_t space = text.find(' ', kind.size() + 1);
    if (space == std::string_view::npos) return false;
    std::string_view address = text.substr(space + 1);
    size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return false;
    out.host = colon == 0 ? answered.host : std::string(address.substr(0, colon));
    std::string_view port = address.substr(colon + 1);
    return std::from_chars(port.data(), port.data() + port.size(), out.port).ec == std::errc();
}

}  // namespace

RedisClient::RedisClient(std::vector<Endpoint> seeds, int timeout_ms)
    : seeds_(std::move(seeds)), timeout_ms_(timeout_ms), slot_owner_(kSlotCount, -1) {}

RedisNode& RedisClient::node(const Endpoint& endpoint) {
    for (auto& n : nodes_)
        if (n->endpoint() == endpoint) return *n;
    nodes_.push_back(std::make_unique<RedisNode>(endpoint, timeout_ms_));
    return *nodes_.back();
}

bool RedisClient::load_slots(RedisNode& from, std::string& error) {
    std::vector<Reply> replies;
    if (!from.pipeline({{"CLUSTER", "SLOTS"}}, replies, error)) return false;
    const redisReply* reply = replies[0].get();
    if (reply->type == REDIS_REPLY_ERROR) {
        if (reply_text(reply).find("cluster support disabled") != std::string_view::npos) {
            mode_ = Mode::Single;
            return true;
        }
        error = concat(from.endpoint().text(), ": CLUSTER SLOTS: ", reply_text(reply));
        return false;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        error = concat(from.endpoint().text(), ": CLUSTER SLOTS answered an unexpected reply");
        return false;
    }
    std::vector<int> owners(kSlotCount, -1);
    for (size_t i = 0; i < reply->elements; ++i) {
        const redisReply* range = reply->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) continue;
        const redisReply* master = range->element[2];
        if (master->type != REDIS_REPLY_ARRAY || master->elements < 2) continue;
        Endpoint endpoint{std::string(reply_text(master->element[0])), int(master->element[1]->integer)};
        if (endpoint.host.empty()) endpoint.host = from.endpoint().host;
        RedisNode& owner = node(endpoint);
        int index = 0;
        while (nodes_[size_t(index)].get() != &owner) ++index;
        for (long long slot = range->element[0]->integer; slot <= range->element[1]->integer && slot < kSlotCount; ++slot)
            if (slot >= 0) owners[size_t(slot)] = index;
    }
    slot_owner_ = std::move(owners);
    mode_ = Mode::Cluster;
    stale_slots_ = false;
    return true;
}

bool RedisClient::discover(std::string& error) {
    // Known nodes first (a cluster's other masters), then the seeds.
    std::vector<Endpoint> candidates;
    for (auto& n : nodes_) candidates.push_back(n->endpoint());
    for (auto& seed : seeds_) candidates.push_back(seed);
    for (const Endpoint& endpoint : candidates)
        if (load_slots(node(endpoint), error)) return true;
    return false;
}

void RedisClient::send(RedisNode& target, const std::vector<Command>& commands, const std::vector<Routed>& routed,
                       std::vector<Reply>& replies, std::vector<std::pair<Routed, Endpoint>>& redirects,
                       std::string& error) {
    std::vector<Command> batch;
    for (const Routed& r : routed) {
        if (r.asking) batch.push_back({"ASKING"});
        batch.push_back(commands[r.command]);
    }
    std::vector<Reply> answers;
    if (!target.pipeline(batch, answers, error)) {
        stale_slots_ = mode_ == Mode::Cluster;  // the node may have failed over
        return;
    }
    size_t at = 0;
    for (const Routed& r : routed) {
        if (r.asking) ++at;  // ASKING's +OK
        Reply& answer = answers[at++];
        if (answer->type == REDIS_REPLY_ERROR) {
            Endpoint to;
            std::string_view text = reply_text(answer.get());
            if (parse_redirect(text, "MOVED", target.endpoint(), to)) {
                stale_slots_ = true;
                redirects.push_back({{r.command, false}, to});
                continue;
            }
            if (parse_redirect(text, "ASK", target.endpoint(), to)) {
                redirects.push_back({{r.command, true}, to});
                continue;
            }
            error = concat(target.endpoint().text(), ": ", text);
        }
        replies[r.command] = std::move(answer);
    }
}

void RedisClient::run(const std::vector<Command>& commands, std::vector<Reply>& replies, std::string& error) {
    replies.clear();
    replies.resize(commands.size());
    if (mode_ == Mode::Unknown && !discover(error)) return;
    if (mode_ == Mode::Cluster && stale_slots_) discover(error);  // best effort: the old table may still do

    // First round: by slot owner (single node: the first seed). A few nodes: a linear search
    // beats a map's allocations.
    std::vector<std::pair<RedisNode*, std::vector<Routed>>> groups;
    auto group_of = [&groups](RedisNode* target) -> std::vector<Routed>& {
        for (auto& [node, routed] : groups)
            if (node == target) return routed;
        return groups.emplace_back(target, std::vector<Routed>{}).second;
    };
    for (size_t i = 0; i < commands.size(); ++i) {
        RedisNode* target = nullptr;
        if (mode_ == Mode::Single) {
            target = &node(seeds_.front());
        } else {
            int owner = slot_owner_[size_t(key_slot(commands[i][1]))];
            if (owner < 0) {
                error = "no cluster node serves the key's slot";
                continue;
            }
            target = nodes_[size_t(owner)].get();
        }
        group_of(target).push_back({i, false});
    }
    for (int round = 0; !groups.empty() && round <= kMaxRedirects; ++round) {
        std::vector<std::pair<Routed, Endpoint>> redirects;
        for (auto& [target, routed] : groups) send(*target, commands, routed, replies, redirects, error);
        groups.clear();
        for (auto& [routed, to] : redirects) {
            RedisNode& target = node(to);
            if (!routed.asking) {  // MOVED: the slot lives there now
                int index = 0;
                while (nodes_[size_t(index)].get() != &target) ++index;
                slot_owner_[size_t(key_slot(commands[routed.command][1]))] = index;
            }
            group_of(&target).push_back(routed);
        }
    }
}

}  // namespace pagedkv::tiers::redis
