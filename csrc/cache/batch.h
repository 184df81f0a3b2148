// A batch: the kernel metadata (FlashInfer-style arrays) of some sequences, snapshotted once.
// Host arrays live in one buffer; a CUDA cache gets a device copy in one device allocation.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/paged_layout.h"
#include "sequence/sequence.h"

namespace pagedkv {

class Batch {
public:
    struct Member {
        int64_t seq_id;
        int64_t num_tokens;  // length at batch creation: what pagedkv_batch_commit commits to
    };

    // Snapshot of `sequences` (live, distinct, at least one). Throws INVALID_ARGUMENT when the
    // batch does not fit the int32 arrays.
    Batch(const std::vector<const Sequence*>& sequences, int32_t page_size);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

    // Copies the arrays into one allocation on CUDA device `device_index` (call once).
    void upload_to_cuda(int32_t device_index);

    const kernels::BatchArrays& host_arrays() const { return host_; }
    // Equal to host_arrays() unless upload_to_cuda() was called.
    const kernels::BatchArrays& device_arrays() const { return device_ ? device_arrays_ : host_; }
    const std::vector<Member>& members() const { return members_; }

private:
    kernels::BatchArrays arrays_at(const void* base) const;

    std::vector<Member> members_;
    std::vector<int64_t> storage_;  // int64 elements so slot_mapping is aligned
    int64_t storage_bytes_ = 0;
    // Byte offsets of each array inside storage_ (and inside the device copy).
    int64_t slot_offset_ = 0, kv_indptr_offset_ = 0, page_indices_offset_ = 0, last_len_offset_ = 0,
            qo_indptr_offset_ = 0, kv_len_offset_ = 0;
    kernels::BatchArrays host_{};
    kernels::BatchArrays device_arrays_{};
    void* device_ = nullptr;
    int32_t device_index_ = 0;
};

}  // namespace pagedkv
