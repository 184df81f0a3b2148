// What each KV format stores per token and per (layer, K|V, head) run of a page: the byte
// geometry of pagedkv.h's layout, in one place for the cache, the copies and every kernel.
#pragma once

#include <cstdint>

#include "pagedkv.h"

namespace pagedkv {

// Dims that share one scale in the group formats (and one Hadamard rotation).
constexpr int32_t kQuantGroup = 32;
// Bytes after the codes of an FP8 run: its f32 scale, padded so the next run stays aligned.
constexpr int32_t kFp8TailBytes = 16;
// Runs of the quantized formats start at multiples of this (16-byte vector loads).
constexpr int32_t kRunAlign = 16;

constexpr bool is_kv_dtype(int32_t dtype) { return dtype >= PAGEDKV_DTYPE_F32 && dtype <= PAGEDKV_DTYPE_Q4; }
constexpr bool is_quantized_dtype(int32_t dtype) { return dtype >= PAGEDKV_DTYPE_FP8_E4M3 && dtype <= PAGEDKV_DTYPE_Q4; }
constexpr bool is_group_dtype(int32_t dtype) { return dtype >= PAGEDKV_DTYPE_Q8 && dtype <= PAGEDKV_DTYPE_Q4; }

// Bits of one value's code of K (kv 0) or V (kv 1).
inline int32_t kv_code_bits(int32_t dtype, int32_t kv) {
    switch (dtype) {
        case PAGEDKV_DTYPE_F32: return 32;
        case PAGEDKV_DTYPE_F16:
        case PAGEDKV_DTYPE_BF16: return 16;
        case PAGEDKV_DTYPE_Q6: return kv == 0 ? 8 : 4;
        case PAGEDKV_DTYPE_Q4: return 4;
        default: return 8;  // FP8_E4M3, Q8
    }
}

// The largest code magnitude of a group format's K or V (127 for 8-bit, 7 for 4-bit codes).
inline int32_t kv_code_max(int32_t dtype, int32_t kv) { return kv_code_bits(dtype, kv) == 8 ? 127 : 7; }

// One (layer, K|V, head) run of page_size tokens: codes, then per-token group scales, then a tail.
struct KvRunGeometry {
    int32_t code_bytes;   // one token's codes (head_dim values)
    int32_t scale_bytes;  // one token's fp16 group scales (group formats), else 0
    int32_t tail_bytes;   // after all tokens: FP8's scale, else 0
    int64_t run_bytes;    // the whole run, padded for the quantized formats

    int64_t scales_at(int32_t page_size) const { return int64_t(page_size) * code_bytes; }
    int64_t tail_at(int32_t page_size) const { return int64_t(page_size) * (code_bytes + scale_bytes); }
};

inline KvRunGeometry kv_run_geometry(int32_t dtype, int32_t kv, int32_t head_dim, int32_t page_size) {
    KvRunGeometry g{};
    g.code_bytes = head_dim * kv_code_bits(dtype, kv) / 8;
    g.scale_bytes = is_group_dtype(dtype) ? head_dim / kQuantGroup * 2 : 0;
    g.tail_bytes = dtype == PAGEDKV_DTYPE_FP8_E4M3 ? kFp8TailBytes : 0;
    g.run_bytes = g.tail_at(page_size) + g.tail_bytes;
    if (is_quantized_dtype(dtype)) g.run_bytes = (g.run_bytes + kRunAlign - 1) / kRunAlign * kRunAlign;
    return g;
}

}  // namespace pagedkv
