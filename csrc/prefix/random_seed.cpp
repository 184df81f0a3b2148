#include <random>

#include "prefix/token_hash.h"

namespace pagedkv {

uint64_t random_seed() {
    // std::random_device reads the OS source (getrandom / /dev/urandom) on Linux.
    std::random_device source;
    uint64_t seed = (uint64_t(source()) << 32) ^ source();
    return seed != 0 ? seed : 0x9e3779b97f4a7c15ull;  // 0 means "draw one" to PrefixTrie
}

}  // namespace pagedkv
