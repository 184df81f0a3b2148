// Hashing a PageKey for unordered containers: its first eight bytes (it is a SHA-256 already).
#pragma once

#include <cstring>

#include "tiers/page_key.h"

namespace pagedkv::tiers {

struct PageKeyHash {
    size_t operator()(const PageKey& key) const {
        size_t h;
        std::memcpy(&h, key.data(), sizeof h);
        return h;
    }
};

}  // namespace pagedkv::tiers
