// The CUDA runtime as the core needs it. Implemented in csrc/kernels/cuda/cuda_device.cu when the
// library is built with CUDA, and by csrc/device/cuda_unavailable.cpp otherwise. The CUDA runtime
// is linked statically, so these load and answer "no device" on machines without a driver.
#pragma once

#include <cstdint>
#include <string>

namespace pagedkv::device {

bool cuda_built();

// Usable devices; 0 with the reason in *reason when there are none (no driver, no GPU, no build).
int32_t cuda_device_count(std::string* reason);

std::string cuda_describe(int32_t device_index);

// Each of these throws pagedkv::Error (NO_DEVICE, OUT_OF_MEMORY, CUDA) on failure.
void* cuda_alloc(int32_t device_index, int64_t bytes);
void cuda_free(int32_t device_index, void* ptr) noexcept;
void cuda_memcpy(int32_t device_index, void* dst, const void* src, int64_t bytes, int32_t copy_kind);
void cuda_memset(int32_t device_index, void* dst, int32_t value, int64_t bytes);
void cuda_synchronize(int32_t device_index);

}  // namespace pagedkv::device
