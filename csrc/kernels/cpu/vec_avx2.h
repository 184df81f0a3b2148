// 8-lane float vectors on AVX2 + FMA + F16C. Include only from *_avx2.cpp files.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/vec_math.h"

namespace pagedkv::kernels::cpu::avx2 {

struct Vec {
    using reg = __m256;
    static constexpr int W = 8;
    // Register tiles of the attention micro-kernels (rows x columns); see attend_impl.h.
    template <int R> static constexpr int qk_cols() { return R >= 4 ? 2 : R >= 2 ? 8 / R : 8; }
    static constexpr int qkt_rows = 3;  // rows of the transposed-K tile (all kKvTile positions wide)
    template <int R> static constexpr int pv_cols() { return R >= 4 ? 2 : R == 3 ? 2 : R == 2 ? 4 : 8; }

    static reg zero() { return _mm256_setzero_ps(); }
    static reg set1(float x) { return _mm256_set1_ps(x); }
    static reg load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
    static __m256i lanes_below(int n) {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static reg load_n(const float* p, int n) { return _mm256_maskload_ps(p, lanes_below(n)); }
    static void store_n(float* p, reg v, int n) { _mm256_maskstore_ps(p, lanes_below(n), v); }
    static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
    static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
    static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
    static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
    static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }

    static float reduce_add(reg v) {
        __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        x = _mm_add_ss(x, _mm_movehdup_ps(x));
        return _mm_cvtss_f32(x);
    }
    static float reduce_max(reg v) {
        __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        x = _mm_max_ps(x, _mm_movehl_ps(x, x));
        x = _mm_max_ss(x, _mm_movehdup_ps(x));
        return _mm_cvtss_f32(x);
    }
    // out[i] = sum of the lanes of a[i], i < 8, by one tree of horizontal adds.
    static void reduce_add8(const reg* a, float* out) {
        __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
        __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
        __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
        // Lane j of s0123 holds half of sum j (low 128 bits) or its other half (high 128 bits).
        __m256 low = _mm256_permute2f128_ps(s0123, s4567, 0x20);
        __m256 high = _mm256_permute2f128_ps(s0123, s4567, 0x31);
        _mm256_storeu_ps(out, _mm256_add_ps(low, high));
    }

    // 2^x for x <= 0 (see vec_math.h); -inf gives exactly 0.
    static reg exp2(reg x) {
        using namespace vec_math;
        x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExp2Min)), _mm256_set1_ps(kExp2Max));
        __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 f = _mm256_sub_ps(x, n);
        __m256 p = _mm256_set1_ps(kExp2Poly[7]);
        for (int k = 6; k >= 0; --k) p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kExp2Poly[k]));
        __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    }

    static reg load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
    static reg load_f16_n(const uint16_t* p, int n) {
        alignas(16) uint16_t lanes[8] = {};
        __builtin_memcpy(lanes, p, size_t(n) * 2);
        return load_f16(lanes);
    }
    static reg load_bf16_n(const uint16_t* p, int n) {
        alignas(16) uint16_t lanes[8] = {};
        __builtin_memcpy(lanes, p, size_t(n) * 2);
        return load_bf16(lanes);
    }
    // 2W bf16 values as two vectors: the even-indexed ones and the odd-indexed ones (one shift and
    // one mask per vector, instead of a widening shuffle).
    static void load_bf16_pair(const uint16_t* p, reg& even, reg& odd) {
        const __m256i words = _mm256_loadu_si256((const __m256i*)p);
        even = _mm256_castsi256_ps(_mm256_slli_epi32(words, 16));
        odd = _mm256_castsi256_ps(_mm256_and_si256(words, _mm256_set1_epi32(int32_t(0xffff0000u))));
    }
    // Quantized KV codes (see pagedkv.h): W int8 codes; W 4-bit codes (stored c + 8) from the low
    // (shift 0) or high (shift 4) nibbles of W bytes, as c + 8; W e4m3 codes as their value * 2^-8.
    static reg load_s8(const uint8_t* p) {
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p)));
    }
    static reg load_u4(const uint8_t* p, int shift) {
        const __m256i bytes = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p));
        return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(bytes, shift), _mm256_set1_epi32(15)));
    }
    static reg load_e4m3(const uint8_t* p) {
        const __m128i x = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i*)p));
        const __m128i sign = _mm_slli_epi16(_mm_and_si128(x, _mm_set1_epi16(0x80)), 8);
        const __m128i rest = _mm_slli_epi16(_mm_and_si128(x, _mm_set1_epi16(0x7f)), 7);
        return _mm256_cvtph_ps(_mm_or_si128(sign, rest));
    }
    static float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }

    // Integer dot products of one 32-dim group of K codes with 32 int8 codes of q (attend_impl.h
    // quantizes q once per call where kInt8Dot): 8 lanes of partial sums, as f32. No lane
    // saturates: pairs of |k| <= 128 times |q| <= 127 stay below 2^15 in maddubs.
    static constexpr bool kInt8Dot = true;
    static constexpr bool kBf16Dot = false;  // no native bf16 dot product (see vec_avx512.h)
    using ireg = __m256i;
    static ireg load_codes_s8(const uint8_t* p) { return _mm256_loadu_si256((const __m256i*)p); }
    // 16 bytes of 4-bit codes (byte i: dim i low, dim i + 16 high) as 32 bytes in dim order, 0..15.
    static ireg load_codes_u4(const uint8_t* p) {
        const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)p));
        const __m256i high = _mm256_srli_epi16(both, 4);
        return _mm256_and_si256(_mm256_blend_epi32(both, high, 0xf0), _mm256_set1_epi8(15));
    }
    // sum k q with k signed: |k| (unsigned) times q with k's sign.
    static reg dot_s8(ireg k, ireg q) {
        const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(k), _mm256_sign_epi8(q, k));
        return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    }
    // sum (u - 8) q for 4-bit codes u stored + 8: sum u q, less 8 sum q spread over the 8 lanes.
    static reg dot_u4(ireg u, ireg q, int32_t q_sum) {
        const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1));
        return _mm256_cvtepi32_ps(_mm256_sub_epi32(sums, _mm256_set1_epi32(q_sum)));
    }
    static reg load_bf16(const uint16_t* p) {
        __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p));
        return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    }
    // Round to nearest even exactly as common/dtype.h does, NaN included (sign | 0x7e00).
    static void store_f16(uint16_t* p, reg v) {
        __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
        __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(nan), _mm256_extracti128_si256(nan, 1));
        __m128i canonical = _mm_or_si128(_mm_and_si128(h, _mm_set1_epi16(int16_t(0x8000))), _mm_set1_epi16(0x7e00));
        _mm_storeu_si128((__m128i*)p, _mm_blendv_epi8(h, canonical, nan16));
    }
    // bits + 0x7fff + lsb, then the high half; NaN keeps its high half with the quiet bit set.
    static void store_bf16(uint16_t* p, reg v) {
        __m256i bits = _mm256_castps_si256(v);
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
        __m256i bias = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff));
        __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, bias), 16);
        __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
        __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        __m256i half = _mm256_blendv_epi8(rounded, quiet, nan);
        __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
        _mm_storeu_si128((__m128i*)p, packed);
    }
    static void store_f16_n(uint16_t* p, reg v, int n) {
        alignas(16) uint16_t lanes[8];
        store_f16(lanes, v);
        __builtin_memcpy(p, lanes, size_t(n) * 2);
    }
    static void store_bf16_n(uint16_t* p, reg v, int n) {
        alignas(16) uint16_t lanes[8];
        store_bf16(lanes, v);
        __builtin_memcpy(p, lanes, size_t(n) * 2);
    }
};

}  // namespace pagedkv::kernels::cpu::avx2
