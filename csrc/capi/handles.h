// The opaque handles of the C API. pagedkv_cache*, pagedkv_batch* and pagedkv_event_publisher* are
// handle-table values (see handle_table.h), never addresses: the structs below are never defined.
#pragma once

#include <memory>

#include "cache/batch.h"
#include "cache/cache.h"
#include "events/publisher.h"
#include "pagedkv.h"

namespace pagedkv::capi {

// What a batch handle names: the batch, and its cache while that lives.
struct BatchEntry {
    std::weak_ptr<Cache> cache;
    std::unique_ptr<Batch> batch;
    ~BatchEntry();
};

// What a publisher handle names: the publisher, listening to its cache while that lives.
struct PublisherEntry {
    std::weak_ptr<Cache> cache;
    std::unique_ptr<events::Publisher> publisher;
    ~PublisherEntry();  // stops listening, then stops the publisher
};

pagedkv_cache* register_cache(std::shared_ptr<Cache> cache);
std::shared_ptr<Cache> unregister_cache(const pagedkv_cache* handle);  // null if not live
pagedkv_batch* register_batch(std::shared_ptr<BatchEntry> entry);
std::shared_ptr<BatchEntry> unregister_batch(const pagedkv_batch* handle);
pagedkv_event_publisher* register_publisher(std::shared_ptr<PublisherEntry> entry);
std::shared_ptr<PublisherEntry> unregister_publisher(const pagedkv_event_publisher* handle);

// The live object of a handle; INVALID_ARGUMENT for null, destroyed or foreign handles.
std::shared_ptr<Cache> checked(const pagedkv_cache* cache);
std::shared_ptr<BatchEntry> checked(const pagedkv_batch* batch);
std::shared_ptr<PublisherEntry> checked(const pagedkv_event_publisher* publisher);

// A batch and its cache, for calls that need both: INVALID_ARGUMENT when the batch's cache was
// destroyed or is not `cache`.
struct CacheAndBatch {
    std::shared_ptr<Cache> cache;
    std::shared_ptr<BatchEntry> entry;
    Batch& batch() const { return *entry->batch; }
};
CacheAndBatch checked(const pagedkv_cache* cache, const pagedkv_batch* batch);

}  // namespace pagedkv::capi
