// Query rows of one KV head as the attention engine (attend.h) wants them: gathered from q for a
// run of tokens, converted to f32 and pre-scaled, attended, then normalised and written back.
// Shared by decode, prefill and cascade; one RowSet per worker thread.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/attend.h"
#include "kernels/paged_layout.h"

namespace pagedkv::kernels::cpu {

// The f32 attention state of rows laid out like the output ([token][qo head][head_dim] values,
// [token][qo head] lse), for partial results that are merged later.
struct StateBuffer {
    float* value;
    float* lse;
};

struct AttentionShape {
    int32_t num_qo_heads;
    int32_t head_dim;
    int32_t group;  // query heads per KV head
    float scale;    // sm_scale * log2(e): scores in the log2 domain
};

AttentionShape attention_shape(const PagedLayer& layer, const AttentionOptions& options);

class RowSet {
public:
    // The worker's own RowSet.
    static RowSet& for_this_thread();

    // Rows (token, g) for tokens [token_begin, token_end) of q and the group of KV head kv_head,
    // ordered token-major; row (t, g) attends KV positions up to min(first_pos + t - token_begin, cap).
    void gather(const AttentionShape& shape, const void* q, int32_t q_dtype, int32_t kv_head, int64_t token_begin,
                int64_t token_end, int32_t first_pos, int32_t cap = std::numeric_limits<int32_t>::max());

    void attend(AttendFn attend_fn, const PagedLayer& layer, const KvRange& range);

    // Writes every row's final result into out (out_dtype) and lse (may be null), at the rows of
    // tokens starting at token_begin; merges `prior` (same indexing, may be null) in first.
    void store_output(void* out, int32_t out_dtype, float* lse, const StateBuffer* prior);

    // Writes every row's normalised f32 state at the rows of tokens starting at dest_token.
    void store_state(const StateBuffer& dest, int64_t dest_token) const;

private:
    // Normalised value (head_dim floats into `value`) and natural-log lse of row i.
    float row_state(int32_t i, float* value) const;
    int64_t output_row(int64_t token_base, int32_t i) const;

    AttentionShape shape_{};
    int32_t kv_head_ = 0;
    int64_t token_begin_ = 0;
    int32_t rows_ = 0;
    std::vector<float> q_, acc_, row_max_, row_sum_, scratch_, value_;
    std::vector<int32_t> last_pos_;
    std::vector<QueryRows> blocks_;
};

// Rows per engine block: their score tile stays in L1 while the KV tile is applied.
constexpr int32_t kBlockRows = 64;

}  // namespace pagedkv::kernels::cpu

namespace pagedkv::kernels::cpu {

// out[offset + d] = value[d] in out_dtype, d < n.
void store_row(void* out, int32_t out_dtype, int64_t offset, const float* value, int32_t n);

}  // namespace pagedkv::kernels::cpu
