// The attention engine of attend.h, written once over a vector traits type `Vec` (vec_*.h).
// Included once by each attend_<isa>.cpp, inside namespace pagedkv::kernels::cpu::<isa> where Vec
// is that ISA's traits, so every function here gets a distinct, ISA-specific symbol. For the same
// reason it calls no inline function of the standard library (only builtins and intrinsics).
//
// Per KV tile: load (convert) K and V once; then for every block of query rows
//   S = Q K^T          register tiles of R rows x C tokens, dot products over head_dim
//   online softmax     per row, masked causally, in the log2 domain, vectorized exp2
//   acc += P V         register tiles of R rows x C vectors of head_dim

namespace detail {

constexpr float kNegInf = -__builtin_huge_valf();
constexpr int W = Vec::W;
using reg = typename Vec::reg;

inline int32_t min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
inline int32_t max_i32(int32_t a, int32_t b) { return a > b ? a : b; }

// ---- KV tiles -------------------------------------------------------------------------------

template <int32_t kDtype>
inline reg load_kv(const void* base, int64_t index) {
    if constexpr (kDtype == PAGEDKV_DTYPE_F16) return Vec::load_f16(static_cast<const uint16_t*>(base) + index);
    else if constexpr (kDtype == PAGEDKV_DTYPE_BF16) return Vec::load_bf16(static_cast<const uint16_t*>(base) + index);
    else return Vec::load(static_cast<const float*>(base) + index);
}

template <int32_t kDtype>
inline reg load_kv_n(const void* base, int64_t index, int n) {
    if constexpr (kDtype == PAGEDKV_DTYPE_F16) return Vec::load_f16_n(static_cast<const uint16_t*>(base) + index, n);
    else if constexpr (kDtype == PAGEDKV_DTYPE_BF16) return Vec::load_bf16_n(static_cast<const uint16_t*>(base) + index, n);
    else return Vec::load_n(static_cast<const float*>(base) + index, n);
}

// dst[0..count) = elements [offset, offset + count) of the pool, as f32.
template <int32_t kDtype>
inline void convert_run(const void* pool, int64_t offset, int64_t count, float* dst) {
    int64_t i = 0;
    for (; i + W <= count; i += W) Vec::store(dst + i, load_kv<kDtype>(pool, offset + i));
    if (i < count) Vec::store_n(dst + i, load_kv_n<kDtype>(pool, offset + i, int(count - i)), int(count - i));
}

// Points k and v at the f32 K and V rows of positions [pos, pos + n) of one head: in place for an
// f32 tile inside one page, else converted into kbuf / vbuf (n x head_dim each).
template <int32_t kDtype>
inline void load_tile(const PagedLayer& layer, const KvRange& range, int32_t pos, int32_t n, float* kbuf,
                      float* vbuf, const float** k, const float** v) {
    const int32_t page_size = layer.page_size, head_dim = layer.head_dim;
    const int32_t first = pos / page_size;
    if (kDtype == PAGEDKV_DTYPE_F32 && (pos + n - 1) / page_size == first) {
        const float* pool = static_cast<const float*>(layer.pool_base);
        const int32_t page = range.pages[first], in_page = pos - first * page_size;
        *k = pool + layer.offset(page, 0, range.kv_head, in_page);
        *v = pool + layer.offset(page, 1, range.kv_head, in_page);
        return;
    }
    for (int32_t t = 0; t < n;) {
        const int32_t p = pos + t, page_index = p / page_size, in_page = p - page_index * page_size;
        const int32_t run = min_i32(n - t, page_size - in_page);
        const int32_t page = range.pages[page_index];
        const int64_t count = int64_t(run) * head_dim;
        convert_run<kDtype>(layer.pool_base, layer.offset(page, 0, range.kv_head, in_page), count, kbuf + int64_t(t) * head_dim);
        convert_run<kDtype>(layer.pool_base, layer.offset(page, 1, range.kv_head, in_page), count, vbuf + int64_t(t) * head_dim);
        t += run;
    }
    *k = kbuf;
    *v = vbuf;
}

// ---- S = Q K^T --------------------------------------------------------------------------------

// s[r * kKvTile + c] = q_r . k_c for R rows of q and C rows of k (both with stride head_dim).
template <int R, int C>
inline void qk_tile(const float* q, const float* k, int32_t head_dim, float* s) {
    constexpr int N = R * C;
    reg acc[N > 8 ? N : 8];
    for (int i = 0; i < (N > 8 ? N : 8); ++i) acc[i] = Vec::zero();
    const int32_t full = head_dim / W * W;
    for (int32_t d = 0; d < full; d += W) {
        reg kv[C];
        for (int c = 0; c < C; ++c) kv[c] = Vec::load(k + c * head_dim + d);
        for (int r = 0; r < R; ++r) {
            const reg qv = Vec::load(q + r * head_dim + d);
            for (int c = 0; c < C; ++c) acc[r * C + c] = Vec::fma(qv, kv[c], acc[r * C + c]);
        }
    }
    if (full < head_dim) {
        const int tail = head_dim - full;
        for (int c = 0; c < C; ++c) {
            const reg kv = Vec::load_n(k + c * head_dim + full, tail);
            for (int r = 0; r < R; ++r)
                acc[r * C + c] = Vec::fma(Vec::load_n(q + r * head_dim + full, tail), kv, acc[r * C + c]);
        }
    }
    if constexpr (N <= 8) {
        float sums[8];
        Vec::reduce_add8(acc, sums);
        for (int r = 0; r < R; ++r)
            for (int c = 0; c < C; ++c) s[r * kKvTile + c] = sums[r * C + c];
    } else {
        for (int r = 0; r < R; ++r)
            for (int c = 0; c < C; ++c) s[r * kKvTile + c] = Vec::reduce_add(acc[r * C + c]);
    }
}

template <int R>
inline void qk_rows(const float* q, const float* k, int32_t head_dim, int32_t n, float* s) {
    constexpr int C = Vec::template qk_cols<R>();
    int32_t t = 0;
    for (; t + C <= n; t += C) qk_tile<R, C>(q, k + int64_t(t) * head_dim, head_dim, s + t);
    for (; t < n; ++t) qk_tile<R, 1>(q, k + int64_t(t) * head_dim, head_dim, s + t);
}

inline void qk(const float* q, int32_t rows, const float* k, int32_t head_dim, int32_t n, float* s) {
    int32_t r = 0;
    for (; r + 4 <= rows; r += 4) qk_rows<4>(q + int64_t(r) * head_dim, k, head_dim, n, s + r * kKvTile);
    const float* qr = q + int64_t(r) * head_dim;
    float* sr = s + r * kKvTile;
    switch (rows - r) {
        case 3: qk_rows<3>(qr, k, head_dim, n, sr); break;
        case 2: qk_rows<2>(qr, k, head_dim, n, sr); break;
        case 1: qk_rows<1>(qr, k, head_dim, n, sr); break;
        default: break;
    }
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

// R rows x C vectors of acc (the last only `tail` lanes wide when kTail) += sum over n tokens.
template <int R, int C, bool kTail>
inline void pv_tile(const float* p, const float* v, int32_t head_dim, int32_t n, float* acc, int tail) {
    reg a[R * C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            const float* src = acc + int64_t(r) * head_dim + c * W;
            a[r * C + c] = (kTail && c == C - 1) ? Vec::load_n(src, tail) : Vec::load(src);
        }
    for (int32_t t = 0; t < n; ++t) {
        reg vv[C];
        for (int c = 0; c < C; ++c)
            vv[c] = (kTail && c == C - 1) ? Vec::load_n(v + int64_t(t) * head_dim + c * W, tail)
                                          : Vec::load(v + int64_t(t) * head_dim + c * W);
        for (int r = 0; r < R; ++r) {
            const reg pr = Vec::set1(p[r * kKvTile + t]);
            for (int c = 0; c < C; ++c) a[r * C + c] = Vec::fma(pr, vv[c], a[r * C + c]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            float* dst = acc + int64_t(r) * head_dim + c * W;
            if (kTail && c == C - 1) Vec::store_n(dst, a[r * C + c], tail);
            else Vec::store(dst, a[r * C + c]);
        }
}

template <int R>
inline void pv_rows(const float* p, const float* v, int32_t head_dim, int32_t n, float* acc) {
    constexpr int C = Vec::template pv_cols<R>();
    const int32_t vectors = head_dim / W, tail = head_dim % W;
    int32_t c = 0;
    for (; c + C <= vectors; c += C) pv_tile<R, C, false>(p, v + c * W, head_dim, n, acc + c * W, 0);
    for (; c < vectors; ++c) pv_tile<R, 1, false>(p, v + c * W, head_dim, n, acc + c * W, 0);
    if (tail) pv_tile<R, 1, true>(p, v + c * W, head_dim, n, acc + c * W, tail);
}

inline void pv(const float* p, int32_t rows, const float* v, int32_t head_dim, int32_t n, float* acc) {
    int32_t r = 0;
    for (; r + 4 <= rows; r += 4) pv_rows<4>(p + r * kKvTile, v, head_dim, n, acc + int64_t(r) * head_dim);
    const float* pr = p + r * kKvTile;
    float* ar = acc + int64_t(r) * head_dim;
    switch (rows - r) {
        case 3: pv_rows<3>(pr, v, head_dim, n, ar); break;
        case 2: pv_rows<2>(pr, v, head_dim, n, ar); break;
        case 1: pv_rows<1>(pr, v, head_dim, n, ar); break;
        default: break;
    }
}

// ---- the tile loop ----------------------------------------------------------------------------

template <int32_t kDtype>
void attend_dtype(const PagedLayer& layer, const KvRange& range, QueryRows* blocks, int32_t num_blocks,
                  float* scratch) {
    const int32_t head_dim = layer.head_dim;
    float* kbuf = scratch;
    float* vbuf = kbuf + int64_t(kKvTile) * head_dim;
    float* s = vbuf + int64_t(kKvTile) * head_dim;
    int32_t end = range.begin;
    for (int32_t b = 0; b < num_blocks; ++b) end = max_i32(end, blocks[b].max_last_pos + 1);
    end = min_i32(end, range.end);
    for (int32_t pos = range.begin; pos < end;) {
        const int32_t tile_end = min_i32(end, (pos / kKvTile + 1) * kKvTile);
        const int32_t n = tile_end - pos;
        const float *k, *v;
        load_tile<kDtype>(layer, range, pos, n, kbuf, vbuf, &k, &v);
        for (int32_t b = 0; b < num_blocks; ++b) {
            const QueryRows& block = blocks[b];
            const int32_t used = min_i32(n, block.max_last_pos - pos + 1);  // causal: a prefix of the tile
            if (used <= 0) continue;
            qk(block.q, block.rows, k, head_dim, used, s);
            softmax_update(block, pos, used, head_dim, s);
            pv(s, block.rows, v, head_dim, used, block.acc);
        }
        pos = tile_end;
    }
}

}  // namespace detail

void attend(const PagedLayer& layer, const KvRange& range, QueryRows* blocks, int32_t num_blocks, float* scratch) {
    switch (layer.kv_dtype) {
        case PAGEDKV_DTYPE_F16: detail::attend_dtype<PAGEDKV_DTYPE_F16>(layer, range, blocks, num_blocks, scratch); break;
        case PAGEDKV_DTYPE_BF16: detail::attend_dtype<PAGEDKV_DTYPE_BF16>(layer, range, blocks, num_blocks, scratch); break;
        default: detail::attend_dtype<PAGEDKV_DTYPE_F32>(layer, range, blocks, num_blocks, scratch); break;
    }
}
