// 16-lane float vectors on AVX-512 F/BW/VL/DQ; with kNativeDots (Isa::avx512_bf16) also the
// native dot products of AVX512_BF16 (q . k over bf16 K) and AVX512_VNNI (q . k over integer
// codes). Conversions never use the BF16 instructions: they flush subnormals, which would not match
// common/dtype.h. Include only from *_avx512*.cpp files.
//
// With PAGEDKV_EMULATE_AVX512 (a test build, see CMakeLists.txt) the same code compiles against
// SIMDe's portable implementations of these intrinsics, so the AVX-512 kernels' tests also run on
// CPUs without AVX-512.
#pragma once

// GCC 12 warns falsely inside its own AVX-512 intrinsics (their _mm*_undefined_* operands).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#if defined(PAGEDKV_EMULATE_AVX512)
#include "kernels/cpu/simde_avx512_gaps.h"
#else
#include <immintrin.h>
#endif

#include <cstdint>

#include "kernels/cpu/vec_math.h"

namespace pagedkv::kernels::cpu::avx512 {

template <bool kNativeDots>
struct VecT {
    using reg = __m512;
    static constexpr int W = 16;
    static constexpr bool kInt8Dot = kNativeDots;  // q . k of group codes in integers (VNNI)
    static constexpr bool kBf16Dot = kNativeDots;  // q . k over bf16 K with vdpbf16ps
    template <int R> static constexpr int qk_cols() { return R >= 4 ? 2 : R >= 2 ? 8 / R : 8; }
    static constexpr int qkt_rows = 6;  // rows of the transposed-K tile (all kKvTile positions wide)
    template <int R> static constexpr int pv_cols() { return R >= 3 ? 4 : 8; }

    static reg zero() { return _mm512_setzero_ps(); }
    static reg set1(float x) { return _mm512_set1_ps(x); }
    static reg load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
    static __mmask16 lanes_below(int n) { return __mmask16((1u << n) - 1u); }
    static reg load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(lanes_below(n), p); }
    static void store_n(float* p, reg v, int n) { _mm512_mask_storeu_ps(p, lanes_below(n), v); }
    static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
    static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
    static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
    static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
    static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }

    // The high 256 bits (a lane shuffle: GCC 12 warns falsely on the extract intrinsics).
    static __m256 high_half(reg v) { return _mm512_castps512_ps256(_mm512_shuffle_f32x4(v, v, 0xee)); }
    static __m256 fold(reg v) { return _mm256_add_ps(_mm512_castps512_ps256(v), high_half(v)); }
    static float reduce_add(reg v) {
        __m256 y = fold(v);
        __m128 x = _mm_add_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1));
        x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        x = _mm_add_ss(x, _mm_movehdup_ps(x));
        return _mm_cvtss_f32(x);
    }
    static float reduce_max(reg v) {
        __m256 y = _mm256_max_ps(_mm512_castps512_ps256(v), high_half(v));
        __m128 x = _mm_max_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1));
        x = _mm_max_ps(x, _mm_movehl_ps(x, x));
        x = _mm_max_ss(x, _mm_movehdup_ps(x));
        return _mm_cvtss_f32(x);
    }
    // out[i] = sum of the lanes of a[i], i < 8: fold each to 8 lanes, then one tree of hadds.
    static void reduce_add8(const reg* a, float* out) {
        __m256 s01 = _mm256_hadd_ps(fold(a[0]), fold(a[1])), s23 = _mm256_hadd_ps(fold(a[2]), fold(a[3]));
        __m256 s45 = _mm256_hadd_ps(fold(a[4]), fold(a[5])), s67 = _mm256_hadd_ps(fold(a[6]), fold(a[7]));
        __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
        __m256 low = _mm256_permute2f128_ps(s0123, s4567, 0x20);
        __m256 high = _mm256_permute2f128_ps(s0123, s4567, 0x31);
        _mm256_storeu_ps(out, _mm256_add_ps(low, high));
    }

    static reg exp2(reg x) {
        using namespace vec_math;
        x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExp2Min)), _mm512_set1_ps(kExp2Max));
        __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 f = _mm512_sub_ps(x, n);
        __m512 p = _mm512_set1_ps(kExp2Poly[7]);
        for (int k = 6; k >= 0; --k) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kExp2Poly[k]));
        __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
        return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    }

    static reg load_f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
    static void load_bf16_pair(const uint16_t* p, reg& even, reg& odd) {
        const __m512i words = _mm512_loadu_si512(p);
        even = _mm512_castsi512_ps(_mm512_slli_epi32(words, 16));
        odd = _mm512_castsi512_ps(_mm512_and_si512(words, _mm512_set1_epi32(int32_t(0xffff0000u))));
    }
    // Quantized KV codes, as in vec_avx2.h (W = 16 codes).
    static reg load_s8(const uint8_t* p) {
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p)));
    }
    static reg load_u4(const uint8_t* p, int shift) {
        const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p));
        return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(bytes, unsigned(shift)), _mm512_set1_epi32(15)));
    }
    static reg load_e4m3(const uint8_t* p) {
        const __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)p));
        const __m256i sign = _mm256_slli_epi16(_mm256_and_si256(x, _mm256_set1_epi16(0x80)), 8);
        const __m256i rest = _mm256_slli_epi16(_mm256_and_si256(x, _mm256_set1_epi16(0x7f)), 7);
        return _mm512_cvtph_ps(_mm256_or_si256(sign, rest));
    }
    static float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }
    // Integer dot products as in vec_avx2.h, one 32-dim group at a time, with vpdpbusd (VNNI on
    // 256 bits): sums of four u8 x s8 products straight into 32-bit lanes, no 16-bit step to
    // saturate. The 8 lanes of sums land in the low half of a 16-lane vector (the rest zero).
    using ireg = __m256i;
    static ireg load_codes_s8(const uint8_t* p) { return _mm256_loadu_si256((const __m256i*)p); }
    static ireg load_codes_u4(const uint8_t* p) {
        const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)p));
        const __m256i high = _mm256_srli_epi16(both, 4);
        return _mm256_and_si256(_mm256_blend_epi32(both, high, 0xf0), _mm256_set1_epi8(15));
    }
    static reg widen_sums(__m256i sums) {
        return _mm512_cvtepi32_ps(_mm512_inserti64x4(_mm512_setzero_si512(), sums, 0));
    }
    static reg dot_s8(ireg k, ireg q) {
        return widen_sums(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(k), _mm256_sign_epi8(q, k)));
    }
    static reg dot_u4(ireg u, ireg q, int32_t q_sum) {
        const __m256i sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, q);
        return widen_sums(_mm256_sub_epi32(sums, _mm256_set1_epi32(q_sum)));
    }
    // 32 bf16 values; acc lane i += a[2i] b[2i] + a[2i+1] b[2i+1] (vdpbf16ps: exact products, f32
    // sums rounded to nearest even, subnormal inputs and results flushed to zero).
    using bf16x = __m512bh;
    static bf16x load_bf16x(const uint16_t* p) { return __builtin_bit_cast(__m512bh, _mm512_loadu_si512(p)); }
    static reg dot_bf16(reg acc, bf16x a, bf16x b) { return _mm512_dpbf16_ps(acc, a, b); }

    static reg load_bf16(const uint16_t* p) {
        __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p));
        return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
    }
    static reg load_f16_n(const uint16_t* p, int n) {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes_below(n), p));
    }
    static reg load_bf16_n(const uint16_t* p, int n) {
        __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes_below(n), p));
        return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
    }
    static __m256i to_f16(reg v) {
        __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
        __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        __m256i canonical = _mm256_or_si256(_mm256_and_si256(h, _mm256_set1_epi16(int16_t(0x8000))),
                                            _mm256_set1_epi16(0x7e00));
        return _mm256_mask_blend_epi16(nan, h, canonical);
    }
    static __m256i to_bf16(reg v) {
        __m512i bits = _mm512_castps_si512(v);
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
        __m512i bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff));
        __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
        __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
        __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
    }
    static void store_f16(uint16_t* p, reg v) { _mm256_storeu_si256((__m256i*)p, to_f16(v)); }
    static void store_bf16(uint16_t* p, reg v) { _mm256_storeu_si256((__m256i*)p, to_bf16(v)); }
    static void store_f16_n(uint16_t* p, reg v, int n) { _mm256_mask_storeu_epi16(p, lanes_below(n), to_f16(v)); }
    static void store_bf16_n(uint16_t* p, reg v, int n) { _mm256_mask_storeu_epi16(p, lanes_below(n), to_bf16(v)); }
};

using Vec = VecT<false>;

}  // namespace pagedkv::kernels::cpu::avx512
