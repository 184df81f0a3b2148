// A sequence: its tokens, its block table, how far it is computed, and its isolation key.
// Invariant kept by the cache: positions [num_computed, num_tokens) lie in pages that this
// sequence holds alone and that are not FULL nodes of the index.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common/error.h"

namespace pagedkv {

class Batch;

struct Sequence {
    int64_t id = 0;
    int32_t root = -1;                // prefix-trie root of the salt (-1 when reuse is off)
    std::vector<int32_t> tokens;
    std::vector<int32_t> block_table;  // one page per page_size positions
    int64_t num_computed = 0;
    int64_t num_cached = 0;           // positions reused when the sequence was created
    int64_t loaded_tokens[3] = {};    // of those, brought back from each tier (pagedkv_tier)
    std::vector<Batch*> batches;      // live (not stale) batches that hold this sequence

    int64_t num_tokens() const { return int64_t(tokens.size()); }
};

// Live sequences by id. Ids start at 1 and are never reused.
class SequenceTable {
public:
    Sequence& get(int64_t id) {
        auto it = sequences_.find(id);
        if (it == sequences_.end()) not_live(id);
        return it->second;
    }
    const Sequence& get(int64_t id) const {
        auto it = sequences_.find(id);
        if (it == sequences_.end()) not_live(id);
        return it->second;
    }
    bool contains(int64_t id) const { return sequences_.count(id) != 0; }

    Sequence* find(int64_t id) {
        auto it = sequences_.find(id);
        return it == sequences_.end() ? nullptr : &it->second;
    }
    int64_t next_id() const { return next_id_; }
    // Stores `sequence` under next_id() and advances it.
    Sequence& add(Sequence&& sequence) {
        sequence.id = next_id_;
        Sequence& stored = sequences_.emplace(next_id_, std::move(sequence)).first->second;
        ++next_id_;
        return stored;
    }
    void remove(int64_t id) { sequences_.erase(id); }
    int32_t size() const { return int32_t(sequences_.size()); }

    auto begin() const { return sequences_.begin(); }
    auto end() const { return sequences_.end(); }
    auto begin() { return sequences_.begin(); }
    auto end() { return sequences_.end(); }

private:
    [[noreturn]] static void not_live(int64_t id) {
        fail(PAGEDKV_ERR_NOT_FOUND, "sequence ", id, " is not live in this cache");
    }

    std::unordered_map<int64_t, Sequence> sequences_;
    int64_t next_id_ = 1;
};

}  // namespace pagedkv
