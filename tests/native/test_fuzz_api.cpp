// Random-operation fuzzer of the public C API (pagedkv.h), checked against fuzz_model.h after
// every step.
//
// Each episode builds a fresh cache from one of a few configurations (page sizes 1, 7, 16, 256;
// tiny pools that force eviction and OUT_OF_PAGES, roomy ones where reuse is predicted exactly;
// reuse on and off; tiny vocabularies so prompts share prefixes) and runs seeded random calls:
// valid ones (create, commit, append, truncate, fork, release, batches, write_kv, batch commit,
// attention, clear_unused) and invalid ones (released ids, stale and destroyed batches, null
// pointers, negative and overflowing sizes, bad layers). After every step it checks:
//   - an error changed nothing: stats, every live sequence's tokens, count and block table, and
//     (where the call could write KV) every byte of the pool;
//   - page accounting, exclusive ownership of positions still to compute, the cache's own
//     consistency check;
//   - every computed position of every live sequence holds exactly the KV markers of its prefix
//     (so a page served for the wrong prefix, or overwritten, is caught);
//   - reuse at create lies between what the contract guarantees and what the index can know;
//   - OUT_OF_PAGES only when the request could not fit even with reuse off;
//   - the batch validity rule: a batch works until a member changes, then every use is
//     STALE_BATCH and changes nothing.
//
// Usage: see kUsage below (test_fuzz_api --help); scripts/fuzz builds and runs it. Defaults:
// 200000 ops (20000 under PAGEDKV_TEST_QUICK=1), seed 1, so a ctest run is repeatable. A failure
// or crash prints the seed, episode, step and the last calls, and the command line that replays
// exactly that episode (episodes are independent: a fresh cache and a seed of their own).
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)  // GCC
#define FUZZ_UNDER_ASAN 1
#elif defined(__has_feature)      // clang
#if __has_feature(address_sanitizer)
#define FUZZ_UNDER_ASAN 1
#endif
#endif
#if defined(FUZZ_UNDER_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

#include "fuzz_model.h"
#include "pagedkv.h"
#include "test_cache_util.h"  // cache_test::consistency: the cache's own invariant check

namespace {

using fuzz_model::Validity;
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// ---- options --------------------------------------------------------------------------------

// Call families and checks that --skip leaves out, so that a run can get past a known defect
// (some crash the process: a use-after-free) to find the next one. CI skips none.
const std::set<std::string> kSkippableCategories = {
    "destroyed-handles",      // batch and cache handles used after destroy; handle values reused
    "stale-batches",          // write_kv / attention / commit with a batch whose member changed
    "huge-sizes",             // token counts near INT64_MAX, with a small buffer
    "bad-configs",            // cache_create with invalid configs
    "spurious-out-of-pages",  // the check that OUT_OF_PAGES comes only when the pool is really short
};

struct Options {
    int64_t ops = 200000;
    uint64_t seed = 1;
    int64_t only_episode = -1;
    int64_t ops_per_episode = 4000;
    std::string only_config;  // a configuration label, or "" for all in turn
    std::set<std::string> skip;
    bool verbose = false;
};

const char* const kUsage =
    "usage: test_fuzz_api [--ops N] [--seed S] [--episode E] [--episode-ops N] [--config NAME] [--skip LIST]\n"
    "                     [--verbose]\n"
    "  --ops N          operations in all (default 200000; 20000 with PAGEDKV_TEST_QUICK=1; env PAGEDKV_FUZZ_OPS)\n"
    "  --seed S         (default 1; env PAGEDKV_FUZZ_SEED)\n"
    "  --episode E      run episode E only, as a failure report names it\n"
    "  --episode-ops N  operations per episode, each on a fresh cache (default 4000)\n"
    "  --config NAME    only this configuration (ps1-tiny, ps256-roomy, ...: the labels in the source)\n"
    "  --skip LIST      leave out, comma-separated: destroyed-handles, stale-batches, huge-sizes, bad-configs,\n"
    "                   spurious-out-of-pages\n"
    "  --verbose        a line per episode\n";

[[noreturn]] void usage_error(const std::string& message) {
    std::fprintf(stderr, "test_fuzz_api: %s\n%s", message.c_str(), kUsage);
    std::exit(2);
}

int64_t parse_count(const char* text, const char* flag) {
    char* end = nullptr;
    long long value = std::strtoll(text, &end, 10);
    if (end == text || *end != '\0' || value < 0) usage_error(std::string(flag) + " needs a count >= 0");
    return value;
}

Options parse_options(int argc, char** argv) {
    Options options;
    if (const char* quick = std::getenv("PAGEDKV_TEST_QUICK"); quick && *quick && std::strcmp(quick, "0") != 0)
        options.ops = 20000;
    if (const char* ops = std::getenv("PAGEDKV_FUZZ_OPS"); ops && *ops) options.ops = parse_count(ops, "PAGEDKV_FUZZ_OPS");
    if (const char* seed = std::getenv("PAGEDKV_FUZZ_SEED"); seed && *seed)
        options.seed = uint64_t(parse_count(seed, "PAGEDKV_FUZZ_SEED"));
    for (int i = 1; i < argc; ++i) {
        std::string flag = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage_error(flag + " needs a value");
            return argv[++i];
        };
        if (flag == "--ops") options.ops = parse_count(value(), "--ops");
        else if (flag == "--seed") options.seed = uint64_t(parse_count(value(), "--seed"));
        else if (flag == "--episode") options.only_episode = parse_count(value(), "--episode");
        else if (flag == "--episode-ops") options.ops_per_episode = std::max<int64_t>(1, parse_count(value(), "--episode-ops"));
        else if (flag == "--config") options.only_config = value();
        else if (flag == "--verbose") options.verbose = true;
        else if (flag == "--help" || flag == "-h") {
            std::printf("%s", kUsage);
            std::exit(0);
        }
        else if (flag == "--skip") {
            std::string list = value();
            for (size_t start = 0; start <= list.size();) {
                size_t comma = std::min(list.find(',', start), list.size());
                std::string name = list.substr(start, comma - start);
                if (!name.empty() && !kSkippableCategories.count(name)) usage_error("unknown --skip category " + name);
                if (!name.empty()) options.skip.insert(name);
                start = comma + 1;
            }
        } else usage_error("unknown argument " + flag);
    }
    return options;
}

// ---- configurations -------------------------------------------------------------------------

struct Configuration {
    const char* label;
    int32_t page_size;
    int32_t num_pages;
    int32_t num_layers;
    int32_t num_kv_heads;
    int32_t head_dim;
    int32_t vocab_size;   // the cache's check; 0 = any id >= 0
    int32_t token_range;  // ids the fuzzer draws from (small: prefixes collide)
    bool reuse;
    int32_t max_tokens;   // longest sequence the fuzzer grows
    int32_t max_live;
};

const std::vector<Configuration>& configurations() {
    static const std::vector<Configuration> all = {
        {"ps1-tiny", 1, 24, 2, 2, 8, 3, 3, true, 20, 8},
        {"ps7-tiny", 7, 12, 3, 2, 16, 5, 5, true, 40, 6},
        {"ps16-tiny", 16, 10, 2, 2, 8, 4, 4, true, 70, 6},
        {"ps256-tiny", 256, 6, 1, 1, 8, 3, 3, true, 700, 5},
        {"ps1-roomy", 1, 32768, 1, 1, 8, 0, 4, true, 48, 12},
        {"ps7-roomy", 7, 2048, 2, 1, 8, 0, 3, true, 60, 12},
        {"ps16-roomy", 16, 1024, 2, 1, 8, 6, 6, true, 120, 12},
        {"ps256-roomy", 256, 64, 2, 1, 8, 0, 4, true, 900, 8},
        {"ps7-mid-2tokens", 7, 40, 1, 2, 8, 2, 2, true, 50, 10},
        {"ps16-no-reuse", 16, 40, 2, 1, 8, 4, 4, false, 80, 8},
    };
    return all;
}

pagedkv_cache_config cache_config(const Configuration& c) {
    pagedkv_cache_config config{};
    config.struct_size = sizeof(config);
    config.num_layers = c.num_layers;
    config.num_kv_heads = c.num_kv_heads;
    config.head_dim = c.head_dim;
    config.page_size = c.page_size;
    config.num_pages = c.num_pages;
    config.kv_dtype = PAGEDKV_DTYPE_F32;
    config.device_type = PAGEDKV_DEVICE_CPU;
    config.vocab_size = c.vocab_size;
    config.flags = c.reuse ? 0 : PAGEDKV_CACHE_NO_REUSE;
    return config;
}

// ---- failures and history -------------------------------------------------------------------

struct FuzzFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string vformat(const char* pattern, va_list args) {
    char buffer[1024];
    std::vsnprintf(buffer, sizeof(buffer), pattern, args);
    return buffer;
}

__attribute__((format(printf, 1, 2))) std::string format(const char* pattern, ...) {
    va_list args;
    va_start(args, pattern);
    std::string text = vformat(pattern, args);
    va_end(args);
    return text;
}

std::string status_name(int32_t status) { return format("%d (%s)", status, pagedkv_status_string(status)); }

std::string describe_tokens(const std::vector<int32_t>& tokens, size_t limit = 24) {
    std::string text = "[";
    for (size_t i = 0; i < tokens.size() && i < limit; ++i) text += (i ? " " : "") + std::to_string(tokens[i]);
    if (tokens.size() > limit) text += format(" ... (%zu)", tokens.size());
    return text + "]";
}

std::string describe_salt(const std::string& salt) {
    std::string text = "\"";
    for (unsigned char c : salt) text += c >= 32 && c < 127 ? std::string(1, char(c)) : format("\\x%02x", c);
    return text + "\"";
}

struct Totals {
    int64_t ops = 0, episodes = 0;
    std::map<std::string, int64_t> calls;     // by operation
    std::map<int32_t, int64_t> statuses;      // by returned status
    int64_t reused_tokens = 0, creates_with_reuse = 0, evictions = 0, exact_reuse_checks = 0;

    void add(const Totals& other) {
        ops += other.ops;
        episodes += other.episodes;
        for (const auto& [name, n] : other.calls) calls[name] += n;
        for (const auto& [status, n] : other.statuses) statuses[status] += n;
        reused_tokens += other.reused_tokens;
        creates_with_reuse += other.creates_with_reuse;
        evictions += other.evictions;
        exact_reuse_checks += other.exact_reuse_checks;
    }
};

// What the step under way expects of the verification that follows it.
struct StepExpectation {
    bool nothing_changed = true;      // an error, or a call that changes nothing
    std::set<int64_t> touched;        // sequences whose block table may change
    int64_t prompt_tokens = 0, reused_tokens = 0, computed_tokens = 0, live_sequences = 0;
};

// ---- one episode: one cache, one configuration, one seed --------------------------------------

class Episode {
public:
    Episode(const Options& options, const Configuration& config, uint64_t seed)
        : options_(options), config_(config), rng_(seed), model_(config.page_size, config.reuse) {}

    ~Episode() { teardown_quietly(); }

    void run(int64_t ops) {
        if (!skipped("bad-configs")) check_bad_configs();
        open_cache();
        for (step_ = 0; step_ < ops; ++step_) {
            run_one_step();
            ++totals_.ops;
        }
        close_cache();
        ++totals_.episodes;
    }

    const Totals& totals() const { return totals_; }
    int64_t step() const { return step_; }
    const std::deque<std::string>& history() const { return history_; }

private:
    // ---- randomness -------------------------------------------------------------------------
    int64_t uniform(int64_t lo, int64_t hi) { return lo + int64_t(rng_() % uint64_t(hi - lo + 1)); }
    bool chance(int percent) { return uniform(0, 99) < percent; }
    template <class T>
    const T& pick(const std::vector<T>& items) { return items[size_t(uniform(0, int64_t(items.size()) - 1))]; }

    bool skipped(const char* category) const { return options_.skip.count(category) != 0; }

    // ---- failure reporting --------------------------------------------------------------------
    void note(const std::string& call) {
        history_.push_back(format("#%" PRId64 " ", step_) + call);
        if (history_.size() > 40) history_.pop_front();
    }

    [[noreturn]] __attribute__((format(printf, 2, 3))) void fail(const char* pattern, ...) {
        va_list args;
        va_start(args, pattern);
        std::string message = vformat(pattern, args);
        va_end(args);
        throw FuzzFailure(message);
    }

    int32_t counted(const char* call, int32_t status) {
        ++totals_.calls[call];
        ++totals_.statuses[status];
        return status;
    }

    void expect_status(int32_t status, std::initializer_list<int32_t> allowed, const char* call) {
        for (int32_t ok : allowed)
            if (status == ok) {
                if (status != PAGEDKV_OK && std::strlen(pagedkv_last_error()) == 0)
                    fail("%s returned %s but pagedkv_last_error() is empty", call, status_name(status).c_str());
                return;
            }
        std::string expected;
        for (int32_t ok : allowed) expected += (expected.empty() ? "" : " or ") + status_name(ok);
        fail("%s returned %s, expected %s; last error: %s", call, status_name(status).c_str(), expected.c_str(),
             pagedkv_last_error());
    }

    // ---- the cache's lifetime -----------------------------------------------------------------
    void check_bad_configs() {
        struct Case {
            const char* what;
            void (*spoil)(pagedkv_cache_config&);
        };
        static const Case cases[] = {
            {"head_dim 4 (not a multiple of 8)", [](pagedkv_cache_config& c) { c.head_dim = 4; }},
            {"head_dim 12", [](pagedkv_cache_config& c) { c.head_dim = 12; }},
            {"head_dim 264", [](pagedkv_cache_config& c) { c.head_dim = 264; }},
            {"head_dim 0", [](pagedkv_cache_config& c) { c.head_dim = 0; }},
            {"page_size 0", [](pagedkv_cache_config& c) { c.page_size = 0; }},
            {"page_size 4097", [](pagedkv_cache_config& c) { c.page_size = 4097; }},
            {"num_layers 0", [](pagedkv_cache_config& c) { c.num_layers = 0; }},
            {"num_kv_heads -1", [](pagedkv_cache_config& c) { c.num_kv_heads = -1; }},
            {"kv_dtype 7", [](pagedkv_cache_config& c) { c.kv_dtype = 7; }},
            {"q4 with head_dim 40 (groups of 32)",
             [](pagedkv_cache_config& c) { c.kv_dtype = PAGEDKV_DTYPE_Q4, c.head_dim = 40; }},
            {"hadamard on f32", [](pagedkv_cache_config& c) { c.flags = PAGEDKV_CACHE_HADAMARD; }},
            {"unknown flag", [](pagedkv_cache_config& c) { c.flags = 0x10; }},
            {"num_pages -1", [](pagedkv_cache_config& c) { c.num_pages = -1; }},
            {"no pages, no byte budget", [](pagedkv_cache_config& c) { c.num_pages = 0, c.byte_budget = 0; }},
            {"vocab_size -1", [](pagedkv_cache_config& c) { c.vocab_size = -1; }},
            {"device_type 7", [](pagedkv_cache_config& c) { c.device_type = 7; }},
            {"struct_size 4", [](pagedkv_cache_config& c) { c.struct_size = 4; }},
        };
        const Case& bad = cases[size_t(uniform(0, int64_t(std::size(cases)) - 1))];
        pagedkv_cache_config config = cache_config(config_);
        bad.spoil(config);
        auto* sentinel = reinterpret_cast<pagedkv_cache*>(uintptr_t(0x5e5e));
        pagedkv_cache* out = sentinel;
        note(format("cache_create(%s)", bad.what));
        int32_t status = counted("cache_create(bad)", pagedkv_cache_create(&config, &out));
        if (status == PAGEDKV_OK) pagedkv_cache_destroy(out);  // no leak report on top of the failure
        expect_status(status, {PAGEDKV_ERR_INVALID_ARGUMENT}, format("cache_create with %s", bad.what).c_str());
        if (out != sentinel) fail("a failed cache_create wrote *out_cache");
        expect_status(pagedkv_cache_create(nullptr, &out), {PAGEDKV_ERR_INVALID_ARGUMENT}, "cache_create(null config)");
        config = cache_config(config_);
        expect_status(pagedkv_cache_create(&config, nullptr), {PAGEDKV_ERR_INVALID_ARGUMENT}, "cache_create(null out)");
    }

    void open_cache() {
        pagedkv_cache_config config = cache_config(config_);
        note(format("cache_create(%s)", config_.label));
        expect_status(pagedkv_cache_create(&config, &cache_), {PAGEDKV_OK}, "cache_create");
        expect_status(pagedkv_cache_create(&config, &sibling_), {PAGEDKV_OK}, "cache_create(sibling)");
        layout_.struct_size = sizeof(layout_);
        expect_status(pagedkv_cache_get_layout(cache_, &layout_), {PAGEDKV_OK}, "cache_get_layout");
        if (layout_.page_size != config_.page_size || layout_.num_pages != config_.num_pages ||
            layout_.element_bytes != 4 || layout_.page_bytes * layout_.num_pages != layout_.pool_bytes ||
            layout_.slab_stride != int64_t(config_.num_kv_heads) * config_.page_size * config_.head_dim ||
            layout_.page_stride != 2 * config_.num_layers * layout_.slab_stride)
            fail("layout does not match the config");
        for (int32_t page = 0; page < config_.num_pages; ++page) {
            void* address = nullptr;
            expect_status(pagedkv_cache_page_address(cache_, page, &address), {PAGEDKV_OK}, "cache_page_address");
            if (address != static_cast<char*>(layout_.pool_base) + int64_t(page) * layout_.page_bytes)
                fail("page_address(%d) is not pool_base + page * page_bytes", page);
            pages_.push_back(static_cast<float*>(address));
        }
        for (int32_t layer = 0; layer < config_.num_layers; ++layer)
            for (int32_t kv = 0; kv < 2; ++kv)
                for (int32_t head = 0; head < config_.num_kv_heads; ++head)
                    for (int32_t dim = 0; dim < config_.head_dim; ++dim)
                        element_keys_.push_back(fuzz_model::element_key(layer, kv, head, dim));
        auto* pool = static_cast<unsigned char*>(layout_.pool_base);
        expected_pool_.assign(pool, pool + layout_.pool_bytes);
        stats_ = read_stats();
        if (stats_.pages_total != config_.num_pages || stats_.pages_free != config_.num_pages)
            fail("a new cache does not have every page free");
        make_foreign_batch();
    }

    // A batch of another cache: every call that mixes it with ours must be INVALID_ARGUMENT.
    void make_foreign_batch() {
        int32_t token = 0;
        int64_t id = 0;
        expect_status(pagedkv_sequence_create(sibling_, &token, 1, nullptr, 0, &id, nullptr), {PAGEDKV_OK},
                      "sequence_create(sibling)");
        expect_status(pagedkv_batch_create(sibling_, &id, 1, &foreign_batch_), {PAGEDKV_OK}, "batch_create(sibling)");
    }

    // The end of an episode: either everything is released and the pool must come back whole,
    // or the cache is destroyed under live sequences and batches, whose handles must then be
    // rejected (batches accept one destroy).
    void close_cache() {
        note("close");
        if (skipped("destroyed-handles") || chance(50)) {
            while (!model_.batches().empty()) destroy_batch(model_.batches().begin()->first);
            for (const auto& [id, s] : std::map(model_.live())) {
                expect_status(pagedkv_sequence_release(cache_, id), {PAGEDKV_OK}, "sequence_release(at close)");
                model_.release(id);
            }
            pagedkv_cache_stats s = read_stats();
            if (s.pages_in_use != 0 || s.live_sequences != 0) fail("pages in use after every sequence was released");
            int32_t evicted = -1;
            expect_status(pagedkv_cache_clear_unused(cache_, &evicted), {PAGEDKV_OK}, "cache_clear_unused");
            s = read_stats();
            if (s.pages_free != s.pages_total || s.index_nodes != 0)
                fail("after clear_unused with no sequence: %d of %d pages free, %d index nodes", s.pages_free,
                     s.pages_total, s.index_nodes);
            check_consistency();
            expect_status(pagedkv_cache_destroy(cache_), {PAGEDKV_OK}, "cache_destroy");
        } else {
            expect_status(pagedkv_cache_destroy(cache_), {PAGEDKV_OK}, "cache_destroy(with live batches)");
            check_destroyed_cache_handles();
        }
        cache_ = nullptr;
        model_.batches().clear();
        expect_status(pagedkv_batch_destroy(foreign_batch_), {PAGEDKV_OK}, "batch_destroy(sibling)");
        foreign_batch_ = nullptr;
        expect_status(pagedkv_cache_destroy(sibling_), {PAGEDKV_OK}, "cache_destroy(sibling)");
        sibling_ = nullptr;
    }

    void check_destroyed_cache_handles() {
        pagedkv_cache* dead = cache_;
        pagedkv_cache_stats s{};
        s.struct_size = sizeof(s);
        expect_status(pagedkv_cache_get_stats(dead, &s), {PAGEDKV_ERR_INVALID_ARGUMENT}, "cache_get_stats(destroyed)");
        int32_t token = 0;
        int64_t id = 0;
        expect_status(pagedkv_sequence_create(dead, &token, 1, nullptr, 0, &id, nullptr), {PAGEDKV_ERR_INVALID_ARGUMENT},
                      "sequence_create(destroyed cache)");
        expect_status(pagedkv_cache_destroy(dead), {PAGEDKV_ERR_INVALID_ARGUMENT}, "cache_destroy(twice)");
        for (auto& [serial, batch] : model_.batches()) {
            pagedkv_batch* b = as_batch(batch.handle);
            pagedkv_batch_info info{};
            info.struct_size = sizeof(info);
            expect_status(pagedkv_batch_get_info(b, &info), {PAGEDKV_ERR_INVALID_ARGUMENT},
                          "batch_get_info(cache destroyed)");
            expect_status(pagedkv_batch_commit(dead, b), {PAGEDKV_ERR_INVALID_ARGUMENT}, "batch_commit(cache destroyed)");
            expect_status(pagedkv_batch_destroy(b), {PAGEDKV_OK}, "batch_destroy(cache destroyed)");
            expect_status(pagedkv_batch_destroy(b), {PAGEDKV_ERR_INVALID_ARGUMENT}, "batch_destroy(twice)");
        }
    }

    // After a failure: free what is left without checking anything.
    void teardown_quietly() {
        if (cache_) {
            for (auto& [serial, batch] : model_.batches()) pagedkv_batch_destroy(as_batch(batch.handle));
            pagedkv_cache_destroy(cache_);
        }
        if (foreign_batch_) pagedkv_batch_destroy(foreign_batch_);
        if (sibling_) pagedkv_cache_destroy(sibling_);
    }

    // ---- observation through the API -----------------------------------------------------------
    pagedkv_cache_stats read_stats() {
        pagedkv_cache_stats s{};
        s.struct_size = sizeof(s);
        expect_status(pagedkv_cache_get_stats(cache_, &s), {PAGEDKV_OK}, "cache_get_stats");
        return s;
    }

    // Reads into `table` (reused between calls: the fuzzer reads every table every step).
    void read_block_table(int64_t id, std::vector<int32_t>& table) {
        int32_t count = -1;
        expect_status(pagedkv_sequence_get_block_table(cache_, id, nullptr, 0, &count), {PAGEDKV_OK},
                      "sequence_get_block_table(size)");
        table.resize(size_t(std::max(count, 0)));
        expect_status(pagedkv_sequence_get_block_table(cache_, id, table.data(), count, &count), {PAGEDKV_OK},
                      "sequence_get_block_table");
    }

    void expect_tokens(int64_t id, const std::vector<int32_t>& expected) {
        token_buffer_.assign(expected.size() + 1, -7);
        int64_t count = -1;
        expect_status(pagedkv_sequence_get_tokens(cache_, id, token_buffer_.data(), int64_t(token_buffer_.size()), &count),
                      {PAGEDKV_OK}, "sequence_get_tokens");
        if (count != int64_t(expected.size()))
            fail("sequence %" PRId64 " has %" PRId64 " tokens, the model %zu", id, count, expected.size());
        if (token_buffer_.back() != -7) fail("sequence_get_tokens wrote past the token count");
        if (!std::equal(expected.begin(), expected.end(), token_buffer_.begin()))
            fail("sequence %" PRId64 ": tokens differ from the model", id);
    }

    void check_consistency() {
        std::string problem = cache_test::consistency(cache_);
        if (!problem.empty()) fail("the cache's consistency check: %s", problem.c_str());
    }

    int64_t pages_for(int64_t tokens) const { return (tokens + config_.page_size - 1) / config_.page_size; }

    // ---- KV markers ----------------------------------------------------------------------------
    uint64_t key(int32_t layer, int32_t kv, int32_t head, int32_t dim) const {
        return element_keys_[size_t(((layer * 2 + kv) * config_.num_kv_heads + head) * config_.head_dim + dim)];
    }

    float* element(int32_t page, int32_t layer, int32_t kv, int32_t head, int64_t in_page, int32_t dim) {
        return pages_[size_t(page)] + (int64_t(layer) * 2 + kv) * layout_.slab_stride +
               (int64_t(head) * config_.page_size + in_page) * config_.head_dim + dim;
    }

    // Writes the markers of positions [from, to) of a sequence straight into its pages, as an
    // engine's own kernel would before committing them.
    void write_markers(const fuzz_model::Sequence& s, int64_t from, int64_t to) {
        for (int64_t p = from; p < to; ++p)
            for (int32_t layer = 0; layer < config_.num_layers; ++layer)
                for (int32_t kv = 0; kv < 2; ++kv)
                    for (int32_t head = 0; head < config_.num_kv_heads; ++head)
                        for (int32_t dim = 0; dim < config_.head_dim; ++dim)
                            *element(s.block_table[size_t(p / config_.page_size)], layer, kv, head, p % config_.page_size,
                                     dim) = fuzz_model::marker(s.hashes[size_t(p)], key(layer, kv, head, dim));
    }

    // Every computed position holds the markers of its prefix. Pages new to the sequence (and all
    // pages every 64 steps) are checked element by element; the others in one element per
    // position that moves with the step, which is cheap enough for every sequence every step (a
    // stray write or a wrong page changes whole rows, so it is still caught).
    void check_markers(int64_t id, const fuzz_model::Sequence& s, const std::vector<bool>& page_is_new, bool full) {
        const int32_t layers = config_.num_layers, heads = config_.num_kv_heads, dims = config_.head_dim;
        for (int64_t p = 0; p < s.computed; ++p) {
            size_t index = size_t(p / config_.page_size);
            int32_t page = s.block_table[index];
            if (full || (index < page_is_new.size() && page_is_new[index])) {
                for (int32_t layer = 0; layer < layers; ++layer)
                    for (int32_t kv = 0; kv < 2; ++kv)
                        for (int32_t head = 0; head < heads; ++head)
                            for (int32_t dim = 0; dim < dims; ++dim)
                                check_marker(id, s, p, page, layer, kv, head, dim);
            } else {
                int64_t spin = p + step_;
                check_marker(id, s, p, page, int32_t(spin % layers), int32_t((spin / layers) % 2),
                             int32_t((spin / 2) % heads), int32_t((spin * 5) % dims));
            }
        }
    }

    void check_marker(int64_t id, const fuzz_model::Sequence& s, int64_t p, int32_t page, int32_t layer, int32_t kv,
                      int32_t head, int32_t dim) {
        float want = fuzz_model::marker(s.hashes[size_t(p)], key(layer, kv, head, dim));
        float got = *element(page, layer, kv, head, p % config_.page_size, dim);
        if (got != want)
            fail("wrong KV: sequence %" PRId64 " position %" PRId64 " (page %d, layer %d, %s, head %d, dim %d) holds "
                 "%.0f, its prefix's marker is %.0f; tokens %s, computed %" PRId64,
                 id, p, page, layer, kv ? "V" : "K", head, dim, double(got), double(want),
                 describe_tokens(s.tokens).c_str(), s.computed);
    }

    // ---- the pool as it must be --------------------------------------------------------------
    // expected_pool_ follows every legitimate write: the markers this fuzzer writes (directly, or
    // through a valid write_kv), and the library's own copies, which land only in pages that
    // become new to some block table (synced after each step, once their markers are checked).
    // Any other change of any byte, at any time, shows up at the next comparison: of the whole
    // pool every 16 steps, and of the batch's pages (where a stale or misdirected write lands)
    // after every kernel call.
    void sync_expected_page(int32_t page) {
        std::memcpy(expected_pool_.data() + int64_t(page) * layout_.page_bytes, pages_[size_t(page)],
                    size_t(layout_.page_bytes));
    }

    void sync_expected_pages(const fuzz_model::Sequence& s, int64_t from, int64_t to) {
        for (int64_t index = from / config_.page_size; index * config_.page_size < to; ++index)
            sync_expected_page(s.block_table[size_t(index)]);
    }

    void expect_batch_pages(const fuzz_model::Batch& batch, const char* when) {
        for (const fuzz_model::BatchMember& m : batch.members)
            for (int32_t page : m.block_table) {
                int64_t offset = int64_t(page) * layout_.page_bytes;
                if (std::memcmp(expected_pool_.data() + offset, pages_[size_t(page)], size_t(layout_.page_bytes)) != 0)
                    expect_pool(when);  // finds and reports the first difference
            }
    }

    void expect_pool(const char* when) {
        if (std::memcmp(expected_pool_.data(), layout_.pool_base, expected_pool_.size()) == 0) {
            pool_checked_at_step_ = step_;
            return;
        }
        size_t first = 0;
        auto* now = static_cast<unsigned char*>(layout_.pool_base);
        while (expected_pool_[first] == now[first]) ++first;
        fail("%s: the pool changed where nothing may write (since step %" PRId64 ", when it was last as expected), "
             "first at byte %zu (page %" PRId64 ")",
             when, pool_checked_at_step_, first, int64_t(first) / layout_.page_bytes);
    }

    // ---- verification after every step ---------------------------------------------------------
    void verify_step(const pagedkv_cache_stats& before) {
        pagedkv_cache_stats now = read_stats();
        verify_stats(before, now);
        if (now.evictions > before.evictions) {
            model_.unheld_runs_may_be_gone();
            totals_.evictions += now.evictions - before.evictions;
        }
        std::map<int64_t, std::vector<bool>> new_pages = verify_sequences(now);
        bool full = step_ % 64 == 0;
        static const std::vector<bool> none;
        for (const auto& [id, s] : model_.live()) {
            auto it = new_pages.find(id);
            check_markers(id, s, it == new_pages.end() ? none : it->second, full);
        }
        for (const auto& [id, is_new] : new_pages)
            for (size_t index = 0; index < is_new.size(); ++index)
                if (is_new[index]) sync_expected_page(model_.sequence(id).block_table[index]);
        if (step_ % 16 == 0) expect_pool("between steps");
        if (full || config_.num_pages <= 64) check_consistency();
        verify_released_ids();
        stats_ = now;
    }

    void verify_stats(const pagedkv_cache_stats& before, const pagedkv_cache_stats& now) {
        if (now.pages_free + now.pages_cached + now.pages_in_use != now.pages_total || now.pages_total != config_.num_pages)
            fail("page accounting: %d free + %d cached + %d in use != %d total", now.pages_free, now.pages_cached,
                 now.pages_in_use, now.pages_total);
        if (now.pages_free < 0 || now.pages_cached < 0 || now.pages_in_use < 0) fail("a negative page count");
        if (!config_.reuse && (now.pages_cached != 0 || now.index_nodes != 0))
            fail("reuse is off but %d pages are cached, %d indexed", now.pages_cached, now.index_nodes);
        if (now.pages_cached > now.index_nodes) fail("%d cached pages but only %d index nodes", now.pages_cached, now.index_nodes);
        if (expectation_.nothing_changed) {
            if (!cache_test::same_stats(before, now))
                fail("a call that must change nothing changed the stats (free %d->%d cached %d->%d in use %d->%d "
                     "nodes %d->%d evictions %" PRId64 "->%" PRId64 ")",
                     before.pages_free, now.pages_free, before.pages_cached, now.pages_cached, before.pages_in_use,
                     now.pages_in_use, before.index_nodes, now.index_nodes, before.evictions, now.evictions);
            return;
        }
        auto expect_delta = [&](const char* counter, int64_t was, int64_t is, int64_t delta) {
            if (is != was + delta)
                fail("stats.%s went from %" PRId64 " to %" PRId64 ", expected +%" PRId64, counter, was, is, delta);
        };
        expect_delta("prompt_tokens", before.prompt_tokens, now.prompt_tokens, expectation_.prompt_tokens);
        expect_delta("reused_tokens", before.reused_tokens, now.reused_tokens, expectation_.reused_tokens);
        expect_delta("computed_tokens", before.computed_tokens, now.computed_tokens, expectation_.computed_tokens);
        expect_delta("live_sequences", before.live_sequences, now.live_sequences, expectation_.live_sequences);
        if (now.evictions < before.evictions || now.cow_copies < before.cow_copies || now.dedup_hits < before.dedup_hits)
            fail("a counter went backwards (evictions, cow_copies or dedup_hits)");
        if (!config_.reuse && (now.reused_tokens != 0 || now.dedup_hits != 0)) fail("reuse is off but tokens were reused");
    }

    // Tokens, counts and block tables against the model; who holds which page. Returns, for the
    // sequences whose table changed, which of their pages are new to them.
    std::map<int64_t, std::vector<bool>> verify_sequences(const pagedkv_cache_stats& now) {
        std::map<int64_t, std::vector<bool>> new_pages;
        if (now.live_sequences != int32_t(model_.live().size()))
            fail("%d live sequences, the model has %zu", now.live_sequences, model_.live().size());
        holders_.resize(size_t(config_.num_pages));  // all zero between steps
        int32_t distinct_pages = 0;
        for (const auto& entry : model_.live()) {
            const int64_t id = entry.first;
            fuzz_model::Sequence& m = model_.sequence(id);  // the table observed now is stored
            pagedkv_sequence_info info{};
            info.struct_size = sizeof(info);
            expect_status(pagedkv_sequence_get_info(cache_, id, &info), {PAGEDKV_OK}, "sequence_get_info");
            if (info.num_tokens != m.length() || info.num_computed != m.computed)
                fail("sequence %" PRId64 ": %" PRId64 " tokens, %" PRId64 " computed; the model %" PRId64 ", %" PRId64, id,
                     info.num_tokens, info.num_computed, m.length(), m.computed);
            expect_tokens(id, m.tokens);
            std::vector<int32_t>& table = table_buffer_;
            read_block_table(id, table);
            if (int64_t(table.size()) != pages_for(m.length()) || info.num_pages != int32_t(table.size()))
                fail("sequence %" PRId64 ": %zu pages for %" PRId64 " tokens", id, table.size(), m.length());
            if (!expectation_.touched.count(id) && table != m.block_table)
                fail("sequence %" PRId64 "'s block table changed in a call that does not touch it", id);
            for (int32_t page : table) {
                if (page < 0 || page >= config_.num_pages) fail("sequence %" PRId64 " holds page %d", id, page);
                distinct_pages += holders_[size_t(page)]++ == 0;
            }
            if (table != m.block_table) {
                std::vector<bool>& is_new = new_pages[id];
                for (size_t i = 0; i < table.size(); ++i) is_new.push_back(i >= m.block_table.size() || table[i] != m.block_table[i]);
                m.block_table = table;
            }
        }
        if (distinct_pages != now.pages_in_use)
            fail("%d distinct pages in block tables, stats say %d in use", distinct_pages, now.pages_in_use);
        // Positions still to compute are written by their sequence alone.
        for (const auto& [id, s] : model_.live())
            for (int64_t index = s.computed / config_.page_size; s.computed < s.length() && index < int64_t(s.block_table.size()); ++index)
                if (holders_[size_t(s.block_table[size_t(index)])] != 1)
                    fail("sequence %" PRId64 " shares page %d, which holds positions it has still to compute", id,
                         s.block_table[size_t(index)]);
        for (const auto& [id, s] : model_.live())
            for (int32_t page : s.block_table) holders_[size_t(page)] = 0;
        return new_pages;
    }

    void verify_released_ids() {
        if (released_.empty()) return;
        int64_t id = pick(released_);
        pagedkv_sequence_info info{};
        info.struct_size = sizeof(info);
        expect_status(pagedkv_sequence_get_info(cache_, id, &info), {PAGEDKV_ERR_NOT_FOUND}, "sequence_get_info(released)");
    }

    // ---- the step --------------------------------------------------------------------------------
    void run_one_step() {
        expectation_ = StepExpectation{};
        pagedkv_cache_stats before = stats_;
        size_t live = model_.live().size();
        size_t batches = model_.batches().size();
        int64_t roll = uniform(0, 999);
        if (live < 2 || (live < size_t(config_.max_live) && roll < 150)) op_create();
        else if (roll < 280) op_commit();
        else if (roll < 370) op_append();
        else if (roll < 450) op_truncate();
        else if (roll < 500 && live < size_t(config_.max_live)) op_fork();
        else if (roll < 580) op_release();
        else if (roll < 660 && batches < 8) op_batch_create();
        else if (roll < 750 && batches > 0) op_batch_write();
        else if (roll < 810 && batches > 0) op_batch_commit();
        else if (roll < 840 && batches > 0) op_batch_destroy();
        else if (roll < 860 && batches > 0) op_attention();
        else if (roll < 870 && (config_.num_pages <= 64 || chance(10))) op_clear_unused();  // rare where room is meant to spare
        else if (roll < 920) op_bad_sequence_call();
        else if (roll < 950) op_bad_create();
        else if (roll < 985) op_bad_batch_call();
        else op_huge_sizes();
        verify_step(before);
    }

    int64_t pick_live() {
        auto it = model_.live().begin();
        std::advance(it, uniform(0, int64_t(model_.live().size()) - 1));
        return it->first;
    }

    int64_t pick_batch() {
        auto it = model_.batches().begin();
        std::advance(it, uniform(0, int64_t(model_.batches().size()) - 1));
        return it->first;
    }

    static pagedkv_batch* as_batch(const void* handle) { return static_cast<pagedkv_batch*>(const_cast<void*>(handle)); }

    std::vector<int32_t> random_tokens(int64_t count) {
        std::vector<int32_t> tokens(static_cast<size_t>(count));
        for (auto& t : tokens) t = int32_t(uniform(0, config_.token_range - 1));
        // Without a vocabulary any id >= 0 is valid: now and then a large one.
        if (config_.vocab_size == 0 && count > 0 && chance(3)) tokens[size_t(uniform(0, count - 1))] = 2000000000;
        return tokens;
    }

    // Salts from a small set; "" with and without a pointer is the same salt, "a" and "a\0" differ.
    std::string random_salt() {
        static const std::vector<std::string> salts = {"", "", "a", std::string("a\0", 2), "tenant-b"};
        return pick(salts);
    }

    // A cut near a page boundary (where full-page sharing and partial copies meet) or anywhere.
    int64_t random_cut(int64_t length) {
        if (length == 0) return 0;
        if (chance(50)) {
            int64_t boundary = uniform(0, length / config_.page_size) * config_.page_size + uniform(-1, 1);
            return std::clamp<int64_t>(boundary, 0, length);
        }
        return uniform(0, length);
    }

    // Prompts overlap a lot: a prefix of a stem, of a live sequence or of an earlier prompt, plus a
    // short tail from the tiny vocabulary.
    std::vector<int32_t> random_prompt(std::string& salt) {
        salt = random_salt();
        std::vector<int32_t> source;
        int64_t cut = -1;  // where to cut the source; -1: random_cut
        int64_t kind = uniform(0, 9);
        if (kind < 5) {
            source = stem(uniform(0, 5));
        } else if (kind < 8 && !model_.live().empty()) {
            const fuzz_model::Sequence& other = model_.live().at(pick_live());
            source = other.tokens;
            salt = other.salt;
            // Often right at the end of its computed run: partly computed tails are where reuse
            // by copy, fork sharing and rollback meet.
            if (chance(50)) cut = std::clamp<int64_t>(other.computed + uniform(-1, 2), 0, other.length());
        } else if (!recent_prompts_.empty()) {
            auto [recent_salt, recent] = pick(recent_prompts_);
            source = recent;
            if (chance(80)) salt = recent_salt;
        }
        source.resize(size_t(cut >= 0 ? cut : random_cut(int64_t(source.size()))));
        std::vector<int32_t> tail = random_tokens(uniform(source.empty() ? 1 : 0, config_.page_size + 2));
        source.insert(source.end(), tail.begin(), tail.end());
        if (int64_t(source.size()) > config_.max_tokens) source.resize(size_t(config_.max_tokens));
        return source;
    }

    const std::vector<int32_t>& stem(int64_t which) {
        while (stems_.size() <= size_t(which))
            stems_.push_back(random_tokens(uniform(config_.page_size / 2, std::min<int64_t>(config_.max_tokens, 3 * config_.page_size + 3))));
        return stems_[size_t(which)];
    }

    const uint8_t* salt_pointer(const std::string& salt) {
        // An empty salt is passed as null or as a non-null pointer with length 0: the same key.
        if (salt.empty()) return chance(50) ? nullptr : reinterpret_cast<const uint8_t*>("x");
        return reinterpret_cast<const uint8_t*>(salt.data());
    }

    // ---- valid operations ------------------------------------------------------------------------
    void op_create() {
        std::string salt;
        std::vector<int32_t> prompt = random_prompt(salt);
        fuzz_model::ReuseBounds bounds = model_.reuse_bounds(salt, prompt);
        pagedkv_cache_stats before = stats_;
        int64_t id = 0, cached = -1;
        bool want_cached = chance(90);
        note(format("sequence_create(salt %s, %zu tokens %s) expecting reuse in [%" PRId64 ", %" PRId64 "]",
                    describe_salt(salt).c_str(), prompt.size(), describe_tokens(prompt).c_str(), bounds.lower,
                    bounds.upper));
        int32_t status = counted("sequence_create",
                                 pagedkv_sequence_create(cache_, prompt.data(), int64_t(prompt.size()), salt_pointer(salt),
                                                         int32_t(salt.size()), &id, want_cached ? &cached : nullptr));
        expect_status(status, {PAGEDKV_OK, PAGEDKV_ERR_OUT_OF_PAGES}, "sequence_create");
        if (status == PAGEDKV_ERR_OUT_OF_PAGES) {
            expect_out_of_pages_is_real(pages_for(int64_t(prompt.size())), before, "sequence_create");
            return;
        }
        if (id <= 0 || model_.live().count(id) || std::count(released_.begin(), released_.end(), id))
            fail("sequence_create returned id %" PRId64 " (not new, or not > 0)", id);
        pagedkv_sequence_info info{};
        info.struct_size = sizeof(info);
        expect_status(pagedkv_sequence_get_info(cache_, id, &info), {PAGEDKV_OK}, "sequence_get_info(new)");
        if (want_cached && cached != info.num_cached) fail("out_cached_tokens %" PRId64 " but num_cached %" PRId64, cached, info.num_cached);
        cached = info.num_cached;
        pagedkv_cache_stats after = read_stats();
        bool had_room = after.evictions == before.evictions;  // no room to spare: it had to evict
        int64_t lower = had_room ? bounds.lower : bounds.lower_without_room;
        if (cached < lower || cached > bounds.upper)
            fail("sequence_create reused %" PRId64 " positions; the model says [%" PRId64 ", %" PRId64 "]%s; %s", cached,
                 lower, bounds.upper, had_room ? "" : " (it had to evict: whole pages of live runs only)",
                 model_.explain_bounds(salt, prompt).c_str());
        totals_.exact_reuse_checks += lower == bounds.upper && lower > 0;
        totals_.reused_tokens += cached;
        totals_.creates_with_reuse += cached > 0;
        remember_prompt(salt, prompt);
        // Short of room, a create may take a cached donor page over in place, cutting its run to
        // the part this prompt shares, without an eviction being counted.
        if (pages_for(int64_t(prompt.size())) >= int64_t(before.pages_free) + before.pages_cached)
            model_.unheld_runs_may_be_gone();
        model_.create(id, salt, prompt, cached);
        expectation_.nothing_changed = false;
        expectation_.touched.insert(id);
        expectation_.prompt_tokens = int64_t(prompt.size());
        expectation_.reused_tokens = cached;
        expectation_.live_sequences = 1;
    }

    void remember_prompt(const std::string& salt, const std::vector<int32_t>& prompt) {
        if (recent_prompts_.size() < 16) recent_prompts_.emplace_back(salt, prompt);
        else recent_prompts_[size_t(uniform(0, 15))] = {salt, prompt};
    }

    // OUT_OF_PAGES is right only if the request could not fit even with reuse off: it needs more
    // pages than are free or evictable.
    void expect_out_of_pages_is_real(int64_t needed, const pagedkv_cache_stats& before, const char* call) {
        if (needed <= int64_t(before.pages_free) + before.pages_cached && !skipped("spurious-out-of-pages"))
            fail("%s: spurious OUT_OF_PAGES: it needs at most %" PRId64 " pages and %d are free, %d cached (%s)", call,
                 needed, before.pages_free, before.pages_cached, pagedkv_last_error());
    }

    // Positions [computed, upto) get their markers, then are committed (partial progress allowed).
    void op_commit() {
        int64_t id = pick_live();
        fuzz_model::Sequence& s = model_.sequence(id);
        int64_t upto = chance(50) ? s.length() : uniform(s.computed, s.length());
        if (chance(20)) upto = std::clamp<int64_t>((s.computed / config_.page_size + 1) * config_.page_size, s.computed, s.length());
        note(format("sequence_commit(%" PRId64 ", %" PRId64 ") from %" PRId64 " of %" PRId64, id, upto, s.computed, s.length()));
        write_markers(s, s.computed, upto);
        sync_expected_pages(s, s.computed, upto);
        expect_status(counted("sequence_commit", pagedkv_sequence_commit(cache_, id, upto)), {PAGEDKV_OK}, "sequence_commit");
        expectation_.nothing_changed = false;
        expectation_.computed_tokens = upto - s.computed;
        expectation_.touched.insert(id);
        model_.commit(id, upto);
    }

    void op_append() {
        int64_t id = pick_live();
        fuzz_model::Sequence& s = model_.sequence(id);
        int64_t room = config_.max_tokens - s.length();
        if (room <= 0) return op_truncate();
        int64_t count = std::min(room, chance(30) ? int64_t(1) : uniform(1, config_.page_size + 2));
        std::vector<int32_t> tokens = random_tokens(count);
        pagedkv_cache_stats before = stats_;
        note(format("sequence_append(%" PRId64 ", %s) to %" PRId64 " tokens (%" PRId64 " computed)", id,
                    describe_tokens(tokens).c_str(), s.length(), s.computed));
        int32_t status = counted("sequence_append", pagedkv_sequence_append(cache_, id, tokens.data(), count));
        expect_status(status, {PAGEDKV_OK, PAGEDKV_ERR_OUT_OF_PAGES}, "sequence_append");
        if (status != PAGEDKV_OK) {
            // New pages, plus one when the last page is partly filled (it may need a private copy).
            int64_t needed = pages_for(s.length() + count) - pages_for(s.length()) + (s.length() % config_.page_size != 0);
            expect_out_of_pages_is_real(needed, before, "sequence_append");
            return;
        }
        expectation_.nothing_changed = false;
        expectation_.touched.insert(id);
        model_.append(id, tokens);
    }

    void op_truncate() {
        int64_t id = pick_live();
        fuzz_model::Sequence& s = model_.sequence(id);
        int64_t length = chance(70) ? uniform(std::max<int64_t>(1, s.computed - config_.page_size - 1), s.length())
                                    : uniform(1, s.length());
        note(format("sequence_truncate(%" PRId64 ", %" PRId64 ") from %" PRId64 " tokens, %" PRId64 " computed", id,
                    length, s.length(), s.computed));
        expect_status(counted("sequence_truncate", pagedkv_sequence_truncate(cache_, id, length)), {PAGEDKV_OK},
                      "sequence_truncate");
        expectation_.nothing_changed = false;
        expectation_.touched.insert(id);
        model_.truncate(id, length);
    }

    void op_fork() {
        int64_t id = pick_live();
        const fuzz_model::Sequence& s = model_.sequence(id);
        pagedkv_cache_stats before = stats_;
        int64_t child = 0;
        note(format("sequence_fork(%" PRId64 ") at %" PRId64 " tokens, %" PRId64 " computed", id, s.length(), s.computed));
        int32_t status = counted("sequence_fork", pagedkv_sequence_fork(cache_, id, &child));
        expect_status(status, {PAGEDKV_OK, PAGEDKV_ERR_OUT_OF_PAGES}, "sequence_fork");
        if (status != PAGEDKV_OK) {
            int64_t to_compute = s.computed < s.length() ? pages_for(s.length()) - s.computed / config_.page_size : 0;
            expect_out_of_pages_is_real(to_compute, before, "sequence_fork");
            return;
        }
        if (child <= 0 || model_.live().count(child)) fail("sequence_fork returned id %" PRId64, child);
        note(format("  -> child %" PRId64, child));
        model_.fork(id, child);
        expectation_.nothing_changed = false;
        expectation_.touched.insert(child);
        expectation_.live_sequences = 1;
    }

    void op_release() {
        int64_t id = pick_live();
        note(format("sequence_release(%" PRId64 ")", id));
        expect_status(counted("sequence_release", pagedkv_sequence_release(cache_, id)), {PAGEDKV_OK}, "sequence_release");
        model_.release(id);
        if (released_.size() < 64) released_.push_back(id);
        else released_[size_t(uniform(0, 63))] = id;
        expectation_.nothing_changed = false;
        expectation_.live_sequences = -1;
    }

    void op_clear_unused() {
        pagedkv_cache_stats before = stats_;
        int32_t evicted = -1;
        note("cache_clear_unused");
        expect_status(counted("cache_clear_unused", pagedkv_cache_clear_unused(cache_, chance(90) ? &evicted : nullptr)),
                      {PAGEDKV_OK}, "cache_clear_unused");
        pagedkv_cache_stats after = read_stats();
        if (after.pages_cached != 0 || after.pages_in_use != before.pages_in_use ||
            after.evictions != before.evictions + before.pages_cached || (evicted != -1 && evicted != before.pages_cached))
            fail("clear_unused: %d cached before, evicted %d, now %d cached, evictions %" PRId64 " -> %" PRId64,
                 before.pages_cached, evicted, after.pages_cached, before.evictions, after.evictions);
        if (model_.live().empty()) model_.index_emptied();
        expectation_.nothing_changed = false;
    }

    // ---- batches ----------------------------------------------------------------------------------
    void op_batch_create() {
        std::vector<int64_t> ids;
        for (const auto& [id, s] : model_.live()) ids.push_back(id);
        std::shuffle(ids.begin(), ids.end(), rng_);
        ids.resize(size_t(uniform(1, std::min<int64_t>(4, int64_t(ids.size())))));
        pagedkv_batch* handle = nullptr;
        note(format("batch_create(%zu sequences, first %" PRId64 ")", ids.size(), ids[0]));
        expect_status(counted("batch_create", pagedkv_batch_create(cache_, ids.data(), int32_t(ids.size()), &handle)),
                      {PAGEDKV_OK}, "batch_create");
        if (!handle) fail("batch_create returned OK and a null batch");
        if (!skipped("destroyed-handles") && std::count(destroyed_batches_.begin(), destroyed_batches_.end(), handle))
            fail("batch_create returned the value of a destroyed handle (handles must never be reused)");
        std::erase(destroyed_batches_, handle);
        fuzz_model::Batch batch;
        batch.handle = handle;
        for (int64_t id : ids) {
            const fuzz_model::Sequence& s = model_.sequence(id);
            batch.members.push_back({id, s.salt, s.tokens, s.computed, s.block_table});
        }
        batch.layers_written.assign(size_t(config_.num_layers), false);
        note(format("  -> batch %p, %" PRId64 " query tokens", static_cast<void*>(handle), batch.query_tokens()));
        check_batch_info(handle, batch, "batch_create");
        model_.batches()[next_batch_serial_++] = std::move(batch);
    }

    // The arrays describe the snapshot: pages, lengths, query tokens and their slots.
    void check_batch_info(pagedkv_batch* handle, const fuzz_model::Batch& batch, const char* when) {
        pagedkv_batch_info info{};
        info.struct_size = sizeof(info);
        expect_status(pagedkv_batch_get_info(handle, &info), {PAGEDKV_OK}, "batch_get_info");
        const int32_t ps = config_.page_size;
        if (info.num_seqs != int32_t(batch.members.size()) || info.num_qo_tokens != batch.query_tokens())
            fail("%s: batch info has %d sequences, %" PRId64 " query tokens", when, info.num_seqs, info.num_qo_tokens);
        int64_t page_cursor = 0, query_cursor = 0, max_kv = 0, max_qo = 0;
        int64_t common_pages = kInt64Max;
        for (size_t i = 0; i < batch.members.size(); ++i) {
            const fuzz_model::BatchMember& m = batch.members[i];
            int64_t length = int64_t(m.tokens.size());
            if (info.kv_indptr[i] != page_cursor || info.qo_indptr[i] != query_cursor || info.kv_len[i] != length)
                fail("%s: batch arrays of member %zu do not match its sequence", when, i);
            for (size_t p = 0; p < m.block_table.size(); ++p)
                if (info.kv_page_indices[page_cursor + int64_t(p)] != m.block_table[p])
                    fail("%s: kv_page_indices of member %zu differ from its block table", when, i);
            int64_t last_len = length - (int64_t(m.block_table.size()) - 1) * ps;
            if (info.kv_last_page_len[i] != last_len) fail("%s: kv_last_page_len of member %zu", when, i);
            for (int64_t p = m.computed; p < length; ++p)
                if (info.slot_mapping[query_cursor + p - m.computed] != int64_t(m.block_table[size_t(p / ps)]) * ps + p % ps)
                    fail("%s: slot_mapping of member %zu position %" PRId64, when, i, p);
            page_cursor += int64_t(m.block_table.size());
            query_cursor += length - m.computed;
            max_kv = std::max(max_kv, length);
            max_qo = std::max(max_qo, length - m.computed);
            int64_t same = 0;
            while (same < length / ps && same < int64_t(batch.members[0].block_table.size()) &&
                   m.block_table[size_t(same)] == batch.members[0].block_table[size_t(same)])
                ++same;
            common_pages = std::min(common_pages, same);
        }
        if (info.kv_indptr[batch.members.size()] != page_cursor || info.qo_indptr[batch.members.size()] != query_cursor ||
            info.num_pages != page_cursor || info.max_kv_len != max_kv || info.max_qo_len != max_qo)
            fail("%s: batch totals do not match its sequences", when);
        if (batch.members.size() < 2 ? info.shared_prefix_pages != 0 : info.shared_prefix_pages > common_pages)
            fail("%s: shared_prefix_pages %d, but only %" PRId64 " leading full pages are common", when,
                 info.shared_prefix_pages, batch.members.size() < 2 ? 0 : common_pages);
    }

    // K and V of the batch's query tokens for one layer: [T, Hkv, D] each.
    void batch_kv(const fuzz_model::Batch& batch, int32_t layer, std::vector<float>& k, std::vector<float>& v) {
        const int32_t heads = config_.num_kv_heads, dims = config_.head_dim;
        size_t size = size_t(std::max<int64_t>(batch.query_tokens(), 1)) * size_t(heads * dims);
        k.assign(size, 0.0f);
        v.assign(size, 0.0f);
        int64_t t = 0;
        for (const fuzz_model::BatchMember& m : batch.members) {
            std::vector<uint64_t> hashes = fuzz_model::prefix_hashes(m.salt, m.tokens, int64_t(m.tokens.size()));
            for (int64_t p = m.computed; p < int64_t(m.tokens.size()); ++p, ++t)
                for (int32_t head = 0; head < heads; ++head)
                    for (int32_t dim = 0; dim < dims; ++dim) {
                        size_t at = size_t((t * heads + head) * dims + dim);
                        k[at] = fuzz_model::marker(hashes[size_t(p)], key(layer, 0, head, dim));
                        v[at] = fuzz_model::marker(hashes[size_t(p)], key(layer, 1, head, dim));
                    }
        }
    }

    // A valid write_kv of `layer`: the markers of every query token of the batch in its slot.
    void apply_write(const fuzz_model::Batch& batch, int32_t layer) {
        auto* floats = reinterpret_cast<float*>(expected_pool_.data());
        for (const fuzz_model::BatchMember& m : batch.members) {
            std::vector<uint64_t> hashes = fuzz_model::prefix_hashes(m.salt, m.tokens, int64_t(m.tokens.size()));
            for (int64_t p = m.computed; p < int64_t(m.tokens.size()); ++p) {
                int32_t page = m.block_table[size_t(p / config_.page_size)];
                for (int32_t kv = 0; kv < 2; ++kv)
                    for (int32_t head = 0; head < config_.num_kv_heads; ++head)
                        for (int32_t dim = 0; dim < config_.head_dim; ++dim) {
                            int64_t offset = element(page, layer, kv, head, p % config_.page_size, dim) -
                                             static_cast<float*>(layout_.pool_base);
                            floats[offset] = fuzz_model::marker(hashes[size_t(p)], key(layer, kv, head, dim));
                        }
            }
        }
    }

    pagedkv_attention_params kernel_params() const {
        pagedkv_attention_params params{};
        params.struct_size = sizeof(params);
        params.num_qo_heads = config_.num_kv_heads;
        params.q_dtype = PAGEDKV_DTYPE_F32;
        params.out_dtype = PAGEDKV_DTYPE_F32;
        params.num_threads = 1;  // the fuzzer is about metadata; one thread keeps it fast and deterministic
        return params;
    }

    // write_kv of one layer through a batch. Valid: exactly the batch's slots change, to the
    // markers. Stale: STALE_BATCH and not one byte of the pool changes.
    int32_t write_layer(int64_t serial, int32_t layer) {
        fuzz_model::Batch& batch = model_.batches().at(serial);
        const void* handle = batch.handle;
        if (batch.validity == Validity::Stale && skipped("stale-batches")) return PAGEDKV_ERR_STALE_BATCH;
        std::vector<float> k, v;
        batch_kv(batch, layer, k, v);
        pagedkv_attention_params params = kernel_params();
        note(format("write_kv(batch %p, layer %d) %s", handle, layer, validity_name(batch.validity)));
        int32_t status = counted("write_kv", pagedkv_write_kv(cache_, as_batch(handle), layer, k.data(), v.data(),
                                                              PAGEDKV_DTYPE_F32, &params));
        expect_batch_status(batch, status, "write_kv");
        if (status == PAGEDKV_OK) {
            apply_write(batch, layer);
            batch.layers_written[size_t(layer)] = true;
        }
        expect_batch_pages(batch, status == PAGEDKV_OK ? "write_kv (only the batch's slots may change)" : "a refused write_kv");
        return status;
    }

    // The status a call with `batch` must return: OK while valid, STALE_BATCH once stale; a
    // MaybeStale batch is settled by the answer.
    void expect_batch_status(fuzz_model::Batch& batch, int32_t status, const char* call) {
        switch (batch.validity) {
            case Validity::Valid: expect_status(status, {PAGEDKV_OK}, call); break;
            case Validity::Stale: expect_status(status, {PAGEDKV_ERR_STALE_BATCH}, call); break;
            case Validity::MaybeStale:
                expect_status(status, {PAGEDKV_OK, PAGEDKV_ERR_STALE_BATCH}, call);
                batch.validity = status == PAGEDKV_OK ? Validity::Valid : Validity::Stale;
                break;
        }
    }

    static const char* validity_name(Validity validity) {
        return validity == Validity::Valid ? "(valid)" : validity == Validity::Stale ? "(stale)" : "(maybe stale)";
    }

    void op_batch_write() {
        int64_t serial = pick_batch();
        fuzz_model::Batch& batch = model_.batches().at(serial);
        if (batch.query_tokens() > 4096) return;  // keeps ps-256 steps fast
        if (chance(50)) {
            write_layer(serial, int32_t(uniform(0, config_.num_layers - 1)));
        } else {
            for (int32_t layer = 0; layer < config_.num_layers; ++layer)
                if (write_layer(serial, layer) != PAGEDKV_OK) break;
        }
    }

    void op_batch_commit() {
        int64_t serial = pick_batch();
        fuzz_model::Batch& batch = model_.batches().at(serial);
        const void* handle = batch.handle;
        if (batch.validity == Validity::Stale && skipped("stale-batches")) return;
        // An engine commits only what every layer wrote.
        for (int32_t layer = 0; layer < config_.num_layers && batch.validity != Validity::Stale; ++layer)
            if (!batch.layers_written[size_t(layer)] && write_layer(serial, layer) != PAGEDKV_OK) break;
        int64_t computed = 0;
        for (const fuzz_model::BatchMember& m : batch.members) computed += int64_t(m.tokens.size()) - m.computed;
        note(format("batch_commit(batch %p) %s", handle, validity_name(batch.validity)));
        int32_t status = counted("batch_commit", pagedkv_batch_commit(cache_, as_batch(handle)));
        expect_batch_status(batch, status, "batch_commit");
        if (status != PAGEDKV_OK) return;
        expectation_.nothing_changed = false;
        expectation_.computed_tokens = computed;
        for (const fuzz_model::BatchMember& m : batch.members) expectation_.touched.insert(m.id);
        model_.commit_batch(serial);
        if (!skipped("stale-batches")) {  // committed: the batch itself is stale now
            note(format("batch_commit(batch %p) again", handle));
            expect_status(counted("batch_commit", pagedkv_batch_commit(cache_, as_batch(handle))), {PAGEDKV_ERR_STALE_BATCH},
                          "batch_commit(after commit)");
        }
    }

    void destroy_batch(int64_t serial) {
        const void* handle = model_.batches().at(serial).handle;
        note(format("batch_destroy(batch %p)", handle));
        expect_status(counted("batch_destroy", pagedkv_batch_destroy(as_batch(handle))), {PAGEDKV_OK}, "batch_destroy");
        model_.batches().erase(serial);
        destroyed_batches_.push_back(handle);
    }

    void op_batch_destroy() {
        int64_t serial = pick_batch();
        fuzz_model::Batch& batch = model_.batches().at(serial);
        if (chance(50)) {  // a stale batch's arrays stay readable until it is destroyed
            note(format("batch_get_info(batch %p) %s", batch.handle, validity_name(batch.validity)));
            check_batch_info(as_batch(batch.handle), batch, "batch_get_info before destroy");
        }
        destroy_batch(serial);
    }

    // Attention reads the pool and never writes it; with a stale batch it must refuse.
    void op_attention() {
        fuzz_model::Batch& batch = model_.batches().at(pick_batch());
        const void* handle = batch.handle;
        if (batch.validity == Validity::Stale && skipped("stale-batches")) return;
        if (batch.query_tokens() > 64) return;
        pagedkv_attention_params params = kernel_params();
        params.num_qo_heads = config_.num_kv_heads * int32_t(uniform(1, 2));
        int64_t kind = uniform(0, 2);
        bool one_query_each = std::all_of(batch.members.begin(), batch.members.end(), [](const auto& m) {
            return int64_t(m.tokens.size()) - m.computed == 1;
        });
        int64_t rows = kind == 0 ? int64_t(batch.members.size()) : batch.query_tokens();
        size_t size = size_t(std::max<int64_t>(rows, 1) * params.num_qo_heads * config_.head_dim);
        std::vector<float> q(size, 0.25f), out(size, -3.0f), lse(size, -3.0f);
        int32_t layer = int32_t(uniform(0, config_.num_layers - 1));
        const char* name = kind == 0 ? "decode_attention" : kind == 1 ? "prefill_attention" : "cascade_attention";
        note(format("%s(batch %p, layer %d) %s", name, handle, layer, validity_name(batch.validity)));
        int32_t status = counted(name, kind == 0   ? pagedkv_decode_attention(cache_, as_batch(handle), layer, &params, q.data(), out.data(), lse.data())
                                       : kind == 1 ? pagedkv_prefill_attention(cache_, as_batch(handle), layer, &params, q.data(), out.data(), lse.data())
                                                   : pagedkv_cascade_attention(cache_, as_batch(handle), layer, &params, q.data(), out.data(), lse.data()));
        if (kind == 0 && !one_query_each && batch.validity != Validity::Stale) {
            expect_status(status, {PAGEDKV_ERR_INVALID_ARGUMENT, PAGEDKV_ERR_STALE_BATCH}, name);
        } else {
            expect_batch_status(batch, status, name);
        }
        expect_batch_pages(batch, name);
        if (status != PAGEDKV_OK &&
            (std::any_of(out.begin(), out.end(), [](float x) { return x != -3.0f; }) ||
             std::any_of(lse.begin(), lse.end(), [](float x) { return x != -3.0f; })))
            fail("%s failed with %s but wrote its output", name, status_name(status).c_str());
    }

    // ---- invalid calls: each must return its error and change nothing -----------------------------
    int64_t dead_id() {
        if (!released_.empty() && chance(70)) return pick(released_);
        static const int64_t never[] = {0, -1, -77, kInt64Max, std::numeric_limits<int64_t>::min()};
        return never[size_t(uniform(0, 4))];
    }

    void op_bad_sequence_call() {
        int64_t id = pick_live();
        const fuzz_model::Sequence& s = model_.sequence(id);
        int64_t dead = dead_id();
        int32_t token = 0;
        int64_t out = 0;
        pagedkv_sequence_info info{};
        info.struct_size = sizeof(info);
        switch (uniform(0, 15)) {
            case 0: return bad_call("sequence_commit(dead id)", pagedkv_sequence_commit(cache_, dead, 1), PAGEDKV_ERR_NOT_FOUND);
            case 1: return bad_call("sequence_append(dead id)", pagedkv_sequence_append(cache_, dead, &token, 1), PAGEDKV_ERR_NOT_FOUND);
            case 2: return bad_call("sequence_truncate(dead id)", pagedkv_sequence_truncate(cache_, dead, 1), PAGEDKV_ERR_NOT_FOUND);
            case 3: return bad_call("sequence_fork(dead id)", pagedkv_sequence_fork(cache_, dead, &out), PAGEDKV_ERR_NOT_FOUND);
            case 4: return bad_call("sequence_release(dead id)", pagedkv_sequence_release(cache_, dead), PAGEDKV_ERR_NOT_FOUND);
            case 5: return bad_call("sequence_get_info(dead id)", pagedkv_sequence_get_info(cache_, dead, &info), PAGEDKV_ERR_NOT_FOUND);
            case 6: {
                static const int64_t beyond[] = {-1, kInt64Max, std::numeric_limits<int64_t>::min()};
                int64_t upto = chance(50) ? s.length() + 1 : beyond[uniform(0, 2)];
                if (s.computed > 0 && chance(30)) upto = s.computed - 1;  // backwards
                note(format("sequence_commit(%" PRId64 ", %" PRId64 ") outside [%" PRId64 ", %" PRId64 "]", id, upto, s.computed, s.length()));
                return bad_call("sequence_commit(out of range)", pagedkv_sequence_commit(cache_, id, upto), PAGEDKV_ERR_INVALID_ARGUMENT);
            }
            case 7: {
                static const int64_t lengths[] = {0, -1, kInt64Max, std::numeric_limits<int64_t>::min()};
                int64_t length = chance(50) ? s.length() + 1 : lengths[uniform(0, 3)];
                note(format("sequence_truncate(%" PRId64 ", %" PRId64 ")", id, length));
                return bad_call("sequence_truncate(out of range)", pagedkv_sequence_truncate(cache_, id, length), PAGEDKV_ERR_INVALID_ARGUMENT);
            }
            case 8: return bad_call("sequence_append(null tokens)", pagedkv_sequence_append(cache_, id, nullptr, 2), PAGEDKV_ERR_INVALID_ARGUMENT);
            case 9: return bad_call("sequence_append(-1 tokens)", pagedkv_sequence_append(cache_, id, &token, -1), PAGEDKV_ERR_INVALID_ARGUMENT);
            case 10: {
                std::vector<int32_t> tokens = random_tokens(3);
                tokens[size_t(uniform(0, 2))] = config_.vocab_size > 0 && chance(50) ? config_.vocab_size : -5;
                note(format("sequence_append(%" PRId64 ", %s)", id, describe_tokens(tokens).c_str()));
                return bad_call("sequence_append(bad token id)", pagedkv_sequence_append(cache_, id, tokens.data(), 3), PAGEDKV_ERR_INVALID_ARGUMENT);
            }
            case 11: return bad_call("sequence_fork(null out)", pagedkv_sequence_fork(cache_, id, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
            case 12: return bad_getters(id, s);
            case 13: {
                void* address = nullptr;
                int32_t page = chance(50) ? -1 : config_.num_pages;
                bad_call("cache_page_address(out of range)", pagedkv_cache_page_address(cache_, page, &address), PAGEDKV_ERR_NOT_FOUND);
                return bad_call("cache_page_address(null out)", pagedkv_cache_page_address(cache_, 0, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
            }
            case 14: {
                // An empty append: a no-op or INVALID_ARGUMENT, never a change.
                note(format("sequence_append(%" PRId64 ", 0 tokens)", id));
                int32_t status = counted("sequence_append(0)", pagedkv_sequence_append(cache_, id, &token, 0));
                expect_status(status, {PAGEDKV_OK, PAGEDKV_ERR_INVALID_ARGUMENT}, "sequence_append(0 tokens)");
                if (status == PAGEDKV_OK) model_.truncate(id, s.length());  // may count as a change of batches
                return;
            }
            default: return bad_stats_calls();
        }
    }

    void bad_call(const char* what, int32_t status, int32_t expected) {
        note(what);
        counted(what, status);
        expect_status(status, {expected}, what);
    }

    // Getters with short or missing buffers: the count is still reported, nothing is written past
    // the capacity, and bad capacities are rejected.
    void bad_getters(int64_t id, const fuzz_model::Sequence& s) {
        int64_t count = -1;
        std::vector<int32_t> tokens(size_t(s.length()) + 1, -9);
        // A short capacity, or one far beyond the count (it copies min(capacity, count)).
        int64_t capacity = chance(80) ? uniform(0, s.length()) : kInt64Max;
        size_t copied = size_t(std::min(capacity, s.length()));
        note(format("sequence_get_tokens(%" PRId64 ", capacity %" PRId64 ")", id, capacity));
        expect_status(pagedkv_sequence_get_tokens(cache_, id, tokens.data(), capacity, &count), {PAGEDKV_OK},
                      "sequence_get_tokens(capacity)");
        if (count != s.length() || tokens[copied] != -9 || !std::equal(tokens.begin(), tokens.begin() + copied, s.tokens.begin()))
            fail("sequence_get_tokens with capacity %" PRId64 " of %" PRId64 " wrote wrongly", capacity, s.length());
        int32_t pages = -1;
        bad_call("sequence_get_block_table(null count)", pagedkv_sequence_get_block_table(cache_, id, nullptr, 0, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
        bad_call("sequence_get_block_table(capacity -1)", pagedkv_sequence_get_block_table(cache_, id, &pages, -1, &pages), PAGEDKV_ERR_INVALID_ARGUMENT);
        bad_call("sequence_get_tokens(null buffer)", pagedkv_sequence_get_tokens(cache_, id, nullptr, 4, &count), PAGEDKV_ERR_INVALID_ARGUMENT);
        std::vector<int64_t> slots(size_t(s.length() - s.computed) + 1, -9);
        expect_status(pagedkv_sequence_get_slot_mapping(cache_, id, slots.data(), int64_t(slots.size()), &count), {PAGEDKV_OK}, "sequence_get_slot_mapping");
        if (count != s.length() - s.computed) fail("slot mapping of %" PRId64 " positions for %" PRId64 " to compute", count, s.length() - s.computed);
        for (int64_t p = s.computed; p < s.length(); ++p)
            if (slots[size_t(p - s.computed)] != int64_t(s.block_table[size_t(p / config_.page_size)]) * config_.page_size + p % config_.page_size)
                fail("slot mapping of sequence %" PRId64 " position %" PRId64 " does not follow its block table", id, p);
        bad_call("sequence_get_slot_mapping(capacity -1)", pagedkv_sequence_get_slot_mapping(cache_, id, slots.data(), -1, &count), PAGEDKV_ERR_INVALID_ARGUMENT);
    }

    void bad_stats_calls() {
        bad_call("cache_get_stats(null out)", pagedkv_cache_get_stats(cache_, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
        bad_call("cache_get_stats(null cache)", pagedkv_cache_get_stats(nullptr, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
        // A struct_size shorter than the struct (an older caller): never a byte past it.
        unsigned char bytes[sizeof(pagedkv_cache_stats) + 8];
        std::memset(bytes, 0xAB, sizeof(bytes));
        uint32_t short_size = uint32_t(uniform(0, sizeof(pagedkv_cache_stats) - 1));
        std::memcpy(bytes, &short_size, sizeof(short_size));
        note(format("cache_get_stats(struct_size %u)", short_size));
        int32_t status = pagedkv_cache_get_stats(cache_, reinterpret_cast<pagedkv_cache_stats*>(bytes));
        expect_status(status, {PAGEDKV_OK, PAGEDKV_ERR_INVALID_ARGUMENT}, "cache_get_stats(short struct)");
        size_t untouched_from = std::max<size_t>(short_size, sizeof(uint32_t));
        for (size_t i = untouched_from; i < sizeof(bytes); ++i)
            if (bytes[i] != 0xAB) fail("cache_get_stats wrote byte %zu past struct_size %u", i, short_size);
        // Every status has its own name; only codes outside the enum share the "unknown" one.
        const std::string unknown = pagedkv_status_string(1000);
        for (int32_t code = PAGEDKV_OK; code <= PAGEDKV_ERR_STALE_BATCH; ++code)
            if (!pagedkv_status_string(code) || pagedkv_status_string(code) == unknown)
                fail("pagedkv_status_string(%d) is \"%s\"", code, pagedkv_status_string(code));
        if (!pagedkv_status_string(-1)) fail("pagedkv_status_string(-1) is null");
    }

    void op_bad_create() {
        std::string salt;
        std::vector<int32_t> prompt = random_prompt(salt);
        int64_t id = -5, cached = -5;
        int64_t n = int64_t(prompt.size());
        const uint8_t* salt_data = reinterpret_cast<const uint8_t*>("salt");
        switch (uniform(0, 7)) {
            case 0: bad_call("sequence_create(null prompt)", pagedkv_sequence_create(cache_, nullptr, n, nullptr, 0, &id, &cached), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 1: bad_call("sequence_create(0 tokens)", pagedkv_sequence_create(cache_, prompt.data(), 0, nullptr, 0, &id, &cached), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 2: bad_call("sequence_create(-3 tokens)", pagedkv_sequence_create(cache_, prompt.data(), -3, nullptr, 0, &id, &cached), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 3: bad_call("sequence_create(null salt, length 4)", pagedkv_sequence_create(cache_, prompt.data(), n, nullptr, 4, &id, &cached), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 4: bad_call("sequence_create(salt_len -1)", pagedkv_sequence_create(cache_, prompt.data(), n, salt_data, -1, &id, &cached), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 5: bad_call("sequence_create(null out id)", pagedkv_sequence_create(cache_, prompt.data(), n, nullptr, 0, nullptr, &cached), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 6: bad_call("sequence_create(null cache)", pagedkv_sequence_create(nullptr, prompt.data(), n, nullptr, 0, &id, &cached), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            default: {
                prompt[size_t(uniform(0, n - 1))] = config_.vocab_size > 0 && chance(50) ? config_.vocab_size + int32_t(uniform(0, 5)) : -1;
                note(format("sequence_create(%s)", describe_tokens(prompt).c_str()));
                bad_call("sequence_create(bad token id)", pagedkv_sequence_create(cache_, prompt.data(), n, nullptr, 0, &id, &cached), PAGEDKV_ERR_INVALID_ARGUMENT);
            }
        }
        if (id != -5 || cached != -5) fail("a failed sequence_create wrote its outputs");
    }

    void op_bad_batch_call() {
        int64_t live = pick_live();
        pagedkv_batch* out = nullptr;
        int64_t ids[3] = {live, live, dead_id()};
        pagedkv_attention_params params = kernel_params();
        std::vector<float> kv(size_t(8192 * config_.num_kv_heads * config_.head_dim), 0.0f);
        const fuzz_model::Batch* batch = model_.batches().empty() ? nullptr : &model_.batches().at(pick_batch());
        const void* handle = batch ? batch->handle : nullptr;
        bool stale = batch && batch->validity != Validity::Valid;
        // A stale batch may be reported as stale before the bad argument is looked at.
        auto bad_argument = [&](int32_t status, const char* what) {
            note(what);
            counted(what, status);
            if (stale) expect_status(status, {PAGEDKV_ERR_INVALID_ARGUMENT, PAGEDKV_ERR_STALE_BATCH}, what);
            else expect_status(status, {PAGEDKV_ERR_INVALID_ARGUMENT}, what);
        };
        switch (uniform(0, 11)) {
            case 0: bad_call("batch_create(duplicate ids)", pagedkv_batch_create(cache_, ids, 2, &out), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 1: bad_call("batch_create(dead id)", pagedkv_batch_create(cache_, ids + 1, 2, &out), PAGEDKV_ERR_NOT_FOUND); break;
            case 2: bad_call("batch_create(-1 sequences)", pagedkv_batch_create(cache_, ids, -1, &out), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 3: bad_call("batch_create(null ids)", pagedkv_batch_create(cache_, nullptr, 1, &out), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 4: bad_call("batch_create(null out)", pagedkv_batch_create(cache_, ids, 1, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 5: bad_call("batch_commit(null batch)", pagedkv_batch_commit(cache_, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 6: bad_call("batch_commit(another cache's batch)", pagedkv_batch_commit(cache_, foreign_batch_), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 7: bad_call("write_kv(another cache's batch)", pagedkv_write_kv(cache_, foreign_batch_, 0, kv.data(), kv.data(), PAGEDKV_DTYPE_F32, &params), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 8: bad_call("batch_destroy(null)", pagedkv_batch_destroy(nullptr), PAGEDKV_OK); break;
            case 9: if (!skipped("destroyed-handles")) use_destroyed_batch(kv, params); break;
            default: {
                if (!batch || batch->query_tokens() > 8192) break;
                if (stale && skipped("stale-batches")) break;
                int32_t layer = chance(50) ? -1 : config_.num_layers;
                switch (uniform(0, 3)) {
                    case 0: bad_argument(pagedkv_write_kv(cache_, as_batch(handle), layer, kv.data(), kv.data(), PAGEDKV_DTYPE_F32, &params), "write_kv(layer out of range)"); break;
                    case 1: bad_argument(pagedkv_write_kv(cache_, as_batch(handle), 0, nullptr, kv.data(), PAGEDKV_DTYPE_F32, &params), "write_kv(null k)"); break;
                    case 2: bad_argument(pagedkv_write_kv(cache_, as_batch(handle), 0, kv.data(), kv.data(), 9, &params), "write_kv(src_dtype 9)"); break;
                    default: bad_argument(pagedkv_batch_commit(sibling_, as_batch(handle)), "batch_commit(batch of another cache)"); break;
                }
                expect_batch_pages(*batch, "a rejected write_kv");
            }
        }
        if (out != nullptr) fail("a failed batch_create wrote *out_batch");
    }

    // Destroyed handles: INVALID_ARGUMENT from every function, a second destroy included.
    void use_destroyed_batch(std::vector<float>& kv, const pagedkv_attention_params& params) {
        if (destroyed_batches_.empty()) return;
        pagedkv_batch* dead = as_batch(pick(destroyed_batches_));
        pagedkv_batch_info info{};
        info.struct_size = sizeof(info);
        switch (uniform(0, 4)) {
            case 0: bad_call("batch_destroy(destroyed)", pagedkv_batch_destroy(dead), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 1: bad_call("batch_get_info(destroyed)", pagedkv_batch_get_info(dead, &info), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 2: bad_call("batch_commit(destroyed)", pagedkv_batch_commit(cache_, dead), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            case 3: bad_call("write_kv(destroyed batch)", pagedkv_write_kv(cache_, dead, 0, kv.data(), kv.data(), PAGEDKV_DTYPE_F32, &params), PAGEDKV_ERR_INVALID_ARGUMENT); break;
            default: {
                std::vector<float> out(kv.size(), -3.0f);
                bad_call("prefill_attention(destroyed batch)", pagedkv_prefill_attention(cache_, dead, 0, &params, kv.data(), out.data(), nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
            }
        }
        expect_pool("a call with a destroyed batch");
    }

    // Token counts whose arithmetic overflows, passed with a small buffer: rejected before the
    // tokens are read. And real requests larger than the pool: OUT_OF_PAGES, nothing changed.
    void op_huge_sizes() {
        int64_t id = pick_live();
        const fuzz_model::Sequence& s = model_.sequence(id);
        std::vector<int32_t> small(16, 0);
        int64_t out_id = -5;
        if (!skipped("huge-sizes")) {
            static const int64_t counts[] = {kInt64Max, kInt64Max / 2, int64_t(1) << 62, kInt64Max / 4 + 1};
            int64_t n = counts[uniform(0, 3)];
            int64_t append_count = chance(50) ? n : kInt64Max - s.length() + 1;  // the new length overflows
            note(format("sequence_create(%" PRId64 " tokens, 16-token buffer)", n));
            int32_t status = counted("sequence_create(huge)", pagedkv_sequence_create(cache_, small.data(), n, nullptr, 0, &out_id, nullptr));
            expect_status(status, {PAGEDKV_ERR_INVALID_ARGUMENT, PAGEDKV_ERR_OUT_OF_PAGES}, "sequence_create(huge count)");
            note(format("sequence_append(%" PRId64 ", %" PRId64 " tokens, 16-token buffer)", id, append_count));
            status = counted("sequence_append(huge)", pagedkv_sequence_append(cache_, id, small.data(), append_count));
            expect_status(status, {PAGEDKV_ERR_INVALID_ARGUMENT, PAGEDKV_ERR_OUT_OF_PAGES}, "sequence_append(huge count)");
        }
        // One token more than the pool can hold, in a real buffer.
        int64_t too_many = int64_t(config_.num_pages) * config_.page_size + 1;
        std::vector<int32_t> tokens(size_t(too_many), 0);
        note(format("sequence_create(%" PRId64 " tokens: more than the pool)", too_many));
        int32_t status = counted("sequence_create(too long)", pagedkv_sequence_create(cache_, tokens.data(), too_many, nullptr, 0, &out_id, nullptr));
        expect_status(status, {PAGEDKV_ERR_OUT_OF_PAGES, PAGEDKV_ERR_INVALID_ARGUMENT}, "sequence_create(longer than the pool)");
        note(format("sequence_append(%" PRId64 ", %" PRId64 " tokens: more than the pool)", id, too_many));
        status = counted("sequence_append(too long)", pagedkv_sequence_append(cache_, id, tokens.data(), too_many));
        expect_status(status, {PAGEDKV_ERR_OUT_OF_PAGES, PAGEDKV_ERR_INVALID_ARGUMENT}, "sequence_append(longer than the pool)");
        if (out_id != -5) fail("a failed sequence_create wrote *out_seq_id");
    }

    const Options& options_;
    const Configuration& config_;
    std::mt19937_64 rng_;
    fuzz_model::Model model_;
    int64_t step_ = 0;
    Totals totals_;
    std::deque<std::string> history_;
    StepExpectation expectation_;

    pagedkv_cache* cache_ = nullptr;
    pagedkv_cache* sibling_ = nullptr;  // another cache, for calls that mix handles of two caches
    pagedkv_batch* foreign_batch_ = nullptr;
    pagedkv_cache_layout layout_{};
    std::vector<float*> pages_;
    std::vector<uint64_t> element_keys_;  // fuzz_model::element_key of every (layer, kv, head, dim)
    std::vector<unsigned char> expected_pool_;  // see sync_expected_page
    std::vector<int32_t> holders_;              // per page: how many live block tables hold it
    std::vector<int32_t> table_buffer_, token_buffer_;
    int64_t pool_checked_at_step_ = 0;
    pagedkv_cache_stats stats_{};

    std::vector<std::vector<int32_t>> stems_;
    std::vector<std::pair<std::string, std::vector<int32_t>>> recent_prompts_;
    std::vector<int64_t> released_;
    std::vector<const void*> destroyed_batches_;  // in the order they were destroyed
    int64_t next_batch_serial_ = 0;
};

std::string skip_list(const Options& options);

// ---- replay context: printed on a failed check, and on a crash or sanitizer report ------------

struct Running {
    const Options* options = nullptr;
    const Episode* episode = nullptr;
    int64_t episode_index = 0;
    const char* config = "";
};
Running running;

void print_replay_context() {
    if (!running.episode) return;
    const Options& options = *running.options;
    std::fprintf(stderr, "  seed %" PRIu64 ", episode %" PRId64 " (config %s), step %" PRId64 "\n", options.seed,
                 running.episode_index, running.config, running.episode->step());
    std::fprintf(stderr, "  last calls:\n");
    for (const std::string& line : running.episode->history()) std::fprintf(stderr, "    %s\n", line.c_str());
    std::fprintf(stderr, "  reproduce: test_fuzz_api --seed %" PRIu64 " --episode %" PRId64 " --episode-ops %" PRId64 "%s%s%s%s\n",
                 options.seed, running.episode_index, options.ops_per_episode,
                 options.only_config.empty() ? "" : " --config ", options.only_config.c_str(),
                 options.skip.empty() ? "" : " --skip ", skip_list(options).c_str());
    std::fflush(stderr);
}

// A crash never reaches the failure report: print the context on the way out (best effort; the
// process is going down anyway). Under ASan the sanitizer owns the fault signals and calls us back
// before it aborts; UBSan and failed asserts end in abort().
void print_crash_context(const char* what) {
    static bool printed = false;
    if (printed) return;
    printed = true;
    std::fprintf(stderr, "\nFUZZ CRASH: %s\n", what);
    print_replay_context();
}

void install_crash_reporting() {
    auto on_signal = [](int caught) {
        print_crash_context(caught == SIGABRT ? "abort" : "fatal signal");
        std::signal(caught, SIG_DFL);
        std::raise(caught);
    };
    std::signal(SIGABRT, on_signal);
#if defined(FUZZ_UNDER_ASAN)
    __sanitizer_set_death_callback([] { print_crash_context("sanitizer report above"); });
#else
    for (int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(signal, on_signal);
#endif
}

uint64_t episode_seed(uint64_t seed, int64_t episode) { return fuzz_model::mix(seed * 0x9e3779b97f4a7c15ull + uint64_t(episode) + 1); }

std::string skip_list(const Options& options) {
    std::string list;
    for (const std::string& name : options.skip) list += (list.empty() ? "" : ",") + name;
    return list;
}

void print_totals(const Totals& totals, double seconds) {
    std::printf("fuzz: %" PRId64 " ops in %" PRId64 " episodes, %.1f s, %.0f ops/s\n", totals.ops, totals.episodes, seconds,
                seconds > 0 ? double(totals.ops) / seconds : 0.0);
    std::printf("fuzz: reuse: %" PRId64 " creates reused %" PRId64 " tokens; %" PRId64 " exact non-zero reuse checks; %" PRId64
                " evictions\n",
                totals.creates_with_reuse, totals.reused_tokens, totals.exact_reuse_checks, totals.evictions);
    std::string statuses;
    for (const auto& [status, n] : totals.statuses) statuses += format(" %s=%" PRId64, pagedkv_status_string(status), n);
    std::printf("fuzz: statuses:%s\n", statuses.c_str());
    std::string calls;
    for (const auto& [name, n] : totals.calls) calls += format(" %s=%" PRId64, name.c_str(), n);
    std::printf("fuzz: calls:%s\n", calls.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    std::vector<Configuration> configs;
    for (const Configuration& config : configurations())
        if (options.only_config.empty() || options.only_config == config.label) configs.push_back(config);
    if (configs.empty()) usage_error("no configuration is called " + options.only_config);
    if (options.only_episode >= 0)
        std::printf("fuzz: seed %" PRIu64 ", episode %" PRId64 " only (%" PRId64 " ops)", options.seed,
                    options.only_episode, options.ops_per_episode);
    else
        std::printf("fuzz: seed %" PRIu64 ", %" PRId64 " ops, %" PRId64 " per episode", options.seed, options.ops,
                    options.ops_per_episode);
    std::printf("%s%s\n", options.skip.empty() ? "" : ", skipping ", skip_list(options).c_str());
    std::fflush(stdout);
    install_crash_reporting();
    Totals totals;
    auto start = std::chrono::steady_clock::now();
    for (int64_t episode = std::max<int64_t>(0, options.only_episode); totals.ops < options.ops; ++episode) {
        const Configuration& config = configs[size_t(episode) % configs.size()];
        int64_t ops = options.only_episode >= 0 ? options.ops_per_episode
                                                : std::min(options.ops_per_episode, options.ops - totals.ops);
        Episode run(options, config, episode_seed(options.seed, episode));
        running = {&options, &run, episode, config.label};
        try {
            run.run(ops);
        } catch (const FuzzFailure& failure) {
            std::fprintf(stderr, "\nFUZZ FAILURE: %s\n", failure.what());
            print_replay_context();
            running.episode = nullptr;  // a leak report at exit must not read the episode
            return 1;
        }
        running.episode = nullptr;
        totals.add(run.totals());
        if (options.verbose)
            std::printf("fuzz: episode %" PRId64 " (%s): %" PRId64 " evictions, %" PRId64 " exact non-zero reuse checks; %" PRId64
                        " ops so far\n",
                        episode, config.label, run.totals().evictions, run.totals().exact_reuse_checks, totals.ops);
        if (options.only_episode >= 0) break;
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    print_totals(totals, seconds);
    return 0;
}
