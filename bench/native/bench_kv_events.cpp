// KV-event benchmarks: what publishing adds to a commit (per committed page: nobody listening, a
// no-op C callback, the ZeroMQ publisher with a live subscriber draining it), how many events per
// second the publisher sustains to a live subscriber, and pagedkv_match_length on a cached
// 32k-token prompt against the walk of sequence_create (create + release, and create alone).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#ifdef PAGEDKV_WITH_ZMQ
#include <unistd.h>
#include <zmq.h>
#endif

#include "bench_cache_util.h"
#include "pagedkv.h"

namespace {

using namespace bench;

double median(std::vector<double> times) {
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

void noop_callback(const pagedkv_event_batch*, void*) {}

#ifdef PAGEDKV_WITH_ZMQ
// A subscriber on its own thread that receives (and counts) until stopped.
class LiveSubscriber {
public:
    explicit LiveSubscriber(const std::string& endpoint) {
        context_ = zmq_ctx_new();
        socket_ = zmq_socket(context_, ZMQ_SUB);
        zmq_setsockopt(socket_, ZMQ_SUBSCRIBE, "", 0);
        int timeout = 50;
        zmq_setsockopt(socket_, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        zmq_connect(socket_, endpoint.c_str());
        thread_ = std::thread([this] {
            std::vector<char> buffer(1 << 20);
            while (!stop_) {
                int more = 0;
                size_t size = sizeof more;
                if (zmq_recv(socket_, buffer.data(), buffer.size(), 0) < 0) continue;
                zmq_getsockopt(socket_, ZMQ_RCVMORE, &more, &size);
                if (!more) messages_.fetch_add(1, std::memory_order_relaxed);
            }
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // ZeroMQ subscribes asynchronously
    }
    ~LiveSubscriber() {
        stop_ = true;
        thread_.join();
        int linger = 0;
        zmq_setsockopt(socket_, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(socket_);
        zmq_ctx_term(context_);
    }
    int64_t messages() const { return messages_.load(); }

private:
    void* context_;
    void* socket_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<int64_t> messages_{0};
};

std::string bench_endpoint(const char* name) { return "ipc:///tmp/pagedkv-bench-" + std::to_string(getpid()) + name; }

pagedkv_event_publisher* publish(pagedkv_cache* cache, const std::string& endpoint) {
    pagedkv_event_publisher_config config{};
    config.struct_size = sizeof(config);
    config.endpoint = endpoint.c_str();
    config.topic = "kv@pagedkv";
    pagedkv_event_publisher* publisher = nullptr;
    require(pagedkv_event_publisher_create(cache, &config, &publisher), "publisher_create");
    return publisher;
}

pagedkv_event_publisher_stats publisher_stats(pagedkv_event_publisher* publisher) {
    pagedkv_event_publisher_stats s{};
    s.struct_size = sizeof(s);
    require(pagedkv_event_publisher_get_stats(publisher, &s), "publisher_stats");
    return s;
}
#endif

enum class Mode { Off, Callback, Zmq };
const char* mode_name(Mode mode) {
    return mode == Mode::Off ? "nobody listening" : mode == Mode::Callback ? "no-op C callback" : "ZeroMQ + live subscriber";
}

// Median time per committed page for each mode, `pages_per_commit` FULL pages per
// pagedkv_sequence_commit. The modes take turns on one cache in blocks of 100 commits, so that
// whatever else runs on the machine disturbs them alike.
std::vector<double> commit_ns_per_page(const std::vector<Mode>& modes, int32_t pages_per_commit, std::mt19937_64& rng) {
    const int32_t pool = 16384, rounds = 30, block = 100;
    pagedkv_cache* cache = make_cache(pool);
#ifdef PAGEDKV_WITH_ZMQ
    std::string endpoint = bench_endpoint("-commit");
    LiveSubscriber subscriber(endpoint);
#endif
    std::vector<std::vector<double>> times(modes.size());
    const int64_t tokens = int64_t(pages_per_commit) * kPageSize;
    int64_t id = create(cache, random_tokens(rng, size_t(tokens + 1)));
    for (int32_t round = 0; round < rounds; ++round) {
        for (size_t m = 0; m < modes.size(); ++m) {
#ifdef PAGEDKV_WITH_ZMQ
            pagedkv_event_publisher* publisher = modes[m] == Mode::Zmq ? publish(cache, endpoint) : nullptr;
#endif
            if (modes[m] == Mode::Callback) require(pagedkv_cache_set_event_callback(cache, noop_callback, nullptr), "callback");
            for (int32_t i = 0; i < block; ++i) {
                pagedkv_sequence_info info{};
                info.struct_size = sizeof(info);
                require(pagedkv_sequence_get_info(cache, id, &info), "info");
                if (info.num_pages + pages_per_commit + 2 > pool / 2) {  // start over: keep the pool from filling
                    require(pagedkv_sequence_release(cache, id), "release");
                    int32_t evicted = 0;
                    require(pagedkv_cache_clear_unused(cache, &evicted), "clear");
                    id = create(cache, random_tokens(rng, size_t(tokens + 1)));
                } else {
                    auto more = random_tokens(rng, size_t(tokens));
                    require(pagedkv_sequence_append(cache, id, more.data(), tokens), "append");
                }
                require(pagedkv_sequence_get_info(cache, id, &info), "info");
                int64_t upto = (info.num_tokens - 1) / kPageSize * kPageSize;  // whole pages only
                auto start = Clock::now();
                require(pagedkv_sequence_commit(cache, id, upto), "commit");
                times[m].push_back(seconds_since(start) * 1e9 / pages_per_commit);
            }
            if (modes[m] == Mode::Callback) require(pagedkv_cache_set_event_callback(cache, nullptr, nullptr), "callback");
#ifdef PAGEDKV_WITH_ZMQ
            if (publisher) require(pagedkv_event_publisher_destroy(publisher), "publisher_destroy");
#endif
        }
    }
    require(pagedkv_sequence_release(cache, id), "release");
    pagedkv_cache_destroy(cache);
    std::vector<double> medians;
    for (auto& t : times) medians.push_back(median(t));
    return medians;
}

}  // namespace

int main() {
    std::mt19937_64 rng(1);
    std::printf("pagedkv KV-event benchmark (page_size %d; medians; 2-core machines share the publisher's\n"
                "and the subscriber's threads with the caller)\n\n", kPageSize);

    // ---- 1. what publishing adds to a commit ---------------------------------------------------
    std::vector<Mode> modes = {Mode::Off, Mode::Callback};
#ifdef PAGEDKV_WITH_ZMQ
    modes.push_back(Mode::Zmq);
#endif
    std::printf("%-44s %16s %16s\n", "commit, per committed page", "1 page/commit", "64 pages/commit");
    std::vector<double> one = commit_ns_per_page(modes, 1, rng), many = commit_ns_per_page(modes, 64, rng);
    for (size_t m = 0; m < modes.size(); ++m) {
        char a[40], b[40];
        std::snprintf(a, sizeof a, "%.1f ns %+6.1f%%", one[m], (one[m] / one[0] - 1) * 100);
        std::snprintf(b, sizeof b, "%.1f ns %+6.1f%%", many[m], (many[m] / many[0] - 1) * 100);
        std::printf("%-44s %16s %16s\n", mode_name(modes[m]), a, b);
    }

#ifdef PAGEDKV_WITH_ZMQ
    // ---- 2. events per second to a live subscriber ---------------------------------------------
    {
        pagedkv_cache* cache = make_cache(16384);
        std::string endpoint = bench_endpoint("-rate");
        LiveSubscriber subscriber(endpoint);
        pagedkv_event_publisher* publisher = publish(cache, endpoint);
        auto start = Clock::now();
        int64_t id = create(cache, random_tokens(rng, kPageSize + 1));
        while (seconds_since(start) < 2.0) {
            for (int i = 0; i < 256; ++i) {  // one page per commit: one BlockStored per batch
                auto more = random_tokens(rng, kPageSize);
                require(pagedkv_sequence_append(cache, id, more.data(), kPageSize), "append");
                pagedkv_sequence_info info{};
                info.struct_size = sizeof(info);
                require(pagedkv_sequence_get_info(cache, id, &info), "info");
                require(pagedkv_sequence_commit(cache, id, (info.num_tokens - 1) / kPageSize * kPageSize), "commit");
                if (info.num_pages > 8000) {
                    require(pagedkv_sequence_release(cache, id), "release");
                    id = create(cache, random_tokens(rng, kPageSize + 1));  // evictions: BlockRemoved events
                }
            }
        }
        double produced = seconds_since(start);
        pagedkv_event_publisher_stats s = publisher_stats(publisher);
        while (s.batches_sent + s.batches_dropped < s.batches_accepted) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            s = publisher_stats(publisher);
        }
        double drained = seconds_since(start);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        std::printf("\n%lld events in %lld batches accepted in %.2f s; sent %lld, dropped %lld by %.2f s; received %lld\n",
                    (long long)s.events_accepted, (long long)s.batches_accepted, produced, (long long)s.batches_sent,
                    (long long)s.batches_dropped, drained, (long long)subscriber.messages());
        std::printf("sustained to a live subscriber: %.0f events/s (%.0f batches/s) sent, %.0f received\n",
                    double(s.events_accepted) * double(s.batches_sent) / double(s.batches_accepted) / drained,
                    double(s.batches_sent) / drained, double(subscriber.messages()) / drained);
        require(pagedkv_sequence_release(cache, id), "release");
        require(pagedkv_event_publisher_destroy(publisher), "publisher_destroy");
        pagedkv_cache_destroy(cache);
    }
#endif

    // ---- 3. match_length on a cached 32k-token prompt vs create's walk ---------------------------
    {
        const size_t n = 32768;
        const int64_t pages = int64_t(n) / kPageSize;
        pagedkv_cache* cache = make_cache(int32_t(pages) * 2 + 64);
        auto prompt = random_tokens(rng, n);
        int64_t id = create(cache, prompt);
        require(pagedkv_sequence_commit(cache, id, int64_t(n)), "commit");
        require(pagedkv_sequence_release(cache, id), "release");
        int64_t cached = 0, matched = 0;
        std::vector<double> match_times, create_times, both_times;
        for (int i = 0; i < 301; ++i) {
            auto start = Clock::now();
            require(pagedkv_match_length(cache, prompt.data(), int64_t(n), nullptr, 0, &matched, nullptr), "match");
            match_times.push_back(seconds_since(start));
            start = Clock::now();
            int64_t seq = create(cache, prompt, &cached);
            create_times.push_back(seconds_since(start));
            require(pagedkv_sequence_release(cache, seq), "release");
            both_times.push_back(seconds_since(start));
        }
        if (matched != cached) std::fprintf(stderr, "match_length %lld != create %lld\n", (long long)matched, (long long)cached);
        std::printf("\n%-52s %12s %12s\n", "32k cached prompt (2048 pages)", "time", "per page");
        std::printf("%-52s %9.1f us %9.2f ns\n", "pagedkv_match_length", median(match_times) * 1e6,
                    median(match_times) * 1e9 / double(pages));
        std::printf("%-52s %9.1f us %9.2f ns\n", "pagedkv_sequence_create (walk + reserve)", median(create_times) * 1e6,
                    median(create_times) * 1e9 / double(pages));
        std::printf("%-52s %9.1f us %9.2f ns\n", "create + release", median(both_times) * 1e6,
                    median(both_times) * 1e9 / double(pages));
        pagedkv_cache_destroy(cache);
    }
    return 0;
}
