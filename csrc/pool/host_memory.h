// Aligned host allocation, shared by the host device and the tests.
#pragma once

#include <cstdint>

namespace pagedkv {

// Null on failure (or when the size overflows).
void* host_aligned_alloc(int64_t bytes, int64_t alignment) noexcept;
void host_aligned_free(void* ptr) noexcept;

}  // namespace pagedkv
