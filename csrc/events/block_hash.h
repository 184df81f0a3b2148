// Block hashes for KV events: the identity of a cached block as routers see it. Unlike the
// index's keys (seeded at random per cache, so crafted prompts cannot flood a probe run), these
// must be the same in every process and on every server, so routers can compare them: a fixed,
// public seed, and the same chaining as vLLM's block hashes (parent block hash, then the block's
// token ids; the first block of a prompt chains the hash of its salt, so salts never share one).
// Non-negative int64, so consumers reading them as int64 or uint64 agree.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "prefix/prefix_trie.h"
#include "prefix/token_hash.h"

namespace pagedkv::events {

// Public and fixed (the first 64 bits of the fractional part of pi): changing it changes every
// block hash pagedkv has ever published.
constexpr uint64_t kBlockHashSeed = 0x243f6a8885a308d3ull;

inline int64_t non_negative(uint64_t hash) noexcept { return int64_t(hash & 0x7fffffffffffffffull); }

// What the first block of a prompt under `salt` chains (never published itself).
inline int64_t salt_block_hash(std::string_view salt) noexcept {
    return non_negative(hash_bytes(salt.data(), salt.size(), kBlockHashSeed ^ 0x5a17ull));
}

inline int64_t block_hash(int64_t parent_hash, const int32_t* tokens, int32_t count) noexcept {
    return non_negative(hash_chain(uint64_t(parent_hash), hash_tokens(tokens, count, kBlockHashSeed)));
}

// The block hash of every FULL node of an index, by page id: kept up to date while events are
// on, or filled once for a snapshot.
class BlockHashes {
public:
    explicit BlockHashes(int32_t num_pages) : by_page_(size_t(num_pages), 0) {}

    int64_t operator[](int32_t page) const { return by_page_[size_t(page)]; }

    // The hash of the parent of FULL node `page` (its own parent's hash must be known), or the
    // salt's chain start when it hangs under a root (*has_parent = false).
    int64_t parent_hash(const PrefixTrie& trie, int32_t page, bool* has_parent) const {
        int32_t parent = trie.parent(page);
        *has_parent = parent >= 0;
        return parent >= 0 ? by_page_[size_t(parent)] : salt_block_hash(trie.root_salt(parent));
    }

    // Computes and stores the hash of FULL node `page` from its parent's (see parent_hash).
    int64_t compute(const PrefixTrie& trie, int32_t page, int64_t parent) {
        return by_page_[size_t(page)] = block_hash(parent, trie.tokens(page), trie.page_size());
    }
    int64_t compute(const PrefixTrie& trie, int32_t page) {
        bool has_parent;
        return compute(trie, page, parent_hash(trie, page, &has_parent));
    }

    // Computes every FULL node's hash, parents first.
    void compute_all(const PrefixTrie& trie) {
        trie.for_each_full_node([&](int32_t page) { compute(trie, page); });
    }

private:
    std::vector<int64_t> by_page_;
};

}  // namespace pagedkv::events
