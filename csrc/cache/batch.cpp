#include "cache/batch.h"

#include <algorithm>
#include <climits>

#include "common/error.h"

namespace pagedkv {

namespace {
// Leading block-table entries that are the same page in every sequence and fully computed in all.
int32_t shared_prefix_pages(const std::vector<const Sequence*>& sequences, int32_t page_size) {
    if (sequences.size() < 2) return 0;
    int64_t limit = INT64_MAX;
    for (const Sequence* s : sequences) limit = std::min(limit, s->num_computed / page_size);
    int32_t shared = 0;
    for (; shared < limit; ++shared) {
        int32_t page = sequences[0]->block_table[size_t(shared)];
        for (const Sequence* s : sequences)
            if (s->block_table[size_t(shared)] != page) return shared;
    }
    return shared;
}
}  // namespace

Batch::Batch(const std::vector<const Sequence*>& sequences, int32_t page_size) {
    int64_t num_seqs = int64_t(sequences.size());
    int64_t num_pages = 0, num_qo = 0;
    for (const Sequence* s : sequences) {
        PAGEDKV_REQUIRE(s->num_tokens() <= INT32_MAX, PAGEDKV_ERR_INVALID_ARGUMENT, "sequence ", s->id, " has ",
                        s->num_tokens(), " tokens, more than an int32 batch array can describe");
        num_pages += int64_t(s->block_table.size());
        num_qo += s->num_tokens() - s->num_computed;
    }
    PAGEDKV_REQUIRE(num_pages <= INT32_MAX && num_qo <= INT32_MAX, PAGEDKV_ERR_INVALID_ARGUMENT,
                    "the batch has ", num_pages, " pages and ", num_qo,
                    " query tokens; each must fit in int32");

    slot_offset_ = 0;
    kv_indptr_offset_ = slot_offset_ + num_qo * 8;
    page_indices_offset_ = kv_indptr_offset_ + (num_seqs + 1) * 4;
    last_len_offset_ = page_indices_offset_ + num_pages * 4;
    qo_indptr_offset_ = last_len_offset_ + num_seqs * 4;
    kv_len_offset_ = qo_indptr_offset_ + (num_seqs + 1) * 4;
    storage_bytes_ = kv_len_offset_ + num_seqs * 4;
    storage_.assign(size_t((storage_bytes_ + 7) / 8), 0);
    members_.reserve(sequences.size());

    auto* base = reinterpret_cast<unsigned char*>(storage_.data());
    auto* slots = reinterpret_cast<int64_t*>(base + slot_offset_);
    auto* kv_indptr = reinterpret_cast<int32_t*>(base + kv_indptr_offset_);
    auto* page_indices = reinterpret_cast<int32_t*>(base + page_indices_offset_);
    auto* last_len = reinterpret_cast<int32_t*>(base + last_len_offset_);
    auto* qo_indptr = reinterpret_cast<int32_t*>(base + qo_indptr_offset_);
    auto* kv_len = reinterpret_cast<int32_t*>(base + kv_len_offset_);

    int64_t max_kv = 0, max_qo = 0, page_cursor = 0, qo_cursor = 0;
    kv_indptr[0] = qo_indptr[0] = 0;
    for (size_t i = 0; i < sequences.size(); ++i) {
        const Sequence& s = *sequences[i];
        members_.push_back({s.id, s.num_tokens()});
        std::copy(s.block_table.begin(), s.block_table.end(), page_indices + page_cursor);
        page_cursor += int64_t(s.block_table.size());
        kv_indptr[i + 1] = int32_t(page_cursor);
        int64_t in_last = s.num_tokens() - (int64_t(s.block_table.size()) - 1) * page_size;
        last_len[i] = s.block_table.empty() ? 0 : int32_t(in_last);
        for (int64_t position = s.num_computed; position < s.num_tokens(); ++position)
            slots[qo_cursor++] = int64_t(s.block_table[size_t(position / page_size)]) * page_size +
                                 position % page_size;
        qo_indptr[i + 1] = int32_t(qo_cursor);
        kv_len[i] = int32_t(s.num_tokens());
        if (s.num_tokens() - s.num_computed != 1 && first_non_decode_member_ < 0) {
            one_query_per_sequence_ = false;
            first_non_decode_member_ = int32_t(i);
        }
        max_kv = std::max(max_kv, s.num_tokens());
        max_qo = std::max(max_qo, s.num_tokens() - s.num_computed);
    }
    host_ = arrays_at(base);
    host_.num_seqs = int32_t(num_seqs);
    host_.num_pages = int32_t(num_pages);
    host_.shared_prefix_pages = shared_prefix_pages(sequences, page_size);
    host_.num_qo_tokens = num_qo;
    host_.max_kv_len = max_kv;
    host_.max_qo_len = max_qo;
    host_.plans = &plans_;
    device_arrays_ = host_;
}

kernels::BatchArrays Batch::arrays_at(const void* base_pointer) const {
    auto* base = static_cast<const unsigned char*>(base_pointer);
    kernels::BatchArrays arrays = host_;
    arrays.slot_mapping = reinterpret_cast<const int64_t*>(base + slot_offset_);
    arrays.kv_indptr = reinterpret_cast<const int32_t*>(base + kv_indptr_offset_);
    arrays.kv_page_indices = reinterpret_cast<const int32_t*>(base + page_indices_offset_);
    arrays.kv_last_page_len = reinterpret_cast<const int32_t*>(base + last_len_offset_);
    arrays.qo_indptr = reinterpret_cast<const int32_t*>(base + qo_indptr_offset_);
    arrays.kv_len = reinterpret_cast<const int32_t*>(base + kv_len_offset_);
    return arrays;
}

}  // namespace pagedkv
