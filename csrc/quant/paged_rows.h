// One token's K or V row of a quantized page run: written from f32 (rotated first where the
// layer says so) and read back to f32 (rotated back). Scalar; write_kv on the CPU and the
// reference kernels use it, the fast attention dequantizes in registers instead.
#pragma once

#include <cstdint>

#include "kernels/paged_layout.h"
#include "quant/hadamard.h"
#include "quant/kv_format.h"
#include "quant/quantize_row.h"

namespace pagedkv {

// Codes, scales and tail of the run of (page, kv, head).
struct QuantRun {
    uint8_t* codes;   // [page_size][code_bytes]
    uint16_t* scales; // [page_size][head_dim / 32] (group formats)
    uint8_t* tail;    // FP8's scale
    KvRunGeometry geometry;
};

inline QuantRun quant_run(const kernels::PagedLayer& layer, int32_t page, int32_t kv, int32_t head) {
    QuantRun run;
    run.geometry = kv_run_geometry(layer.kv_dtype, kv, layer.head_dim, layer.page_size);
    run.codes = static_cast<uint8_t*>(layer.pool_base) + layer.run_offset(page, kv, head);
    run.scales = reinterpret_cast<uint16_t*>(run.codes + run.geometry.scales_at(layer.page_size));
    run.tail = run.codes + run.geometry.tail_at(layer.page_size);
    return run;
}

// Quantizes row (head_dim values; rotated in place when layer.hadamard) into token `in_page`.
inline void write_quantized_row(const kernels::PagedLayer& layer, int32_t page, int32_t kv, int32_t head,
                                int32_t in_page, float* row) {
    const QuantRun run = quant_run(layer, page, kv, head);
    const int32_t head_dim = layer.head_dim, groups = head_dim / kQuantGroup;
    if (layer.hadamard) hadamard32_rows(row, 1, head_dim);
    float fp8_scale = 1.0f;
    if (layer.kv_dtype == PAGEDKV_DTYPE_FP8_E4M3) {
        fp8_scale = layer.kv_scales[kv * layer.num_kv_heads + head];
        // Written with the first token only: copies of a page's first positions read the tail
        // while its owner may write later positions (the layer's scale never changes).
        if (in_page == 0) store_fp8_run_scale(run.tail, fp8_scale);
    }
    quantize_row(layer.kv_dtype, kv, row, head_dim, fp8_scale, run.codes + int64_t(in_page) * run.geometry.code_bytes,
                 run.scales + int64_t(in_page) * groups);
}

// The f32 values of token `in_page` (rotated back when layer.hadamard) into out (head_dim).
inline void read_dequantized_row(const kernels::PagedLayer& layer, int32_t page, int32_t kv, int32_t head,
                                 int32_t in_page, float* out) {
    const QuantRun run = quant_run(layer, page, kv, head);
    const int32_t head_dim = layer.head_dim, groups = head_dim / kQuantGroup;
    const float fp8_scale = layer.kv_dtype == PAGEDKV_DTYPE_FP8_E4M3 ? fp8_run_scale(run.tail) : 1.0f;
    dequantize_row(layer.kv_dtype, kv, run.codes + int64_t(in_page) * run.geometry.code_bytes,
                   run.scales + int64_t(in_page) * groups, fp8_scale, head_dim, out);
    if (layer.hadamard) hadamard32_rows(out, 1, head_dim);
}

}  // namespace pagedkv
