// A KV-event publisher: takes the cache's event batches (as an EventLog listener) and sends them
// somewhere without ever blocking the cache. The ZeroMQ one (zmq/) speaks vLLM's wire format;
// builds without libzmq and msgpack-c get zmq_unavailable.cpp instead, which says so.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "pagedkv.h"

namespace pagedkv::events {

struct PublisherConfig {
    std::string endpoint;
    std::string replay_endpoint;  // empty: no replay socket
    std::string topic;
    int32_t data_parallel_rank = 0;
    int32_t buffer_steps = 10000;
    int32_t max_queue_batches = 10000;
    int32_t send_hwm = 100000;
};

class Publisher {
public:
    // Sends what is still queued (for at most a second), then closes its sockets.
    virtual ~Publisher() = default;
    // Takes a copy of `batch`. Called by the cache's event delivery: never blocks, never throws.
    virtual void accept(const pagedkv_event_batch& batch) noexcept = 0;
    virtual pagedkv_event_publisher_stats stats() const = 0;

    // An EventLog listener that forwards to accept(); user_data is the Publisher.
    static void forward(const pagedkv_event_batch* batch, void* publisher) {
        static_cast<Publisher*>(publisher)->accept(*batch);
    }
};

// Opens the sockets and starts the sending thread. Throws INVALID_ARGUMENT for a bad endpoint
// (with ZeroMQ's reason) and UNSUPPORTED in a build without ZeroMQ.
std::unique_ptr<Publisher> make_zmq_publisher(const PublisherConfig& config);

// The endpoint a data-parallel rank uses, as vLLM derives it: a tcp port plus the rank,
// "<endpoint>_dp<rank>" for inproc and ipc, the endpoint itself for rank 0.
std::string endpoint_for_rank(const std::string& endpoint, int32_t data_parallel_rank);

}  // namespace pagedkv::events
