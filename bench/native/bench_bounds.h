// Timing and the memory bound the native kernel benchmarks share: the best of repeated runs,
// and memcpy's copy bandwidth measured in the same run.
#pragma once

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace bench {

namespace cpu = pagedkv::kernels::cpu;

inline double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Best (minimum) seconds of `run` over repetitions filling ~min_seconds (at least 5): on a shared
// machine the minimum is the least disturbed run, for the kernels and the memcpy bound alike.
template <class Run>
double time_best(Run&& run, double min_seconds = 1.0) {
    run(0);  // warm up: page faults, thread pool
    double best = 1e30;
    const double start = now();
    for (int i = 1; i <= 5 || (now() - start < min_seconds && i <= 200); ++i) {
        const double t0 = now();
        run(i);
        best = std::min(best, now() - t0);
    }
    return best;
}

// Seconds of CPU this process used (all its threads): unlike wall time, hardly changed by other
// processes sharing the cores, so ratios of it compare on a loaded machine.
inline double process_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Median (over >= 9 repetitions, after a warm-up) of the CPU seconds one `run` costs.
template <class Run>
double cpu_time_median(Run&& run, int repetitions = 9) {
    run(0);
    std::vector<double> costs;
    for (int i = 1; i <= repetitions; ++i) {
        const double t0 = process_cpu_seconds();
        run(i);
        costs.push_back(process_cpu_seconds() - t0);
    }
    std::nth_element(costs.begin(), costs.begin() + costs.size() / 2, costs.end());
    return costs[costs.size() / 2];
}

// Copy bandwidth (read + write bytes per second) of memcpy over a 256 MiB buffer, split across threads.
inline double memcpy_bandwidth(int32_t threads) {
    const int64_t bytes = int64_t(256) << 20, chunk = bytes / 64;
    std::vector<char> src(size_t(bytes), 1), dst(size_t(bytes), 0);
    const double seconds = time_best([&](int) {
        cpu::parallel_for(bytes / chunk, threads, [&](int64_t i) {
            std::memcpy(dst.data() + i * chunk, src.data() + i * chunk, size_t(chunk));
        });
    });
    return 2.0 * double(bytes) / seconds;
}

}  // namespace bench
