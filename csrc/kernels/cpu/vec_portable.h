// 8-lane float "vectors" in plain C++ (fixed-size loops the compiler vectorizes for whatever the
// baseline target has). The fallback of the fast kernels on CPUs without AVX2.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/dtype.h"
#include "kernels/cpu/vec_math.h"

namespace pagedkv::kernels::cpu::portable {

struct Vec {
    struct reg {
        float v[8];
    };
    static constexpr int W = 8;
    static constexpr bool kInt8Dot = false;  // q . k of group codes in f32 (see vec_avx2.h)
    static constexpr bool kBf16Dot = false;  // no native bf16 dot product (see vec_avx512.h)
    template <int R> static constexpr int qk_cols() { return R >= 4 ? 2 : R >= 2 ? 8 / R : 8; }
    static constexpr int qkt_rows = 3;  // rows of the transposed-K tile (all kKvTile positions wide)
    template <int R> static constexpr int pv_cols() { return R >= 4 ? 2 : R == 3 ? 2 : R == 2 ? 4 : 8; }

    template <class F> static reg map(F f) {
        reg r;
        for (int i = 0; i < W; ++i) r.v[i] = f(i);
        return r;
    }
    static reg zero() { return set1(0.0f); }
    static reg set1(float x) { return map([&](int) { return x; }); }
    static reg load(const float* p) { return map([&](int i) { return p[i]; }); }
    static void store(float* p, reg a) { std::memcpy(p, a.v, sizeof a.v); }
    static reg load_n(const float* p, int n) { return map([&](int i) { return i < n ? p[i] : 0.0f; }); }
    static void store_n(float* p, reg a, int n) {
        for (int i = 0; i < n; ++i) p[i] = a.v[i];
    }
    static reg fma(reg a, reg b, reg c) { return map([&](int i) { return a.v[i] * b.v[i] + c.v[i]; }); }
    static reg mul(reg a, reg b) { return map([&](int i) { return a.v[i] * b.v[i]; }); }
    static reg add(reg a, reg b) { return map([&](int i) { return a.v[i] + b.v[i]; }); }
    static reg sub(reg a, reg b) { return map([&](int i) { return a.v[i] - b.v[i]; }); }
    static reg max(reg a, reg b) { return map([&](int i) { return a.v[i] > b.v[i] ? a.v[i] : b.v[i]; }); }
    static float reduce_add(reg a) {
        float s = 0.0f;
        for (int i = 0; i < W; ++i) s += a.v[i];
        return s;
    }
    static float reduce_max(reg a) {
        float m = a.v[0];
        for (int i = 1; i < W; ++i) m = a.v[i] > m ? a.v[i] : m;
        return m;
    }
    static void reduce_add8(const reg* a, float* out) {
        for (int i = 0; i < 8; ++i) out[i] = reduce_add(a[i]);
    }
    static reg exp2(reg x) {
        using namespace vec_math;
        return map([&](int i) {
            float y = x.v[i] < kExp2Min ? kExp2Min : x.v[i] > kExp2Max ? kExp2Max : x.v[i];
            float n = std::nearbyint(y);
            float f = y - n;
            float p = kExp2Poly[7];
            for (int k = 6; k >= 0; --k) p = p * f + kExp2Poly[k];
            return p * bits_to_float(uint32_t(int32_t(n) + 127) << 23);
        });
    }
    static reg load_f16(const uint16_t* p) { return map([&](int i) { return f16_to_float(p[i]); }); }
    static void load_bf16_pair(const uint16_t* p, reg& even, reg& odd) {
        even = map([&](int i) { return bf16_to_float(p[2 * i]); });
        odd = map([&](int i) { return bf16_to_float(p[2 * i + 1]); });
    }
    // Quantized KV codes, as in vec_avx2.h.
    static reg load_s8(const uint8_t* p) { return map([&](int i) { return float(int8_t(p[i])); }); }
    static reg load_u4(const uint8_t* p, int shift) { return map([&](int i) { return float((p[i] >> shift) & 15); }); }
    static reg load_e4m3(const uint8_t* p) {
        return map([&](int i) { return f16_to_float(uint16_t(((p[i] & 0x80u) << 8) | ((p[i] & 0x7fu) << 7))); });
    }
    static float f16_scalar(uint16_t h) { return f16_to_float(h); }
    static reg load_bf16(const uint16_t* p) { return map([&](int i) { return bf16_to_float(p[i]); }); }
    static reg load_f16_n(const uint16_t* p, int n) {
        return map([&](int i) { return i < n ? f16_to_float(p[i]) : 0.0f; });
    }
    static reg load_bf16_n(const uint16_t* p, int n) {
        return map([&](int i) { return i < n ? bf16_to_float(p[i]) : 0.0f; });
    }
    static void store_f16(uint16_t* p, reg a) {
        for (int i = 0; i < W; ++i) p[i] = float_to_f16(a.v[i]);
    }
    static void store_bf16(uint16_t* p, reg a) {
        for (int i = 0; i < W; ++i) p[i] = float_to_bf16(a.v[i]);
    }
    static void store_f16_n(uint16_t* p, reg a, int n) {
        for (int i = 0; i < n; ++i) p[i] = float_to_f16(a.v[i]);
    }
    static void store_bf16_n(uint16_t* p, reg a, int n) {
        for (int i = 0; i < n; ++i) p[i] = float_to_bf16(a.v[i]);
    }
};

}  // namespace pagedkv::kernels::cpu::portable
