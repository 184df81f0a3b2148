// Host-side helpers of the CUDA kernels: error mapping, device selection, per-device facts, scratch.
#include "kernels/cuda/runtime.cuh"

#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/common.cuh"

namespace pagedkv::kernels::cuda {

void throw_cuda_error(cudaError_t status, const char* what) {
    cudaGetLastError();  // a non-sticky error must not be reported again by the next check
    int32_t code = PAGEDKV_ERR_CUDA;
    switch (status) {
        case cudaErrorMemoryAllocation: code = PAGEDKV_ERR_OUT_OF_MEMORY; break;
        case cudaErrorNoDevice:
        case cudaErrorInsufficientDriver:
        case cudaErrorInvalidDevice:
        case cudaErrorDevicesUnavailable:
        case cudaErrorStubLibrary:
        case cudaErrorSystemDriverMismatch:
        case cudaErrorCompatNotSupportedOnDevice:
        case cudaErrorCallRequiresNewerDriver: code = PAGEDKV_ERR_NO_DEVICE; break;
        default: break;
    }
    fail(code, what, " failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status));
}

DeviceGuard::DeviceGuard(const void* device_pointer) {
    PAGEDKV_CUDA_CHECK(cudaGetDevice(&device_));
    if (device_pointer == nullptr) return;
    cudaPointerAttributes attributes{};
    if (cudaPointerGetAttributes(&attributes, device_pointer) != cudaSuccess) {
        cudaGetLastError();  // not a pointer the runtime knows: stay on the current device
        return;
    }
    bool on_device = attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
    if (on_device && attributes.device >= 0 && attributes.device != device_) {
        PAGEDKV_CUDA_CHECK(cudaSetDevice(attributes.device));
        previous_ = device_;
        device_ = attributes.device;
    }
}

DeviceGuard::~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
}

const DeviceInfo& device_info(int device) {
    static std::mutex mutex;
    static std::map<int, DeviceInfo> cache;  // node-based: references stay valid
    std::lock_guard<std::mutex> lock(mutex);
    auto found = cache.find(device);
    if (found != cache.end()) return found->second;
    DeviceInfo info;
    int pools = 0;
    PAGEDKV_CUDA_CHECK(cudaDeviceGetAttribute(&info.sm_count, cudaDevAttrMultiProcessorCount, device));
    PAGEDKV_CUDA_CHECK(
        cudaDeviceGetAttribute(&info.max_smem_per_block_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    PAGEDKV_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device));
    info.memory_pools = pools != 0;
    return cache.emplace(device, info).first->second;
}

int prepare_kernel(const void* kernel, int threads, size_t dynamic_smem, int device) {
    static std::mutex mutex;
    static std::map<std::tuple<const void*, int, int, size_t>, int> cache;
    auto key = std::make_tuple(kernel, device, threads, dynamic_smem);
    std::lock_guard<std::mutex> lock(mutex);
    auto found = cache.find(key);
    if (found != cache.end()) return found->second;
    if (dynamic_smem > 48 * 1024) {
        PAGEDKV_REQUIRE(dynamic_smem <= size_t(device_info(device).max_smem_per_block_optin), PAGEDKV_ERR_UNSUPPORTED,
                        "a kernel needs ", dynamic_smem, " bytes of shared memory per block; device ", device,
                        " allows ", device_info(device).max_smem_per_block_optin);
        PAGEDKV_CUDA_CHECK(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(dynamic_smem)));
    }
    int blocks = 0;
    PAGEDKV_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, dynamic_smem));
    PAGEDKV_REQUIRE(blocks > 0, PAGEDKV_ERR_UNSUPPORTED, "a kernel does not fit on an SM of device ", device, " (",
                    threads, " threads, ", dynamic_smem, " bytes of shared memory)");
    cache.emplace(key, blocks);
    return blocks;
}

namespace {

// One pool per device for scratch: keeps up to 256 MiB cached between calls so split-KV steps do
// not go back to the driver, and leaves the device's default pool (and its settings) alone.
cudaMemPool_t scratch_pool(int device) {
    static std::mutex mutex;
    static std::map<int, cudaMemPool_t> pools;
    std::lock_guard<std::mutex> lock(mutex);
    auto found = pools.find(device);
    if (found != pools.end()) return found->second;
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    cudaMemPool_t pool = nullptr;
    PAGEDKV_CUDA_CHECK(cudaMemPoolCreate(&pool, &props));
    uint64_t keep = uint64_t(256) << 20;
    PAGEDKV_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    pools.emplace(device, pool);
    return pool;
}

}  // namespace

void warm_up(int device) {
    if (device_info(device).memory_pools) scratch_pool(device);
}

StreamScratch::StreamScratch(size_t bytes, cudaStream_t stream, int device) : stream_(stream) {
    if (bytes == 0) return;
    if (device_info(device).memory_pools) {
        PAGEDKV_CUDA_CHECK(cudaMallocFromPoolAsync(&ptr_, bytes, scratch_pool(device), stream));
    } else {
        cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
        PAGEDKV_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
        PAGEDKV_REQUIRE(capture == cudaStreamCaptureStatusNone, PAGEDKV_ERR_UNSUPPORTED, "CUDA device ", device,
                        " has no stream-ordered memory pools, so attention that keeps partial states (split KV, "
                        "cascade) cannot be captured into a CUDA graph; capture decode / prefill with "
                        "kv_split_size = -1");
        pooled_ = false;
        PAGEDKV_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
    }
}

StreamScratch::~StreamScratch() {
    if (ptr_ == nullptr) return;
    cudaError_t status;
    if (pooled_) {
        status = cudaFreeAsync(ptr_, stream_);
    } else {
        status = cudaStreamSynchronize(stream_);
        cudaError_t freed = cudaFree(ptr_);
        if (status == cudaSuccess) status = freed;
    }
    if (status != cudaSuccess) cudaGetLastError();  // a destructor cannot report; do not leak it to the next check
}

}  // namespace pagedkv::kernels::cuda
