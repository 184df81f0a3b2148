// Randomized operations against an independent model.
//
// The model knows nothing of pages or tries. It keeps, per salt, token sequences the index must
// remember: the computed prefix of every live sequence, plus an archive of computed prefixes left
// behind by releases and by truncations that do not shorten anything. With room to spare, a new
// prompt P must get exactly min(|P| - 1, max commonPrefix(P, remembered)). The one way the index
// forgets is a truncate that cuts into a partly computed page whose run only this sequence ever
// computed (no fork shared it): the model tracks that with a small "tail" record per sequence,
// shared between sequences exactly while a fork shares the page.
//
// With a small pool, evictions make the index forget more, so the check becomes "cached <= model"
// plus every invariant after every step: page accounting, ref counts against block tables, and
// the KV markers of every computed position of every live sequence.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>

#include <unistd.h>

#include "test_cache_util.h"

using namespace cache_test;

namespace {

struct Tail {  // the partly computed page holding a sequence's computed run
    int32_t valid = 0;
    bool shared_by_fork = false;
    bool full = false;  // a FULL page, after a truncate into it
};

struct ModelSequence {
    std::string salt;
    std::vector<int32_t> tokens;
    int64_t computed = 0;
    std::shared_ptr<Tail> tail;  // null when computed % page_size == 0
};

class Model {
public:
    explicit Model(int32_t page_size) : ps_(page_size) {}

    int64_t expected_cached(const std::string& salt, const std::vector<int32_t>& prompt) const {
        int64_t best = 0;
        auto consider = [&](const std::vector<int32_t>& tokens, int64_t length) {
            int64_t limit = std::min<int64_t>(length, int64_t(prompt.size()));
            int64_t common = 0;
            while (common < limit && tokens[size_t(common)] == prompt[size_t(common)]) ++common;
            best = std::max(best, common);
        };
        if (auto it = archive_.find(salt); it != archive_.end())
            for (const auto& tokens : it->second) consider(tokens, int64_t(tokens.size()));
        for (const auto& [id, s] : live_)
            if (s.salt == salt) consider(s.tokens, s.computed);
        return std::min<int64_t>(best, int64_t(prompt.size()) - 1);
    }

    void create(int64_t id, const std::string& salt, const std::vector<int32_t>& prompt, int64_t cached) {
        ModelSequence s{salt, prompt, cached, nullptr};
        if (cached % ps_) s.tail = std::make_shared<Tail>(Tail{int32_t(cached % ps_)});
        live_[id] = std::move(s);
    }

    void commit(int64_t id, int64_t c) {
        ModelSequence& s = live_.at(id);
        if (c == s.computed) return;
        if (c % ps_ == 0)
            s.tail = nullptr;
        else if (s.tail && c / ps_ == s.computed / ps_)
            s.tail->valid = int32_t(c % ps_);
        else
            s.tail = std::make_shared<Tail>(Tail{int32_t(c % ps_)});
        s.computed = c;
    }

    void append(int64_t id, const std::vector<int32_t>& tokens) {
        ModelSequence& s = live_.at(id);
        int64_t length = int64_t(s.tokens.size());
        int32_t fill = int32_t(length % ps_);
        if (fill && s.tail && s.computed / ps_ == (length - 1) / ps_ &&
            (s.tail.use_count() > 1 || s.tail->full || s.tail->valid > fill))
            s.tail = std::make_shared<Tail>(Tail{int32_t(s.computed % ps_)});  // copy-on-write
        s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
    }

    void fork(int64_t parent, int64_t child) {
        ModelSequence s = live_.at(parent);
        if (s.tail) {
            if (s.computed == int64_t(s.tokens.size()))
                s.tail->shared_by_fork = true;  // the page is shared
            else
                s.tail = std::make_shared<Tail>(Tail{int32_t(s.computed % ps_)});  // copied
        }
        live_[child] = std::move(s);
    }

    void truncate(int64_t id, int64_t k) {
        ModelSequence& s = live_.at(id);
        int64_t c = s.computed;
        if (c > k) {
            int64_t page = (k - 1) / ps_;
            if (c < (page + 1) * ps_) {
                bool forgets = !s.tail->full && s.tail.use_count() == 1 && !s.tail->shared_by_fork &&
                               s.tail->valid > k - page * ps_;
                if (forgets)
                    s.tail->valid = int32_t(k - page * ps_);
                else
                    remember(s.salt, s.tokens, c);
            } else {
                remember(s.salt, s.tokens, c);
                s.tail = k % ps_ ? std::make_shared<Tail>(Tail{int32_t(k % ps_), false, true}) : nullptr;
            }
            s.computed = k;
        }
        s.tokens.resize(size_t(k));
    }

    void release(int64_t id) {
        ModelSequence& s = live_.at(id);
        remember(s.salt, s.tokens, s.computed);
        live_.erase(id);
    }

    const std::map<int64_t, ModelSequence>& live() const { return live_; }

private:
    void remember(const std::string& salt, const std::vector<int32_t>& tokens, int64_t length) {
        if (length > 0) archive_[salt].insert(std::vector<int32_t>(tokens.begin(), tokens.begin() + length));
    }

    int32_t ps_;
    std::map<int64_t, ModelSequence> live_;
    std::map<std::string, std::set<std::vector<int32_t>>> archive_;
};

struct Counts {
    int creates = 0, refused = 0, commits = 0, appends = 0, forks = 0, truncates = 0, releases = 0, hits = 0;
    int64_t loaded_tokens = 0;  // brought back from the tiers
};

// Checks visible through the C API alone.
void check_public_invariants(const Cache& cache, const Model& model) {
    pagedkv_cache_stats s = stats(cache);
    CHECK_EQ(s.pages_free + s.pages_cached + s.pages_in_use, s.pages_total);
    CHECK_EQ(s.live_sequences, int32_t(model.live().size()));
    std::set<int32_t> held;
    for (const auto& [id, m] : model.live()) {
        auto table = block_table(cache, id);
        held.insert(table.begin(), table.end());
        pagedkv_sequence_info i = info(cache, id);
        CHECK_EQ(i.num_tokens, int64_t(m.tokens.size()));
        CHECK_EQ(i.num_computed, m.computed);
        CHECK_EQ(i.num_pages, int32_t(table.size()));
    }
    CHECK_EQ(int32_t(held.size()), s.pages_in_use);
}

// Tiers below the pool for a run (none by default). With `keeps_everything` (a budget no run
// fills), every FULL page ever computed stays reachable, so a create that is not refused must
// reuse at least the full pages of what the model remembers.
struct TierSetup {
    int64_t host_bytes = 0;
    std::string disk_dir;
    int64_t disk_bytes = 0;
    bool keeps_everything = false;
};

pagedkv_cache_config run_config(int32_t page_size, int32_t num_pages, const TierSetup& tiers) {
    pagedkv_cache_config config = make_config(page_size, num_pages);
    config.host_tier_bytes = tiers.host_bytes;
    if (!tiers.disk_dir.empty()) {
        config.disk_tier_path = tiers.disk_dir.c_str();
        config.disk_tier_bytes = tiers.disk_bytes;
        config.tier_flags = PAGEDKV_TIER_DISK_NO_FSYNC;  // speed; the disk tests fsync
    }
    return config;
}

// Per tier: bytes within the budget, and what is loaded never exceeds what was reused.
void check_tier_invariants(pagedkv_cache* cache) {
    for (int32_t tier = 0; tier < PAGEDKV_TIER_COUNT; ++tier) {
        pagedkv_tier_stats t{};
        t.struct_size = sizeof(t);
        CHECK_EQ(pagedkv_cache_get_tier_stats(cache, tier, &t), PAGEDKV_OK);
        if (!t.enabled) continue;
        if (t.capacity_bytes > 0 && tier == PAGEDKV_TIER_HOST) CHECK(t.bytes <= t.capacity_bytes);
        CHECK(t.pages >= 0 && t.bytes >= 0);
        CHECK_EQ(t.verify_failures, 0);
        CHECK(t.hits <= t.loads);
    }
}

void run(uint64_t seed, int32_t page_size, int32_t num_pages, int steps, bool exact, const TierSetup& tiers = {}) {
    Cache cache(run_config(page_size, num_pages, tiers));
    REQUIRE(cache.handle);
    Model model(page_size);
    std::mt19937_64 rng(seed);
    auto uniform = [&](int64_t lo, int64_t hi) { return lo + int64_t(rng() % uint64_t(hi - lo + 1)); };
    auto tokens = [&](int64_t count, int32_t vocab) {
        std::vector<int32_t> t(static_cast<size_t>(count));
        for (auto& x : t) x = int32_t(rng() % uint64_t(vocab));
        return t;
    };
    std::vector<std::vector<int32_t>> stems;
    for (int i = 0; i < 5; ++i) stems.push_back(tokens(uniform(0, 5 * page_size), 40));
    const std::vector<std::string> salts = {"", "tenant"};
    Counts counts;

    auto pick_live = [&]() -> int64_t {
        auto it = model.live().begin();
        std::advance(it, uniform(0, int64_t(model.live().size()) - 1));
        return it->first;
    };
    auto check_markers = [&](int64_t id) {
        int64_t bad = first_bad_marker(cache, id);
        if (bad != -1)
            std::fprintf(stderr, "  sequence %lld: wrong KV at position %lld\n", (long long)id, (long long)bad);
        CHECK_EQ(bad, -1);
    };

    for (int step = 0; step < steps; ++step) {
        pagedkv_cache_stats before = stats(cache);
        int64_t op = uniform(0, 99);
        size_t live = model.live().size();
        int64_t target = live ? pick_live() : 0;  // the sequence the operation works on
        if (live < 3 || (op < 30 && live < 16)) {
            // create: a stem (or a prefix of something computed) plus a short tail from a small vocab
            std::string salt = salts[size_t(uniform(0, 1))];
            std::vector<int32_t> prompt = stems[size_t(uniform(0, int64_t(stems.size()) - 1))];
            if (live > 0 && uniform(0, 2) == 0) {
                const ModelSequence& other = model.live().at(pick_live());
                prompt.assign(other.tokens.begin(), other.tokens.begin() + uniform(0, int64_t(other.tokens.size())));
                salt = other.salt;
            }
            auto tail = tokens(uniform(1, 3 * page_size), 3);
            prompt.insert(prompt.end(), tail.begin(), tail.end());
            int64_t expected = model.expected_cached(salt, prompt);
            int64_t id = 0, cached = -1;
            int32_t status = pagedkv_sequence_create(cache, prompt.data(), int64_t(prompt.size()),
                                                     reinterpret_cast<const uint8_t*>(salt.data()),
                                                     int32_t(salt.size()), &id, &cached);
            if (status == PAGEDKV_ERR_OUT_OF_PAGES && !exact) {
                ++counts.refused;
                CHECK(same_stats(before, stats(cache)));
            } else {
                REQUIRE(status == PAGEDKV_OK);
                ++counts.creates;
                counts.hits += cached > 0;
                if (exact)
                    CHECK_EQ(cached, expected);
                else
                    CHECK(cached <= expected);
                if (tiers.keeps_everything) CHECK(cached >= expected / page_size * page_size);
                pagedkv_sequence_info created = info(cache, id);
                int64_t loaded = 0;
                for (int64_t tokens_loaded : created.loaded_tokens) loaded += tokens_loaded;
                CHECK(loaded <= cached && loaded % page_size == 0);
                counts.loaded_tokens += loaded;
                model.create(id, salt, prompt, cached);
                check_markers(id);
            }
        } else if (op < 50) {
            int64_t id = target;
            const ModelSequence& s = model.live().at(id);
            int64_t c = uniform(s.computed, int64_t(s.tokens.size()));
            if (uniform(0, 1)) c = int64_t(s.tokens.size());
            compute(cache, id, c);
            model.commit(id, c);
            check_markers(id);
            ++counts.commits;
        } else if (op < 62 && int64_t(model.live().at(target).tokens.size()) < 24 * page_size) {
            int64_t id = target;
            auto more = tokens(uniform(1, 2 * page_size), 3);
            int32_t status = pagedkv_sequence_append(cache, id, more.data(), int64_t(more.size()));
            if (status == PAGEDKV_ERR_OUT_OF_PAGES && !exact) {
                ++counts.refused;
                CHECK(same_stats(before, stats(cache)));
                CHECK_EQ(info(cache, id).num_tokens, int64_t(model.live().at(id).tokens.size()));
            } else {
                REQUIRE(status == PAGEDKV_OK);
                model.append(id, more);
                check_markers(id);
                ++counts.appends;
            }
        } else if (op < 68) {
            int64_t id = target, child = 0;
            int32_t status = pagedkv_sequence_fork(cache, id, &child);
            if (status == PAGEDKV_ERR_OUT_OF_PAGES && !exact) {
                ++counts.refused;
                CHECK(same_stats(before, stats(cache)));
            } else {
                REQUIRE(status == PAGEDKV_OK);
                model.fork(id, child);
                check_markers(child);
                ++counts.forks;
            }
        } else if (op < 80) {
            int64_t id = target;
            int64_t length = int64_t(model.live().at(id).tokens.size());
            int64_t k = uniform(std::max<int64_t>(1, length - 2 * page_size), length);
            CHECK_EQ(pagedkv_sequence_truncate(cache, id, k), PAGEDKV_OK);
            model.truncate(id, k);
            check_markers(id);
            ++counts.truncates;
        } else {
            int64_t id = target;
            CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
            model.release(id);
            ++counts.releases;
        }

        if (!exact || step % 64 == 0) {
            check_public_invariants(cache, model);
            check_tier_invariants(cache);
            CHECK_CONSISTENT(cache);
            for (const auto& [id, s] : model.live()) check_markers(id);
        }
        if (check::failures_in_current_test() > 0) {
            std::fprintf(stderr, "  stopped at step %d (seed %llu)\n", step, (unsigned long long)seed);
            return;
        }
    }
    for (const auto& [id, s] : model.live()) CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
    pagedkv_cache_stats s = stats(cache);
    CHECK_EQ(s.pages_in_use, 0);
    CHECK_EQ(s.pages_free + s.pages_cached, s.pages_total);
    if (exact) CHECK_EQ(s.evictions, 0);  // the model assumes nothing was evicted
    if (tiers.host_bytes > 0) CHECK(counts.loaded_tokens > 0);
    CHECK_CONSISTENT(cache);
    std::fprintf(stderr,
                 "  seed %llu ps %d pages %d: %d creates (%d with a hit), %d commits, %d appends, %d forks, "
                 "%d truncates, %d releases, %d refused; evictions %lld, copies %lld, dedups %lld, loaded %lld\n",
                 (unsigned long long)seed, page_size, num_pages, counts.creates, counts.hits, counts.commits,
                 counts.appends, counts.forks, counts.truncates, counts.releases, counts.refused,
                 (long long)s.evictions, (long long)s.cow_copies, (long long)s.dedup_hits, (long long)counts.loaded_tokens);
}

}  // namespace

TEST(random_operations_match_the_model_with_room_to_spare) {
    run(1, 4, 1 << 15, 6000, true);
    run(2, 1, 1 << 16, 3000, true);
    run(3, 16, 1 << 13, 4000, true);
    run(4, 3, 1 << 15, 4000, true);
}

TEST(random_operations_keep_every_invariant_under_pressure) {
    run(5, 4, 40, 5000, false);
    run(6, 2, 24, 3000, false);
    run(7, 8, 64, 4000, false);
    run(8, 5, 48, 4000, false);
}

TEST(random_operations_with_tiers_below_the_pool) {
    // A host tier holding everything: evicted full pages all come back.
    TierSetup everything;
    everything.host_bytes = int64_t(64) << 20;
    everything.keeps_everything = true;
    run(9, 4, 40, 4000, false, everything);
    run(10, 1, 24, 3000, false, everything);
    run(11, 3, 48, 3000, false, everything);
    // A small host tier demoting into a small disk tier: LRU at both levels, loads from both.
    TierSetup small;
    small.host_bytes = 24 * 1024;
    small.disk_dir = (std::filesystem::temp_directory_path() / ("pagedkv-random-" + std::to_string(::getpid()))).string();
    small.disk_bytes = 64 * 1024;
    std::filesystem::remove_all(small.disk_dir);
    run(12, 4, 40, 3000, false, small);
    run(13, 2, 32, 3000, false, small);
    std::filesystem::remove_all(small.disk_dir);
}

CHECK_MAIN
