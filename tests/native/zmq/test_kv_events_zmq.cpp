// The ZeroMQ KV-event publisher against a subscriber of its own, written from the wire format
// alone (libzmq sockets, msgpack-c decoding; nothing of the publisher's code): it checks every
// frame and field by vLLM's names, rebuilds the blocks per medium from the events, fills gaps in
// the sequence numbers through the ROUTER replay socket (also when the publisher is forced to drop
// batches), and must end with exactly the cache's snapshot. With PAGEDKV_KV_EVENTS_CAPTURE set, the
// payloads and the snapshot are written there for decode_vllm_kv_events.py (python3-msgpack).
#include <msgpack.h>
#include <unistd.h>
#include <zmq.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "../kv_event_mirror.h"
#include "../kv_event_workload.h"
#include "../test_cache_util.h"

using namespace cache_test;
using namespace kv_events_test;

namespace {

const char* const kTopic = "kv@pagedkv";

std::string endpoint(const char* name) {
    return "ipc:///tmp/pagedkv-test-" + std::to_string(getpid()) + "-" + name;
}

int64_t read_big_endian(const std::string& bytes) {
    uint64_t value = 0;
    for (unsigned char byte : bytes) value = (value << 8) | byte;
    return int64_t(value);
}

std::string big_endian(int64_t value) {
    std::string bytes(8, '\0');
    for (int i = 7; i >= 0; --i, value = int64_t(uint64_t(value) >> 8)) bytes[size_t(i)] = char(value & 0xff);
    return bytes;
}

std::vector<std::string> receive_message(void* socket) {
    std::vector<std::string> frames;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, socket, 0) < 0) {
            zmq_msg_close(&part);
            return {};
        }
        frames.emplace_back(static_cast<const char*>(zmq_msg_data(&part)), zmq_msg_size(&part));
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
    return frames;
}

bool readable(void* socket, int timeout_ms) {
    zmq_pollitem_t item{socket, 0, ZMQ_POLLIN, 0};
    return zmq_poll(&item, 1, timeout_ms) > 0;
}

// ---- a vLLM KV-event payload, decoded with msgpack-c ---------------------------------------------

std::string as_string(const msgpack_object& o) {
    return o.type == MSGPACK_OBJECT_STR ? std::string(o.via.str.ptr, o.via.str.size) : std::string("<not a str>");
}

bool is_int(const msgpack_object& o) {
    return o.type == MSGPACK_OBJECT_POSITIVE_INTEGER || o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

int64_t as_int(const msgpack_object& o) {
    return o.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? int64_t(o.via.u64) : o.via.i64;
}

class PayloadDecoder {
public:
    // Applies the batch to `mirror`; returns "" or what is wrong with the payload.
    std::string apply(const std::string& payload, int32_t expected_rank, BlockMirror& mirror) {
        msgpack_unpacked result;
        msgpack_unpacked_init(&result);
        size_t offset = 0;
        std::string problem;
        if (msgpack_unpack_next(&result, payload.data(), payload.size(), &offset) != MSGPACK_UNPACK_SUCCESS)
            problem = "not MessagePack";
        else if (offset != payload.size())
            problem = "bytes after the batch";
        else
            problem = batch(result.data, expected_rank, mirror);
        msgpack_unpacked_destroy(&result);
        return problem;
    }

    int64_t stored = 0, removed = 0, cleared = 0;

private:
    std::string batch(const msgpack_object& o, int32_t expected_rank, BlockMirror& mirror) {
        // vLLM's EventBatch is array-like: [ts, events, data_parallel_rank].
        if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 3) return "the batch is not a 3-element array";
        const msgpack_object* items = o.via.array.ptr;
        if (items[0].type != MSGPACK_OBJECT_FLOAT64 || items[0].via.f64 < 1.6e9) return "ts is not a float time";
        if (!is_int(items[2]) || as_int(items[2]) != expected_rank) return "wrong data_parallel_rank";
        if (items[1].type != MSGPACK_OBJECT_ARRAY) return "events is not an array";
        for (uint32_t i = 0; i < items[1].via.array.size; ++i)
            if (std::string problem = event(items[1].via.array.ptr[i], mirror); !problem.empty()) return problem;
        return {};
    }

    std::string event(const msgpack_object& o, BlockMirror& mirror) {
        // vLLM's events are msgspec structs tagged by "type", encoded as maps.
        if (o.type != MSGPACK_OBJECT_MAP) return "an event is not a map";
        std::map<std::string, msgpack_object> fields;
        for (uint32_t i = 0; i < o.via.map.size; ++i) fields[as_string(o.via.map.ptr[i].key)] = o.via.map.ptr[i].val;
        if (!fields.count("type")) return "an event has no type";
        std::string type = as_string(fields["type"]);
        if (type == "AllBlocksCleared") {
            if (fields.size() != 1) return "AllBlocksCleared has fields";
            ++cleared;
            mirror.cleared();
            return {};
        }
        if (!fields.count("block_hashes") || fields["block_hashes"].type != MSGPACK_OBJECT_ARRAY) return "no block_hashes";
        std::vector<int64_t> hashes;
        for (uint32_t i = 0; i < fields["block_hashes"].via.array.size; ++i) {
            const msgpack_object& h = fields["block_hashes"].via.array.ptr[i];
            if (h.type != MSGPACK_OBJECT_POSITIVE_INTEGER) return "a block hash is not a non-negative integer";
            hashes.push_back(as_int(h));
        }
        if (!fields.count("medium")) return "no medium";
        std::string medium = as_string(fields["medium"]);
        if (medium != "CPU" && medium != "GPU") return "medium " + medium;
        if (!fields.count("group_idx") || as_int(fields["group_idx"]) != 0) return "group_idx is not 0";
        if (type == "BlockRemoved") {
            if (fields.size() != 4) return "BlockRemoved has " + std::to_string(fields.size()) + " fields";
            ++removed;
            mirror.removed(medium, hashes);
            return {};
        }
        if (type != "BlockStored") return "unknown event type " + type;
        static const char* names[] = {"type", "block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id",
                                      "medium", "lora_name", "extra_keys", "group_idx", "kv_cache_spec_kind"};
        if (fields.size() != 11) return "BlockStored has " + std::to_string(fields.size()) + " fields";
        for (const char* name : names)
            if (!fields.count(name)) return std::string("BlockStored has no ") + name;
        // vLLM's declaration order, as msgspec writes it.
        for (uint32_t i = 0; i < 11; ++i)
            if (as_string(o.via.map.ptr[i].key) != names[i]) return "BlockStored fields out of vLLM's order";
        const msgpack_object& parent = fields["parent_block_hash"];
        if (parent.type != MSGPACK_OBJECT_NIL && parent.type != MSGPACK_OBJECT_POSITIVE_INTEGER) return "bad parent";
        if (fields["lora_id"].type != MSGPACK_OBJECT_NIL || fields["lora_name"].type != MSGPACK_OBJECT_NIL)
            return "lora fields are not nil";
        if (as_string(fields["kv_cache_spec_kind"]) != "full_attention") return "kv_cache_spec_kind";
        const msgpack_object& extra = fields["extra_keys"];
        if (extra.type != MSGPACK_OBJECT_ARRAY || extra.via.array.size != hashes.size()) return "extra_keys";
        std::vector<int32_t> tokens;
        for (uint32_t i = 0; i < fields["token_ids"].via.array.size; ++i)
            tokens.push_back(int32_t(as_int(fields["token_ids"].via.array.ptr[i])));
        ++stored;
        mirror.stored(medium, hashes, parent.type != MSGPACK_OBJECT_NIL, as_int(parent), tokens,
                      int32_t(as_int(fields["block_size"])));
        return {};
    }
};

// ---- the subscriber ----------------------------------------------------------------------------

class Subscriber {
public:
    // `capture_dir` (may be empty) receives every payload as batch-<seq>.msgpack.
    Subscriber(const std::string& pub, const std::string& replay, int32_t rank, std::string capture_dir = {})
        : rank_(rank), capture_(std::move(capture_dir)) {
        context_ = zmq_ctx_new();
        sub_ = zmq_socket(context_, ZMQ_SUB);
        zmq_setsockopt(sub_, ZMQ_SUBSCRIBE, kTopic, std::strlen(kTopic));
        int hwm = 0;  // keep everything: drops are the publisher's to make in these tests
        zmq_setsockopt(sub_, ZMQ_RCVHWM, &hwm, sizeof hwm);
        CHECK_EQ(zmq_connect(sub_, pub.c_str()), 0);
        dealer_ = zmq_socket(context_, ZMQ_DEALER);
        zmq_setsockopt(dealer_, ZMQ_RCVHWM, &hwm, sizeof hwm);
        CHECK_EQ(zmq_connect(dealer_, replay.c_str()), 0);
        if (!capture_.empty()) {  // a fresh directory: stale batches would decode as this run's
            std::filesystem::remove_all(capture_);
            std::filesystem::create_directories(capture_);
        }
    }
    ~Subscriber() {
        int linger = 0;
        zmq_setsockopt(sub_, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(dealer_, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(sub_);
        zmq_close(dealer_);
        zmq_ctx_term(context_);
    }

    // Makes sure the subscription is live (ZeroMQ subscribes asynchronously): commits probe
    // blocks under a salt of their own until one arrives.
    void warm_up(pagedkv_cache* cache) {
        for (int32_t probe = 0; probe < 200 && next_seq_ == 0; ++probe) {
            int64_t id = 0;
            std::vector<int32_t> prompt(17, probe % 50);  // a full page at any page size up to 16
            CHECK_EQ(pagedkv_sequence_create(cache, prompt.data(), 17, reinterpret_cast<const uint8_t*>("probe"), 5, &id,
                                             nullptr),
                     PAGEDKV_OK);
            CHECK_EQ(pagedkv_sequence_commit(cache, id, 17), PAGEDKV_OK);
            CHECK_EQ(pagedkv_sequence_release(cache, id), PAGEDKV_OK);
            if (readable(sub_, 20)) catch_up(1);
        }
        CHECK(next_seq_ > 0);
    }

    // Receives live batches until `until_seq` was applied (filling gaps by replay) or a second
    // passes without progress.
    void catch_up(int64_t until_seq) {
        auto quiet_since = std::chrono::steady_clock::now();
        while (next_seq_ < until_seq) {
            if (!readable(sub_, 50)) {
                if (std::chrono::steady_clock::now() - quiet_since > std::chrono::milliseconds(300)) replay_from(next_seq_);
                if (std::chrono::steady_clock::now() - quiet_since > std::chrono::seconds(5)) break;
                continue;
            }
            quiet_since = std::chrono::steady_clock::now();
            std::vector<std::string> frames = receive_message(sub_);
            if (frames.size() != 3) {
                note("a PUB message has " + std::to_string(frames.size()) + " frames");
                continue;
            }
            if (frames[0] != kTopic || frames[1].size() != 8) note("bad topic or seq frame");
            int64_t seq = read_big_endian(frames[1]);
            if (seq < next_seq_) continue;  // already had it through a replay
            if (seq > next_seq_) {
                ++gaps_;
                replay_from(next_seq_);
                if (seq < next_seq_) continue;
                if (seq > next_seq_) note("replay did not fill the gap before " + std::to_string(seq));
            }
            take(seq, frames[2]);
        }
        CHECK(next_seq_ >= until_seq);
    }

    // Sends a replay request and applies the answers in [next_seq_, ...).
    void replay_from(int64_t start) {
        ++replays_;
        zmq_send(dealer_, "", 0, ZMQ_SNDMORE);
        std::string seq = big_endian(start);
        zmq_send(dealer_, seq.data(), seq.size(), 0);
        for (;;) {
            if (!readable(dealer_, 2000)) return note("no end of replay");
            std::vector<std::string> frames = receive_message(dealer_);
            // [empty, topic, seq, payload], then [empty, empty, -1, empty].
            if (frames.size() != 4 || !frames[0].empty() || frames[2].size() != 8) return note("bad replay frames");
            int64_t replayed = read_big_endian(frames[2]);
            if (replayed == -1) {
                if (!frames[1].empty() || !frames[3].empty()) note("bad end-of-replay frames");
                return;
            }
            if (frames[1] != kTopic) note("replay without the topic");
            if (replayed == next_seq_) take(replayed, frames[3]);
        }
    }

    BlockMirror mirror;
    PayloadDecoder decoder;
    int64_t gaps() const { return gaps_; }
    int64_t replays() const { return replays_; }
    const std::string& problem() const { return problem_; }

private:
    void take(int64_t seq, const std::string& payload) {
        if (std::string problem = decoder.apply(payload, rank_, mirror); !problem.empty())
            note("batch " + std::to_string(seq) + ": " + problem);
        if (!capture_.empty()) {
            std::ofstream out(capture_ + "/batch-" + std::to_string(seq) + ".msgpack", std::ios::binary);
            out.write(payload.data(), std::streamsize(payload.size()));
        }
        next_seq_ = seq + 1;
    }
    void note(const std::string& what) {
        if (problem_.empty()) problem_ = what;
    }

    int32_t rank_;
    void* context_ = nullptr;
    void* sub_ = nullptr;
    void* dealer_ = nullptr;
    int64_t next_seq_ = 0, gaps_ = 0, replays_ = 0;
    std::string problem_, capture_;
};

struct Publisher {
    pagedkv_event_publisher* handle = nullptr;
    Publisher(pagedkv_cache* cache, const std::string& pub, const std::string& replay, int32_t rank,
              int32_t max_queue = 0) {
        pagedkv_event_publisher_config config{};
        config.struct_size = sizeof(config);
        config.endpoint = pub.c_str();
        config.replay_endpoint = replay.c_str();
        config.topic = kTopic;
        config.data_parallel_rank = rank;
        config.buffer_steps = 1 << 20;
        config.max_queue_batches = max_queue;
        int32_t status = pagedkv_event_publisher_create(cache, &config, &handle);
        if (status != PAGEDKV_OK) std::fprintf(stderr, "  publisher_create: %s\n", pagedkv_last_error());
        CHECK_EQ(status, PAGEDKV_OK);
    }
    ~Publisher() { CHECK_EQ(pagedkv_event_publisher_destroy(handle), PAGEDKV_OK); }
    pagedkv_event_publisher_stats stats() const {
        pagedkv_event_publisher_stats s{};
        s.struct_size = sizeof(s);
        CHECK_EQ(pagedkv_event_publisher_get_stats(handle, &s), PAGEDKV_OK);
        return s;
    }
    // Waits until the sender passed every accepted batch.
    pagedkv_event_publisher_stats drained() const {
        for (int i = 0; i < 500; ++i) {
            pagedkv_event_publisher_stats s = stats();
            if (s.batches_sent + s.batches_dropped == s.batches_accepted) return s;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return stats();
    }
};

void write_snapshot_json(pagedkv_cache* cache, int32_t page_size, const std::string& path) {
    int32_t count = 0;
    CHECK_EQ(pagedkv_cache_snapshot(cache, nullptr, nullptr, 0, &count, nullptr), PAGEDKV_OK);
    std::vector<pagedkv_snapshot_block> blocks(static_cast<size_t>(count));
    std::vector<int32_t> tokens(blocks.size() * size_t(page_size));
    CHECK_EQ(pagedkv_cache_snapshot(cache, blocks.data(), tokens.data(), count, &count, nullptr), PAGEDKV_OK);
    std::ofstream out(path);
    out << "{\"block_size\": " << page_size << ", \"blocks\": [";
    for (int32_t i = 0; i < count; ++i) {
        const auto& b = blocks[size_t(i)];
        out << (i ? ",\n" : "\n") << "{\"medium\": \"" << medium_name(b.medium) << "\", \"block_hash\": " << b.block_hash
            << ", \"parent_block_hash\": ";
        if (b.has_parent) out << b.parent_block_hash; else out << "null";
        out << ", \"token_ids\": [";
        for (int32_t t = 0; t < page_size; ++t) out << (t ? ", " : "") << tokens[size_t(i) * size_t(page_size) + size_t(t)];
        out << "]}";
    }
    out << "]}\n";
}

}  // namespace

TEST(a_subscriber_rebuilds_the_snapshot_from_the_stream) {
    const int32_t page_size = 4;
    Cache cache(make_config(page_size, 64, 0, 50));
    std::string pub = endpoint("pub"), replay = endpoint("replay");
    const char* capture = std::getenv("PAGEDKV_KV_EVENTS_CAPTURE");
    Publisher publisher(cache, pub, replay, 0);
    Subscriber subscriber(pub, replay, 0, capture ? capture : "");
    {
        RandomWorkload work(cache, 3);
        for (int step = 0; step < 4000; ++step) work.step();
        work.release_all();
        int32_t evicted = 0;
        CHECK_EQ(pagedkv_cache_clear_unused(cache, &evicted), PAGEDKV_OK);  // empties the index: AllBlocksCleared
        for (int step = 0; step < 500; ++step) work.step();
    }
    pagedkv_event_publisher_stats stats = publisher.drained();
    CHECK_EQ(stats.batches_dropped, int64_t(0));
    subscriber.catch_up(stats.batches_accepted);  // a gap at the start (the slow joiner) comes by replay
    CHECK_EQ(subscriber.problem(), std::string());
    CHECK_EQ(subscriber.mirror.differs_from_snapshot(cache, page_size), std::string());
    CHECK(subscriber.decoder.stored > 100 && subscriber.decoder.removed > 10);
    CHECK(subscriber.decoder.cleared >= 1);
    if (capture) write_snapshot_json(cache, page_size, std::string(capture) + "/snapshot.json");
}

TEST(batches_the_publisher_drops_are_recovered_by_replay) {
    const int32_t page_size = 4;
    Cache cache(make_config(page_size, 64, 0, 50));
    std::string pub = endpoint("drop-pub"), replay = endpoint("drop-replay");
    Publisher publisher(cache, pub, replay, 2, /*max_queue_batches=*/1);
    Subscriber subscriber(endpoint("drop-pub_dp2"), endpoint("drop-replay_dp2"), 2);  // the rank names the endpoints
    subscriber.warm_up(cache);
    RandomWorkload work(cache, 4);
    for (int round = 0; round < 20 && publisher.stats().batches_dropped == 0; ++round)
        for (int step = 0; step < 2000; ++step) work.step();  // faster than the sender can send
    pagedkv_event_publisher_stats stats = publisher.drained();
    std::fprintf(stderr, "  %lld batches, %lld dropped\n", static_cast<long long>(stats.batches_accepted),
                 static_cast<long long>(stats.batches_dropped));
    CHECK(stats.batches_dropped > 0);
    subscriber.catch_up(stats.batches_accepted);
    CHECK(subscriber.gaps() > 0);
    CHECK_EQ(subscriber.problem(), std::string());
    CHECK_EQ(subscriber.mirror.differs_from_snapshot(cache, page_size), std::string());
    CHECK(publisher.stats().batches_replayed > 0);
}

TEST(a_replay_from_the_past_resends_what_the_buffer_holds_then_ends) {
    Cache cache(make_config(4, 64, 0, 50));
    std::string pub = endpoint("old-pub"), replay = endpoint("old-replay");
    Publisher publisher(cache, pub, replay, 0);
    for (int i = 0; i < 5; ++i) compute(cache, create(cache, std::vector<int32_t>(9, i)), 9);
    publisher.drained();
    Subscriber subscriber(pub, replay, 0);  // joins late: everything comes by replay
    subscriber.replay_from(0);
    CHECK_EQ(subscriber.problem(), std::string());
    CHECK_EQ(subscriber.mirror.differs_from_snapshot(cache, 4), std::string());
    subscriber.replay_from(1 << 20);  // nothing that new: just the end marker
    CHECK_EQ(subscriber.problem(), std::string());
    CHECK_EQ(publisher.stats().replay_requests, int64_t(2));
}

TEST(bad_endpoints_are_reported_with_zeromq_reasons) {
    Cache cache(4, 16);
    pagedkv_event_publisher_config config{};
    config.struct_size = sizeof(config);
    config.endpoint = "nonsense://x";
    pagedkv_event_publisher* publisher = nullptr;
    CHECK_EQ(pagedkv_event_publisher_create(cache, &config, &publisher), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("nonsense://x"));
    config.endpoint = "tcp://*:0x";
    config.data_parallel_rank = 1;
    CHECK_EQ(pagedkv_event_publisher_create(cache, &config, &publisher), PAGEDKV_ERR_INVALID_ARGUMENT);
    // Two publishers cannot bind one endpoint.
    std::string taken = endpoint("taken");
    Publisher first(cache, taken, endpoint("taken-replay"), 0);
    config.endpoint = "tcp://127.0.0.1:1";
    config.replay_endpoint = "ipc:///nonexistent-directory/pagedkv";
    config.data_parallel_rank = 0;
    CHECK_EQ(pagedkv_event_publisher_create(cache, &config, &publisher), PAGEDKV_ERR_INVALID_ARGUMENT);
    CHECK(error_mentions("replay"));
}

TEST(a_publisher_outlives_its_cache) {
    auto* cache = new Cache(4, 16);
    std::string pub = endpoint("orphan-pub"), replay = endpoint("orphan-replay");
    Publisher publisher(*cache, pub, replay, 0);
    compute(*cache, create(*cache, std::vector<int32_t>(9, 1)), 9);
    delete cache;
    CHECK_EQ(publisher.drained().batches_accepted, int64_t(1));
}

CHECK_MAIN
