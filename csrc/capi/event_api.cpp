// The C functions of prefix-match queries, KV events (callback, snapshot) and the ZeroMQ event
// publisher: argument checks at the boundary, then one call into pagedkv::Cache or the publisher.
#include <climits>
#include <memory>
#include <string>

#include "capi/guard.h"
#include "capi/handles.h"
#include "pagedkv.h"

namespace pagedkv::capi {
namespace {

std::string text_or_empty(const char* text) { return text == nullptr ? std::string() : std::string(text); }

events::PublisherConfig publisher_config(const pagedkv_event_publisher_config& c) {
    PAGEDKV_REQUIRE(c.endpoint != nullptr && c.endpoint[0] != '\0', PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.endpoint must name a ZeroMQ endpoint, e.g. \"tcp://*:5557\"");
    PAGEDKV_REQUIRE(c.data_parallel_rank >= 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.data_parallel_rank must be >= 0, got ", c.data_parallel_rank);
    PAGEDKV_REQUIRE(c.buffer_steps >= 0 && c.max_queue_batches >= 0 && c.send_hwm >= 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "config.buffer_steps, max_queue_batches and send_hwm must be >= 0 (0 = default), got ",
                    c.buffer_steps, ", ", c.max_queue_batches, ", ", c.send_hwm);
    events::PublisherConfig out;
    out.endpoint = c.endpoint;
    out.replay_endpoint = text_or_empty(c.replay_endpoint);
    out.topic = text_or_empty(c.topic);
    out.data_parallel_rank = c.data_parallel_rank;
    out.buffer_steps = c.buffer_steps > 0 ? c.buffer_steps : 10000;
    out.max_queue_batches = c.max_queue_batches > 0 ? c.max_queue_batches : out.buffer_steps;
    out.send_hwm = c.send_hwm > 0 ? c.send_hwm : 100000;
    return out;
}

}  // namespace
}  // namespace pagedkv::capi

using pagedkv::capi::checked;
using pagedkv::capi::guarded;

extern "C" {

int32_t pagedkv_match_length(pagedkv_cache* cache, const int32_t* prompt, int64_t num_tokens, const uint8_t* salt,
                             int32_t salt_len, int64_t* out_cached_tokens, pagedkv_prefix_match* out_match) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(prompt);
        PAGEDKV_REQUIRE_NOT_NULL(out_cached_tokens);
        PAGEDKV_REQUIRE(salt != nullptr || salt_len == 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "salt must not be null when salt_len > 0 (", salt_len, ")");
        if (out_match != nullptr) PAGEDKV_REQUIRE_STRUCT(out_match, pagedkv_prefix_match, partial_tokens);
        pagedkv_prefix_match match = impl->match_prefix(prompt, num_tokens, salt, salt_len);
        *out_cached_tokens = match.cached_tokens;
        if (out_match != nullptr) pagedkv::capi::write_struct(out_match, match);
    });
}

int32_t pagedkv_cache_set_event_callback(pagedkv_cache* cache, pagedkv_event_callback callback, void* user_data) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        impl->set_event_listener(impl.get(), callback, user_data);  // the cache names its one C callback
    });
}

int32_t pagedkv_cache_snapshot(pagedkv_cache* cache, pagedkv_snapshot_block* out_blocks, int32_t* out_token_ids,
                               int32_t capacity, int32_t* out_count, int64_t* out_next_batch_seq) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_count);
        PAGEDKV_REQUIRE(capacity >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "capacity must be >= 0, got ", capacity);
        PAGEDKV_REQUIRE(out_blocks != nullptr || capacity == 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "out_blocks must not be null when capacity > 0 (", capacity, ")");
        PAGEDKV_REQUIRE(int64_t(capacity) * impl->page_size() <= INT64_MAX / int64_t(sizeof(int32_t)),
                        PAGEDKV_ERR_INVALID_ARGUMENT, "capacity ", capacity, " * page_size overflows");
        pagedkv::Cache::Snapshot snapshot = impl->snapshot(out_blocks, out_token_ids, capacity);
        *out_count = snapshot.count;
        if (out_next_batch_seq != nullptr) *out_next_batch_seq = snapshot.next_batch_seq;
    });
}

int32_t pagedkv_event_publisher_create(pagedkv_cache* cache, const pagedkv_event_publisher_config* config,
                                       pagedkv_event_publisher** out_publisher) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(config);
        PAGEDKV_REQUIRE_NOT_NULL(out_publisher);
        PAGEDKV_REQUIRE_STRUCT(config, pagedkv_event_publisher_config, send_hwm);
        auto entry = std::make_shared<pagedkv::capi::PublisherEntry>();
        entry->publisher = pagedkv::events::make_zmq_publisher(
            pagedkv::capi::publisher_config(pagedkv::capi::read_struct(config)));
        entry->cache = impl;
        impl->set_event_listener(entry->publisher.get(), &pagedkv::events::Publisher::forward, entry->publisher.get());
        *out_publisher = pagedkv::capi::register_publisher(entry);  // if this throws, the entry stops listening
    });
}

int32_t pagedkv_event_publisher_destroy(pagedkv_event_publisher* publisher) {
    return guarded(__func__, [&] {
        if (publisher == nullptr) return;
        // The entry dies here or, if a call on another thread still uses it, when that call ends.
        PAGEDKV_REQUIRE(pagedkv::capi::unregister_publisher(publisher) != nullptr, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "publisher is not a live pagedkv_event_publisher handle (destroyed already, or not from "
                        "pagedkv_event_publisher_create)");
    });
}

int32_t pagedkv_event_publisher_get_stats(const pagedkv_event_publisher* publisher,
                                          pagedkv_event_publisher_stats* out_stats) {
    return guarded(__func__, [&] {
        auto entry = checked(publisher);
        PAGEDKV_REQUIRE_NOT_NULL(out_stats);
        PAGEDKV_REQUIRE_STRUCT(out_stats, pagedkv_event_publisher_stats, batches_replayed);
        pagedkv::capi::write_struct(out_stats, entry->publisher->stats());
    });
}

}  // extern "C"
