// Cache::check_consistency: every invariant the cache relies on, checked from scratch. Used by
// the tests after each operation; linear in pages + tokens, never on a hot path.
#include <algorithm>
#include <unordered_set>

#include "cache/cache.h"
#include "common/error.h"

namespace pagedkv {

std::string Cache::check_sequence(const Sequence& s) const {
    const int32_t ps = config_.page_size;
    const PagePool& pool = pages_.pool();
    const PrefixTrie& trie = pages_.trie();
    if (int64_t(s.block_table.size()) != pages_for(s.num_tokens()))
        return concat("sequence ", s.id, " has ", s.block_table.size(), " pages for ", s.num_tokens(), " tokens");
    if (s.num_computed < 0 || s.num_computed > s.num_tokens())
        return concat("sequence ", s.id, " has num_computed ", s.num_computed);
    for (size_t index = 0; index < s.block_table.size(); ++index) {
        int32_t page = s.block_table[index];
        int64_t start = int64_t(index) * ps;
        int64_t here = std::min<int64_t>(ps, s.num_tokens() - start);           // our tokens in the page
        int64_t computed_here = std::clamp<int64_t>(s.num_computed - start, 0, ps);
        NodeKind kind = trie.kind(page);
        if (kind != NodeKind::None) {
            if (trie.parent(page) != pages_.parent_node(s, int64_t(index)))
                return concat("sequence ", s.id, ": page ", page, " at index ", index, " hangs under ",
                              trie.parent(page), ", not under the previous block-table entry");
            int64_t compare = std::min<int64_t>(here, trie.valid(page));
            for (int64_t t = 0; t < compare; ++t)
                if (trie.tokens(page)[t] != s.tokens[size_t(start + t)])
                    return concat("sequence ", s.id, ": indexed page ", page, " holds other tokens at offset ", t);
        }
        if (computed_here < here) {  // positions still to compute: ours alone, writable
            if (pool.ref_count(page) != 1)
                return concat("sequence ", s.id, ": page ", page, " has positions to compute but ref_count ",
                              pool.ref_count(page));
            if (kind == NodeKind::Full)
                return concat("sequence ", s.id, ": page ", page, " has positions to compute but is FULL");
            if (kind == NodeKind::Partial && trie.valid(page) > computed_here)
                return concat("sequence ", s.id, ": donor page ", page, " has a run of ", trie.valid(page),
                              " over positions still to compute (", computed_here, " computed)");
        } else if (computed_here == ps && pages_.reuse() && kind != NodeKind::Full) {
            return concat("sequence ", s.id, ": fully computed page ", page, " is not a FULL node");
        }
    }
    return {};
}

std::string Cache::check_batches() const {
    for (const Batch* batch : batches_) {
        if (batch->owner_ != this) return "a tracked batch does not name this cache as its owner";
        for (const Batch::Member& member : batch->members()) {
            const Sequence* s = const_cast<SequenceTable&>(sequences_).find(member.seq_id);
            bool listed = s != nullptr && std::count(s->batches.begin(), s->batches.end(), batch) == 1;
            if (batch->stale_change_ == nullptr && !listed)
                return concat("a valid batch is not listed once by its member sequence ", member.seq_id);
            if (batch->stale_change_ != nullptr && s != nullptr &&
                std::count(s->batches.begin(), s->batches.end(), batch) != 0)
                return concat("a stale batch is still listed by sequence ", member.seq_id);
            if (batch->stale_change_ == nullptr && s->num_tokens() != member.num_tokens)
                return concat("a valid batch's member ", member.seq_id, " changed length without invalidating it");
        }
    }
    for (const auto& [id, s] : sequences_)
        for (const Batch* batch : s.batches)
            if (!batches_.count(const_cast<Batch*>(batch)) || batch->stale_change_ != nullptr)
                return concat("sequence ", id, " lists a batch that is not a valid batch of this cache");
    return {};
}

std::string Cache::check_consistency() const {
    std::lock_guard lock(mutex_);
    const PagePool& pool = pages_.pool();
    const PrefixTrie& trie = pages_.trie();
    if (std::string problem = check_batches(); !problem.empty()) return problem;
    if (std::string problem = trie.check_consistency(); !problem.empty()) return problem;
    const int32_t n = config_.num_pages;
    std::vector<int32_t> holders(size_t(n), 0);
    for (const auto& [id, s] : sequences_) {
        if (id != s.id) return concat("sequence stored under id ", id, " says it is ", s.id);
        for (int32_t page : s.block_table) {
            if (page < 0 || page >= n) return concat("sequence ", id, " holds bad page id ", page);
            ++holders[size_t(page)];
        }
        if (std::string problem = check_sequence(s); !problem.empty()) return problem;
    }
    int32_t in_use = 0, cached = 0;
    for (int32_t page = 0; page < n; ++page) {
        if (holders[size_t(page)] != pool.ref_count(page))
            return concat("page ", page, " has ref_count ", pool.ref_count(page), " but ", holders[size_t(page)],
                          " block-table entries");
        if (pool.ref_count(page) > 0) ++in_use;
        else if (trie.indexed(page)) ++cached;
    }
    if (in_use != pool.in_use_count()) return concat("in_use count ", pool.in_use_count(), " but ", in_use);
    std::unordered_set<int32_t> free_pages;
    for (int32_t page : pool.free_list()) {
        if (!free_pages.insert(page).second) return concat("page ", page, " is twice on the free list");
        if (pool.ref_count(page) != 0 || trie.indexed(page))
            return concat("free page ", page, " is held (", pool.ref_count(page), ") or indexed");
    }
    if (int32_t(free_pages.size()) + cached + in_use != n)
        return concat(free_pages.size(), " free + ", cached, " cached + ", in_use, " in use != ", n,
                      " pages (a page is lost)");
    if (cached != pool.cached_count()) return concat("cached count ", pool.cached_count(), " but ", cached);
    return {};
}

}  // namespace pagedkv
