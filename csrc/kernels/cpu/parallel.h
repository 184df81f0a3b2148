// The one place the CPU kernels start threads: a dynamic parallel loop on OpenMP that never lets
// an exception escape a worker (the first one is rethrown on the calling thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

namespace pagedkv::kernels::cpu {

template <class Body>
void parallel_for(int64_t count, int32_t threads, Body&& body) {
    if (count <= 0) return;
    if (threads > count) threads = int32_t(count);
    if (threads <= 1) {
        for (int64_t i = 0; i < count; ++i) body(i);
        return;
    }
    std::exception_ptr error;
    std::mutex error_mutex;
    std::atomic<bool> failed{false};
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t i = 0; i < count; ++i) {
        if (failed.load(std::memory_order_relaxed)) continue;
        try {
            body(i);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
            failed.store(true, std::memory_order_relaxed);
        }
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace pagedkv::kernels::cpu
