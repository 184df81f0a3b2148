// Validation of a pagedkv_cache_config: every field's range, the derived page count, and sizes
// that must fit in int64. The messages name the field and the allowed range.
#pragma once

#include <cstdint>

#include "pagedkv.h"

namespace pagedkv {

// Bytes of one page (all layers, K and V); the config's sizes must already be valid.
int64_t page_bytes_of(const pagedkv_cache_config& config);

// Returns the config with num_pages resolved (from byte_budget when 0); throws
// INVALID_ARGUMENT for a bad field and NO_DEVICE for an absent CUDA device.
pagedkv_cache_config validated_config(const pagedkv_cache_config& config);

}  // namespace pagedkv
