#include "kernels/cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "device/cpu_features.h"

namespace pagedkv::kernels::cpu {

namespace {

Isa isa_from_environment() {
    const char* value = std::getenv("PAGEDKV_CPU_ISA");
    if (value == nullptr) return Isa::avx512_bf16;
    if (std::strcmp(value, "portable") == 0 || std::strcmp(value, "scalar") == 0) return Isa::portable;
    if (std::strcmp(value, "avx2") == 0) return Isa::avx2;
    if (std::strcmp(value, "avx512") == 0) return Isa::avx512;
    return Isa::avx512_bf16;
}

Isa narrower(Isa a, Isa b) { return int32_t(a) < int32_t(b) ? a : b; }

std::atomic<int32_t> forced{-1};

}  // namespace

Isa best_isa() {
#if defined(PAGEDKV_EMULATE_AVX512)
    return Isa::avx512_bf16;  // the test build whose AVX-512 kernels are SIMDe's portable code
#elif defined(__x86_64__)
    static const Isa best = device::cpu_has_avx512_bf16() && device::cpu_has_avx512_vnni() ? Isa::avx512_bf16
                            : device::cpu_has_avx512()                                   ? Isa::avx512
                            : device::cpu_has_avx2() ? Isa::avx2
                                                     : Isa::portable;
    return best;
#else
    return Isa::portable;
#endif
}

Isa active_isa() {
    static const Isa configured = narrower(best_isa(), isa_from_environment());
    int32_t force = forced.load(std::memory_order_relaxed);
    return force < 0 ? configured : narrower(best_isa(), Isa(force));
}

void force_isa(Isa isa) { forced.store(int32_t(isa), std::memory_order_relaxed); }

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::avx512_bf16: return "avx512bf16";
        case Isa::avx512: return "avx512";
        case Isa::avx2: return "avx2";
        default: return "portable";
    }
}

bool isa_has_int8_dot(Isa isa) { return isa == Isa::avx2 || isa == Isa::avx512_bf16; }

int32_t resolve_threads(int32_t requested) {
    return requested > 0 ? requested : device::cpu_thread_count();
}

int32_t threads_for_work(int32_t requested, int64_t dot_products) {
    constexpr int64_t kProductsPerThread = 16384;
    if (requested > 0) return requested;
    const int64_t wanted = std::max<int64_t>(1, dot_products / kProductsPerThread);
    return int32_t(std::min<int64_t>(wanted, device::cpu_thread_count()));
}

}  // namespace pagedkv::kernels::cpu
