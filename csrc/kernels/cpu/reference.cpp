// The reference kernels: plain loops in double precision, written to be obviously right. They
// are the oracle the fast CPU and CUDA kernels are tested against, not meant to be fast.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/dtype.h"
#include "kernels/kernels.h"
#include "quant/paged_rows.h"

namespace pagedkv::kernels::reference {

namespace {

// K (kv 0) or V (kv 1) at sequence position `pos` of head `head`, as head_dim values.
void kv_row(const PagedLayer& cache, const int32_t* pages, int32_t kv, int32_t head, int32_t pos,
            std::vector<float>& row) {
    const int32_t page = pages[pos / cache.page_size], in_page = pos % cache.page_size;
    row.resize(size_t(cache.head_dim));
    if (is_quantized_dtype(cache.kv_dtype)) {
        read_dequantized_row(cache, page, kv, head, in_page, row.data());
        return;
    }
    for (int32_t d = 0; d < cache.head_dim; ++d)
        row[size_t(d)] = load_as_float(cache.pool_base, cache.offset(page, kv, head, in_page) + d, cache.kv_dtype);
}

void write_quantized(const PagedLayer& cache, const BatchArrays& batch, const void* k, const void* v,
                     int32_t src_dtype) {
    const int32_t heads = cache.num_kv_heads, head_dim = cache.head_dim;
    std::vector<float> row(size_t(head_dim), 0.0f);
    for (int64_t t = 0; t < batch.num_qo_tokens; ++t) {
        const int64_t slot = batch.slot_mapping[t];
        const int32_t page = int32_t(slot / cache.page_size), in_page = int32_t(slot % cache.page_size);
        for (int32_t kv = 0; kv < 2; ++kv)
            for (int32_t head = 0; head < heads; ++head) {
                for (int32_t d = 0; d < head_dim; ++d)
                    row[size_t(d)] = load_as_float(kv == 0 ? k : v, (t * heads + head) * head_dim + d, src_dtype);
                write_quantized_row(cache, page, kv, head, in_page, row.data());
            }
    }
}

}  // namespace

void write_kv(const PagedLayer& cache, const BatchArrays& batch, const void* k, const void* v, int32_t src_dtype) {
    if (is_quantized_dtype(cache.kv_dtype)) return write_quantized(cache, batch, k, v, src_dtype);
    const int32_t heads = cache.num_kv_heads, head_dim = cache.head_dim;
    for (int64_t t = 0; t < batch.num_qo_tokens; ++t) {
        const int64_t slot = batch.slot_mapping[t];
        const int32_t page = int32_t(slot / cache.page_size), in_page = int32_t(slot % cache.page_size);
        for (int32_t kv = 0; kv < 2; ++kv) {
            const void* src = kv == 0 ? k : v;
            for (int32_t head = 0; head < heads; ++head)
                for (int32_t d = 0; d < head_dim; ++d) {
                    const int64_t from = (t * heads + head) * head_dim + d;
                    const int64_t to = cache.offset(page, kv, head, in_page) + d;
                    if (src_dtype == cache.kv_dtype) {  // same type: the bits, untouched
                        const int32_t bytes = dtype_bytes(src_dtype);
                        std::memcpy(static_cast<char*>(cache.pool_base) + to * bytes,
                                    static_cast<const char*>(src) + from * bytes, size_t(bytes));
                    } else {
                        store_from_float(cache.pool_base, to, cache.kv_dtype, load_as_float(src, from, src_dtype));
                    }
                }
        }
    }
}

void attention(const PagedLayer& cache, const BatchArrays& batch, const AttentionOptions& options, const void* q,
               void* out, float* lse) {
    const int32_t heads = options.num_qo_heads, head_dim = cache.head_dim;
    const int32_t group = heads / cache.num_kv_heads;
    std::vector<double> scores, value(static_cast<size_t>(head_dim));
    std::vector<float> kv;
    for (int32_t seq = 0; seq < batch.num_seqs; ++seq) {
        const int32_t* pages = batch.kv_page_indices + batch.kv_indptr[seq];
        const int32_t qo_len = batch.qo_indptr[seq + 1] - batch.qo_indptr[seq];
        for (int32_t j = 0; j < qo_len; ++j) {
            const int64_t token = batch.qo_indptr[seq] + j;
            const int32_t position = batch.kv_len[seq] - qo_len + j;  // attends [0, position]
            for (int32_t head = 0; head < heads; ++head) {
                const int32_t kv_head = head / group;
                const int64_t row = token * heads + head;
                scores.assign(size_t(position) + 1, 0.0);
                double max = -INFINITY;
                for (int32_t pos = 0; pos <= position; ++pos) {
                    kv_row(cache, pages, 0, kv_head, pos, kv);
                    double dot = 0.0;
                    for (int32_t d = 0; d < head_dim; ++d)
                        dot += double(load_as_float(q, row * head_dim + d, options.q_dtype)) * kv[size_t(d)];
                    scores[size_t(pos)] = dot * options.sm_scale;
                    max = std::fmax(max, scores[size_t(pos)]);
                }
                double sum = 0.0;
                std::fill(value.begin(), value.end(), 0.0);
                for (int32_t pos = 0; pos <= position; ++pos) {
                    const double weight = std::exp(scores[size_t(pos)] - max);
                    sum += weight;
                    kv_row(cache, pages, 1, kv_head, pos, kv);
                    for (int32_t d = 0; d < head_dim; ++d) value[size_t(d)] += weight * kv[size_t(d)];
                }
                for (int32_t d = 0; d < head_dim; ++d)
                    store_from_float(out, row * head_dim + d, options.out_dtype, float(value[size_t(d)] / sum));
                if (lse) lse[row] = float(max + std::log(sum));
            }
        }
    }
}

void merge_states(const float* a, const float* lse_a, const float* b, const float* lse_b, int64_t n,
                  int32_t num_heads, int32_t head_dim, float* out, float* out_lse) {
    for (int64_t row = 0; row < n * num_heads; ++row) {
        const double la = lse_a[row], lb = lse_b[row];
        const double max = std::fmax(la, lb);
        const double wa = la == -INFINITY ? 0.0 : std::exp(la - max);
        const double wb = lb == -INFINITY ? 0.0 : std::exp(lb - max);
        const double total = wa + wb;
        for (int32_t d = 0; d < head_dim; ++d) {
            const int64_t i = row * head_dim + d;
            const double sum = (wa > 0.0 ? wa * a[i] : 0.0) + (wb > 0.0 ? wb * b[i] : 0.0);
            out[i] = total == 0.0 ? 0.0f : float(sum / total);
        }
        out_lse[row] = total == 0.0 ? -INFINITY : float(max + std::log(total));
    }
}

void copy_pages(void* pool_base, int64_t page_bytes, const int32_t* src_pages, const int32_t* dst_pages,
                int32_t num_pages) {
    char* pool = static_cast<char*>(pool_base);
    for (int32_t i = 0; i < num_pages; ++i)
        std::memmove(pool + int64_t(dst_pages[i]) * page_bytes, pool + int64_t(src_pages[i]) * page_bytes,
                     size_t(page_bytes));
}

}  // namespace pagedkv::kernels::reference
