// The merge of two partial attention states over disjoint KV ranges, written once and used by
// split-KV decode, cascade attention and pagedkv_merge_states.
#pragma once

#include <cstdint>

namespace pagedkv::kernels::cpu {

// A state is a normalised value row (head_dim floats) and the natural-log log-sum-exp of its
// scores; lse = -inf is the empty state (its value is ignored; two empty states merge to zeros).
// Computes the state of the union:
//   out = (e^lse_a * a + e^lse_b * b) / (e^lse_a + e^lse_b),  out_lse = log(e^lse_a + e^lse_b).
// out may alias value_a or value_b.
void merge_state(const float* value_a, float lse_a, const float* value_b, float lse_b, int32_t head_dim,
                 float* out, float* out_lse);

}  // namespace pagedkv::kernels::cpu
