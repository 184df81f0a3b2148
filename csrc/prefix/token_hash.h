// Hashes for the trie's lookup keys. Only keys: every hit is confirmed by its parent and by
// comparing the tokens, so a collision costs a compare, never wrong KV. Every index mixes a seed
// of its own (drawn from a random source), so nobody can craft prompts that share a probe run.
#pragma once

#include <cstddef>
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

// Hash of `length` bytes. Two independent multiply chains over 32-byte blocks halve its latency.
// Reads the bytes as little-endian words on the machines pagedkv runs on (x86-64, AArch64), so
// the value is the same in every process for the same seed.
inline uint64_t hash_bytes(const void* data, size_t length, uint64_t seed) noexcept {
    using namespace detail;
    const auto* bytes = static_cast<const unsigned char*>(data);
    uint64_t h = length ^ kSeed1 ^ seed;
    size_t i = 0;
    uint64_t g = fold_multiply(length ^ kSeed2, seed ^ kSeed0);
    for (; i + 32 <= length; i += 32) {
        h = fold_multiply(load64(bytes + i) ^ kSeed1, load64(bytes + i + 8) ^ h);
        g = fold_multiply(load64(bytes + i + 16) ^ kSeed0, load64(bytes + i + 24) ^ g);
    }
    h ^= g;
    for (; i + 16 <= length; i += 16) h = fold_multiply(load64(bytes + i) ^ kSeed1, load64(bytes + i + 8) ^ h);
    if (i + 8 <= length) {
        h = fold_multiply(load64(bytes + i) ^ kSeed2, h ^ kSeed0);
        i += 8;
    }
    if (i < length) {  // 1 to 7 bytes left (token arrays: one 4-byte token)
        uint64_t last = 0;
        if (length - i == 4) {  // the token case, without a variable-length copy
            uint32_t word;
            std::memcpy(&word, bytes + i, sizeof word);
            last = word;
        } else {
            std::memcpy(&last, bytes + i, length - i);
        }
        h = fold_multiply(last ^ kSeed2, h ^ kSeed1);
    }
    return fold_multiply(h ^ kSeed0, kSeed2);  // final avalanche (short inputs mix little above)
}

// Hash of one page's tokens alone (independent of the parent).
inline uint64_t hash_tokens(const int32_t* tokens, int32_t count, uint64_t seed) noexcept {
    return hash_bytes(tokens, size_t(count) * sizeof(int32_t), seed);
}

// Chained prefix keys (like vLLM's block hashes): a FULL node's key mixes its parent's key with
// its own token hash, and a root's key derives from the root id. The key of every page of a
// prompt therefore follows from the tokens alone, with no memory access, so a walk can compute
// keys and issue the table probes of later pages while earlier ones are being confirmed.
inline uint64_t hash_root(int32_t root, uint64_t seed) noexcept {
    using namespace detail;
    return fold_multiply(uint64_t(uint32_t(root)) ^ kSeed0, kSeed1 ^ seed);
}
inline uint64_t hash_chain(uint64_t parent_key, uint64_t token_hash) noexcept {
    using namespace detail;
    return fold_multiply(parent_key ^ kSeed1, token_hash ^ kSeed2);
}

// The key of a page under a parent whose key is `parent_key`: the index's key function.
inline uint64_t chained_key(uint64_t seed, uint64_t parent_key, const int32_t* tokens, int32_t count) noexcept {
    return hash_chain(parent_key, hash_tokens(tokens, count, seed));
}

// A fresh seed from the operating system's random source.
uint64_t random_seed();

}  // namespace pagedkv
