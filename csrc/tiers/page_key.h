// Keys of page objects below the pool: a chained SHA-256 that any machine computes from the
// prompt alone. A root key covers the caller's namespace (model id, tensor-parallel rank and
// size), the layout fingerprint and the salt; each page's key covers its parent's key and its
// token ids. Keys only find objects: what a loaded object holds is verified separately
// (page_object.h), so even a collision cannot put wrong KV into the pool.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pagedkv::tiers {

using PageKey = std::array<uint8_t, 32>;

// SHA-256 of the concatenated parts (OpenSSL libcrypto).
PageKey sha256(std::initializer_list<std::string_view> parts);

// The key under which the pages of `salt` start; `scope` is the namespace and layout (TierScope).
PageKey root_key(std::string_view scope, std::string_view salt);
// The key of a FULL page from its parent's key and its `count` token ids.
PageKey page_key(const PageKey& parent, const int32_t* tokens, int32_t count);

// Lower-case hexadecimal (64 characters): file names and Redis keys.
std::string to_hex(const PageKey& key);

}  // namespace pagedkv::tiers
