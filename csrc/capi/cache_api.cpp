// The C functions of the cache, sequences, batches and device memory helpers: argument checks
// at the boundary, then one call into pagedkv::Cache. Kernels are in kernel_api.cpp.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>

#include "capi/guard.h"
#include "capi/handles.h"
#include "pagedkv.h"

namespace pagedkv::capi {

namespace {

// An output array may be null only when the caller asks for nothing.
template <class Pointer, class Count>
void require_buffer(Pointer out, Count capacity, const char* name) {
    PAGEDKV_REQUIRE(capacity >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "capacity must be >= 0, got ", capacity);
    PAGEDKV_REQUIRE(out != nullptr || capacity == 0, PAGEDKV_ERR_INVALID_ARGUMENT, name,
                    " must not be null when capacity > 0 (", capacity, ")");
}

}  // namespace
}  // namespace pagedkv::capi

using pagedkv::capi::checked;
using pagedkv::capi::guarded;

extern "C" {

// ---- cache ------------------------------------------------------------------------------------

int32_t pagedkv_cache_create(const pagedkv_cache_config* config, pagedkv_cache** out_cache) {
    return guarded(__func__, [&] {
        PAGEDKV_REQUIRE_NOT_NULL(config);
        PAGEDKV_REQUIRE_NOT_NULL(out_cache);
        PAGEDKV_REQUIRE_STRUCT(config, pagedkv_cache_config, flags);
        auto cache = std::make_shared<pagedkv::Cache>(pagedkv::capi::read_struct(config));
        *out_cache = pagedkv::capi::register_cache(std::move(cache));
    });
}

int32_t pagedkv_cache_destroy(pagedkv_cache* cache) {
    return guarded(__func__, [&] {
        if (cache == nullptr) return;
        std::shared_ptr<pagedkv::Cache> impl = pagedkv::capi::unregister_cache(cache);
        PAGEDKV_REQUIRE(impl != nullptr, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "cache is not a live pagedkv_cache handle (destroyed already, or not from "
                        "pagedkv_cache_create)");
        impl->shutdown();  // its batches become unusable; calls in progress on other threads finish
    });
}

int32_t pagedkv_cache_get_layout(const pagedkv_cache* cache, pagedkv_cache_layout* out_layout) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_layout);
        PAGEDKV_REQUIRE_STRUCT(out_layout, pagedkv_cache_layout, pool_bytes);
        pagedkv::capi::write_struct(out_layout, impl->layout());
    });
}

int32_t pagedkv_cache_set_kv_scales(pagedkv_cache* cache, int32_t layer, const float* k_scales,
                                    const float* v_scales) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(k_scales);
        PAGEDKV_REQUIRE_NOT_NULL(v_scales);
        impl->kv_scales(layer).set(layer, k_scales, v_scales);
    });
}

int32_t pagedkv_cache_get_kv_scales(const pagedkv_cache* cache, int32_t layer, float* k_scales, float* v_scales) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(k_scales);
        PAGEDKV_REQUIRE_NOT_NULL(v_scales);
        impl->kv_scales(layer).get(layer, k_scales, v_scales);
    });
}

int32_t pagedkv_cache_get_stats(const pagedkv_cache* cache, pagedkv_cache_stats* out_stats) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_stats);
        PAGEDKV_REQUIRE_STRUCT(out_stats, pagedkv_cache_stats, dedup_hits);
        pagedkv::capi::write_struct(out_stats, impl->stats());
    });
}

int32_t pagedkv_cache_get_tier_stats(const pagedkv_cache* cache, int32_t tier, pagedkv_tier_stats* out_stats) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_stats);
        PAGEDKV_REQUIRE_STRUCT(out_stats, pagedkv_tier_stats, errors);
        pagedkv::capi::write_struct(out_stats, impl->tier_stats(tier));
    });
}

int32_t pagedkv_cache_flush_tiers(pagedkv_cache* cache) {
    return guarded(__func__, [&] { checked(cache)->flush_tiers(); });
}

int32_t pagedkv_prefetch(pagedkv_cache* cache, const int32_t* prompt, int64_t num_tokens, const uint8_t* salt,
                         int32_t salt_len, int64_t* out_loaded_tokens) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(prompt);
        PAGEDKV_REQUIRE(salt != nullptr || salt_len <= 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "salt must not be null when salt_len > 0 (", salt_len, ")");
        int64_t loaded = impl->prefetch(prompt, num_tokens, salt, salt_len);
        if (out_loaded_tokens) *out_loaded_tokens = loaded;
    });
}

int32_t pagedkv_cache_clear_unused(pagedkv_cache* cache, int32_t* out_evicted) {
    return guarded(__func__, [&] {
        int32_t evicted = checked(cache)->clear_unused();
        if (out_evicted) *out_evicted = evicted;
    });
}

int32_t pagedkv_cache_page_address(const pagedkv_cache* cache, int32_t page_id, void** out_ptr) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_ptr);
        *out_ptr = impl->page_address(page_id);
    });
}

// ---- sequences --------------------------------------------------------------------------------

int32_t pagedkv_sequence_create(pagedkv_cache* cache, const int32_t* prompt, int64_t num_tokens, const uint8_t* salt,
                                int32_t salt_len, int64_t* out_seq_id, int64_t* out_cached_tokens) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(prompt);
        PAGEDKV_REQUIRE_NOT_NULL(out_seq_id);
        PAGEDKV_REQUIRE(salt_len >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "salt_len must be >= 0, got ", salt_len);
        PAGEDKV_REQUIRE(salt != nullptr || salt_len == 0, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "salt must not be null when salt_len > 0 (", salt_len, ")");
        auto created = impl->create_sequence(prompt, num_tokens, salt, salt_len);
        *out_seq_id = created.seq_id;
        if (out_cached_tokens) *out_cached_tokens = created.cached_tokens;
    });
}

int32_t pagedkv_sequence_get_info(const pagedkv_cache* cache, int64_t seq_id, pagedkv_sequence_info* out_info) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_info);
        PAGEDKV_REQUIRE_STRUCT(out_info, pagedkv_sequence_info, num_cached);
        pagedkv::capi::write_struct(out_info, impl->sequence_info(seq_id));
    });
}

int32_t pagedkv_sequence_get_block_table(const pagedkv_cache* cache, int64_t seq_id, int32_t* out_pages,
                                         int32_t capacity, int32_t* out_count) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_count);
        pagedkv::capi::require_buffer(out_pages, capacity, "out_pages");
        *out_count = impl->block_table(seq_id, out_pages, capacity);
    });
}

int32_t pagedkv_sequence_get_tokens(const pagedkv_cache* cache, int64_t seq_id, int32_t* out_tokens,
                                    int64_t capacity, int64_t* out_count) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_count);
        pagedkv::capi::require_buffer(out_tokens, capacity, "out_tokens");
        *out_count = impl->tokens(seq_id, out_tokens, capacity);
    });
}

int32_t pagedkv_sequence_get_slot_mapping(const pagedkv_cache* cache, int64_t seq_id, int64_t* out_slots,
                                          int64_t capacity, int64_t* out_count) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_count);
        pagedkv::capi::require_buffer(out_slots, capacity, "out_slots");
        *out_count = impl->slot_mapping(seq_id, out_slots, capacity);
    });
}

int32_t pagedkv_sequence_commit(pagedkv_cache* cache, int64_t seq_id, int64_t num_computed) {
    return guarded(__func__, [&] { checked(cache)->commit(seq_id, num_computed); });
}

int32_t pagedkv_sequence_append(pagedkv_cache* cache, int64_t seq_id, const int32_t* tokens, int64_t num_tokens) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(tokens);
        impl->append(seq_id, tokens, num_tokens);
    });
}

int32_t pagedkv_sequence_fork(pagedkv_cache* cache, int64_t seq_id, int64_t* out_child_id) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_child_id);
        *out_child_id = impl->fork(seq_id);
    });
}

int32_t pagedkv_sequence_truncate(pagedkv_cache* cache, int64_t seq_id, int64_t new_num_tokens) {
    return guarded(__func__, [&] { checked(cache)->truncate(seq_id, new_num_tokens); });
}

int32_t pagedkv_sequence_release(pagedkv_cache* cache, int64_t seq_id) {
    return guarded(__func__, [&] { checked(cache)->release(seq_id); });
}

// ---- batches ----------------------------------------------------------------------------------

namespace {
pagedkv_batch* create_batch(pagedkv_cache* cache, const int64_t* seq_ids, int32_t num_seqs, void* stream,
                            bool wait) {
    auto impl = checked(cache);
    PAGEDKV_REQUIRE_NOT_NULL(seq_ids);
    auto entry = std::make_shared<pagedkv::capi::BatchEntry>();
    entry->cache = impl;
    entry->batch = impl->make_batch(seq_ids, num_seqs, stream, wait);
    return pagedkv::capi::register_batch(std::move(entry));
}
}  // namespace

int32_t pagedkv_batch_create(pagedkv_cache* cache, const int64_t* seq_ids, int32_t num_seqs,
                             pagedkv_batch** out_batch) {
    return guarded(__func__, [&] {
        PAGEDKV_REQUIRE_NOT_NULL(out_batch);
        *out_batch = create_batch(cache, seq_ids, num_seqs, nullptr, true);
    });
}

int32_t pagedkv_batch_create_on_stream(pagedkv_cache* cache, const int64_t* seq_ids, int32_t num_seqs,
                                       void* cuda_stream, pagedkv_batch** out_batch) {
    return guarded(__func__, [&] {
        PAGEDKV_REQUIRE_NOT_NULL(out_batch);
        *out_batch = create_batch(cache, seq_ids, num_seqs, cuda_stream, false);
    });
}

int32_t pagedkv_batch_destroy(pagedkv_batch* batch) {
    return guarded(__func__, [&] {
        if (batch == nullptr) return;
        // The entry dies here or, if a call on another thread still uses it, when that call ends.
        PAGEDKV_REQUIRE(pagedkv::capi::unregister_batch(batch) != nullptr, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "batch is not a live pagedkv_batch handle (destroyed already, or not from "
                        "pagedkv_batch_create)");
    });
}

int32_t pagedkv_batch_get_info(const pagedkv_batch* batch, pagedkv_batch_info* out_info) {
    return guarded(__func__, [&] {
        auto entry = checked(batch);
        PAGEDKV_REQUIRE_NOT_NULL(out_info);
        PAGEDKV_REQUIRE_STRUCT(out_info, pagedkv_batch_info, d_kv_len);
        PAGEDKV_REQUIRE(!entry->cache.expired(), PAGEDKV_ERR_INVALID_ARGUMENT,
                        "the batch belonged to a cache that was destroyed; only pagedkv_batch_destroy accepts it");
        const auto& host = entry->batch->host_arrays();
        const auto& device = entry->batch->device_arrays();
        pagedkv_batch_info info{};
        info.num_seqs = host.num_seqs;
        info.num_pages = host.num_pages;
        info.shared_prefix_pages = host.shared_prefix_pages;
        info.num_qo_tokens = host.num_qo_tokens;
        info.max_kv_len = host.max_kv_len;
        info.max_qo_len = host.max_qo_len;
        info.kv_indptr = host.kv_indptr;
        info.kv_page_indices = host.kv_page_indices;
        info.kv_last_page_len = host.kv_last_page_len;
        info.qo_indptr = host.qo_indptr;
        info.slot_mapping = host.slot_mapping;
        info.kv_len = host.kv_len;
        info.d_kv_indptr = device.kv_indptr;
        info.d_kv_page_indices = device.kv_page_indices;
        info.d_kv_last_page_len = device.kv_last_page_len;
        info.d_qo_indptr = device.qo_indptr;
        info.d_slot_mapping = device.slot_mapping;
        info.d_kv_len = device.kv_len;
        pagedkv::capi::write_struct(out_info, info);
    });
}

int32_t pagedkv_batch_commit(pagedkv_cache* cache, const pagedkv_batch* batch) {
    return guarded(__func__, [&] {
        auto both = checked(cache, batch);
        both.cache->commit_batch(both.batch());
    });
}

// ---- device memory helpers ----------------------------------------------------------------------

int32_t pagedkv_device_alloc(pagedkv_cache* cache, int64_t bytes, void** out_ptr) {
    return guarded(__func__, [&] {
        auto impl = checked(cache);
        PAGEDKV_REQUIRE_NOT_NULL(out_ptr);
        *out_ptr = impl->device_alloc(bytes);
    });
}

int32_t pagedkv_device_free(pagedkv_cache* cache, void* ptr) {
    return guarded(__func__, [&] { checked(cache)->device_free(ptr); });
}

int32_t pagedkv_memcpy(pagedkv_cache* cache, void* dst, const void* src, int64_t bytes, int32_t kind) {
    return guarded(__func__, [&] { checked(cache)->memcpy(dst, src, bytes, kind); });
}

int32_t pagedkv_synchronize(pagedkv_cache* cache) {
    return guarded(__func__, [&] { checked(cache)->synchronize(); });
}

}  // extern "C"
