#include "cpu_features.h"

#include <thread>

namespace pagedkv::device {

bool cpu_has_avx2() {
#if defined(__x86_64__)
    static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                            __builtin_cpu_supports("f16c");
    return has;
#else
    return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__)
    static const bool has = cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
                            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                            __builtin_cpu_supports("avx512dq");
    return has;
#else
    return false;
#endif
}

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__)
    static const bool has = cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
    return has;
#else
    return false;
#endif
}

int32_t cpu_thread_count() {
    static const int32_t count = [] {
        unsigned n = std::thread::hardware_concurrency();
        return n == 0 ? 1 : int32_t(n);
    }();
    return count;
}

}  // namespace pagedkv::device
