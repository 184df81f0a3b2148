// Fills a PagedLayer's byte geometry from its format and shape (the one place that sizes pages).
#pragma once

#include "kernels/paged_layout.h"
#include "quant/kv_format.h"

namespace pagedkv {

// Bytes of one page: every layer's K and V runs of every head.
inline int64_t kv_page_bytes(int32_t dtype, int32_t num_layers, int32_t num_kv_heads, int32_t head_dim,
                             int32_t page_size) {
    return int64_t(num_layers) * num_kv_heads *
           (kv_run_geometry(dtype, 0, head_dim, page_size).run_bytes +
            kv_run_geometry(dtype, 1, head_dim, page_size).run_bytes);
}

inline kernels::PagedLayer with_byte_geometry(kernels::PagedLayer layer, int32_t num_layers) {
    for (int32_t kv = 0; kv < 2; ++kv)
        layer.run_bytes[kv] = kv_run_geometry(layer.kv_dtype, kv, layer.head_dim, layer.page_size).run_bytes;
    layer.page_bytes = kv_page_bytes(layer.kv_dtype, num_layers, layer.num_kv_heads, layer.head_dim, layer.page_size);
    return layer;
}

}  // namespace pagedkv
