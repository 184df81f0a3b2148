#include "capi/handles.h"

#include "capi/guard.h"
#include "capi/handle_table.h"

namespace pagedkv::capi {

namespace {
// Never destroyed: a handle may be used (and rejected) during static destruction.
HandleTable<Cache>& caches() {
    static auto* table = new HandleTable<Cache>(1);
    return *table;
}
HandleTable<BatchEntry>& batches() {
    static auto* table = new HandleTable<BatchEntry>(2);
    return *table;
}
HandleTable<PublisherEntry>& publishers() {
    static auto* table = new HandleTable<PublisherEntry>(3);
    return *table;
}
uint64_t value_of(const void* handle) { return uint64_t(reinterpret_cast<uintptr_t>(handle)); }
}  // namespace

BatchEntry::~BatchEntry() {
    if (batch == nullptr) return;
    if (std::shared_ptr<Cache> owner = cache.lock()) owner->destroy_batch(*batch);
}

PublisherEntry::~PublisherEntry() {
    if (publisher == nullptr) return;
    if (std::shared_ptr<Cache> owner = cache.lock()) owner->set_event_listener(publisher.get(), nullptr, nullptr);
}

pagedkv_cache* register_cache(std::shared_ptr<Cache> cache) {
    return reinterpret_cast<pagedkv_cache*>(uintptr_t(caches().insert(std::move(cache))));
}

std::shared_ptr<Cache> unregister_cache(const pagedkv_cache* handle) { return caches().remove(value_of(handle)); }

pagedkv_batch* register_batch(std::shared_ptr<BatchEntry> entry) {
    return reinterpret_cast<pagedkv_batch*>(uintptr_t(batches().insert(std::move(entry))));
}

std::shared_ptr<BatchEntry> unregister_batch(const pagedkv_batch* handle) {
    return batches().remove(value_of(handle));
}

pagedkv_event_publisher* register_publisher(std::shared_ptr<PublisherEntry> entry) {
    return reinterpret_cast<pagedkv_event_publisher*>(uintptr_t(publishers().insert(std::move(entry))));
}

std::shared_ptr<PublisherEntry> unregister_publisher(const pagedkv_event_publisher* handle) {
    return publishers().remove(value_of(handle));
}

std::shared_ptr<Cache> checked(const pagedkv_cache* cache) {
    PAGEDKV_REQUIRE_NOT_NULL(cache);
    std::shared_ptr<Cache> found = caches().find(value_of(cache));
    PAGEDKV_REQUIRE(found != nullptr, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "cache is not a live pagedkv_cache handle (destroyed, or not from pagedkv_cache_create)");
    return found;
}

std::shared_ptr<BatchEntry> checked(const pagedkv_batch* batch) {
    PAGEDKV_REQUIRE_NOT_NULL(batch);
    std::shared_ptr<BatchEntry> found = batches().find(value_of(batch));
    PAGEDKV_REQUIRE(found != nullptr, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "batch is not a live pagedkv_batch handle (destroyed, or not from pagedkv_batch_create)");
    return found;
}

std::shared_ptr<PublisherEntry> checked(const pagedkv_event_publisher* publisher) {
    PAGEDKV_REQUIRE_NOT_NULL(publisher);
    std::shared_ptr<PublisherEntry> found = publishers().find(value_of(publisher));
    PAGEDKV_REQUIRE(found != nullptr, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "publisher is not a live pagedkv_event_publisher handle (destroyed, or not from "
                    "pagedkv_event_publisher_create)");
    return found;
}

CacheAndBatch checked(const pagedkv_cache* cache, const pagedkv_batch* batch) {
    CacheAndBatch both{checked(cache), checked(batch)};
    std::shared_ptr<Cache> owner = both.entry->cache.lock();
    PAGEDKV_REQUIRE(owner != nullptr, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "the batch belonged to a cache that was destroyed; only pagedkv_batch_destroy accepts it");
    PAGEDKV_REQUIRE(owner == both.cache, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "the batch was created by another cache (its page ids mean nothing in this one)");
    return both;
}

}  // namespace pagedkv::capi
