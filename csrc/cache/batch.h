// A batch: the kernel metadata (FlashInfer-style arrays) of some sequences for one step, built
// and checked once. Its owning Cache tracks it: any change of a member makes it stale (kernel
// calls and commits with it then fail), and a member cannot change while a kernel call with the
// batch runs. The fields below the arrays belong to the cache and change only under its mutex.
#pragma once

#include <cstdint>
#include <vector>

#include "device/device.h"
#include "kernels/paged_layout.h"
#include "kernels/plan_cache.h"
#include "sequence/sequence.h"

namespace pagedkv {

class Cache;

class Batch {
public:
    struct Member {
        int64_t seq_id;
        int64_t num_tokens;  // length at batch creation: what pagedkv_batch_commit commits to
    };

    // Snapshot of `sequences` (live, distinct, at least one). Throws INVALID_ARGUMENT when the
    // batch does not fit the int32 arrays.
    Batch(const std::vector<const Sequence*>& sequences, int32_t page_size);
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

    const kernels::BatchArrays& host_arrays() const { return host_; }
    // Where kernels of the cache's device read the arrays (the host arrays on the CPU).
    const kernels::BatchArrays& device_arrays() const { return device_arrays_; }
    const std::vector<Member>& members() const { return members_; }
    // Every member has exactly one query token (what decode needs), found once at build time.
    bool one_query_per_sequence() const { return one_query_per_sequence_; }
    // The first member whose query count is not one (for decode's message), or -1.
    int32_t first_non_decode_member() const { return first_non_decode_member_; }

private:
    friend class Cache;
    kernels::BatchArrays arrays_at(const void* base) const;
    const void* storage() const { return storage_.data(); }
    int64_t storage_bytes() const { return storage_bytes_; }

    std::vector<Member> members_;
    std::vector<int64_t> storage_;  // int64 elements so slot_mapping is aligned
    int64_t storage_bytes_ = 0;
    // Byte offsets of each array inside storage_ (and inside the device copy).
    int64_t slot_offset_ = 0, kv_indptr_offset_ = 0, page_indices_offset_ = 0, last_len_offset_ = 0,
            qo_indptr_offset_ = 0, kv_len_offset_ = 0;
    kernels::BatchArrays host_{};
    kernels::BatchArrays device_arrays_{};
    kernels::PlanCache plans_;
    bool one_query_per_sequence_ = true;
    int32_t first_non_decode_member_ = -1;

    // ---- owned by the cache, under its mutex ----
    const Cache* owner_ = nullptr;  // null once destroyed or its cache is gone
    // Why the batch may no longer be used: sequence `stale_seq_` was `stale_change_` (null: valid).
    const char* stale_change_ = nullptr;
    int64_t stale_seq_ = 0;
    int32_t running_ = 0;           // kernel calls with this batch in progress
    device::Metadata metadata_;
    void* stream_ = nullptr;
};

}  // namespace pagedkv
