// The CUDA runtime as the core sees it (csrc/device/cuda_device.h): device count and description,
// allocation, copies, synchronization. Every call first selects the cache's device; failures become
// pagedkv::Error with the runtime's message (see throw_cuda_error).
#include <algorithm>
#include <string>

#include "device/cuda_device.h"
#include "kernels/cuda/common.cuh"

namespace pagedkv::device {

using kernels::cuda::throw_cuda_error;

namespace {

void select_device(int32_t device_index) {
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) throw_cuda_error(status, "cudaGetDeviceCount");
    PAGEDKV_REQUIRE(device_index >= 0 && device_index < count, PAGEDKV_ERR_NO_DEVICE, "CUDA device ", device_index,
                    " does not exist (", count, " device", count == 1 ? "" : "s", ")");
    PAGEDKV_CUDA_CHECK(cudaSetDevice(device_index));
}

cudaMemcpyKind to_memcpy_kind(int32_t copy_kind) {
    switch (copy_kind) {
        case PAGEDKV_COPY_HOST_TO_DEVICE: return cudaMemcpyHostToDevice;
        case PAGEDKV_COPY_DEVICE_TO_HOST: return cudaMemcpyDeviceToHost;
        case PAGEDKV_COPY_DEVICE_TO_DEVICE: return cudaMemcpyDeviceToDevice;
        default: fail(PAGEDKV_ERR_INVALID_ARGUMENT, "unknown copy kind ", copy_kind);
    }
}

}  // namespace

bool cuda_built() { return true; }

int32_t cuda_device_count(std::string* reason) {
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
        cudaGetLastError();
        count = 0;
    }
    if (count <= 0 && reason != nullptr) {
        try {
            *reason = status != cudaSuccess ? concat("no usable CUDA device: ", cudaGetErrorName(status), ": ",
                                                     cudaGetErrorString(status))
                                            : std::string("no CUDA device found");
        } catch (...) {
            // out of host memory while writing the reason: the count still answers
        }
    }
    return count > 0 ? count : 0;
}

std::string cuda_describe(int32_t device_index) {
    select_device(device_index);
    cudaDeviceProp prop{};
    PAGEDKV_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_index));
    return concat("cuda:", device_index, " ", prop.name, ", sm_", prop.major, prop.minor, ", ",
                  (prop.totalGlobalMem + (size_t(1) << 29)) >> 30, " GiB, ", prop.multiProcessorCount, " SMs");
}

void* cuda_alloc(int32_t device_index, int64_t bytes) {
    PAGEDKV_REQUIRE(bytes >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "cannot allocate ", bytes, " bytes");
    select_device(device_index);
    if (bytes == 0) return nullptr;
    void* ptr = nullptr;
    cudaError_t status = cudaMalloc(&ptr, size_t(bytes));
    if (status != cudaSuccess) {
        if (status == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            size_t free_bytes = 0, total_bytes = 0;
            cudaMemGetInfo(&free_bytes, &total_bytes);
            cudaGetLastError();
            fail(PAGEDKV_ERR_OUT_OF_MEMORY, "cudaMalloc of ", bytes, " bytes on cuda:", device_index, " failed (",
                 free_bytes, " of ", total_bytes, " bytes free)");
        }
        throw_cuda_error(status, "cudaMalloc");
    }
    return ptr;
}

void cuda_free(int32_t device_index, void* ptr) noexcept {
    if (ptr == nullptr) return;
    if (cudaSetDevice(device_index) != cudaSuccess || cudaFree(ptr) != cudaSuccess) cudaGetLastError();
}

void cuda_memcpy(int32_t device_index, void* dst, const void* src, int64_t bytes, int32_t copy_kind) {
    PAGEDKV_REQUIRE(bytes >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "cannot copy ", bytes, " bytes");
    cudaMemcpyKind kind = to_memcpy_kind(copy_kind);
    if (bytes == 0) return;
    select_device(device_index);
    PAGEDKV_CUDA_CHECK(cudaMemcpy(dst, src, size_t(bytes), kind));
    // cudaMemcpy may return before a pageable host-to-device or a device-to-device copy has landed;
    // the API promises a finished copy, visible to kernels on any stream.
    if (kind != cudaMemcpyDeviceToHost) PAGEDKV_CUDA_CHECK(cudaStreamSynchronize(nullptr));
}

void cuda_memset(int32_t device_index, void* dst, int32_t value, int64_t bytes) {
    PAGEDKV_REQUIRE(bytes >= 0, PAGEDKV_ERR_INVALID_ARGUMENT, "cannot set ", bytes, " bytes");
    if (bytes == 0) return;
    select_device(device_index);
    PAGEDKV_CUDA_CHECK(cudaMemset(dst, value, size_t(bytes)));
    PAGEDKV_CUDA_CHECK(cudaStreamSynchronize(nullptr));  // done before any stream's next kernel reads it
}

void cuda_synchronize(int32_t device_index) {
    select_device(device_index);
    PAGEDKV_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace pagedkv::device

// ---- the Device of a CUDA cache ---------------------------------------------------------------

#include "device/device.h"
#include "kernels/kernels.h"

namespace pagedkv::device {

namespace {

class CudaDevice final : public Device {
public:
    explicit CudaDevice(int32_t index) : index_(index) { select_device(index); }

    int32_t type() const override { return PAGEDKV_DEVICE_CUDA; }
    int32_t index() const override { return index_; }

    void* alloc(int64_t bytes) override { return cuda_alloc(index_, std::max<int64_t>(bytes, 1)); }
    void free(void* ptr) noexcept override { cuda_free(index_, ptr); }
    void copy(void* dst, const void* src, int64_t bytes, int32_t kind) override {
        cuda_memcpy(index_, dst, src, bytes, kind);
    }
    void synchronize() override { cuda_synchronize(index_); }

    // Internal copies do not know the caller's streams: the device-wide synchronization before
    // orders them after every write queued so far, the one after before every later write.
    void copy_page_runs(const PageGeometry& g, const int32_t* src, const int32_t* dst, int32_t count,
                        int32_t tokens) override {
        if (count <= 0 || tokens <= 0) return;
        select_device(index_);
        PAGEDKV_CUDA_CHECK(cudaDeviceSynchronize());
        auto* pool = static_cast<unsigned char*>(g.pool_base);
        for (int32_t i = 0; i < count; ++i) {
            if (src[i] == dst[i]) continue;
            PAGEDKV_CUDA_CHECK(cudaMemcpy2DAsync(pool + int64_t(dst[i]) * g.page_bytes, size_t(g.row_bytes),
                                                 pool + int64_t(src[i]) * g.page_bytes, size_t(g.row_bytes),
                                                 size_t(tokens) * size_t(g.token_bytes), size_t(g.rows),
                                                 cudaMemcpyDeviceToDevice, nullptr));
        }
        PAGEDKV_CUDA_CHECK(cudaDeviceSynchronize());
    }
    void copy_pages(void* pool_base, int64_t page_bytes, const int32_t* src, const int32_t* dst, int32_t count,
                    void* stream) override {
        kernels::cuda::copy_pages(pool_base, page_bytes, src, dst, count, stream);
    }

    Metadata place_metadata(const void* host, int64_t bytes, void*) override {
        void* data = cuda_alloc(index_, std::max<int64_t>(bytes, 1));
        try {
            cuda_memcpy(index_, data, host, bytes, PAGEDKV_COPY_HOST_TO_DEVICE);
        } catch (...) {
            cuda_free(index_, data);
            throw;
        }
        return Metadata{data, 0};
    }
    void release_metadata(const Metadata& metadata, void*) noexcept override { cuda_free(index_, metadata.data); }

private:
    int32_t index_;
};

}  // namespace

std::unique_ptr<Device> make_cuda_device(int32_t device_index) { return std::make_unique<CudaDevice>(device_index); }

}  // namespace pagedkv::device
