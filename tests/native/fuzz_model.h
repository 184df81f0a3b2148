// The independent model behind test_fuzz_api.cpp. It knows nothing of pages, tries or ref
// counts: it keeps what a caller of the C API can know (each live sequence's salt, tokens and
// computed count, each batch's snapshot and whether it may still be used) and what the index may
// or must remember, and from that predicts what the cache has to answer.
//
// KV markers. Every K/V element the fuzzer writes is a function of (salt, tokens[0..p], layer,
// K or V, head, dim), so the KV of position p is the same in every sequence with the same salt
// and the same first p+1 tokens, and different otherwise (up to a 24-bit hash). A page served
// for a prefix therefore holds exactly the markers of that prefix, or the check fails.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace fuzz_model {

// ---- markers --------------------------------------------------------------------------------

inline uint64_t mix(uint64_t x) {  // splitmix64's finalizer: every input bit moves every output bit
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

inline uint64_t salt_hash(const std::string& salt) {
    uint64_t h = 0x5a17ull + salt.size();
    for (unsigned char c : salt) h = mix(h ^ c);
    return h;
}

// prefix_hashes(...)[p] identifies (salt, tokens[0..p]).
inline std::vector<uint64_t> prefix_hashes(const std::string& salt, const std::vector<int32_t>& tokens,
                                           int64_t count) {
    std::vector<uint64_t> hashes(static_cast<size_t>(count));
    uint64_t h = salt_hash(salt);
    for (int64_t p = 0; p < count; ++p) {
        h = mix(h + uint64_t(uint32_t(tokens[size_t(p)])) * 0x9e3779b97f4a7c15ull + uint64_t(p));
        hashes[size_t(p)] = h;
    }
    return hashes;
}

// Which KV element (layer, K or V, head, dim) a marker is for, as a key to mix in.
inline uint64_t element_key(int32_t layer, int32_t kv, int32_t head, int32_t dim) {
    return mix((uint64_t(layer) << 40) ^ (uint64_t(kv) << 32) ^ (uint64_t(head) << 16) ^ uint64_t(dim) ^ 0xe1e3e47ull);
}

// The value of one KV element. Integers below 2^24 are exact in float32, so the values survive
// any copy or f32 -> f32 conversion bit for bit and compare with ==.
inline float marker(uint64_t prefix_hash, uint64_t element) { return float(uint32_t(mix(prefix_hash ^ element)) & 0xFFFFFFu); }

// ---- what the index remembers ---------------------------------------------------------------

// Computed runs the index may remember, per salt, in a token trie (runs share prefixes heavily,
// so this stays small, and the longest match of a prompt is one walk).
//
// A run is "certain" when the contract says the index keeps it: runs left by a release, or by a
// truncate whose new end lies in a fully computed page (full pages are never shortened). A run a
// truncate rolls back inside a partly computed page may be forgotten (docs/semantics.md,
// Rollback), so it is only "possible". Any eviction may drop any unheld run, and so may a create
// short of room, which takes over a cached donor page in place (docs/semantics.md, Room): either
// turns every certain run into a possible one (a new epoch). Clearing an index with no live
// sequence empties it.
class RememberedRuns {
public:
    struct Match {
        int64_t certain = 0;   // longest common prefix with a certain run
        int64_t possible = 0;  // ... with any run (>= certain)
    };

    void add(const std::string& salt, const std::vector<int32_t>& tokens, int64_t length, bool certain) {
        if (length <= 0) return;
        Trie& trie = tries_[salt];
        int32_t node = 0;
        for (int64_t i = 0; i < length; ++i) {
            node = trie.child_or_new(node, tokens[size_t(i)]);
            if (certain) trie.nodes[size_t(node)].certain_epoch = epoch_;
        }
    }

    Match longest(const std::string& salt, const std::vector<int32_t>& prompt) const {
        Match match;
        auto it = tries_.find(salt);
        if (it == tries_.end()) return match;
        const Trie& trie = it->second;
        int32_t node = 0;
        for (size_t i = 0; i < prompt.size(); ++i) {
            node = trie.child(node, prompt[i]);
            if (node < 0) break;
            match.possible = int64_t(i) + 1;
            if (trie.nodes[size_t(node)].certain_epoch == epoch_) match.certain = int64_t(i) + 1;
        }
        return match;
    }

    void forget_certainty() { ++epoch_; }
    void clear() { tries_.clear(); }

private:
    struct Node {
        std::vector<std::pair<int32_t, int32_t>> children;  // (token, node); vocabularies are tiny
        uint64_t certain_epoch = 0;                           // certain while equal to epoch_
    };
    struct Trie {
        std::vector<Node> nodes = std::vector<Node>(1);
        int32_t child(int32_t node, int32_t token) const {
            for (const auto& [t, n] : nodes[size_t(node)].children)
                if (t == token) return n;
            return -1;
        }
        int32_t child_or_new(int32_t node, int32_t token) {
            int32_t found = child(node, token);
            if (found >= 0) return found;
            nodes.emplace_back();
            int32_t created = int32_t(nodes.size()) - 1;
            nodes[size_t(node)].children.emplace_back(token, created);
            return created;
        }
    };

    std::map<std::string, Trie> tries_;
    uint64_t epoch_ = 1;
};

// ---- sequences and batches ------------------------------------------------------------------

struct Sequence {
    std::string salt;
    std::vector<int32_t> tokens;
    int64_t computed = 0;
    std::vector<int32_t> block_table;  // as last observed through the API (the model only compares)
    std::vector<uint64_t> hashes;      // prefix_hashes of all tokens, kept up to date
    int64_t length() const { return int64_t(tokens.size()); }
};

// A batch may be used while Valid; Stale after a member changed. MaybeStale follows a call the
// contract leaves open (a commit or truncate that changes no count): the next use decides.
enum class Validity { Valid, MaybeStale, Stale };

struct BatchMember {
    int64_t id;
    std::string salt;
    std::vector<int32_t> tokens;  // at build time
    int64_t computed;             // at build time: the batch covers [computed, tokens.size())
    std::vector<int32_t> block_table;
};

struct Batch {
    const void* handle = nullptr;  // the pagedkv_batch*; batches are keyed by creation order, so
                                   // that runs do not depend on handle values
    std::vector<BatchMember> members;
    Validity validity = Validity::Valid;
    std::vector<bool> layers_written;  // write_kv succeeded for this layer
    int64_t query_tokens() const {
        int64_t total = 0;
        for (const BatchMember& m : members) total += int64_t(m.tokens.size()) - m.computed;
        return total;
    }
    bool all_layers_written() const {
        return std::all_of(layers_written.begin(), layers_written.end(), [](bool w) { return w; });
    }
};

struct ReuseBounds {
    int64_t lower = 0;                // with room to spare the cache reuses at least this much,
    int64_t lower_without_room = 0;   // ... and when it had to evict, at least this much
    int64_t upper = 0;                // it never reuses more
};

class Model {
public:
    Model(int32_t page_size, bool reuse) : page_size_(page_size), reuse_(reuse) {}

    const std::map<int64_t, Sequence>& live() const { return live_; }
    Sequence& sequence(int64_t id) { return live_.at(id); }
    std::map<int64_t, Batch>& batches() { return batches_; }

    // What a create of `prompt` under `salt` must reuse. Live sequences hold their pages, so their
    // computed runs are always there; remembered certain runs only while no eviction interferes.
    // Without room to spare the cache may drop a partial (copied) run to keep the request from
    // failing (docs/semantics.md, Room), so then only whole pages of live runs are certain.
    ReuseBounds reuse_bounds(const std::string& salt, const std::vector<int32_t>& prompt) const {
        if (!reuse_) return {};
        int64_t live_best = 0;
        for (const auto& [id, s] : live_)
            if (s.salt == salt) live_best = std::max(live_best, common_prefix(prompt, s.tokens, s.computed));
        RememberedRuns::Match remembered = remembered_.longest(salt, prompt);
        int64_t cap = int64_t(prompt.size()) - 1;  // the last prompt token is always computed
        ReuseBounds bounds;
        bounds.lower = std::min(cap, std::max(live_best, remembered.certain));
        bounds.lower_without_room = std::min(cap, live_best) / page_size_ * page_size_;
        bounds.upper = std::min(cap, std::max(live_best, remembered.possible));
        return bounds;
    }

    // Where the bounds come from, for a failure report.
    std::string explain_bounds(const std::string& salt, const std::vector<int32_t>& prompt) const {
        std::string text;
        for (const auto& [id, s] : live_)
            if (s.salt == salt && common_prefix(prompt, s.tokens, s.computed) > 0)
                text += "live " + std::to_string(id) + " shares " + std::to_string(common_prefix(prompt, s.tokens, s.computed)) +
                        " of its " + std::to_string(s.computed) + " computed; ";
        RememberedRuns::Match remembered = remembered_.longest(salt, prompt);
        return text + "remembered runs share " + std::to_string(remembered.certain) + " (certain), " +
               std::to_string(remembered.possible) + " (possible)";
    }

    void create(int64_t id, const std::string& salt, const std::vector<int32_t>& prompt, int64_t cached) {
        live_[id] = Sequence{salt, prompt, cached, {}, prefix_hashes(salt, prompt, int64_t(prompt.size()))};
    }

    void commit(int64_t id, int64_t computed) {
        Sequence& s = live_.at(id);
        member_changed(id, computed != s.computed);
        s.computed = computed;
    }

    void append(int64_t id, const std::vector<int32_t>& tokens) {
        Sequence& s = live_.at(id);
        s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
        s.hashes = prefix_hashes(s.salt, s.tokens, s.length());
        member_changed(id, true);
    }

    void truncate(int64_t id, int64_t new_length) {
        Sequence& s = live_.at(id);
        if (s.computed > new_length) {
            // The rolled-back run is forgotten only inside a partly computed page of ours.
            int64_t last_page = (new_length - 1) / page_size_;
            bool page_was_full = s.computed >= (last_page + 1) * page_size_;
            remember(s.salt, s.tokens, s.computed, page_was_full);
            s.computed = new_length;
        }
        member_changed(id, new_length != s.length());
        s.tokens.resize(size_t(new_length));
        s.hashes.resize(size_t(new_length));
    }

    void fork(int64_t parent, int64_t child) {
        Sequence copy = live_.at(parent);
        live_[child] = std::move(copy);
    }

    void release(int64_t id) {
        const Sequence& s = live_.at(id);
        remember(s.salt, s.tokens, s.computed, true);
        member_changed(id, true);
        live_.erase(id);
    }

    // Every member of `batch` computed to its snapshot length; the batch and every other batch
    // holding a member whose count changed become stale.
    void commit_batch(int64_t serial) {
        Batch& batch = batches_.at(serial);
        for (const BatchMember& m : batch.members) commit(m.id, int64_t(m.tokens.size()));
        batch.validity = Validity::Stale;
    }

    // An eviction, or a create short of room: any run no live sequence holds may be gone.
    void unheld_runs_may_be_gone() { remembered_.forget_certainty(); }
    void index_emptied() { remembered_.clear(); }

private:
    static int64_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b, int64_t b_length) {
        int64_t limit = std::min<int64_t>(int64_t(a.size()), b_length), i = 0;
        while (i < limit && a[size_t(i)] == b[size_t(i)]) ++i;
        return i;
    }

    void remember(const std::string& salt, const std::vector<int32_t>& tokens, int64_t length, bool certain) {
        if (reuse_) remembered_.add(salt, tokens, length, certain);
    }

    // A member changed (`definitely`), or got a call that may count as a change.
    void member_changed(int64_t id, bool definitely) {
        for (auto& [serial, batch] : batches_) {
            if (batch.validity == Validity::Stale) continue;
            for (const BatchMember& m : batch.members)
                if (m.id == id) batch.validity = definitely ? Validity::Stale : Validity::MaybeStale;
        }
    }

    int32_t page_size_;
    bool reuse_;
    std::map<int64_t, Sequence> live_;
    std::map<int64_t, Batch> batches_;  // by creation order
    RememberedRuns remembered_;
};

}  // namespace fuzz_model
