#include "prefix/prefix_trie.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "common/error.h"

namespace pagedkv {

namespace {
// Min-heap on the stamp: std heap functions keep the "largest" on top, so compare reversed.
struct LaterFirst {
    template <class Entry>
    bool operator()(const Entry& a, const Entry& b) const { return a.stamp > b.stamp; }
};

size_t table_size_for(int32_t num_pages) {
    size_t size = 16;
    while (size < size_t(num_pages) * 2) size *= 2;
    return size;
}
}  // namespace

PrefixTrie::PrefixTrie(int32_t num_pages, int32_t page_size, const PagePool& pool, KeyFunction key, uint64_t seed)
    : num_pages_(num_pages),
      page_size_(page_size),
      pool_(pool),
      key_(key),
      seed_(seed != 0 ? seed : random_seed()),
      nodes_(size_t(num_pages)),
      parents_(size_t(num_pages), kNone),
      last_access_(size_t(num_pages), 0),
      page_tokens_(size_t(num_pages) * size_t(page_size)),
      slots_(table_size_for(num_pages), Slot{0, kNone, kNone}),
      slot_mask_(slots_.size() - 1) {
    // Pushes never allocate: when the heap is full of stale entries it is rebuilt in place.
    heap_.reserve(size_t(num_pages) * 4 + 64);
}

// ---- roots -----------------------------------------------------------------------------------

int32_t PrefixTrie::find_root(std::string_view salt) const {
    auto it = roots_.find(salt);
    return it == roots_.end() ? kNone : it->second;
}

int32_t PrefixTrie::acquire_root(std::string_view salt) {
    if (int32_t root = find_root(salt); root != kNone) {
        ++roots_info_[size_t(-2 - root)].users;
        return root;
    }
    // Reserve everything first, so that a failed allocation leaves no half-made root.
    std::string key(salt);
    roots_.reserve(roots_.size() + 1);
    free_root_indices_.reserve(roots_info_.size() + 1);
    size_t index;
    if (free_root_indices_.empty()) {
        roots_info_.emplace_back();
        index = roots_info_.size() - 1;
    } else {
        index = size_t(free_root_indices_.back());
        free_root_indices_.pop_back();
    }
    int32_t root = -2 - int32_t(index);
    roots_.emplace(key, root);
    roots_info_[index] = Root{kNone, 1, std::move(key)};
    return root;
}

void PrefixTrie::release_root(int32_t root) {
    --roots_info_[size_t(-2 - root)].users;
    drop_root_if_unused(root);
}

void PrefixTrie::drop_root_if_unused(int32_t root) {
    Root& info = roots_info_[size_t(-2 - root)];
    if (info.users > 0 || info.first_child != kNone) return;
    roots_.erase(info.salt);
    info = Root{};
    info.salt.shrink_to_fit();
    free_root_indices_.push_back(-2 - root);  // capacity reserved in acquire_root
}

// ---- lookups ---------------------------------------------------------------------------------

// Branch-free compare (a hit is the expected case, so there is nothing to gain by stopping early).
inline bool PrefixTrie::tokens_equal(int32_t page, const int32_t* tokens) const {
    const auto* a = reinterpret_cast<const unsigned char*>(this->tokens(page));
    const auto* b = reinterpret_cast<const unsigned char*>(tokens);
    size_t length = size_t(page_size_) * sizeof(int32_t), i = 0;
    using Vector = uint64_t __attribute__((vector_size(16)));  // SSE2 / NEON width
    Vector wide = {0, 0};
    for (; i + 16 <= length; i += 16) {
        Vector x, y;
        std::memcpy(&x, a + i, sizeof x);
        std::memcpy(&y, b + i, sizeof y);
        wide |= x ^ y;
    }
    uint64_t difference = wide[0] | wide[1];
    for (; i + 8 <= length; i += 8) difference |= detail::load64(a + i) ^ detail::load64(b + i);
    if (i < length) {
        uint32_t x, y;
        std::memcpy(&x, a + i, 4);
        std::memcpy(&y, b + i, 4);
        difference |= x ^ y;
    }
    return difference == 0;
}

// Probes from slot `start`: the home slot of `key`, or any later slot of its probe run that no
// earlier slot of the run holding `key` precedes.
inline int32_t PrefixTrie::find_full_keyed(int32_t parent, const int32_t* tokens, uint64_t key, size_t start) const {
    for (size_t i = start;; i = (i + 1) & slot_mask_) {
        const Slot& slot = slots_[i];
        if (slot.page < 0) return kNone;
        if (slot.key == key && slot.parent == parent && tokens_equal(slot.page, tokens)) return slot.page;
    }
}

int32_t PrefixTrie::find_full(int32_t parent, const int32_t* tokens) const {
    uint64_t key = edge_key(parent, tokens);
    return find_full_keyed(parent, tokens, key, size_t(key) & slot_mask_);
}

// Reads the probe run of `key` (whose line was prefetched earlier) up to the first slot that is
// empty or holds `key`, prefetches that page's tokens (the ones a later find_full_keyed will most
// likely compare) and returns the slot, where that find_full_keyed can start.
inline size_t PrefixTrie::prefetch_candidate(uint64_t key) const {
    for (size_t i = size_t(key) & slot_mask_;; i = (i + 1) & slot_mask_) {
        const Slot& slot = slots_[i];
        if (slot.page < 0) return i;
        if (slot.key == key) {
            const char* first = reinterpret_cast<const char*>(tokens(slot.page));
            size_t bytes = size_t(page_size_) * sizeof(int32_t);
            for (size_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch(first + offset);
            __builtin_prefetch(first + bytes - 1);  // the page may straddle one more line
            return i;
        }
    }
}

PrefixTrie::PartialHit PrefixTrie::longest_partial(int32_t parent, const int32_t* tokens, int64_t limit) const {
    PartialHit best;
    if (limit <= 0) return best;
    for (int32_t child = first_child(parent); child != kNone; child = nodes_[size_t(child)].next_sibling) {
        int32_t bound = int32_t(std::min<int64_t>(nodes_[size_t(child)].valid, limit));
        if (bound <= best.length) continue;
        const int32_t* run = this->tokens(child);
        int32_t common = 0;
        while (common < bound && run[common] == tokens[common]) ++common;
        if (common > best.length) {
            best = {child, common};
            if (common == limit) break;
        }
    }
    // A full page's run can only reach page_size when limit allows it, and then the caller's
    // FULL walk would have taken it; keep the result a strict partial run all the same.
    if (best.length >= page_size_) best.length = page_size_ - 1;
    return best;
}

// The walk, as a three stage pipeline over pages: page i + kKeys gets its key computed (from the
// tokens alone) and its home slot prefetched, page i + kProbe has its slot read and its
// candidate's tokens prefetched, and page i is confirmed (parent and tokens) against lines that
// are most likely in cache by then. Only the confirmation decides what matches; the stages ahead
// are hints, wasted past the first miss. Returns pages matched.
int64_t PrefixTrie::walk(int32_t root, const int32_t* tokens, int64_t pages, std::vector<int32_t>& full_pages) const {
    constexpr int64_t kKeys = 8, kProbe = 4, kRing = 16;  // kRing > kKeys, a power of two
    // Locals, so that the stores of the walk (keys, full_pages) force no reloads of members.
    const Slot* const slots = slots_.data();
    const size_t mask = slot_mask_;
    const int32_t page_size = page_size_;
    uint64_t keys[kRing];
    size_t starts[kRing];  // where page i's probe starts (prefetch_candidate's answer)
    uint64_t chain = node_key(root);
    int64_t keyed = std::min(kKeys, pages);
    for (int64_t page = 0; page < keyed; ++page) {
        chain = page_key(chain, tokens + page * page_size);
        keys[page] = chain;
        __builtin_prefetch(&slots[size_t(chain) & mask]);
    }
    for (int64_t page = 0; page < std::min(kProbe, pages); ++page) starts[page] = prefetch_candidate(keys[page]);
    int32_t node = root;
    for (int64_t page = 0; page < pages; ++page) {
        if (keyed < pages) {
            chain = page_key(chain, tokens + keyed * page_size);
            keys[keyed & (kRing - 1)] = chain;
            __builtin_prefetch(&slots[size_t(chain) & mask]);
            ++keyed;
        }
        if (page + kProbe < pages) {
            int64_t ahead = (page + kProbe) & (kRing - 1);
            starts[ahead] = prefetch_candidate(keys[ahead]);
        }
        int32_t child = find_full_keyed(node, tokens + page * page_size, keys[page & (kRing - 1)],
                                        starts[page & (kRing - 1)]);
        if (child == kNone) return page;
        full_pages.push_back(child);
        node = child;
    }
    return pages;
}

PrefixTrie::PrefixMatch PrefixTrie::longest_match(int32_t root, const int32_t* tokens, int64_t num_tokens,
                                                  std::vector<int32_t>& full_pages) const {
    // Strictly less: a full page is shared only if a prompt token follows it.
    int64_t pages = num_tokens > 0 ? (num_tokens - 1) / page_size_ : 0;
    size_t before = full_pages.size();
    int64_t matched = walk(root, tokens, pages, full_pages);
    int32_t node = matched > 0 ? full_pages[before + size_t(matched) - 1] : root;
    int64_t position = matched * page_size_;
    return {node, longest_partial(node, tokens + position, num_tokens - 1 - position)};
}

// ---- changes ---------------------------------------------------------------------------------

void PrefixTrie::link_child(int32_t parent, int32_t page) {
    Node& node = nodes_[size_t(page)];
    int32_t& first = first_child_ref(parent);
    parents_[size_t(page)] = parent;
    node.prev_sibling = kNone;
    node.next_sibling = first;
    if (first != kNone) nodes_[size_t(first)].prev_sibling = page;
    first = page;
}

void PrefixTrie::unlink_child(int32_t page) {
    Node& node = nodes_[size_t(page)];
    if (node.prev_sibling != kNone)
        nodes_[size_t(node.prev_sibling)].next_sibling = node.next_sibling;
    else
        first_child_ref(parents_[size_t(page)]) = node.next_sibling;
    if (node.next_sibling != kNone) nodes_[size_t(node.next_sibling)].prev_sibling = node.prev_sibling;
    node.prev_sibling = node.next_sibling = kNone;
}

void PrefixTrie::table_insert(int32_t page, int32_t parent, uint64_t key) {
    size_t i = size_t(key) & slot_mask_;
    while (slots_[i].page >= 0) i = (i + 1) & slot_mask_;
    slots_[i] = {key, page, parent};
}

// Linear probing without tombstones: after emptying a slot, later entries of the same run
// whose home is not between the hole and themselves move back into it.
void PrefixTrie::table_erase(int32_t page) {
    size_t hole = size_t(nodes_[size_t(page)].hash) & slot_mask_;
    while (slots_[hole].page != page) hole = (hole + 1) & slot_mask_;
    slots_[hole].page = kNone;
    for (size_t next = (hole + 1) & slot_mask_; slots_[next].page >= 0; next = (next + 1) & slot_mask_) {
        size_t home = size_t(slots_[next].key) & slot_mask_;
        if (((next - home) & slot_mask_) >= ((next - hole) & slot_mask_)) {
            slots_[hole] = slots_[next];
            slots_[next].page = kNone;
            hole = next;
        }
    }
}

void PrefixTrie::insert_full(int32_t page, int32_t parent, const int32_t* tokens) {
    Node& node = nodes_[size_t(page)];
    if (node.kind == NodeKind::None) {
        link_child(parent, page);
        ++node_count_;
    }
    ++full_count_;  // the caller never inserts a FULL node twice
    std::memcpy(page_tokens_.data() + size_t(page) * size_t(page_size_), tokens,
                size_t(page_size_) * sizeof(int32_t));
    node.kind = NodeKind::Full;
    node.valid = page_size_;
    node.shared_run = 0;
    node.hash = edge_key(parent, tokens);
    table_insert(page, parent, node.hash);
    touch(page);
    if (listener_ != nullptr) listener_->full_inserted(page);
}

void PrefixTrie::set_partial(int32_t page, int32_t parent, const int32_t* tokens, int32_t valid) {
    Node& node = nodes_[size_t(page)];
    if (node.kind == NodeKind::None) {
        link_child(parent, page);
        ++node_count_;
        node.kind = NodeKind::Partial;
        node.shared_run = 0;
    }
    std::memcpy(page_tokens_.data() + size_t(page) * size_t(page_size_), tokens, size_t(valid) * sizeof(int32_t));
    node.valid = valid;
    touch(page);
}

void PrefixTrie::shorten_partial(int32_t page, int32_t valid) {
    if (valid <= 0)
        unlink(page);
    else
        nodes_[size_t(page)].valid = valid;
}

void PrefixTrie::unlink(int32_t page) {
    Node& node = nodes_[size_t(page)];
    if (node.kind == NodeKind::Full) {
        if (listener_ != nullptr) listener_->full_removing(page);
        table_erase(page);
        --full_count_;
    }
    int32_t parent = parents_[size_t(page)];
    unlink_child(page);
    node.kind = NodeKind::None;
    node.valid = 0;
    node.shared_run = 0;
    parents_[size_t(page)] = kNone;
    --node_count_;
    if (parent >= 0) offer(parent);  // it may just have become a leaf
    else drop_root_if_unused(parent);
}

// ---- eviction --------------------------------------------------------------------------------

void PrefixTrie::push_candidate(int32_t page) {
    if (heap_.size() == heap_.capacity()) {
        rebuild_heap();  // keeps only live candidates (at most num_pages), `page` among them
        return;
    }
    heap_.push_back({last_access_[size_t(page)], page});
    std::push_heap(heap_.begin(), heap_.end(), LaterFirst{});
}

void PrefixTrie::rebuild_heap() {
    heap_.clear();
    for (int32_t page = 0; page < num_pages_; ++page)
        if (evictable(page)) heap_.push_back({last_access_[size_t(page)], page});
    std::make_heap(heap_.begin(), heap_.end(), LaterFirst{});
}

int32_t PrefixTrie::evict_lru() {
    for (int attempt = 0; attempt < 2; ++attempt) {
        while (!heap_.empty()) {
            std::pop_heap(heap_.begin(), heap_.end(), LaterFirst{});
            HeapEntry entry = heap_.back();
            heap_.pop_back();
            if (evictable(entry.page) && last_access_[size_t(entry.page)] == entry.stamp) {
                unlink(entry.page);
                return entry.page;
            }
        }
        // Every candidate is pushed when it becomes one, so this is only a safety net.
        if (pool_.cached_count() == 0) break;
        rebuild_heap();
    }
    return kNone;
}

// ---- consistency (tests) ---------------------------------------------------------------------

std::string PrefixTrie::check_consistency() const {
    int32_t indexed_count = 0, full_count = 0;
    for (int32_t page = 0; page < num_pages_; ++page) {
        const Node& node = nodes_[size_t(page)];
        if (node.kind == NodeKind::None) {
            if (node.first_child != kNone) return concat("page ", page, " is not indexed but has children");
            continue;
        }
        ++indexed_count;
        int32_t parent = parents_[size_t(page)];
        if (parent >= 0 && kind(parent) != NodeKind::Full)
            return concat("page ", page, " hangs under page ", parent, " which is not a FULL node");
        if (parent < 0 && (!is_root(parent) || size_t(-2 - parent) >= roots_info_.size()))
            return concat("page ", page, " has a bad parent ", parent);
        bool found = false;
        for (int32_t child = first_child(parent); child != kNone; child = nodes_[size_t(child)].next_sibling)
            if (child == page) found = true;
        if (!found) return concat("page ", page, " is missing from its parent's child list");
        if (node.kind == NodeKind::Full) {
            ++full_count;
            if (node.valid != page_size_) return concat("FULL page ", page, " has valid ", node.valid);
            if (node.hash != edge_key(parent, tokens(page)))
                return concat("FULL page ", page, " has a stale key");
            if (find_full(parent, tokens(page)) != page)
                return concat("FULL page ", page, " is not found by its own tokens");
        } else {
            if (node.valid < 1 || node.valid >= page_size_)
                return concat("PARTIAL page ", page, " has valid ", node.valid);
            if (node.first_child != kNone) return concat("PARTIAL page ", page, " has children");
        }
    }
    if (indexed_count != node_count_)
        return concat("node count ", node_count_, " but ", indexed_count, " indexed pages");
    int32_t slot_count = 0;
    for (const Slot& slot : slots_)
        if (slot.page >= 0) {
            ++slot_count;
            if (kind(slot.page) != NodeKind::Full) return concat("hash slot holds non-FULL page ", slot.page);
            if (slot.key != nodes_[size_t(slot.page)].hash || slot.parent != parents_[size_t(slot.page)])
                return concat("hash slot of page ", slot.page, " disagrees with its node");
        }
    if (slot_count != full_count) return concat(slot_count, " hash slots for ", full_count, " FULL pages");
    if (full_count != full_count_) return concat("FULL count ", full_count_, " but ", full_count, " FULL pages");
    std::set<std::pair<uint64_t, int32_t>> entries;
    for (const HeapEntry& entry : heap_) entries.insert({entry.stamp, entry.page});
    for (int32_t page = 0; page < num_pages_; ++page)
        if (evictable(page) && !entries.count({last_access_[size_t(page)], page}))
            return concat("evictable page ", page, " has no valid eviction candidate entry");
    for (size_t index = 0; index < roots_info_.size(); ++index) {
        const Root& root = roots_info_[index];
        const int32_t id = -2 - int32_t(index);
        bool is_free = std::find(free_root_indices_.begin(), free_root_indices_.end(), int32_t(index)) !=
                       free_root_indices_.end();
        if (root.users == 0 && root.first_child == kNone) {  // nothing needs it: it must be free
            if (!is_free) return concat("root ", id, " has no user and no child but was kept");
        } else if (is_free || find_root(root.salt) != id) {
            return concat("root ", id, " is in use but not found by its salt");
        }
    }
    if (roots_.size() + free_root_indices_.size() != roots_info_.size())
        return concat(roots_.size(), " salts + ", free_root_indices_.size(), " free root slots != ",
                      roots_info_.size(), " root slots");
    return {};
}

}  // namespace pagedkv
