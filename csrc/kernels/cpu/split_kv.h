// How long KV ranges are cut into chunks (split-KV), decided once per call from the batch shape
// (the plan; the workers just run it). Chunks are merged exactly through merge_state().
#pragma once

#include <cstdint>
#include <limits>

#include "kernels/cpu/attend.h"

namespace pagedkv::kernels::cpu {

constexpr int32_t kNoSplit = std::numeric_limits<int32_t>::max();

// Tokens per chunk for `work_items` independent (rows, KV range) tasks of up to max_kv_len
// positions on `threads` workers. split_size: -1 never split, > 0 that many tokens, 0 automatic:
// split only when there are fewer than 4 tasks per thread, never below kMinChunk tokens.
inline int32_t kv_chunk_tokens(int32_t split_size, int64_t max_kv_len, int64_t work_items, int32_t threads) {
    constexpr int64_t kMinChunk = 512;
    if (split_size < 0) return kNoSplit;
    if (split_size > 0) return split_size;
    const int64_t wanted = 4 * int64_t(threads);
    if (work_items <= 0 || work_items >= wanted || max_kv_len <= kMinChunk) return kNoSplit;
    const int64_t splits = (wanted + work_items - 1) / work_items;
    int64_t chunk = (max_kv_len + splits - 1) / splits;
    chunk = (chunk + kKvTile - 1) / kKvTile * kKvTile;
    if (chunk < kMinChunk) chunk = kMinChunk;
    return chunk >= max_kv_len ? kNoSplit : int32_t(chunk);
}

inline int32_t chunk_count(int32_t length, int32_t chunk) {
    return length <= chunk ? 1 : int32_t((int64_t(length) + chunk - 1) / chunk);
}

}  // namespace pagedkv::kernels::cpu
