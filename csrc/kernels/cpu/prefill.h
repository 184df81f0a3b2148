// Prefill / extend attention restricted to KV positions >= kv_begin, optionally merged with a
// prior state: prefill_attention is kv_begin 0 with no prior; cascade runs each sequence's own
// part this way on top of the shared prefix's state.
#pragma once

#include <cstdint>

#include "kernels/cpu/query_rows.h"
#include "kernels/paged_layout.h"

namespace pagedkv::kernels::cpu {

void extend_attention(const PagedLayer& layer, const BatchArrays& batch, const AttentionOptions& options,
                      const void* q, void* out, float* lse, int32_t kv_begin, const StateBuffer* prior);

}  // namespace pagedkv::kernels::cpu
