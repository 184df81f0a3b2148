// Device memory for the GPU tests: a cudaMalloc'd buffer with upload / download / poison, host
// vectors and tensors copied to the device, and a fixture batch's arrays on the device.
#pragma once

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "device/cuda_device.h"
#include "kernel_fixture.h"
#include "pagedkv.h"

namespace gpu_fixture {

namespace device = pagedkv::device;
using fixture::Batch;
using fixture::Tensor;
using pagedkv::kernels::BatchArrays;
using pagedkv::kernels::PagedLayer;

class DeviceBuffer {
public:
    explicit DeviceBuffer(int64_t bytes) : bytes_(bytes) { ptr_ = device::cuda_alloc(0, std::max<int64_t>(bytes, 16)); }
    ~DeviceBuffer() { device::cuda_free(0, ptr_); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void* get() const { return ptr_; }
    template <class T>
    T* as() const {
        return static_cast<T*>(ptr_);
    }
    void upload(const void* host) { device::cuda_memcpy(0, ptr_, host, bytes_, PAGEDKV_COPY_HOST_TO_DEVICE); }
    void download(void* host) const {
        device::cuda_synchronize(0);
        device::cuda_memcpy(0, host, ptr_, bytes_, PAGEDKV_COPY_DEVICE_TO_HOST);
    }
    void poison() { device::cuda_memset(0, ptr_, 0xff, bytes_); }  // all-ones: NaN in f32, f16 and bf16

private:
    void* ptr_ = nullptr;
    int64_t bytes_ = 0;
};

template <class T>
std::unique_ptr<DeviceBuffer> to_device(const std::vector<T>& host) {
    auto buffer = std::make_unique<DeviceBuffer>(int64_t(host.size() * sizeof(T)));
    if (!host.empty()) buffer->upload(host.data());
    return buffer;
}

std::unique_ptr<DeviceBuffer> to_device(const Tensor& host) {
    auto buffer = std::make_unique<DeviceBuffer>(int64_t(host.bytes.size()));
    if (!host.bytes.empty()) buffer->upload(host.data());
    return buffer;
}

// The batch arrays of a fixture batch, on the device.
struct DeviceBatch {
    std::unique_ptr<DeviceBuffer> kv_indptr, page_indices, last_page_len, qo_indptr, slot_mapping, kv_len;
    BatchArrays arrays{};

    explicit DeviceBatch(const Batch& batch)
        : kv_indptr(to_device(batch.kv_indptr)), page_indices(to_device(batch.page_indices)),
          last_page_len(to_device(batch.last_page_len)), qo_indptr(to_device(batch.qo_indptr)),
          slot_mapping(to_device(batch.slot_mapping)), kv_len(to_device(batch.kv_len)) {
        arrays = batch.arrays();
        arrays.kv_indptr = kv_indptr->as<int32_t>();
        arrays.kv_page_indices = page_indices->as<int32_t>();
        arrays.kv_last_page_len = last_page_len->as<int32_t>();
        arrays.qo_indptr = qo_indptr->as<int32_t>();
        arrays.slot_mapping = slot_mapping->as<int64_t>();
        arrays.kv_len = kv_len->as<int32_t>();
    }
};

PagedLayer on_device(PagedLayer layer, const DeviceBuffer& pool) {
    layer.pool_base = pool.get();
    return layer;
}

// A C API status: true for OK, else false with the status and message on stderr.
inline bool ok(int32_t status, const char* what) {
    if (status == PAGEDKV_OK) return true;
    std::fprintf(stderr, "  %s: %s: %s\n", what, pagedkv_status_string(status), pagedkv_last_error());
    return false;
}

// A GPU test's main: without a usable device "SKIP: <reason>" and 77 (ctest: skipped), else the tests.
inline int run_gpu_tests(int argc, char** argv) {
    int32_t count = 0;
    if (pagedkv_cuda_device_count(&count) != PAGEDKV_OK || count == 0) {
        std::printf("SKIP: %s\n", pagedkv_last_error());
        return 77;
    }
    char description[256];
    if (pagedkv_device_describe(PAGEDKV_DEVICE_CUDA, 0, description, sizeof description) == PAGEDKV_OK)
        std::printf("device: %s\n", description);
    return check::run_all(argc, argv);
}

}  // namespace gpu_fixture
