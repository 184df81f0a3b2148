#include "pool/pool_memory.h"

#include <cstdlib>

#include "common/error.h"
#include "device/cuda_device.h"

namespace pagedkv {

void* host_aligned_alloc(int64_t bytes, int64_t alignment) noexcept {
    if (bytes <= 0) bytes = 1;
    // aligned_alloc wants a size that is a multiple of the alignment.
    int64_t rounded = (bytes + alignment - 1) / alignment * alignment;
    if (rounded < bytes) return nullptr;
    return std::aligned_alloc(size_t(alignment), size_t(rounded));
}

void host_aligned_free(void* ptr) noexcept { std::free(ptr); }

PoolMemory::PoolMemory(int32_t device_type, int32_t device_index, int64_t bytes)
    : device_type_(device_type), device_index_(device_index), bytes_(bytes) {
    if (device_type == PAGEDKV_DEVICE_CUDA) {
        base_ = device::cuda_alloc(device_index, bytes);
    } else {
        base_ = host_aligned_alloc(bytes, 64);
        PAGEDKV_REQUIRE(base_ != nullptr, PAGEDKV_ERR_OUT_OF_MEMORY, "cannot allocate a host page pool of ",
                        bytes, " bytes");
    }
}

PoolMemory::~PoolMemory() {
    if (device_type_ == PAGEDKV_DEVICE_CUDA)
        device::cuda_free(device_index_, base_);
    else
        host_aligned_free(base_);
}

}  // namespace pagedkv
