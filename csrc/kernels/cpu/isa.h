// Which instruction set the fast CPU kernels run with, chosen once at run time, and the thread
// count they use. Every SIMD variant lives in its own *_avx2.cpp / *_avx512.cpp file (compiled
// for that ISA, in a namespace of its own so no inline function is shared across ISAs).
#pragma once

#include <cstdint>

namespace pagedkv::kernels::cpu {

// avx512_bf16: AVX-512 with the native dot products, AVX512_BF16 (vdpbf16ps) and AVX512_VNNI
// (vpdpbusd), both required (Cooper Lake, Sapphire Rapids and later, Zen 4 and later).
enum class Isa : int32_t { portable = 0, avx2 = 1, avx512 = 2, avx512_bf16 = 3 };

// The widest ISA this CPU runs and this build has.
Isa best_isa();

// best_isa(), lowered by the PAGEDKV_CPU_ISA environment variable (portable|avx2|avx512|avx512bf16) or by
// force_isa(). Read at every kernel call, so tests and benchmarks can compare the paths.
Isa active_isa();

// Forces a narrower ISA (clamped to best_isa()); for tests and benchmarks, not thread-safe
// against kernels running at the same time.
void force_isa(Isa isa);

const char* isa_name(Isa isa);

// Whether the ISA's decode over q8/q6/q4 takes q . k in integers (q rounded to int8 per group).
bool isa_has_int8_dot(Isa isa);

// Worker threads for a request: 0 = all cores.
int32_t resolve_threads(int32_t requested);

// Threads for an attention call of `dot_products` query-row x KV-position products: the caller's
// count if it gave one, else one thread per ~16k products up to all cores, because waking a
// team costs more than a small decode step takes (and far more on a loaded machine).
int32_t threads_for_work(int32_t requested, int64_t dot_products);

}  // namespace pagedkv::kernels::cpu
