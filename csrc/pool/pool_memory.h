// The bytes of a page pool: one allocation on the host (64-byte aligned) or on a CUDA device.
#pragma once

#include <cstdint>

namespace pagedkv {

class PoolMemory {
public:
    // Throws OUT_OF_MEMORY (host) or the device layer's error (CUDA).
    PoolMemory(int32_t device_type, int32_t device_index, int64_t bytes);
    ~PoolMemory();
    PoolMemory(const PoolMemory&) = delete;
    PoolMemory& operator=(const PoolMemory&) = delete;

    void* base() const { return base_; }
    int64_t bytes() const { return bytes_; }

private:
    int32_t device_type_;
    int32_t device_index_;
    int64_t bytes_;
    void* base_ = nullptr;
};

// Aligned host allocation shared by the pool and the CPU "device" helpers; null on failure.
void* host_aligned_alloc(int64_t bytes, int64_t alignment) noexcept;
void host_aligned_free(void* ptr) noexcept;

}  // namespace pagedkv
