#include "pool/host_memory.h"

#include <cstdlib>


namespace pagedkv {

void* host_aligned_alloc(int64_t bytes, int64_t alignment) noexcept {
    if (bytes <= 0) bytes = 1;
    // aligned_alloc wants a size that is a multiple of the alignment.
    int64_t rounded = (bytes + alignment - 1) / alignment * alignment;
    if (rounded < bytes) return nullptr;
    return std::aligned_alloc(size_t(alignment), size_t(rounded));
}

void host_aligned_free(void* ptr) noexcept { std::free(ptr); }

}  // namespace pagedkv
