// The attention engine of attend.h, written once over a vector traits type `Vec` (vec_*.h).
// Included once by each attend_<isa>.cpp, inside namespace pagedkv::kernels::cpu::<isa> where Vec
// is that ISA's traits, so every function here gets a distinct, ISA-specific symbol. For the same
// reason it calls no inline function of the standard library (only builtins and intrinsics).
//
// Per KV tile (kKvTile positions): find its K/V rows in the pages and prefetch the next tile's;
// convert it to f32 once when many rows will read it (else convert in registers); then for every
// block of query rows
//   S = Q K^T          register tiles of R rows x C positions, dot products over head_dim
//   online softmax     per row, masked causally, in the log2 domain, vectorized exp2
//   acc += P V         register tiles of R rows x C vectors of head_dim

namespace detail {

#define PAGEDKV_INLINE inline __attribute__((always_inline))

constexpr float kNegInf = -__builtin_huge_valf();
constexpr int W = Vec::W;
using reg = typename Vec::reg;

// Blocks with at most this many rows in all read 16-bit K/V straight from the pages, converting
// in registers (each element is used by few rows); larger ones convert each tile to f32 once.
constexpr int32_t kDirectRows = 8;

// Blocks with at least this many rows in all also get K transposed (head_dim x kKvTile), so
// S = Q K^T runs as outer products with no horizontal sums; the transpose pays off over many rows.
constexpr int32_t kTransposeRows = 32;

// Row formats the micro-kernels read: a pagedkv_dtype, or bf16 read 2W values at a time as an
// even-index and an odd-index vector (cheaper than widening). With kBf16Paired, q and acc rows
// are de-interleaved the same way (permute_pairs) for the duration of the call, so dot products
// and outputs pair up; only the first paired_dims() dims are read that way, the rest naturally.
constexpr int32_t kBf16Paired = -1;

constexpr int32_t natural(int32_t format) { return format == kBf16Paired ? int32_t(PAGEDKV_DTYPE_BF16) : format; }

template <int32_t kFormat>
PAGEDKV_INLINE int32_t paired_dims(int32_t head_dim) {
    return kFormat == kBf16Paired ? head_dim / (2 * W) * (2 * W) : 0;
}

PAGEDKV_INLINE int32_t min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
PAGEDKV_INLINE int32_t max_i32(int32_t a, int32_t b) { return a > b ? a : b; }

// ---- KV tiles -------------------------------------------------------------------------------

// One K and one V row pointer per position of a tile: into the pool (any dtype) or into the f32
// scratch a tile was converted to.
struct TileRows {
    const void* k[kKvTile];
    const void* v[kKvTile];
    const void* k_scale[kKvTile];  // quantized formats: the row's fp16 group scales, or FP8's run scale
    const void* v_scale[kKvTile];
};

// Vector d / W of a K or V row of dtype kDtype, as f32.
template <int32_t kFormat>
PAGEDKV_INLINE reg load_kv(const void* row, int32_t d) {
    constexpr int32_t kDtype = natural(kFormat);
    if constexpr (kDtype == PAGEDKV_DTYPE_F16) return Vec::load_f16(static_cast<const uint16_t*>(row) + d);
    else if constexpr (kDtype == PAGEDKV_DTYPE_BF16) return Vec::load_bf16(static_cast<const uint16_t*>(row) + d);
    else return Vec::load(static_cast<const float*>(row) + d);
}

template <int32_t kFormat>
PAGEDKV_INLINE reg load_kv_n(const void* row, int32_t d, int n) {
    constexpr int32_t kDtype = natural(kFormat);
    if constexpr (kDtype == PAGEDKV_DTYPE_F16) return Vec::load_f16_n(static_cast<const uint16_t*>(row) + d, n);
    else if constexpr (kDtype == PAGEDKV_DTYPE_BF16) return Vec::load_bf16_n(static_cast<const uint16_t*>(row) + d, n);
    else return Vec::load_n(static_cast<const float*>(row) + d, n);
}

template <int32_t kDtype> struct ElementOf { using type = uint16_t; };
template <> struct ElementOf<PAGEDKV_DTYPE_F32> { using type = float; };

// Points rows at positions [pos, pos + n) of the range's head in the pool, one page run at a time.
template <int32_t kDtype>
PAGEDKV_INLINE void locate_tile(const PagedLayer& layer, const KvRange& range, int32_t pos, int32_t n, TileRows& rows) {
    using Element = typename ElementOf<kDtype>::type;
    const Element* pool = static_cast<const Element*>(layer.pool_base);
    const int32_t page_size = layer.page_size, head_dim = layer.head_dim;
    for (int32_t t = 0; t < n;) {
        const int32_t p = pos + t, page_index = p / page_size, in_page = p - page_index * page_size;
        const int32_t run = min_i32(n - t, page_size - in_page);
        const int32_t page = range.pages[page_index];
        const Element* k = pool + layer.offset(page, 0, range.kv_head, in_page);
        const Element* v = pool + layer.offset(page, 1, range.kv_head, in_page);
        for (int32_t i = 0; i < run; ++i, ++t) {
            rows.k[t] = k + int64_t(i) * head_dim;
            rows.v[t] = v + int64_t(i) * head_dim;
        }
    }
}

// The next tile, whose cache lines are requested while this one is computed, spread over the
// score loop (a burst of requests for a whole tile would overflow the miss buffers): page runs
// defeat the hardware prefetcher at every page, and a 16-position page of one head is one 4 KiB run.
struct Lookahead {
    const TileRows* rows;  // null: nothing to prefetch
    int32_t n;
    int32_t row_bytes;
    bool group_scales = false;  // also the rows' fp16 scales (group formats: after the run's codes)

    PAGEDKV_INLINE void fetch(int32_t begin, int32_t end) const {
        if (!rows) return;
        end = end < n ? end : n;
        for (int32_t t = begin; t < end; ++t) {
            for (int32_t b = 0; b < row_bytes; b += 64) {
                __builtin_prefetch(static_cast<const char*>(rows->k[t]) + b, 0, 3);
                __builtin_prefetch(static_cast<const char*>(rows->v[t]) + b, 0, 3);
            }
            if (group_scales) {
                __builtin_prefetch(rows->k_scale[t], 0, 3);
                __builtin_prefetch(rows->v_scale[t], 0, 3);
            }
        }
    }
};

// ---- quantized tiles (byte layouts in pagedkv.h; mirrored here, not shared, see the top) -------

constexpr bool is_quantized(int32_t format) {
    return format >= PAGEDKV_DTYPE_FP8_E4M3 && format <= PAGEDKV_DTYPE_Q4;
}
constexpr int32_t code_bits(int32_t format, int32_t kv) {
    return format == PAGEDKV_DTYPE_Q4 || (format == PAGEDKV_DTYPE_Q6 && kv == 1) ? 4 : 8;
}
constexpr int32_t kGroup = 32;  // dims per group scale and per Hadamard rotation

// Bytes of one token's codes, and where a run's scales and tail start.
struct QuantRunOffsets {
    int32_t code_bytes;
    int64_t scales_at;
    int64_t tail_at;
};

template <int32_t kFormat>
PAGEDKV_INLINE QuantRunOffsets quant_offsets(const PagedLayer& layer, int32_t kv) {
    const int32_t code_bytes = layer.head_dim * code_bits(kFormat, kv) / 8;
    const int32_t scale_bytes = kFormat == PAGEDKV_DTYPE_FP8_E4M3 ? 0 : layer.head_dim / kGroup * 2;
    return {code_bytes, int64_t(layer.page_size) * code_bytes, int64_t(layer.page_size) * (code_bytes + scale_bytes)};
}

// locate_tile for the quantized formats: codes, and each row's scales (FP8: its run's scale).
template <int32_t kFormat>
PAGEDKV_INLINE void locate_quant_tile(const PagedLayer& layer, const KvRange& range, int32_t pos, int32_t n,
                                      TileRows& rows) {
    const uint8_t* pool = static_cast<const uint8_t*>(layer.pool_base);
    const QuantRunOffsets at[2] = {quant_offsets<kFormat>(layer, 0), quant_offsets<kFormat>(layer, 1)};
    const int32_t page_size = layer.page_size, scale_bytes = layer.head_dim / kGroup * 2;
    for (int32_t t = 0; t < n;) {
        const int32_t p = pos + t, page_index = p / page_size, in_page = p - page_index * page_size;
        const int32_t run = min_i32(n - t, page_size - in_page);
        const int32_t page = range.pages[page_index];
        const uint8_t* k = pool + layer.run_offset(page, 0, range.kv_head);
        const uint8_t* v = pool + layer.run_offset(page, 1, range.kv_head);
        for (int32_t i = 0; i < run; ++i, ++t) {
            rows.k[t] = k + int64_t(in_page + i) * at[0].code_bytes;
            rows.v[t] = v + int64_t(in_page + i) * at[1].code_bytes;
            if constexpr (kFormat == PAGEDKV_DTYPE_FP8_E4M3) {
                rows.k_scale[t] = k + at[0].tail_at;
                rows.v_scale[t] = v + at[1].tail_at;
            } else {
                rows.k_scale[t] = k + at[0].scales_at + int64_t(in_page + i) * scale_bytes;
                rows.v_scale[t] = v + at[1].scales_at + int64_t(in_page + i) * scale_bytes;
            }
        }
    }
}

// Values [j, j + W) of a group of codes with scale s (offset = -8 s for 4-bit codes, stored + 8).
template <int32_t kBits>
PAGEDKV_INLINE reg group_values(const uint8_t* group, int32_t j, reg s, reg offset) {
    if constexpr (kBits == 8) return Vec::mul(Vec::load_s8(group + j), s);
    else return Vec::fma(Vec::load_u4(group + (j & 15), (j >> 4) * 4), s, offset);
}

// Direct (register) path for few rows: fp8 codes are read as value * 2^-8 and the run's scale
// is folded into the score (K) and the probability (V); group codes are scaled per group.
template <int32_t kFormat>
PAGEDKV_INLINE float qk_fold(const void* scale) {
    if constexpr (kFormat == PAGEDKV_DTYPE_FP8_E4M3) {
        float run_scale;
        __builtin_memcpy(&run_scale, scale, sizeof run_scale);
        return run_scale * 256.0f;
    } else {
        return 1.0f;
    }
}

// acc[r * C + c] += q_r . k_c over head_dim (fp8: unscaled, see qk_fold).
template <int R, int C, int32_t kFormat>
PAGEDKV_INLINE void qk_quant_tile(const float* q, const void* const* k, const void* const* k_scale, int32_t head_dim,
                                  reg* acc) {
    if constexpr (kFormat == PAGEDKV_DTYPE_FP8_E4M3) {
        for (int32_t d = 0; d < head_dim; d += W) {
            reg kv[C];
            for (int c = 0; c < C; ++c) kv[c] = Vec::load_e4m3(static_cast<const uint8_t*>(k[c]) + d);
            for (int r = 0; r < R; ++r) {
                const reg qv = Vec::load(q + r * head_dim + d);
                for (int c = 0; c < C; ++c) acc[r * C + c] = Vec::fma(qv, kv[c], acc[r * C + c]);
            }
        }
    } else {
        constexpr int32_t kBits = code_bits(kFormat, 0), kGroupBytes = kGroup * kBits / 8;
        for (int32_t g = 0; g < head_dim / kGroup; ++g)
            for (int c = 0; c < C; ++c) {
                const reg s = Vec::set1(Vec::f16_scalar(static_cast<const uint16_t*>(k_scale[c])[g]));
                const reg offset = Vec::mul(s, Vec::set1(-8.0f));
                const uint8_t* group = static_cast<const uint8_t*>(k[c]) + g * kGroupBytes;
                for (int32_t j = 0; j < kGroup; j += W) {
                    const reg kv = group_values<kBits>(group, j, s, offset);
                    for (int r = 0; r < R; ++r)
                        acc[r * C + c] = Vec::fma(Vec::load(q + r * head_dim + g * kGroup + j), kv, acc[r * C + c]);
                }
            }
    }
}

// a[r * C + c] += p_r * v over dims [d0, d0 + C * W) of one V row; p has stride kKvTile. d0 is
// aligned so that a group boundary falls only on a vector c with c * W % 32 == 0.
template <int R, int C, int32_t kFormat>
PAGEDKV_INLINE void pv_quant_row(const float* p, const void* v, const void* v_scale, int32_t d0, reg* a) {
    const uint8_t* codes = static_cast<const uint8_t*>(v);
    reg vv[C];
    float fold = 1.0f;
    if constexpr (kFormat == PAGEDKV_DTYPE_FP8_E4M3) {
        fold = qk_fold<kFormat>(v_scale);
        for (int c = 0; c < C; ++c) vv[c] = Vec::load_e4m3(codes + d0 + c * W);
    } else {
        constexpr int32_t kBits = code_bits(kFormat, 1), kGroupBytes = kGroup * kBits / 8;
        reg s = Vec::zero(), offset = Vec::zero();
        for (int c = 0; c < C; ++c) {
            const int32_t d = d0 + c * W, g = d / kGroup;
            if (c == 0 || (c * W) % kGroup == 0) {
                s = Vec::set1(Vec::f16_scalar(static_cast<const uint16_t*>(v_scale)[g]));
                offset = Vec::mul(s, Vec::set1(-8.0f));
            }
            vv[c] = group_values<kBits>(codes + g * kGroupBytes, d % kGroup, s, offset);
        }
    }
    for (int r = 0; r < R; ++r) {
        const reg pr = Vec::set1(p[r * kKvTile] * fold);
        for (int c = 0; c < C; ++c) a[r * C + c] = Vec::fma(pr, vv[c], a[r * C + c]);
    }
}

// q rows in the form a native dot product reads, prepared once per call:
//  - int8 codes for the integer q . k of group formats (Vec::kInt8Dot): per row and 32-dim group
//    a scale max|q| / 127 and the codes' sum (for 4-bit K stored + 8). Rounding q adds at most
//    scale / 2 per dim to it, the same order as K's own rounding;
//  - two bf16 halves for q . k over bf16 K (Vec::kBf16Dot): hi = bf16(q), lo = bf16(q - hi), so
//    hi . k + lo . k carries q to 16 mantissa bits (q alone in bf16 would keep 8, and the scores
//    would lose what the f32 path keeps).
struct QuantizedQ {
    const float* scales = nullptr;  // [row][group]
    const float* sums = nullptr;    // [row][group], exact integers (|sum| <= 32 * 127); f32 like the scratch
    const int8_t* codes = nullptr;  // [row][head_dim]
    const uint16_t* bf16_hi = nullptr;  // [row][head_dim]
    const uint16_t* bf16_lo = nullptr;  // [row][head_dim]

    // The same arrays from row `row` on.
    QuantizedQ from_row(int32_t row, int32_t head_dim) const {
        const int32_t groups = head_dim / kGroup;
        auto at = [](auto* p, int64_t n) { return p ? p + n : p; };
        return {at(scales, row * groups), at(sums, row * groups), at(codes, int64_t(row) * head_dim),
                at(bf16_hi, int64_t(row) * head_dim), at(bf16_lo, int64_t(row) * head_dim)};
    }
};

// Splits `count` rows of q (count * head_dim a multiple of W) into the bf16 halves above, each
// rounded to nearest even as common/dtype.h does.
template <class V = Vec>  // V: dependent, so ISAs without a bf16 dot compile
inline void split_q_bf16(const float* q, int32_t count, int32_t head_dim, uint16_t* hi, uint16_t* lo) {
    if constexpr (V::kBf16Dot)
        for (int64_t i = 0; i < int64_t(count) * head_dim; i += W) {
            const reg x = V::load(q + i);
            V::store_bf16(hi + i, x);
            V::store_bf16(lo + i, V::sub(x, V::load_bf16(hi + i)));
        }
}

// Quantizes `count` rows of q (stride head_dim) into the buffers; non-finite groups get a NaN
// scale and zero codes, so their scores are NaN as in the f32 path.
inline void quantize_q_rows(const float* q, int32_t count, int32_t head_dim, float* scales, float* sums,
                            int8_t* codes) {
    const int32_t groups = head_dim / kGroup;
    for (int32_t r = 0; r < count; ++r)
        for (int32_t g = 0; g < groups; ++g) {
            const float* x = q + int64_t(r) * head_dim + g * kGroup;
            int8_t* out = codes + int64_t(r) * head_dim + g * kGroup;
            float amax = 0.0f;
            bool finite = true;
            for (int32_t i = 0; i < kGroup; ++i) {
                const float a = __builtin_fabsf(x[i]);
                finite = finite && a <= __FLT_MAX__;  // false for inf and NaN
                amax = a > amax ? a : amax;
            }
            if (!finite) amax = __builtin_nanf("");
            const float scale = amax / 127.0f, inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
            int32_t sum = 0;
            for (int32_t i = 0; i < kGroup; ++i) {
                float c = __builtin_rintf(x[i] * inverse);
                c = c == c ? __builtin_fmaxf(-127.0f, __builtin_fminf(127.0f, c)) : 0.0f;
                out[i] = int8_t(c);
                sum += int32_t(c);
            }
            scales[r * groups + g] = scale;
            sums[r * groups + g] = float(sum);
        }
}

// acc[r * C + c] += q_r . k_c over head_dim from integer codes: one f32 multiply per group with
// both scales.
template <int R, int C, int32_t kFormat, class V = Vec>  // V: dependent, so ISAs without ireg compile
PAGEDKV_INLINE void qk_int_tile(const QuantizedQ& q, const void* const* k, const void* const* k_scale,
                                int32_t head_dim, reg* acc) {
    if constexpr (V::kInt8Dot) {
        constexpr int32_t kBits = code_bits(kFormat, 0), kGroupBytes = kGroup * kBits / 8;
        const int32_t groups = head_dim / kGroup;
        for (int32_t g = 0; g < groups; ++g)
            for (int c = 0; c < C; ++c) {
                const uint8_t* group = static_cast<const uint8_t*>(k[c]) + g * kGroupBytes;
                const reg ks = V::set1(V::f16_scalar(static_cast<const uint16_t*>(k_scale[c])[g]));
                const typename V::ireg codes = kBits == 8 ? V::load_codes_s8(group) : V::load_codes_u4(group);
                for (int r = 0; r < R; ++r) {
                    const auto qv = V::load_codes_s8(reinterpret_cast<const uint8_t*>(q.codes) +
                                                       int64_t(r) * head_dim + g * kGroup);
                    const reg dot = kBits == 8 ? V::dot_s8(codes, qv) : V::dot_u4(codes, qv, int32_t(q.sums[r * groups + g]));
                    acc[r * C + c] = V::fma(dot, V::mul(ks, V::set1(q.scales[r * groups + g])), acc[r * C + c]);
                }
            }
    }
}

// acc[r * C + c] += q_r . k_c over bf16 K rows with the native dot product, q as its two bf16
// halves (head_dim a multiple of 2W: each step reads 2W dims).
template <int R, int C, class V = Vec>
PAGEDKV_INLINE void qk_bf16_dot_tile(const QuantizedQ& q, const void* const* k, int32_t head_dim, reg* acc) {
    if constexpr (V::kBf16Dot)
        for (int32_t d = 0; d < head_dim; d += 2 * W) {
            typename V::bf16x kv[C];
            for (int c = 0; c < C; ++c) kv[c] = V::load_bf16x(static_cast<const uint16_t*>(k[c]) + d);
            for (int r = 0; r < R; ++r) {
                const typename V::bf16x hi = V::load_bf16x(q.bf16_hi + int64_t(r) * head_dim + d);
                const typename V::bf16x lo = V::load_bf16x(q.bf16_lo + int64_t(r) * head_dim + d);
                for (int c = 0; c < C; ++c) acc[r * C + c] = V::dot_bf16(V::dot_bf16(acc[r * C + c], kv[c], hi), kv[c], lo);
            }
        }
}

// One row of K (kKv 0) or V (kKv 1) codes to head_dim f32 values (still rotated, if stored so).
template <int32_t kFormat, int32_t kKv>
PAGEDKV_INLINE void dequantize_row(const void* row, const void* scale, int32_t head_dim, float* out) {
    const uint8_t* codes = static_cast<const uint8_t*>(row);
    if constexpr (kFormat == PAGEDKV_DTYPE_FP8_E4M3) {
        float run_scale;
        __builtin_memcpy(&run_scale, scale, sizeof run_scale);
        const reg s = Vec::set1(run_scale * 256.0f);  // load_e4m3 gives value * 2^-8
        int32_t d = 0;
        for (; d + W <= head_dim; d += W) Vec::store(out + d, Vec::mul(Vec::load_e4m3(codes + d), s));
        if (d < head_dim) {  // head_dim is a multiple of 8, W may be 16: no read past the row
            uint8_t tail[W] = {};
            __builtin_memcpy(tail, codes + d, size_t(head_dim - d));
            float values[W];
            Vec::store(values, Vec::mul(Vec::load_e4m3(tail), s));
            __builtin_memcpy(out + d, values, sizeof(float) * size_t(head_dim - d));
        }
    } else {
        constexpr int32_t kBits = code_bits(kFormat, kKv), kGroupBytes = kGroup * kBits / 8;
        const uint16_t* scales = static_cast<const uint16_t*>(scale);
        for (int32_t g = 0; g < head_dim / kGroup; ++g) {
            const reg s = Vec::set1(Vec::f16_scalar(scales[g])), offset = Vec::mul(s, Vec::set1(-8.0f));
            const uint8_t* group = codes + g * kGroupBytes;
            for (int32_t j = 0; j < kGroup; j += W) {
                Vec::store(out + g * kGroup + j, group_values<kBits>(group, j, s, offset));
            }
        }
    }
}

template <int32_t kFormat>
PAGEDKV_INLINE void dequantize_tile(TileRows& rows, int32_t n, int32_t head_dim, float* kbuf, float* vbuf) {
    for (int32_t t = 0; t < n; ++t) {
        float* k = kbuf + int64_t(t) * head_dim;
        float* v = vbuf + int64_t(t) * head_dim;
        dequantize_row<kFormat, 0>(rows.k[t], rows.k_scale[t], head_dim, k);
        dequantize_row<kFormat, 1>(rows.v[t], rows.v_scale[t], head_dim, v);
        rows.k[t] = k;
        rows.v[t] = v;
    }
}

// The orthonormal 32-point Hadamard transform of every group of `count` rows, in place (its own
// inverse): q and acc enter the rotated space of K and V stored with PAGEDKV_CACHE_HADAMARD.
inline void hadamard_rows(float* rows, int32_t count, int32_t head_dim) {
    constexpr float kNorm = 0.17677669529663687f;  // 1 / sqrt(32)
    for (int64_t i = 0; i < int64_t(count) * head_dim; i += kGroup) {
        float* x = rows + i;
        for (int32_t half = 1; half < kGroup; half *= 2)
            for (int32_t b = 0; b < kGroup; b += 2 * half)
                for (int32_t j = b; j < b + half; ++j) {
                    const float lo = x[j], hi = x[j + half];
                    x[j] = lo + hi;
                    x[j + half] = lo - hi;
                }
        for (int32_t j = 0; j < kGroup; ++j) x[j] *= kNorm;
    }
}

// Converts the rows of a tile to f32 rows of kbuf / vbuf and points rows at them.
template <int32_t kDtype>
PAGEDKV_INLINE void convert_tile(TileRows& rows, int32_t n, int32_t head_dim, float* kbuf, float* vbuf) {
    for (int32_t t = 0; t < n; ++t) {
        float* k = kbuf + int64_t(t) * head_dim;
        float* v = vbuf + int64_t(t) * head_dim;
        int32_t d = 0;
        for (; d + W <= head_dim; d += W) {
            Vec::store(k + d, load_kv<kDtype>(rows.k[t], d));
            Vec::store(v + d, load_kv<kDtype>(rows.v[t], d));
        }
        if (d < head_dim) {
            Vec::store_n(k + d, load_kv_n<kDtype>(rows.k[t], d, head_dim - d), head_dim - d);
            Vec::store_n(v + d, load_kv_n<kDtype>(rows.v[t], d, head_dim - d), head_dim - d);
        }
        rows.k[t] = k;
        rows.v[t] = v;
    }
}

// De-interleaves (forward) or re-interleaves each group of 2W dims of [0, paired) of `count`
// rows: x0 x1 x2 ... <-> x0 x2 ... x1 x3 ...
inline void permute_pairs(float* rows, int32_t count, int32_t head_dim, int32_t paired, bool forward) {
    float group[2 * W];
    for (int32_t r = 0; r < count; ++r)
        for (int32_t g = 0; g < paired; g += 2 * W) {
            float* x = rows + int64_t(r) * head_dim + g;
            for (int i = 0; i < W; ++i) {
                if (forward) {
                    group[i] = x[2 * i];
                    group[W + i] = x[2 * i + 1];
                } else {
                    group[2 * i] = x[i];
                    group[2 * i + 1] = x[W + i];
                }
            }
            __builtin_memcpy(x, group, sizeof group);
        }
}

// ---- S = Q K^T --------------------------------------------------------------------------------

// s[r * kKvTile + c] = q_r . k_c for R rows of q (stride head_dim) and the K rows k[0..C).
// With int_q (group formats where Vec::kInt8Dot, bf16 where Vec::kBf16Dot), q's int8 codes or
// bf16 halves are read instead of q.
template <int R, int C, int32_t kDtype>
PAGEDKV_INLINE void qk_tile(const float* q, const QuantizedQ* int_q, const void* const* k, const void* const* k_scale,
                            int32_t head_dim, float* s) {
    static_assert(R * C <= 8, "one reduce_add8 per register tile");
    reg acc[8];  // R * C used; the rest stay zero for the reduction
    for (int i = 0; i < 8; ++i) acc[i] = Vec::zero();
    float sums[8];
    if constexpr (is_quantized(kDtype)) {
        if (int_q) qk_int_tile<R, C, kDtype>(*int_q, k, k_scale, head_dim, acc);
        else qk_quant_tile<R, C, kDtype>(q, k, k_scale, head_dim, acc);
        Vec::reduce_add8(acc, sums);
        for (int r = 0; r < R; ++r)
            for (int c = 0; c < C; ++c) s[r * kKvTile + c] = sums[r * C + c] * qk_fold<kDtype>(k_scale[c]);
        return;
    }
    const int32_t paired = paired_dims<kDtype>(head_dim), full = head_dim / W * W;
    if constexpr (kDtype == kBf16Paired) {
        if (int_q) {
            qk_bf16_dot_tile<R, C>(*int_q, k, head_dim, acc);
            Vec::reduce_add8(acc, sums);
            for (int r = 0; r < R; ++r)
                for (int c = 0; c < C; ++c) s[r * kKvTile + c] = sums[r * C + c];
            return;
        }
        for (int32_t d = 0; d < paired; d += 2 * W) {
            reg even[C], odd[C];
            for (int c = 0; c < C; ++c) Vec::load_bf16_pair(static_cast<const uint16_t*>(k[c]) + d, even[c], odd[c]);
            for (int r = 0; r < R; ++r) {
                const reg q_even = Vec::load(q + r * head_dim + d), q_odd = Vec::load(q + r * head_dim + d + W);
                for (int c = 0; c < C; ++c) {
                    acc[r * C + c] = Vec::fma(q_even, even[c], acc[r * C + c]);
                    acc[r * C + c] = Vec::fma(q_odd, odd[c], acc[r * C + c]);
                }
            }
        }
    }
    for (int32_t d = paired; d < full; d += W) {
        reg kv[C];
        for (int c = 0; c < C; ++c) kv[c] = load_kv<kDtype>(k[c], d);
        for (int r = 0; r < R; ++r) {
            const reg qv = Vec::load(q + r * head_dim + d);
            for (int c = 0; c < C; ++c) acc[r * C + c] = Vec::fma(qv, kv[c], acc[r * C + c]);
        }
    }
    if (full < head_dim) {
        const int tail = head_dim - full;
        for (int c = 0; c < C; ++c) {
            const reg kv = load_kv_n<kDtype>(k[c], full, tail);
            for (int r = 0; r < R; ++r)
                acc[r * C + c] = Vec::fma(Vec::load_n(q + r * head_dim + full, tail), kv, acc[r * C + c]);
        }
    }
    Vec::reduce_add8(acc, sums);
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) s[r * kKvTile + c] = sums[r * C + c];
}

template <int R, int32_t kDtype>
inline void qk_rows(const float* q, const QuantizedQ* int_q, const void* const* k, const void* const* ks,
                    int32_t head_dim, int32_t n, float* s, const Lookahead& ahead) {
    constexpr int C = Vec::template qk_cols<R>();
    int32_t t = 0;
    for (; t + C <= n; t += C) {
        ahead.fetch(t, t + C);
        qk_tile<R, C, kDtype>(q, int_q, k + t, ks + t, head_dim, s + t);
    }
    for (; t < n; ++t) {
        ahead.fetch(t, t + 1);
        qk_tile<R, 1, kDtype>(q, int_q, k + t, ks + t, head_dim, s + t);
    }
    ahead.fetch(n, kKvTile);
}

// `ahead` is fetched along the first register tile of rows.
// int_q: q's int8 codes for the block's rows, or null (then q is read).
template <int32_t kDtype>
inline void qk(const float* q, const QuantizedQ* int_q, int32_t rows, const void* const* k, const void* const* ks,
               int32_t head_dim, int32_t n, float* s, Lookahead ahead) {
    auto rows_from = [&](int32_t r) { return int_q ? int_q->from_row(r, head_dim) : QuantizedQ{}; };
    int32_t r = 0;
    for (; r + 4 <= rows; r += 4, ahead.rows = nullptr) {
        const QuantizedQ at = rows_from(r);
        qk_rows<4, kDtype>(q + int64_t(r) * head_dim, int_q ? &at : nullptr, k, ks, head_dim, n, s + r * kKvTile,
                           ahead);
    }
    const float* qr = q + int64_t(r) * head_dim;
    float* sr = s + r * kKvTile;
    const QuantizedQ at = rows_from(r);
    const QuantizedQ* qq = int_q ? &at : nullptr;
    switch (rows - r) {
        case 3: qk_rows<3, kDtype>(qr, qq, k, ks, head_dim, n, sr, ahead); break;
        case 2: qk_rows<2, kDtype>(qr, qq, k, ks, head_dim, n, sr, ahead); break;
        case 1: qk_rows<1, kDtype>(qr, qq, k, ks, head_dim, n, sr, ahead); break;
        default: break;
    }
}

// S = Q K^T from K transposed (kt: head_dim rows of kKvTile positions): R rows x all kKvTile
// positions per register tile, one broadcast of q per row and dim.
template <int R>
PAGEDKV_INLINE void qkt_tile(const float* q, const float* kt, int32_t head_dim, float* s) {
    constexpr int V = kKvTile / W;
    reg acc[R * V];
    for (int i = 0; i < R * V; ++i) acc[i] = Vec::zero();
    for (int32_t d = 0; d < head_dim; ++d) {
        reg b[R];
        for (int r = 0; r < R; ++r) b[r] = Vec::set1(q[r * head_dim + d]);
        for (int v = 0; v < V; ++v) {
            const reg k = Vec::load(kt + d * kKvTile + v * W);
            for (int r = 0; r < R; ++r) acc[r * V + v] = Vec::fma(b[r], k, acc[r * V + v]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < V; ++v) Vec::store(s + r * kKvTile + v * W, acc[r * V + v]);
}

inline void qkt(const float* q, int32_t rows, const float* kt, int32_t head_dim, float* s, const Lookahead& ahead) {
    constexpr int R = Vec::qkt_rows;
    int32_t r = 0;
    for (int32_t i = 0; r + R <= rows; r += R, ++i) {
        ahead.fetch(i, i + 1);  // one position per register tile: over before the rows run out
        qkt_tile<R>(q + int64_t(r) * head_dim, kt, head_dim, s + r * kKvTile);
    }
    ahead.fetch(r / R, kKvTile);
    for (; r < rows; ++r) qkt_tile<1>(q + int64_t(r) * head_dim, kt, head_dim, s + r * kKvTile);
}

// kt[d * kKvTile + t] = k[t][d] for the n f32 rows of a converted tile; columns past n are zero.
inline void transpose_tile(const TileRows& rows, int32_t n, int32_t head_dim, float* kt) {
    for (int32_t t = 0; t < n; ++t) {
        const float* k = static_cast<const float*>(rows.k[t]);
        for (int32_t d = 0; d < head_dim; ++d) kt[d * kKvTile + t] = k[d];
    }
    for (int32_t d = 0; d < head_dim; ++d)
        for (int32_t t = n; t < kKvTile; ++t) kt[d * kKvTile + t] = 0.0f;
}

// ---- online softmax ---------------------------------------------------------------------------

// Turns the scores of each row (first n of kKvTile) into probabilities against the updated
// running max, and rescales the row's acc and sum when the max grew.
inline void softmax_update(const QueryRows& block, int32_t pos, int32_t n, int32_t head_dim, float* s) {
    const int32_t padded = (n + W - 1) / W * W;  // <= kKvTile, a multiple of W
    for (int32_t r = 0; r < block.rows; ++r) {
        float* row = s + r * kKvTile;
        const int32_t valid = max_i32(0, min_i32(n, block.last_pos[r] - pos + 1));
        if (valid == 0) {
            for (int32_t t = 0; t < padded; ++t) row[t] = 0.0f;
            continue;
        }
        for (int32_t t = valid; t < padded; ++t) row[t] = kNegInf;
        reg mv = Vec::load(row);
        for (int32_t t = W; t < padded; t += W) mv = Vec::max(mv, Vec::load(row + t));
        const float old_max = block.row_max[r];
        const float tile_max = Vec::reduce_max(mv);
        const float new_max = tile_max > old_max ? tile_max : old_max;
        const reg m = Vec::set1(new_max);
        reg sum = Vec::zero();
        for (int32_t t = 0; t < padded; t += W) {
            const reg p = Vec::exp2(Vec::sub(Vec::load(row + t), m));
            Vec::store(row + t, p);
            sum = Vec::add(sum, p);
        }
        const float alpha = __builtin_exp2f(old_max - new_max);  // 0 when old_max is -inf
        block.row_sum[r] = block.row_sum[r] * alpha + Vec::reduce_add(sum);
        block.row_max[r] = new_max;
        if (alpha != 1.0f) {
            float* acc = block.acc + int64_t(r) * head_dim;
            const reg a = Vec::set1(alpha);
            int32_t d = 0;
            for (; d + W <= head_dim; d += W) Vec::store(acc + d, Vec::mul(Vec::load(acc + d), a));
            if (d < head_dim) Vec::store_n(acc + d, Vec::mul(Vec::load_n(acc + d, head_dim - d), a), head_dim - d);
        }
    }
}

// ---- acc += P V -------------------------------------------------------------------------------

// Columns [d0, d0 + C * W) of R rows of acc (the last vector only `tail` lanes when kTail)
// += sum over the n V rows v[t] of p[r][t] * v[t].
template <int R, int C, bool kTail, int32_t kDtype>
PAGEDKV_INLINE void pv_tile(const float* p, const void* const* v, const void* const* v_scale, int32_t d0,
                            int32_t head_dim, int32_t n, float* acc, int tail) {
    reg a[R * C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            const float* src = acc + int64_t(r) * head_dim + d0 + c * W;
            a[r * C + c] = (kTail && c == C - 1) ? Vec::load_n(src, tail) : Vec::load(src);
        }
    for (int32_t t = 0; t < n; ++t) {
        reg vv[C];
        if constexpr (is_quantized(kDtype)) {
            pv_quant_row<R, C, kDtype>(p + t, v[t], v_scale[t], d0, a);
            continue;
        }
        if constexpr (kDtype == kBf16Paired) {  // whole pairs only (pv_rows)
            for (int c = 0; c < C; c += 2)
                Vec::load_bf16_pair(static_cast<const uint16_t*>(v[t]) + d0 + c * W, vv[c], vv[c + 1]);
        } else {
            for (int c = 0; c < C; ++c)
                vv[c] = (kTail && c == C - 1) ? load_kv_n<kDtype>(v[t], d0 + c * W, tail)
                                              : load_kv<kDtype>(v[t], d0 + c * W);
        }
        for (int r = 0; r < R; ++r) {
            const reg pr = Vec::set1(p[r * kKvTile + t]);
            for (int c = 0; c < C; ++c) a[r * C + c] = Vec::fma(pr, vv[c], a[r * C + c]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            float* dst = acc + int64_t(r) * head_dim + d0 + c * W;
            if (kTail && c == C - 1) Vec::store_n(dst, a[r * C + c], tail);
            else Vec::store(dst, a[r * C + c]);
        }
}

template <int R, int32_t kDtype>
inline void pv_rows(const float* p, const void* const* v, const void* const* vs, int32_t head_dim, int32_t n,
                    float* acc) {
    constexpr int C = Vec::template pv_cols<R>();
    const int32_t vectors = head_dim / W, tail = head_dim % W;
    // Paired rows: the paired dims first, in whole pairs (C is even); then the rest naturally.
    const int32_t wide_end = kDtype == kBf16Paired ? paired_dims<kDtype>(head_dim) / W : vectors;
    int32_t c = 0;
    for (; c + C <= wide_end; c += C) pv_tile<R, C, false, kDtype>(p, v, vs, c * W, head_dim, n, acc, 0);
    if constexpr (C > 2)  // narrower tiles keep a few independent accumulators for short rows
        for (; c + 2 <= wide_end; c += 2) pv_tile<R, 2, false, kDtype>(p, v, vs, c * W, head_dim, n, acc, 0);
    for (; c < vectors; ++c) pv_tile<R, 1, false, natural(kDtype)>(p, v, vs, c * W, head_dim, n, acc, 0);
    if (tail) pv_tile<R, 1, true, natural(kDtype)>(p, v, vs, c * W, head_dim, n, acc, tail);
}

template <int32_t kDtype>
inline void pv(const float* p, int32_t rows, const void* const* v, const void* const* vs, int32_t head_dim, int32_t n,
               float* acc) {
    int32_t r = 0;
    for (; r + 4 <= rows; r += 4) pv_rows<4, kDtype>(p + r * kKvTile, v, vs, head_dim, n, acc + int64_t(r) * head_dim);
    const float* pr = p + r * kKvTile;
    float* ar = acc + int64_t(r) * head_dim;
    switch (rows - r) {
        case 3: pv_rows<3, kDtype>(pr, v, vs, head_dim, n, ar); break;
        case 2: pv_rows<2, kDtype>(pr, v, vs, head_dim, n, ar); break;
        case 1: pv_rows<1, kDtype>(pr, v, vs, head_dim, n, ar); break;
        default: break;
    }
}

// ---- the tile loop ----------------------------------------------------------------------------

// One tile against every block; the K/V rows are in format kRowDtype (the pool's, or f32 scratch).
// kt, when not null, holds K transposed (transpose_tile) for the outer-product S.
// `ahead` is fetched during the first block that uses the tile.
// int_q, when not null, holds q's int8 codes for all blocks' rows in order (quantize_q_rows).
template <int32_t kRowDtype>
inline void attend_tile(const TileRows& rows, const float* kt, const QuantizedQ* int_q, int32_t pos, int32_t n,
                        QueryRows* blocks, int32_t num_blocks, int32_t head_dim, float* s, Lookahead ahead) {
    int32_t first_row = 0;  // of the block, among all blocks' rows
    for (int32_t b = 0; b < num_blocks; first_row += blocks[b].rows, ++b) {
        const QueryRows& block = blocks[b];
        const int32_t used = min_i32(n, block.max_last_pos - pos + 1);  // causal: a prefix of the tile
        if (used <= 0) continue;
        const QuantizedQ block_q = int_q ? int_q->from_row(first_row, head_dim) : QuantizedQ{};
        if (kt) qkt(block.q, block.rows, kt, head_dim, s, ahead);
        else qk<kRowDtype>(block.q, int_q ? &block_q : nullptr, block.rows, rows.k, rows.k_scale, head_dim, used, s, ahead);
        ahead.rows = nullptr;
        softmax_update(block, pos, used, head_dim, s);
        pv<kRowDtype>(s, block.rows, rows.v, rows.v_scale, head_dim, used, block.acc);
    }
}

template <int32_t kDtype>
void attend_dtype(const PagedLayer& layer, const KvRange& range, QueryRows* blocks, int32_t num_blocks,
                  float* scratch) {
    const int32_t head_dim = layer.head_dim;
    float* kbuf = scratch;
    float* vbuf = kbuf + int64_t(kKvTile) * head_dim;
    float* kt = vbuf + int64_t(kKvTile) * head_dim;
    float* s = kt + int64_t(kKvTile) * head_dim;
    int32_t end = range.begin, total_rows = 0;
    for (int32_t b = 0; b < num_blocks; ++b) {
        end = max_i32(end, blocks[b].max_last_pos + 1);
        total_rows += blocks[b].rows;
    }
    end = min_i32(end, range.end);
    const bool transpose = total_rows >= kTransposeRows;
    constexpr bool kQuantized = is_quantized(kDtype);
    // Quantized rows are read in registers where few rows use them (decode) and the vectors cover
    // head_dim exactly; otherwise each tile is dequantized to f32 once.
    const bool direct_quant = kQuantized && head_dim % W == 0 && total_rows <= kDirectRows;
    const bool convert = (kQuantized && !direct_quant) || transpose ||
                         (!kQuantized && kDtype != PAGEDKV_DTYPE_F32 && total_rows > kDirectRows);
    const bool rotate = kQuantized && layer.hadamard;
    if (rotate)
        for (int32_t b = 0; b < num_blocks; ++b) {
            hadamard_rows(blocks[b].q, blocks[b].rows, head_dim);
            hadamard_rows(blocks[b].acc, blocks[b].rows, head_dim);
        }
    // Few rows over group codes: q . k in integers, q quantized here once (after the rotation).
    const bool int_dot = Vec::kInt8Dot && direct_quant && kDtype != PAGEDKV_DTYPE_FP8_E4M3;
    QuantizedQ int_q{};
    if (int_dot) {  // into the K-transpose scratch, unused by the direct path
        const int32_t groups = head_dim / kGroup;
        float* scales = kt;
        float* sums = scales + total_rows * groups;
        int8_t* codes = reinterpret_cast<int8_t*>(sums + total_rows * groups);
        int_q.scales = scales;
        int_q.sums = sums;
        int_q.codes = codes;
        for (int32_t b = 0, row = 0; b < num_blocks; row += blocks[b].rows, ++b)
            quantize_q_rows(blocks[b].q, blocks[b].rows, head_dim, scales + row * groups, sums + row * groups,
                            codes + int64_t(row) * head_dim);
    }
    const bool paired = kDtype == PAGEDKV_DTYPE_BF16 && !convert && paired_dims<kBf16Paired>(head_dim) > 0;
    // bf16 K over few rows with the native dot product: q split into bf16 halves once (before the
    // pair permutation, which only P V then reads), into the K-transpose scratch.
    const bool bf16_dot = Vec::kBf16Dot && paired && head_dim % (2 * W) == 0;
    if (bf16_dot) {
        uint16_t* hi = reinterpret_cast<uint16_t*>(kt);
        uint16_t* lo = hi + int64_t(total_rows) * head_dim;
        int_q.bf16_hi = hi;
        int_q.bf16_lo = lo;
        for (int32_t b = 0, row = 0; b < num_blocks; row += blocks[b].rows, ++b)
            split_q_bf16(blocks[b].q, blocks[b].rows, head_dim, hi + int64_t(row) * head_dim, lo + int64_t(row) * head_dim);
    }
    if (paired)
        for (int32_t b = 0; b < num_blocks; ++b) {
            permute_pairs(blocks[b].q, blocks[b].rows, head_dim, paired_dims<kBf16Paired>(head_dim), true);
            permute_pairs(blocks[b].acc, blocks[b].rows, head_dim, paired_dims<kBf16Paired>(head_dim), true);
        }
    TileRows tiles[2];
    int32_t current = 0;
    auto tile_end_of = [&](int32_t pos) { return min_i32(end, (pos / kKvTile + 1) * kKvTile); };
    auto locate = [&](int32_t pos, int32_t n, TileRows& rows) {
        if constexpr (kQuantized) locate_quant_tile<kDtype>(layer, range, pos, n, rows);
        else locate_tile<kDtype>(layer, range, pos, n, rows);
    };
    if (range.begin < end) locate(range.begin, tile_end_of(range.begin) - range.begin, tiles[0]);
    for (int32_t pos = range.begin; pos < end;) {
        const int32_t tile_end = tile_end_of(pos), n = tile_end - pos;
        TileRows& rows = tiles[current];
        Lookahead ahead{nullptr, 0, head_dim * (kQuantized ? 1 : kDtype == PAGEDKV_DTYPE_F32 ? 4 : 2),
                        kQuantized && kDtype != PAGEDKV_DTYPE_FP8_E4M3};
        if (tile_end < end) {  // the next tile's rows, fetched while this one is computed
            ahead.rows = &tiles[current ^ 1];
            ahead.n = tile_end_of(tile_end) - tile_end;
            locate(tile_end, ahead.n, tiles[current ^ 1]);
        }
        if (convert) {
            if constexpr (kQuantized) dequantize_tile<kDtype>(rows, n, head_dim, kbuf, vbuf);
            else convert_tile<kDtype>(rows, n, head_dim, kbuf, vbuf);
            if (transpose) transpose_tile(rows, n, head_dim, kt);
            const float* k_transposed = transpose ? kt : nullptr;
            attend_tile<PAGEDKV_DTYPE_F32>(rows, k_transposed, nullptr, pos, n, blocks, num_blocks, head_dim, s, ahead);
        } else if (paired) {
            if constexpr (kDtype == PAGEDKV_DTYPE_BF16)
                attend_tile<kBf16Paired>(rows, nullptr, bf16_dot ? &int_q : nullptr, pos, n, blocks, num_blocks, head_dim,
                                         s, ahead);
        } else {
            attend_tile<kDtype>(rows, nullptr, int_dot ? &int_q : nullptr, pos, n, blocks, num_blocks, head_dim, s, ahead);
        }
        current ^= 1;
        pos = tile_end;
    }
    if (paired)
        for (int32_t b = 0; b < num_blocks; ++b) {
            permute_pairs(blocks[b].q, blocks[b].rows, head_dim, paired_dims<kBf16Paired>(head_dim), false);
            permute_pairs(blocks[b].acc, blocks[b].rows, head_dim, paired_dims<kBf16Paired>(head_dim), false);
        }
    if (rotate)
        for (int32_t b = 0; b < num_blocks; ++b) {
            hadamard_rows(blocks[b].q, blocks[b].rows, head_dim);
            hadamard_rows(blocks[b].acc, blocks[b].rows, head_dim);
        }
}

}  // namespace detail

void attend(const PagedLayer& layer, const KvRange& range, QueryRows* blocks, int32_t num_blocks, float* scratch) {
    using detail::attend_dtype;
    switch (layer.kv_dtype) {
        case PAGEDKV_DTYPE_F16: attend_dtype<PAGEDKV_DTYPE_F16>(layer, range, blocks, num_blocks, scratch); break;
        case PAGEDKV_DTYPE_BF16: attend_dtype<PAGEDKV_DTYPE_BF16>(layer, range, blocks, num_blocks, scratch); break;
        case PAGEDKV_DTYPE_FP8_E4M3:
            attend_dtype<PAGEDKV_DTYPE_FP8_E4M3>(layer, range, blocks, num_blocks, scratch);
            break;
        case PAGEDKV_DTYPE_Q8: attend_dtype<PAGEDKV_DTYPE_Q8>(layer, range, blocks, num_blocks, scratch); break;
        case PAGEDKV_DTYPE_Q6: attend_dtype<PAGEDKV_DTYPE_Q6>(layer, range, blocks, num_blocks, scratch); break;
        case PAGEDKV_DTYPE_Q4: attend_dtype<PAGEDKV_DTYPE_Q4>(layer, range, blocks, num_blocks, scratch); break;
        default: attend_dtype<PAGEDKV_DTYPE_F32>(layer, range, blocks, num_blocks, scratch); break;
    }
}

#undef PAGEDKV_INLINE
