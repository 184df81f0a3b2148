// Host-side helpers every launcher uses: run on the device that owns the data, read the device's
// size once, and borrow stream-ordered scratch memory (split-KV partial states, cascade).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace pagedkv::kernels::cuda {

// Makes the device holding `device_pointer` current for the scope (kernels launched on a stream
// of that device from a thread whose current device is another would fail), then restores.
class DeviceGuard {
public:
    explicit DeviceGuard(const void* device_pointer);
    ~DeviceGuard();
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;
    int device() const { return device_; }

private:
    int device_ = 0;
    int previous_ = -1;
};

struct DeviceInfo {
    int sm_count = 1;
    int max_smem_per_block_optin = 48 * 1024;
    bool memory_pools = false;
};

// Cached per device after the first call (thread-safe).
const DeviceInfo& device_info(int device);

// Sets up what the launchers would otherwise create on their first call on `device` (its facts,
// the scratch pool), so that a first kernel call inside a CUDA graph capture only queues work.
// Called when a CUDA cache is created.
void warm_up(int device);

// Gets `kernel` ready to launch on `device` with (threads, dynamic_smem): raises its dynamic
// shared-memory limit when it needs more than 48 KB, once per device, and returns how many blocks
// fit on one SM (cached per kernel, device and size). Call it before the first launch.
int prepare_kernel(const void* kernel, int threads, size_t dynamic_smem, int device);

// Scratch memory ordered on `stream`: allocated from a per-device pool (cudaMallocFromPoolAsync) and
// released on the same stream when the object dies, so the memory outlives the kernels that use it
// without a host synchronization. The pool keeps its memory between calls, so a steady state asks
// the driver for nothing; inside a CUDA graph capture the pair becomes the graph's own allocation
// and free nodes. Devices without memory pools fall back to cudaMalloc + synchronize + cudaFree,
// which a capture cannot hold: there a captured call that needs scratch (split KV, cascade) fails
// with UNSUPPORTED before queuing anything.
class StreamScratch {
public:
    StreamScratch(size_t bytes, cudaStream_t stream, int device);
    ~StreamScratch();
    StreamScratch(const StreamScratch&) = delete;
    StreamScratch& operator=(const StreamScratch&) = delete;
    void* get() const { return ptr_; }

private:
    void* ptr_ = nullptr;
    cudaStream_t stream_;
    bool pooled_ = true;
};

}  // namespace pagedkv::kernels::cuda
