#include "kernels/cpu/query_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/dtype.h"
#include "kernels/cpu/merge_states.h"
#include "kernels/cpu/vec_math.h"

namespace pagedkv::kernels::cpu {

AttentionShape attention_shape(const PagedLayer& layer, const AttentionOptions& options) {
    return {options.num_qo_heads, layer.head_dim, options.num_qo_heads / layer.num_kv_heads,
            options.sm_scale * vec_math::kLog2e};
}

void store_row(void* out, int32_t out_dtype, int64_t offset, const float* value, int32_t n) {
    if (out_dtype == PAGEDKV_DTYPE_F32) {
        std::memcpy(static_cast<float*>(out) + offset, value, sizeof(float) * size_t(n));
        return;
    }
    for (int32_t d = 0; d < n; ++d) store_from_float(out, offset + d, out_dtype, value[d]);
}

RowSet& RowSet::for_this_thread() {
    thread_local RowSet set;
    return set;
}

void RowSet::gather(const AttentionShape& shape, const void* q, int32_t q_dtype, int32_t kv_head,
                    int64_t token_begin, int64_t token_end, int32_t first_pos, int32_t cap) {
    shape_ = shape;
    kv_head_ = kv_head;
    token_begin_ = token_begin;
    const int32_t group = shape.group, head_dim = shape.head_dim;
    rows_ = int32_t((token_end - token_begin) * group);
    const size_t values = size_t(rows_) * size_t(head_dim);
    q_.resize(values);
    acc_.assign(values, 0.0f);
    row_max_.assign(size_t(rows_), -INFINITY);
    row_sum_.assign(size_t(rows_), 0.0f);
    last_pos_.resize(size_t(rows_));
    for (int32_t i = 0; i < rows_; ++i) {
        const int64_t t = i / group;
        const int64_t head = int64_t(kv_head) * group + i % group;
        const int64_t source = ((token_begin + t) * shape.num_qo_heads + head) * head_dim;
        float* row = q_.data() + int64_t(i) * head_dim;
        if (q_dtype == PAGEDKV_DTYPE_F32) {
            const float* src = static_cast<const float*>(q) + source;
            for (int32_t d = 0; d < head_dim; ++d) row[d] = src[d] * shape.scale;
        } else {
            for (int32_t d = 0; d < head_dim; ++d) row[d] = load_as_float(q, source + d, q_dtype) * shape.scale;
        }
        last_pos_[size_t(i)] = int32_t(std::min<int64_t>(int64_t(first_pos) + t, cap));
    }
    blocks_.clear();
    for (int32_t b = 0; b < rows_; b += kBlockRows) {
        const int32_t n = std::min(kBlockRows, rows_ - b);
        const int64_t at = int64_t(b) * head_dim;
        const int32_t max_last = *std::max_element(last_pos_.begin() + b, last_pos_.begin() + b + n);
        blocks_.push_back({q_.data() + at, last_pos_.data() + b, acc_.data() + at, row_max_.data() + b,
                           row_sum_.data() + b, n, max_last});
    }
    scratch_.resize(size_t(attend_scratch_floats(head_dim, std::min(rows_, kBlockRows))));
    value_.resize(size_t(head_dim));
}

void RowSet::attend(AttendFn attend_fn, const PagedLayer& layer, const KvRange& range) {
    if (range.begin >= range.end || blocks_.empty()) return;
    attend_fn(layer, range, blocks_.data(), int32_t(blocks_.size()), scratch_.data());
}

float RowSet::row_state(int32_t i, float* value) const {
    const int32_t head_dim = shape_.head_dim;
    const float sum = row_sum_[size_t(i)];
    if (sum == 0.0f) {  // no KV position in range: the empty state
        std::fill(value, value + head_dim, 0.0f);
        return -INFINITY;
    }
    const float inverse = 1.0f / sum;
    const float* acc = acc_.data() + int64_t(i) * head_dim;
    for (int32_t d = 0; d < head_dim; ++d) value[d] = acc[d] * inverse;
    return (row_max_[size_t(i)] + std::log2(sum)) * vec_math::kLn2;
}

int64_t RowSet::output_row(int64_t token_base, int32_t i) const {
    const int32_t group = shape_.group;
    return (token_base + i / group) * shape_.num_qo_heads + int64_t(kv_head_) * group + i % group;
}

void RowSet::store_output(void* out, int32_t out_dtype, float* lse, const StateBuffer* prior) {
    const int32_t head_dim = shape_.head_dim;
    float* value = value_.data();
    for (int32_t i = 0; i < rows_; ++i) {
        float row_lse = row_state(i, value);
        const int64_t row = output_row(token_begin_, i);
        if (prior)
            merge_state(value, row_lse, prior->value + row * head_dim, prior->lse[row], head_dim, value, &row_lse);
        store_row(out, out_dtype, row * head_dim, value, head_dim);
        if (lse) lse[row] = row_lse;
    }
}

void RowSet::store_state(const StateBuffer& dest, int64_t dest_token) const {
    for (int32_t i = 0; i < rows_; ++i) {
        const int64_t row = output_row(dest_token, i);
        dest.lse[row] = row_state(i, dest.value + row * shape_.head_dim);
    }
}

}  // namespace pagedkv::kernels::cpu
