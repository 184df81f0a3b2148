// The CUDA runtime as the core sees it (csrc/device/cuda_device.h): device count and description,
// allocation, copies, synchronization. Every call first selects the cache's device; failures become
// pagedkv::Error with the runtime's message (see throw_cuda_error).
#include <unistd.h>

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

// What a failed cudaGetDeviceCount means for a user. Without the NVIDIA kernel driver the runtime
// says "driver version is insufficient"; /proc/driver/nvidia/version tells that case from an old driver.
const char* no_device_in_words(cudaError_t status) {
    switch (status) {
        case cudaErrorNoDevice: return "no CUDA device";
        case cudaErrorInsufficientDriver:
        case cudaErrorStubLibrary:
            return access("/proc/driver/nvidia/version", F_OK) != 0
                       ? "no NVIDIA driver found"
                       : "the NVIDIA driver is older than this library's CUDA runtime";
        default: return "no usable CUDA device";
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
            *reason = status != cudaSuccess ? concat(no_device_in_words(status), " (cudaGetDeviceCount: ",
                                                     cudaGetErrorName(status), ": ", cudaGetErrorString(status), ")")
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
//
// What the core asks of a CUDA device beyond allocation: its own page copies (ordered after
// everything queued on the device), and batch metadata placed where kernels read it without an
// allocation or a wait per batch (MetadataRing).

#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include "device/device.h"
#include "kernels/cuda/copy_pages.cuh"
#include "kernels/cuda/runtime.cuh"
#include "kernels/kernels.h"

namespace pagedkv::device {

namespace {

void check_device_index(int32_t device_index) {
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) throw_cuda_error(status, "cudaGetDeviceCount");
    PAGEDKV_REQUIRE(device_index >= 0 && device_index < count, PAGEDKV_ERR_NO_DEVICE, "CUDA device ", device_index,
                    " does not exist (", count, " device", count == 1 ? "" : "s", ")");
}

// Makes device `index` current for the scope, then gives the calling thread (an application
// thread) its own current device back.
class ScopedDevice {
public:
    explicit ScopedDevice(int32_t index) noexcept {
        int current = -1;
        if (cudaGetDevice(&current) != cudaSuccess) {
            cudaGetLastError();
            current = -1;
        }
        if (current == index) return;
        status_ = cudaSetDevice(index);
        if (status_ != cudaSuccess) cudaGetLastError();
        else previous_ = current;
    }
    ~ScopedDevice() {
        if (previous_ >= 0) cudaSetDevice(previous_);
    }
    ScopedDevice(const ScopedDevice&) = delete;
    ScopedDevice& operator=(const ScopedDevice&) = delete;
    bool ok() const { return status_ == cudaSuccess; }
    void require() const {
        if (status_ != cudaSuccess) throw_cuda_error(status_, "cudaSetDevice");
    }

private:
    int previous_ = -1;
    cudaError_t status_ = cudaSuccess;
};

// Device-wide synchronizations of one device object, numbered: memory released without a stream
// event that covers its readers (null stream, a stream being captured) is reused only after a
// synchronization that began after the release has finished.
class SyncEpochs {
public:
    uint64_t begin() { return started_.fetch_add(1) + 1; }
    void finished(uint64_t id) {
        uint64_t done = completed_.load();
        while (done < id && !completed_.compare_exchange_weak(done, id)) {
        }
    }
    uint64_t last_started() const { return started_.load(); }
    bool covers(uint64_t released_at) const { return completed_.load() > released_at; }

private:
    std::atomic<uint64_t> started_{0}, completed_{0};
};

void synchronize_device(SyncEpochs& epochs) {
    const uint64_t id = epochs.begin();
    PAGEDKV_CUDA_CHECK(cudaDeviceSynchronize());
    epochs.finished(id);
}

// Batch metadata on the device: one device buffer and its pinned host twin, allocated once and
// used as a ring. A batch's arrays are copied into the staging region, then uploaded with
// cudaMemcpyAsync on the batch's stream into the same region of the device buffer: no allocation,
// no wait. Releasing a region records an event on the stream; the region (both halves) is reused
// once that event has completed, so kernels queued before the release still read their arrays.
// Only when the ring holds no free space does a placement block, on the released regions' events;
// when even that is not enough (a batch larger than the ring, or many batches alive at once) a
// ring twice as large is allocated and the old one freed once its regions are gone.
class MetadataRing {
public:
    static constexpr int64_t kInitialBytes = int64_t(16) << 20;
    static constexpr int64_t kAlignment = 256;

    MetadataRing(int32_t device, SyncEpochs& epochs) : device_(device), epochs_(epochs) {
        buffers_.reserve(16);
        regions_.reserve(64);
        intervals_.reserve(64);
        spare_events_.reserve(64);
        add_buffer(kInitialBytes);
    }

    ~MetadataRing() {
        cudaDeviceSynchronize();  // nothing may still read a region we free
        for (Region& region : regions_)
            if (region.event != nullptr) cudaEventDestroy(region.event);
        for (cudaEvent_t event : spare_events_) cudaEventDestroy(event);
        for (Buffer& buffer : buffers_) free_buffer(buffer);
        cudaGetLastError();
    }

    MetadataRing(const MetadataRing&) = delete;
    MetadataRing& operator=(const MetadataRing&) = delete;

    Metadata place(const void* host, int64_t bytes, cudaStream_t stream) {
        PAGEDKV_REQUIRE(bytes >= 0, PAGEDKV_ERR_INTERNAL, "batch metadata of ", bytes, " bytes");
        PAGEDKV_REQUIRE(bytes == 0 || host != nullptr, PAGEDKV_ERR_INTERNAL, "batch metadata without a host copy");
        PAGEDKV_REQUIRE(bytes <= (int64_t(1) << 40), PAGEDKV_ERR_INVALID_ARGUMENT, "batch metadata of ", bytes,
                        " bytes is too large");
        cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
        PAGEDKV_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
        PAGEDKV_REQUIRE(capture == cudaStreamCaptureStatusNone, PAGEDKV_ERR_INVALID_ARGUMENT,
                        "a batch cannot be built on a stream that is being captured into a CUDA graph: build it "
                        "before cudaStreamBeginCapture (the graph's kernels read the batch's arrays in place)");
        const int64_t size = round_up(std::max<int64_t>(bytes, 1));

        std::lock_guard<std::mutex> lock(mutex_);
        reclaim();
        int64_t offset = find_space(size);
        if (offset < 0 && wait_for_released()) offset = find_space(size);
        if (offset < 0) {
            grow(size);
            offset = find_space(size);
            PAGEDKV_REQUIRE(offset >= 0, PAGEDKV_ERR_INTERNAL, "no room for ", size, " bytes in a new metadata ring");
        }
        const size_t current = buffers_.size() - 1;
        Buffer& buffer = buffers_[current];
        if (bytes > 0) {
            std::memcpy(buffer.staging + offset, host, size_t(bytes));
            PAGEDKV_CUDA_CHECK(cudaMemcpyAsync(buffer.device + offset, buffer.staging + offset, size_t(bytes),
                                               cudaMemcpyHostToDevice, stream));
        }
        Region region;
        region.ticket = next_ticket_++;
        region.buffer = current;
        region.offset = offset;
        region.bytes = size;
        region.placed_on = stream;
        regions_.push_back(region);
        ++buffer.regions;
        buffer.cursor = offset + size;
        return Metadata{buffer.device + offset, region.ticket};
    }

    void release(const Metadata& metadata, cudaStream_t stream) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        Region* region = nullptr;
        for (Region& candidate : regions_)
            if (candidate.ticket == metadata.ticket) region = &candidate;
        if (region == nullptr || region->released) return;
        region->released = true;
        region->released_at = epochs_.last_started();
        region->needs_device_sync = true;
        // One event on the stream covers the upload and the kernels only when the batch was placed
        // on that same stream. The null stream does not order the non-blocking streams a batch of
        // pagedkv_batch_create may have run on, and an event recorded during a capture cannot be
        // waited for. Those cases wait for a device synchronization instead.
        if (stream == nullptr || stream != region->placed_on) return;
        cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
        if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess || capture != cudaStreamCaptureStatusNone) {
            cudaGetLastError();
            return;
        }
        cudaEvent_t event = nullptr;
        if (!spare_events_.empty()) {
            event = spare_events_.back();
            spare_events_.pop_back();
        } else if (cudaEventCreateWithFlags(&event, cudaEventDisableTiming) != cudaSuccess) {
            cudaGetLastError();
            return;
        }
        if (cudaEventRecord(event, stream) != cudaSuccess) {
            cudaGetLastError();
            cudaEventDestroy(event);
            return;
        }
        region->event = event;
        region->needs_device_sync = false;
    }

private:
    struct Buffer {
        char* device = nullptr;
        char* staging = nullptr;  // pinned host memory, same size and offsets
        int64_t capacity = 0;
        int64_t cursor = 0;       // next-fit: placements continue after the last one
        int32_t regions = 0;      // regions not yet reclaimed
    };
    struct Region {
        int64_t ticket = 0;
        size_t buffer = 0;
        int64_t offset = 0;
        int64_t bytes = 0;
        bool released = false;
        bool needs_device_sync = false;
        uint64_t released_at = 0;
        cudaEvent_t event = nullptr;
        cudaStream_t placed_on = nullptr;  // compared, never used: the stream may be gone by now
    };

    static int64_t round_up(int64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

    void add_buffer(int64_t capacity) {
        Buffer buffer;
        buffer.capacity = capacity;
        cudaError_t status = cudaMalloc(reinterpret_cast<void**>(&buffer.device), size_t(capacity));
        if (status == cudaSuccess) {
            status = cudaHostAlloc(reinterpret_cast<void**>(&buffer.staging), size_t(capacity), cudaHostAllocDefault);
            if (status != cudaSuccess) {
                cudaGetLastError();
                cudaFree(buffer.device);
            }
        }
        if (status != cudaSuccess) {
            cudaGetLastError();
            fail(status == cudaErrorMemoryAllocation ? PAGEDKV_ERR_OUT_OF_MEMORY : PAGEDKV_ERR_CUDA,
                 "cannot allocate the ", capacity >> 20, " MiB batch metadata ring of cuda:", device_, " (",
                 cudaGetErrorName(status), ")");
        }
        buffers_.push_back(buffer);
    }

    static void free_buffer(Buffer& buffer) noexcept {
        if (buffer.device != nullptr) cudaFree(buffer.device);
        if (buffer.staging != nullptr) cudaFreeHost(buffer.staging);
        buffer.device = buffer.staging = nullptr;
    }

    bool finished(const Region& region) const {
        if (region.needs_device_sync) return epochs_.covers(region.released_at);
        cudaError_t status = cudaEventQuery(region.event);
        if (status == cudaErrorNotReady) return false;
        if (status != cudaSuccess) cudaGetLastError();  // a failed context runs nothing more: reuse is harmless
        return true;
    }

    // Forgets the released regions whose readers have finished; frees emptied old buffers.
    void reclaim() {
        for (size_t i = 0; i < regions_.size();) {
            Region& region = regions_[i];
            if (!region.released || !finished(region)) {
                ++i;
                continue;
            }
            if (region.event != nullptr) spare_events_.push_back(region.event);
            --buffers_[region.buffer].regions;
            region = regions_.back();
            regions_.pop_back();
        }
        for (size_t b = 0; b + 1 < buffers_.size(); ++b)
            if (buffers_[b].regions == 0 && buffers_[b].device != nullptr) free_buffer(buffers_[b]);
    }

    // Blocks until the released regions of the current buffer are finished (the ring is full of
    // them); false when there are none, so waiting cannot help.
    bool wait_for_released() {
        const size_t current = buffers_.size() - 1;
        bool any = false, device_sync = false;
        for (const Region& region : regions_) {
            if (region.buffer != current || !region.released || finished(region)) continue;
            any = true;
            if (region.needs_device_sync) {
                device_sync = true;
            } else if (cudaEventSynchronize(region.event) != cudaSuccess) {
                cudaGetLastError();
            }
        }
        if (device_sync) synchronize_device(epochs_);
        reclaim();
        return any;
    }

    // Offset of `size` free bytes in the current buffer (next fit from the cursor, then from the
    // start), or -1.
    int64_t find_space(int64_t size) {
        const size_t current = buffers_.size() - 1;
        const Buffer& buffer = buffers_[current];
        if (size > buffer.capacity) return -1;
        intervals_.clear();
        for (const Region& region : regions_)
            if (region.buffer == current) intervals_.emplace_back(region.offset, region.offset + region.bytes);
        std::sort(intervals_.begin(), intervals_.end());
        auto first_fit = [&](int64_t from) -> int64_t {
            int64_t gap_start = 0;
            for (size_t i = 0; i <= intervals_.size(); ++i) {
                const int64_t gap_end = i < intervals_.size() ? intervals_[i].first : buffer.capacity;
                const int64_t start = std::max(gap_start, from);
                if (gap_end - start >= size) return start;
                if (i < intervals_.size()) gap_start = std::max(gap_start, intervals_[i].second);
            }
            return -1;
        };
        int64_t offset = first_fit(buffer.cursor);
        if (offset < 0 && buffer.cursor > 0) offset = first_fit(0);
        return offset;
    }

    void grow(int64_t size) {
        int64_t capacity = buffers_.back().capacity * 2;
        while (capacity < size) capacity *= 2;
        add_buffer(capacity);
        reclaim();  // frees the old buffer now if nothing lives in it
    }

    const int32_t device_;
    SyncEpochs& epochs_;
    std::mutex mutex_;
    std::vector<Buffer> buffers_;  // the last one is current; older ones are freed once empty
    std::vector<Region> regions_;  // placed and not yet reclaimed, in no order
    std::vector<cudaEvent_t> spare_events_;
    std::vector<std::pair<int64_t, int64_t>> intervals_;  // find_space's scratch
    int64_t next_ticket_ = 1;
};

class CudaDevice final : public Device {
public:
    explicit CudaDevice(int32_t index) : index_(index) {
        check_device_index(index);
        ScopedDevice scoped(index_);
        scoped.require();
        // Everything the kernels would otherwise set up on their first call (device facts, the
        // scratch pool), so that a first call inside a CUDA graph capture only queues work.
        kernels::cuda::warm_up(index_);
        PAGEDKV_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
        try {
            ring_ = std::make_unique<MetadataRing>(index_, epochs_);
        } catch (...) {
            cudaStreamDestroy(copy_stream_);
            throw;
        }
    }

    ~CudaDevice() override {
        ScopedDevice scoped(index_);
        ring_.reset();
        if (copy_stream_ != nullptr) cudaStreamDestroy(copy_stream_);
        cudaGetLastError();
    }

    int32_t type() const override { return PAGEDKV_DEVICE_CUDA; }
    int32_t index() const override { return index_; }

    void* alloc(int64_t bytes) override { return cuda_alloc(index_, std::max<int64_t>(bytes, 1)); }
    void free(void* ptr) noexcept override { cuda_free(index_, ptr); }
    void* alloc_host(int64_t bytes) override {
        select_device(index_);
        void* ptr = nullptr;
        cudaError_t status = cudaMallocHost(&ptr, size_t(std::max<int64_t>(bytes, 1)));
        if (status != cudaSuccess) {
            cudaGetLastError();
            fail(PAGEDKV_ERR_OUT_OF_MEMORY, "cudaMallocHost of ", bytes, " bytes of pinned host memory failed (",
                 cudaGetErrorString(status), ")");
        }
        return ptr;
    }
    void free_host(void* ptr) noexcept override {
        if (ptr != nullptr && cudaFreeHost(ptr) != cudaSuccess) cudaGetLastError();
    }
    void copy(void* dst, const void* src, int64_t bytes, int32_t kind) override {
        cuda_memcpy(index_, dst, src, bytes, kind);
    }
    void synchronize() override {
        ScopedDevice scoped(index_);
        scoped.require();
        synchronize_device(epochs_);
    }

    // Internal copies do not know the caller's streams: the device-wide synchronization before
    // orders them after every write queued so far; waiting for the copies before returning orders
    // them before every later one. Only the first `tokens` positions of each row (layer, K/V, head)
    // move: one 2D copy per page, rows of `tokens * token_bytes` bytes at a pitch of `row_bytes`.
    void copy_page_runs(const PageGeometry& g, const int32_t* src, const int32_t* dst, int32_t count,
                        int32_t tokens) override {
        if (count <= 0 || tokens <= 0 || g.rows <= 0) return;
        if (g.quant.used) {
            ScopedDevice scoped(index_);
            scoped.require();
            synchronize_device(epochs_);
            kernels::cuda::copy_quant_run_prefixes(g, src, dst, count, tokens, copy_stream_);
            PAGEDKV_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
            return;
        }
        const int64_t width = int64_t(tokens) * g.token_bytes;
        PAGEDKV_REQUIRE(g.token_bytes > 0 && width <= g.row_bytes && g.rows * g.row_bytes <= g.page_bytes,
                        PAGEDKV_ERR_INTERNAL, "copy_page_runs: ", tokens, " positions of ", g.token_bytes,
                        " bytes in rows of ", g.row_bytes, " bytes (", g.rows, " rows, pages of ", g.page_bytes,
                        " bytes)");
        ScopedDevice scoped(index_);
        scoped.require();
        synchronize_device(epochs_);
        auto* pool = static_cast<unsigned char*>(g.pool_base);
        cudaError_t failed = cudaSuccess;
        for (int32_t i = 0; i < count && failed == cudaSuccess; ++i) {
            if (src[i] == dst[i]) continue;
            failed = cudaMemcpy2DAsync(pool + int64_t(dst[i]) * g.page_bytes, size_t(g.row_bytes),
                                       pool + int64_t(src[i]) * g.page_bytes, size_t(g.row_bytes), size_t(width),
                                       size_t(g.rows), cudaMemcpyDeviceToDevice, copy_stream_);
        }
        // Even after a failed call: the copies already queued land before this returns.
        cudaError_t finished = cudaStreamSynchronize(copy_stream_);
        if (failed != cudaSuccess) throw_cuda_error(failed, "cudaMemcpy2DAsync (page copy)");
        if (finished != cudaSuccess) throw_cuda_error(finished, "cudaStreamSynchronize (page copy)");
    }

    void copy_pages(void* pool_base, int64_t page_bytes, const int32_t* src, const int32_t* dst, int32_t count,
                    void* stream) override {
        kernels::cuda::copy_pages(pool_base, page_bytes, src, dst, count, stream);
    }

    Metadata place_metadata(const void* host, int64_t bytes, void* stream) override {
        ScopedDevice scoped(index_);
        scoped.require();
        return ring_->place(host, bytes, kernels::cuda::as_stream(stream));
    }

    void release_metadata(const Metadata& metadata, void* stream) noexcept override {
        if (metadata.data == nullptr || metadata.ticket < 0) return;
        ScopedDevice scoped(index_);
        if (!scoped.ok()) return;
        ring_->release(metadata, kernels::cuda::as_stream(stream));
    }

private:
    int32_t index_;
    SyncEpochs epochs_;
    cudaStream_t copy_stream_ = nullptr;
    std::unique_ptr<MetadataRing> ring_;
};

}  // namespace

std::unique_ptr<Device> make_cuda_device(int32_t device_index) { return std::make_unique<CudaDevice>(device_index); }

}  // namespace pagedkv::device
