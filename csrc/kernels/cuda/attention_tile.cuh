// The tensor-core paged attention kernel (flash-attention-2 style, mma.sync m16n8k16, fp32
// accumulation). Included by attention.cu only, which instantiates it.
//
// Block = 4 warps = 128 threads: WARPS_M warps over the rows (16 rows each) times WARPS_N = 4 /
// WARPS_M warps over the KV (each takes 64 / WARPS_N positions of every 64-position tile, with its
// own online-softmax state; the states merge in the epilogue). WARPS_M = 1 suits decode (a GQA group
// is <= 16 rows), 4 suits prefill.
//
// Per KV tile: all threads gather 64 positions of K and V from their pages with 16-byte cp.async
// into shared memory, STAGES tiles deep (tiles t+1.. load while tile t computes: 3 deep for the
// memory-bound 16-row decode tile, 2 for the others, so that two prefill blocks fit on an SM; rows
// past the range are zero-filled). Each warp computes S = Q K^T for its 16 rows x its slice (Q fragments stay in
// registers), scales to base 2, masks (range end, causal limit of each row), updates the running
// max / sum, and accumulates O += P V with P rounded to the KV dtype. Shared rows are padded by 16
// bytes, so the 8 row addresses of each ldmatrix phase fall in distinct banks.
//
// Quantized KV (FORMAT = FP8_E4M3, Q8, Q6 or Q4; T = __half): each thread loads its 16-byte pieces
// of codes (and their group scales) of tile t+1 into registers with plain vector loads while tile t
// computes, then dequantizes them in registers (int8 / 4-bit code x fp16 scale, or e4m3 -> fp16 by
// bit moves) and stores the fp16 values into the same shared tiles the MMAs read; only one 64-position
// tile per stage ever exists in 16 bits, never the context. FP8's per-run scales are folded into the
// score (K: with the softmax scale, per column) and into the weights P (V: relative to the block's
// first run, whose scale multiplies the output). With the Hadamard rotation, q is rotated per group
// of 32 dims on its way into shared memory and the output rotated back before it is stored.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/merge_states.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/quant.cuh"

namespace pagedkv::kernels::cuda {

constexpr int kTileThreads = 128;
constexpr int kTileKv = 64;  // KV positions per pipeline stage
constexpr float kLn2 = 0.69314718055994531f;

// Pipeline depth of a tile shape.
template <int WARPS_M>
constexpr int tile_stages() {
    return WARPS_M == 1 ? 3 : 2;
}

// Shared memory of one block: the Q tile plus the stages' K and V tiles, rows padded to D + 8.
template <int D, int WARPS_M>
constexpr size_t tile_smem_bytes() {
    return size_t(16 * WARPS_M + 2 * tile_stages<WARPS_M>() * kTileKv) * (D + 8) * sizeof(uint16_t);
}

// The sequence owning query token `token`: the last s < num_seqs with qo_indptr[s] <= token
// (sequences without query tokens have qo_indptr[s] == qo_indptr[s + 1] and are skipped).
__device__ __forceinline__ int32_t sequence_of_token(const int32_t* qo_indptr, int32_t num_seqs, int32_t token) {
    int32_t lo = 0, hi = num_seqs - 1;
    while (lo < hi) {
        int32_t mid = (lo + hi + 1) >> 1;
        if (qo_indptr[mid] <= token) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

// The 16-byte pieces of one tile's codes one thread loads (FORMAT a quantized dtype, D 64 or 128):
// K and V rows of D * bits / 8 bytes, 64 rows, 128 threads.
template <int D, int FORMAT>
struct QuantTile {
    static constexpr int K_BITS = FORMAT == PAGEDKV_DTYPE_Q4 ? 4 : 8;
    static constexpr int V_BITS = FORMAT == PAGEDKV_DTYPE_Q4 || FORMAT == PAGEDKV_DTYPE_Q6 ? 4 : 8;
    static constexpr int K_ROW_PIECES = D * K_BITS / 128, V_ROW_PIECES = D * V_BITS / 128;
    static constexpr int K_PIECES = kTileKv * K_ROW_PIECES / kTileThreads;  // per thread
    static constexpr int V_PIECES = kTileKv * V_ROW_PIECES / kTileThreads;
    static_assert(K_PIECES >= 1 && V_PIECES >= 1 && kTileKv * K_ROW_PIECES % kTileThreads == 0 &&
                      kTileKv * V_ROW_PIECES % kTileThreads == 0,
                  "a tile's pieces must spread evenly over the threads");
    static constexpr bool FP8 = FORMAT == PAGEDKV_DTYPE_FP8_E4M3;
    static_assert(kTileThreads == 2 * kTileKv, "FP8: threads [0, 64) take K's column scales, [64, 128) V's");

    uint4 k_codes[K_PIECES], v_codes[V_PIECES];
    uint16_t k_scales[K_PIECES], v_scales[V_PIECES];  // group formats: each piece's fp16 scale (0: empty row)
    float run_scale;  // FP8: the run scale of column tid % 64 (K for tid < 64, V above), 0 past the range

    // Loads tile positions [pos0, pos0 + 64) below kv_end; rows past it become zeros.
    __device__ __forceinline__ void fetch(const AttentionWork& w, const int32_t* pages, int32_t kv_head, int32_t pos0,
                                          int32_t kv_end, int tid) {
        auto piece = [&](int32_t kv, int e, int row_pieces, uint4& codes, uint16_t& scale) {
            const int32_t pos = pos0 + e / row_pieces, in_row = e % row_pieces;
            codes = make_uint4(0, 0, 0, 0);
            scale = 0;
            if (pos >= kv_end) return;
            const int32_t slot = pos / w.page_size, in_page = pos - slot * w.page_size;
            const uint8_t* run = w.quant.run(w.pool, pages[slot], kv, kv_head);
            codes = *reinterpret_cast<const uint4*>(run + int64_t(in_page) * w.quant.code_bytes[kv] + in_row * 16);
            if (!FP8) {
                const int32_t group = in_row * 16 * 8 / (kv == 0 ? K_BITS : V_BITS) / kQuantGroup;
                scale = reinterpret_cast<const uint16_t*>(run + w.quant.scales_at[kv])[int64_t(in_page) * w.quant.groups + group];
            }
        };
#pragma unroll
        for (int i = 0; i < K_PIECES; ++i) piece(0, tid + i * kTileThreads, K_ROW_PIECES, k_codes[i], k_scales[i]);
#pragma unroll
        for (int i = 0; i < V_PIECES; ++i) piece(1, tid + i * kTileThreads, V_ROW_PIECES, v_codes[i], v_scales[i]);
        if (FP8) {
            const int32_t kv = tid / kTileKv, pos = pos0 + tid % kTileKv;
            run_scale = 0.0f;
            if (pos < kv_end) {
                const int32_t slot = pos / w.page_size;
                run_scale = fp8_run_scale(w.quant.run(w.pool, pages[slot], kv, kv_head), w.quant, kv);
            }
        }
    }

    // Dequantizes the registers into the stage's fp16 K and V tiles (rows of STRIDE halves), and for
    // FP8 the columns' factors: k_factor = softmax scale (base 2) x 256 x K run scale, v_factor = V run
    // scale / the block's reference V scale.
    template <int STRIDE>
    __device__ __forceinline__ void deposit(uint16_t* k_dst, uint16_t* v_dst, float* k_factor, float* v_factor,
                                            float sm_scale_log2, float v_reference, int tid) const {
#pragma unroll
        for (int i = 0; i < K_PIECES; ++i) store_piece<K_BITS, K_ROW_PIECES, STRIDE>(k_dst, tid + i * kTileThreads, k_codes[i], k_scales[i]);
#pragma unroll
        for (int i = 0; i < V_PIECES; ++i) store_piece<V_BITS, V_ROW_PIECES, STRIDE>(v_dst, tid + i * kTileThreads, v_codes[i], v_scales[i]);
        if (FP8) {
            if (tid < kTileKv) {
                k_factor[tid] = sm_scale_log2 * kE4m3FromHalf * run_scale;
            } else {
                v_factor[tid - kTileKv] = run_scale / v_reference;
            }
        }
    }

    template <int BITS, int ROW_PIECES, int STRIDE>
    __device__ __forceinline__ static void store_piece(uint16_t* dst, int e, const uint4& codes, uint16_t scale_bits) {
        const uint32_t words[4] = {codes.x, codes.y, codes.z, codes.w};
        uint16_t* row = dst + (e / ROW_PIECES) * STRIDE;
        const int in_row = e % ROW_PIECES;
        if (FP8) {  // 16 dims: bytes -> fp16 bits of value / 256
            uint32_t h[8];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                h[2 * j] = e4m3x2_to_half2_bits(words[j] & 0xffffu);
                h[2 * j + 1] = e4m3x2_to_half2_bits(words[j] >> 16);
            }
            *reinterpret_cast<uint4*>(row + in_row * 16) = make_uint4(h[0], h[1], h[2], h[3]);
            *reinterpret_cast<uint4*>(row + in_row * 16 + 8) = make_uint4(h[4], h[5], h[6], h[7]);
        } else if (BITS == 8) {  // 16 dims of int8 codes times the group's scale
            const float s = half_bits_to_float(scale_bits);
            uint32_t h[8];
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const uint32_t pair = words[j / 2] >> (16 * (j % 2));
                h[j] = Half16<__half>::pack2(float(int8_t(pair & 0xffu)) * s, float(int8_t(pair >> 8)) * s);
            }
            *reinterpret_cast<uint4*>(row + in_row * 16) = make_uint4(h[0], h[1], h[2], h[3]);
            *reinterpret_cast<uint4*>(row + in_row * 16 + 8) = make_uint4(h[4], h[5], h[6], h[7]);
        } else {  // one group of 32 dims: byte i holds dim i (low nibble) and dim i + 16 (high), code + 8
            const float s = half_bits_to_float(scale_bits), offset = -8.0f * s;
            uint32_t low[8], high[8];
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const uint32_t pair = words[j / 2] >> (16 * (j % 2));  // bytes 2j, 2j + 1
                low[j] = Half16<__half>::pack2(fmaf(float(pair & 0xfu), s, offset), fmaf(float((pair >> 8) & 0xfu), s, offset));
                high[j] = Half16<__half>::pack2(fmaf(float((pair >> 4) & 0xfu), s, offset), fmaf(float((pair >> 12) & 0xfu), s, offset));
            }
            uint16_t* group = row + in_row * kQuantGroup;
            *reinterpret_cast<uint4*>(group) = make_uint4(low[0], low[1], low[2], low[3]);
            *reinterpret_cast<uint4*>(group + 8) = make_uint4(low[4], low[5], low[6], low[7]);
            *reinterpret_cast<uint4*>(group + 16) = make_uint4(high[0], high[1], high[2], high[3]);
            *reinterpret_cast<uint4*>(group + 24) = make_uint4(high[4], high[5], high[6], high[7]);
        }
    }
};

// Dense KV (FORMAT 0) has no quantized tile; this stands in for it so one kernel body serves both.
struct NoQuantTile {};

template <class T, int D, int WARPS_M, int FORMAT = 0>
__global__ void __launch_bounds__(kTileThreads) paged_attention_tile_kernel(const AttentionWork w) {
    constexpr int WARPS_N = 4 / WARPS_M;
    constexpr int ROWS = 16 * WARPS_M;
    constexpr int NW = kTileKv / WARPS_N;  // KV positions of one warp per tile
    constexpr int STRIDE = D + 8;          // shared row stride in elements (also of the fp32 scratch)
    constexpr int PIECES = D / 8;          // 16-byte pieces per row
    constexpr int STAGES = tile_stages<WARPS_M>();
    constexpr bool QUANT = FORMAT != 0, FP8 = FORMAT == PAGEDKV_DTYPE_FP8_E4M3;
    static_assert(!QUANT || std::is_same_v<T, __half>, "quantized KV is dequantized to fp16");
    static_assert(WARPS_M * WARPS_N == 4 && NW % 16 == 0 && D % 16 == 0, "bad tile shape");
    static_assert(WARPS_N * ROWS * STRIDE * sizeof(float) <= 2 * STAGES * kTileKv * STRIDE * sizeof(uint16_t),
                  "epilogue scratch must fit in the K/V buffers");

    extern __shared__ uint4 smem[];
    uint16_t* q_s = reinterpret_cast<uint16_t*>(smem);
    uint16_t* k_s = q_s + ROWS * STRIDE;
    uint16_t* v_s = k_s + STAGES * kTileKv * STRIDE;
    float* scratch = reinterpret_cast<float*>(k_s);  // epilogue only: [WARPS_N][ROWS][STRIDE]

    __shared__ int32_t row_token_s[ROWS];  // query token of each row, -1 when the row is empty
    __shared__ int32_t row_head_s[ROWS];   // its query head
    __shared__ int32_t row_limit_s[ROWS];  // last KV position it may see (-1: none)
    __shared__ float row_m_s[WARPS_N][ROWS];
    __shared__ float row_d_s[WARPS_N][ROWS];
    __shared__ float row_weight_s[WARPS_N][ROWS];
    __shared__ float k_factor_s[FP8 ? STAGES : 1][kTileKv];  // FP8: per column of each stage (see QuantTile)
    __shared__ float v_factor_s[FP8 ? STAGES : 1][kTileKv];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int warp_m = warp % WARPS_M, warp_n = warp / WARPS_M;
    const int g = lane >> 2, t4 = lane & 3;

    // Block -> (chunk, row set, KV head, row tile); row tiles run last-first (causal: heaviest first).
    int64_t index = blockIdx.x;
    const int32_t q_tile = w.num_q_tiles - 1 - int32_t(index % w.num_q_tiles);
    index /= w.num_q_tiles;
    const int32_t kv_head = int32_t(index % w.num_kv_heads);
    index /= w.num_kv_heads;
    const int32_t row_set = int32_t(index % w.num_row_sets);
    const int32_t chunk = int32_t(index / w.num_row_sets);

    int32_t q_begin, rows_total, seq_qo_len = 0, seq_kv_len = 0;
    int64_t kv_lo, kv_hi;  // this block's KV positions [kv_lo, kv_hi)
    const int32_t* pages;
    if (w.shared_prefix) {
        q_begin = 0;
        rows_total = w.num_qo_tokens * w.group_size;
        pages = w.kv_page_indices + w.kv_indptr[0];
        kv_lo = int64_t(chunk) * w.kv_chunk;
        kv_hi = min(int64_t(w.prefix_len), kv_lo + w.kv_chunk);
    } else {
        q_begin = w.qo_indptr[row_set];
        seq_qo_len = w.qo_indptr[row_set + 1] - q_begin;
        rows_total = seq_qo_len * w.group_size;
        seq_kv_len = w.kv_len[row_set];
        pages = w.kv_page_indices + w.kv_indptr[row_set];
        kv_lo = int64_t(w.kv_begin) + int64_t(chunk) * w.kv_chunk;
        kv_hi = min(int64_t(seq_kv_len), kv_lo + w.kv_chunk);
    }
    const int32_t row0 = q_tile * ROWS;
    if (row0 >= rows_total) return;  // uniform: this sequence has fewer rows

    if (tid < ROWS) {
        int32_t r = row0 + tid, token = -1, head = 0, limit = -1;
        if (r < rows_total) {
            int32_t j = r / w.group_size;
            head = kv_head * w.group_size + (r - j * w.group_size);
            token = q_begin + j;
            if (w.shared_prefix) {
                int32_t s = sequence_of_token(w.qo_indptr, w.num_seqs, token);
                int32_t first = w.qo_indptr[s];
                limit = w.kv_len[s] - (w.qo_indptr[s + 1] - first) + (token - first);
            } else {
                limit = seq_kv_len - seq_qo_len + j;
            }
        }
        row_token_s[tid] = token;
        row_head_s[tid] = head;
        row_limit_s[tid] = limit;
    }
    __syncthreads();

    int32_t max_limit = -1;
#pragma unroll 8
    for (int r = 0; r < ROWS; ++r) max_limit = max(max_limit, row_limit_s[r]);
    // Positions past every row's causal limit are never loaded.
    const int32_t kv_start = int32_t(kv_lo);
    const int32_t kv_end = int32_t(min(kv_hi, int64_t(max_limit) + 1));
    const int32_t num_tiles = kv_end > kv_start ? ceil_div(kv_end - kv_start, kTileKv) : 0;

    const uint16_t* pool = static_cast<const uint16_t*>(w.pool);
    const int64_t head_offset = int64_t(w.layer) * 2 * w.slab_stride + int64_t(kv_head) * w.page_size * D;
    auto load_tile = [&](int32_t tile, int stage) {
        const int32_t pos0 = kv_start + tile * kTileKv;
        uint16_t* k_dst = k_s + stage * kTileKv * STRIDE;
        uint16_t* v_dst = v_s + stage * kTileKv * STRIDE;
        constexpr int kPerThread = kTileKv * PIECES / kTileThreads;
        const uint16_t* src[kPerThread];
        // Page lookups first, so their loads are all in flight before the copies need them.
#pragma unroll
        for (int i = 0; i < kPerThread; ++i) {
            int e = tid + i * kTileThreads;
            int32_t pos = pos0 + e / PIECES;
            src[i] = nullptr;
            if (pos < kv_end) {
                int32_t page_slot = pos / w.page_size;
                int32_t in_page = pos - page_slot * w.page_size;
                src[i] = pool + int64_t(pages[page_slot]) * w.page_stride + head_offset + int64_t(in_page) * D +
                         (e % PIECES) * 8;
            }
        }
#pragma unroll
        for (int i = 0; i < kPerThread; ++i) {
            int e = tid + i * kTileThreads;
            int at = (e / PIECES) * STRIDE + (e % PIECES) * 8;
            bool valid = src[i] != nullptr;
            cp_async_16(k_dst + at, valid ? src[i] : pool, valid);
            cp_async_16(v_dst + at, valid ? src[i] + w.slab_stride : pool, valid);
        }
    };

    // FP8: V's run scales enter P relative to the block's first run, whose scale (x 256, the fp16
    // decoding's factor) multiplies the output.
    float v_reference = 1.0f, out_scale = 1.0f;
    [[maybe_unused]] std::conditional_t<QUANT, QuantTile<D, FORMAT>, NoQuantTile> quant_regs;
    if constexpr (QUANT) {
        if constexpr (FP8) {
            if (num_tiles > 0) {
                v_reference = fp8_run_scale(w.quant.run(w.pool, pages[kv_start / w.page_size], 1, kv_head), w.quant, 1);
                out_scale = kE4m3FromHalf * v_reference;
            }
        }
        if (num_tiles > 0) {
            quant_regs.fetch(w, pages, kv_head, kv_start, kv_end, tid);
            quant_regs.template deposit<STRIDE>(k_s, v_s, k_factor_s[0], v_factor_s[0], w.sm_scale_log2, v_reference, tid);
        }
    } else {
#pragma unroll
        for (int stage = 0; stage < STAGES - 1; ++stage) {
            if (stage < num_tiles) load_tile(stage, stage);
            cp_async_commit();  // one group per tile, empty or not, keeps the wait counts uniform
        }
    }

    // Q tile -> shared, converted to the KV dtype; empty rows are zero. Hadamard-rotated KV: q is
    // rotated per group of 32 dims first (the same transform as the stored K, so q.k is unchanged).
    const bool rotate = QUANT && w.hadamard;
    if (rotate) {
        for (int e = tid; e < ROWS * (D / kQuantGroup); e += kTileThreads) {
            const int r = e / (D / kQuantGroup), group = e % (D / kQuantGroup);
            const int32_t token = row_token_s[r];
            float x[kQuantGroup];
#pragma unroll
            for (int k = 0; k < kQuantGroup; ++k) x[k] = 0.0f;
            if (token >= 0) {
                const int64_t at = (int64_t(token) * w.num_qo_heads + row_head_s[r]) * D + group * kQuantGroup;
#pragma unroll
                for (int part = 0; part < kQuantGroup / 8; ++part) {
                    float v[8];
                    load8(w.q, at + part * 8, w.q_dtype, v);
#pragma unroll
                    for (int k = 0; k < 8; ++k) x[part * 8 + k] = v[k];
                }
                hadamard32_registers(x);
            }
#pragma unroll
            for (int part = 0; part < kQuantGroup / 8; ++part) {
                float v[8];
#pragma unroll
                for (int k = 0; k < 8; ++k) v[k] = x[part * 8 + k];
                *reinterpret_cast<uint4*>(q_s + r * STRIDE + group * kQuantGroup + part * 8) = pack8(v, Half16<T>::dtype);
            }
        }
    } else {
        for (int e = tid; e < ROWS * PIECES; e += kTileThreads) {
            int r = e / PIECES, piece = e % PIECES;
            int32_t token = row_token_s[r];
            float v[8];
            if (token >= 0) {
                load8(w.q, (int64_t(token) * w.num_qo_heads + row_head_s[r]) * D + piece * 8, w.q_dtype, v);
            } else {
#pragma unroll
                for (int k = 0; k < 8; ++k) v[k] = 0.0f;
            }
            *reinterpret_cast<uint4*>(q_s + r * STRIDE + piece * 8) = pack8(v, Half16<T>::dtype);
        }
    }
    __syncthreads();

    uint32_t q_frag[D / 16][4];
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd)
        ldmatrix_x4(q_frag[kd], q_s + (warp_m * 16 + (lane & 15)) * STRIDE + kd * 16 + (lane >> 4) * 8);

    // This thread's two rows (g and g + 8 of the warp's 16) and the warp's extreme limits.
    const int32_t limit_lo = row_limit_s[warp_m * 16 + g];
    const int32_t limit_hi = row_limit_s[warp_m * 16 + g + 8];
    int32_t warp_limit_max = max(limit_lo, limit_hi), warp_limit_min = min(limit_lo, limit_hi);
#pragma unroll
    for (int offset = 4; offset < 32; offset <<= 1) {
        warp_limit_max = max(warp_limit_max, __shfl_xor_sync(0xffffffffu, warp_limit_max, offset));
        warp_limit_min = min(warp_limit_min, __shfl_xor_sync(0xffffffffu, warp_limit_min, offset));
    }

    float m[2] = {-INFINITY, -INFINITY};  // running max of the base-2 scores, per row
    float d[2] = {0.0f, 0.0f};            // running sum of 2^(s - m) over this thread's columns
    float o[D / 8][4];
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb) o[nb][0] = o[nb][1] = o[nb][2] = o[nb][3] = 0.0f;

    for (int32_t tile = 0; tile < num_tiles; ++tile) {
        if constexpr (QUANT) {
            __syncthreads();  // this tile deposited; everyone is done with the buffer of tile - 1
            if (tile + 1 < num_tiles) quant_regs.fetch(w, pages, kv_head, kv_start + (tile + 1) * kTileKv, kv_end, tid);
        } else {
            cp_async_wait<STAGES - 2>();
            __syncthreads();  // this tile visible to all; everyone is done with the buffer of tile - 1
            if (tile + STAGES - 1 < num_tiles) load_tile(tile + STAGES - 1, (tile + STAGES - 1) % STAGES);
            cp_async_commit();
        }

        const int stage = tile % STAGES;
        const int32_t warp_pos0 = kv_start + tile * kTileKv + warp_n * NW;
        // Warps whose rows see none of this slice skip it (all masked).
        if (warp_pos0 < kv_end && warp_pos0 <= warp_limit_max) {
            const uint16_t* k_tile = k_s + (stage * kTileKv + warp_n * NW) * STRIDE;
            const uint16_t* v_tile = v_s + (stage * kTileKv + warp_n * NW) * STRIDE;

            float s[NW / 8][4];
#pragma unroll
            for (int nt = 0; nt < NW / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int kd = 0; kd < D / 16; ++kd) {
#pragma unroll
                for (int np = 0; np < NW / 16; ++np) {
                    uint32_t b[4];  // B fragments of positions np*16 + 0..7 (b[0], b[1]) and + 8..15 (b[2], b[3])
                    ldmatrix_x4(b, k_tile + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * STRIDE + kd * 16 +
                                       ((lane >> 3) & 1) * 8);
                    mma_16816<T>(s[2 * np], q_frag[kd], b[0], b[1]);
                    mma_16816<T>(s[2 * np + 1], q_frag[kd], b[2], b[3]);
                }
            }

            const bool unmasked = warp_pos0 + NW <= kv_end && warp_pos0 + NW - 1 <= warp_limit_min;
#pragma unroll
            for (int nt = 0; nt < NW / 8; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    // FP8: the K run's scale is folded into the softmax scale, per column.
                    float x = s[nt][e] * (FP8 ? k_factor_s[FP8 ? stage : 0][warp_n * NW + nt * 8 + 2 * t4 + (e & 1)]
                                              : w.sm_scale_log2);
                    if (!unmasked) {
                        int32_t pos = warp_pos0 + nt * 8 + 2 * t4 + (e & 1);
                        int32_t limit = e < 2 ? limit_lo : limit_hi;
                        if (pos >= kv_end || pos > limit) x = -INFINITY;
                    }
                    s[nt][e] = x;
                }
            }

#pragma unroll
            for (int h = 0; h < 2; ++h) {  // h = 0: row g (elements 0, 1), h = 1: row g + 8 (elements 2, 3)
                float tile_max = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < NW / 8; ++nt) tile_max = fmaxf(tile_max, fmaxf(s[nt][2 * h], s[nt][2 * h + 1]));
                tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
                tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
                const float m_new = fmaxf(m[h], tile_max);
                const float base = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet stays at 0
                const float alpha = fast_exp2(m[h] - base);
                m[h] = m_new;
                d[h] *= alpha;
#pragma unroll
                for (int nb = 0; nb < D / 8; ++nb) o[nb][2 * h] *= alpha, o[nb][2 * h + 1] *= alpha;
#pragma unroll
                for (int nt = 0; nt < NW / 8; ++nt) {
                    float p0 = fast_exp2(s[nt][2 * h] - base), p1 = fast_exp2(s[nt][2 * h + 1] - base);
                    s[nt][2 * h] = p0, s[nt][2 * h + 1] = p1;
                    d[h] += p0 + p1;
                }
            }

            if constexpr (FP8) {  // the V run's scale (relative to the block's first) folded into P
#pragma unroll
                for (int nt = 0; nt < NW / 8; ++nt)
#pragma unroll
                    for (int e = 0; e < 4; ++e) s[nt][e] *= v_factor_s[stage][warp_n * NW + nt * 8 + 2 * t4 + (e & 1)];
            }
#pragma unroll
            for (int kk = 0; kk < NW / 16; ++kk) {
                // The S accumulators of positions kk*16 + 0..15 are exactly the A fragment of P.
                const uint32_t a[4] = {Half16<T>::pack2(s[2 * kk][0], s[2 * kk][1]),
                                       Half16<T>::pack2(s[2 * kk][2], s[2 * kk][3]),
                                       Half16<T>::pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                       Half16<T>::pack2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int dp = 0; dp < D / 16; ++dp) {
                    uint32_t b[4];  // V^T fragments of dims dp*16 + 0..7 (b[0], b[1]) and + 8..15 (b[2], b[3])
                    ldmatrix_x4_trans(b, v_tile + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * STRIDE + dp * 16 +
                                             (lane >> 4) * 8);
                    mma_16816<T>(o[2 * dp], a, b[0], b[1]);
                    mma_16816<T>(o[2 * dp + 1], a, b[2], b[3]);
                }
            }
        }
        if constexpr (QUANT) {
            if (tile + 1 < num_tiles) {  // the registers fetched above, into the next stage
                const int next = (tile + 1) % STAGES;
                quant_regs.template deposit<STRIDE>(k_s + next * kTileKv * STRIDE, v_s + next * kTileKv * STRIDE,
                                                    k_factor_s[FP8 ? next : 0], v_factor_s[FP8 ? next : 0],
                                                    w.sm_scale_log2, v_reference, tid);
            }
        }
    }

    // ---- epilogue: merge the WARPS_N states of each row, normalize, store -------------------------
    cp_async_wait<0>();
    __syncthreads();  // the K/V buffers become the scratch
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        d[h] += __shfl_xor_sync(0xffffffffu, d[h], 1);
        d[h] += __shfl_xor_sync(0xffffffffu, d[h], 2);
    }
    {
        const int r_lo = warp_m * 16 + g;
        float* mine = scratch + warp_n * ROWS * STRIDE;
#pragma unroll
        for (int nb = 0; nb < D / 8; ++nb) {
            *reinterpret_cast<float2*>(mine + r_lo * STRIDE + nb * 8 + 2 * t4) = make_float2(o[nb][0], o[nb][1]);
            *reinterpret_cast<float2*>(mine + (r_lo + 8) * STRIDE + nb * 8 + 2 * t4) = make_float2(o[nb][2], o[nb][3]);
        }
        if (t4 == 0) {
            row_m_s[warp_n][r_lo] = m[0], row_d_s[warp_n][r_lo] = d[0];
            row_m_s[warp_n][r_lo + 8] = m[1], row_d_s[warp_n][r_lo + 8] = d[1];
        }
    }
    __syncthreads();

    const bool partial = w.partial_v != nullptr;
    if (tid < ROWS) {
        // Each warp's state as (value, natural-log LSE), folded with the one merge function; the
        // weight of a warp's unnormalized sum is its share of the merged state over its own sum.
        float share[WARPS_N];
        float lse = -INFINITY;
#pragma unroll
        for (int wn = 0; wn < WARPS_N; ++wn) {
            float sum = row_d_s[wn][tid];
            float lse_w = sum > 0.0f ? (row_m_s[wn][tid] + log2f(sum)) * kLn2 : -INFINITY;
            MergeWeights mw = merge_weights(lse, lse_w);
#pragma unroll
            for (int prev = 0; prev < wn; ++prev) share[prev] *= mw.scale_a;
            share[wn] = mw.scale_b;
            lse = mw.lse;
        }
#pragma unroll
        for (int wn = 0; wn < WARPS_N; ++wn) row_weight_s[wn][tid] = share[wn] > 0.0f ? share[wn] / row_d_s[wn][tid] : 0.0f;
        int32_t token = row_token_s[tid];
        if (token >= 0) {
            int64_t row = int64_t(token) * w.num_qo_heads + row_head_s[tid];
            if (partial) {
                w.partial_lse[row * w.num_slots + w.slot_base + chunk] = lse;
            } else if (w.lse != nullptr) {
                w.lse[row] = lse;
            }
        }
    }
    __syncthreads();

    if (rotate) {  // per (row, group of 32): merge, rotate back, store
        for (int e = tid; e < ROWS * (D / kQuantGroup); e += kTileThreads) {
            const int r = e / (D / kQuantGroup), group = e % (D / kQuantGroup);
            const int32_t token = row_token_s[r];
            if (token < 0) continue;
            float x[kQuantGroup];
#pragma unroll
            for (int k = 0; k < kQuantGroup; ++k) x[k] = 0.0f;
#pragma unroll
            for (int wn = 0; wn < WARPS_N; ++wn) {
                const float weight = row_weight_s[wn][r];
                if (weight == 0.0f) continue;
                const float* from = scratch + (wn * ROWS + r) * STRIDE + group * kQuantGroup;
#pragma unroll
                for (int k = 0; k < kQuantGroup; ++k) x[k] += weight * from[k];
            }
            hadamard32_registers(x);
            const int64_t row = int64_t(token) * w.num_qo_heads + row_head_s[r];
#pragma unroll
            for (int part = 0; part < kQuantGroup / 4; ++part) {
                const float4 acc = make_float4(x[4 * part], x[4 * part + 1], x[4 * part + 2], x[4 * part + 3]);
                const int dim = group * kQuantGroup + 4 * part;
                if (partial) {
                    *reinterpret_cast<float4*>(w.partial_v + (row * w.num_slots + w.slot_base + chunk) * D + dim) = acc;
                } else {
                    store4(w.out, row * D + dim, w.out_dtype, acc);
                }
            }
        }
        return;
    }
    for (int e = tid; e < ROWS * (D / 4); e += kTileThreads) {
        int r = e / (D / 4), c = e % (D / 4);
        int32_t token = row_token_s[r];
        if (token < 0) continue;
        float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int wn = 0; wn < WARPS_N; ++wn) {
            float weight = row_weight_s[wn][r];
            if (weight != 0.0f) {
                float4 v = *reinterpret_cast<const float4*>(scratch + (wn * ROWS + r) * STRIDE + c * 4);
                acc.x += weight * v.x, acc.y += weight * v.y, acc.z += weight * v.z, acc.w += weight * v.w;
            }
        }
        if (FP8) acc.x *= out_scale, acc.y *= out_scale, acc.z *= out_scale, acc.w *= out_scale;
        int64_t row = int64_t(token) * w.num_qo_heads + row_head_s[r];
        if (partial) {
            *reinterpret_cast<float4*>(w.partial_v + (row * w.num_slots + w.slot_base + chunk) * D + c * 4) = acc;
        } else {
            store4(w.out, row * D + c * 4, w.out_dtype, acc);
        }
    }
}

}  // namespace pagedkv::kernels::cuda
