// The memory a cache's pool lives in, and what the cache core does with it: allocate, free, copy,
// copy runs of pages, synchronize, and place batch metadata where kernels read it. One Device is
// chosen when a cache is created (host or CUDA device N); the core never branches on the device.
#pragma once

#include <cstdint>
#include <memory>

namespace pagedkv::device {

// Where the positions of a page lie: page[row][token][head_dim] with rows = layers * 2 * kv heads.
struct PageGeometry {
    void* pool_base;
    int64_t page_bytes;
    int64_t rows;       // num_layers * 2 * num_kv_heads
    int64_t row_bytes;  // page_size * head_dim * element bytes
    int64_t token_bytes;  // head_dim * element bytes
    // Quantized formats (rows = num_layers * num_kv_heads, K and V runs of different widths):
    // per run, the first tokens' codes and scales, and the tail (FP8's scale, written once with
    // the run's first token) — never bytes the page's owner may be writing meanwhile.
    struct QuantRuns {
        bool used = false;
        int64_t run_bytes[2];    // K run, V run of one head
        int64_t code_bytes[2];   // per token
        int64_t scales_at[2];    // offset of the scales in a run
        int64_t scale_bytes;     // per token (0 for FP8)
        int64_t tail_at[2];
        int64_t tail_bytes;      // 16 for FP8, else 0
        int64_t heads;
    } quant;
};

// Batch metadata placed on the device: `data` is where kernels read it; `ticket` is the device's
// own handle for the memory, given back to release_metadata.
struct Metadata {
    void* data = nullptr;
    int64_t ticket = -1;
};

class Device {
public:
    virtual ~Device() = default;

    virtual int32_t type() const = 0;   // pagedkv_device_type
    virtual int32_t index() const = 0;

    // Throws OUT_OF_MEMORY (or NO_DEVICE / CUDA).
    virtual void* alloc(int64_t bytes) = 0;
    virtual void free(void* ptr) noexcept = 0;
    // Host memory this device copies to and from fastest (pinned on CUDA): the host tier's slots.
    // Throws OUT_OF_MEMORY.
    virtual void* alloc_host(int64_t bytes) = 0;
    virtual void free_host(void* ptr) noexcept = 0;
    // Copies `bytes` (kind: pagedkv_copy_kind); finished when it returns.
    virtual void copy(void* dst, const void* src, int64_t bytes, int32_t kind) = 0;
    virtual void synchronize() = 0;

    // The cache's own copies (partial hits, copy-on-write, fork): the first `tokens` positions of
    // every row of page src[i] into page dst[i]. Only those positions are read, so a copy never
    // touches slots another owner may be writing. Ordered after all work queued on the device
    // before the call, and finished before it returns.
    virtual void copy_page_runs(const PageGeometry& geometry, const int32_t* src, const int32_t* dst, int32_t count,
                                int32_t tokens) = 0;
    // Whole pages (pagedkv_copy_pages), queued on the caller's stream where there are streams.
    virtual void copy_pages(void* pool_base, int64_t page_bytes, const int32_t* src, const int32_t* dst,
                            int32_t count, void* stream) = 0;

    // Makes `bytes` of host metadata readable by kernels on this device. On the host it is the
    // host copy itself; on CUDA a region of a preallocated ring, uploaded asynchronously on
    // `stream`. Valid until release_metadata, which waits for nothing: a region is reused only
    // after the work queued on `stream` before the release has finished.
    virtual Metadata place_metadata(const void* host, int64_t bytes, void* stream) = 0;
    virtual void release_metadata(const Metadata& metadata, void* stream) noexcept = 0;
};

// Throws INVALID_ARGUMENT for an unknown type, NO_DEVICE when CUDA is asked for and absent.
std::unique_ptr<Device> make_device(int32_t device_type, int32_t device_index);

// Implemented by csrc/kernels/cuda (or csrc/device/cuda_unavailable.cpp without a CUDA build).
std::unique_ptr<Device> make_cuda_device(int32_t device_index);

}  // namespace pagedkv::device
