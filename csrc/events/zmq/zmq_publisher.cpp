// The ZeroMQ KV-event publisher: vLLM's ZmqEventPublisher (vllm/distributed/kv_events.py) in
// C++. The cache's event delivery copies each batch into a ring of buffer_steps batches and
// returns; one background thread owns both sockets (ZeroMQ sockets are not thread-safe), encodes
// each batch once, sends it on the PUB socket as [topic, seq, payload], and serves replay
// requests on the ROUTER socket from the same ring. A sender more than max_queue_batches behind
// skips ahead: the skipped batches were never sent live (their seq numbers are gaps a subscriber
// notices) but stay in the ring, so a replay request recovers them.
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"
#include "events/publisher.h"
#include "events/zmq/event_encoder.h"

namespace pagedkv::events {

namespace {

// The sending thread polls every millisecond while batches keep coming (so handing one over costs
// the cache's caller no system call), and after this many empty polls sleeps until a batch or a
// replay request wakes it (the one hand-over in a while that pays for a wake-up).
constexpr int kPollMs = 1;
constexpr int kAwakePolls = 50;
constexpr auto kShutdownTimeout = std::chrono::seconds(1);  // as vLLM's SHUTDOWN_TIMEOUT

// A batch the publisher owns: the events and their arrays in one allocation (the copy is what the
// cache's caller pays per batch), the events' pointers into it.
struct OwnedBatch {
    int64_t seq = 0;
    double timestamp = 0;
    int32_t num_events = 0;
    std::unique_ptr<unsigned char[]> storage;  // events, then hashes, then token ids
    std::string payload;                      // encoded by the sending thread, once

    explicit OwnedBatch(const pagedkv_event_batch& batch) : timestamp(batch.timestamp), num_events(batch.num_events) {
        const auto* bytes = reinterpret_cast<const unsigned char*>(batch.events);
        auto source = [&](int32_t i) -> const pagedkv_block_event& {
            return *reinterpret_cast<const pagedkv_block_event*>(bytes + int64_t(i) * batch.event_stride);
        };
        size_t num_hashes = 0, num_tokens = 0;
        for (int32_t i = 0; i < num_events; ++i) {
            num_hashes += size_t(source(i).num_blocks);
            num_tokens += size_t(source(i).num_token_ids);
        }
        size_t events_bytes = size_t(num_events) * sizeof(pagedkv_block_event);
        storage.reset(new unsigned char[events_bytes + num_hashes * sizeof(int64_t) + num_tokens * sizeof(int32_t)]);
        auto* events = reinterpret_cast<pagedkv_block_event*>(storage.get());
        auto* hashes = reinterpret_cast<int64_t*>(storage.get() + events_bytes);
        auto* tokens = reinterpret_cast<int32_t*>(hashes + num_hashes);
        for (int32_t i = 0; i < num_events; ++i) {
            pagedkv_block_event e = source(i);
            if (e.num_blocks > 0) e.block_hashes = static_cast<int64_t*>(std::memcpy(hashes, e.block_hashes, sizeof(int64_t) * size_t(e.num_blocks)));
            if (e.num_token_ids > 0) e.token_ids = static_cast<int32_t*>(std::memcpy(tokens, e.token_ids, sizeof(int32_t) * size_t(e.num_token_ids)));
            hashes += e.num_blocks;
            tokens += e.num_token_ids;
            e.struct_size = sizeof(e);
            events[i] = e;
        }
    }

    pagedkv_event_batch view() const {
        pagedkv_event_batch batch{};
        batch.struct_size = sizeof(batch);
        batch.num_events = num_events;
        batch.seq = seq;
        batch.timestamp = timestamp;
        batch.event_stride = int32_t(sizeof(pagedkv_block_event));
        batch.events = reinterpret_cast<const pagedkv_block_event*>(storage.get());
        return batch;
    }
};

[[noreturn]] void zmq_failure(const char* what, const std::string& endpoint) {
    fail(PAGEDKV_ERR_INVALID_ARGUMENT, what, " \"", endpoint, "\": ", zmq_strerror(zmq_errno()));
}

void big_endian(int64_t value, unsigned char out[8]) {
    for (int i = 7; i >= 0; --i, value = int64_t(uint64_t(value) >> 8)) out[i] = static_cast<unsigned char>(value);
}

// vLLM binds endpoints with a wildcard and local transports, and connects to the others
// ("bind stable, connect volatile").
bool binds(const std::string& endpoint) {
    return endpoint.find('*') != std::string::npos || endpoint.find("::") != std::string::npos ||
           endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0;
}

class ZmqPublisher final : public Publisher {
public:
    explicit ZmqPublisher(const PublisherConfig& config)
        : topic_(config.topic),
          rank_(config.data_parallel_rank),
          max_queue_(std::min(config.max_queue_batches, config.buffer_steps)),
          ring_(size_t(config.buffer_steps)) {
        wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        PAGEDKV_REQUIRE(wake_fd_ >= 0, PAGEDKV_ERR_OUT_OF_MEMORY, "eventfd failed for the KV-event publisher");
        context_ = zmq_ctx_new();
        if (context_ == nullptr) {
            close(wake_fd_);
            fail(PAGEDKV_ERR_OUT_OF_MEMORY, "zmq_ctx_new failed: ", zmq_strerror(zmq_errno()));
        }
        try {
            open_sockets(config);
        } catch (...) {
            close_sockets();
            throw;
        }
        thread_ = std::thread([this] { run(); });
    }

    ~ZmqPublisher() override {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake();
        thread_.join();
        close_sockets();
    }

    void accept(const pagedkv_event_batch& batch) noexcept override {
        std::shared_ptr<OwnedBatch> owned;
        try {
            owned = std::make_shared<OwnedBatch>(batch);
        } catch (...) {
            std::lock_guard lock(mutex_);
            ++stats_.batches_dropped;  // out of host memory: lost without a seq number
            return;
        }
        {
            std::lock_guard lock(mutex_);
            owned->seq = head_++;
            ring_[size_t(owned->seq % int64_t(ring_.size()))] = std::move(owned);
            ++stats_.batches_accepted;
            stats_.events_accepted += batch.num_events;
        }
        if (sleeping_.load()) wake();
    }

    pagedkv_event_publisher_stats stats() const override {
        std::lock_guard lock(mutex_);
        pagedkv_event_publisher_stats out = stats_;
        out.struct_size = sizeof(out);
        return out;
    }

private:
    void open_sockets(const PublisherConfig& config) {
        std::string endpoint = endpoint_for_rank(config.endpoint, config.data_parallel_rank);
        pub_ = zmq_socket(context_, ZMQ_PUB);
        if (pub_ == nullptr) zmq_failure("cannot open a PUB socket for", endpoint);
        int hwm = config.send_hwm, linger = 0;
        zmq_setsockopt(pub_, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(pub_, ZMQ_LINGER, &linger, sizeof linger);
        if (binds(endpoint) ? zmq_bind(pub_, endpoint.c_str()) != 0 : zmq_connect(pub_, endpoint.c_str()) != 0)
            zmq_failure(binds(endpoint) ? "cannot bind the PUB socket to" : "cannot connect the PUB socket to", endpoint);
        if (config.replay_endpoint.empty()) return;
        std::string replay = endpoint_for_rank(config.replay_endpoint, config.data_parallel_rank);
        replay_ = zmq_socket(context_, ZMQ_ROUTER);
        if (replay_ == nullptr) zmq_failure("cannot open a ROUTER socket for", replay);
        zmq_setsockopt(replay_, ZMQ_LINGER, &linger, sizeof linger);
        // A ROUTER drops what exceeds its high-water mark without a word (vLLM keeps ZeroMQ's
        // 1000, so a longer replay loses its tail and its end marker): room for one whole answer.
        int replay_hwm = config.buffer_steps + 2;
        zmq_setsockopt(replay_, ZMQ_SNDHWM, &replay_hwm, sizeof replay_hwm);
        if (zmq_bind(replay_, replay.c_str()) != 0) zmq_failure("cannot bind the replay (ROUTER) socket to", replay);
    }

    void close_sockets() noexcept {
        if (pub_ != nullptr) zmq_close(pub_);
        if (replay_ != nullptr) zmq_close(replay_);
        pub_ = replay_ = nullptr;
        if (context_ != nullptr) zmq_ctx_term(context_);
        context_ = nullptr;
        if (wake_fd_ >= 0) close(wake_fd_);
        wake_fd_ = -1;
    }

    void wake() noexcept {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t written = write(wake_fd_, &one, sizeof one);
    }

    // The sending thread: live batches first, then any replay request, until stopped (and the
    // queue sent, for at most kShutdownTimeout).
    void run() {
        std::vector<std::shared_ptr<OwnedBatch>> work;
        std::chrono::steady_clock::time_point deadline{};
        int empty_polls = 0;
        for (;;) {
            bool stopping;
            {
                std::lock_guard lock(mutex_);
                stopping = stopping_;
                if (stopping && deadline == std::chrono::steady_clock::time_point{})
                    deadline = std::chrono::steady_clock::now() + kShutdownTimeout;
                if (stopping && (next_send_ == head_ || std::chrono::steady_clock::now() >= deadline)) return;
                if (head_ - next_send_ > max_queue_) {
                    stats_.batches_dropped += head_ - max_queue_ - next_send_;
                    next_send_ = head_ - max_queue_;
                }
                for (; next_send_ < head_ && work.size() < 64; ++next_send_)
                    work.push_back(ring_[size_t(next_send_ % int64_t(ring_.size()))]);
            }
            if (!work.empty()) {
                for (auto& batch : work) send_live(*batch);
                std::lock_guard lock(mutex_);
                stats_.batches_sent += int64_t(work.size());
                work.clear();
                empty_polls = 0;
            } else {
                wait(stopping ? 0 : ++empty_polls > kAwakePolls ? -1 : kPollMs);
            }
            serve_replay_requests();
        }
    }

    // Waits for a replay request or `timeout_ms` (-1: until woken by a batch, a request or stop).
    void wait(int timeout_ms) {
        if (timeout_ms < 0) {
            sleeping_.store(true);
            std::lock_guard lock(mutex_);  // a batch that came before `sleeping_` was seen: no sleep
            if (next_send_ < head_ || stopping_) {
                sleeping_.store(false);
                return;
            }
        }
        zmq_pollitem_t items[2] = {{nullptr, wake_fd_, ZMQ_POLLIN, 0}, {replay_, 0, ZMQ_POLLIN, 0}};
        zmq_poll(items, replay_ != nullptr ? 2 : 1, timeout_ms);
        if (timeout_ms < 0) sleeping_.store(false);
        uint64_t count;
        [[maybe_unused]] ssize_t read_bytes = read(wake_fd_, &count, sizeof count);
    }

    const std::string& payload(OwnedBatch& batch) {
        if (batch.payload.empty()) encode_kv_event_batch(batch.view(), rank_, batch.payload);
        return batch.payload;
    }

    void send_live(OwnedBatch& batch) {
        unsigned char seq[8];
        big_endian(batch.seq, seq);
        const std::string& body = payload(batch);
        // A PUB socket never blocks: past its high-water mark ZeroMQ drops the message, and the
        // subscriber sees the gap in seq numbers.
        zmq_send(pub_, topic_.data(), topic_.size(), ZMQ_SNDMORE);
        zmq_send(pub_, seq, sizeof seq, ZMQ_SNDMORE);
        zmq_send(pub_, body.data(), body.size(), 0);
    }

    void serve_replay_requests() {
        if (replay_ == nullptr) return;
        for (;;) {
            zmq_pollitem_t item{replay_, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&item, 1, 0) <= 0 || !(item.revents & ZMQ_POLLIN)) return;
            std::vector<std::string> frames;
            int more = 1;
            while (more) {
                zmq_msg_t part;
                zmq_msg_init(&part);
                if (zmq_msg_recv(&part, replay_, 0) < 0) {
                    zmq_msg_close(&part);
                    return;
                }
                frames.emplace_back(static_cast<const char*>(zmq_msg_data(&part)), zmq_msg_size(&part));
                more = zmq_msg_more(&part);
                zmq_msg_close(&part);
            }
            // [identity, empty delimiter, 8-byte start seq], as vLLM requires; others are ignored.
            if (frames.size() != 3 || frames[2].size() != 8) continue;
            uint64_t start = 0;
            for (unsigned char byte : frames[2]) start = (start << 8) | byte;
            replay(frames[0], start);
        }
    }

    void replay(const std::string& client, uint64_t start) {
        std::vector<std::shared_ptr<OwnedBatch>> batches;
        {
            std::lock_guard lock(mutex_);
            ++stats_.replay_requests;
            // What the ring still holds and the sender has passed (sent, or skipped as dropped).
            int64_t oldest = std::max<int64_t>(0, head_ - int64_t(ring_.size()));
            int64_t from = start > uint64_t(INT64_MAX) ? next_send_ : std::max(oldest, int64_t(start));
            for (int64_t seq = from; seq < next_send_; ++seq) batches.push_back(ring_[size_t(seq % int64_t(ring_.size()))]);
        }
        for (auto& batch : batches) {
            unsigned char seq[8];
            big_endian(batch->seq, seq);
            const std::string& body = payload(*batch);
            zmq_send(replay_, client.data(), client.size(), ZMQ_SNDMORE);
            zmq_send(replay_, "", 0, ZMQ_SNDMORE);
            zmq_send(replay_, topic_.data(), topic_.size(), ZMQ_SNDMORE);
            zmq_send(replay_, seq, sizeof seq, ZMQ_SNDMORE);
            zmq_send(replay_, body.data(), body.size(), 0);
        }
        unsigned char end[8];
        big_endian(-1, end);
        zmq_send(replay_, client.data(), client.size(), ZMQ_SNDMORE);
        zmq_send(replay_, "", 0, ZMQ_SNDMORE);
        zmq_send(replay_, "", 0, ZMQ_SNDMORE);
        zmq_send(replay_, end, sizeof end, ZMQ_SNDMORE);
        zmq_send(replay_, "", 0, 0);
        std::lock_guard lock(mutex_);
        stats_.batches_replayed += int64_t(batches.size());
    }

    const std::string topic_;
    const int32_t rank_;
    const int64_t max_queue_;
    void* context_ = nullptr;
    void* pub_ = nullptr;     // used by the thread only, after construction
    void* replay_ = nullptr;  // likewise

    int wake_fd_ = -1;                    // an eventfd: a batch for a sleeping thread, or stop
    std::atomic<bool> sleeping_{false};  // the thread waits for wake_fd_ without a timeout

    mutable std::mutex mutex_;
    std::vector<std::shared_ptr<OwnedBatch>> ring_;  // batch seq lives at seq % size
    int64_t head_ = 0;                               // next seq to assign
    int64_t next_send_ = 0;                          // next seq the thread sends live
    bool stopping_ = false;
    pagedkv_event_publisher_stats stats_{};
    std::thread thread_;
};

}  // namespace

std::unique_ptr<Publisher> make_zmq_publisher(const PublisherConfig& config) {
    return std::make_unique<ZmqPublisher>(config);
}

}  // namespace pagedkv::events
