// For the emulated AVX-512 test build only (PAGEDKV_EMULATE_AVX512, see vec_avx512.h): SIMDe
// (libsimde-dev 0.7) with the _mm512_* names as aliases of its portable code, plus the intrinsics
// vec_avx512.h uses that this SIMDe lacks, written lane by lane from Intel's definitions.
#pragma once

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

#include <cstdint>

namespace pagedkv_simde_gaps {

inline simde__m256 high_half(simde__m512 v) { return simde_mm512_castps512_ps256(simde_mm512_shuffle_f32x4(v, v, 0xee)); }

inline simde__m512 maskz_loadu_ps(simde__mmask16 mask, const void* p) {  // masked-off memory untouched
    simde__m512_private r = simde__m512_to_private(simde_mm512_setzero_ps());
    for (int i = 0; i < 16; ++i)
        if ((mask >> i) & 1) r.f32[i] = static_cast<const float*>(p)[i];
    return simde__m512_from_private(r);
}
inline void mask_storeu_ps(void* p, simde__mmask16 mask, simde__m512 v) {
    const simde__m512_private a = simde__m512_to_private(v);
    for (int i = 0; i < 16; ++i)
        if ((mask >> i) & 1) static_cast<float*>(p)[i] = a.f32[i];
}
inline simde__m256i maskz_loadu_epi16(simde__mmask16 mask, const void* p) {
    simde__m256i_private r = simde__m256i_to_private(simde_mm256_setzero_si256());
    for (int i = 0; i < 16; ++i)
        if ((mask >> i) & 1) r.u16[i] = static_cast<const uint16_t*>(p)[i];
    return simde__m256i_from_private(r);
}
inline void mask_storeu_epi16(void* p, simde__mmask16 mask, simde__m256i v) {
    const simde__m256i_private a = simde__m256i_to_private(v);
    for (int i = 0; i < 16; ++i)
        if ((mask >> i) & 1) static_cast<uint16_t*>(p)[i] = a.u16[i];
}
inline simde__m512 cvtepi32_ps(simde__m512i v) {
    const simde__m512i_private a = simde__m512i_to_private(v);
    simde__m512_private r;
    for (int i = 0; i < 16; ++i) r.f32[i] = float(a.i32[i]);
    return simde__m512_from_private(r);
}
inline simde__m512i cvtps_epi32(simde__m512 v) {  // nearest even (the default MXCSR mode)
    const simde__m512_private a = simde__m512_to_private(v);
    simde__m512i_private r;
    for (int i = 0; i < 16; ++i) r.i32[i] = int32_t(__builtin_rintf(a.f32[i]));
    return simde__m512i_from_private(r);
}
inline simde__m256i cvtepi32_epi16(simde__m512i v) {  // truncation
    const simde__m512i_private a = simde__m512i_to_private(v);
    simde__m256i_private r;
    for (int i = 0; i < 16; ++i) r.u16[i] = uint16_t(uint32_t(a.i32[i]));
    return simde__m256i_from_private(r);
}
inline simde__m512i cvtepi8_epi32(simde__m128i v) {
    const simde__m128i_private a = simde__m128i_to_private(v);
    simde__m512i_private r;
    for (int i = 0; i < 16; ++i) r.i32[i] = a.i8[i];
    return simde__m512i_from_private(r);
}
inline simde__m512i cvtepu8_epi32(simde__m128i v) {
    const simde__m128i_private a = simde__m128i_to_private(v);
    simde__m512i_private r;
    for (int i = 0; i < 16; ++i) r.i32[i] = a.u8[i];
    return simde__m512i_from_private(r);
}
inline simde__m512i cvtepu16_epi32(simde__m256i v) {
    const simde__m256i_private a = simde__m256i_to_private(v);
    simde__m512i_private r;
    for (int i = 0; i < 16; ++i) r.i32[i] = a.u16[i];
    return simde__m512i_from_private(r);
}
// f16 <-> f32 through the 256-bit F16C forms, one half at a time (nearest even, the one mode used).
inline simde__m512 cvtph_ps(simde__m256i v) {
    const simde__m512 low = simde_mm512_castps256_ps512(simde_mm256_cvtph_ps(simde_mm256_castsi256_si128(v)));
    const simde__m256 high = simde_mm256_cvtph_ps(simde_mm256_extracti128_si256(v, 1));
    return simde_mm512_insertf32x8(low, high, 1);
}
inline simde__m256i cvtps_ph(simde__m512 v, int) {
    return simde_mm256_set_m128i(simde_mm256_cvtps_ph(high_half(v), SIMDE_MM_FROUND_TO_NEAREST_INT),
                                 simde_mm256_cvtps_ph(simde_mm512_castps512_ps256(v), SIMDE_MM_FROUND_TO_NEAREST_INT));
}

}  // namespace pagedkv_simde_gaps

// clang defines the intrinsics with immediates as macros: each name is redefined from scratch.
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps pagedkv_simde_gaps::maskz_loadu_ps
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps pagedkv_simde_gaps::mask_storeu_ps
#undef _mm256_maskz_loadu_epi16
#define _mm256_maskz_loadu_epi16 pagedkv_simde_gaps::maskz_loadu_epi16
#undef _mm256_mask_storeu_epi16
#define _mm256_mask_storeu_epi16 pagedkv_simde_gaps::mask_storeu_epi16
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps pagedkv_simde_gaps::cvtepi32_ps
#undef _mm512_cvtps_epi32
#define _mm512_cvtps_epi32 pagedkv_simde_gaps::cvtps_epi32
#undef _mm512_cvtepi32_epi16
#define _mm512_cvtepi32_epi16 pagedkv_simde_gaps::cvtepi32_epi16
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32 pagedkv_simde_gaps::cvtepi8_epi32
#undef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32 pagedkv_simde_gaps::cvtepu8_epi32
#undef _mm512_cvtepu16_epi32
#define _mm512_cvtepu16_epi32 pagedkv_simde_gaps::cvtepu16_epi32
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps pagedkv_simde_gaps::cvtph_ps
#undef _mm512_cvtps_ph
#define _mm512_cvtps_ph pagedkv_simde_gaps::cvtps_ph
#undef _mm512_shuffle_f32x4
#define _mm512_shuffle_f32x4 simde_mm512_shuffle_f32x4  // SIMDe has it, without the alias
