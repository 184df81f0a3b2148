#include "tiers/layout_fingerprint.h"

#include <cstdint>
#include <string>

namespace pagedkv::tiers {

PageKey layout_fingerprint(const pagedkv_cache_layout& layout) {
    // The quantized formats' run sizes and the layout flags (the Hadamard rotation) too: they
    // change what the bytes mean. NO_REUSE is masked off (it says nothing about the bytes).
    const int64_t fields[] = {layout.num_layers,    layout.num_kv_heads, layout.head_dim,
                              layout.page_size,     layout.kv_dtype,     layout.element_bytes,
                              layout.page_bytes,    layout.slab_stride,  layout.page_stride,
                              layout.k_run_bytes,   layout.v_run_bytes,
                              int64_t(layout.flags & ~uint32_t(PAGEDKV_CACHE_NO_REUSE))};
    return sha256({"pagedkv-layout-v1", std::string_view(reinterpret_cast<const char*>(fields), sizeof fields)});
}

}  // namespace pagedkv::tiers
