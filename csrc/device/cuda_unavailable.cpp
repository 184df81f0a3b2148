// Built instead of csrc/kernels/cuda when the library has no CUDA support: every CUDA entry point
// answers "no device" with the reason, so callers see a clear error, never a missing symbol.
#include <string>

#include "common/error.h"
#include "device/cuda_device.h"
#include "device/device.h"
#include "kernels/kernels.h"

namespace pagedkv::device {

namespace {
constexpr const char* kNotBuilt = "this pagedkv library was built without CUDA (no nvcc at build time)";
[[noreturn]] void no_cuda() { fail(PAGEDKV_ERR_NO_DEVICE, kNotBuilt); }
}  // namespace

bool cuda_built() { return false; }

int32_t cuda_device_count(std::string* reason) {
    if (reason) *reason = kNotBuilt;
    return 0;
}

std::string cuda_describe(int32_t) { no_cuda(); }
void* cuda_alloc(int32_t, int64_t) { no_cuda(); }
void cuda_free(int32_t, void*) noexcept {}
void cuda_memcpy(int32_t, void*, const void*, int64_t, int32_t) { no_cuda(); }
void cuda_memset(int32_t, void*, int32_t, int64_t) { no_cuda(); }
void cuda_synchronize(int32_t) { no_cuda(); }
std::unique_ptr<Device> make_cuda_device(int32_t) { no_cuda(); }

}  // namespace pagedkv::device

namespace pagedkv::kernels::cuda {

void write_kv(const PagedLayer&, const BatchArrays&, const void*, const void*, int32_t, void*) {
    device::cuda_synchronize(0);
}
void kv_abs_max(const PagedLayer&, const BatchArrays&, const void*, const void*, float*, void*) {
    device::cuda_synchronize(0);
}
void decode_attention(const PagedLayer&, const BatchArrays&, const AttentionOptions&, const void*, void*, float*) {
    device::cuda_synchronize(0);
}
void prefill_attention(const PagedLayer&, const BatchArrays&, const AttentionOptions&, const void*, void*, float*) {
    device::cuda_synchronize(0);
}
void cascade_attention(const PagedLayer&, const BatchArrays&, const AttentionOptions&, const void*, void*, float*) {
    device::cuda_synchronize(0);
}
void merge_states(const float*, const float*, const float*, const float*, int64_t, int32_t, int32_t, float*, float*,
                  void*) {
    device::cuda_synchronize(0);
}
void copy_pages(void*, int64_t, const int32_t*, const int32_t*, int32_t, void*) { device::cuda_synchronize(0); }

}  // namespace pagedkv::kernels::cuda
