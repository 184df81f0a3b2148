// The remote tier against real Redis servers the test starts itself: two caches in two processes
// sharing one server and one 3-node cluster (the second reuses the first's pages with the same
// outputs), MOVED after a reshard and ASK during a slot migration, a server killed mid-workload
// and restarted, a server unreachable from the start, a server slower than the timeout, and
// objects damaged in Redis (a flipped byte, truncated, another layout, another page's object
// under the walk's key): each a miss, every output equal to computing from scratch. Prefetch
// loads on the cache's I/O thread: then a pool hit; while the server sleeps or after it died,
// prefetches return, creates give up at the timeout, and destroy stops the loads in flight.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <random>
#include <set>

#include "child_process.h"
#include "redis_servers.h"
#include "tier_workload.h"
#include "tiers/redis/key_slot.h"
#include "tiers/redis/redis_client.h"

using namespace cache_test;
using namespace tier_test;
using namespace redis_test;

namespace {

fs::path scratch(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / ("pagedkv-redis-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

pagedkv_cache_config remote_config(int32_t page_size, const std::string& url, uint32_t flags = PAGEDKV_TIER_WRITE_THROUGH) {
    pagedkv_cache_config config = tier_config(page_size, 10);  // about one request: evictions
    config.remote_tier = url.c_str();
    config.tier_flags = flags;
    config.tier_timeout_ms = 500;
    return config;
}

std::vector<std::vector<int32_t>> workload(uint64_t seed, int32_t page_size, int count) {
    std::mt19937_64 rng(seed);
    std::vector<std::vector<int32_t>> stems;
    for (int i = 0; i < 3; ++i) stems.push_back(random_tokens(rng, size_t(page_size) * (3 + 2 * i), 700));
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < count; ++i)
        prompts.push_back(concat({stems[size_t(i) % stems.size()], random_tokens(rng, 1 + rng() % (2 * page_size), 700)}));
    return prompts;
}

// Runs every prompt, checks each output against the reference; returns the positions loaded from Redis.
int64_t run_checked(pagedkv_cache* cache, int32_t page_size, const std::vector<std::vector<int32_t>>& prompts) {
    int64_t remote = 0;
    for (const auto& prompt : prompts) {
        Result r = run_request(cache, prompt);
        CHECK_EQ(r.status, PAGEDKV_OK);
        float difference = max_difference(r.output, reference_output(page_size, prompt));
        if (difference > 1e-6f) std::fprintf(stderr, "  output differs by %g\n", double(difference));
        CHECK(difference <= 1e-6f);
        CHECK(r.loaded[PAGEDKV_TIER_REMOTE] <= r.cached);
        remote += r.loaded[PAGEDKV_TIER_REMOTE];
        CHECK_CONSISTENT(cache);
    }
    return remote;
}

// A first process computes `prompts` and stores them; this process's fresh cache then reuses them.
void two_processes_share(const std::string& url, int32_t page_size, uint64_t seed) {
    auto prompts = workload(seed, page_size, 9);
    CHECK_EQ(in_child([&] {
                 Cache first(remote_config(page_size, url));
                 run_checked(first, page_size, prompts);
                 CHECK_EQ(pagedkv_cache_flush_tiers(first), PAGEDKV_OK);
                 pagedkv_tier_stats remote = tier_stats(first, PAGEDKV_TIER_REMOTE);
                 CHECK(remote.stores > 0);
                 CHECK_EQ(remote.errors, 0);
             }),
             0);
    Cache second(remote_config(page_size, url, 0));
    REQUIRE(second.handle);
    int64_t remote = run_checked(second, page_size, prompts);
    // Each stem's full pages (all but what the last token needs) come from Redis the first time.
    CHECK(remote >= int64_t(3 + 5 + 7) * page_size - 3 * page_size);
    pagedkv_tier_stats stats = tier_stats(second, PAGEDKV_TIER_REMOTE);
    CHECK_EQ(stats.hits * page_size, remote);
    CHECK_EQ(stats.verify_failures, 0);
    CHECK_EQ(stats.errors, 0);
}

}  // namespace

TEST(two_processes_share_one_redis) {
    fs::path dir = scratch("single");
    RedisServer server(dir, false);
    for (int32_t page_size : {1, 4, 16}) two_processes_share("redis://" + server.address(), page_size, 100 + page_size);
    CHECK(!page_keys(server.port()).empty());
    server.stop();
    fs::remove_all(dir);
}

TEST(two_processes_share_one_redis_cluster) {
    fs::path dir = scratch("cluster");
    RedisCluster cluster(dir);
    REQUIRE(cluster.formed());
    for (int32_t page_size : {1, 4}) two_processes_share(cluster.url(), page_size, 200 + page_size);
    // Keys are spread by slot over the three masters, not sent to one.
    for (size_t i = 0; i < cluster.size(); ++i) CHECK(!page_keys(cluster.node(i).port()).empty());
    // One seed is enough: the others are learned from CLUSTER SLOTS.
    auto prompts = workload(201, 1, 9);
    Cache one_seed(remote_config(1, "redis://" + cluster.node(2).address(), 0));
    CHECK(run_checked(one_seed, 1, prompts) > 0);
    fs::remove_all(dir);
}

TEST(moved_after_a_reshard_and_ask_during_a_migration_are_followed) {
    fs::path dir = scratch("reshard");
    RedisCluster cluster(dir);
    REQUIRE(cluster.formed());
    const int32_t page_size = 4;
    auto prompts = workload(300, page_size, 9);
    {
        Cache writer(remote_config(page_size, cluster.url()));
        run_checked(writer, page_size, prompts);
    }
    Cache reader(remote_config(page_size, cluster.url(), 0));
    REQUIRE(reader.handle);
    run_request(reader, random_tokens(*std::make_unique<std::mt19937_64>(1), 9, 700));  // learns the slots
    // Move every slot of node 0 to node 1 (keys included): the reader's slot table is now stale.
    std::string node1_id = text(command(cluster.node(1).port(), {"CLUSTER", "MYID"}));
    std::string node0_id = text(command(cluster.node(0).port(), {"CLUSTER", "MYID"}));
    std::string cmd = find_binary("redis-cli") + " --cluster reshard " + cluster.node(0).address() +
                      " --cluster-from " + node0_id + " --cluster-to " + node1_id +
                      " --cluster-slots 5461 --cluster-yes > " + (dir / "reshard.log").string() + " 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    CHECK(page_keys(cluster.node(0).port()).empty());
    int64_t remote = run_checked(reader, page_size, prompts);
    CHECK(remote >= int64_t(3 + 5 + 7 - 3) * page_size);
    CHECK_EQ(tier_stats(reader, PAGEDKV_TIER_REMOTE).errors, 0);

    // ASK: a key migrated while its slot is MIGRATING at the source and IMPORTING at the target.
    using pagedkv::tiers::redis::RedisClient;
    RedisClient client({Endpoint{"127.0.0.1", cluster.node(1).port()}}, 1000);
    std::vector<Reply> replies;
    std::string error;
    const std::string key = "pagedkv:test:ask";
    client.run({{"SET", key, "value"}}, replies, error);
    REQUIRE(replies[0] != nullptr);
    const std::string slot = std::to_string(pagedkv::tiers::redis::key_slot(key));
    int source = -1;
    for (int i = 0; i < 3; ++i)
        if (text(command(cluster.node(size_t(i)).port(), {"GET", key})) == "value") source = i;
    REQUIRE(source >= 0);
    int target = -1;  // another master (the reshard made node 0 a replica of node 1)
    for (int i = 0; i < 3; ++i) {
        Reply role = command(cluster.node(size_t(i)).port(), {"ROLE"});
        if (i != source && role && role->type == REDIS_REPLY_ARRAY &&
            std::string(role->element[0]->str, size_t(role->element[0]->len)) == "master")
            target = i;
    }
    REQUIRE(target >= 0);
    RedisServer& from = cluster.node(size_t(source));
    RedisServer& to = cluster.node(size_t(target));
    std::string from_id = text(command(from.port(), {"CLUSTER", "MYID"}));
    std::string to_id = text(command(to.port(), {"CLUSTER", "MYID"}));
    CHECK_EQ(text(command(to.port(), {"CLUSTER", "SETSLOT", slot, "IMPORTING", from_id})), std::string("OK"));
    CHECK_EQ(text(command(from.port(), {"CLUSTER", "SETSLOT", slot, "MIGRATING", to_id})), std::string("OK"));
    const std::string to_port = std::to_string(to.port());
    CHECK_EQ(text(command(from.port(), {"MIGRATE", "127.0.0.1", to_port, key, "0", "5000"})), std::string("OK"));
    CHECK(text(command(from.port(), {"GET", key})).rfind("ASK", 0) == 0);
    client.run({{"GET", key}}, replies, error);
    REQUIRE(replies[0] != nullptr);
    CHECK_EQ(text(replies[0]), std::string("value"));
    fs::remove_all(dir);
}

TEST(redis_killed_mid_workload_and_restarted) {
    fs::path dir = scratch("kill");
    auto server = std::make_unique<RedisServer>(dir, false);
    const int port = server->port();
    const std::string url = "redis://" + server->address();
    const int32_t page_size = 4;
    auto prompts = workload(400, page_size, 12);
    Cache cache(remote_config(page_size, url));
    REQUIRE(cache.handle);
    run_checked(cache, page_size, {prompts.begin(), prompts.begin() + 4});
    server->kill();
    run_checked(cache, page_size, prompts);  // from the pool only, recomputing the rest
    CHECK(tier_stats(cache, PAGEDKV_TIER_REMOTE).errors > 0);
    server = std::make_unique<RedisServer>(dir, false, port);  // empty: no persistence
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // past the longest backoff
    pagedkv_tier_stats before = tier_stats(cache, PAGEDKV_TIER_REMOTE);
    auto fresh = workload(401, page_size, 6);
    run_checked(cache, page_size, fresh);
    CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);
    CHECK(tier_stats(cache, PAGEDKV_TIER_REMOTE).stores > before.stores);  // reconnected
    Cache other(remote_config(page_size, url, 0));
    CHECK(run_checked(other, page_size, fresh) > 0);
    fs::remove_all(dir);
}

TEST(redis_unreachable_from_the_start) {
    const int32_t page_size = 4;
    const std::string url = "redis://127.0.0.1:" + std::to_string(free_port());
    Cache cache(remote_config(page_size, url));
    REQUIRE(cache.handle);
    auto prompts = workload(500, page_size, 12);
    CHECK_EQ(run_checked(cache, page_size, prompts), 0);
    CHECK_EQ(pagedkv_cache_flush_tiers(cache), PAGEDKV_OK);
    pagedkv_tier_stats remote = tier_stats(cache, PAGEDKV_TIER_REMOTE);
    CHECK(remote.errors > 0);
    CHECK(remote.dropped_stores > 0);
    CHECK_EQ(remote.stores, 0);
}

TEST(redis_slower_than_the_timeout_is_a_miss) {
    fs::path dir = scratch("slow");
    RedisServer server(dir, false);
    const int32_t page_size = 4;
    auto prompts = workload(600, page_size, 6);
    {
        Cache writer(remote_config(page_size, "redis://" + server.address()));
        run_checked(writer, page_size, prompts);
    }
    Cache reader(remote_config(page_size, "redis://" + server.address(), 0));
    // The server sleeps 3 s; the reader's calls give up after their 500 ms timeout.
    auto sleeper = std::async(std::launch::async, [&] { command(server.port(), {"DEBUG", "SLEEP", "3"}); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Result r = run_request(reader, prompts[0]);
    CHECK_EQ(r.status, PAGEDKV_OK);
    CHECK_EQ(r.loaded[PAGEDKV_TIER_REMOTE], 0);
    CHECK(max_difference(r.output, reference_output(page_size, prompts[0])) <= 1e-6f);
    CHECK(std::future_status::timeout == sleeper.wait_for(std::chrono::milliseconds(0)));  // still asleep
    sleeper.wait();
    CHECK(tier_stats(reader, PAGEDKV_TIER_REMOTE).errors > 0);
    fs::remove_all(dir);
}

TEST(damaged_objects_in_redis_are_misses) {
    fs::path dir = scratch("damage");
    RedisServer server(dir, false);
    const std::string url = "redis://" + server.address();
    const int32_t page_size = 4;
    std::mt19937_64 rng(700);
    std::vector<int32_t> prompt = random_tokens(rng, 6 * page_size + 1, 700);
    std::vector<int32_t> other = random_tokens(rng, 6 * page_size + 1, 700);
    // Objects of another layout, and of `other` (to forge with).
    std::vector<std::string> foreign_values, other_keys;
    {
        pagedkv_cache_config config = remote_config(page_size, url);
        config.head_dim = 16;
        Cache foreign(config);
        int64_t id = create(foreign, prompt);
        compute(foreign, id, int64_t(prompt.size()));
        CHECK_EQ(pagedkv_cache_flush_tiers(foreign), PAGEDKV_OK);
        for (const auto& key : page_keys(server.port())) foreign_values.push_back(text(command(server.port(), {"GET", key})));
        CHECK_EQ(text(command(server.port(), {"FLUSHALL"})), std::string("OK"));
        Cache writer(remote_config(page_size, url));
        run_request(writer, other);
        CHECK_EQ(pagedkv_cache_flush_tiers(writer), PAGEDKV_OK);
        other_keys = page_keys(server.port());
    }
    REQUIRE(!foreign_values.empty() && other_keys.size() == 6);
    for (const char* damage : {"flip", "truncate", "foreign", "forged"}) {
        {
            Cache writer(remote_config(page_size, url));
            run_request(writer, prompt);
        }
        std::set<std::string> keep(other_keys.begin(), other_keys.end());
        int damaged = 0;
        for (const auto& key : page_keys(server.port())) {
            if (keep.count(key)) continue;
            std::string value = text(command(server.port(), {"GET", key}));
            if (std::string(damage) == "flip") value[rng() % value.size()] ^= char(1 << (rng() % 8));
            else if (std::string(damage) == "truncate") value.resize(value.size() / 2);
            else if (std::string(damage) == "foreign") value = foreign_values[rng() % foreign_values.size()];
            else value = text(command(server.port(), {"GET", other_keys[rng() % other_keys.size()]}));
            CHECK_EQ(text(command(server.port(), {"SET", key, value})), std::string("OK"));
            ++damaged;
        }
        CHECK_EQ(damaged, 6);
        Cache reader(remote_config(page_size, url, 0));
        Result r = run_request(reader, prompt);
        CHECK_EQ(r.cached, 0);
        CHECK(max_difference(r.output, reference_output(page_size, prompt)) <= 1e-6f);
        pagedkv_tier_stats remote = tier_stats(reader, PAGEDKV_TIER_REMOTE);
        CHECK(remote.verify_failures >= 1);
        CHECK_EQ(remote.hits, 0);
        Result fine = run_request(reader, other);
        CHECK_EQ(fine.loaded[PAGEDKV_TIER_REMOTE], 6 * page_size);
        CHECK(max_difference(fine.output, reference_output(page_size, other)) <= 1e-6f);
        // Forget the damaged objects before the next kind of damage.
        for (const auto& key : page_keys(server.port()))
            if (!keep.count(key)) command(server.port(), {"DEL", key});
    }
    fs::remove_all(dir);
}

TEST(prefetch_from_redis_then_create_and_prefetch_while_it_sleeps_or_dies) {
    fs::path dir = scratch("prefetch");
    auto server = std::make_unique<RedisServer>(dir, false);
    const std::string url = "redis://" + server->address();
    const int32_t page_size = 4;
    auto prompts = workload(700, page_size, 6);
    {
        Cache writer(remote_config(page_size, url));
        run_checked(writer, page_size, prompts);
        CHECK_EQ(pagedkv_cache_flush_tiers(writer), PAGEDKV_OK);
    }
    {
        // Prefetch, wait for it, create: a pool hit with the outputs of computing from scratch.
        Cache reader(remote_config(page_size, url, 0));
        REQUIRE(reader.handle);
        const auto& prompt = prompts[2];
        const int64_t pages = int64_t(prompt.size() - 1) / page_size;
        int64_t loaded = -1;
        CHECK_EQ(pagedkv_prefetch(reader, prompt.data(), int64_t(prompt.size()), nullptr, 0, &loaded), PAGEDKV_OK);
        CHECK_EQ(loaded, 0);  // Redis is read on the loader's thread
        CHECK_EQ(pagedkv_cache_flush_tiers(reader), PAGEDKV_OK);
        CHECK_EQ(stats(reader).pages_cached, pages);
        Result r = run_request(reader, prompt);
        CHECK_EQ(r.cached, pages * page_size);
        CHECK_EQ(r.loaded[PAGEDKV_TIER_REMOTE], 0);
        CHECK(max_difference(r.output, reference_output(page_size, prompt)) <= 1e-6f);
        CHECK_EQ(tier_stats(reader, PAGEDKV_TIER_REMOTE).hits, pages);
        CHECK_CONSISTENT(reader);
    }
    {
        // The server sleeps 3 s: prefetches return, the create waiting for the load gives up at
        // the 500 ms timeout and recomputes, and the cache is destroyed with loads in flight.
        Cache reader(remote_config(page_size, url, 0));
        REQUIRE(reader.handle);
        auto sleeper = std::async(std::launch::async, [&] { command(server->port(), {"DEBUG", "SLEEP", "3"}); });
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        for (const auto& prompt : prompts)
            CHECK_EQ(pagedkv_prefetch(reader, prompt.data(), int64_t(prompt.size()), nullptr, 0, nullptr), PAGEDKV_OK);
        Result r = run_request(reader, prompts[0]);
        CHECK_EQ(r.status, PAGEDKV_OK);
        CHECK_EQ(r.loaded[PAGEDKV_TIER_REMOTE], 0);
        CHECK(max_difference(r.output, reference_output(page_size, prompts[0])) <= 1e-6f);
        CHECK(std::future_status::timeout == sleeper.wait_for(std::chrono::milliseconds(0)));  // still asleep
        pagedkv_cache* cache = reader.handle;
        reader.handle = nullptr;
        CHECK_EQ(pagedkv_cache_destroy(cache), PAGEDKV_OK);  // the loads in flight stop
        sleeper.wait();
    }
    {
        // Killed with prefetches queued: errors counted, outputs right.
        Cache reader(remote_config(page_size, url, 0));
        REQUIRE(reader.handle);
        server->kill();
        for (const auto& prompt : prompts)
            CHECK_EQ(pagedkv_prefetch(reader, prompt.data(), int64_t(prompt.size()), nullptr, 0, nullptr), PAGEDKV_OK);
        run_checked(reader, page_size, prompts);
        CHECK_EQ(pagedkv_cache_flush_tiers(reader), PAGEDKV_OK);
        CHECK(tier_stats(reader, PAGEDKV_TIER_REMOTE).errors > 0);
        CHECK_EQ(tier_stats(reader, PAGEDKV_TIER_REMOTE).hits, 0);
    }
    fs::remove_all(dir);
}

int main(int argc, char** argv) {
    require_binaries();
    return check::run_all(argc, argv);
}
