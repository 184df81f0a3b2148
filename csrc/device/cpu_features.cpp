#include "cpu_features.h"

#include <thread>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace pagedkv::device {

#if defined(__x86_64__)
namespace {

// Read from CPUID and XGETBV directly rather than with __builtin_cpu_supports: clang does not
// know every feature name gcc does ("f16c", "avx512bf16"), and the features only count when the
// OS saves the wider registers (XCR0), which CPUID alone does not say.
struct X86Features {
    bool avx2 = false;     // AVX2 + FMA + F16C, with the YMM state enabled by the OS
    bool avx512 = false;   // ... and AVX-512 F/BW/VL/DQ, with the ZMM state enabled
    bool avx512_bf16 = false;
    bool avx512_vnni = false;
};

uint64_t read_xcr0() {
    uint32_t eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (uint64_t(edx) << 32) | eax;
}

X86Features detect() {
    X86Features f;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
    const bool osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1, fma = (ecx >> 12) & 1, f16c = (ecx >> 29) & 1;
    if (!osxsave || !avx) return f;
    const uint64_t xcr0 = read_xcr0();
    const bool ymm_state = (xcr0 & 0x6) == 0x6;     // SSE + AVX
    const bool zmm_state = (xcr0 & 0xe6) == 0xe6;   // ... + opmask, ZMM0-15 upper halves, ZMM16-31
    if (!ymm_state) return f;
    unsigned max_leaf = __get_cpuid_max(0, nullptr);
    if (max_leaf < 7) return f;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const unsigned leaf7_max_subleaf = eax;
    const bool avx2 = (ebx >> 5) & 1;
    const bool avx512f = (ebx >> 16) & 1, avx512dq = (ebx >> 17) & 1, avx512bw = (ebx >> 30) & 1,
               avx512vl = (ebx >> 31) & 1;
    f.avx2 = avx2 && fma && f16c;
    f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
    f.avx512_vnni = f.avx512 && ((ecx >> 11) & 1);
    if (f.avx512 && leaf7_max_subleaf >= 1) {
        __cpuid_count(7, 1, eax, ebx, ecx, edx);
        f.avx512_bf16 = (eax >> 5) & 1;
    }
    return f;
}

const X86Features& features() {
    static const X86Features detected = detect();
    return detected;
}

}  // namespace
#endif

bool cpu_has_avx2() {
#if defined(__x86_64__)
    return features().avx2;
#else
    return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__)
    return features().avx512;
#else
    return false;
#endif
}

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__)
    return features().avx512_bf16;
#else
    return false;
#endif
}

bool cpu_has_avx512_vnni() {
#if defined(__x86_64__)
    return features().avx512_vnni;
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
