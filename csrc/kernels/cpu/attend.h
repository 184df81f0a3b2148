// The inner engine shared by decode, prefill and cascade on the CPU: blocks of query rows of one
// KV head attend a range of that head's KV positions, tile by tile, with an online softmax.
// Each KV tile is read from the pages (and converted to f32) once and applied to every block,
// which is what makes cascade's shared prefix cheap. One implementation per ISA
// (attend_portable.cpp, attend_avx2.cpp, attend_avx512.cpp, attend_avx512_bf16.cpp) from the template in attend_impl.h.
#pragma once

#include <cstdint>

#include "kernels/cpu/isa.h"
#include "kernels/paged_layout.h"

namespace pagedkv::kernels::cpu {

// KV positions attended per tile; tiles start at multiples of kKvTile (the first of a range may
// be shorter), so a page of >= kKvTile f32 tokens is read in place, without a copy.
constexpr int32_t kKvTile = 32;

// Query rows (one query head of one token each) of one KV head, with their online-softmax state
// in the log2 domain: the true state is (row_max * ln 2, row_sum, acc / row_sum).
struct QueryRows {
    float* q;                 // rows x head_dim, pre-multiplied by sm_scale * log2(e) (the engine
                              // may reorder dims during a call; it restores them)
    const int32_t* last_pos;  // rows: the last KV position each row may attend (causal limit)
    float* acc;               // rows x head_dim: sum of p * v, not normalised
    float* row_max;           // rows: running max of the scores (-inf before any)
    float* row_sum;           // rows: sum of 2^(score - row_max)
    int32_t rows;
    int32_t max_last_pos;     // max of last_pos: tiles past it are skipped
};

// KV positions [begin, end) of one KV head of a sequence with block table `pages`.
struct KvRange {
    const int32_t* pages;
    int32_t kv_head;
    int32_t begin;
    int32_t end;
};

// Floats of scratch an attend call needs for blocks of at most max_rows rows.
int64_t attend_scratch_floats(int32_t head_dim, int32_t max_rows);

// Updates every block's state with the KV range. scratch: attend_scratch_floats() floats.
using AttendFn = void (*)(const PagedLayer& layer, const KvRange& range, QueryRows* blocks, int32_t num_blocks,
                          float* scratch);

AttendFn attend_function(Isa isa);

namespace portable {
void attend(const PagedLayer&, const KvRange&, QueryRows*, int32_t, float*);
}
namespace avx2 {
void attend(const PagedLayer&, const KvRange&, QueryRows*, int32_t, float*);
}
namespace avx512 {
void attend(const PagedLayer&, const KvRange&, QueryRows*, int32_t, float*);
}
namespace avx512_bf16 {
void attend(const PagedLayer&, const KvRange&, QueryRows*, int32_t, float*);
}

}  // namespace pagedkv::kernels::cpu
