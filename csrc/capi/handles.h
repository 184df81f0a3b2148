// The opaque handles of the C API. A handle carries a magic number so that a null, foreign or
// destroyed handle is reported as INVALID_ARGUMENT instead of being dereferenced blindly.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_set>

#include "cache/batch.h"
#include "cache/cache.h"
#include "pagedkv.h"

struct pagedkv_batch;

struct pagedkv_cache {
    uint64_t magic;
    std::unique_ptr<pagedkv::Cache> impl;
    // Batches still alive: destroying the cache destroys their contents (see pagedkv_batch).
    std::mutex batches_mutex;
    std::unordered_set<pagedkv_batch*> batches;
};

// A batch whose cache was destroyed first keeps its (empty) handle, marked kDeadBatchMagic, until
// pagedkv_batch_destroy frees it; any other use reports the destroyed cache.
struct pagedkv_batch {
    uint64_t magic;
    pagedkv_cache* cache;
    std::unique_ptr<pagedkv::Batch> impl;
};

namespace pagedkv::capi {

constexpr uint64_t kCacheMagic = 0x43564b6465676170ull;      // "pagedKVC"
constexpr uint64_t kBatchMagic = 0x42564b6465676170ull;      // "pagedKVB"
constexpr uint64_t kDeadBatchMagic = 0x44564b6465676170ull;  // "pagedKVD"

// Null or bad magic -> INVALID_ARGUMENT.
pagedkv::Cache& checked(const pagedkv_cache* cache);
// Also INVALID_ARGUMENT for a batch whose cache was destroyed.
pagedkv::Batch& checked(const pagedkv_batch* batch);

}  // namespace pagedkv::capi
