// The layout fingerprint: what must be equal for two caches' page bytes to mean the same thing.
// Derived from the layout the cache reports (pagedkv_cache_layout), KV dtype included, so a new
// element format changes it; the pool's size, address and device do not enter it.
#pragma once

#include "pagedkv.h"
#include "tiers/page_key.h"

namespace pagedkv::tiers {

PageKey layout_fingerprint(const pagedkv_cache_layout& layout);

}  // namespace pagedkv::tiers
