// Tier benchmarks, each a ratio measured in one run:
//  1. Time to first token of a request whose 32k-token prefix was computed before and evicted:
//     brought back from the host tier, from the disk tier, and recomputed with the replay
//     model's attention (2 layers, 8 query heads over 2 KV heads of 64, f16 KV). Recompute is
//     attention + KV writes only (no projections, no MLP): a lower bound, so the ratios
//     understate what the tiers save.
//  2. What sequence_create of a 32k prompt costs when every tier misses, against the pool alone.
//  3. (--redis HOST:PORT) Redis store and load throughput of page objects against
//     redis-benchmark's raw SET and GET of values of the same size on the same server.
// Usage: bench_tiers [--redis HOST:PORT] [--disk DIR] [--tokens N] [--skip-recompute]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_cache_util.h"
#include "tiers/page_key.h"
#include "tiers/page_object.h"
#include "tiers/redis/remote_tier.h"

namespace {

using namespace bench;
namespace fs = std::filesystem;

constexpr int32_t kLayers = 2, kKvHeads = 2, kQoHeads = 8, kHeadDim = 64;

struct Options {
    std::string redis;  // host:port; empty: no Redis part
    fs::path disk = fs::temp_directory_path() / ("pagedkv-bench-tiers-" + std::to_string(::getpid()));
    int64_t tokens = 32768;
    bool recompute = true;
};

pagedkv_cache_config model_config(int32_t num_pages) {
    pagedkv_cache_config config{};
    config.struct_size = sizeof(config);
    config.num_layers = kLayers;
    config.num_kv_heads = kKvHeads;
    config.head_dim = kHeadDim;
    config.page_size = kPageSize;
    config.num_pages = num_pages;
    config.kv_dtype = PAGEDKV_DTYPE_F16;
    config.device_type = PAGEDKV_DEVICE_CPU;
    config.vocab_size = kVocab;
    config.tier_namespace = "bench-replay-model";
    return config;
}

int64_t object_bytes() {
    return pagedkv::tiers::object_bytes(kPageSize, int64_t(kLayers) * 2 * kKvHeads * kPageSize * kHeadDim * 2);
}

pagedkv_attention_params attention_params() {
    pagedkv_attention_params params{};
    params.struct_size = sizeof(params);
    params.num_qo_heads = kQoHeads;
    params.q_dtype = params.out_dtype = PAGEDKV_DTYPE_F32;
    return params;
}

// Writes K and V (and, with `attend`, runs prefill attention) for every position still to compute
// of sequence `id`, in every layer, and commits them.
void compute_rest(pagedkv_cache* cache, int64_t id, bool attend) {
    pagedkv_sequence_info info{};
    info.struct_size = sizeof(info);
    require(pagedkv_sequence_get_info(cache, id, &info), "get_info");
    const size_t rows = size_t(info.num_tokens - info.num_computed);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> value(-1, 1);
    std::vector<float> kv(rows * kKvHeads * kHeadDim), q(attend ? rows * kQoHeads * kHeadDim : 0), out(q.size());
    for (auto& x : kv) x = value(rng);
    for (auto& x : q) x = value(rng);
    pagedkv_attention_params params = attention_params();
    pagedkv_batch* batch = nullptr;
    require(pagedkv_batch_create(cache, &id, 1, &batch), "batch_create");
    for (int32_t layer = 0; layer < kLayers; ++layer) {
        require(pagedkv_write_kv(cache, batch, layer, kv.data(), kv.data(), PAGEDKV_DTYPE_F32, &params), "write_kv");
        if (attend)
            require(pagedkv_prefill_attention(cache, batch, layer, &params, q.data(), out.data(), nullptr), "prefill");
    }
    require(pagedkv_batch_commit(cache, batch), "batch_commit");
    pagedkv_batch_destroy(batch);
}

// Create (which loads what the tiers hold) + computing the rest: the time to the first token.
double time_to_first_token(pagedkv_cache* cache, const std::vector<int32_t>& prompt, int64_t* cached) {
    auto start = Clock::now();
    int64_t id = 0;
    require(pagedkv_sequence_create(cache, prompt.data(), int64_t(prompt.size()), nullptr, 0, &id, cached), "create");
    compute_rest(cache, id, true);
    double seconds = seconds_since(start);
    require(pagedkv_sequence_release(cache, id), "release");
    return seconds;
}

void ttft(const Options& o) {
    std::mt19937_64 rng(1);
    std::vector<int32_t> prompt = random_tokens(rng, size_t(o.tokens));
    const int32_t pages = int32_t(o.tokens / kPageSize) + 16;
    const int64_t prefix_bytes = (o.tokens / kPageSize) * object_bytes();
    std::printf("1. time to first token of a %lld-token prompt whose prefix was computed and evicted\n"
                "   (replay model attention: %d layers, %d query heads over %d KV heads of %d, f16 KV: %.1f MiB)\n",
                (long long)o.tokens, kLayers, kQoHeads, kKvHeads, kHeadDim, double(prefix_bytes) / (1 << 20));
    int64_t cached = 0;
    double recompute_s = 0;
    if (o.recompute) {
        {
            pagedkv_cache_config config = model_config(pages);
            pagedkv_cache* cache = nullptr;
            require(pagedkv_cache_create(&config, &cache), "cache_create");
            recompute_s = time_to_first_token(cache, prompt, &cached);
            pagedkv_cache_destroy(cache);
        }
        std::printf("   recompute (prefill attention)   %9.3f s   cached %lld\n", recompute_s, (long long)cached);
    }
    for (int32_t tier : {PAGEDKV_TIER_HOST, PAGEDKV_TIER_DISK}) {
        pagedkv_cache_config config = model_config(pages);
        const std::string dir = o.disk.string();
        if (tier == PAGEDKV_TIER_HOST) {
            config.host_tier_bytes = prefix_bytes + (prefix_bytes >> 2);
        } else {
            fs::remove_all(o.disk);
            config.disk_tier_path = dir.c_str();
            config.disk_tier_bytes = prefix_bytes * 2;
        }
        pagedkv_cache* cache = nullptr;
        require(pagedkv_cache_create(&config, &cache), "cache_create");
        // The prefix computed once (KV writes only: its values do not matter here), then evicted.
        int64_t id = create(cache, prompt);
        compute_rest(cache, id, false);
        require(pagedkv_sequence_release(cache, id), "release");
        require(pagedkv_cache_clear_unused(cache, nullptr), "clear_unused");
        require(pagedkv_cache_flush_tiers(cache), "flush_tiers");
        double s = time_to_first_token(cache, prompt, &cached);
        pagedkv_tier_stats stats{};
        stats.struct_size = sizeof(stats);
        require(pagedkv_cache_get_tier_stats(cache, tier, &stats), "tier_stats");
        std::printf("   from the %s tier               %9.3f s   cached %lld: %lld pages loaded in %.3f s (%.2f GB/s)",
                    tier == PAGEDKV_TIER_HOST ? "host" : "disk", s, (long long)cached, (long long)stats.hits,
                    stats.load_ns * 1e-9, double(stats.load_bytes) / double(std::max<int64_t>(stats.load_ns, 1)));
        if (o.recompute) std::printf("; %.1fx faster than recompute", recompute_s / s);
        std::printf("\n");
        pagedkv_cache_destroy(cache);
    }
    std::printf("   (disk: the files were just written, so the OS page cache likely still holds them)\n");
    fs::remove_all(o.disk);
}

// Medians of create (+ release, untimed) of fresh random prompts that nothing holds, on each
// of `configs`, the caches taking turns sample by sample so that the load of other processes on
// the machine falls on all of them alike.
std::vector<double> create_miss_seconds(const std::vector<pagedkv_cache_config>& configs, int64_t tokens) {
    std::vector<pagedkv_cache*> caches(configs.size(), nullptr);
    for (size_t c = 0; c < configs.size(); ++c) require(pagedkv_cache_create(&configs[c], &caches[c]), "cache_create");
    std::mt19937_64 rng(2);
    std::vector<std::vector<double>> samples(configs.size());
    for (int round = 0; round < 41; ++round) {
        for (size_t c = 0; c < caches.size(); ++c) {
            std::vector<int32_t> prompt = random_tokens(rng, size_t(tokens));
            auto start = Clock::now();
            int64_t id = create(caches[c], prompt);
            samples[c].push_back(seconds_since(start));
            require(pagedkv_sequence_release(caches[c], id), "release");
        }
    }
    std::vector<double> medians;
    for (size_t c = 0; c < caches.size(); ++c) {
        std::sort(samples[c].begin(), samples[c].end());
        medians.push_back(samples[c][samples[c].size() / 2]);
        pagedkv_cache_destroy(caches[c]);
    }
    return medians;
}

void miss_cost(const Options& o) {
    const int32_t pages = int32_t(o.tokens / kPageSize) + 16;
    pagedkv_cache_config pool_only = model_config(pages);
    pagedkv_cache_config local = pool_only;
    local.host_tier_bytes = int64_t(64) << 20;
    const std::string dir = o.disk.string();
    local.disk_tier_path = dir.c_str();
    local.disk_tier_bytes = int64_t(64) << 20;
    std::vector<pagedkv_cache_config> configs = {pool_only, local};
    const std::string url = "redis://" + o.redis;
    if (!o.redis.empty()) {
        configs.push_back(local);
        configs.back().remote_tier = url.c_str();
    }
    std::vector<double> t = create_miss_seconds(configs, o.tokens);
    std::printf("\n2. sequence_create of a %lld-token prompt nothing holds (medians of 41, the caches taking turns)\n",
                (long long)o.tokens);
    std::printf("   pool only                      %9.2f us\n", t[0] * 1e6);
    std::printf("   + host and disk tiers, missing %9.2f us   (+%.1f%%)\n", t[1] * 1e6, (t[1] / t[0] - 1) * 100);
    if (t.size() > 2)
        std::printf("   + Redis, every tier missing    %9.2f us   (+%.1f%%; one pipelined round trip)\n", t[2] * 1e6,
                    (t[2] / t[0] - 1) * 100);
    fs::remove_all(o.disk);
}

// Parses the "requests per second" column of `redis-benchmark --csv` for one test.
double redis_benchmark_rps(const std::string& host, const std::string& port, const char* test, int64_t size,
                           int pipeline, int count) {
    std::string cmd = "redis-benchmark -h " + host + " -p " + port + " -t " + test + " -d " + std::to_string(size) +
                      " -n " + std::to_string(count) + " -c 1 -P " + std::to_string(pipeline) + " --csv 2>/dev/null";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    if (pipe == nullptr) return 0;
    char line[512];
    double rps = 0;
    while (std::fgets(line, sizeof line, pipe) != nullptr) {
        const char* quote = std::strstr(line, "\",\"");
        if (std::strncmp(line, "\"", 1) == 0 && quote != nullptr && std::strstr(line, "\"rps\"") == nullptr)
            rps = std::atof(quote + 3);
    }
    ::pclose(pipe);
    return rps;
}

void redis_throughput(const Options& o) {
    const size_t colon = o.redis.rfind(':');
    const std::string host = o.redis.substr(0, colon), port = o.redis.substr(colon + 1);
    const int64_t size = object_bytes();
    const int count = 4000, batch = 16;
    pagedkv::tiers::RemoteTier::Options options;
    options.url = "redis://" + o.redis;
    pagedkv::tiers::RemoteTier tier(options);
    std::vector<pagedkv::tiers::PageKey> keys(static_cast<size_t>(count));
    std::vector<uint8_t> bytes(size_t(size), 7);
    for (int i = 0; i < count; ++i) keys[size_t(i)] = pagedkv::tiers::sha256({"bench", std::to_string(i)});
    auto start = Clock::now();
    for (int i = 0; i < count; ++i) tier.store(keys[size_t(i)], pagedkv::tiers::copy_object(bytes.data(), size));
    tier.flush();
    const double store_rps = count / seconds_since(start);
    start = Clock::now();
    int64_t found = 0;
    for (int i = 0; i < count; i += batch) {
        std::vector<pagedkv::tiers::PageObject> objects(static_cast<size_t>(batch));
        tier.fetch(keys.data() + i, batch, objects);
        for (auto& object : objects) found += object ? 1 : 0;
    }
    const double load_rps = count / seconds_since(start);
    const double set_rps = redis_benchmark_rps(host, port, "set", size, 1, count);
    const double get_rps = redis_benchmark_rps(host, port, "get", size, batch, count);
    std::printf("\n3. Redis at %s, page objects of %lld bytes (%d of them; %lld found on load)\n", o.redis.c_str(),
                (long long)size, count, (long long)found);
    std::printf("   store (I/O thread, one SET per round trip)   %9.0f objects/s   raw SET (-c 1 -P 1) %9.0f/s: %.2f of raw\n",
                store_rps, set_rps, set_rps > 0 ? store_rps / set_rps : 0);
    std::printf("   load (batches of %d, pipelined GETs)         %9.0f objects/s   raw GET (-c 1 -P %d) %9.0f/s: %.2f of raw\n",
                batch, load_rps, batch, get_rps, get_rps > 0 ? load_rps / get_rps : 0);
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--redis" && i + 1 < argc) o.redis = argv[++i];
        else if (arg == "--disk" && i + 1 < argc) o.disk = argv[++i];
        else if (arg == "--tokens" && i + 1 < argc) o.tokens = std::atoll(argv[++i]);
        else if (arg == "--skip-recompute") o.recompute = false;
        else {
            std::fprintf(stderr, "usage: bench_tiers [--redis HOST:PORT] [--disk DIR] [--tokens N] [--skip-recompute]\n");
            return 2;
        }
    }
    std::printf("pagedkv tier benchmarks (page_size %d, CPU pool)\n\n", kPageSize);
    ttft(o);
    miss_cost(o);
    if (!o.redis.empty()) redis_throughput(o);
    return 0;
}
