// Hash of one trie edge: the parent node id and the page's token ids. Only a lookup key: every
// hit is confirmed by comparing the tokens, so a collision costs a compare, never wrong KV.
#pragma once

#include <cstdint>
#include <cstring>

namespace pagedkv {

namespace detail {
// 64x64 -> 128-bit multiply folded to 64 bits (the mixing step of wyhash-style hashes).
inline uint64_t fold_multiply(uint64_t a, uint64_t b) noexcept {
    __uint128_t product = static_cast<__uint128_t>(a) * b;
    return uint64_t(product) ^ uint64_t(product >> 64);
}
inline uint64_t load64(const unsigned char* p) noexcept {
    uint64_t value;
    std::memcpy(&value, p, sizeof value);
    return value;
}
constexpr uint64_t kSeed0 = 0xa0761d6478bd642full;
constexpr uint64_t kSeed1 = 0xe7037ed1a0b428dbull;
constexpr uint64_t kSeed2 = 0x8ebc6af09c88c6e3ull;
}  // namespace detail

// Hash of the tokens alone: independent of the parent, so a walk down the trie can compute the
// next page's token hash while the previous lookup is still waiting for memory.
inline uint64_t hash_tokens(const int32_t* tokens, int32_t count) noexcept {
    using namespace detail;
    const auto* bytes = reinterpret_cast<const unsigned char*>(tokens);
    size_t length = size_t(count) * sizeof(int32_t);
    uint64_t h = length ^ kSeed1;
    size_t i = 0;
    for (; i + 16 <= length; i += 16) h = fold_multiply(load64(bytes + i) ^ kSeed1, load64(bytes + i + 8) ^ h);
    if (i + 8 <= length) {
        h = fold_multiply(load64(bytes + i) ^ kSeed2, h ^ kSeed0);
        i += 8;
    }
    if (i < length) {  // one 4-byte token left
        uint32_t last;
        std::memcpy(&last, bytes + i, sizeof last);
        h = fold_multiply(uint64_t(last) ^ kSeed2, h ^ kSeed1);
    }
    return fold_multiply(h ^ kSeed0, kSeed2);  // final avalanche (short pages mix little above)
}

// The edge key: the (well mixed) token hash combined with the parent node id. Only XORs, since
// on a trie walk this step sits on the critical path (the parent is the previous lookup's
// result). For fixed tokens it is a bijection of the parent, so siblings never pile up.
inline uint64_t hash_edge(int32_t parent, uint64_t token_hash) noexcept {
    uint64_t p = uint32_t(parent);
    return token_hash ^ p ^ (p << 37);
}

inline uint64_t hash_page_tokens(int32_t parent, const int32_t* tokens, int32_t count) noexcept {
    return hash_edge(parent, hash_tokens(tokens, count));
}

}  // namespace pagedkv
