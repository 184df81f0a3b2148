// A KV-event subscriber's view of a cache, for the event tests: the set of blocks per medium,
// rebuilt from events alone (stored, removed, all cleared), checked as it goes (a stored block's
// parent is known, a removed block is known and has no children) and compared with the cache's
// snapshot at the end. It takes plain values, so the callback test and the ZeroMQ test (which
// decodes MessagePack itself) feed it alike.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pagedkv.h"

namespace kv_events_test {

inline std::string medium_name(int32_t medium) {
    switch (medium) {
        case PAGEDKV_MEDIUM_GPU: return "GPU";
        case PAGEDKV_MEDIUM_CPU: return "CPU";
        case PAGEDKV_MEDIUM_DISK: return "DISK";
        case PAGEDKV_MEDIUM_REMOTE: return "REMOTE";
        default: return "?";
    }
}

struct Block {
    bool has_parent = false;
    int64_t parent = 0;
    std::vector<int32_t> tokens;
    int32_t children = 0;
};

class BlockMirror {
public:
    // A chain of blocks: hashes[i] is the parent of hashes[i + 1]; tokens block by block.
    void stored(const std::string& medium, const std::vector<int64_t>& hashes, bool has_parent, int64_t parent,
                const std::vector<int32_t>& tokens, int32_t block_size) {
        auto& blocks = blocks_[medium];
        if (tokens.size() != hashes.size() * size_t(block_size))
            return note("stored event with " + std::to_string(tokens.size()) + " tokens for " +
                        std::to_string(hashes.size()) + " blocks of " + std::to_string(block_size));
        for (size_t i = 0; i < hashes.size(); ++i) {
            bool has = i > 0 || has_parent;
            int64_t up = i > 0 ? hashes[i - 1] : parent;
            if (blocks.count(hashes[i])) return note("block " + std::to_string(hashes[i]) + " stored twice");
            if (has) {
                auto it = blocks.find(up);
                if (it == blocks.end())
                    return note("block " + std::to_string(hashes[i]) + " stored under unknown parent " + std::to_string(up));
                ++it->second.children;
            }
            Block& block = blocks[hashes[i]];
            block.has_parent = has;
            block.parent = has ? up : 0;
            block.tokens.assign(tokens.begin() + int64_t(i) * block_size, tokens.begin() + int64_t(i + 1) * block_size);
        }
    }

    void removed(const std::string& medium, const std::vector<int64_t>& hashes) {
        auto& blocks = blocks_[medium];
        for (int64_t hash : hashes) {
            auto it = blocks.find(hash);
            if (it == blocks.end()) return note("unknown block " + std::to_string(hash) + " removed");
            if (it->second.children != 0) return note("block " + std::to_string(hash) + " removed before its children");
            if (it->second.has_parent) --blocks[it->second.parent].children;
            blocks.erase(it);
        }
    }

    void cleared() { blocks_.clear(); }

    // Applies every event of a callback batch.
    void apply(const pagedkv_event_batch& batch) {
        const auto* bytes = reinterpret_cast<const unsigned char*>(batch.events);
        for (int32_t i = 0; i < batch.num_events; ++i) {
            const auto& e = *reinterpret_cast<const pagedkv_block_event*>(bytes + int64_t(i) * batch.event_stride);
            std::vector<int64_t> hashes(e.block_hashes, e.block_hashes + e.num_blocks);
            if (e.type == PAGEDKV_EVENT_BLOCK_STORED)
                stored(medium_name(e.medium), hashes, e.has_parent != 0, e.parent_block_hash,
                       std::vector<int32_t>(e.token_ids, e.token_ids + e.num_token_ids), e.block_size);
            else if (e.type == PAGEDKV_EVENT_BLOCK_REMOVED)
                removed(medium_name(e.medium), hashes);
            else
                cleared();
        }
    }

    size_t size() const {
        size_t n = 0;
        for (const auto& [medium, blocks] : blocks_) n += blocks.size();
        return n;
    }
    const std::string& problem() const { return problem_; }

    // "" when the mirror holds exactly the blocks of `cache`'s snapshot (hash, parent, tokens, medium).
    std::string differs_from_snapshot(pagedkv_cache* cache, int32_t page_size) const {
        int32_t count = 0;
        if (pagedkv_cache_snapshot(cache, nullptr, nullptr, 0, &count, nullptr) != PAGEDKV_OK) return pagedkv_last_error();
        std::vector<pagedkv_snapshot_block> snapshot(size_t(count) + 16);
        std::vector<int32_t> tokens(snapshot.size() * size_t(page_size));
        if (pagedkv_cache_snapshot(cache, snapshot.data(), tokens.data(), int32_t(snapshot.size()), &count, nullptr) !=
            PAGEDKV_OK)
            return pagedkv_last_error();
        if (!problem_.empty()) return "events: " + problem_;
        if (size_t(count) != size())
            return "snapshot has " + std::to_string(count) + " blocks, the events " + std::to_string(size());
        for (int32_t i = 0; i < count; ++i) {
            const auto& s = snapshot[size_t(i)];
            auto medium = blocks_.find(medium_name(s.medium));
            if (medium == blocks_.end() || !medium->second.count(s.block_hash))
                return "snapshot block " + std::to_string(s.block_hash) + " was never stored (or was removed)";
            const Block& b = medium->second.at(s.block_hash);
            if (b.has_parent != (s.has_parent != 0) || (b.has_parent && b.parent != s.parent_block_hash))
                return "block " + std::to_string(s.block_hash) + " has another parent in the snapshot";
            if (!std::equal(b.tokens.begin(), b.tokens.end(), tokens.begin() + int64_t(i) * page_size))
                return "block " + std::to_string(s.block_hash) + " has other tokens in the snapshot";
        }
        return {};
    }

private:
    void note(const std::string& what) {
        if (problem_.empty()) problem_ = what;
    }

    std::map<std::string, std::map<int64_t, Block>> blocks_;
    std::string problem_;
};

}  // namespace kv_events_test
