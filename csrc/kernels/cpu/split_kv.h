// How long KV ranges are cut into chunks (split-KV), decided once per call from the batch shape
// (the plan; the workers just run it). Chunks are merged exactly through merge_state().
#pragma once

#include <cstdint>
#include <limits>

#include "kernels/cpu/attend.h"

namespace pagedkv::kernels::cpu {

constexpr int32_t kNoSplit = std::numeric_limits<int32_t>::max();

// Tokens per chunk when tasks attend KV ranges totalling total_tokens positions (summed over
// tasks) on `threads` workers. split_size: -1 never split, > 0 that many tokens (at least 16:
// tinier chunks only multiply tasks and partial states), 0 automatic: no task longer than a
// quarter of a thread's share (so long and short sequences balance), never below kMinChunk.
inline int32_t kv_chunk_tokens(int32_t split_size, int64_t total_tokens, int32_t threads) {
    constexpr int64_t kMinChunk = 512;
    constexpr int32_t kMinRequested = 16;
    if (split_size < 0) return kNoSplit;
    if (split_size > 0) return split_size > kMinRequested ? split_size : kMinRequested;
    const int64_t share = (total_tokens + 4 * int64_t(threads) - 1) / (4 * int64_t(threads));
    const int64_t chunk = (share + kKvTile - 1) / kKvTile * kKvTile;
    return chunk < kMinChunk ? int32_t(kMinChunk) : chunk >= kNoSplit ? kNoSplit : int32_t(chunk);
}

inline int32_t chunk_count(int32_t length, int32_t chunk) {
    return length <= chunk ? 1 : int32_t((int64_t(length) + chunk - 1) / chunk);
}

}  // namespace pagedkv::kernels::cpu
