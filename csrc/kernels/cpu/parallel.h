// The one place the CPU kernels start threads: a dynamic parallel loop on OpenMP that never lets
// an exception escape a worker (the first one is rethrown on the calling thread).
//
// Built without OpenMP (the ThreadSanitizer build, PAGEDKV_SANITIZE=thread: the OpenMP runtime is
// not instrumented, so TSan would take its barriers for races) the same loop runs on plain
// std::threads started per call, which TSan sees through.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#if !defined(_OPENMP)
#include <thread>
#include <vector>
#endif

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
#if defined(_OPENMP)
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
#else
    std::atomic<int64_t> next{0};
    auto worker = [&] {
        while (!failed.load(std::memory_order_relaxed)) {
            const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
            if (i >= count) return;
            try {
                body(i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!error) error = std::current_exception();
                failed.store(true, std::memory_order_relaxed);
            }
        }
    };
    std::vector<std::thread> helpers;
    try {
        helpers.reserve(size_t(threads - 1));
        for (int32_t t = 1; t < threads; ++t) helpers.emplace_back(worker);
    } catch (...) {
        // No more threads to be had: the ones started (and this one) take all of the work.
    }
    worker();
    for (std::thread& helper : helpers) helper.join();
#endif
    if (error) std::rethrow_exception(error);
}

}  // namespace pagedkv::kernels::cpu
