// The tiers below the pool without a server: page objects (keys, header, verification), the host
// tier (write-back, loads, LRU within budget, prefetch, write-through), the disk tier (a second
// process reuses a first one's pages; corrupted, truncated, foreign and forged files are misses;
// a full disk is counted, never fatal). Every request's output is compared with computing it
// from scratch.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "child_process.h"
#include "tier_workload.h"
#include "tiers/page_key.h"
#include "tiers/page_object.h"

using namespace cache_test;
using namespace tier_test;
namespace fs = std::filesystem;
namespace tiers = pagedkv::tiers;

namespace {

fs::path fresh_directory(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / ("pagedkv-test-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::vector<fs::path> page_files(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.path().extension() == ".page") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// Prompts sharing stems, so later ones reuse earlier ones' full pages.
std::vector<std::vector<int32_t>> shared_prompts(std::mt19937_64& rng, int32_t page_size, int count) {
    std::vector<std::vector<int32_t>> stems;
    for (int i = 0; i < 3; ++i) stems.push_back(random_tokens(rng, size_t(page_size) * (2 + i * 2), 500));
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < count; ++i)
        prompts.push_back(concat({stems[size_t(i) % stems.size()], random_tokens(rng, 1 + rng() % (2 * page_size), 500)}));
    return prompts;
}

// Runs `prompts` on `cache`, checks every output against the reference; returns positions loaded per tier.
std::array<int64_t, PAGEDKV_TIER_COUNT> run_checked(pagedkv_cache* cache, int32_t page_size,
                                                    const std::vector<std::vector<int32_t>>& prompts) {
    std::array<int64_t, PAGEDKV_TIER_COUNT> loaded{};
    for (const auto& prompt : prompts) {
        Result r = run_request(cache, prompt);
        CHECK_EQ(r.status, PAGEDKV_OK);
        CHECK(max_difference(r.output, reference_output(page_size, prompt)) <= 1e-6f);
        int64_t from_tiers = 0;
        for (int t = 0; t < PAGEDKV_TIER_COUNT; ++t) {
            loaded[size_t(t)] += r.loaded[t];
            from_tiers += r.loaded[t];
            CHECK_EQ(r.loaded[t] % page_size, 0);  // only full pages come from below
        }
        CHECK(from_tiers <= r.cached);
        CHECK_CONSISTENT(cache);
    }
    return loaded;
}

}  // namespace

// ---- page objects ------------------------------------------------------------------------------

TEST(sha256_matches_the_standard_vector) {
    tiers::PageKey key = tiers::sha256({"a", "bc"});
    CHECK_EQ(tiers::to_hex(key), std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

TEST(page_keys_chain_over_namespace_salt_parent_and_tokens) {
    std::vector<int32_t> tokens = {1, 2, 3, 4};
    tiers::PageKey root = tiers::root_key("model-a", "");
    tiers::PageKey key = tiers::page_key(root, tokens.data(), 4);
    CHECK(key == tiers::page_key(root, tokens.data(), 4));
    CHECK(key != tiers::page_key(tiers::root_key("model-b", ""), tokens.data(), 4));
    CHECK(key != tiers::page_key(tiers::root_key("model-a", "salt"), tokens.data(), 4));
    // Namespace and salt are length-delimited: moving bytes between them changes the key.
    CHECK(tiers::root_key("ab", "c") != tiers::root_key("a", "bc"));
    std::vector<int32_t> other = {1, 2, 3, 5};
    CHECK(key != tiers::page_key(root, other.data(), 4));
    CHECK(tiers::page_key(key, tokens.data(), 4) != key);
}

TEST(page_objects_verify_and_refuse_every_mismatch) {
    std::mt19937_64 rng(11);
    for (int32_t tokens_per_page : {1, 3, 16, 64}) {
        for (int64_t payload : {int64_t(8), int64_t(1000), int64_t(1) << 16}) {
            std::vector<int32_t> tokens = random_tokens(rng, size_t(tokens_per_page));
            tiers::PageKey fingerprint = tiers::sha256({"layout", std::to_string(payload)});
            tiers::PageKey parent = tiers::sha256({"parent", std::to_string(rng())});
            tiers::ExpectedPage page{&fingerprint, &parent, tokens.data(), tokens_per_page, payload};
            std::vector<uint8_t> object(size_t(tiers::object_bytes(tokens_per_page, payload)));
            for (int64_t i = 0; i < payload; ++i)
                object[size_t(tiers::object_header_bytes(tokens_per_page) + i)] = uint8_t(rng());
            tiers::seal_object(object.data(), page);
            const int64_t size = int64_t(object.size());
            CHECK(tiers::verify_object(object.data(), size, page) == tiers::Verdict::Ok);

            auto flipped = object;
            flipped[size_t(rng() % uint64_t(payload)) + size_t(tiers::object_header_bytes(tokens_per_page))] ^= 0x10;
            CHECK(tiers::verify_object(flipped.data(), size, page) == tiers::Verdict::BadChecksum);
            CHECK(tiers::verify_object(object.data(), size - 1, page) == tiers::Verdict::WrongSize);
            CHECK(tiers::verify_object(object.data(), 20, page) == tiers::Verdict::WrongSize);
            auto bad_magic = object;
            bad_magic[0] ^= 1;
            CHECK(tiers::verify_object(bad_magic.data(), size, page) == tiers::Verdict::BadMagic);

            tiers::PageKey other_layout = tiers::sha256({"other layout"});
            tiers::ExpectedPage foreign = page;
            foreign.fingerprint = &other_layout;
            CHECK(tiers::verify_object(object.data(), size, foreign) == tiers::Verdict::OtherLayout);
            tiers::PageKey other_parent = tiers::sha256({"other parent"});
            tiers::ExpectedPage moved = page;
            moved.parent = &other_parent;
            CHECK(tiers::verify_object(object.data(), size, moved) == tiers::Verdict::OtherParent);
            std::vector<int32_t> forged = tokens;
            forged[size_t(rng() % forged.size())] ^= 1;
            tiers::ExpectedPage collision = page;
            collision.tokens = forged.data();
            CHECK(tiers::verify_object(object.data(), size, collision) == tiers::Verdict::OtherTokens);
        }
    }
}

// ---- host tier -----------------------------------------------------------------------------------

TEST(host_tier_brings_back_evicted_pages_with_the_same_outputs) {
    std::mt19937_64 rng(21);
    for (int32_t page_size : {1, 4, 16}) {
        pagedkv_cache_config config = tier_config(page_size, 10);  // about one request: evictions
        config.host_tier_bytes = int64_t(64) << 20;
        Cache cache(config);
        REQUIRE(cache.handle);
        auto prompts = shared_prompts(rng, page_size, 24);
        auto loaded = run_checked(cache, page_size, prompts);
        pagedkv_tier_stats host = tier_stats(cache, PAGEDKV_TIER_HOST);
        CHECK_EQ(host.enabled, 1);
        CHECK(loaded[PAGEDKV_TIER_HOST] > 0);
        CHECK_EQ(host.hits * page_size, loaded[PAGEDKV_TIER_HOST]);
        CHECK(host.stores > 0);
        CHECK_EQ(host.verify_failures, 0);
        CHECK(host.bytes <= host.capacity_bytes);
        CHECK_EQ(tier_stats(cache, PAGEDKV_TIER_DISK).enabled, 0);
        CHECK(stats(cache).evictions > 0);
    }
}

TEST(host_tier_evicts_lru_within_its_budget) {
    std::mt19937_64 rng(22);
    const int32_t page_size = 4;
    pagedkv_cache_config config = tier_config(page_size, 16);
    const int64_t object = tiers::object_bytes(page_size, int64_t(kLayers) * 2 * kKvHeads * page_size * kHeadDim * 4);
    config.host_tier_bytes = object * 10;
    Cache cache(config);
    REQUIRE(cache.handle);
    for (int round = 0; round < 40; ++round) run_request(cache, random_tokens(rng, 4 * page_size + 1, 500));
    pagedkv_tier_stats host = tier_stats(cache, PAGEDKV_TIER_HOST);
    CHECK_EQ(host.capacity_bytes, object * 10);
    CHECK_EQ(host.pages, 10);
    CHECK_EQ(host.bytes, object * 10);
    CHECK(host.evictions > 0);
    CHECK_EQ(host.stores, host.pages + host.evictions);
}

TEST(prefetch_brings_pages_into_the_pool_before_create) {
    std::mt19937_64 rng(23);
    const int32_t page_size = 4;
    pagedkv_cache_config config = tier_config(page_size, 64);
    config.host_tier_bytes = int64_t(16) << 20;
    Cache cache(config);
    REQUIRE(cache.handle);
    std::vector<int32_t> prompt = random_tokens(rng, 10 * page_size + 2, 500);
    run_request(cache, prompt);
    int32_t evicted = 0;
    CHECK_EQ(pagedkv_cache_clear_unused(cache, &evicted), PAGEDKV_OK);
    CHECK(evicted >= 10);
    int64_t loaded = -1;
    CHECK_EQ(pagedkv_prefetch(cache, prompt.data(), int64_t(prompt.size()), nullptr, 0, &loaded), PAGEDKV_OK);
    CHECK_EQ(loaded, 10 * page_size);
    CHECK_EQ(stats(cache).pages_cached, 10);  // cached, held by nobody
    CHECK_CONSISTENT(cache);
    Result r = run_request(cache, prompt);
    CHECK_EQ(r.cached, 10 * page_size);
    CHECK_EQ(r.loaded[PAGEDKV_TIER_HOST], 0);  // already in the pool
    CHECK(max_difference(r.output, reference_output(page_size, prompt)) <= 1e-6f);
    // Misuse is a status, not a crash.
    CHECK_EQ(pagedkv_prefetch(cache, nullptr, 3, nullptr, 0, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_prefetch(cache, prompt.data(), 0, nullptr, 0, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_prefetch(cache, prompt.data(), 3, nullptr, 2, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
    pagedkv_tier_stats s{};
    s.struct_size = sizeof(s);
    CHECK_EQ(pagedkv_cache_get_tier_stats(cache, 3, &s), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK_EQ(pagedkv_cache_get_tier_stats(cache, PAGEDKV_TIER_HOST, nullptr), PAGEDKV_ERR_INVALID_ARGUMENT);
}

TEST(bad_tier_configs_are_refused) {
    pagedkv_cache_config config = tier_config(4, 16);
    pagedkv_cache* cache = nullptr;
    config.host_tier_bytes = 100;  // holds no object
    CHECK_EQ(pagedkv_cache_create(&config, &cache), PAGEDKV_ERR_INVALID_ARGUMENT);
    config = tier_config(4, 16);
    config.disk_tier_path = "/tmp";
    config.disk_tier_bytes = 0;
    CHECK_EQ(pagedkv_cache_create(&config, &cache), PAGEDKV_ERR_INVALID_ARGUMENT);
    config = tier_config(4, 16);
    config.remote_tier = "http://localhost:6379";
    CHECK_EQ(pagedkv_cache_create(&config, &cache), PAGEDKV_ERR_INVALID_ARGUMENT);
    config.remote_tier = "redis://localhost:99999";
    CHECK_EQ(pagedkv_cache_create(&config, &cache), PAGEDKV_ERR_INVALID_ARGUMENT);
    config = tier_config(4, 16);
    config.tp_size = 2;
    config.tp_rank = 2;
    CHECK_EQ(pagedkv_cache_create(&config, &cache), PAGEDKV_ERR_INVALID_ARGUMENT);
    config = tier_config(4, 16);
    config.tier_flags = 0x80;
    CHECK_EQ(pagedkv_cache_create(&config, &cache), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(cache == nullptr);
}

TEST(namespaces_and_salts_do_not_share_page_objects) {
    std::mt19937_64 rng(24);
    const int32_t page_size = 4;
    fs::path dir = fresh_directory("namespaces");
    std::vector<int32_t> prompt = random_tokens(rng, 6 * page_size + 1, 500);
    auto config_for = [&](const char* name) {
        pagedkv_cache_config config = tier_config(page_size, 32, 0);
        config.tier_namespace = name;
        config.disk_tier_path = dir.c_str();
        config.disk_tier_bytes = int64_t(64) << 20;
        config.tier_flags = PAGEDKV_TIER_WRITE_THROUGH;
        return config;
    };
    {
        Cache first(config_for("model-a"));
        run_request(first, prompt);
    }
    {
        Cache other_model(config_for("model-b"));
        CHECK_EQ(run_request(other_model, prompt).cached, 0);
        Result salted = run_request(other_model, prompt, "tenant");
        CHECK_EQ(salted.cached, 0);
    }
    Cache same(config_for("model-a"));
    Result again = run_request(same, prompt);
    CHECK_EQ(again.cached, 6 * page_size);
    CHECK_EQ(again.loaded[PAGEDKV_TIER_DISK], 6 * page_size);
    CHECK_EQ(tier_stats(same, PAGEDKV_TIER_DISK).verify_failures, 0);
    fs::remove_all(dir);
}

// ---- disk tier -----------------------------------------------------------------------------------

namespace {

pagedkv_cache_config disk_config(int32_t page_size, const fs::path& dir, int64_t budget = int64_t(64) << 20) {
    pagedkv_cache_config config = tier_config(page_size, 10);  // about one request: evictions
    config.disk_tier_path = dir.c_str();
    config.disk_tier_bytes = budget;
    return config;
}

}  // namespace

TEST(a_second_process_reuses_the_disk_tier_of_the_first) {
    const int32_t page_size = 4;
    fs::path dir = fresh_directory("restart");
    std::mt19937_64 rng(31);
    auto prompts = shared_prompts(rng, page_size, 12);
    // The first process computes everything and exits (destroying the cache waits for its stores).
    CHECK_EQ(in_child([&] {
                 Cache cache(disk_config(page_size, dir));
                 run_checked(cache, page_size, prompts);
                 CHECK_EQ(pagedkv_cache_clear_unused(cache, nullptr), PAGEDKV_OK);  // demote what is left
             }),
             0);
    CHECK(!page_files(dir).empty());
    Cache cache(disk_config(page_size, dir));
    REQUIRE(cache.handle);
    pagedkv_tier_stats before = tier_stats(cache, PAGEDKV_TIER_DISK);
    CHECK_EQ(before.pages, int64_t(page_files(dir).size()));
    auto loaded = run_checked(cache, page_size, prompts);
    CHECK(loaded[PAGEDKV_TIER_DISK] > 0);
    // Every prompt's full stem pages were on disk: the first request of each stem loads all of them.
    Result first_again = run_request(cache, prompts[0]);
    CHECK(first_again.cached >= int64_t(prompts[0].size() - 1) / page_size * page_size - page_size * 2);
    CHECK_EQ(tier_stats(cache, PAGEDKV_TIER_DISK).verify_failures, 0);
    fs::remove_all(dir);
}

TEST(corrupted_truncated_foreign_and_forged_files_are_misses) {
    const int32_t page_size = 4;
    std::mt19937_64 rng(32);
    std::vector<int32_t> prompt = random_tokens(rng, 8 * page_size + 1, 500);
    std::vector<int32_t> other = random_tokens(rng, 8 * page_size + 1, 500);
    fs::path foreign_dir = fresh_directory("foreign");
    {   // Objects of another layout (head_dim 16): same file format, other fingerprint.
        pagedkv_cache_config config = disk_config(page_size, foreign_dir);
        config.head_dim = 16;
        config.tier_flags = PAGEDKV_TIER_WRITE_THROUGH;
        Cache foreign(config);
        int64_t id = create(foreign, prompt);
        compute(foreign, id, int64_t(prompt.size()));
        CHECK_EQ(pagedkv_sequence_release(foreign, id), PAGEDKV_OK);
    }
    auto foreign_files = page_files(foreign_dir);
    REQUIRE(!foreign_files.empty());

    enum Damage { Flip, Truncate, Extend, Foreign, Forged };
    for (Damage damage : {Flip, Truncate, Extend, Foreign, Forged}) {
        fs::path dir = fresh_directory("damage");
        {
            pagedkv_cache_config config = disk_config(page_size, dir);
            config.tier_flags = PAGEDKV_TIER_WRITE_THROUGH;
            Cache writer(config);
            run_request(writer, prompt);
            run_request(writer, other);
        }
        // Damage every object of `prompt` (those of `other` serve as forgeries).
        std::set<fs::path> of_other;
        {
            fs::path other_dir = fresh_directory("other");
            pagedkv_cache_config config = disk_config(page_size, other_dir);
            config.tier_flags = PAGEDKV_TIER_WRITE_THROUGH;
            {
                Cache only_other(config);
                run_request(only_other, other);
            }
            for (const auto& f : page_files(other_dir)) of_other.insert(dir / f.filename());
            fs::remove_all(other_dir);
        }
        std::vector<fs::path> victims;
        for (const auto& f : page_files(dir))
            if (!of_other.count(f)) victims.push_back(f);
        REQUIRE(victims.size() == 8);
        for (const fs::path& victim : victims) {
            std::vector<uint8_t> bytes = read_bytes(victim);
            switch (damage) {
                case Flip: bytes[size_t(rng() % bytes.size())] ^= uint8_t(1u << (rng() % 8)); break;
                case Truncate: bytes.resize(bytes.size() - 1 - size_t(rng() % 100)); break;
                case Extend: bytes.push_back(0); break;
                case Foreign: bytes = read_bytes(foreign_files[size_t(rng() % foreign_files.size())]); break;
                case Forged: bytes = read_bytes(*std::next(of_other.begin(), long(rng() % of_other.size()))); break;
            }
            write_bytes(victim, bytes);
        }
        {
        Cache reader(disk_config(page_size, dir));
        Result r = run_request(reader, prompt);
        CHECK_EQ(r.status, PAGEDKV_OK);
        // The first page is damaged: nothing of the prompt can be loaded.
        CHECK_EQ(r.cached, 0);
        CHECK(max_difference(r.output, reference_output(page_size, prompt)) <= 1e-6f);
        pagedkv_tier_stats disk = tier_stats(reader, PAGEDKV_TIER_DISK);
        CHECK(disk.verify_failures >= 1);  // the damaged objects of the batch asked for
        CHECK_EQ(disk.hits, 0);
        // The untouched prompt still loads.
        Result fine = run_request(reader, other);
        CHECK_EQ(fine.loaded[PAGEDKV_TIER_DISK], 8 * page_size);
        CHECK(max_difference(fine.output, reference_output(page_size, other)) <= 1e-6f);
        }  // the reader's stores are done once it is gone
        fs::remove_all(dir);
    }
    fs::remove_all(foreign_dir);
}

TEST(a_full_disk_drops_stores_and_keeps_serving) {
    const int32_t page_size = 4;
    fs::path dir = fresh_directory("full");
    std::mt19937_64 rng(33);
    auto prompts = shared_prompts(rng, page_size, 10);
    // A file size limit below one object: every write fails with EFBIG, as on a full disk.
    CHECK_EQ(in_child([&] {
                 std::signal(SIGXFSZ, SIG_IGN);
                 rlimit limit{512, 512};
                 ::setrlimit(RLIMIT_FSIZE, &limit);
                 pagedkv_cache_config config = disk_config(page_size, dir);
                 config.tier_flags = PAGEDKV_TIER_WRITE_THROUGH;
                 Cache cache(config);
                 run_checked(cache, page_size, prompts);
                 CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);
                 pagedkv_tier_stats disk = tier_stats(cache, PAGEDKV_TIER_DISK);
                 CHECK(disk.errors > 0);
                 CHECK(disk.dropped_stores > 0);
                 CHECK_EQ(disk.stores, 0);
                 CHECK_EQ(disk.pages, 0);
             }),
             0);
    CHECK(page_files(dir).empty());
    bool tmp_left = false;
    for (const auto& entry : fs::directory_iterator(dir)) tmp_left |= entry.path().string().find(".tmp.") != std::string::npos;
    CHECK(!tmp_left);
    fs::remove_all(dir);
}

TEST(a_vanished_disk_directory_is_counted_not_fatal) {
    const int32_t page_size = 4;
    fs::path dir = fresh_directory("vanished");
    std::mt19937_64 rng(34);
    auto prompts = shared_prompts(rng, page_size, 10);
    pagedkv_cache_config config = disk_config(page_size, dir);
    Cache cache(config);
    REQUIRE(cache.handle);
    run_checked(cache, page_size, {prompts[0], prompts[1]});
    // The directory is replaced by a file: every write and read now fails (ENOTDIR).
    fs::remove_all(dir);
    write_bytes(dir, {1, 2, 3});
    run_checked(cache, page_size, prompts);
    CHECK_EQ(pagedkv_cache_clear_unused(cache, nullptr), PAGEDKV_OK);
    CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);
    run_checked(cache, page_size, prompts);
    CHECK(tier_stats(cache, PAGEDKV_TIER_DISK).errors > 0);
    fs::remove(dir);
}

TEST(disk_tier_keeps_its_budget_and_demotes_from_the_host_tier) {
    const int32_t page_size = 4;
    fs::path dir = fresh_directory("budget");
    std::mt19937_64 rng(35);
    const int64_t object = tiers::object_bytes(page_size, int64_t(kLayers) * 2 * kKvHeads * page_size * kHeadDim * 4);
    pagedkv_cache_config config = disk_config(page_size, dir, object * 20);
    config.host_tier_bytes = object * 6;
    Cache cache(config);
    REQUIRE(cache.handle);
    auto prompts = shared_prompts(rng, page_size, 40);
    auto loaded = run_checked(cache, page_size, prompts);
    CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);
    pagedkv_tier_stats host = tier_stats(cache, PAGEDKV_TIER_HOST), disk = tier_stats(cache, PAGEDKV_TIER_DISK);
    CHECK(host.evictions > 0);
    CHECK(disk.stores > 0);  // what the host tier let go
    CHECK(disk.bytes <= object * 20);
    CHECK_EQ(disk.pages, int64_t(page_files(dir).size()));
    CHECK(loaded[PAGEDKV_TIER_HOST] + loaded[PAGEDKV_TIER_DISK] > 0);
    fs::remove_all(dir);
}

CHECK_MAIN
