// The prefix index: a trie whose nodes are pages. Each isolation key (salt) has its own root.
//  - FULL node: all page_size tokens computed; found by its key in a flat open-addressing table,
//    confirmed by its parent and by comparing the tokens. Shared by reference. The key is a
//    chained prefix hash (hash_chain of the parent's key and the page's tokens; a root's key is
//    hash_root of its id), so a walk knows every page's key from the prompt alone and probes
//    several pages ahead of the one it is confirming. Keys are seeded per index.
//  - PARTIAL node (a donor): the first `valid` < page_size tokens computed; never shared, only
//    copied from. Not in the hash table; found by scanning the children of its parent.
// Children form an intrusive doubly linked sibling list, so unlinking is O(1) and a node is a
// leaf iff it has no first child. Cached pages (indexed, held by no sequence) are evicted least
// recently used leaf first, from a min-heap of (last_access, page) with lazy invalidation.
// A root lives while a sequence uses its salt or a page hangs under it, so one-shot salts (one
// per request) leave nothing behind.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pool/page_pool.h"
#include "prefix/index_listener.h"
#include "prefix/token_hash.h"

namespace pagedkv {

enum class NodeKind : uint8_t { None = 0, Full = 1, Partial = 2 };

class PrefixTrie {
public:
    // The key of a page from its parent's key and its tokens (chained_key by default).
    using KeyFunction = uint64_t (*)(uint64_t seed, uint64_t parent_key, const int32_t* tokens, int32_t count);
    static constexpr int32_t kNone = -1;

    // `pool` supplies the ref counts that decide evictability. `key` replaces chained_key (tests
    // inject colliding keys; the walk is the same), `seed` the random seed (0: draw one).
    PrefixTrie(int32_t num_pages, int32_t page_size, const PagePool& pool, KeyFunction key = nullptr,
               uint64_t seed = 0);

    // ---- roots: node ids of roots are negative (-2 - index), page ids are >= 0 ----------------
    int32_t find_root(std::string_view salt) const;  // kNone when no root has this salt now
    // The root of `salt` (existing or new), with one more user; every acquire_root is paired
    // with a release_root. A root with no user and no child is forgotten.
    int32_t acquire_root(std::string_view salt);
    void retain_root(int32_t root) { ++roots_info_[size_t(-2 - root)].users; }
    void release_root(int32_t root);
    int32_t root_count() const { return int32_t(roots_.size()); }
    int32_t page_size() const { return page_size_; }
    int32_t num_pages() const { return num_pages_; }
    // The salt of a live root.
    std::string_view root_salt(int32_t root) const { return roots_info_[size_t(-2 - root)].salt; }
    uint64_t seed() const { return seed_; }
    static bool is_root(int32_t node) { return node <= -2; }

    // ---- node state -------------------------------------------------------------------------
    NodeKind kind(int32_t page) const { return nodes_[size_t(page)].kind; }
    bool indexed(int32_t page) const { return kind(page) != NodeKind::None; }
    int32_t valid(int32_t page) const { return nodes_[size_t(page)].valid; }
    int32_t parent(int32_t page) const { return parents_[size_t(page)]; }
    bool is_leaf(int32_t node) const { return first_child(node) == kNone; }
    uint64_t last_access(int32_t page) const { return last_access_[size_t(page)]; }
    const int32_t* tokens(int32_t page) const { return page_tokens_.data() + size_t(page) * size_t(page_size_); }
    int32_t node_count() const { return node_count_; }
    int32_t full_count() const { return full_count_; }
    // A partial run that a fork shared between sequences is never shortened by a truncate.
    bool shared_run(int32_t page) const { return nodes_[size_t(page)].shared_run != 0; }
    void mark_shared_run(int32_t page) { nodes_[size_t(page)].shared_run = 1; }

    // ---- lookups (read only, no LRU or heap traffic) ----------------------------------------
    // The FULL child of `parent` holding exactly tokens[0, page_size), or kNone.
    int32_t find_full(int32_t parent, const int32_t* tokens) const;

    struct PartialHit {
        int32_t donor = kNone;  // the child with the longest common run, or kNone
        int32_t length = 0;     // tokens in common (< page_size)
    };
    // Longest common run of tokens[0, limit) with the valid tokens of any child of `parent`.
    PartialHit longest_partial(int32_t parent, const int32_t* tokens, int64_t limit) const;

    struct PrefixMatch {
        int32_t node;        // deepest node reached through FULL pages (the root if none)
        PartialHit partial;  // best run below it
    };
    // Walks FULL pages while at least one token follows the page (appending them to full_pages),
    // then the best partial run, never reaching the last token: the cached prefix is
    // full_pages.size() * page_size + partial.length <= num_tokens - 1.
    PrefixMatch longest_match(int32_t root, const int32_t* tokens, int64_t num_tokens,
                              std::vector<int32_t>& full_pages) const;

    // ---- changes ----------------------------------------------------------------------------
    // Makes `page` a FULL node under `parent` (a PARTIAL one is converted in place); the caller
    // checked that no identical FULL node exists.
    void insert_full(int32_t page, int32_t parent, const int32_t* tokens);
    // Makes `page` a PARTIAL node under `parent` holding tokens[0, valid), or updates one.
    void set_partial(int32_t page, int32_t parent, const int32_t* tokens, int32_t valid);
    // Shortens a PARTIAL node's run (truncate). 0 unlinks it.
    void shorten_partial(int32_t page, int32_t valid);
    // Removes `page` (a leaf) from the index; its parent may become evictable.
    void unlink(int32_t page);
    void touch(int32_t page) { last_access_[size_t(page)] = ++clock_; }

    // ---- eviction ---------------------------------------------------------------------------
    bool evictable(int32_t page) const {
        return indexed(page) && pool_.ref_count(page) == 0 && is_leaf(page);
    }
    // Records `page` as an eviction candidate if it is one now (never allocates).
    void offer(int32_t page) {
        if (evictable(page)) push_candidate(page);
    }
    // Unlinks the least recently used evictable leaf and returns it (ref 0, not indexed), or
    // kNone when there is none.
    int32_t evict_lru();

    // ---- observers --------------------------------------------------------------------------
    // Told about every FULL node inserted or removed from now on (null: nobody). Not owned.
    void set_listener(IndexListener* listener) { listener_ = listener; }
    // Calls visit(page) for every FULL node, parents before their children (roots in no
    // particular order). Partial nodes are skipped: they are leaves, and not blocks.
    template <class Visit>
    void for_each_full_node(Visit&& visit) const {
        std::vector<int32_t> stack;
        for (const auto& [salt, root] : roots_) {
            stack.push_back(first_child(root));
            while (!stack.empty()) {
                int32_t node = stack.back();
                stack.pop_back();
                if (node == kNone) continue;
                stack.push_back(nodes_[size_t(node)].next_sibling);
                if (nodes_[size_t(node)].kind != NodeKind::Full) continue;
                visit(node);
                stack.push_back(nodes_[size_t(node)].first_child);
            }
        }
    }

    // Describes the first inconsistency found in the trie's own structures, or "" (for tests).
    std::string check_consistency() const;

private:
    // Cold per-page state; the fields a walk or a touch needs live in their own dense arrays.
    struct Node {
        uint64_t hash = 0;  // the node's key (see edge_key), FULL nodes only
        int32_t first_child = kNone;
        int32_t next_sibling = kNone;
        int32_t prev_sibling = kNone;
        int32_t valid = 0;
        NodeKind kind = NodeKind::None;
        uint8_t shared_run = 0;
    };
    struct Slot {  // hash table entry; page < 0 means empty
        uint64_t key;    // the page's key (its home slot is key & slot_mask_)
        int32_t page;
        int32_t parent;  // the page's parent, so a probe confirms it without touching parents_
    };
    struct HeapEntry {
        uint64_t stamp;
        int32_t page;
    };
    struct Root {
        int32_t first_child = kNone;
        int32_t users = 0;  // live sequences under this salt
        std::string salt;   // empty and unused while the index is on the free list
    };
    struct SaltHash {
        using is_transparent = void;
        size_t operator()(std::string_view salt) const { return std::hash<std::string_view>{}(salt); }
    };

    int32_t first_child(int32_t node) const {
        return node >= 0 ? nodes_[size_t(node)].first_child : roots_info_[size_t(-2 - node)].first_child;
    }
    int32_t& first_child_ref(int32_t node) {
        return node >= 0 ? nodes_[size_t(node)].first_child : roots_info_[size_t(-2 - node)].first_child;
    }
    // Forgets `root` if nothing uses it any more.
    void drop_root_if_unused(int32_t root);
    bool tokens_equal(int32_t page, const int32_t* tokens) const;
    // The key a FULL node `parent` (a FULL page or a root) passes on to its children.
    uint64_t node_key(int32_t parent) const {
        return parent >= 0 ? nodes_[size_t(parent)].hash : hash_root(parent, seed_);
    }
    // The one place keys are made: inlined by default, the injected function in tests.
    uint64_t page_key(uint64_t parent_key, const int32_t* tokens) const {
        return key_ ? key_(seed_, parent_key, tokens, page_size_) : chained_key(seed_, parent_key, tokens, page_size_);
    }
    uint64_t edge_key(int32_t parent, const int32_t* tokens) const { return page_key(node_key(parent), tokens); }
    int32_t find_full_keyed(int32_t parent, const int32_t* tokens, uint64_t key, size_t start) const;
    size_t prefetch_candidate(uint64_t key) const;
    int64_t walk(int32_t root, const int32_t* tokens, int64_t pages, std::vector<int32_t>& full_pages) const;
    void link_child(int32_t parent, int32_t page);
    void unlink_child(int32_t page);
    void table_insert(int32_t page, int32_t parent, uint64_t key);
    void table_erase(int32_t page);
    void push_candidate(int32_t page);
    void rebuild_heap();

    int32_t num_pages_;
    int32_t page_size_;
    const PagePool& pool_;
    KeyFunction key_;  // null: chained_key
    uint64_t seed_;
    std::vector<Node> nodes_;
    std::vector<int32_t> parents_;       // parent node of each indexed page
    std::vector<uint64_t> last_access_;  // LRU clock value of each page
    std::vector<int32_t> page_tokens_;  // num_pages * page_size
    std::vector<Slot> slots_;           // power of two >= 2 * num_pages (16 bytes each)
    size_t slot_mask_;
    std::vector<HeapEntry> heap_;       // min-heap on stamp; capacity reserved once
    std::unordered_map<std::string, int32_t, SaltHash, std::equal_to<>> roots_;
    std::vector<Root> roots_info_;        // by root index (-2 - root id)
    std::vector<int32_t> free_root_indices_;
    uint64_t clock_ = 0;
    int32_t node_count_ = 0;
    int32_t full_count_ = 0;
    IndexListener* listener_ = nullptr;
};

}  // namespace pagedkv
